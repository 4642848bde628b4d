package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/memstore"
	"github.com/noa-server/webhook/store/pgstore"
)

// tenant owns every webhook of the bench.
const tenant = "bench"

// bench runs one scenario.
type bench struct {
	o      *options
	name   string
	clk    *clock
	stderr io.Writer
	// boltFileBytes is the size of the scenario's bolt file when it closed.
	boltFileBytes int64
	// cpu is the processor time the process used while measuring.
	cpu time.Duration
}

// loopback is the only range the bench's dispatchers may dial.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// config is the dispatcher configuration of every library scenario.
func (b *bench) config(perWebhook int) *webhook.Config {
	return &webhook.Config{
		Workers:               b.o.Concurrency,
		PerWebhookConcurrency: perWebhook,
		Timeout:               b.o.AttemptTimeout,
		AllowedRanges:         loopback,
		AllowAnyPort:          true,
	}
}

// progress prints a progress line on stderr every quarter second until the
// returned function is called.
func (b *bench) progress(phase *atomic.Value, count func() int64) func() {
	if b.o.Quiet {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		last, lastAt := count(), start
		for {
			select {
			case <-done:
				fmt.Fprintf(b.stderr, "\r%-72s\r", "")
				return
			case now := <-t.C:
				n := count()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				fmt.Fprintf(b.stderr, "\r%-8s %-9s %6.1fs %10d done %9.0f/s   ",
					b.name, phase.Load(), now.Sub(start).Seconds(), n, rate)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// measure waits out the warmup, calls on, waits -duration, calls off, and
// returns the measured time; it ends early (with what elapsed) when ctx does.
func (b *bench) measure(ctx context.Context, phase *atomic.Value, on, off func()) time.Duration {
	phase.Store("warmup")
	select {
	case <-time.After(b.o.Warmup):
	case <-ctx.Done():
	}
	phase.Store("measure")
	on()
	t0, cpu0 := time.Now(), cpuTime()
	select {
	case <-time.After(b.o.Duration):
	case <-ctx.Done():
	}
	off()
	b.cpu = cpuTime() - cpu0
	phase.Store("stopping")
	return time.Since(t0)
}

// body returns a payload envelope in the library's form, for raw POSTs and
// the backlog's stored deliveries.
func (b *bench) body(dst []byte, eventID, webhookID string, at, seq int64) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, eventID...)
	dst = append(dst, `","event":"`+webhook.EventWorkflowCompleted+`","timestamp":"`...)
	dst = time.Now().UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","webhookId":"`...)
	dst = append(dst, webhookID...)
	dst = append(dst, `","data":`...)
	dst = eventData(dst, at, seq, b.o.DataBytes)
	dst = append(dst, `,"metadata":{"apiVersion":"`+webhook.APIVersion+`","requestId":""}}`...)
	return dst
}

func newID(prefix string) string {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	return prefix + id.String()
}

func latencies(r *result, h *histogram, kind string) {
	r.Latency = kind
	r.P50Ms = float64(h.quantile(0.50)) / 1e6
	r.P99Ms = float64(h.quantile(0.99)) / 1e6
}

// libraryHeaders returns the headers of a library delivery of body, as the
// dispatcher sends them: the X-Webhook-* headers and both signature schemes.
// raw sends them as they are with every request: the same bytes on the
// wire, without the work of producing them.
func libraryHeaders(eventID, webhookID string, body []byte) http.Header {
	h := http.Header{
		"Content-Type":       {"application/json"},
		"User-Agent":         {webhook.DefaultUserAgent},
		"X-Webhook-Id":       {webhookID},
		"X-Webhook-Event":    {webhook.EventWorkflowCompleted},
		"X-Webhook-Delivery": {newID("del_")},
		"X-Webhook-Attempt":  {"1"},
	}
	if signer, err := webhook.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err == nil {
		signer.Sign(h, eventID, time.Now(), body)
	}
	return h
}

// raw is the ceiling: -concurrency goroutines POST the same requests as the
// library (same bodies, same headers) with net/http alone, each waiting for
// its answer before the next. With bare, the requests carry Content-Type
// alone: net/http's cost for the bodies without a webhook's headers.
func (b *bench) raw(ctx context.Context, bare bool) *result {
	rc := newReceiver(b.clk, 0)
	defer rc.close()
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        b.o.Concurrency,
		MaxIdleConnsPerHost: b.o.Concurrency,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: b.o.AttemptTimeout}
	url := rc.url("/ok/raw")
	whID := newID("wh_")
	var header http.Header
	if bare {
		header = http.Header{"Content-Type": {"application/json"}}
	} else {
		evID := newID("evt_")
		header = libraryHeaders(evID, whID, b.body(nil, evID, whID, 0, 0))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq, errs atomic.Int64
	for range b.o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, b.o.DataBytes+512)
			for {
				select {
				case <-stop:
					return
				default:
				}
				buf = b.body(buf[:0], newID("evt_"), whID, b.clk.now(), seq.Add(1))
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
				if err != nil {
					errs.Add(1)
					return
				}
				req.Header = header // read-only: net/http does not change it
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
			}
		}()
	}
	var phase atomic.Value
	done := b.progress(&phase, rc.received.Load)
	elapsed := b.measure(ctx, &phase, func() { rc.measuring.Store(true) }, func() { rc.measuring.Store(false) })
	close(stop)
	wg.Wait()
	done()

	r := &result{Unit: "deliveries", Count: rc.measured.Load(), Seconds: elapsed.Seconds(), Errors: errs.Load() + rc.badBodies.Load()}
	r.PerSec = float64(r.Count) / r.Seconds
	latencies(r, &rc.hist, "post-to-receipt")
	return r
}

