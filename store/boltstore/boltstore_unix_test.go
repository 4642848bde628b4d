//go:build unix

package boltstore_test

import (
	"testing"
	"time"

	"github.com/noa-server/webhook/internal/boltfile/boltfiletest"
	"github.com/noa-server/webhook/store/boltstore"
)

// TestOpenNotRegularFile: a path naming a FIFO, a device or a directory is
// an error from Open, not a hang or a device written over.
func TestOpenNotRegularFile(t *testing.T) {
	boltfiletest.NotRegularFile(t, func(path string) error {
		s, err := boltstore.Open(path, &boltstore.Options{Timeout: 100 * time.Millisecond})
		if err == nil {
			s.Close()
		}
		return err
	})
}
