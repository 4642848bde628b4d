package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

var claimTests = []subtest{
	{"Order", testClaimOrder},
	{"Lease", testClaimLease},
	{"SkipWebhooks", testClaimSkipWebhooks},
	{"SkipBacklog", testClaimSkipBacklog},
	{"LeaseExpiry", testClaimLeaseExpiry},
	{"ClockBehind", testClaimClockBehind},
	{"Release", testRelease},
	{"Concurrent", testClaimConcurrent},
	{"InactiveWebhook", testClaimInactiveWebhook},
	{"Engine", testEngine},
	{"Model1", modelTest(1)},
	{"Model2", modelTest(2)},
	{"Model3", modelTest(3)},
}

func ids(ds []*store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func testClaimOrder(t *testing.T, h *harness) {
	tn := h.tenant()
	w1 := h.webhook(t, tn, nil)
	w2 := h.webhook(t, tn, nil)
	// Enqueued out of due order, across two webhooks, with ties.
	late := h.delivery(t, w1, Base.Add(3*time.Second))
	tieA := h.delivery(t, w2, Base.Add(time.Second))
	early := h.delivery(t, w2, Base.Add(-time.Hour))
	tieB := h.delivery(t, w1, Base.Add(time.Second))
	future := h.delivery(t, w1, Base.Add(10*time.Second)) // due before the first leases expire
	done := h.delivery(t, w2, Base.Add(-2*time.Hour))
	h.finish(t, done, store.StatusSuccess, Base.Add(-time.Hour))

	ties := []string{tieA.ID, tieB.ID}
	slices.Sort(ties)
	want := append([]string{early.ID}, ties...)
	want = append(want, late.ID)

	now := Base.Add(3 * time.Second) // late is due exactly now
	got := h.claim(t, now, 2, "o1")
	if d := diff(want[:2], ids(got)); d != "" {
		t.Errorf("first Claim (-want +got):\n%s", d)
	}
	got = h.claim(t, now, 10, "o2")
	if d := diff(want[2:], ids(got)); d != "" {
		t.Errorf("second Claim (-want +got):\n%s", d)
	}
	if got := h.claim(t, now, 10, "o3"); len(got) != 0 {
		t.Errorf("third Claim returned %q, want nothing (future and finished deliveries are not due)", ids(got))
	}
	got = h.claim(t, Base.Add(10*time.Second), 10, "o4")
	if d := diff([]string{future.ID}, ids(got)); d != "" {
		t.Errorf("Claim once the future delivery is due (-want +got):\n%s", d)
	}
}

func testClaimLease(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d := h.delivery(t, w, Base)
	want := h.getDelivery(t, d.ID)
	now := Base.Add(time.Second)
	got, err := h.s.Claim(h.ctx, store.ClaimParams{Now: now, Limit: 5, Lease: 45 * time.Second, Owner: "worker-1"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim = %d deliveries, %v; want 1", len(got), err)
	}
	want.LeaseOwner = "worker-1"
	want.LeaseExpiresAt = now.Add(45 * time.Second)
	if dd := diff(want, got[0]); dd != "" {
		t.Errorf("claimed delivery (-want +got):\n%s", dd)
	}
	if dd := diff(want, h.getDelivery(t, d.ID)); dd != "" {
		t.Errorf("stored delivery after Claim (-want +got):\n%s", dd)
	}
}

func testClaimSkipWebhooks(t *testing.T, h *harness) {
	tn := h.tenant()
	busy := h.webhook(t, tn, nil)
	busy2 := h.webhook(t, tn, nil)
	free := h.webhook(t, tn, nil)
	for range 5 {
		h.delivery(t, busy, Base.Add(-time.Minute)) // older than free's, must still be skipped
		h.delivery(t, busy2, Base.Add(-time.Minute))
	}
	f1 := h.delivery(t, free, Base)
	f2 := h.delivery(t, free, Base)
	got := h.claim(t, Base, 10, "o", busy.ID, busy2.ID)
	if d := diff([]string{f1.ID, f2.ID}, ids(got)); d != "" {
		t.Errorf("Claim skipping two webhooks (-want +got):\n%s", d)
	}
	got = h.claim(t, Base, 3, "o", busy.ID)
	if len(got) != 3 {
		t.Fatalf("Claim skipping one webhook = %d deliveries, want 3", len(got))
	}
	for _, d := range got {
		if d.WebhookID != busy2.ID {
			t.Errorf("Claim skipping %s returned a delivery of %s", busy.ID, d.WebhookID)
		}
	}
}

// A webhook passed over with a long backlog of due deliveries (a dead
// endpoint's, at its concurrency limit) changes nothing in what Claim
// returns: the other webhooks' due deliveries, in due order, however many
// of the backlog's come before, between and after them.
func testClaimSkipBacklog(t *testing.T, h *harness) {
	tn := h.tenant()
	dead := h.webhook(t, tn, nil)
	a := h.webhook(t, tn, nil)
	b := h.webhook(t, tn, nil)
	backlog := make([]*store.Delivery, 200)
	for i := range backlog {
		backlog[i] = NewDelivery(dead, "workflow.completed")
		backlog[i].NextAttemptAt = Base.Add(-100*time.Minute + time.Duration(i)*30*time.Second)
	}
	h.enqueue(t, backlog...)
	a1 := h.delivery(t, a, Base.Add(-50*time.Minute))
	b1 := h.delivery(t, b, Base.Add(-40*time.Minute))
	a2 := h.delivery(t, a, Base.Add(-30*time.Minute))
	b2 := h.delivery(t, b, Base.Add(-time.Minute))
	h.delivery(t, a, Base.Add(time.Minute)) // not yet due

	got := h.claim(t, Base, 3, "o", dead.ID)
	if d := diff([]string{a1.ID, b1.ID, a2.ID}, ids(got)); d != "" {
		t.Errorf("Claim of 3 passing over a backlog (-want +got):\n%s", d)
	}
	got = h.claim(t, Base, 10, "o", dead.ID)
	if d := diff([]string{b2.ID}, ids(got)); d != "" {
		t.Errorf("Claim of the rest passing over a backlog (-want +got):\n%s", d)
	}
	got = h.claim(t, Base, 2, "o")
	if d := diff([]string{backlog[0].ID, backlog[1].ID}, ids(got)); d != "" {
		t.Errorf("Claim without skipping (-want +got):\n%s", d)
	}
}

func testClaimLeaseExpiry(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d := h.delivery(t, w, Base)
	if got := h.claim(t, Base, 1, "first"); len(got) != 1 {
		t.Fatalf("Claim = %d, want 1", len(got))
	}
	if got := h.claim(t, Base.Add(Lease-time.Microsecond), 1, "second"); len(got) != 0 {
		t.Fatalf("delivery claimed again while its lease is live")
	}
	// The lease expires at LeaseExpiresAt: claimable at exactly that instant.
	got := h.claim(t, Base.Add(Lease), 1, "second")
	if len(got) != 1 || got[0].ID != d.ID || got[0].LeaseOwner != "second" {
		t.Fatalf("Claim after the lease expired = %q, want %s leased by second", ids(got), d.ID)
	}
	before := h.getDelivery(t, d.ID)
	err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "first", Attempt: NewAttempt(d.ID, 1, 200),
		Status: store.StatusSuccess, Now: Base.Add(Lease + time.Second),
	})
	wantErr(t, "Complete by the owner of an expired, reclaimed lease", err, store.ErrLeaseLost)
	if dd := diff(before, h.getDelivery(t, d.ID)); dd != "" {
		t.Errorf("refused Complete changed the delivery (-want +got):\n%s", dd)
	}
	if as, err := h.s.ListAttempts(h.ctx, d.ID); err != nil || len(as) != 0 {
		t.Errorf("refused Complete logged %d attempts (%v)", len(as), err)
	}
	h.complete(t, d.ID, "second", 1, store.StatusSuccess, Base.Add(Lease+time.Second))

	// An owner whose lease expired unclaimed may still complete.
	d2 := h.delivery(t, w, Base)
	if got := h.claim(t, Base, 1, "slow"); len(got) != 1 || got[0].ID != d2.ID {
		t.Fatalf("Claim = %q, want %s", ids(got), d2.ID)
	}
	h.complete(t, d2.ID, "slow", 1, store.StatusSuccess, Base.Add(10*Lease))
}

