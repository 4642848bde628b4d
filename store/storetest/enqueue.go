package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

var enqueueTests = []subtest{
	{"RoundTrip", testEnqueueRoundTrip},
	{"Defaults", testEnqueueDefaults},
	{"Atomic", testEnqueueAtomic},
	{"Dedup", testEnqueueDedup},
	{"DuplicateID", testEnqueueDuplicateID},
	{"DedupConcurrent", testEnqueueDedupConcurrent},
	{"Empty", testEnqueueEmpty},
	{"Leased", testEnqueueLeased},
	{"LeasedDuplicate", testEnqueueLeasedDuplicate},
	{"Copies", testDeliveryCopies},
}

func testEnqueueRoundTrip(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	want := NewDelivery(w, "agent.error")
	want.NextAttemptAt = Base.Add(90 * time.Second)
	want.CreatedAt = Base.Add(-time.Hour)
	want.UpdatedAt = Base.Add(-time.Minute)
	ids := h.enqueue(t, want)
	if len(ids) != 1 || ids[0] != want.ID {
		t.Fatalf("Enqueue ids = %q, want [%s]", ids, want.ID)
	}
	if d := diff(want, h.getDelivery(t, want.ID)); d != "" {
		t.Errorf("GetDelivery after Enqueue (-want +got):\n%s", d)
	}
}

func testEnqueueDefaults(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d := NewDelivery(w, "workflow.completed")
	d.Status = ""
	d.CreatedAt, d.UpdatedAt, d.NextAttemptAt = time.Time{}, time.Time{}, time.Time{}
	d.Attempts, d.RoundAttempts, d.LastStatusCode, d.LastError = 4, 3, 500, "stale"
	d.LeaseExpiresAt = Base.Add(time.Hour) // without a LeaseOwner: no lease
	in := *d
	before := time.Now().Add(-time.Second)
	h.enqueue(t, d)
	after := time.Now().Add(time.Second)
	if diff(&in, d) != "" {
		t.Errorf("Enqueue modified its argument:\n%s", diff(&in, d))
	}
	got := h.getDelivery(t, d.ID)
	if got.CreatedAt.Before(before) || got.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want about now", got.CreatedAt)
	}
	want := in
	want.Status = store.StatusPending
	want.Attempts, want.RoundAttempts, want.LastStatusCode, want.LastError = 0, 0, 0, ""
	want.LeaseOwner, want.LeaseExpiresAt = "", time.Time{}
	want.CreatedAt, want.UpdatedAt, want.NextAttemptAt = got.CreatedAt, got.CreatedAt, got.CreatedAt
	if d := diff(&want, got); d != "" {
		t.Errorf("delivery enqueued with zero fields (-want +got):\n%s", d)
	}
}

func testEnqueueAtomic(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	otherTenant := h.webhook(t, h.tenant(), nil)
	existing := h.delivery(t, w, Base)
	done := h.delivery(t, w, Base)
	h.finish(t, done, store.StatusSuccess, Base)

	for _, c := range []struct {
		name string
		bad  func() *store.Delivery
		want error
	}{
		{"nil", func() *store.Delivery { return nil }, store.ErrInvalid},
		{"empty id", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.ID = ""; return d }, store.ErrInvalid},
		{"empty webhook id", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.WebhookID = ""; return d }, store.ErrInvalid},
		{"empty event id", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.EventID = ""; return d }, store.ErrInvalid},
		{"empty event type", func() *store.Delivery { d := NewDelivery(w, ""); return d }, store.ErrInvalid},
		{"empty tenant", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.Tenant = ""; return d }, store.ErrInvalid},
		{"finished status", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.Status = store.StatusSuccess; return d }, store.ErrInvalid},
		{"bogus status", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.Status = "bogus"; return d }, store.ErrInvalid},
		{"unknown webhook", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.WebhookID = NewID("wh_"); return d }, store.ErrNotFound},
		{"tenant mismatch", func() *store.Delivery { d := NewDelivery(otherTenant, "x.y"); d.Tenant = tn; return d }, store.ErrInvalid},
		{"id in use", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.ID = existing.ID; return d }, store.ErrConflict},
		{"id of a finished delivery", func() *store.Delivery { d := NewDelivery(w, "x.y"); d.ID = done.ID; return d }, store.ErrConflict},
	} {
		good1 := NewDelivery(w, "workflow.completed")
		good2 := NewDelivery(w, "workflow.completed")
		ids, err := h.s.Enqueue(h.ctx, []*store.Delivery{good1, c.bad(), good2})
		if !errors.Is(err, c.want) {
			t.Errorf("Enqueue with %s: ids %q, error %v, want %v", c.name, ids, err, c.want)
		}
		for _, d := range []*store.Delivery{good1, good2} {
			if _, err := h.s.GetDelivery(h.ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Enqueue with %s stored a valid delivery of the batch (GetDelivery: %v)", c.name, err)
			}
		}
	}
	// The same id twice in one batch for different events.
	a := NewDelivery(w, "workflow.completed")
	b := NewDelivery(w, "workflow.completed")
	b.ID = a.ID
	if _, err := h.s.Enqueue(h.ctx, []*store.Delivery{a, b}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Enqueue of one id twice: %v, want ErrConflict", err)
	}
	if _, err := h.s.GetDelivery(h.ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused batch stored %s (GetDelivery: %v)", a.ID, err)
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: 1, Success: 1}) {
		t.Errorf("CountDeliveries after refused batches = %+v, %v; want only the first two deliveries", c, err)
	}
	if d := diff(existing, h.getDelivery(t, existing.ID)); d != "" {
		t.Errorf("refused batches changed an existing delivery (-want +got):\n%s", d)
	}
}

