package boltstore_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// TestStats checks the counters against calls whose commits are known:
// calls one after another commit one each, a failed call commits nothing,
// and concurrent calls are all counted, in no more commits than calls.
func TestStats(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t, nil) // with fsync: WriteTime includes it
	w := storetest.NewWebhook("tenant-stats")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	if before.Commits != 0 || before.Calls != 0 || before.Busy != 0 {
		t.Fatalf("Stats before any Enqueue, Claim or Complete = %+v, want no commits", before)
	}
	if before.PageWrites == 0 || before.WriteTime == 0 {
		t.Errorf("Stats after Open and CreateWebhook = %+v, want the pages they wrote", before)
	}

	const sequential = 5
	for range sequential {
		if _, err := s.Enqueue(ctx, []*store.Delivery{storetest.NewDelivery(w, "workflow.completed")}); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Stats()
	if got.Commits != sequential || got.Calls != sequential {
		t.Errorf("after %d Enqueues one after another: Commits = %d, Calls = %d, want %d each", sequential, got.Commits, got.Calls, sequential)
	}
	if got.Busy <= 0 || got.PageWrites <= before.PageWrites || got.WriteTime <= before.WriteTime {
		t.Errorf("Stats = %+v after %+v, want Busy, PageWrites and WriteTime grown", got, before)
	}

	err := s.Complete(ctx, store.CompleteParams{
		DeliveryID: "del_missing", Owner: "me", Now: storetest.Base,
		Attempt: &store.Attempt{Number: 1, ResponseStatus: 200}, Status: store.StatusSuccess,
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Complete of a missing delivery = %v, want ErrNotFound", err)
	}
	failed := s.Stats()
	if failed.Calls != got.Calls+1 || failed.Commits != got.Commits {
		t.Errorf("after a failed Complete: Calls %d -> %d, Commits %d -> %d; want one more call and no commit", got.Calls, failed.Calls, got.Commits, failed.Commits)
	}

	const goroutines, each = 16, 10
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if _, err := s.Enqueue(ctx, []*store.Delivery{storetest.NewDelivery(w, "workflow.completed")}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	after := s.Stats()
	calls, commits := after.Calls-failed.Calls, after.Commits-failed.Commits
	if calls != goroutines*each || commits < 1 || commits > calls {
		t.Errorf("%d concurrent Enqueues: %d calls in %d commits", goroutines*each, calls, commits)
	}
	t.Logf("%d concurrent Enqueues in %d commits, busy %v", calls, commits, after.Busy-failed.Busy)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if closed := s.Stats(); closed != after {
		t.Errorf("Stats after Close = %+v, want %+v", closed, after)
	}
}
