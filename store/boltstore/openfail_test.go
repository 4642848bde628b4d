package boltstore_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/noa-server/webhook/store/boltstore"
)

// TestOpenFails: a file that is not bbolt's (long or short) and a path
// whose directory is missing are errors from Open that errors.Is tells
// apart, and a failed Open leaves the file as it was.
func TestOpenFails(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte // nil: no file
		path string
		want error
	}{
		{"not bbolt", bytes.Repeat([]byte("not a bbolt file\n"), 1000), "text.db", berrors.ErrInvalid},
		{"short", []byte("hello"), "short.db", berrors.ErrInvalid},
		{"no directory", nil, filepath.Join("missing", "webhooks.db"), fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.path)
			if tc.data != nil {
				if err := os.WriteFile(path, tc.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := boltstore.Open(path, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Open: %v, want %v", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tc.data) {
				t.Errorf("the failed Open changed the file: %d bytes before, %d after", len(tc.data), len(after))
			}
		})
	}
}