func testEnqueueDedup(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	w2 := h.webhook(t, w.Tenant, nil)
	first := h.delivery(t, w, Base)
	h.finish(t, first, store.StatusFailed, Base.Add(time.Second))
	stored := h.getDelivery(t, first.ID)

	again := NewDelivery(w, "workflow.completed")
	again.EventID = first.EventID
	again.Body = []byte(`{"different":true}`)
	sameEventOtherWebhook := NewDelivery(w2, "workflow.completed")
	sameEventOtherWebhook.EventID = first.EventID
	fresh := NewDelivery(w, "workflow.completed")
	inBatch := NewDelivery(w, "workflow.completed")
	inBatch.EventID = fresh.EventID

	ids := h.enqueue(t, again, sameEventOtherWebhook, fresh, inBatch)
	want := []string{first.ID, sameEventOtherWebhook.ID, fresh.ID, fresh.ID}
	if d := diff(want, ids); d != "" {
		t.Errorf("Enqueue ids with duplicates (-want +got):\n%s", d)
	}
	for _, d := range []*store.Delivery{again, inBatch} {
		if _, err := h.s.GetDelivery(h.ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("duplicate %s was stored (GetDelivery: %v)", d.ID, err)
		}
	}
	if d := diff(stored, h.getDelivery(t, first.ID)); d != "" {
		t.Errorf("a duplicate enqueue changed the stored delivery (-want +got):\n%s", d)
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: 1, Failed: 1}) {
		t.Errorf("CountDeliveries = %+v, %v; want 1 pending, 1 failed", c, err)
	}
	// A whole batch of duplicates is fine too.
	ids = h.enqueue(t, again)
	if len(ids) != 1 || ids[0] != first.ID {
		t.Errorf("Enqueue of a lone duplicate = %q, want [%s]", ids, first.ID)
	}
}

// testEnqueueDuplicateID: a duplicate is not stored, so its own ID is not
// looked at, within the batch as against the store: it may be the id
// another delivery of the batch is stored under, before or after it.
func testEnqueueDuplicateID(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	stored := h.delivery(t, w, Base)
	dupOf := func(d *store.Delivery, id string) *store.Delivery {
		dup := NewDelivery(w, d.EventType)
		dup.ID, dup.EventID = id, d.EventID
		return dup
	}
	a, b := NewDelivery(w, "workflow.completed"), NewDelivery(w, "workflow.completed")
	c, e := NewDelivery(w, "workflow.completed"), NewDelivery(w, "workflow.completed")
	for _, tc := range []struct {
		name  string
		batch []*store.Delivery
		want  []string
	}{
		{"a duplicate of a stored delivery, then a delivery with its id", []*store.Delivery{dupOf(stored, a.ID), a}, []string{stored.ID, a.ID}},
		{"a delivery, then a duplicate of a stored one with its id", []*store.Delivery{b, dupOf(stored, b.ID)}, []string{b.ID, stored.ID}},
		{"a duplicate within the batch, then a delivery with its id", []*store.Delivery{c, dupOf(c, e.ID), e}, []string{c.ID, c.ID, e.ID}},
		{"a duplicate with the id of another stored delivery", []*store.Delivery{dupOf(stored, a.ID)}, []string{stored.ID}},
	} {
		ids, err := h.s.Enqueue(h.ctx, tc.batch)
		if err != nil {
			t.Errorf("Enqueue of %s: %v", tc.name, err)
			continue
		}
		if d := diff(tc.want, ids); d != "" {
			t.Errorf("Enqueue of %s: ids (-want +got):\n%s", tc.name, d)
		}
	}
	for _, d := range []*store.Delivery{stored, a, b, c, e} {
		if got, err := h.s.GetDelivery(h.ctx, d.ID); err != nil || got.EventID != d.EventID {
			t.Errorf("GetDelivery(%s) = %v; want the delivery of event %s", d.ID, err, d.EventID)
		}
	}
	if c, err := h.s.CountDeliveries(h.ctx, w.ID); err != nil || c != (store.Counts{Pending: 5}) {
		t.Errorf("CountDeliveries = %+v, %v; want 5 pending", c, err)
	}
}

