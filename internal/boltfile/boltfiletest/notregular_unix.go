//go:build unix

package boltfiletest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NotRegularFile checks that open, a store's Open, refuses a FIFO, a
// symlink to the null device and a directory, with an error saying the
// path is not a regular file, and promptly: bbolt alone blocks forever
// opening a FIFO, and takes a device for an empty file and writes its first
// pages into it. open closes what it opened.
func NotRegularFile(t *testing.T, open func(path string) error) {
	t.Helper()
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
		go func() { done <- open(path) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("open %s: %v, want an error saying it is not a regular file", path, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("open %s still blocks after 5s", path)
		}
	}
}