// testClaimClockBehind: replicas' clocks disagree. A Claim whose Now is
// past a lease's expiry finds it expired; a later Claim by a replica whose
// clock is behind must still see that lease as live, and its owner may
// still complete the delivery.
func testClaimClockBehind(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d1 := h.delivery(t, w, Base)
	d2 := h.delivery(t, w, Base)
	if got := h.claim(t, Base, 2, "a"); len(got) != 2 {
		t.Fatalf("Claim = %q, want both", ids(got))
	}
	// A replica ahead of the others: both leases have expired for it, and it
	// takes the first delivery only.
	if got := h.claim(t, Base.Add(Lease), 1, "b"); len(got) != 1 || got[0].ID != d1.ID {
		t.Fatalf("Claim at the leases' expiry = %q, want %s", ids(got), d1.ID)
	}
	// A replica behind: d2's lease, owned by a, is live for it.
	if got := h.claim(t, Base.Add(Lease-time.Millisecond), 5, "c"); len(got) != 0 {
		t.Fatalf("Claim with a clock behind the lease's expiry took %q", ids(got))
	}
	h.complete(t, d2.ID, "a", 1, store.StatusSuccess, Base.Add(Lease-time.Millisecond))
	if got := h.getDelivery(t, d2.ID); got.Status != store.StatusSuccess || got.LeaseOwner != "" {
		t.Errorf("d2 after its owner completed it: status %s, lease owner %q", got.Status, got.LeaseOwner)
	}
}

