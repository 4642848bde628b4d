package boltstore

import (
	"path/filepath"
	"testing"
	"time"
)

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
