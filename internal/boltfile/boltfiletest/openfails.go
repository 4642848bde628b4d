package boltfiletest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	berrors "go.etcd.io/bbolt/errors"
)

// OpenFails checks that open, a store's Open, refuses a file that is not
// bbolt's (long or short) and a path whose directory is missing, with
// errors that errors.Is tells apart, and leaves the file as it was. open
// closes what it opened.
func OpenFails(t *testing.T, open func(path string) error) {
	t.Helper()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte // nil: no file
		path string
		want error
	}{
		{"not bbolt", bytes.Repeat([]byte("not a bbolt file\n"), 1000), "text.db", berrors.ErrInvalid},
		{"short", []byte("hello"), "short.db", berrors.ErrInvalid},
		{"no directory", nil, filepath.Join("missing", "store.db"), fs.ErrNotExist},
	} {
		path := filepath.Join(dir, tc.path)
		if tc.data != nil {
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := open(path)
		if err == nil {
			t.Errorf("%s: open succeeded", tc.name)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: open: %v, want %v", tc.name, err, tc.want)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, tc.data) {
			t.Errorf("%s: the failed open changed the file: %d bytes before, %d after", tc.name, len(tc.data), len(after))
		}
	}
}
