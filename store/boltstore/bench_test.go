package boltstore_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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

// hotPathSuccess returns the Complete of the first attempt of d, leased by
// "bench-owner", as a success: the attempt the dispatcher logs, with the
// request headers it sends and the response headers of a typical receiver.
func hotPathSuccess(w *store.Webhook, d *store.Delivery) store.CompleteParams {
	ts := strconv.FormatInt(storetest.Base.Unix(), 10)
	req := http.Header{
		"Content-Type":        {"application/json"},
		"User-Agent":          {"noa-webhook/1.0"},
		"X-Webhook-Id":        {d.WebhookID},
		"X-Webhook-Event":     {d.EventType},
		"X-Webhook-Delivery":  {d.ID},
		"X-Webhook-Attempt":   {"1"},
		"Webhook-Id":          {d.EventID},
		"Webhook-Timestamp":   {ts},
		"Webhook-Signature":   {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
		"X-Webhook-Signature": {"sha256=2b9a197f337de59f5456ed44b1f4267d53508679d9da98fda3d34337f1ffa48e"},
		"X-Webhook-Timestamp": {ts},
	}
	resp := http.Header{
		"Date":           {"Fri, 14 Mar 2025 15:09:26 GMT"},
		"Content-Length": {"2"},
	}
	return store.CompleteParams{
		DeliveryID: d.ID, Owner: "bench-owner", Status: store.StatusSuccess, Now: storetest.Base.Add(time.Second),
		Attempt: &store.Attempt{
			DeliveryID: d.ID, Number: 1, StartedAt: storetest.Base, Duration: 3 * time.Millisecond,
			RequestURL: w.URL, RequestHeaders: req,
			ResponseStatus: 200, ResponseHeaders: resp, ResponseBody: []byte("ok"),
		},
	}
}

// hotPathFiller returns the data of a hot-path body: about 900 bytes of
// JSON fields holding random letters.
func hotPathFiller(r *rand.Rand) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b []byte
	for i := 0; len(b) < 880; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `"field%d":"`, i)
		for range 48 {
			b = append(b, letters[r.IntN(len(letters))])
		}
		b = append(b, '"')
	}
	return b
}

// hotPathBody returns a delivery's JSON body of about 1 KiB around filler.
func hotPathBody(filler []byte, eventID, eventType, webhookID string) []byte {
	b := fmt.Appendf(make([]byte, 0, 1100), `{"id":%q,"event":%q,"timestamp":"2025-03-14T15:09:26Z","webhookId":%q,"data":{`, eventID, eventType, webhookID)
	b = append(b, filler...)
	return append(b, `},"metadata":{"apiVersion":"v1","requestId":"req_1"}}`...)
}

// BenchmarkHotPath models the dispatcher's path per delivery: 64 goroutines
// each Enqueue one delivery already leased (body ~1 KiB), then Complete it
// as a success with the attempt the dispatcher logs (eleven request
// headers, two response headers, body "ok"). Both calls go through group
// commit. It runs with fsync on every commit (the default) and with NoSync,
// and reports deliveries (one Enqueue and one Complete each) per second.
func BenchmarkHotPath(b *testing.B) {
	for _, c := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(c.name, func(b *testing.B) {
			s, w := benchStore(b, &boltstore.Options{NoSync: c.noSync})
			ctx := b.Context()
			var seed atomic.Uint64
			b.SetParallelism(32) // 64 goroutines on 2 cores
			cpu0 := cpuTime(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Random data per goroutine, made before the loop so the
				// benchmark's own work stays small next to the store's.
				filler := hotPathFiller(rand.New(rand.NewPCG(seed.Add(1), 0)))
				for pb.Next() {
					d := storetest.NewDelivery(w, "workflow.completed")
					d.Body = hotPathBody(filler, d.EventID, d.EventType, w.ID)
					d.LeaseOwner, d.LeaseExpiresAt = "bench-owner", storetest.Base.Add(time.Minute)
					if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
						b.Error(err)
						return
					}
					if err := s.Complete(ctx, hotPathSuccess(w, d)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			// CPU time is steadier than wall time on a shared machine.
			if cpu := cpuTime(b) - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu)/float64(b.N)/1e3, "cpu-µs/delivery")
			}
		})
	}
}

// BenchmarkOpen opens (and closes) a file that holds 100k deliveries with
// bodies of about 1 KiB, each completed with one attempt: what a restart
// pays before the store answers. The file is in the page cache, so this
// is the CPU cost of opening, not the disk's.
func BenchmarkOpen(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "open.db")
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	w := storetest.NewWebhook("tenant-open")
	if err := s.CreateWebhook(ctx, w); err != nil {
		b.Fatal(err)
	}
	filler := hotPathFiller(rand.New(rand.NewPCG(1, 2)))
	ds := make([]*store.Delivery, n)
	for i := range ds {
		d := storetest.NewDelivery(w, "workflow.completed")
		d.Body = hotPathBody(filler, d.EventID, d.EventType, w.ID)
		d.LeaseOwner, d.LeaseExpiresAt = "bench-owner", storetest.Base.Add(time.Minute)
		ds[i] = d
	}
	for batch := range slices.Chunk(ds, 1000) {
		if _, err := s.Enqueue(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	// Complete them from 64 goroutines, so group commit shares the commits.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				if err := s.Complete(ctx, hotPathSuccess(w, ds[i])); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := boltstore.Open(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatchWebhooks is Emit's first store call: the webhooks of a
// tenant with three (two of them subscribed), from parallel callers.
func BenchmarkMatchWebhooks(b *testing.B) {
	s, w := benchStore(b, &boltstore.Options{NoSync: true})
	for _, events := range [][]string{{"agent.*"}, {"*"}} {
		o := storetest.NewWebhook(w.Tenant)
		o.Events = events
		if err := s.CreateWebhook(b.Context(), o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ws, err := s.MatchWebhooks(b.Context(), w.Tenant, "workflow.completed"); err != nil || len(ws) != 2 {
				b.Fatalf("MatchWebhooks = %d, %v", len(ws), err)
			}
		}
	})
}
