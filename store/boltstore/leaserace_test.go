package boltstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// oneCommit runs the calls, each a function that makes one group-commit
// write (Enqueue, Complete, s.write), in one transaction of the group
// commit, in the order given, and returns their errors.
func oneCommit(t *testing.T, s *Store, calls ...func() error) []error {
	t.Helper()
	g := &s.commits
	queued := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue)
	}
	// A leader is running: the calls queue up until it hands over.
	g.mu.Lock()
	if g.running || len(g.queue) > 0 {
		g.mu.Unlock()
		t.Fatal("oneCommit: the group commit is busy")
	}
	g.running = true
	g.mu.Unlock()
	errs := make([]chan error, len(calls))
	for i, call := range calls {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- call() }()
		for deadline := time.Now().Add(10 * time.Second); queued() < i+1; {
			if time.Now().After(deadline) {
				t.Fatalf("oneCommit: call %d did not queue", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	g.mu.Lock()
	first := g.queue[0]
	g.mu.Unlock()
	first.ch <- commitMsg{lead: true}
	out := make([]error, len(calls))
	for i := range calls {
		out[i] = <-errs[i]
	}
	return out
}

// claimedByA opens a store with one delivery, which owner "a" has
// claimed at now, for a minute.
func claimedByA(t *testing.T) (s *Store, d *store.Delivery, now time.Time) {
	t.Helper()
	s, w := leaseStore(t)
	d = enqueueDue(t, s, w, 1)[0]
	now = storetest.Base.Add(time.Minute)
	got, err := s.Claim(t.Context(), store.ClaimParams{Now: now, Limit: 1, Lease: time.Minute, Owner: "a"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim = %v, %v", idsOf(got), err)
	}
	return s, d, now
}

// TestCompleteCommitKeepsNewLease: a Complete that schedules a retry ends
// its owner's lease once its transaction has committed. A claim that reads
// the committed file before that (bbolt runs the commit handlers after it
// has let readers and writers in) may lease the delivery again, its first
// lease having expired; ending the lease must not end that new one, or a
// third claimer receives the delivery while the second's lease is live.
func TestCompleteCommitKeepsNewLease(t *testing.T) {
	ctx := t.Context()
	s, d, now := claimedByA(t)
	// a's lease has expired by later; its Complete schedules a retry due
	// by then.
	later := now.Add(10 * time.Minute)
	var second []*store.Delivery
	var secondErr error
	errs := oneCommit(t, s,
		func() error {
			return s.write(ctx, func(w *wtx) error {
				w.OnCommit(func() {
					second, secondErr = s.Claim(ctx, store.ClaimParams{Now: later, Limit: 1, Lease: time.Minute, Owner: "b"})
				})
				return nil
			})
		},
		func() error {
			return s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "a", Status: store.StatusPending,
				NextAttemptAt: now.Add(2 * time.Minute), Now: later, Attempt: storetest.NewAttempt(d.ID, 1, 503)})
		})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if secondErr != nil || len(second) != 1 {
		t.Fatalf("Claim after the commit = %v, %v; want the retried delivery", idsOf(second), secondErr)
	}
	// b's lease is live until later+1m: nobody else may claim it.
	third, err := s.Claim(ctx, store.ClaimParams{Now: later, Limit: 1, Lease: time.Minute, Owner: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(third) != 0 {
		t.Errorf("delivery %s handed to c while b's lease is live", d.ID)
	}
	err = s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "b", Status: store.StatusSuccess,
		Now: later, Attempt: storetest.NewAttempt(d.ID, 2, 200)})
	if err != nil {
		t.Errorf("Complete by b, whose lease is live: %v", err)
	}
}

// TestCompleteTwiceInOneCommit: a Complete ends the lease, so a second
// Complete by the same owner gets ErrLeaseLost (as the conformance suite
// asks of two calls in turn) also when both share a commit.
func TestCompleteTwiceInOneCommit(t *testing.T) {
	ctx := t.Context()
	s, d, now := claimedByA(t)
	complete := func(n int) func() error {
		return func() error {
			return s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "a", Status: store.StatusPending,
				NextAttemptAt: now.Add(time.Hour), Now: now, Attempt: storetest.NewAttempt(d.ID, n, 503)})
		}
	}
	errs := oneCommit(t, s, complete(1), complete(2))
	if errs[0] != nil {
		t.Fatalf("first Complete: %v", errs[0])
	}
	if !errors.Is(errs[1], store.ErrLeaseLost) {
		t.Errorf("second Complete in the same commit: %v, want ErrLeaseLost", errs[1])
	}
	if as, err := s.ListAttempts(ctx, d.ID); err != nil || len(as) != 1 {
		t.Errorf("ListAttempts = %d attempts, %v; want 1", len(as), err)
	}
}