// openStore opens the named store for this scenario. The returned function
// closes it and removes what the scenario left.
func (b *bench) openStore(ctx context.Context, kind string) (store.Store, func(), error) {
	switch kind {
	case "memstore":
		st := memstore.New()
		return st, func() { st.Close() }, nil
	case "boltstore":
		path := boltPath(b.o.Dir, b.name, os.Getpid())
		st, err := boltstore.Open(path, &boltstore.Options{NoSync: b.o.NoSync})
		if err != nil {
			return nil, nil, err
		}
		return st, func() {
			st.Close()
			if fi, err := os.Stat(path); err == nil {
				b.boltFileBytes = fi.Size()
			}
			os.Remove(path)
		}, nil
	case "pgstore":
		st, err := pgstore.Open(ctx, b.o.PG, pgstore.Options{Schema: b.o.PGSchema})
		if err != nil {
			return nil, nil, err
		}
		clean := func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			deleteWebhooks(cctx, st)
			st.Close()
		}
		// Start from an empty schema, vacuumed: a previous run's leftovers
		// would skew the claims, and so would the dead rows its updates
		// left where autovacuum is off or has not come yet.
		deleteWebhooks(ctx, st)
		if err := vacuum(ctx, b.o.PG, st.Schema()); err != nil {
			st.Close()
			return nil, nil, err
		}
		return st, clean, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q", kind)
}

// boltPath is the bolt file of scenario name run by process pid.
func boltPath(dir, name string, pid int) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%d.bolt", name, pid))
}

// vacuum vacuums and analyzes the tables of pgstore's schema.
func vacuum(ctx context.Context, url, schema string) error {
	// The URL is a pool's (it may set pool_max_conns): one connection of it.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables := make([]string, 0, 3)
	for _, t := range []string{"webhooks", "deliveries", "attempts"} {
		tables = append(tables, pgx.Identifier{schema, t}.Sanitize())
	}
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+strings.Join(tables, ", ")); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// deleteWebhooks deletes every webhook of the bench's tenant, with their
// deliveries.
func deleteWebhooks(ctx context.Context, st store.Store) {
	for range 100 {
		ws, _, err := st.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tenant, Limit: store.MaxPageLimit})
		if err != nil || len(ws) == 0 {
			return
		}
		for _, w := range ws {
			_ = st.DeleteWebhook(ctx, w.ID)
		}
	}
}

// createWebhooks registers one webhook per receiver path, through the
// Registry as a host would.
func createWebhooks(ctx context.Context, st store.Store, rc *receiver, paths []string) ([]*store.Webhook, error) {
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{AllowHTTP: true})
	out := make([]*store.Webhook, 0, len(paths))
	for _, p := range paths {
		w, err := reg.Create(ctx, tenant, webhook.WebhookInput{URL: rc.url(p), Events: []string{webhook.EventWorkflowCompleted}})
		if err != nil {
			return nil, fmt.Errorf("create webhook: %w", err)
		}
		out = append(out, w)
	}
	return out, nil
}

// endToEnd delivers to one webhook through the given store.
func (b *bench) endToEnd(ctx context.Context, storeKind string) *result {
	return b.library(ctx, storeKind, []string{"/ok/" + b.name}, 1, b.o.Concurrency)
}

