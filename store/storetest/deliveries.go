package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

var deliveryTests = []subtest{
	{"ListFilters", testListDeliveriesFilters},
	{"ListPagination", testListDeliveriesPagination},
	{"ListConcurrentInsert", testListDeliveriesConcurrentInsert},
	{"Purge", testPurge},
	{"PurgeLimit", testPurgeLimit},
	{"Count", testCountDeliveries},
}

// listAllDeliveries pages through a listing with the given parameters,
// calling each (when not nil) between pages.
func listAllDeliveries(t *testing.T, h *harness, p store.ListDeliveriesParams, each ...func()) []*store.Delivery {
	t.Helper()
	var all []*store.Delivery
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListDeliveries pagination does not end")
		}
		page, next, err := h.s.ListDeliveries(h.ctx, p)
		if err != nil {
			t.Fatalf("ListDeliveries(%+v): %v", p, err)
		}
		if len(page) > p.Limit {
			t.Fatalf("ListDeliveries returned %d items with Limit %d", len(page), p.Limit)
		}
		if next != "" && len(page) == 0 {
			t.Fatal("ListDeliveries returned an empty page with a next cursor")
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		for _, f := range each {
			f()
		}
		p.Cursor = next
	}
}

func testListDeliveriesFilters(t *testing.T, h *harness) {
	tn, other := h.tenant(), h.tenant()
	w1 := h.webhook(t, tn, nil)
	w2 := h.webhook(t, tn, nil)
	wo := h.webhook(t, other, nil)
	var all []*store.Delivery // in enqueue (id) order
	types := []string{"workflow.completed", "agent.error", "workflow.failed"}
	for i := range 12 {
		w := w1
		if i%3 == 1 {
			w = w2
		}
		d := NewDelivery(w, types[i%len(types)])
		h.enqueue(t, d)
		all = append(all, d)
		h.enqueue(t, NewDelivery(wo, types[i%len(types)]))
	}
	h.finish(t, all[0], store.StatusSuccess, Base.Add(time.Second))
	h.finish(t, all[4], store.StatusFailed, Base.Add(time.Second))
	h.finish(t, all[5], store.StatusSuccess, Base.Add(time.Second))

	for _, c := range []struct {
		name string
		p    store.ListDeliveriesParams
		keep func(i int, d *store.Delivery) bool
	}{
		{"tenant", store.ListDeliveriesParams{}, func(int, *store.Delivery) bool { return true }},
		{"webhook", store.ListDeliveriesParams{WebhookID: w2.ID}, func(_ int, d *store.Delivery) bool { return d.WebhookID == w2.ID }},
		{"status", store.ListDeliveriesParams{Status: store.StatusSuccess}, func(i int, _ *store.Delivery) bool { return i == 0 || i == 5 }},
		{"pending", store.ListDeliveriesParams{Status: store.StatusPending}, func(i int, _ *store.Delivery) bool { return i != 0 && i != 4 && i != 5 }},
		{"event type", store.ListDeliveriesParams{EventType: "agent.error"}, func(_ int, d *store.Delivery) bool { return d.EventType == "agent.error" }},
		{"all three", store.ListDeliveriesParams{WebhookID: w1.ID, Status: store.StatusPending, EventType: "workflow.failed"},
			func(i int, d *store.Delivery) bool {
				return d.WebhookID == w1.ID && d.EventType == "workflow.failed" && i != 0 && i != 4 && i != 5
			}},
		{"no match", store.ListDeliveriesParams{EventType: "workflow.*"}, func(int, *store.Delivery) bool { return false }},
		{"other tenant's webhook", store.ListDeliveriesParams{WebhookID: wo.ID}, func(int, *store.Delivery) bool { return false }},
		{"unknown webhook", store.ListDeliveriesParams{WebhookID: NewID("wh_")}, func(int, *store.Delivery) bool { return false }},
	} {
		var want []string
		for i := len(all) - 1; i >= 0; i-- {
			if c.keep(i, all[i]) {
				want = append(want, all[i].ID)
			}
		}
		for _, limit := range []int{1, 2, 100} {
			p := c.p
			p.Tenant, p.Limit = tn, limit
			got := listAllDeliveries(t, h, p)
			if d := diff(want, ids(got)); d != "" {
				t.Errorf("ListDeliveries by %s, Limit %d (-want +got):\n%s", c.name, limit, d)
			}
		}
	}
	// Listed records are the stored records.
	page, _, err := h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{Tenant: tn, Limit: store.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range page {
		if dd := diff(h.getDelivery(t, d.ID), d); dd != "" {
			t.Errorf("listed delivery differs from GetDelivery (-get +list):\n%s", dd)
		}
	}
	// WithoutBody lists the same records and pages, bodies left out.
	for _, limit := range []int{5, store.MaxPageLimit} {
		p := store.ListDeliveriesParams{Tenant: tn, Limit: limit}
		full, next, err := h.s.ListDeliveries(h.ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		p.WithoutBody = true
		bare, bareNext, err := h.s.ListDeliveries(h.ctx, p)
		if err != nil {
			t.Fatalf("ListDeliveries WithoutBody: %v", err)
		}
		if bareNext != next || len(bare) != len(full) {
			t.Fatalf("WithoutBody, Limit %d: %d deliveries, next %q; with bodies %d, %q", limit, len(bare), bareNext, len(full), next)
		}
		for i, d := range bare {
			if d.Body != nil {
				t.Errorf("WithoutBody returned a body for %s", d.ID)
			}
			want := *full[i]
			want.Body = nil
			if dd := diff(&want, d); dd != "" {
				t.Errorf("WithoutBody record differs (-want +got):\n%s", dd)
			}
		}
	}
}

func testListDeliveriesPagination(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	var want []string
	var batch []*store.Delivery
	for range 30 {
		d := NewDelivery(w, "workflow.completed")
		batch = append(batch, d)
		want = append(want, d.ID)
	}
	h.enqueue(t, batch...)
	slices.Reverse(want)
	for _, limit := range []int{1, 7, 10, 29, 30, 31} {
		got := listAllDeliveries(t, h, store.ListDeliveriesParams{Tenant: tn, Limit: limit})
		if d := diff(want, ids(got)); d != "" {
			t.Errorf("pages of %d (-want +got):\n%s", limit, d)
		}
	}
	page, next, err := h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 30})
	if err != nil || len(page) != 30 || next != "" {
		t.Errorf("a page holding the last item: %d items, cursor %q, %v; want 30, \"\"", len(page), next, err)
	}
	page, next, err = h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 10})
	if err != nil || len(page) != 10 || next == "" {
		t.Fatalf("first page: %d items, cursor %q, %v", len(page), next, err)
	}
	// Deleting the item a cursor points at does not break the listing.
	h2 := page[9]
	if err := h.s.DeleteWebhook(h.ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	page, next, err = h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 10, Cursor: next})
	if err != nil || len(page) != 0 || next != "" {
		t.Errorf("page after deleting everything (cursor at %s): %d items, %q, %v; want empty", h2.ID, len(page), next, err)
	}
}

