package boltfiletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Truncated checks that open, a store's Open, refuses copies of the closed
// bbolt file at path cut to each of sizes bytes, with an error calling the
// file truncated: bbolt alone maps such a file and crashes the process
// reading the missing pages. open closes what it opened. It returns the
// file's bytes.
func Truncated(t *testing.T, path string, sizes []int, open func(path string) error) []byte {
	t.Helper()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sizes {
		cut := filepath.Join(t.TempDir(), "cut.db")
		if err := os.WriteFile(cut, full[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := open(cut); err == nil {
			t.Errorf("open of the file cut to %d of %d bytes succeeded", n, len(full))
		} else if !strings.Contains(err.Error(), "truncated") {
			t.Errorf("open of the file cut to %d bytes: %v, want it called truncated", n, err)
		}
	}
	return full
}
