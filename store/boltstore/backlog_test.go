package boltstore

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// backlogStore opens a store holding, for one webhook it returns, n due
// deliveries an hour old (a dead endpoint's backlog), and for each of
// others more webhooks one delivery due after the backlog's first ones.
func backlogStore(tb testing.TB, n, others int) (s *Store, dead *store.Webhook, want []string) {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "backlog.db"), &Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	ctx := tb.Context()
	dead = storetest.NewWebhook("tenant-backlog")
	if err := s.CreateWebhook(ctx, dead); err != nil {
		tb.Fatal(err)
	}
	var batch []*store.Delivery
	for i := range n {
		d := storetest.NewDelivery(dead, "workflow.completed")
		d.NextAttemptAt = storetest.Base.Add(-time.Hour + time.Duration(i)*time.Millisecond)
		if batch = append(batch, d); len(batch) == 1000 || i == n-1 {
			if _, err := s.Enqueue(ctx, batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i := range others {
		w := storetest.NewWebhook("tenant-backlog")
		if err := s.CreateWebhook(ctx, w); err != nil {
			tb.Fatal(err)
		}
		d := storetest.NewDelivery(w, "workflow.completed")
		// After the backlog's first maxSkipScan entries, in reverse order
		// of the webhooks' ids.
		d.NextAttemptAt = storetest.Base.Add(-time.Hour + time.Duration(2*maxSkipScan+others-i)*time.Millisecond)
		if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
			tb.Fatal(err)
		}
		want = append(want, d.ID)
	}
	slices.Reverse(want)
	return s, dead, want
}

// claimIDs claims at Base, skipping skip, and returns the ids it got.
func claimIDs(t *testing.T, s *Store, limit int, skip ...string) []string {
	t.Helper()
	ds, err := s.Claim(t.Context(), store.ClaimParams{Now: storetest.Base, Limit: limit, Lease: time.Minute, Owner: "o", SkipWebhooks: skip})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

// bucketLen returns how many entries a bucket of s holds.
func bucketLen(t *testing.T, s *Store, name []byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A claim that steps over a skipped webhook's backlog moves it to
// due_held, where the next claims do not step over it; the held
// deliveries (and the webhook's new ones, held too) are claimed in due
// order as soon as a claim does not skip the webhook, and once none is
// left (all completed) the webhook's deliveries go to due again.
func TestClaimPastBacklog(t *testing.T) {
	s, dead, want := backlogStore(t, 1000, 3)
	ctx := t.Context()
	if got := claimIDs(t, s, 2, dead.ID); !cmp.Equal(got, want[:2]) {
		t.Errorf("first claim = %v, want %v", got, want[:2])
	}
	stepped := 2*maxSkipScan + 1 // the backlog's entries before the second delivery claimed
	if n := bucketLen(t, s, bHeld); n < stepped {
		t.Errorf("due_held holds %d entries after the first claim, want the %d it stepped over", n, stepped)
	}
	heldBefore := bucketLen(t, s, bHeld)
	if got := claimIDs(t, s, 10, dead.ID); !cmp.Equal(got, want[2:]) {
		t.Errorf("second claim = %v, want %v", got, want[2:])
	}
	// The claimed deliveries stay in due, under their leases (which are
	// in memory), until they are completed.
	if n := bucketLen(t, s, bDue) + bucketLen(t, s, bHeld); n != 1000+len(want) {
		t.Errorf("due and due_held hold %d entries, want the backlog's 1000 and the %d claimed", n, len(want))
	}
	if got := claimIDs(t, s, 1, dead.ID); len(got) != 0 {
		t.Errorf("third claim = %v, want none", got)
	}

	// A new delivery of the held webhook is held too.
	late := storetest.NewDelivery(dead, "workflow.completed")
	late.NextAttemptAt = storetest.Base
	if _, err := s.Enqueue(ctx, []*store.Delivery{late}); err != nil {
		t.Fatal(err)
	}
	if n := bucketLen(t, s, bHeld); n <= heldBefore {
		t.Errorf("due_held holds %d entries after an enqueue of the held webhook, want more than %d", n, heldBefore)
	}

	// Without skipping, the whole backlog comes out in due order, held or
	// not, then the late delivery.
	var got []*store.Delivery
	for {
		ds, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 300, Lease: time.Minute, Owner: "o"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		got = append(got, ds...)
	}
	if len(got) != 1001 {
		t.Fatalf("claims without skipping got %d deliveries, want 1001", len(got))
	}
	for i := 1; i < len(got); i++ {
		if !got[i-1].NextAttemptAt.Before(got[i].NextAttemptAt) {
			t.Fatalf("claim order: %v then %v", got[i-1].NextAttemptAt, got[i].NextAttemptAt)
		}
	}
	if got[1000].ID != late.ID {
		t.Errorf("last claimed %s, want the late delivery %s", got[1000].ID, late.ID)
	}
	ids := want
	for _, d := range got {
		ids = append(ids, d.ID)
	}
	for _, id := range ids {
		err := s.Complete(ctx, store.CompleteParams{DeliveryID: id, Owner: "o", Status: store.StatusSuccess,
			Now: storetest.Base, Attempt: storetest.NewAttempt(id, 1, 200)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := bucketLen(t, s, bHeld) + bucketLen(t, s, bDue); n != 0 {
		t.Errorf("due and due_held hold %d entries once everything is completed", n)
	}

	// Nothing held: the webhook's next delivery goes to due.
	next := storetest.NewDelivery(dead, "workflow.completed")
	if _, err := s.Enqueue(ctx, []*store.Delivery{next}); err != nil {
		t.Fatal(err)
	}
	if n := bucketLen(t, s, bDue); n != 1 {
		t.Errorf("due holds %d entries after an enqueue, want 1", n)
	}
}

// BenchmarkClaimPastBacklog claims (and completes) one delivery of a
// webhook whose due deliveries come after 20k of a skipped one: what every
// claim paid while one endpoint hung and its deliveries piled up.
func BenchmarkClaimPastBacklog(b *testing.B) {
	s, dead, _ := backlogStore(b, 20_000, 0)
	ctx := b.Context()
	w := storetest.NewWebhook("tenant-backlog")
	if err := s.CreateWebhook(ctx, w); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		d := storetest.NewDelivery(w, "workflow.completed")
		d.NextAttemptAt = storetest.Base
		if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
			b.Fatal(err)
		}
		ds, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: time.Minute, Owner: "o", SkipWebhooks: []string{dead.ID}})
		if err != nil || len(ds) != 1 {
			b.Fatalf("Claim = %d deliveries, %v", len(ds), err)
		}
		a := storetest.NewAttempt(d.ID, 1, 200)
		if err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Status: store.StatusSuccess, Now: storetest.Base, Attempt: a}); err != nil {
			b.Fatal(err)
		}
	}
}

