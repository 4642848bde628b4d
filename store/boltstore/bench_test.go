package boltstore_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// benchStore opens a store in b's temp dir with a webhook to deliver to.
func benchStore(b *testing.B, opts *boltstore.Options) (*boltstore.Store, *store.Webhook) {
	b.Helper()
	s, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	w := storetest.NewWebhook("tenant-bench")
	if err := s.CreateWebhook(b.Context(), w); err != nil {
		b.Fatal(err)
	}
	return s, w
}

// BenchmarkClaim claims 10 deliveries out of 1k and out of 100k pending
// ones, all due. The cost of a claim must not grow with the number pending:
// Claim seeks the due index instead of scanning. The claimed deliveries are
// released, off the clock, so every iteration sees the same queue. fsync is
// off so the index's cost is not hidden behind the disk's.
func BenchmarkClaim(b *testing.B) {
	for _, pending := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) {
			s, w := benchStore(b, &boltstore.Options{NoSync: true})
			ctx := b.Context()
			batch := make([]*store.Delivery, 0, 1000)
			for i := range pending {
				d := storetest.NewDelivery(w, "workflow.completed")
				d.NextAttemptAt = storetest.Base.Add(time.Duration(i) * time.Millisecond)
				batch = append(batch, d)
				if len(batch) == cap(batch) || i == pending-1 {
					if _, err := s.Enqueue(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			now := storetest.Base.Add(time.Hour)
			ids := make([]string, 0, 10)
			b.ResetTimer()
			for b.Loop() {
				ds, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute, Owner: "bench"})
				if err != nil || len(ds) != 10 {
					b.Fatalf("Claim = %d, %v", len(ds), err)
				}
				b.StopTimer()
				ids = ids[:0]
				for _, d := range ds {
					ids = append(ids, d.ID)
				}
				if err := s.Release(ctx, store.ReleaseParams{Owner: "bench", IDs: ids}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkEnqueue stores batches of 1 and 10 deliveries, durably (fsync on
// every commit), from one goroutine and from 32 goroutines (where group
// commit shares fsyncs). It reports deliveries stored per second.
func BenchmarkEnqueue(b *testing.B) {
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, w := benchStore(b, nil)
			ctx := b.Context()
			for b.Loop() {
				ds := make([]*store.Delivery, size)
				for i := range ds {
					ds[i] = storetest.NewDelivery(w, "workflow.completed")
				}
				if _, err := s.Enqueue(ctx, ds); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("parallel32/batch=%d", size), func(b *testing.B) {
			s, w := benchStore(b, nil)
			ctx := b.Context()
			b.SetParallelism(16) // 32 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ds := make([]*store.Delivery, size)
					for i := range ds {
						ds[i] = storetest.NewDelivery(w, "workflow.completed")
					}
					if _, err := s.Enqueue(ctx, ds); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
