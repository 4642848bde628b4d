package memstore_test

import (
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
	"github.com/noa-server/webhook/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memstore.New()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestPurgeAfterOlderFinish: Purge finds a delivery finished after a Purge
// and last updated before every one that Purge kept, and one that a Purge
// under a Limit left behind.
func TestPurgeAfterOlderFinish(t *testing.T) {
	ctx := t.Context()
	s := memstore.New()
	defer s.Close()
	w := storetest.NewWebhook("acme")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	// finish stores a delivery leased and completes it as a success at
	// Base + at.
	finish := func(at time.Duration) {
		t.Helper()
		d := storetest.NewDelivery(w, "user.login")
		d.LeaseOwner, d.LeaseExpiresAt = "p", storetest.Base.Add(time.Hour)
		if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
			t.Fatal(err)
		}
		err := s.Complete(ctx, store.CompleteParams{
			DeliveryID: d.ID, Owner: "p", Attempt: &store.Attempt{Number: 1, ResponseStatus: 200},
			Status: store.StatusSuccess, Now: storetest.Base.Add(at),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	purge := func(before time.Duration, limit, want int) {
		t.Helper()
		n, err := s.Purge(ctx, store.PurgeParams{Before: storetest.Base.Add(before), Limit: limit})
		if n != want || err != nil {
			t.Fatalf("Purge(Base+%v, limit %d) = %d, %v; want %d", before, limit, n, err, want)
		}
	}
	finish(20 * time.Minute)
	finish(30 * time.Minute)
	purge(10*time.Minute, 0, 0)
	purge(25*time.Minute, 0, 1) // looks at both: the one kept is of Base+30m
	finish(5 * time.Minute)
	purge(25*time.Minute, 0, 1)
	// A Purge under a Limit leaves the others to the next one.
	for range 30 {
		finish(40 * time.Minute)
	}
	finish(time.Minute)
	finish(2 * time.Minute)
	purge(25*time.Minute, 1, 1)
	purge(25*time.Minute, 1, 1)
	purge(25*time.Minute, 0, 0)
	purge(time.Hour, 0, 31)
}
