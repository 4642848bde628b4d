package pgstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore"
	"github.com/noa-server/webhook/store/storetest"
)

// fill enqueues n deliveries spread over webhooks, due at due, in batches
// of 1000.
func fill(b *testing.B, s *pgstore.Store, hooks []*store.Webhook, n int, due time.Time) {
	b.Helper()
	var batch []*store.Delivery
	for i := range n {
		d := storetest.NewDelivery(hooks[i%len(hooks)], "workflow.completed")
		d.NextAttemptAt = due.Add(time.Duration(i%1000) * time.Millisecond)
		batch = append(batch, d)
		if len(batch) == 1000 || i == n-1 {
			if _, err := s.Enqueue(b.Context(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func benchHooks(b *testing.B, s *pgstore.Store, n int) []*store.Webhook {
	b.Helper()
	var hooks []*store.Webhook
	for range n {
		w := storetest.NewWebhook("tenant_bench")
		if err := s.CreateWebhook(b.Context(), w); err != nil {
			b.Fatal(err)
		}
		hooks = append(hooks, w)
	}
	return hooks
}

// BenchmarkPGEnqueue measures Enqueue of batches of 1, 10 and 100
// deliveries (one Emit fanning out to that many webhooks); ns/op is per
// batch, deliveries/s the throughput of one goroutine.
func BenchmarkPGEnqueue(b *testing.B) {
	for _, size := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := newStore(b)
			hooks := benchHooks(b, s, size)
			batch := make([]*store.Delivery, size)
			b.ResetTimer()
			for range b.N {
				for j := range batch {
					batch[j] = storetest.NewDelivery(hooks[j], "workflow.completed")
				}
				if _, err := s.Enqueue(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkPGClaim measures Claim of 10 due deliveries from a queue that
// also holds 20 000 deliveries not yet due; ns/op is per Claim.
func BenchmarkPGClaim(b *testing.B) {
	s := newStore(b)
	hooks := benchHooks(b, s, 20)
	fill(b, s, hooks, 20000, storetest.Base.Add(24*time.Hour))
	fill(b, s, hooks, 10*b.N, storetest.Base)
	now := storetest.Base.Add(time.Hour)
	b.ResetTimer()
	for i := range b.N {
		ds, err := s.Claim(b.Context(), store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute, Owner: fmt.Sprint("o", i%4)})
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) != 10 {
			b.Fatalf("Claim = %d deliveries, want 10", len(ds))
		}
	}
	b.ReportMetric(float64(10*b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkPGClaimComplete measures the engine's store work per delivery:
// Claim 10, then Complete each as a success.
func BenchmarkPGClaimComplete(b *testing.B) {
	s := newStore(b)
	hooks := benchHooks(b, s, 20)
	fill(b, s, hooks, 10*b.N, storetest.Base)
	now := storetest.Base.Add(time.Hour)
	b.ResetTimer()
	for range b.N {
		ds, err := s.Claim(b.Context(), store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute, Owner: "o"})
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range ds {
			err := s.Complete(b.Context(), store.CompleteParams{DeliveryID: d.ID, Owner: "o",
				Attempt: storetest.NewAttempt(d.ID, 1, 200), Status: store.StatusSuccess, Now: now})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(10*b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkPGClaimPastBacklog measures Claim of 10 due deliveries behind a
// backlog of 50 000 due deliveries of a webhook the claims skip (a hung
// endpoint's, at its concurrency limit); ns/op is per Claim. The first
// claims hold the backlog apart (see migration 0002), the rest step over
// none of it.
func BenchmarkPGClaimPastBacklog(b *testing.B) {
	s := newStore(b)
	hooks := benchHooks(b, s, 20)
	fill(b, s, hooks[:1], 50000, storetest.Base)
	fill(b, s, hooks[1:], 10*b.N, storetest.Base.Add(time.Minute))
	now := storetest.Base.Add(time.Hour)
	skip := []string{hooks[0].ID}
	b.ResetTimer()
	for range b.N {
		ds, err := s.Claim(b.Context(), store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute, Owner: "o", SkipWebhooks: skip})
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) != 10 {
			b.Fatalf("Claim = %d deliveries, want 10", len(ds))
		}
	}
	b.ReportMetric(float64(10*b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
