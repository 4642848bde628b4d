package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
	"github.com/noa-server/webhook/store/storetest"
)

// benchStore returns a store with one webhook per 1000 deliveries, of which
// due are due at storetest.Base and the rest an hour later.
func benchStore(b *testing.B, total, due int) (*memstore.Store, []*store.Webhook) {
	b.Helper()
	ctx := context.Background()
	s := memstore.New()
	b.Cleanup(func() { s.Close() })
	var hooks []*store.Webhook
	for i := 0; i < total; i += 1000 {
		w := storetest.NewWebhook("bench")
		if err := s.CreateWebhook(ctx, w); err != nil {
			b.Fatal(err)
		}
		hooks = append(hooks, w)
	}
	var batch []*store.Delivery
	for i := range total {
		d := storetest.NewDelivery(hooks[i%len(hooks)], "workflow.completed")
		if i >= due {
			d.NextAttemptAt = storetest.Base.Add(time.Hour)
		}
		batch = append(batch, d)
		if len(batch) == 1000 || i == total-1 {
			if _, err := s.Enqueue(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return s, hooks
}

// BenchmarkClaimRelease measures one Claim of 10 deliveries and their
// Release, in a queue where most deliveries are not due.
func BenchmarkClaimRelease(b *testing.B) {
	for _, total := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(total), func(b *testing.B) {
			s, _ := benchStore(b, total, 100)
			ctx := context.Background()
			ids := make([]string, 0, 10)
			for b.Loop() {
				ds, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 10, Lease: time.Minute, Owner: "bench"})
				if err != nil || len(ds) != 10 {
					b.Fatalf("Claim = %d, %v", len(ds), err)
				}
				ids = ids[:0]
				for _, d := range ds {
					ids = append(ids, d.ID)
				}
				if err := s.Release(ctx, store.ReleaseParams{Owner: "bench", IDs: ids}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnqueueClaimComplete measures the life of one delivery.
func BenchmarkEnqueueClaimComplete(b *testing.B) {
	s, hooks := benchStore(b, 100_000, 0)
	ctx := context.Background()
	for b.Loop() {
		d := storetest.NewDelivery(hooks[0], "workflow.completed")
		if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
			b.Fatal(err)
		}
		ds, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: time.Minute, Owner: "bench"})
		if err != nil || len(ds) != 1 {
			b.Fatalf("Claim = %d, %v", len(ds), err)
		}
		if err := s.Complete(ctx, store.CompleteParams{
			DeliveryID: d.ID, Owner: "bench", Attempt: &store.Attempt{Number: 1, ResponseStatus: 200},
			Status: store.StatusSuccess, Now: storetest.Base,
		}); err != nil {
			b.Fatal(err)
		}
	}
}
