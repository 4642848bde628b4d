//go:build unix

package receiver

import (
	"testing"
	"time"

	"github.com/noa-server/webhook/internal/boltfile/boltfiletest"
)

// TestBoltStoreNotRegularFile: a path naming a FIFO, a device or a
// directory is an error from OpenBoltStore, not a hang or a device written
// over.
func TestBoltStoreNotRegularFile(t *testing.T) {
	t.Parallel()
	boltfiletest.NotRegularFile(t, func(path string) error {
		s, err := OpenBoltStore(path, BoltStoreOptions{OpenTimeout: 100 * time.Millisecond})
		if err == nil {
			s.Close()
		}
		return err
	})
}