func testRelease(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	a := h.delivery(t, w, Base)
	b := h.delivery(t, w, Base)
	c := h.delivery(t, w, Base.Add(time.Hour))
	if got := h.claim(t, Base, 10, "owner"); len(got) != 2 {
		t.Fatalf("Claim = %d, want 2", len(got))
	}
	// Another owner's release, unknown ids and unleased ids are ignored.
	err := h.s.Release(h.ctx, store.ReleaseParams{Owner: "intruder", IDs: []string{a.ID, b.ID}})
	if err != nil {
		t.Fatalf("Release by another owner: %v", err)
	}
	if got := h.claim(t, Base, 10, "other"); len(got) != 0 {
		t.Fatalf("another owner's Release freed %q", ids(got))
	}
	err = h.s.Release(h.ctx, store.ReleaseParams{Owner: "owner", IDs: []string{a.ID, NewID("del_"), c.ID}})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	got := h.getDelivery(t, a.ID)
	if got.LeaseOwner != "" || !got.LeaseExpiresAt.IsZero() || !got.NextAttemptAt.Equal(Base) || got.Status != store.StatusPending {
		t.Errorf("released delivery: owner %q until %v, due %v, %s; want no lease, due at Base, pending",
			got.LeaseOwner, got.LeaseExpiresAt, got.NextAttemptAt, got.Status)
	}
	// Claimable at once: same Now as the first claim.
	claimed := h.claim(t, Base, 10, "other")
	if d := diff([]string{a.ID}, ids(claimed)); d != "" {
		t.Errorf("Claim after Release (-want +got):\n%s", d)
	}
	if err := h.s.Release(h.ctx, store.ReleaseParams{Owner: "owner"}); err != nil {
		t.Errorf("Release of no ids: %v", err)
	}
}