// TestGetDeliveryFinishedHasNoLease: a delivery that a Complete finished
// is shown without a lease, also when it is read between the commit and
// the end of the lease in the table.
func TestGetDeliveryFinishedHasNoLease(t *testing.T) {
	ctx := t.Context()
	s, d, now := claimedByA(t)
	var read *store.Delivery
	var listed []*store.Delivery
	var readErr error
	errs := oneCommit(t, s,
		func() error {
			return s.write(ctx, func(w *wtx) error {
				w.OnCommit(func() {
					read, readErr = s.GetDelivery(ctx, d.ID)
					if readErr == nil {
						listed, _, readErr = s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: d.Tenant, Limit: 10})
					}
				})
				return nil
			})
		},
		func() error {
			return s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "a", Status: store.StatusSuccess,
				Now: now, Attempt: storetest.NewAttempt(d.ID, 1, 200)})
		})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if readErr != nil {
		t.Fatal(readErr)
	}
	if read.Status != store.StatusSuccess || read.LeaseOwner != "" || !read.LeaseExpiresAt.IsZero() {
		t.Errorf("GetDelivery after the commit: status %s, lease %q until %v; want success without a lease",
			read.Status, read.LeaseOwner, read.LeaseExpiresAt)
	}
	for _, l := range listed {
		if l.LeaseOwner != "" || !l.LeaseExpiresAt.IsZero() {
			t.Errorf("ListDeliveries after the commit: %s %s with lease %q", l.ID, l.Status, l.LeaseOwner)
		}
	}
}

// TestFailedCompleteLeavesDeliveryClaimable: a Complete that fails after
// it has marked its delivery taken (here: disabling a webhook whose record
// cannot be read) is rolled back, and so is its mark: once its owner
// releases it, the delivery, still pending and due, is claimable at once,
// without waiting for some other commit.
func TestFailedCompleteLeavesDeliveryClaimable(t *testing.T) {
	ctx := t.Context()
	s, w := leaseStore(t)
	d := enqueueDue(t, s, w, 1)[0]
	now := storetest.Base.Add(time.Minute)
	p := store.ClaimParams{Now: now, Limit: 1, Lease: time.Minute, Owner: "a"}
	if got, err := s.Claim(ctx, p); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %v, %v", idsOf(got), err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bWebhooks).Put([]byte(w.ID), []byte{1, 200, 200, 200})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "a", Status: store.StatusFailed,
		DisableWebhook: "410 Gone", Now: now, Attempt: storetest.NewAttempt(d.ID, 1, 410)})
	if err == nil {
		t.Fatal("Complete disabling an unreadable webhook succeeded")
	}
	if got, err := s.GetDelivery(ctx, d.ID); err != nil || got.Status != store.StatusPending {
		t.Fatalf("GetDelivery after the failed Complete = %+v, %v; want it pending", got, err)
	}
	if err := s.Release(ctx, store.ReleaseParams{Owner: "a", IDs: []string{d.ID}}); err != nil {
		t.Fatal(err)
	}
	p.Owner = "b"
	if got, err := s.Claim(ctx, p); err != nil || len(got) != 1 {
		t.Errorf("Claim after the failed Complete and the Release = %v, %v; want %s", idsOf(got), err, d.ID)
	}
}