func testListDeliveriesConcurrentInsert(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	initial := make(map[string]bool)
	var batch []*store.Delivery
	for range 100 {
		d := NewDelivery(w, "workflow.completed")
		batch = append(batch, d)
		initial[d.ID] = true
	}
	h.enqueue(t, batch...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 { // bounded, in case the listing never ends
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.s.Enqueue(h.ctx, []*store.Delivery{NewDelivery(w, "workflow.completed")}); err != nil {
				t.Errorf("concurrent Enqueue: %v", err)
				return
			}
		}
	})
	got := listAllDeliveries(t, h, store.ListDeliveriesParams{Tenant: tn, Limit: 7}, func() { h.delivery(t, w, Base) })
	close(stop)
	wg.Wait()
	seen := make(map[string]bool)
	for i, d := range got {
		if seen[d.ID] {
			t.Errorf("delivery %s listed twice", d.ID)
		}
		seen[d.ID] = true
		if i > 0 && got[i-1].ID <= d.ID {
			t.Errorf("listing not newest first: %s before %s", got[i-1].ID, d.ID)
		}
	}
	for id := range initial {
		if !seen[id] {
			t.Errorf("delivery %s, stored before the listing began, was not listed", id)
		}
	}
}

func testPurge(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	cut := Base.Add(time.Hour)
	oldOK := h.delivery(t, w, Base)
	h.finish(t, oldOK, store.StatusSuccess, cut.Add(-time.Microsecond))
	oldFailed := h.delivery(t, w, Base)
	h.finish(t, oldFailed, store.StatusPending, Base.Add(time.Second))
	h.finish(t, oldFailed, store.StatusFailed, Base.Add(time.Minute))
	atCut := h.delivery(t, w, Base)
	h.finish(t, atCut, store.StatusSuccess, cut) // not strictly before: kept
	newOK := h.delivery(t, w, Base)
	h.finish(t, newOK, store.StatusSuccess, cut.Add(time.Minute))
	oldPending := h.delivery(t, w, Base) // UpdatedAt Base, long before cut
	retrying := h.delivery(t, w, Base)
	h.finish(t, retrying, store.StatusPending, Base.Add(time.Second))

	n, err := h.s.Purge(h.ctx, store.PurgeParams{Before: cut})
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	for _, d := range []*store.Delivery{oldOK, oldFailed} {
		if _, err := h.s.GetDelivery(h.ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("purged delivery still there (GetDelivery: %v)", err)
		}
		if _, err := h.s.ListAttempts(h.ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("purged delivery's attempts still there (ListAttempts: %v)", err)
		}
	}
	for _, d := range []*store.Delivery{atCut, newOK, oldPending, retrying} {
		h.getDelivery(t, d.ID)
	}
	if as, err := h.s.ListAttempts(h.ctx, retrying.ID); err != nil || len(as) != 1 {
		t.Errorf("kept delivery's attempts: %d, %v; want 1", len(as), err)
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: 2, Success: 2}) {
		t.Errorf("CountDeliveries after Purge = %+v, %v; want 2 pending, 2 success", c, err)
	}
	// The listings agree with the counts: by tenant, by webhook, by status,
	// walked one item a page so every cursor steps past the purged ones.
	kept := []string{atCut.ID, newOK.ID, oldPending.ID, retrying.ID}
	for _, c := range []struct {
		p    store.ListDeliveriesParams
		want []string
	}{
		{store.ListDeliveriesParams{Tenant: tn}, kept},
		{store.ListDeliveriesParams{Tenant: tn, WebhookID: w.ID}, kept},
		{store.ListDeliveriesParams{Tenant: tn, Status: store.StatusSuccess}, []string{atCut.ID, newOK.ID}},
		{store.ListDeliveriesParams{Tenant: tn, Status: store.StatusFailed}, nil},
	} {
		var got []string
		p := c.p
		p.Limit = 1
		for {
			page, next, err := h.s.ListDeliveries(h.ctx, p)
			if err != nil {
				t.Fatalf("ListDeliveries(%+v) after Purge: %v", p, err)
			}
			for _, d := range page {
				got = append(got, d.ID)
			}
			if next == "" {
				break
			}
			p.Cursor = next
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(c.want))
		if !slices.Equal(got, want) {
			t.Errorf("ListDeliveries(webhook %q, status %q) after Purge = %v, want %v", c.p.WebhookID, c.p.Status, got, want)
		}
	}
	// Pending deliveries are never purged, however old.
	n, err = h.s.Purge(h.ctx, store.PurgeParams{Before: cut.Add(1000 * time.Hour)})
	if err != nil || n != 2 {
		t.Errorf("second Purge = %d, %v; want 2", n, err)
	}
	if got := h.claim(t, cut.Add(1000*time.Hour), 10, "p"); len(got) != 2 {
		t.Errorf("Claim after Purge = %d, want the 2 pending deliveries", len(got))
	}
	// A purged (EventID, WebhookID) can be enqueued again.
	again := NewDelivery(w, "workflow.completed")
	again.EventID = oldOK.EventID
	if ids := h.enqueue(t, again); ids[0] != again.ID {
		t.Errorf("Enqueue of a purged event = %q, want the new id %s", ids, again.ID)
	}
	// The attempts went with the delivery: a new one reusing a purged id
	// starts with an empty log.
	reuse := NewDelivery(w, "workflow.completed")
	reuse.ID = oldFailed.ID
	h.enqueue(t, reuse)
	if as, err := h.s.ListAttempts(h.ctx, reuse.ID); err != nil || len(as) != 0 {
		t.Errorf("ListAttempts of a new delivery reusing a purged id = %d attempts, %v; want none", len(as), err)
	}
}

