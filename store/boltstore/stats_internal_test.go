package boltstore

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// TestStatsCommitFailed: a transaction that fails on bbolt's side, not in
// one of its calls (here bbolt cannot even begin it), commits nothing, so
// Commits must not count it; Calls and Busy do.
func TestStatsCommitFailed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "stats.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The file's writer fails under the store: every transaction does.
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	if err := s.write(t.Context(), func(*wtx) error { return nil }); err == nil {
		t.Fatal("a write on a closed bbolt file succeeded")
	}
	after := s.Stats()
	if after.Commits != before.Commits {
		t.Errorf("Commits %d -> %d after a transaction that failed: want no commit", before.Commits, after.Commits)
	}
	if after.Calls != before.Calls+1 {
		t.Errorf("Calls %d -> %d after a failed call: want one more", before.Calls, after.Calls)
	}
}

// TestStatsPageWrites pins what PageWrites counts: bbolt's page
// writes, one per node however many pages it spans, not pages.
func TestStatsPageWrites(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "pages.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := storetest.NewWebhook("tenant-pages")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	d := storetest.NewDelivery(w, "workflow.completed")
	d.Body = []byte(`{"x":"` + strings.Repeat("a", 256<<10) + `"}`)
	if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	n := s.Stats().PageWrites - before.PageWrites
	if pages := int64(len(d.Body) / s.db.Info().PageSize); n <= 0 || n >= pages {
		t.Errorf("PageWrites grew by %d for a body of %d pages: want some writes, far fewer than its pages", n, pages)
	}
}

// TestStatsBusyInProgress: Busy counts the transaction in progress up to
// the reading, so that two readings bound the time between them. A
// transaction that began before the first reading counted whole after the
// second would make the writer busier than the window.
func TestStatsBusyInProgress(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "busy.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inside := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(t.Context(), func(*wtx) error {
			close(inside)
			time.Sleep(300 * time.Millisecond)
			return nil
		})
	}()
	<-inside
	time.Sleep(100 * time.Millisecond)
	t0, s0 := time.Now(), s.Stats()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t1, s1 := time.Now(), s.Stats()
	if busy, window := s1.Busy-s0.Busy, t1.Sub(t0); busy > window {
		t.Errorf("Busy grew by %v between readings %v apart", busy, window)
	}
	if s0.Busy < 100*time.Millisecond {
		t.Errorf("Busy = %v during a transaction running for 100 ms, want it counted", s0.Busy)
	}
}
