package memstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
	"github.com/noa-server/webhook/store/storetest"
)

// purgeHarness is a memstore with helpers that finish deliveries at chosen
// times and purge.
type purgeHarness struct {
	t   *testing.T
	ctx context.Context
	s   *memstore.Store
}

func newPurgeHarness(t *testing.T) *purgeHarness {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return &purgeHarness{t: t, ctx: t.Context(), s: s}
}

func (h *purgeHarness) webhook() *store.Webhook {
	h.t.Helper()
	w := storetest.NewWebhook("acme")
	if err := h.s.CreateWebhook(h.ctx, w); err != nil {
		h.t.Fatal(err)
	}
	return w
}

// finish stores a delivery to w and completes it as a success at
// Base + at; it returns the delivery's id.
func (h *purgeHarness) finish(w *store.Webhook, at time.Duration) string {
	h.t.Helper()
	d := storetest.NewDelivery(w, "workflow.completed")
	if _, err := h.s.Enqueue(h.ctx, []*store.Delivery{d}); err != nil {
		h.t.Fatal(err)
	}
	h.complete(d.ID, at)
	return d.ID
}

// complete claims pending delivery id and completes it as a success at
// Base + at.
func (h *purgeHarness) complete(id string, at time.Duration) {
	h.t.Helper()
	got, err := h.s.Claim(h.ctx, store.ClaimParams{Owner: "p", Now: storetest.Base.Add(at), Lease: time.Hour, Limit: 1000})
	if err != nil || !slices.ContainsFunc(got, func(d *store.Delivery) bool { return d.ID == id }) {
		h.t.Fatalf("Claim = %d deliveries, %v; want %s among them", len(got), err, id)
	}
	n := 1
	if as, err := h.s.ListAttempts(h.ctx, id); err == nil {
		n = len(as) + 1
	}
	err = h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: id, Owner: "p", Attempt: &store.Attempt{Number: n, ResponseStatus: 200},
		Status: store.StatusSuccess, Now: storetest.Base.Add(at),
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *purgeHarness) purge(before time.Duration, limit, want int) {
	h.t.Helper()
	n, err := h.s.Purge(h.ctx, store.PurgeParams{Before: storetest.Base.Add(before), Limit: limit})
	if n != want || err != nil {
		h.t.Fatalf("Purge(Base+%v, limit %d) = %d, %v; want %d", before, limit, n, err, want)
	}
}

// exists reports whether delivery id is stored.
func (h *purgeHarness) exists(id string) bool {
	h.t.Helper()
	_, err := h.s.GetDelivery(h.ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.t.Fatal(err)
	}
	return err == nil
}

// listed returns the ids ListDeliveries gives for w, and for its tenant.
func (h *purgeHarness) listed(w *store.Webhook) (ofWebhook, ofTenant []string) {
	h.t.Helper()
	for _, p := range []store.ListDeliveriesParams{{Tenant: w.Tenant, WebhookID: w.ID}, {Tenant: w.Tenant}} {
		p.Limit = store.MaxPageLimit
		ds, _, err := h.s.ListDeliveries(h.ctx, p)
		if err != nil {
			h.t.Fatal(err)
		}
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if p.WebhookID != "" {
			ofWebhook = ids
		} else {
			ofTenant = ids
		}
	}
	return ofWebhook, ofTenant
}

// TestPurgeOldestFirst: a Purge under a Limit takes the deliveries last
// updated earliest, whatever the order they finished in, and the listings
// then hold the others.
func TestPurgeOldestFirst(t *testing.T) {
	h := newPurgeHarness(t)
	w := h.webhook()
	ats := []time.Duration{30, 10, 20, 10, 40}
	ids := make([]string, len(ats))
	for i, at := range ats {
		ids[i] = h.finish(w, at*time.Minute)
	}
	// Oldest first, and of the same time the one finished first.
	order := []int{1, 3, 2, 0}
	for k, i := range order {
		h.purge(35*time.Minute, 1, 1)
		if h.exists(ids[i]) {
			t.Fatalf("after %d Purges of 1, the delivery finished at %v is still there", k+1, ats[i]*time.Minute)
		}
		for _, j := range order[k+1:] {
			if !h.exists(ids[j]) {
				t.Fatalf("after %d Purges of 1, the delivery finished at %v is gone before its turn", k+1, ats[j]*time.Minute)
			}
		}
	}
	h.purge(35*time.Minute, 1, 0)
	ofWebhook, ofTenant := h.listed(w)
	if want := []string{ids[4]}; !slices.Equal(ofWebhook, want) || !slices.Equal(ofTenant, want) {
		t.Fatalf("listed after the Purges: webhook %v, tenant %v; want %v", ofWebhook, ofTenant, want)
	}
}

