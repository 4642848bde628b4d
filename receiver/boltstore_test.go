package receiver

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/noa-server/webhook/internal/boltfile/boltfiletest"
)

// TestBoltStoreOpenFails: a file that is not bbolt's (long or short) and a
// path whose directory is missing are errors from OpenBoltStore that
// errors.Is tells apart, and a failed open leaves the file as it was.
func TestBoltStoreOpenFails(t *testing.T) {
	t.Parallel()
	boltfiletest.OpenFails(t, func(path string) error {
		s, err := OpenBoltStore(path, BoltStoreOptions{})
		if err == nil {
			s.Close()
		}
		return err
	})
}

// TestBoltStoreCloseInFlight closes the store while Reserve, Complete and
// Release calls are in flight: each completes or fails with bbolt's
// ErrDatabaseNotOpen (no panic, no hang), a second Close is nil, and the
// file opens again in the same process with every key completed before.
func TestBoltStoreCloseInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idem.db")
	s, err := OpenBoltStore(path, BoltStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done []string
	)
	ok := func(what string, err error) bool {
		if err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			t.Errorf("%s during Close: %v", what, err)
		}
		return err == nil
	}
	for g := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := strconv.Itoa(g) + "-" + strconv.Itoa(i)
				_, err := s.Reserve(ctx, ReserveParams{Key: k, Token: "t", Lease: time.Minute})
				if !ok("Reserve", err) {
					return
				}
				if i%2 == 0 {
					if !ok("Release", s.Release(ctx, ReleaseParams{Key: k, Token: "t"})) {
						return
					}
					continue
				}
				if !ok("Complete", s.Complete(ctx, CompleteParams{Key: k, Token: "t", TTL: time.Hour})) {
					return
				}
				mu.Lock()
				done = append(done, k)
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s, err = OpenBoltStore(path, BoltStoreOptions{})
	if err != nil {
		t.Fatalf("open again: %v", err)
	}
	defer s.Close()
	for _, k := range done {
		if res, err := s.Reserve(ctx, ReserveParams{Key: k, Token: "x", Lease: time.Minute}); err != nil || res.State != Done {
			t.Errorf("key %s completed before Close: %+v, %v after reopening; want Done", k, res, err)
		}
	}
}