func testEnqueueEmpty(t *testing.T, h *harness) {
	ids, err := h.s.Enqueue(h.ctx, nil)
	if err != nil || len(ids) != 0 {
		t.Errorf("Enqueue(nil) = %q, %v; want no ids, nil", ids, err)
	}
}

func testDeliveryCopies(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d := NewDelivery(w, "workflow.completed")
	want := *d
	want.Body = append([]byte(nil), d.Body...)
	h.enqueue(t, d)
	d.Body[0] = 'X'
	d.Status = store.StatusFailed
	got := h.getDelivery(t, want.ID)
	if dd := diff(&want, got); dd != "" {
		t.Fatalf("store shares memory with Enqueue's argument (-want +got):\n%s", dd)
	}
	got.Body[0] = 'Y'
	got.Attempts = 99
	claimed := h.claim(t, Base, 1, "copier")
	if len(claimed) != 1 {
		t.Fatalf("Claim = %d deliveries, want 1", len(claimed))
	}
	claimed[0].Body[1] = 'Z'
	list, _, err := h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{Tenant: w.Tenant, Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListDeliveries = %d, %v", len(list), err)
	}
	list[0].Body[2] = 'W'
	list[0].WebhookID = "mutated"
	h.complete(t, want.ID, "copier", 1, store.StatusSuccess, Base.Add(time.Second))
	as, err := h.s.ListAttempts(h.ctx, want.ID)
	if err != nil || len(as) != 1 {
		t.Fatalf("ListAttempts = %d, %v", len(as), err)
	}
	as[0].ResponseBody[0] = 'X'
	as[0].RequestHeaders.Set("Content-Type", "mutated")
	as2, err := h.s.ListAttempts(h.ctx, want.ID)
	if err != nil || len(as2) != 1 {
		t.Fatalf("ListAttempts = %d, %v", len(as2), err)
	}
	if d := diff(NewAttempt(want.ID, 1, 200), as2[0]); d != "" {
		t.Errorf("store shares memory with ListAttempts' result (-want +got):\n%s", d)
	}
	got = h.getDelivery(t, want.ID)
	if string(got.Body) != string(want.Body) || got.WebhookID != want.WebhookID {
		t.Errorf("store shares memory with returned deliveries: body %q", got.Body)
	}
}

// testEnqueueDedupConcurrent enqueues one event for one webhook from many
// goroutines at once (the same Emit retried by several replicas): every
// call succeeds and they all agree on the one stored delivery.
func testEnqueueDedupConcurrent(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	evt := NewID("evt_")
	const callers = 8
	got := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			d := NewDelivery(w, "workflow.completed")
			d.EventID = evt
			other := NewDelivery(w, "workflow.completed") // a distinct event in the same batch
			ids, err := h.s.Enqueue(h.ctx, []*store.Delivery{d, other})
			if err != nil {
				t.Errorf("concurrent Enqueue: %v", err)
				return
			}
			got[i] = ids[0]
		})
	}
	wg.Wait()
	for i := 1; i < callers; i++ {
		if got[i] != got[0] {
			t.Errorf("concurrent Enqueue of one event returned ids %q", got)
			break
		}
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: 1 + callers}) {
		t.Errorf("CountDeliveries = %+v, %v; want %d pending", c, err, 1+callers)
	}
	if d, err := h.s.GetDelivery(h.ctx, got[0]); err != nil || d.EventID != evt {
		t.Errorf("GetDelivery(%s) = %v; want the delivery of %s", got[0], err, evt)
	}
}

