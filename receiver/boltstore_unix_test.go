//go:build unix

package receiver

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBoltStoreNotRegularFile: a path naming a FIFO, a device or a
// directory is an error from OpenBoltStore. bbolt alone blocks forever
// opening a FIFO, and takes a device for an empty file and writes its first
// pages into it.
func TestBoltStoreNotRegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.db")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	null := filepath.Join(dir, "null.db")
	if err := os.Symlink(os.DevNull, null); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, null, dir} {
		done := make(chan error, 1)
		go func() {
			s, err := OpenBoltStore(path, BoltStoreOptions{OpenTimeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("OpenBoltStore(%s) = %v, want an error saying it is not a regular file", path, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("OpenBoltStore(%s) still blocks after 5s", path)
		}
	}
}