func testPurgeLimit(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	for i := range 5 {
		d := h.delivery(t, w, Base)
		h.finish(t, d, store.StatusSuccess, Base.Add(time.Duration(i)*time.Second))
	}
	h.delivery(t, w, Base)
	for _, want := range []int{2, 2, 1, 0} {
		n, err := h.s.Purge(h.ctx, store.PurgeParams{Before: Base.Add(time.Hour), Limit: 2})
		if err != nil || n != want {
			t.Fatalf("Purge with Limit 2 = %d, %v; want %d", n, err, want)
		}
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: 1}) {
		t.Errorf("CountDeliveries = %+v, %v; want 1 pending", c, err)
	}
}

func testCountDeliveries(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	empty := h.webhook(t, tn, nil)
	for i := range 7 {
		d := h.delivery(t, w, Base)
		switch i % 3 {
		case 1:
			h.finish(t, d, store.StatusSuccess, Base.Add(time.Second))
		case 2:
			h.finish(t, d, store.StatusFailed, Base.Add(time.Second))
		}
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: 3, Success: 2, Failed: 2}) {
		t.Errorf("CountDeliveries = %+v, %v; want 3 pending, 2 success, 2 failed", c, err)
	}
	c, err = h.s.CountDeliveries(h.ctx, empty.ID)
	if err != nil || c != (store.Counts{}) {
		t.Errorf("CountDeliveries of a webhook without deliveries = %+v, %v; want zero", c, err)
	}
	_, err = h.s.CountDeliveries(h.ctx, NewID("wh_"))
	wantErr(t, "CountDeliveries of an unknown webhook", err, store.ErrNotFound)
}
