package webhook

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/memstore"
)

// benchReceiver counts requests and signals when want have arrived.
type benchReceiver struct {
	*httptest.Server
	n    atomic.Int64
	want atomic.Int64
	done chan struct{}
	once sync.Once
}

func newBenchReceiver(b *testing.B) *benchReceiver {
	rc := &benchReceiver{done: make(chan struct{})}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if rc.n.Add(1) == rc.want.Load() {
			rc.once.Do(func() { close(rc.done) })
		}
	}))
	b.Cleanup(rc.Close)
	return rc
}

const benchConcurrency = 64

// benchWebhook stores the benchmarks' webhook, subscribed to every event.
func benchWebhook(b *testing.B, st store.Store, url string) {
	w := &store.Webhook{ID: "wh_bench", Tenant: "t", URL: url, Events: []string{"*"}, Active: true,
		Secrets: []store.Secret{{Value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}
	if err := st.CreateWebhook(context.Background(), w); err != nil {
		b.Fatal(err)
	}
}

// emitConcurrently emits b.N events from several goroutines, as a busy
// host would, and returns when every Emit has.
func emitConcurrently(b *testing.B, d *Dispatcher) {
	data := map[string]string{"workflowId": "wf_123", "status": "completed"}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := d.Emit(context.Background(), Event{Type: EventWorkflowCompleted, Tenant: "t", Data: data}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkRawPOST is the ceiling: concurrent POSTs of a payload-sized body
// to a loopback server with net/http alone.
func BenchmarkRawPOST(b *testing.B) {
	rc := newBenchReceiver(b)
	body := bytes.Repeat([]byte("x"), 256)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				resp, err := client.Post(rc.URL, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkDeliveryMemstore measures Emit plus delivery, end to end.
func BenchmarkDeliveryMemstore(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	benchDelivery(b, st)
}

// BenchmarkDeliveryBoltstore measures Emit plus durable delivery.
func BenchmarkDeliveryBoltstore(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchDelivery(b, st)
}

func benchDelivery(b *testing.B, st store.Store) {
	rc := newBenchReceiver(b)
	rc.want.Store(int64(b.N))
	benchWebhook(b, st, rc.URL)
	d, err := New(st, &Config{
		AllowedRanges: loopback, AllowAnyPort: true,
		Workers: benchConcurrency, PerWebhookConcurrency: benchConcurrency,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(context.Background())
	b.ResetTimer()
	emitConcurrently(b, d)
	select {
	case <-rc.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d delivered", rc.n.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkDeliveryBoltstoreNoSync is BenchmarkDeliveryBoltstore without
// fsync: the ceiling a smarter commit strategy could approach.
func BenchmarkDeliveryBoltstoreNoSync(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchDelivery(b, st)
}

// BenchmarkEmitBoltstore measures durable Emit alone (one webhook), from
// concurrent callers.
func BenchmarkEmitBoltstore(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchWebhook(b, st, "https://example.com/")
	d, err := New(st, nil)
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]string{"workflowId": "wf_123", "status": "completed"}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.Emit(context.Background(), Event{Type: EventWorkflowCompleted, Tenant: "t", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDeliveryOnlyMemstore measures the delivery loop alone: the
// events are emitted before the clock starts.
func BenchmarkDeliveryOnlyMemstore(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	benchDeliveryOnly(b, st)
}

// BenchmarkDeliveryOnlyBoltstore is BenchmarkDeliveryOnlyMemstore on a
// bbolt file with fsync.
func BenchmarkDeliveryOnlyBoltstore(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchDeliveryOnly(b, st)
}

func benchDeliveryOnly(b *testing.B, st store.Store) {
	rc := newBenchReceiver(b)
	rc.want.Store(int64(b.N))
	benchWebhook(b, st, rc.URL)
	d, err := New(st, &Config{
		AllowedRanges: loopback, AllowAnyPort: true,
		Workers: benchConcurrency, PerWebhookConcurrency: benchConcurrency,
	})
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]string{"workflowId": "wf_123", "status": "completed"}
	for range b.N {
		if _, err := d.Emit(context.Background(), Event{Type: EventWorkflowCompleted, Tenant: "t", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(context.Background())
	select {
	case <-rc.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d delivered", rc.n.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// stubTransport answers every request 200 at once, without a network: it
// leaves the library's own work per delivery to measure.
type stubTransport struct{ n atomic.Int64 }

func (t *stubTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	t.n.Add(1)
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// BenchmarkOverheadMemstore is the library's own cost per delivery on
// memstore (Emit, hand-over, signing, building the request, recording the
// attempt) with a transport that answers at once: ns/op and allocs/op are
// per delivery.
func BenchmarkOverheadMemstore(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	benchWebhook(b, st, "https://example.com/hook")
	tr := &stubTransport{}
	d := newStarted(b, st, &Config{Transport: tr, Workers: benchConcurrency, PerWebhookConcurrency: benchConcurrency})
	defer d.Stop(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	emitConcurrently(b, d)
	for d.Stats().Succeeded < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	if n := tr.n.Load(); n != int64(b.N) {
		b.Fatalf("%d requests for %d deliveries", n, b.N)
	}
}