// A delivery enqueued with a lease is its owner's until the lease expires:
// Claim passes it over, the owner completes or releases it.
func testEnqueueLeased(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	expires := Base.Add(Lease)
	leased := func() *store.Delivery {
		d := NewDelivery(w, "workflow.completed")
		d.NextAttemptAt = Base
		d.LeaseOwner, d.LeaseExpiresAt = "sender", expires
		return d
	}
	completed, released, expired, plain := leased(), leased(), leased(), NewDelivery(w, "workflow.completed")
	plain.NextAttemptAt = Base
	h.enqueue(t, completed, released, expired, plain)

	got := h.getDelivery(t, completed.ID)
	if got.LeaseOwner != "sender" || !got.LeaseExpiresAt.Equal(expires) || got.Status != store.StatusPending {
		t.Fatalf("leased delivery stored with status %q, lease %q until %v; want pending, sender until %v",
			got.Status, got.LeaseOwner, got.LeaseExpiresAt, expires)
	}
	if c := h.claim(t, Base.Add(time.Second), 10, "other"); len(c) != 1 || c[0].ID != plain.ID {
		t.Fatalf("Claim during the leases = %q, want only the unleased %s", ids(c), plain.ID)
	}

	// The owner completes one without having claimed it.
	h.complete(t, completed.ID, "sender", 1, store.StatusSuccess, Base.Add(2*time.Second))
	if got := h.getDelivery(t, completed.ID); got.Status != store.StatusSuccess || got.Attempts != 1 || got.LeaseOwner != "" {
		t.Errorf("after Complete by the owner: status %q, %d attempts, lease %q; want success, 1, none", got.Status, got.Attempts, got.LeaseOwner)
	}
	// Another owner cannot.
	err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: expired.ID, Owner: "other", Attempt: NewAttempt(expired.ID, 1, 200),
		Status: store.StatusSuccess, Now: Base.Add(2 * time.Second),
	})
	wantErr(t, "Complete of another owner's leased delivery", err, store.ErrLeaseLost)

	// The owner releases one: due at once, for anyone.
	if err := h.s.Release(h.ctx, store.ReleaseParams{Owner: "sender", IDs: []string{released.ID}}); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if c := h.claim(t, Base.Add(3*time.Second), 10, "other"); len(c) != 1 || c[0].ID != released.ID {
		t.Fatalf("Claim after Release = %q, want %s", ids(c), released.ID)
	}
	// The last one is claimable once its lease expires, and then its
	// first owner has lost it.
	if c := h.claim(t, expires.Add(-time.Microsecond), 10, "third"); len(c) != 0 {
		t.Fatalf("Claim just before the lease expires = %q, want nothing", ids(c))
	}
	c := h.claim(t, expires, 10, "third")
	if len(c) != 1 || c[0].ID != expired.ID || c[0].LeaseOwner != "third" {
		t.Fatalf("Claim when the lease expires = %q, want %s leased by third", ids(c), expired.ID)
	}
	err = h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: expired.ID, Owner: "sender", Attempt: NewAttempt(expired.ID, 1, 200),
		Status: store.StatusSuccess, Now: expires,
	})
	wantErr(t, "Complete by the first owner after another claimed it", err, store.ErrLeaseLost)

	// A LeaseOwner without LeaseExpiresAt is refused, and stores nothing.
	bad, ok := leased(), NewDelivery(w, "workflow.completed")
	bad.LeaseExpiresAt = time.Time{}
	_, err = h.s.Enqueue(h.ctx, []*store.Delivery{ok, bad})
	wantErr(t, "Enqueue of a lease without expiry", err, store.ErrInvalid)
	if _, err := h.s.GetDelivery(h.ctx, ok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDelivery of the refused batch's other delivery: %v, want ErrNotFound", err)
	}
}

// Enqueuing a duplicate with a lease leases nothing: the stored delivery
// stays claimable, and the caller learns from the id that it was not stored.
func testEnqueueLeasedDuplicate(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	first := h.delivery(t, w, Base)
	dup := NewDelivery(w, first.EventType)
	dup.EventID = first.EventID
	dup.LeaseOwner, dup.LeaseExpiresAt = "sender", Base.Add(Lease)
	got := h.enqueue(t, dup)
	if len(got) != 1 || got[0] != first.ID {
		t.Fatalf("Enqueue of a leased duplicate = %q, want [%s]", got, first.ID)
	}
	if d := h.getDelivery(t, first.ID); d.LeaseOwner != "" {
		t.Errorf("the stored delivery is leased by %q after a leased duplicate", d.LeaseOwner)
	}
	if c := h.claim(t, Base, 10, "other"); len(c) != 1 || c[0].ID != first.ID {
		t.Errorf("Claim = %q, want %s", ids(c), first.ID)
	}
	if _, err := h.s.GetDelivery(h.ctx, dup.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDelivery of the duplicate's id: %v, want ErrNotFound", err)
	}
}
