package boltstore_test

import (
	"testing"

	"github.com/noa-server/webhook/internal/boltfile/boltfiletest"
	"github.com/noa-server/webhook/store/boltstore"
)

// TestOpenFails: a file that is not bbolt's (long or short) and a path
// whose directory is missing are errors from Open that errors.Is tells
// apart, and a failed Open leaves the file as it was.
func TestOpenFails(t *testing.T) {
	boltfiletest.OpenFails(t, func(path string) error {
		s, err := boltstore.Open(path, nil)
		if err == nil {
			s.Close()
		}
		return err
	})
}