// fanout sends every event to 10 webhooks; with hung, the last never
// answers and the result counts the 9 others.
func (b *bench) fanout(ctx context.Context, hung bool) *result {
	paths := make([]string, 0, 10)
	for i := range 10 {
		paths = append(paths, fmt.Sprintf("/ok/fanout/%d", i))
	}
	healthy := 10
	if hung {
		paths[9] = hungPath
		healthy = 9
	}
	return b.library(ctx, b.o.FanoutStore+"store", paths, healthy, b.o.perWebhook())
}

// library emits events matching one webhook per path from -emitters
// goroutines, at most -window deliveries ahead of the receiver, while a
// dispatcher with -concurrency workers delivers them.
func (b *bench) library(ctx context.Context, storeKind string, paths []string, healthy, perWebhook int) *result {
	r := &result{Store: storeKind, Unit: "deliveries", Extra: map[string]float64{}}
	rc := newReceiver(b.clk, b.o.Window)
	defer rc.close()
	st, closeStore, err := b.openStore(ctx, storeKind)
	if err != nil {
		r.Error = fmt.Sprintf("open %s: %v", storeKind, err)
		return r
	}
	defer closeStore()
	if _, err := createWebhooks(ctx, st, rc, paths); err != nil {
		r.Error = err.Error()
		return r
	}
	d, err := webhook.New(st, b.config(perWebhook))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if err := d.Start(ctx); err != nil {
		r.Error = err.Error()
		return r
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq, errs atomic.Int64
	var firstErr atomic.Value
	b.goEmitters(&wg, func(buf []byte) {
		for rc.acquire(healthy, stop) {
			buf = eventData(buf[:0], b.clk.now(), seq.Add(1), b.o.DataBytes)
			ev := webhook.Event{Type: webhook.EventWorkflowCompleted, Tenant: tenant, Data: json.RawMessage(buf)}
			if _, err := d.Emit(ctx, ev); err != nil {
				if ctx.Err() != nil {
					return
				}
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		}
	})
	var phase atomic.Value
	done := b.progress(&phase, rc.received.Load)
	bm := newBoltMeter(st)
	elapsed := b.measure(ctx, &phase, func() { rc.measuring.Store(true); bm.start() }, func() { rc.measuring.Store(false); bm.stop() })
	close(stop)
	wg.Wait()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.o.AttemptTimeout+30*time.Second)
	stopErr := d.Stop(stopCtx)
	cancel()
	done()

	r.Count = rc.measured.Load()
	r.Seconds = elapsed.Seconds()
	r.PerSec = float64(r.Count) / r.Seconds
	r.Errors = errs.Load() + rc.badBodies.Load()
	latencies(r, &rc.hist, "emit-to-receipt")
	bm.report(r)
	s := d.Stats()
	r.Extra["emitted"] = float64(s.Emitted)
	r.Extra["attempts"] = float64(s.Attempts)
	r.Extra["succeeded"] = float64(s.Succeeded)
	if s.Retried > 0 {
		r.Extra["retried"] = float64(s.Retried)
	}
	if n := rc.hungHits.Load(); n > 0 {
		r.Extra["hungRequests"] = float64(n)
	}
	if e, ok := firstErr.Load().(string); ok {
		r.Note = joinNote(r.Note, "first Emit error: "+e)
	}
	if stopErr != nil {
		r.Note = joinNote(r.Note, "Stop: "+stopErr.Error())
	}
	if storeKind == "boltstore" && b.o.NoSync {
		r.Note = joinNote(r.Note, "bolt without fsync (-nosync)")
	}
	return r
}

// goEmitters starts -emitters goroutines, counted by wg, each running f
// with a buffer of its own for its events' data.
func (b *bench) goEmitters(wg *sync.WaitGroup, f func(buf []byte)) {
	for range b.o.Emitters {
		wg.Go(func() { f(make([]byte, 0, b.o.DataBytes+64)) })
	}
}

// emit measures durable Emit alone: boltstore, one matching webhook per
// event, no delivery loop, -emitters goroutines without a window.
func (b *bench) emit(ctx context.Context) *result {
	r := &result{Store: "boltstore", Unit: "events", Extra: map[string]float64{}}
	rc := newReceiver(b.clk, 0)
	defer rc.close()
	st, closeStore, err := b.openStore(ctx, "boltstore")
	if err != nil {
		r.Error = fmt.Sprintf("open boltstore: %v", err)
		return r
	}
	defer closeStore()
	if _, err := createWebhooks(ctx, st, rc, []string{"/ok/emit"}); err != nil {
		r.Error = err.Error()
		return r
	}
	d, err := webhook.New(st, b.config(b.o.Concurrency))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer d.Stop(context.Background())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq, errs, emitted, measured atomic.Int64
	var measuring atomic.Bool
	var hist histogram
	var firstErr atomic.Value
	b.goEmitters(&wg, func(buf []byte) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := b.clk.now()
			buf = eventData(buf[:0], t0, seq.Add(1), b.o.DataBytes)
			ev := webhook.Event{Type: webhook.EventWorkflowCompleted, Tenant: tenant, Data: json.RawMessage(buf)}
			res, err := d.Emit(ctx, ev)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				continue
			}
			if len(res.DeliveryIDs) != 1 {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("Emit stored %d deliveries, want 1", len(res.DeliveryIDs)))
			}
			emitted.Add(1)
			if measuring.Load() {
				measured.Add(1)
				hist.record(b.clk.now() - t0)
			}
		}
	})
	var phase atomic.Value
	done := b.progress(&phase, emitted.Load)
	bm := newBoltMeter(st)
	elapsed := b.measure(ctx, &phase, func() { measuring.Store(true); bm.start() }, func() { measuring.Store(false); bm.stop() })
	close(stop)
	wg.Wait()
	done()

	r.Count = measured.Load()
	r.Seconds = elapsed.Seconds()
	r.PerSec = float64(r.Count) / r.Seconds
	r.Errors = errs.Load()
	latencies(r, &hist, "Emit call")
	bm.report(r)
	r.Extra["emitted"] = float64(emitted.Load())
	if e, ok := firstErr.Load().(string); ok {
		r.Note = joinNote(r.Note, "first Emit error: "+e)
	}
	if b.o.NoSync {
		r.Note = joinNote(r.Note, "bolt without fsync (-nosync): not durable")
	}
	return r
}

