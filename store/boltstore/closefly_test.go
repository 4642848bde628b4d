package boltstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// TestCloseInFlight closes the store while calls of every kind are in
// flight: each call either completes or returns ErrClosed (no bbolt error,
// no panic, no hang), Close returns once, a second Close returns nil, and
// the file opens again in the same process with every delivery whose
// Enqueue succeeded.
func TestCloseInFlight(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, &boltstore.Options{NoSync: true})
	w := storetest.NewWebhook("tenant-closefly")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored []string
	)
	check := func(what string, err error) bool {
		if err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s during Close: %v, want nil or ErrClosed", what, err)
		}
		return err == nil
	}
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				d := storetest.NewDelivery(w, "user.login")
				_, err := s.Enqueue(ctx, []*store.Delivery{d})
				if !check("Enqueue", err) {
					return
				}
				mu.Lock()
				stored = append(stored, d.ID)
				mu.Unlock()
				switch (g + i) % 4 {
				case 0:
					ds, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(time.Hour), Limit: 2, Lease: time.Hour, Owner: "o"})
					for _, c := range ds {
						check("Complete", s.Complete(ctx, store.CompleteParams{DeliveryID: c.ID, Owner: "o", Status: store.StatusSuccess,
							Now: storetest.Base.Add(time.Hour), Attempt: storetest.NewAttempt(c.ID, 1, 200)}))
					}
					check("Claim", err)
				case 1:
					_, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: w.Tenant, Limit: 5})
					check("ListDeliveries", err)
				case 2:
					_, err := s.MatchWebhooks(ctx, w.Tenant, "user.login")
					check("MatchWebhooks", err)
				case 3:
					_, err := s.UpdateWebhook(ctx, w.ID, func(*store.Webhook) error { return nil })
					check("UpdateWebhook", err)
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waits after 10s")
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s2, err := boltstore.Open(path, &boltstore.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("Open again after Close: %v", err)
	}
	defer s2.Close()
	for _, id := range stored {
		if _, err := s2.GetDelivery(ctx, id); err != nil {
			t.Errorf("a delivery whose Enqueue succeeded, after reopening: %v", err)
		}
	}
}