// TestPurgeListsInOrder: the deliveries a Purge leaves keep their order in
// the listings when the ones it removed were not the first listed.
func TestPurgeListsInOrder(t *testing.T) {
	h := newPurgeHarness(t)
	w, other := h.webhook(), h.webhook()
	var kept []string
	for i := range 12 {
		at := time.Duration(i) * time.Minute
		if i%3 == 1 {
			at += time.Hour // kept
		}
		id := h.finish(w, at)
		if i%3 == 1 {
			kept = append(kept, id)
		}
		h.finish(other, time.Hour+at)
	}
	h.purge(time.Hour, 0, 8)
	ofWebhook, _ := h.listed(w)
	// Listings are newest first.
	slices.Reverse(kept)
	if !slices.Equal(ofWebhook, kept) {
		t.Fatalf("listed after Purge: %v; want %v", ofWebhook, kept)
	}
	_, ofTenant := h.listed(other)
	if len(ofTenant) != 12+len(kept) {
		t.Fatalf("the tenant lists %d deliveries after Purge; want %d", len(ofTenant), 12+len(kept))
	}
}

// TestPurgeRedelivered: a delivery redelivered since it first finished is
// not purged while pending, then by the time of its latest finish, not the
// first, and once even when it finished again at the same time.
func TestPurgeRedelivered(t *testing.T) {
	h := newPurgeHarness(t)
	w := h.webhook()
	id := h.finish(w, 10*time.Minute)
	if _, err := h.s.Redeliver(h.ctx, store.RedeliverParams{ID: id, Now: storetest.Base.Add(50 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.purge(30*time.Minute, 0, 0)
	if !h.exists(id) {
		t.Fatal("Purge removed a redelivered delivery, pending")
	}
	h.complete(id, 60*time.Minute)
	h.purge(2*time.Hour, 0, 1)

	id = h.finish(w, 10*time.Minute)
	if _, err := h.s.Redeliver(h.ctx, store.RedeliverParams{ID: id, Now: storetest.Base.Add(50 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.complete(id, 60*time.Minute)
	h.purge(30*time.Minute, 0, 0)
	if !h.exists(id) {
		t.Fatal("Purge before its latest finish removed the redelivered delivery")
	}
	h.purge(2*time.Hour, 0, 1)
	if h.exists(id) {
		t.Fatal("Purge after its latest finish kept the redelivered delivery")
	}

	// Finished again at the time of its first finish.
	id = h.finish(w, 10*time.Minute)
	if _, err := h.s.Redeliver(h.ctx, store.RedeliverParams{ID: id, Now: storetest.Base.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.complete(id, 10*time.Minute)
	h.purge(2*time.Hour, 0, 1)
	h.purge(2*time.Hour, 0, 0)
}

// TestPurgeAfterDelete: the finished deliveries of a deleted webhook are
// gone with it, and Purge counts only the others, also after deleting
// enough of them to compact what Purge reads.
func TestPurgeAfterDelete(t *testing.T) {
	h := newPurgeHarness(t)
	keep := h.webhook()
	var kept []string
	for i := range 3 {
		kept = append(kept, h.finish(keep, time.Duration(i)*time.Minute))
	}
	for range 3 {
		w := h.webhook()
		for range 1000 {
			h.finish(w, 5*time.Minute)
		}
		if err := h.s.DeleteWebhook(h.ctx, w.ID); err != nil {
			t.Fatal(err)
		}
	}
	kept = append(kept, h.finish(keep, 10*time.Minute))
	h.purge(time.Hour, 2, 2)
	h.purge(time.Hour, 0, 2)
	h.purge(time.Hour, 0, 0)
	for _, id := range kept {
		if h.exists(id) {
			t.Errorf("delivery %s is still there after the Purges", id)
		}
	}
}