// backlog stores -backlog pending deliveries with no dispatcher running,
// then starts one and times the drain. The latency is from the Start.
func (b *bench) backlog(ctx context.Context) *result {
	r := &result{Store: "boltstore", Unit: "deliveries", Extra: map[string]float64{}}
	rc := newReceiver(b.clk, 0)
	defer rc.close()
	st, closeStore, err := b.openStore(ctx, "boltstore")
	if err != nil {
		r.Error = fmt.Sprintf("open boltstore: %v", err)
		return r
	}
	defer closeStore()
	ws, err := createWebhooks(ctx, st, rc, []string{"/ok/backlog"})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	n := b.o.Backlog

	var phase atomic.Value
	phase.Store("fill")
	var filled atomic.Int64
	done := b.progress(&phase, func() int64 { return filled.Load() + rc.received.Load() })
	defer func() { done() }()

	t0 := time.Now()
	const batch = 1000
	buf := make([]byte, 0, batch*(b.o.DataBytes+512))
	for i := 0; i < n && ctx.Err() == nil; i += batch {
		k := min(batch, n-i)
		buf = buf[:0]
		recs := make([]store.Delivery, k)
		ds := make([]*store.Delivery, k)
		now := time.Now()
		for j := range recs {
			start := len(buf)
			evID := newID("evt_")
			buf = b.body(buf, evID, ws[0].ID, 0, int64(i+j))
			recs[j] = store.Delivery{
				ID: newID("del_"), WebhookID: ws[0].ID, EventID: evID,
				EventType: webhook.EventWorkflowCompleted, Tenant: tenant,
				Body: buf[start:len(buf):len(buf)], Status: store.StatusPending,
				NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
			}
			ds[j] = &recs[j]
		}
		if _, err := st.Enqueue(ctx, ds); err != nil {
			r.Error = fmt.Sprintf("fill: %v", err)
			return r
		}
		filled.Add(int64(k))
	}
	if ctx.Err() != nil {
		r.Error = ctx.Err().Error()
		return r
	}
	r.Extra["fillSeconds"] = time.Since(t0).Seconds()
	fillPeak := peakRSS()
	r.Extra["fillPeakRSSMiB"] = float64(fillPeak) / (1 << 20)
	buf = nil
	runtime.GC()
	debug.FreeOSMemory()
	reset := resetPeakRSS()
	r.Extra["drainStartRSSMiB"] = float64(currentRSS()) / (1 << 20)

	d, err := webhook.New(st, b.config(b.o.Concurrency))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	phase.Store("drain")
	rc.target.Store(int64(n))
	rc.floor.Store(b.clk.now())
	rc.measuring.Store(true)
	bm := newBoltMeter(st)
	bm.start()
	t1, cpu1 := time.Now(), cpuTime()
	if err := d.Start(ctx); err != nil {
		r.Error = err.Error()
		return r
	}
	var timedOut bool
	select {
	case <-rc.reached:
	case <-time.After(b.o.BacklogTimeout):
		timedOut = true
	case <-ctx.Done():
	}
	elapsed := time.Since(t1)
	b.cpu = cpuTime() - cpu1
	bm.stop()
	rc.measuring.Store(false)
	phase.Store("stopping")
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.o.AttemptTimeout+30*time.Second)
	stopErr := d.Stop(stopCtx)
	cancel()

	r.Count = rc.measured.Load()
	r.Seconds = elapsed.Seconds()
	r.PerSec = float64(r.Count) / r.Seconds
	r.Errors = rc.badBodies.Load()
	latencies(r, &rc.hist, "Start-to-receipt")
	bm.report(r)
	r.Extra["drainSeconds"] = elapsed.Seconds()
	r.PeakRSS = peakRSS()
	// What the resident set holds after the drain: the heap and stacks
	// (anonymous) and bbolt's memory map of its file (file-backed).
	r.Extra["endRssAnonMiB"] = float64(procStatus("RssAnon:")) / (1 << 20)
	r.Extra["endRssFileMiB"] = float64(procStatus("RssFile:")) / (1 << 20)
	if reset {
		r.hwmReset = true
		r.RSSScope = "child process, drain phase (VmHWM reset after the fill)"
	} else {
		r.PeakRSS = max(r.PeakRSS, fillPeak)
		r.RSSScope = "child process, fill and drain (VmHWM could not be reset)"
	}
	switch {
	case timedOut:
		r.Error = fmt.Sprintf("drained %d of %d in -backlog-timeout %v", rc.received.Load(), n, b.o.BacklogTimeout)
	case ctx.Err() != nil:
		r.Error = ctx.Err().Error()
	}
	if stopErr != nil && !errors.Is(stopErr, context.Canceled) {
		r.Note = joinNote(r.Note, "Stop: "+stopErr.Error())
	}
	if b.o.NoSync {
		r.Note = joinNote(r.Note, "bolt without fsync (-nosync)")
	}
	return r
}

