package boltstore

import (
	"path/filepath"
	"testing"
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
