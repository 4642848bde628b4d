package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// leaseStore opens a store whose file fits its initial memory map, so that
// a test can hold a read transaction open across commits (a commit that
// grows the map waits for the readers).
func leaseStore(t *testing.T) (*Store, *store.Webhook) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "leases.db"), &Options{NoSync: true, InitialMmapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := storetest.NewWebhook("tenant-leases")
	if err := s.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	return s, w
}

func enqueueDue(t *testing.T, s *Store, w *store.Webhook, n int) []*store.Delivery {
	t.Helper()
	var ds []*store.Delivery
	for i := range n {
		d := storetest.NewDelivery(w, "workflow.completed")
		d.NextAttemptAt = storetest.Base.Add(time.Duration(i) * time.Millisecond)
		ds = append(ds, d)
	}
	if _, err := s.Enqueue(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestClaimOlderSnapshot: a claim reads a snapshot, which can predate the
// commit of a Complete that took a delivery out of due (and ended its
// lease): the claim must not take that delivery, finished or scheduled
// for later, from its snapshot's due index.
func TestClaimOlderSnapshot(t *testing.T) {
	for _, status := range []store.Status{store.StatusSuccess, store.StatusPending} {
		t.Run(string(status), func(t *testing.T) {
			ctx := t.Context()
			s, w := leaseStore(t)
			ds := enqueueDue(t, s, w, 2)
			now := storetest.Base.Add(time.Minute)
			p := store.ClaimParams{Now: now, Limit: 1, Lease: time.Minute, Owner: "a"}
			got, err := s.Claim(ctx, p)
			if err != nil || len(got) != 1 || got[0].ID != ds[0].ID {
				t.Fatalf("Claim = %v, %v; want the first delivery", idsOf(got), err)
			}

			// A claim opens its snapshot; the Complete commits; the claim
			// then reads its snapshot, where ds[0] is still due.
			tx, done, err := s.leases.snapshot(s.db)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Complete(ctx, store.CompleteParams{DeliveryID: ds[0].ID, Owner: "a", Status: status,
				NextAttemptAt: now.Add(time.Hour), Now: now, Attempt: storetest.NewAttempt(ds[0].ID, 1, 503)})
			if err != nil {
				done()
				t.Fatal(err)
			}
			p.Owner, p.Limit = "b", 10
			late, _, err := s.claimIn(ctx, tx, p, nil)
			done()
			if err != nil {
				t.Fatal(err)
			}
			if ids := idsOf(late); len(ids) != 1 || ids[0] != ds[1].ID {
				t.Errorf("claim from a snapshot older than the Complete took %v, want only %s", ids, ds[1].ID)
			}
			// A claim that reads after the commit agrees.
			if got, err := s.Claim(ctx, p); err != nil || len(got) != 0 {
				t.Errorf("Claim after the Complete = %v, %v; want none", idsOf(got), err)
			}
		})
	}
}

// TestLeasesEndWithTheirRecord: the table holds a lease from its claim to
// the commit that records the attempt, and the marks that guard older
// snapshots are dropped once no snapshot needs them, however many
// deliveries pass through.
func TestLeasesEndWithTheirRecord(t *testing.T) {
	ctx := t.Context()
	s, w := leaseStore(t)
	const n = 3000
	ds := enqueueDue(t, s, w, n)
	now := storetest.Base.Add(time.Hour)
	for len(ds) > 0 {
		got, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 100, Lease: time.Minute, Owner: "a"})
		if err != nil || len(got) == 0 {
			t.Fatalf("Claim = %d, %v", len(got), err)
		}
		for _, d := range got {
			err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "a", Status: store.StatusSuccess,
				Now: now, Attempt: storetest.NewAttempt(d.ID, 1, 200)})
			if err != nil {
				t.Fatal(err)
			}
		}
		ds = ds[len(got):]
	}
	s.leases.mu.Lock()
	leases, marks := len(s.leases.leases), len(s.leases.moved)
	s.leases.mu.Unlock()
	if leases != 0 {
		t.Errorf("%d leases left after every delivery was recorded", leases)
	}
	if marks >= 2*minPrune {
		t.Errorf("%d marks left after %d completions, want fewer than %d", marks, n, 2*minPrune)
	}
}