// boltMeter reads a boltstore's Stats when the measured window opens and
// when it closes, and reports how busy the store's writer was in between.
// It does nothing for the other stores (a nil *boltMeter).
type boltMeter struct {
	st     *boltstore.Store
	t0, t1 time.Time
	s0, s1 boltstore.Stats
}

func newBoltMeter(st store.Store) *boltMeter {
	if bs, ok := st.(*boltstore.Store); ok {
		return &boltMeter{st: bs}
	}
	return nil
}

func (m *boltMeter) start() {
	if m != nil {
		m.t0, m.s0 = time.Now(), m.st.Stats()
	}
}

func (m *boltMeter) stop() {
	if m != nil {
		m.t1, m.s1 = time.Now(), m.st.Stats()
	}
}

// report adds to r's extras, for the measured window: boltWriterBusy, the
// share of the window the group commit held the file's writer (near 1, it
// bounds the scenario); boltCallsPerCommit; boltWriteShare, the share of
// that busy time spent writing pages and syncing them; and
// boltPageWritesPerUnit, the page writes (Stats.PageWrites: a node of several
// pages is one) per delivery (or event) counted.
func (m *boltMeter) report(r *result) {
	if m == nil || m.t1.IsZero() {
		return
	}
	busy := m.s1.Busy - m.s0.Busy
	if window := m.t1.Sub(m.t0); window > 0 {
		r.Extra["boltWriterBusy"] = busy.Seconds() / window.Seconds()
	}
	if commits := m.s1.Commits - m.s0.Commits; commits > 0 {
		r.Extra["boltCallsPerCommit"] = float64(m.s1.Calls-m.s0.Calls) / float64(commits)
	}
	if busy > 0 {
		r.Extra["boltWriteShare"] = (m.s1.WriteTime - m.s0.WriteTime).Seconds() / busy.Seconds()
	}
	if r.Count > 0 {
		r.Extra["boltPageWritesPerUnit"] = float64(m.s1.PageWrites-m.s0.PageWrites) / float64(r.Count)
	}
}