func testClaimConcurrent(t *testing.T, h *harness) {
	tn := h.tenant()
	var hooks []*store.Webhook
	for range 5 {
		hooks = append(hooks, h.webhook(t, tn, nil))
	}
	n := h.opts.ClaimDeliveries
	var batch []*store.Delivery
	for i := range n {
		d := NewDelivery(hooks[i%len(hooks)], "workflow.completed")
		d.NextAttemptAt = Base.Add(time.Duration(i%17) * time.Millisecond)
		batch = append(batch, d)
		if len(batch) == 100 || i == n-1 {
			h.enqueue(t, batch...)
			batch = nil
		}
	}
	now := Base.Add(time.Second)
	var (
		mu     sync.Mutex
		claims int
		owner  = make(map[string]string)
		wg     sync.WaitGroup
	)
	for g := range h.opts.Claimers {
		name := fmt.Sprintf("claimer-%d", g)
		wg.Go(func() {
			for {
				ds, err := h.s.Claim(h.ctx, store.ClaimParams{Now: now, Limit: 1 + g%7, Lease: time.Hour, Owner: name})
				if err != nil {
					t.Errorf("%s: Claim: %v", name, err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				claims += len(ds)
				if claims > n {
					mu.Unlock()
					t.Errorf("%d claims of %d deliveries under live leases", claims, n)
					return
				}
				for _, d := range ds {
					if prev, ok := owner[d.ID]; ok {
						t.Errorf("delivery %s claimed by %s and %s under a live lease", d.ID, prev, name)
					}
					owner[d.ID] = name
					if d.LeaseOwner != name {
						t.Errorf("%s claimed %s but it says LeaseOwner %q", name, d.ID, d.LeaseOwner)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(owner) != n {
		t.Errorf("claimers got %d distinct deliveries, want %d", len(owner), n)
	}
	// Every lease is recorded with its claimer.
	for id, name := range owner {
		d := h.getDelivery(t, id)
		if d.LeaseOwner != name {
			t.Errorf("delivery %s claimed by %s is leased by %q", id, name, d.LeaseOwner)
			break
		}
	}
	// Completing concurrently: each owner completes its own; the others fail.
	var errs sync.Map
	var wg2 sync.WaitGroup
	i := 0
	for id, name := range owner {
		if i++; i > 64 {
			break
		}
		wg2.Go(func() {
			thief := h.s.Complete(h.ctx, store.CompleteParams{DeliveryID: id, Owner: "thief", Attempt: NewAttempt(id, 1, 200), Status: store.StatusSuccess, Now: now})
			if !errors.Is(thief, store.ErrLeaseLost) {
				errs.Store(id+" thief", thief)
			}
			if err := h.s.Complete(h.ctx, store.CompleteParams{DeliveryID: id, Owner: name, Attempt: NewAttempt(id, 1, 200), Status: store.StatusSuccess, Now: now}); err != nil {
				errs.Store(id, err)
			}
		})
	}
	wg2.Wait()
	errs.Range(func(k, v any) bool {
		t.Errorf("concurrent Complete %v: %v", k, v)
		return true
	})
}

// testClaimInactiveWebhook pins down that the store does not filter on the
// webhook's Active flag when enqueuing or claiming: the dispatcher, which
// loads the webhook to send anyway, decides what to do.
func testClaimInactiveWebhook(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), func(w *store.Webhook) { w.Active = false })
	d := h.delivery(t, w, Base)
	got := h.claim(t, Base, 10, "o")
	if dd := diff([]string{d.ID}, ids(got)); dd != "" {
		t.Errorf("Claim of an inactive webhook's delivery (-want +got):\n%s", dd)
	}
}

// testEngine runs the dispatcher's loop against the store: enqueuers and
// workers at once, every delivery failing twice and then succeeding.
func testEngine(t *testing.T, h *harness) {
	const attempts = 3
	tn := h.tenant()
	var hooks []*store.Webhook
	for range 3 {
		hooks = append(hooks, h.webhook(t, tn, nil))
	}
	n := max(h.opts.ClaimDeliveries/2, 10)
	ctx, cancel := context.WithTimeout(h.ctx, 60*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		enqueued []string
		finished int
		wg       sync.WaitGroup
	)
	for e := range 2 {
		wg.Go(func() {
			for i := e; i < n; i += 2 * 5 {
				var batch []*store.Delivery
				for j := i; j < min(i+2*5, n); j += 2 {
					batch = append(batch, NewDelivery(hooks[j%len(hooks)], "workflow.completed"))
				}
				got, err := h.s.Enqueue(ctx, batch)
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					cancel()
					return
				}
				mu.Lock()
				enqueued = append(enqueued, got...)
				mu.Unlock()
			}
		})
	}
	for g := range 4 {
		owner := fmt.Sprintf("worker-%d", g)
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				done := finished == n
				mu.Unlock()
				if done {
					return
				}
				ds, err := h.s.Claim(ctx, store.ClaimParams{Now: Base, Limit: 4, Lease: time.Hour, Owner: owner})
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("%s: Claim: %v", owner, err)
						cancel()
					}
					return
				}
				if len(ds) == 0 {
					time.Sleep(time.Millisecond) // nothing due yet: the enqueuers are behind
					continue
				}
				for _, d := range ds {
					n := d.Attempts + 1
					p := store.CompleteParams{DeliveryID: d.ID, Owner: owner, Now: Base.Add(time.Duration(n) * time.Second)}
					if n < attempts {
						p.Attempt, p.Status, p.NextAttemptAt = NewAttempt(d.ID, n, 500), store.StatusPending, Base
					} else {
						p.Attempt, p.Status = NewAttempt(d.ID, n, 200), store.StatusSuccess
					}
					if err := h.s.Complete(ctx, p); err != nil {
						t.Errorf("%s: Complete(%s #%d): %v", owner, d.ID, n, err)
						cancel()
						return
					}
					if p.Status == store.StatusSuccess {
						mu.Lock()
						finished++
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if ctx.Err() != nil {
		t.Fatalf("the engine did not finish %d deliveries in time (%d done)", n, finished)
	}
	if len(enqueued) != n {
		t.Fatalf("enqueued %d, want %d", len(enqueued), n)
	}
	for _, id := range enqueued {
		d := h.getDelivery(t, id)
		if d.Status != store.StatusSuccess || d.Attempts != attempts || d.RoundAttempts != attempts || d.LastStatusCode != 200 {
			t.Errorf("delivery %s: %s after %d (%d) attempts, last status %d; want success after %d",
				id, d.Status, d.Attempts, d.RoundAttempts, d.LastStatusCode, attempts)
		}
	}
	var total store.Counts
	for _, w := range hooks {
		c, err := h.s.CountDeliveries(h.ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		total.Pending += c.Pending
		total.Success += c.Success
		total.Failed += c.Failed
	}
	if total != (store.Counts{Success: int64(n)}) {
		t.Errorf("counts over all webhooks = %+v, want %d successes", total, n)
	}
}