// TestEnqueueLeasedFails: the leases of an Enqueue that fails are taken
// back.
func TestEnqueueLeasedFails(t *testing.T) {
	s, w := leaseStore(t)
	d := storetest.NewDelivery(w, "workflow.completed")
	d.LeaseOwner, d.LeaseExpiresAt = "a", storetest.Base.Add(time.Minute)
	orphan := storetest.NewDelivery(&store.Webhook{ID: "wh_missing", Tenant: w.Tenant}, "workflow.completed")
	if _, err := s.Enqueue(t.Context(), []*store.Delivery{d, orphan}); err == nil {
		t.Fatal("Enqueue of a delivery of a missing webhook succeeded")
	}
	s.leases.mu.Lock()
	n := len(s.leases.leases)
	s.leases.mu.Unlock()
	if n != 0 {
		t.Errorf("%d leases left by a failed Enqueue", n)
	}
}

// TestReopenVoidsStoredLeases: a file written by an earlier release holds
// leases in its leased index and records. Opening it moves those
// deliveries back to due: claimable at once, shown without a lease, and
// the file checks clean.
func TestReopenVoidsStoredLeases(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	w := storetest.NewWebhook("tenant-old")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	leased, free := storetest.NewDelivery(w, "workflow.completed"), storetest.NewDelivery(w, "workflow.completed")
	if _, err := s.Enqueue(ctx, []*store.Delivery{leased, free}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Rewrite leased as the earlier release stored a claimed delivery: the
	// lease in its record, its key in leased at the lease's end, valued
	// with its NextAttemptAt and webhook id.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	expires := storetest.Base.Add(time.Hour)
	err = db.Update(func(tx *bolt.Tx) error {
		d, err := getDelivery(tx, leased.ID)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bDue).Delete(timeKey(d.NextAttemptAt, d.ID)); err != nil {
			return err
		}
		d.LeaseOwner, d.LeaseExpiresAt = "old-process", expires
		if err := putDelivery(tx, d); err != nil {
			return err
		}
		v := append(appendTime(nil, d.NextAttemptAt), d.WebhookID...)
		return tx.Bucket(bLeased).Put(timeKey(expires, d.ID), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDelivery(ctx, leased.ID)
	if err != nil || got.LeaseOwner != "" || !got.LeaseExpiresAt.IsZero() {
		t.Errorf("GetDelivery after reopening = %+v, %v; want no lease", got, err)
	}
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(time.Minute), Limit: 10, Lease: time.Minute, Owner: "new"})
	if err != nil || len(claimed) != 2 {
		t.Errorf("Claim after reopening = %v, %v; want both deliveries", idsOf(claimed), err)
	}
	for _, d := range claimed {
		err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "new", Status: store.StatusSuccess,
			Now: storetest.Base.Add(time.Minute), Attempt: storetest.NewAttempt(d.ID, 1, 200)})
		if err != nil {
			t.Errorf("Complete of %s: %v", d.ID, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkFile(path); err != nil {
		t.Errorf("file after reopening and completing: %v", err)
	}
}

func idsOf(ds []*store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// TestLeasesUnderLoad: enqueuers (some deliveries stored leased, as the
// dispatcher's Emit does), claimers that complete (half of the first
// attempts scheduling a retry due at once) or release what they claim, all
// at once. No delivery is handed to a second claimer while its lease is
// live (leases do not expire here, so every owner's Complete succeeds),
// every delivery ends succeeded with the attempts made, and the table is
// empty at the end.
func TestLeasesUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, w := leaseStore(t)
	const (
		enqueuers = 2
		batches   = 60
		batch     = 10
		n         = enqueuers * batches * batch
		claimers  = 4
	)
	now := storetest.Base.Add(time.Minute)
	var (
		mu       sync.Mutex
		holder   = map[string]string{} // delivery id -> owner, while leased
		attempts = map[string]int{}
		done     int
		wg       sync.WaitGroup
	)
	take := func(id, owner string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := holder[id]; ok {
			t.Errorf("delivery %s handed to %s while %s holds it", id, owner, prev)
		}
		holder[id] = owner
	}
	drop := func(id string) {
		mu.Lock()
		delete(holder, id)
		mu.Unlock()
	}
	finish := func(id, owner string) {
		mu.Lock()
		attempts[id]++
		a := attempts[id]
		mu.Unlock()
		p := store.CompleteParams{DeliveryID: id, Owner: owner, Now: now, Attempt: storetest.NewAttempt(id, a, 200), Status: store.StatusSuccess}
		if a == 1 && id[len(id)-1]%2 == 0 {
			p.Attempt.ResponseStatus, p.Status, p.NextAttemptAt = 503, store.StatusPending, now
		}
		drop(id) // before the commit, which may let another claim take it
		if err := s.Complete(ctx, p); err != nil {
			t.Errorf("%s: Complete of %s (attempt %d): %v", owner, id, a, err)
			return
		}
		if p.Status == store.StatusSuccess {
			mu.Lock()
			done++
			mu.Unlock()
		}
	}
	for e := range enqueuers {
		wg.Go(func() {
			owner := fmt.Sprintf("emitter-%d", e)
			for range batches {
				var ds []*store.Delivery
				for j := range batch {
					d := storetest.NewDelivery(w, "workflow.completed")
					d.NextAttemptAt = now
					if j%3 == 0 {
						d.LeaseOwner, d.LeaseExpiresAt = owner, now.Add(time.Hour)
					}
					ds = append(ds, d)
				}
				// The handed-over leases are taken before the Enqueue:
				// its commit makes them claimable by others.
				for _, d := range ds {
					if d.LeaseOwner != "" {
						take(d.ID, owner)
					}
				}
				if _, err := s.Enqueue(ctx, ds); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				for _, d := range ds {
					if d.LeaseOwner != "" {
						finish(d.ID, owner)
					}
				}
			}
		})
	}
	for c := range claimers {
		wg.Go(func() {
			owner := fmt.Sprintf("claimer-%d", c)
			for i := 0; ; i++ {
				mu.Lock()
				all := done == n
				mu.Unlock()
				if all || ctx.Err() != nil || t.Failed() {
					return
				}
				ds, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 1 + (i+c)%8, Lease: time.Hour, Owner: owner})
				if err != nil {
					t.Errorf("%s: Claim: %v", owner, err)
					return
				}
				for _, d := range ds {
					take(d.ID, owner)
				}
				for k, d := range ds {
					if (i+k)%5 == 0 {
						drop(d.ID)
						if err := s.Release(ctx, store.ReleaseParams{Owner: owner, IDs: []string{d.ID}}); err != nil {
							t.Errorf("%s: Release: %v", owner, err)
						}
						continue
					}
					finish(d.ID, owner)
				}
				if len(ds) == 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if ctx.Err() != nil {
		t.Fatalf("%d of %d deliveries succeeded in a minute", done, n)
	}
	if done != n {
		t.Fatalf("%d deliveries succeeded, want %d", done, n)
	}
	c, err := s.CountDeliveries(ctx, w.ID)
	if err != nil || c != (store.Counts{Success: n}) {
		t.Errorf("counts %+v, %v; want %d succeeded", c, err, n)
	}
	s.leases.mu.Lock()
	leases, marks := len(s.leases.leases), len(s.leases.moved)
	s.leases.mu.Unlock()
	if leases != 0 || marks >= 2*minPrune {
		t.Errorf("the table holds %d leases and %d marks at the end, want none and fewer than %d", leases, marks, 2*minPrune)
	}
	path := s.db.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkFile(path); err != nil {
		t.Errorf("file at the end: %v", err)
	}
}
