package boltstore_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// refusedEventID is an event id longer than a bbolt key holds: an Enqueue
// of it fails at the delivery's second Put, after the record's.
var refusedEventID = strings.Repeat("e", bolt.MaxKeySize)

// openWithWebhook opens a store without fsync that holds one webhook of
// tenant.
func openWithWebhook(t *testing.T, tenant string) (*boltstore.Store, string, *store.Webhook) {
	t.Helper()
	s, path := open(t, &boltstore.Options{NoSync: true})
	w := storetest.NewWebhook(tenant)
	if err := s.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	return s, path, w
}

// TestGroupCommitWriteFails: calls that bbolt refuses half way through
// their writes (an event id longer than a key holds, refused by the second
// Put of the delivery), sharing commits with Enqueue, Claim and Complete
// calls that succeed, get ErrInvalid each and leave nothing behind; the
// others are all stored, and the file's indexes agree with its records.
func TestGroupCommitWriteFails(t *testing.T) {
	ctx := t.Context()
	s, path, w := openWithWebhook(t, "tenant-groupfail")
	const n = 60
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		good []string
		bad  []string
	)
	for i := range n {
		wg.Go(func() {
			ok, refused := storetest.NewDelivery(w, "user.login"), storetest.NewDelivery(w, "user.login")
			batch := []*store.Delivery{ok}
			if i%3 == 0 {
				refused.EventID = refusedEventID
				batch = append(batch, refused)
			}
			_, err := s.Enqueue(ctx, batch)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case i%3 == 0 && !errors.Is(err, store.ErrInvalid):
				t.Errorf("Enqueue with a %d-byte event id: %v, want ErrInvalid", len(refusedEventID), err)
			case i%3 == 0:
				bad = append(bad, ok.ID, refused.ID)
			case err != nil:
				t.Errorf("Enqueue: %v", err)
			default:
				good = append(good, ok.ID)
			}
		})
		if i%4 == 0 {
			wg.Go(func() {
				ds, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(time.Hour), Limit: 3, Lease: time.Hour, Owner: "o"})
				if err != nil {
					t.Errorf("Claim: %v", err)
				}
				for _, d := range ds {
					err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Status: store.StatusSuccess,
						Now: storetest.Base.Add(time.Hour), Attempt: storetest.NewAttempt(d.ID, 1, 200)})
					if err != nil {
						t.Errorf("Complete: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	for _, id := range bad {
		if _, err := s.GetDelivery(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a delivery of a refused Enqueue is stored (%v)", err)
		}
	}
	for _, id := range good {
		if _, err := s.GetDelivery(ctx, id); err != nil {
			t.Errorf("a delivery of a successful Enqueue: %v", err)
		}
	}
	c, err := s.CountDeliveries(ctx, w.ID)
	if err != nil || c.Pending+c.Success != int64(len(good)) || c.Failed != 0 {
		t.Errorf("CountDeliveries = %+v, %v; want %d in all", c, err, len(good))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := boltstore.CheckFile(path); err != nil {
		t.Error(err)
	}
}