// TestDisableAfterCompleteInOneCommit: a Complete that disables its
// webhook fails the webhook's other pending deliveries that are not
// leased, among them one whose lease an earlier Complete in the same
// commit ended (as when the two commit in turn).
func TestDisableAfterCompleteInOneCommit(t *testing.T) {
	ctx := t.Context()
	s, w := leaseStore(t)
	ds := enqueueDue(t, s, w, 2)
	now := storetest.Base.Add(time.Minute)
	got, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 2, Lease: time.Minute, Owner: "a"})
	if err != nil || len(got) != 2 {
		t.Fatalf("Claim = %v, %v", idsOf(got), err)
	}
	errs := oneCommit(t, s,
		func() error {
			return s.Complete(ctx, store.CompleteParams{DeliveryID: ds[0].ID, Owner: "a", Status: store.StatusPending,
				NextAttemptAt: now.Add(time.Hour), Now: now, Attempt: storetest.NewAttempt(ds[0].ID, 1, 503)})
		},
		func() error {
			return s.Complete(ctx, store.CompleteParams{DeliveryID: ds[1].ID, Owner: "a", Status: store.StatusFailed,
				DisableWebhook: "410 Gone", Now: now, Attempt: storetest.NewAttempt(ds[1].ID, 1, 410)})
		})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if d, err := s.GetDelivery(ctx, ds[0].ID); err != nil || d.Status != store.StatusFailed {
		t.Errorf("the retried delivery after the webhook's disabling: %v; want it failed", describe(d, err))
	}
}

func describe(d *store.Delivery, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s, attempts %d, lease %q", d.Status, d.Attempts, d.LeaseOwner)
}

// TestEnqueueLeasedRunAgainFails: the group commit runs an Enqueue's
// function again when another call in its commit fails, and what the
// Enqueue reads may have changed by then: here a call before it in the
// commit deletes the webhook on the second run, and the Enqueue fails on
// it. The lease its first run granted is taken back too.
func TestEnqueueLeasedRunAgainFails(t *testing.T) {
	ctx := t.Context()
	s, w := leaseStore(t)
	d := storetest.NewDelivery(w, "workflow.completed")
	d.LeaseOwner, d.LeaseExpiresAt = "a", storetest.Base.Add(time.Hour)
	errFail := errors.New("failing call")
	runs, fails := 0, 0
	errs := oneCommit(t, s,
		func() error {
			return s.write(ctx, func(w2 *wtx) error {
				if runs++; runs >= 2 {
					return w2.Bucket(bWebhooks).Delete([]byte(w.ID))
				}
				return nil
			})
		},
		func() error {
			_, err := s.Enqueue(ctx, []*store.Delivery{d})
			return err
		},
		func() error {
			return s.write(ctx, func(*wtx) error {
				fails++
				return errFail
			})
		})
	if runs < 3 || fails != 1 || !errors.Is(errs[2], errFail) {
		t.Fatalf("the commit ran the first call %d times and the failing one %d times (%v), want 3 and 1", runs, fails, errs[2])
	}
	if errs[0] != nil {
		t.Fatalf("the webhook's deletion: %v", errs[0])
	}
	if !errors.Is(errs[1], store.ErrNotFound) {
		t.Fatalf("Enqueue: %v, want ErrNotFound", errs[1])
	}
	s.leases.mu.Lock()
	n := len(s.leases.leases)
	s.leases.mu.Unlock()
	if n != 0 {
		t.Errorf("%d leases left by an Enqueue that failed", n)
	}
}

// cancelLater is a context whose Err reports nil n times, then Canceled.
type cancelLater struct {
	context.Context
	n int
}

func (c *cancelLater) Err() error {
	if c.n > 0 {
		c.n--
		return nil
	}
	return context.Canceled
}

// TestCanceledDeleteWebhookLeavesDeliveriesClaimable: a DeleteWebhook
// canceled half way through marks the deliveries it removed so far, and
// rolls back: they are pending and due as before, and claimable at once.
func TestCanceledDeleteWebhookLeavesDeliveriesClaimable(t *testing.T) {
	ctx := t.Context()
	s, w := leaseStore(t)
	const n = 300 // DeleteWebhook checks its context every 256 deliveries
	enqueueDue(t, s, w, n)
	err := s.DeleteWebhook(&cancelLater{Context: ctx, n: 1}, w.ID)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DeleteWebhook with a context canceled on the way: %v, want Canceled", err)
	}
	got, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(time.Hour), Limit: store.MaxPageLimit, Lease: time.Minute, Owner: "a"})
	if err != nil || len(got) != min(n, store.MaxPageLimit) {
		t.Errorf("Claim after the canceled DeleteWebhook = %d deliveries, %v; want %d", len(got), err, min(n, store.MaxPageLimit))
	}
}