// When only the skipped webhooks have deliveries pending, a claim stops
// after a few of them and holds nothing apart: there is nothing else to
// find, and moving a backlog that will be claimed soon (a healthy webhook at
// its limit draining it) would only cost writes.
func TestClaimOnlySkipped(t *testing.T) {
	s, dead, _ := backlogStore(t, 1000, 0)
	if got := claimIDs(t, s, 5, dead.ID); len(got) != 0 {
		t.Errorf("claim skipping the only webhook = %v, want none", got)
	}
	if n := bucketLen(t, s, bHeld); n != 0 {
		t.Errorf("due_held holds %d entries, want none", n)
	}
	if got := claimIDs(t, s, 5); len(got) != 5 {
		t.Errorf("claim without skipping = %d deliveries, want 5", len(got))
	}
}

// The conformance suite on stores that hold deliveries apart at every
// chance (a claim that steps over one skipped delivery moves up to three):
// every claim order, lease and skip rule holds with deliveries held.
func TestConformanceHolding(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "holding.db")
		s, err := Open(path, &Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			s.Close()
			if t.Failed() {
				return
			}
			if err := checkFile(path); err != nil {
				t.Errorf("file after %s: %v", t.Name(), err)
			}
		})
		s.hold = holding{after: 0, most: 3}
		return s
	})
}
