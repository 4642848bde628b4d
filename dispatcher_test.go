package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/noa-server/webhook/internal/redact"
	"github.com/noa-server/webhook/internal/testlog"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/memstore"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// loopback lets a test dispatcher reach httptest servers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// storeCtor is one Store implementation under test.
type storeCtor struct {
	name string
	new  func(t *testing.T) store.Store
}

func newMemStore(t *testing.T) store.Store {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	return st
}

// eachStore runs f against every Store implementation.
func eachStore(t *testing.T, f func(t *testing.T, newStore func(t *testing.T) store.Store)) {
	for _, c := range testStores {
		t.Run(c.name, func(t *testing.T) { f(t, c.new) })
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testConfig is a configuration that reaches loopback servers and polls
// often, for tests.
func testConfig() *Config {
	return &Config{
		AllowedRanges: loopback,
		AllowAnyPort:  true,
		PollInterval:  10 * time.Millisecond,
		Timeout:       5 * time.Second,
	}
}

// mustNew returns a dispatcher that is not started.
func mustNew(t testing.TB, st store.Store, cfg *Config) *Dispatcher {
	t.Helper()
	d, err := New(st, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// newStarted returns a started dispatcher; the caller stops it.
func newStarted(t testing.TB, st store.Store, cfg *Config) *Dispatcher {
	t.Helper()
	d := mustNew(t, st, cfg)
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return d
}

// startDispatcher starts a dispatcher and stops it when the test ends.
func startDispatcher(t *testing.T, st store.Store, cfg *Config) *Dispatcher {
	t.Helper()
	return startNew(t, mustNew(t, st, cfg))
}

// startNew starts d, made by New, and stops it when the test ends.
func startNew(t *testing.T, d *Dispatcher) *Dispatcher {
	t.Helper()
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return d
}

var hookSeq atomic.Int64

// addWebhook stores an active webhook of tenant for url and patterns.
func addWebhook(t *testing.T, st store.Store, tenant, url string, patterns ...string) *store.Webhook {
	t.Helper()
	if len(patterns) == 0 {
		patterns = []string{"*"}
	}
	w := &store.Webhook{
		ID:      fmt.Sprintf("wh_test%06d", hookSeq.Add(1)),
		Tenant:  tenant,
		URL:     url,
		Events:  patterns,
		Active:  true,
		Secrets: []store.Secret{{Value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
	}
	if err := st.CreateWebhook(context.Background(), w); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	return w
}

// saveWebhook stores w over the webhook of its id.
func saveWebhook(t *testing.T, st store.Store, w *store.Webhook) {
	t.Helper()
	if _, err := st.UpdateWebhook(context.Background(), w.ID, func(c *store.Webhook) error { *c = *w.Clone(); return nil }); err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
}

// request is what a test receiver saw.
type request struct {
	header http.Header
	body   []byte
}

// receiver is an httptest server answering with handle (200 when nil) and
// recording every request.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
	got  chan request
}

func newReceiver(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan request, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{header: r.Header.Clone(), body: body}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, req)
		n := len(rc.reqs)
		rc.mu.Unlock()
		select {
		case rc.got <- req:
		default:
		}
		if handle != nil {
			handle(w, r, n)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// newHangingReceiver returns a receiver whose requests hang until they are
// cancelled or the test ends: its cleanup releases them before it closes
// the receiver.
func newHangingReceiver(t *testing.T) *receiver {
	t.Helper()
	hang, release := newGate()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(release) // runs before the receiver's own cleanup
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

// next waits for the receiver's next request.
func (rc *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("no request reached the receiver")
		return request{}
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStatus waits until the delivery has the status and attempt count.
func waitStatus(t *testing.T, st store.Store, id string, status store.Status, attempts int) *store.Delivery {
	t.Helper()
	var last *store.Delivery
	waitFor(t, "delivery "+id+" to be "+string(status)+" after "+strconv.Itoa(attempts)+" attempts", func() bool {
		d, err := st.GetDelivery(context.Background(), id)
		if err != nil {
			t.Fatalf("GetDelivery: %v", err)
		}
		last = d
		return d.Status == status && d.Attempts == attempts && d.LeaseOwner == ""
	})
	return last
}

func attempts(t *testing.T, st store.Store, id string) []*store.Attempt {
	t.Helper()
	as, err := st.ListAttempts(context.Background(), id)
	if err != nil {
		t.Fatalf("ListAttempts: %v", err)
	}
	return as
}

func TestEmitDeliversSignedPayload(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		w := addWebhook(t, st, "acme", rc.URL+"/hook", EventWorkflowCompleted)
		// A store may hold headers the Registry refuses: the dispatcher
		// drops them, never sending a forged signature or a broken line.
		w.Headers = map[string]string{"X-Custom": "yes", "X-Webhook-Event": "forged", "User-Agent": "forged", "Authorization": "Bearer s3cr3t",
			"webhook-signature": "v1,forged", "Host": "evil.example", "Content-Length": "0", "X-Crlf": "a\r\nX-Injected: 1"}
		w.Secrets = []store.Secret{
			{Value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
			{Value: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", ExpiresAt: time.Now().Add(time.Hour)},
			{Value: "whsec_expiredexpiredexpiredexpired00", ExpiresAt: time.Now().Add(-time.Hour)},
		}
		saveWebhook(t, st, w)
		d := startDispatcher(t, st, testConfig())
		ts := time.Date(2025, 10, 22, 10, 0, 0, 0, time.UTC)
		res, err := d.Emit(context.Background(), Event{
			ID: "evt_1", Type: EventWorkflowCompleted, Tenant: "acme",
			Data: map[string]any{"workflowId": "wf_1"}, RequestID: "req_9", Time: ts,
		})
		if err != nil {
			t.Fatalf("Emit: %v", err)
		}
		if len(res.DeliveryIDs) != 1 || res.EventID != "evt_1" {
			t.Fatalf("Emit = %+v, want one delivery of evt_1", res)
		}
		got := rc.next(t)
		want := `{"id":"evt_1","event":"workflow.completed","timestamp":"2025-10-22T10:00:00Z","webhookId":"` + w.ID +
			`","data":{"workflowId":"wf_1"},"metadata":{"apiVersion":"v1","requestId":"req_9"}}`
		if string(got.body) != want {
			t.Errorf("body:\n got %s\nwant %s", got.body, want)
		}
		for k, v := range map[string]string{
			"Content-Type":       "application/json",
			"User-Agent":         DefaultUserAgent,
			"X-Webhook-Id":       w.ID,
			"X-Webhook-Event":    EventWorkflowCompleted,
			"X-Webhook-Delivery": res.DeliveryIDs[0],
			"X-Webhook-Attempt":  "1",
			"X-Custom":           "yes",
			"Webhook-Id":         "evt_1",
			"Authorization":      "Bearer s3cr3t",
		} {
			if g := got.header.Get(k); g != v {
				t.Errorf("header %s = %q, want %q", k, g, v)
			}
		}
		for _, k := range []string{"X-Crlf", "X-Injected"} {
			if vs, ok := got.header[k]; ok {
				t.Errorf("header %s = %q was sent, want it dropped", k, vs)
			}
		}
		if g := got.header.Values(HeaderStandardSignature); len(g) != 1 || strings.Contains(g[0], "forged") {
			t.Errorf("webhook-signature = %q, want only the dispatcher's", g)
		}
		if g := got.header.Get(HeaderSignature); g != SignLegacy("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", got.body) {
			t.Errorf("X-Webhook-Signature = %q, want the current secret's", g)
		}
		// Current and unexpired previous secret verify; the expired one is not used.
		for _, sec := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"} {
			v, err := NewVerifier([]string{sec}, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(got.body, got.header); err != nil {
				t.Errorf("Verify with %.12s…: %v", sec, err)
			}
		}
		v, _ := NewVerifier([]string{"whsec_expiredexpiredexpiredexpired00"}, VerifyOptions{})
		if err := v.Verify(got.body, got.header); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("expired secret verifies: %v", err)
		}

		del := waitStatus(t, st, res.DeliveryIDs[0], store.StatusSuccess, 1)
		if del.LastStatusCode != 200 {
			t.Errorf("LastStatusCode = %d", del.LastStatusCode)
		}
		as := attempts(t, st, del.ID)
		if len(as) != 1 {
			t.Fatalf("%d attempts recorded, want 1", len(as))
		}
		a := as[0]
		if a.ResponseStatus != 200 || a.ErrorClass != store.ErrorNone || a.Number != 1 || a.Duration <= 0 {
			t.Errorf("attempt = %+v", a)
		}
		if g := a.RequestHeaders.Get("Authorization"); g != "[redacted]" {
			t.Errorf("recorded Authorization = %q, want it redacted", g)
		}
		if a.RequestHeaders.Get(HeaderStandardSignature) == "" || a.RequestHeaders.Get("X-Webhook-Delivery") != del.ID {
			t.Errorf("recorded request headers lack ours: %v", a.RequestHeaders)
		}
		for k, vs := range a.RequestHeaders {
			for _, v := range vs {
				for _, s := range w.Secrets {
					if v == s.Value {
						t.Errorf("secret recorded in header %s", k)
					}
				}
			}
		}
	})
}

// writeCounter counts the writes made on the connections it dials.
type writeCounter struct {
	n atomic.Int64
}

type countedConn struct {
	net.Conn
	wc *writeCounter
}

func (c countedConn) Write(p []byte) (int, error) {
	c.wc.n.Add(1)
	return c.Conn.Write(p)
}

// TestAttemptIsOneWrite checks that an attempt's request leaves in one
// write, through the default transport and through NewTransport's:
// net/http's Transport flushes the headers on their own first (a second
// system call, and a second packet on the wire) unless it recognises the
// body as in-memory.
func TestAttemptIsOneWrite(t *testing.T) {
	counted := func(writes *writeCounter, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countedConn{Conn: c, wc: writes}, nil
		}
	}
	t.Run("default", func(t *testing.T) {
		var writes writeCounter
		tr := newTestH1(t)
		tr.dial = counted(&writes, tr.dial)
		testOneWrite(t, tr, &writes)
	})
	t.Run("NewTransport", func(t *testing.T) {
		var writes writeCounter
		tr, err := NewTransport(TransportOptions{AllowedRanges: loopback, AllowAnyPort: true})
		if err != nil {
			t.Fatal(err)
		}
		tr.DialContext = counted(&writes, tr.DialContext)
		testOneWrite(t, tr, &writes)
	})
}

func testOneWrite(t *testing.T, tr http.RoundTripper, writes *writeCounter) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	addWebhook(t, st, "acme", rc.URL+"/hook", EventWorkflowCompleted)
	cfg := testConfig()
	cfg.Transport, cfg.AllowedRanges, cfg.AllowAnyPort = tr, nil, false // tr has its own guard
	d := startDispatcher(t, st, cfg)
	const events = 3
	for i := range events {
		deliverOne(t, d, st, i)
	}
	if rc.count() != events {
		t.Fatalf("receiver got %d requests, want %d", rc.count(), events)
	}
	if n := writes.n.Load(); n != events {
		t.Errorf("%d writes for %d requests, want one write per request", n, events)
	}
}

func TestEmitMatchesTypeAndTenant(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		exact := addWebhook(t, st, "a", rc.URL, EventAgentSpawned)
		prefix := addWebhook(t, st, "a", rc.URL, "agent.*")
		all := addWebhook(t, st, "a", rc.URL, "*")
		addWebhook(t, st, "a", rc.URL, "workflow.*")
		addWebhook(t, st, "b", rc.URL, "*")
		inactive := addWebhook(t, st, "a", rc.URL, "*")
		inactive.Active = false
		saveWebhook(t, st, inactive)
		d, err := New(st, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Emit(context.Background(), Event{Type: EventAgentSpawned, Tenant: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{exact.ID, prefix.ID, all.ID}, res.WebhookIDs); diff != "" {
			t.Errorf("webhooks (-want +got):\n%s", diff)
		}
		for _, id := range res.DeliveryIDs {
			del, err := st.GetDelivery(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if del.Tenant != "a" {
				t.Errorf("delivery of tenant %q", del.Tenant)
			}
		}
		res, err = d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "nobody"})
		if err != nil || len(res.DeliveryIDs) != 0 {
			t.Errorf("Emit for a tenant without webhooks = %+v, %v", res, err)
		}
	})
}

func TestEmitIsIdempotent(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		addWebhook(t, st, "a", rc.URL)
		addWebhook(t, st, "a", rc.URL)
		d := startDispatcher(t, st, testConfig())
		ev := Event{ID: "evt_retry", Type: EventUserLogin, Tenant: "a"}
		first, err := d.Emit(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		second, err := d.Emit(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("second Emit differs (-first +second):\n%s", diff)
		}
		for _, id := range first.DeliveryIDs {
			waitStatus(t, st, id, store.StatusSuccess, 1)
		}
		if n := rc.count(); n != 2 {
			t.Errorf("receiver got %d requests, want 2 (one per webhook)", n)
		}
	})
}

func TestEmitRefusesBadEvents(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	addWebhook(t, st, "a", "https://example.invalid/")
	d, err := New(st, &Config{MaxPayloadBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ev   Event
		want error
	}{
		{"unknown type", Event{Type: "order.created", Tenant: "a"}, ErrUnknownEventType},
		{"no tenant", Event{Type: EventUserLogin}, ErrInvalidEvent},
		{"id with a dot", Event{ID: "evt.1", Type: EventUserLogin, Tenant: "a"}, ErrInvalidEvent},
		{"id with a space", Event{ID: "evt 1", Type: EventUserLogin, Tenant: "a"}, ErrInvalidEvent},
		{"data that does not marshal", Event{Type: EventUserLogin, Tenant: "a", Data: map[string]any{"c": make(chan int)}}, ErrInvalidEvent},
		{"invalid raw JSON", Event{Type: EventUserLogin, Tenant: "a", Data: json.RawMessage(`{"a":`)}, ErrInvalidEvent},
		{"time after year 9999", Event{Type: EventUserLogin, Tenant: "a", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrInvalidEvent},
		{"time before year 0 in UTC", Event{Type: EventUserLogin, Tenant: "a", Time: time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600))}, ErrInvalidEvent},
		{"oversized data", Event{Type: EventUserLogin, Tenant: "a", Data: map[string]string{"x": string(make([]byte, 200))}}, ErrPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Emit(context.Background(), tt.ev)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Emit error = %v, want %v", err, tt.want)
			}
		})
	}
	var tooLarge *PayloadTooLargeError
	_, err = d.Emit(context.Background(), tests[len(tests)-1].ev)
	if !errors.As(err, &tooLarge) || tooLarge.Limit != 100 || tooLarge.Size <= 100 {
		t.Errorf("oversized data error = %#v", err)
	}
	ds, _, err := st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: "a", Limit: 10})
	if err != nil || len(ds) != 0 {
		t.Errorf("refused events stored %d deliveries (%v)", len(ds), err)
	}
}

func TestRetryScheduleWithFakeClock(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		clock := newFakeClock()
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "boom")
		})
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.Retry = RetryPolicy{Jitter: -1}
		d := startDispatcher(t, st, cfg)
		id := emit(t, d)[0]
		// The written schedule: 30s, 2m, 8m, 32m, then failed.
		for i, delay := range []time.Duration{30 * time.Second, 2 * time.Minute, 8 * time.Minute, 32 * time.Minute} {
			del := waitStatus(t, st, id, store.StatusPending, i+1)
			if want := clock.Now().Add(delay); !del.NextAttemptAt.Equal(want) {
				t.Fatalf("after attempt %d: next at %v, want now+%v = %v", i+1, del.NextAttemptAt, delay, want)
			}
			clock.Advance(delay - time.Second)
			time.Sleep(30 * time.Millisecond) // a few polls: not yet due
			if n := rc.count(); n != i+1 {
				t.Fatalf("attempt %d came %v early", n, time.Second)
			}
			clock.Advance(time.Second)
			if got := rc.next(t); got.header.Get("X-Webhook-Attempt") != strconv.Itoa(i+1) {
				t.Fatalf("attempt header %q, want %d", got.header.Get("X-Webhook-Attempt"), i+1)
			}
		}
		del := waitStatus(t, st, id, store.StatusFailed, 5)
		if del.LastStatusCode != 500 {
			t.Errorf("LastStatusCode = %d", del.LastStatusCode)
		}
		as := attempts(t, st, id)
		if len(as) != 5 {
			t.Fatalf("%d attempts, want 5", len(as))
		}
		if a := as[4]; a.ErrorClass != store.ErrorHTTPStatus || string(a.ResponseBody) != "boom" || a.ResponseStatus != 500 {
			t.Errorf("last attempt = %+v", a)
		}
		// Redeliver: a new round with a fresh budget.
		if _, err := d.Redeliver(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, id, store.StatusPending, 6)
		if _, err := d.Redeliver(context.Background(), id); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Redeliver of a pending delivery: %v, want ErrConflict", err)
		}
	})
}

// TestRetryShortMaxInterval: a host that caps retries at 10 s
// (MaxInterval below the default InitialInterval of 30 s) gets them 10 s
// apart. The first retry used to be due at once, so a failing endpoint
// got two attempts back to back.
func TestRetryShortMaxInterval(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		clock := newFakeClock()
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			w.WriteHeader(http.StatusInternalServerError)
		})
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.Retry = RetryPolicy{MaxInterval: 10 * time.Second, Jitter: -1}
		d := startDispatcher(t, st, cfg)
		id := emit(t, d)[0]
		rc.next(t)
		time.Sleep(50 * time.Millisecond) // a few polls, the clock standing still
		if n := rc.count(); n != 1 {
			t.Fatalf("%d attempts with the clock standing still, want 1: the retry came at once", n)
		}
		del := waitStatus(t, st, id, store.StatusPending, 1)
		if want := clock.Now().Add(10 * time.Second); !del.NextAttemptAt.Equal(want) {
			t.Errorf("next attempt at %v, want now+10s = %v", del.NextAttemptAt, want)
		}
	})
}

func TestRetryAfterSetsNextAttempt(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		clock := newFakeClock()
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Retry-After", "300")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.Header().Set("Retry-After", clock.Now().Add(10*time.Minute).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.Retry = RetryPolicy{Jitter: -1}
		d := startDispatcher(t, st, cfg)
		id := emit(t, d)[0]
		del := waitStatus(t, st, id, store.StatusPending, 1)
		if want := clock.Now().Add(5 * time.Minute); !del.NextAttemptAt.Equal(want) {
			t.Errorf("after 429 Retry-After: 300: next at %v, want %v", del.NextAttemptAt, want)
		}
		clock.Advance(5 * time.Minute)
		del = waitStatus(t, st, id, store.StatusPending, 2)
		if want := clock.Now().Add(10 * time.Minute); !del.NextAttemptAt.Equal(want) {
			t.Errorf("after 503 with an HTTP date: next at %v, want %v", del.NextAttemptAt, want)
		}
	})
}

// TestRetryAfterDateOfASlowResponse: a Retry-After date is the time of the
// next attempt however long the response took to arrive.
func TestRetryAfterDateOfASlowResponse(t *testing.T) {
	st := newMemStore(t)
	clock := newFakeClock()
	dates := make(chan time.Time, 1)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		clock.Advance(20 * time.Second) // the receiver takes its time
		at := clock.Now().Add(2 * time.Minute)
		dates <- at
		w.Header().Set("Retry-After", at.Format(http.TimeFormat))
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	addWebhook(t, st, "a", rc.URL)
	cfg := testConfig()
	cfg.Now = clock.Now
	cfg.Retry = RetryPolicy{Jitter: -1}
	d := startDispatcher(t, st, cfg)
	del := waitStatus(t, st, emit(t, d)[0], store.StatusPending, 1)
	if want := <-dates; !del.NextAttemptAt.Equal(want) {
		t.Errorf("next attempt at %v, want the Retry-After date %v", del.NextAttemptAt, want)
	}
}

func TestGoneDisablesWebhook(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		release := make(chan struct{})
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			<-release
			w.WriteHeader(http.StatusGone)
		})
		w := addWebhook(t, st, "a", rc.URL)
		hooks := &recordingHooks{}
		cfg := testConfig()
		cfg.PerWebhookConcurrency = 1
		cfg.Hooks = hooks
		d := startDispatcher(t, st, cfg)
		ids := emitN(t, d, 3)
		rc.next(t)
		close(release)
		waitFor(t, "webhook disabled", func() bool {
			got, err := st.GetWebhook(context.Background(), w.ID)
			return err == nil && !got.Active
		})
		got, _ := st.GetWebhook(context.Background(), w.ID)
		if got.DisabledReason == "" {
			t.Error("no DisabledReason")
		}
		for _, id := range ids {
			waitFor(t, "deliveries failed", func() bool {
				del, err := st.GetDelivery(context.Background(), id)
				return err == nil && del.Status == store.StatusFailed && del.LeaseOwner == ""
			})
		}
		if n := rc.count(); n != 1 {
			t.Errorf("receiver got %d requests after 410, want 1", n)
			rc.mu.Lock()
			for _, r := range rc.reqs {
				t.Logf("request: delivery %s, attempt %s", r.header.Get("X-Webhook-Delivery"), r.header.Get("X-Webhook-Attempt"))
			}
			rc.mu.Unlock()
			t.Logf("emitted deliveries, in order: %v", ids)
		}
		waitFor(t, "WebhookDisabled hook", func() bool { return hooks.count("disabled") == 1 })
		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil || len(res.DeliveryIDs) != 0 {
			t.Errorf("Emit after disable = %+v, %v; want no delivery", res, err)
		}
	})
}

func TestFailureClasses(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		hanging := newHangingReceiver(t)
		internal := newReceiver(t, nil)
		redirect := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			http.Redirect(w, r, internal.URL+"/admin", http.StatusFound)
		})
		reset := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				conn.Close()
			}
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		refusedURL := "http://" + ln.Addr().String() + "/"
		ln.Close()

		cases := []struct {
			name   string
			url    string
			class  store.ErrorClass
			status int
		}{
			{"timeout", hanging.URL, store.ErrorTimeout, 0},
			{"redirect not followed", redirect.URL, store.ErrorHTTPStatus, http.StatusFound},
			{"connection reset", reset.URL, store.ErrorReset, 0},
			{"connection refused", refusedURL, store.ErrorRefused, 0},
			{"unsupported scheme", "ftp://127.0.0.1/", store.ErrorBlocked, 0},
		}
		cfg := testConfig()
		cfg.Timeout = 300 * time.Millisecond
		d := startDispatcher(t, st, cfg)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tenant := "t-" + c.name
				addWebhook(t, st, tenant, c.url)
				res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: tenant})
				if err != nil {
					t.Fatal(err)
				}
				id := res.DeliveryIDs[0]
				waitStatus(t, st, id, store.StatusPending, 1)
				a := attempts(t, st, id)[0]
				if a.ErrorClass != c.class || a.ResponseStatus != c.status || a.Error == "" {
					t.Errorf("attempt: class %q status %d error %q; want class %q status %d", a.ErrorClass, a.ResponseStatus, a.Error, c.class, c.status)
				}
			})
		}
		if n := internal.count(); n != 0 {
			t.Errorf("the redirect target got %d requests", n)
		}
	})
}

// TestSlowEndpointDoesNotBlockOthers: one endpoint hangs until the attempt
// timeout, nine answer at once; the nine keep delivering.
func TestSlowEndpointDoesNotBlockOthers(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		slow := newHangingReceiver(t)
		addWebhook(t, st, "a", slow.URL)
		var healthy []*receiver
		for range 9 {
			rc := newReceiver(t, nil)
			addWebhook(t, st, "a", rc.URL)
			healthy = append(healthy, rc)
		}
		cfg := testConfig()
		cfg.Workers = 8
		cfg.PerWebhookConcurrency = 2
		cfg.Timeout = 30 * time.Second // the slow endpoint holds its slots all test long
		cfg.Lease = time.Minute
		d, err := New(st, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		const events = 30
		emitN(t, d, events)
		// Succeeded counts a delivery once recorded, a moment before its
		// worker lets go of it: wait for both.
		waitFor(t, "every healthy endpoint to get every event, and only the slow one's in flight", func() bool {
			s := d.Stats()
			return s.Succeeded == 9*events && s.InFlight == 2
		})
		for i, rc := range healthy {
			if n := rc.count(); n != events {
				t.Errorf("healthy endpoint %d got %d requests, want %d", i, n, events)
			}
		}
		if n := slow.count(); n != 2 {
			t.Errorf("slow endpoint got %d concurrent requests, want its cap of 2", n)
		}
		if s := d.Stats(); s.Succeeded != 9*events || s.InFlight != 2 {
			t.Errorf("stats: %d succeeded, %d in flight; want %d and 2", s.Succeeded, s.InFlight, 9*events)
		}
		// Stop with a short deadline cancels the hanging attempts, records
		// them as canceled and due at once.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := d.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop = %v, want DeadlineExceeded", err)
		}
		ds, _, err := st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: "a", Status: store.StatusPending, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != events {
			t.Errorf("%d pending deliveries, want %d (the slow endpoint's)", len(ds), events)
		}
		leased := 0
		for _, del := range ds {
			if del.LeaseOwner != "" {
				leased++
			}
		}
		if leased != 0 {
			t.Errorf("%d deliveries still leased after Stop", leased)
		}
		// Another dispatcher takes them at once.
		canceled := 0
		for _, del := range ds {
			if del.Attempts == 1 {
				if a := attempts(t, st, del.ID); a[0].ErrorClass == store.ErrorCanceled {
					canceled++
				}
			}
		}
		if canceled != 2 {
			t.Errorf("%d canceled attempts recorded, want 2", canceled)
		}
	})
}

func TestLifecycle(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	d, err := New(st, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := d.SendNow(ctx, "del_x"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SendNow before Start: %v", err)
	}
	w := addWebhook(t, st, "a", "https://example.com/hook")
	if _, _, err := d.SendTest(ctx, w.ID, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SendTest before Start: %v", err)
	}
	// A delivery due in an hour: SendNow waits for it until Stop.
	later := &store.Delivery{ID: "del_later", WebhookID: w.ID, EventID: "evt_later", EventType: EventUserLogin,
		Tenant: "a", Body: []byte("{}"), NextAttemptAt: time.Now().Add(time.Hour)}
	if _, err := st.Enqueue(ctx, []*store.Delivery{later}); err != nil {
		t.Fatal(err)
	}
	// Stop before Start is safe, and final: a Dispatcher runs once.
	never, err := New(st, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := never.Stop(ctx); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := never.Start(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after a Stop before Start: %v, want ErrStopped", err)
	}
	for range 2 {
		if err := d.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	waiting := make(chan error, 1)
	go func() {
		_, _, err := d.SendNow(ctx, later.ID)
		waiting <- err
	}()
	waitFor(t, "SendNow to wait", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.waiters[later.ID]) == 1
	})
	for range 2 {
		if err := d.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	if err := <-waiting; !errors.Is(err, ErrNotRunning) {
		t.Errorf("SendNow waiting when Stop came: %v, want ErrNotRunning", err)
	}
	if _, _, err := d.SendNow(ctx, later.ID); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SendNow after Stop: %v", err)
	}
	if _, _, err := d.SendTest(ctx, w.ID, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SendTest after Stop: %v", err)
	}
	// Emit after Stop stores its deliveries for the next process.
	if res, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"}); err != nil || len(res.DeliveryIDs) != 1 {
		t.Errorf("Emit after Stop = %v, %v; want one delivery stored", res.DeliveryIDs, err)
	}
	if err := d.Start(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
	st.Close()
	d2, _ := New(st, nil)
	if err := d2.Start(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Start on a closed store: %v", err)
	}
}

// TestStoreClosedWhileRunning: a store closed under a running dispatcher
// (a host shutting down in the wrong order) gives typed errors, not a
// panic, and Stop still ends once the attempt in flight does.
func TestStoreClosedWhileRunning(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newHangingReceiver(t)
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Timeout = 300 * time.Millisecond
		cfg.PurgeInterval = 10 * time.Millisecond
		d := newStarted(t, st, cfg)
		ctx := context.Background()
		res, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil {
			t.Fatal(err)
		}
		rc.next(t)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // polls and purges meet the closed store
		if _, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"}); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Emit on a closed store: %v, want ErrClosed", err)
		}
		if _, _, err := d.SendNow(ctx, res.DeliveryIDs[0]); !errors.Is(err, store.ErrClosed) {
			t.Errorf("SendNow on a closed store: %v, want ErrClosed", err)
		}
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := d.Stop(stopCtx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

func TestSendNowAndSendTest(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		var fail atomic.Bool
		fail.Store(true)
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if fail.Load() {
				w.WriteHeader(http.StatusBadRequest)
			}
		})
		w := addWebhook(t, st, "a", rc.URL, EventUserLogin)
		cfg := testConfig()
		cfg.Retry.MaxAttempts = 1
		d := startDispatcher(t, st, cfg)
		ctx := context.Background()

		del, a, err := d.SendTest(ctx, w.ID, map[string]string{"hello": "world"})
		if err != nil {
			t.Fatalf("SendTest: %v", err)
		}
		if del.EventType != EventWebhookTest || del.Status != store.StatusFailed || a.ResponseStatus != 400 {
			t.Errorf("SendTest = %+v, %+v", del, a)
		}
		if !bytes.Contains(del.Body, []byte(`"data":{"hello":"world"},"metadata":{"apiVersion":"v1","requestId":"req_test_`)) {
			t.Errorf("SendTest body = %s, want the data and a req_test_ request id", del.Body)
		}
		fail.Store(false)
		del, a, err = d.SendNow(ctx, del.ID)
		if err != nil {
			t.Fatalf("SendNow: %v", err)
		}
		if del.Status != store.StatusSuccess || a.ResponseStatus != 200 || a.Number != 2 {
			t.Errorf("SendNow of a failed delivery = %+v, %+v", del, a)
		}
		if _, _, err := d.SendTest(ctx, "wh_missing", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SendTest of a missing webhook: %v", err)
		}
	})
}

// TestSendNowAfterAnAttemptSeenInTheStore: a SendNow that comes while the
// worker of the delivery's previous attempt has recorded it but not yet
// handed it to its waiters (a caller that read that attempt from the
// store: SendTest's poll, or the API) returns the attempt it made, not the
// previous one.
func TestSendNowAfterAnAttemptSeenInTheStore(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		completed, recorded := newGate()
		release, resume := newGate()
		redeliver, redelivered := newGate()
		st := &gatedRecord{Store: newStore(t), recorded: recorded, release: release, redelivered: redelivered}
		// The second attempt comes after the first's worker is done: a
		// claim sends no delivery that is in flight here.
		var ok atomic.Bool
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if !ok.Load() {
				w.WriteHeader(http.StatusBadRequest)
			}
		})
		addWebhook(t, st, "a", rc.URL, EventUserLogin)
		cfg := testConfig()
		cfg.Retry.MaxAttempts = 1
		d := startDispatcher(t, st, cfg)
		t.Cleanup(resume) // before Stop, which waits for the worker
		ctx := context.Background()
		res, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil {
			t.Fatal(err)
		}
		waitGate(t, completed, "the first attempt recorded")
		ok.Store(true)
		type sent struct {
			del *Delivery
			a   *Attempt
			err error
		}
		got := make(chan sent, 1)
		go func() {
			del, a, err := d.SendNow(ctx, res.DeliveryIDs[0])
			got <- sent{del, a, err}
		}()
		waitGate(t, redeliver, "SendNow's redelivery")
		resume()
		select {
		case s := <-got:
			if s.err != nil {
				t.Fatalf("SendNow: %v", s.err)
			}
			if s.a.Number != 2 || s.a.ResponseStatus != http.StatusOK || s.del.Status != store.StatusSuccess || s.del.Attempts != 2 {
				t.Errorf("SendNow = attempt %d (HTTP %d), delivery %s after %d attempts; want attempt 2, 200, success after 2",
					s.a.Number, s.a.ResponseStatus, s.del.Status, s.del.Attempts)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("SendNow did not return")
		}
	})
}

// TestSendTestReturnsAfterTheHooks: the attempt a SendTest (or SendNow)
// gets was made by this Dispatcher: it returns once the attempt was
// reported to the hooks and counted in Stats, not as soon as the store
// shows it (which its polling, for an attempt another Dispatcher makes,
// would see first).
func TestSendTestReturnsAfterTheHooks(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		w := addWebhook(t, st, "a", rc.URL, EventUserLogin)
		entered, enter := newGate()
		release, resume := newGate()
		hooks := &blockingHooks{enter: enter, release: release}
		cfg := testConfig()
		cfg.Hooks = hooks
		d := startDispatcher(t, st, cfg)
		t.Cleanup(resume) // before Stop, which waits for the hook
		got := goSendTest(d, w.ID)
		waitGate(t, entered, "DeliverySucceeded")
		// The attempt is in the store; the hook has not returned.
		select {
		case s := <-got:
			t.Fatalf("SendTest returned (%v) before DeliverySucceeded did", s.err)
		case <-time.After(20 * cfg.PollInterval):
		}
		resume()
		select {
		case s := <-got:
			if s.err != nil || s.del.Status != store.StatusSuccess {
				t.Fatalf("SendTest = %+v, %v", s.del, s.err)
			}
			if st := d.Stats(); st.Attempts != 1 || st.Succeeded != 1 {
				t.Errorf("Stats = %+v; want 1 attempt, 1 succeeded", st)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("SendTest did not return")
		}
	})
}

// sendTestResult is what SendTest returned, less its attempt.
type sendTestResult struct {
	del *Delivery
	err error
}

// goSendTest calls SendTest of webhookID in a goroutine of its own; the
// channel gets what it returned.
func goSendTest(d *Dispatcher, webhookID string) <-chan sendTestResult {
	got := make(chan sendTestResult, 1)
	go func() {
		del, _, err := d.SendTest(context.Background(), webhookID, nil)
		got <- sendTestResult{del, err}
	}()
	return got
}

// blockingHooks calls enter in DeliverySucceeded, then waits there for
// release.
type blockingHooks struct {
	NopHooks
	enter   func()
	release <-chan struct{}
}

func (h *blockingHooks) DeliverySucceeded(context.Context, *Delivery) {
	h.enter()
	<-h.release
}

// gatedRecord is a store whose first Complete, once it has recorded the
// attempt, closes recorded and waits for release, and whose first
// Redeliver closes redelivered.
type gatedRecord struct {
	store.Store
	completeOnce, redeliverOnce sync.Once
	recorded, redelivered       func()
	release                     <-chan struct{}
}

func (s *gatedRecord) Complete(ctx context.Context, p store.CompleteParams) error {
	err := s.Store.Complete(ctx, p)
	s.completeOnce.Do(func() {
		s.recorded()
		<-s.release
	})
	return err
}

func (s *gatedRecord) Redeliver(ctx context.Context, p store.RedeliverParams) (*store.Delivery, error) {
	d, err := s.Store.Redeliver(ctx, p)
	s.redeliverOnce.Do(s.redelivered)
	return d, err
}

// waitGate waits for gate to close, or fails the test after 10 s.
func waitGate(t *testing.T, gate <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-gate:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// readSignal is a store that tells when GetDelivery has read delivery id.
type readSignal struct {
	store.Store
	id   string
	read chan struct{} // capacity 1
}

func (s *readSignal) GetDelivery(ctx context.Context, id string) (*store.Delivery, error) {
	del, err := s.Store.GetDelivery(ctx, id)
	if id == s.id {
		select {
		case s.read <- struct{}{}:
		default:
		}
	}
	return del, err
}

// TestSendNowAndSendTestWhenFailedWithTheWebhook: a delivery that fails
// with its webhook (another delivery met 410 Gone) while SendNow or
// SendTest waits for its attempt ends the wait at once, instead of holding
// the caller until its context ends.
func TestSendNowAndSendTestWhenFailedWithTheWebhook(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		for _, call := range []string{"SendNow", "SendTest"} {
			t.Run(call, func(t *testing.T) {
				gone := make(chan struct{})
				rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
					select {
					case <-gone:
					case <-r.Context().Done():
					}
					w.WriteHeader(http.StatusGone)
				})
				st := &readSignal{Store: newStore(t), read: make(chan struct{}, 1)}
				w := addWebhook(t, st, "a", rc.URL)
				cfg := testConfig()
				cfg.PerWebhookConcurrency = 1
				d := startDispatcher(t, st, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()

				// The first delivery holds the webhook's only slot until it
				// meets 410 Gone.
				if _, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"}); err != nil {
					t.Fatal(err)
				}
				rc.next(t)
				type result struct {
					a   *store.Attempt
					err error
				}
				done := make(chan result, 1)
				if call == "SendNow" {
					res, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"})
					if err != nil {
						t.Fatal(err)
					}
					st.id = res.DeliveryIDs[0]
					go func() {
						_, a, err := d.SendNow(ctx, st.id)
						done <- result{a, err}
					}()
					<-st.read // SendNow has read it pending
				} else {
					go func() {
						_, a, err := d.SendTest(ctx, w.ID, nil)
						done <- result{a, err}
					}()
					waitFor(t, "the test delivery to be stored", func() bool {
						ds, _, err := st.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: "a", WebhookID: w.ID, EventType: EventWebhookTest, Limit: 10})
						return err == nil && len(ds) == 1
					})
				}
				close(gone)
				r := <-done
				// Stored, the delivery is failed with the webhook, unsent;
				// parked here (SendNow), its attempt finds the webhook
				// inactive and records that nothing was sent. Either way
				// the caller is answered at once.
				unsent := r.err == nil && r.a != nil && r.a.ErrorClass == store.ErrorCanceled && strings.Contains(r.a.Error, "inactive")
				if !unsent && (!errors.Is(r.err, ErrNoAttempt) || r.a != nil) {
					t.Errorf("%s = %+v, %v; want ErrNoAttempt or an attempt that was not sent", call, r.a, r.err)
				}
				if n := rc.count(); n != 1 {
					t.Errorf("receiver got %d requests, want 1", n)
				}
			})
		}
	})
}

// noClaims is a store through which a Dispatcher never claims: another
// Dispatcher on the same store makes every attempt.
type noClaims struct{ store.Store }

func (noClaims) Claim(context.Context, store.ClaimParams) ([]*store.Delivery, error) { return nil, nil }

// TestSendNowAndSendTestOnReplica: when another Dispatcher sharing the
// store (a replica) claims the delivery first, SendTest and SendNow return
// its attempt, read from the store, instead of waiting for one of their own
// that never comes.
func TestSendNowAndSendTestOnReplica(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	w := addWebhook(t, st, "a", rc.URL, EventUserLogin)
	caller := startDispatcher(t, noClaims{st}, testConfig())
	cfg := testConfig()
	cfg.Owner = "replica"
	startDispatcher(t, st, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	del, a, err := caller.SendTest(ctx, w.ID, nil)
	if err != nil {
		t.Fatalf("SendTest: %v", err)
	}
	if del.EventType != EventWebhookTest || del.Status != store.StatusSuccess || a == nil || a.Number != 1 || a.ResponseStatus != 200 {
		t.Fatalf("SendTest = %+v, %+v", del, a)
	}
	del, a, err = caller.SendNow(ctx, del.ID)
	if err != nil {
		t.Fatalf("SendNow: %v", err)
	}
	if del.Status != store.StatusSuccess || a == nil || a.Number != 2 || a.ResponseStatus != 200 {
		t.Fatalf("SendNow = %+v, %+v", del, a)
	}
	if n := rc.count(); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}

func TestRateLimit(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	w := addWebhook(t, st, "a", rc.URL)
	w.RateLimit = 20 // one every 50ms
	saveWebhook(t, st, w)
	d := startDispatcher(t, st, testConfig())
	start := time.Now()
	const n = 6
	emitN(t, d, n)
	waitFor(t, "all deliveries", func() bool { return rc.count() == n })
	if el := time.Since(start); el < (n-1)*50*time.Millisecond-10*time.Millisecond {
		t.Errorf("%d deliveries at 20/s took %v, want at least %v", n, el, (n-1)*50*time.Millisecond)
	}
}

// TestRateLimitAfterClockGoesBack: a clock that goes back a day does not
// hold a rate-limited webhook's deliveries back for that day; the webhook
// waits one interval at most, and its rate still holds.
func TestRateLimitAfterClockGoesBack(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		clock := newFakeClock()
		rc := newReceiver(t, nil)
		w := addWebhook(t, st, "a", rc.URL)
		w.RateLimit = 1
		saveWebhook(t, st, w)
		cfg := testConfig()
		cfg.Now = clock.Now
		d := startDispatcher(t, st, cfg)
		waitStatus(t, st, emit(t, d)[0], store.StatusSuccess, 1)
		clock.Advance(-24 * time.Hour)
		waitStatus(t, st, emit(t, d)[0], store.StatusSuccess, 1)
		id := emit(t, d)[0]
		time.Sleep(50 * time.Millisecond) // a few polls within the interval
		if n := rc.count(); n != 2 {
			t.Fatalf("%d requests within a second at 1/s, want 2", n)
		}
		clock.Advance(time.Second)
		waitStatus(t, st, id, store.StatusSuccess, 1)
	})
}

// TestRateInterval checks the spacing of a rate-limited webhook's attempts,
// in particular for rates a store may hold but the Registry refuses: slower
// ones are spaced an hour apart, and one of 1e-12 a second used to overflow
// the Duration and wrap to the past (no limit at all).
func TestRateInterval(t *testing.T) {
	for _, c := range []struct {
		rate float64
		want time.Duration
	}{
		{2, 500 * time.Millisecond},
		{MaxRateLimit, 10 * time.Microsecond},
		{MinRateLimit, time.Hour},
		{1.0 / 86400, time.Hour},
		{1e-12, time.Hour},
	} {
		if got := rateInterval(c.rate); got != c.want {
			t.Errorf("rateInterval(%g) = %v, want %v", c.rate, got, c.want)
		}
	}
}

func TestPurgeRemovesOldFinishedDeliveries(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		clock := newFakeClock()
		rc := newReceiver(t, nil)
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.Retention = time.Hour
		cfg.PurgeInterval = 10 * time.Millisecond
		d := startDispatcher(t, st, cfg)
		id := emit(t, d)[0]
		waitStatus(t, st, id, store.StatusSuccess, 1)
		if n, err := d.purge(context.Background()); n != 0 || err != nil {
			t.Fatalf("purge of a fresh delivery = %d, %v", n, err)
		}
		// The background purge removes it once it is older than the retention.
		clock.Advance(2 * time.Hour)
		waitFor(t, "the background purge", func() bool {
			_, err := st.GetDelivery(context.Background(), id)
			return errors.Is(err, store.ErrNotFound)
		})
	})
}

// TestEmitAgainAfterPurge: Emit's deduplication by event id lasts as long
// as the delivery is kept. Once the purge has removed it, emitting the same
// event id stores and sends a new delivery, as Event.ID's documentation
// says.
func TestEmitAgainAfterPurge(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		clock := newFakeClock()
		rc := newReceiver(t, nil)
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.Retention = time.Hour
		d := startDispatcher(t, st, cfg)
		ev := Event{ID: "evt_purged_then_again", Type: EventUserLogin, Tenant: "a"}
		first, err := d.Emit(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, first.DeliveryIDs[0], store.StatusSuccess, 1)
		// Within the retention, the same id stores nothing new.
		dup, err := d.Emit(context.Background(), ev)
		if err != nil || dup.DeliveryIDs[0] != first.DeliveryIDs[0] {
			t.Fatalf("Emit of a kept event = %v, %v; want the first delivery %s", dup.DeliveryIDs, err, first.DeliveryIDs[0])
		}
		clock.Advance(2 * time.Hour)
		if n, err := d.purge(context.Background()); n != 1 || err != nil {
			t.Fatalf("purge = %d, %v; want 1", n, err)
		}
		again, err := d.Emit(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if again.DeliveryIDs[0] == first.DeliveryIDs[0] {
			t.Fatalf("Emit after the purge returned the purged delivery %s", first.DeliveryIDs[0])
		}
		waitStatus(t, st, again.DeliveryIDs[0], store.StatusSuccess, 1)
		if n := rc.count(); n != 2 {
			t.Errorf("receiver got %d requests, want 2 (the event again after the purge)", n)
		}
	})
}

// TestNegativeRetentionKeepsFinished: a negative Retention disables the
// purge. The purge loop still runs (it forgets deleted webhooks), and once
// it has run after a delivery finished, that delivery is still there
// however far the clock moved.
func TestNegativeRetentionKeepsFinished(t *testing.T) {
	st := newMemStore(t)
	clock := newFakeClock()
	rc := newReceiver(t, nil)
	kept := addWebhook(t, st, "a", rc.URL)
	gone := addWebhook(t, st, "b", rc.URL)
	cfg := testConfig()
	cfg.Now = clock.Now
	cfg.Retention = -1
	cfg.PurgeInterval = 10 * time.Millisecond
	d := startDispatcher(t, st, cfg)
	var ids []string
	for _, tenant := range []string{"a", "b"} {
		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: tenant})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, res.DeliveryIDs[0], store.StatusSuccess, 1)
		ids = append(ids, res.DeliveryIDs[0])
	}
	clock.Advance(100 * 365 * 24 * time.Hour)
	if err := st.DeleteWebhook(context.Background(), gone.ID); err != nil {
		t.Fatal(err)
	}
	// The loop purges (when enabled) before it forgets deleted webhooks:
	// once b's counters are gone, a purge step has run since.
	waitFor(t, "the purge loop to forget the deleted webhook", func() bool {
		s := d.Stats()
		return len(s.Webhooks) == 1
	})
	if _, err := st.GetDelivery(context.Background(), ids[0]); err != nil {
		t.Errorf("finished delivery of %s with purging disabled: %v, want it kept", kept.ID, err)
	}
}

func TestHooksAndStats(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Header.Get("X-Webhook-Event") == EventUserLogout {
			w.WriteHeader(500)
		}
	})
	w := addWebhook(t, st, "a", rc.URL)
	hooks := &recordingHooks{}
	cfg := testConfig()
	cfg.Hooks = hooks
	cfg.Retry.MaxAttempts = 1
	d := startDispatcher(t, st, cfg)
	ok, _ := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
	bad, _ := d.Emit(context.Background(), Event{Type: EventUserLogout, Tenant: "a"})
	waitStatus(t, st, ok.DeliveryIDs[0], store.StatusSuccess, 1)
	waitStatus(t, st, bad.DeliveryIDs[0], store.StatusFailed, 1)
	waitFor(t, "hooks", func() bool { return hooks.count("finished") == 2 })
	for k, want := range map[string]int{"started": 2, "finished": 2, "succeeded": 1, "failed": 1} {
		if got := hooks.count(k); got != want {
			t.Errorf("hook %s called %d times, want %d", k, got, want)
		}
	}
	var de *DeliveryError
	if err := hooks.lastErr(); !errors.As(err, &de) || de.StatusCode != 500 || de.Attempt != 1 {
		t.Errorf("DeliveryFailed error = %v", err)
	}
	s := d.Stats()
	if !s.Running || s.Emitted != 2 || s.Attempts != 2 || s.Succeeded != 1 || s.Failed != 1 || len(s.Webhooks) != 1 {
		t.Errorf("Stats = %+v", s)
	}
	ws, err := d.WebhookStats(context.Background(), w.ID)
	if err != nil || ws.Succeeded != 1 || ws.Failed != 1 || ws.Pending != 0 || ws.Attempts != 2 {
		t.Errorf("WebhookStats = %+v, %v", ws, err)
	}
}

// TestHooksPairForInactiveWebhook: the attempt recorded for a delivery
// to an inactive webhook is reported by AttemptStarted and AttemptFinished
// alike, so a host's in-flight gauge (started minus finished) stays at 0.
func TestHooksPairForInactiveWebhook(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	w := addWebhook(t, st, "a", rc.URL)
	w.Active = false
	saveWebhook(t, st, w)
	hooks := &recordingHooks{}
	cfg := testConfig()
	cfg.Hooks = hooks
	d := startDispatcher(t, st, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	del, a, err := d.SendTest(ctx, w.ID, nil)
	if err != nil {
		t.Fatalf("SendTest: %v", err)
	}
	if del.Status != store.StatusFailed || a.ErrorClass != store.ErrorCanceled {
		t.Fatalf("SendTest to an inactive webhook = %+v, %+v; want failed with a canceled attempt", del, a)
	}
	if started, finished := hooks.count("started"), hooks.count("finished"); started != 1 || finished != 1 {
		t.Errorf("AttemptStarted called %d times, AttemptFinished %d; want 1 each", started, finished)
	}
	if n := rc.count(); n != 0 {
		t.Errorf("receiver got %d requests, want none", n)
	}
}

// failingComplete is a store whose Complete is replaced by fail, which is
// given the wrapped store and may call it.
type failingComplete struct {
	store.Store
	fail func(ctx context.Context, st store.Store, p store.CompleteParams) error
}

func (s failingComplete) Complete(ctx context.Context, p store.CompleteParams) error {
	return s.fail(ctx, s.Store, p)
}

// errInjected is a store failure a test injects.
var errInjected = errors.New("injected store failure")

// injectError fails a Complete with errInjected, as a store whose disk or
// connection is gone would, recording nothing.
func injectError(context.Context, store.Store, store.CompleteParams) error { return errInjected }

// TestHooksPairWhenRecordFails: an attempt whose record fails (the store
// is in trouble, or the lease was lost to another process) is still
// reported by AttemptFinished, without an outcome, and counted in
// Stats.Attempts only, so a host's in-flight gauge (started minus
// finished) does not drift upward.
func TestHooksPairWhenRecordFails(t *testing.T) {
	for _, c := range []struct {
		name     string
		inactive bool
		fail     func(ctx context.Context, st store.Store, p store.CompleteParams) error
		want     error
		class    store.ErrorClass
	}{
		{
			name:  "store error",
			fail:  injectError,
			want:  errInjected,
			class: store.ErrorNone,
		},
		{
			name: "lease lost",
			// The real store refuses the record: another owner holds
			// the lease, as when this one's ran out and was reclaimed.
			fail: func(ctx context.Context, st store.Store, p store.CompleteParams) error {
				p.Owner = "another-process"
				return st.Complete(ctx, p)
			},
			want:  store.ErrLeaseLost,
			class: store.ErrorNone,
		},
		{
			name:     "inactive webhook, store error",
			inactive: true,
			fail:     injectError,
			want:     errInjected,
			class:    store.ErrorCanceled,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := failingComplete{Store: newMemStore(t), fail: c.fail}
			rc := newReceiver(t, nil)
			w := addWebhook(t, st, "a", rc.URL)
			if c.inactive {
				w.Active = false
				saveWebhook(t, st, w)
			}
			hooks := &recordingHooks{}
			cfg := testConfig()
			cfg.Hooks = hooks
			// A failing record is tried again while the lease lasts.
			cfg.Timeout, cfg.Lease = 500*time.Millisecond, time.Second
			d := startDispatcher(t, st, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			// SendTest returns once the worker is done with the attempt,
			// its hooks called.
			if _, _, err := d.SendTest(ctx, w.ID, nil); !errors.Is(err, c.want) {
				t.Fatalf("SendTest = %v, want %v", err, c.want)
			}
			if started, finished := hooks.count("started"), hooks.count("finished"); started != 1 || finished != 1 {
				t.Fatalf("AttemptStarted called %d times, AttemptFinished %d; want 1 each", started, finished)
			}
			info := hooks.lastFinished()
			wantStatus := http.StatusOK
			if c.inactive {
				wantStatus = 0
			}
			if info.Outcome != "" || !info.NextAttemptAt.IsZero() || info.StatusCode != wantStatus || info.ErrorClass != c.class {
				t.Errorf("AttemptFinished with Outcome %q, NextAttemptAt %v, StatusCode %d, ErrorClass %q; want no outcome, %d, %q",
					info.Outcome, info.NextAttemptAt, info.StatusCode, info.ErrorClass, wantStatus, c.class)
			}
			if n := hooks.count("succeeded") + hooks.count("failed"); n != 0 {
				t.Errorf("%d DeliverySucceeded or DeliveryFailed calls for an attempt not recorded, want none", n)
			}
			if s := d.Stats(); s.Attempts != 1 || s.Succeeded != 0 || s.Failed != 0 || s.Retried != 0 || s.InFlight != 0 {
				t.Errorf("Stats: %d attempts, %d succeeded, %d failed, %d retried, %d in flight; want 1 attempt only",
					s.Attempts, s.Succeeded, s.Failed, s.Retried, s.InFlight)
			}
		})
	}
}

// TestRecordTriedAgainUntilTheStoreRecovers: a record that fails for a
// reason that may pass is tried again, so the delivery is neither left
// leased nor sent again, and its attempt is in the log; one refused for
// good (the lease was lost) is tried once.
func TestRecordTriedAgainUntilTheStoreRecovers(t *testing.T) {
	var calls atomic.Int64
	st := failingComplete{Store: newMemStore(t), fail: func(ctx context.Context, st store.Store, p store.CompleteParams) error {
		if calls.Add(1) <= 3 {
			return errInjected
		}
		return st.Complete(ctx, p)
	}}
	rc := newReceiver(t, nil)
	addWebhook(t, st, "a", rc.URL)
	var logs testlog.Buffer
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	d := startDispatcher(t, st, cfg)
	id := emit(t, d)[0]
	waitStatus(t, st, id, store.StatusSuccess, 1)
	if n := calls.Load(); n != 4 {
		t.Errorf("Complete called %d times, want 4 (3 failures)", n)
	}
	// One warning when the tries begin, none for each try.
	if n := strings.Count(logs.String(), "record attempt failed, trying again"); n != 1 {
		t.Errorf("%d warnings of the tries, want 1:\n%s", n, logs.String())
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
	if as := attempts(t, st, id); len(as) != 1 || as[0].ResponseStatus != http.StatusOK {
		t.Errorf("attempt log %+v, want the one attempt answered 200", as)
	}

	calls.Store(0)
	lost := failingComplete{Store: newMemStore(t), fail: func(ctx context.Context, st store.Store, p store.CompleteParams) error {
		calls.Add(1)
		p.Owner = "another-process"
		return st.Complete(ctx, p)
	}}
	w := addWebhook(t, lost, "a", rc.URL)
	d = startDispatcher(t, lost, testConfig())
	if _, _, err := d.SendTest(context.Background(), w.ID, nil); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("SendTest = %v, want %v", err, store.ErrLeaseLost)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Complete called %d times after the lease was lost, want 1", n)
	}
}

// TestRecordThatLandedDespiteItsError: a Complete that committed but
// failed all the same (a connection lost before the commit's answer) is
// not tried again into store.ErrLeaseLost: the attempt was recorded, and
// is reported with its outcome.
func TestRecordThatLandedDespiteItsError(t *testing.T) {
	var calls atomic.Int64
	st := failingComplete{Store: newMemStore(t), fail: func(ctx context.Context, st store.Store, p store.CompleteParams) error {
		err := st.Complete(ctx, p)
		if calls.Add(1) == 1 && err == nil {
			return errInjected
		}
		return err
	}}
	rc := newReceiver(t, nil)
	addWebhook(t, st, "a", rc.URL)
	hooks := &recordingHooks{}
	cfg := testConfig()
	cfg.Hooks = hooks
	d := startDispatcher(t, st, cfg)
	id := emit(t, d)[0]
	waitFor(t, "the attempt to be reported", func() bool { return hooks.count("finished") == 1 })
	if info := hooks.lastFinished(); info.Outcome != store.StatusSuccess {
		t.Errorf("AttemptFinished with outcome %q, want %q", info.Outcome, store.StatusSuccess)
	}
	if n := hooks.count("succeeded"); n != 1 {
		t.Errorf("DeliverySucceeded called %d times, want 1", n)
	}
	if s := d.Stats(); s.Succeeded != 1 {
		t.Errorf("Stats.Succeeded = %d, want 1", s.Succeeded)
	}
	if as := attempts(t, st, id); len(as) != 1 || rc.count() != 1 {
		t.Errorf("%d attempts recorded, %d requests received; want 1 and 1", len(as), rc.count())
	}
}

// TestRecordTriedAgainAfterAStoreTimeout: a store that cannot reach its
// database in time (a connect timeout while it fails over: an error that
// matches context.DeadlineExceeded, though no context of the dispatcher
// ended) is asked again.
func TestRecordTriedAgainAfterAStoreTimeout(t *testing.T) {
	_, dialErr := (&net.Dialer{Timeout: time.Nanosecond}).Dial("tcp", "192.0.2.1:5432")
	if !errors.Is(dialErr, context.DeadlineExceeded) {
		t.Fatalf("dial: %v, want a timeout", dialErr)
	}
	var calls atomic.Int64
	st := failingComplete{Store: newMemStore(t), fail: func(ctx context.Context, st store.Store, p store.CompleteParams) error {
		if calls.Add(1) <= 2 {
			return fmt.Errorf("failed to connect to `host=db.example user=webhook`: %w", dialErr)
		}
		return st.Complete(ctx, p)
	}}
	rc := newReceiver(t, nil)
	addWebhook(t, st, "a", rc.URL)
	d := startDispatcher(t, st, testConfig())
	id := emit(t, d)[0]
	waitStatus(t, st, id, store.StatusSuccess, 1)
	if n := calls.Load(); n != 3 {
		t.Errorf("Complete called %d times, want 3 (2 timeouts)", n)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestRecordTriesEndWithAFrozenClock: the tries of a failing record end
// once the lease's length has passed, also with a Config.Now that does
// not move (a fake clock): the record fails, and SendTest says so.
func TestRecordTriesEndWithAFrozenClock(t *testing.T) {
	st := failingComplete{Store: newMemStore(t), fail: injectError}
	rc := newReceiver(t, nil)
	w := addWebhook(t, st, "a", rc.URL)
	cfg := testConfig()
	cfg.Now = newFakeClock().Now
	// A lease no shorter than the longest wait between two tries.
	cfg.Timeout, cfg.Lease = time.Second, recordRetryMax
	d := startDispatcher(t, st, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := d.SendTest(ctx, w.ID, nil)
	if !errors.Is(err, errInjected) {
		t.Fatalf("SendTest = %v after %v, want %v once the lease's %v have passed", err, time.Since(start), errInjected, cfg.Lease)
	}
	if took := time.Since(start); took > cfg.Lease+2*time.Second {
		t.Errorf("SendTest took %v, want about the lease's %v", took, cfg.Lease)
	}
}

// TestStopEndsTheTriesOfARecord: a store that keeps failing holds Stop
// no longer than its context and the records' grace.
func TestStopEndsTheTriesOfARecord(t *testing.T) {
	var calls atomic.Int64
	st := failingComplete{Store: newMemStore(t), fail: func(context.Context, store.Store, store.CompleteParams) error {
		calls.Add(1)
		return errInjected
	}}
	rc := newReceiver(t, nil)
	addWebhook(t, st, "a", rc.URL)
	d := newStarted(t, st, testConfig())
	emit(t, d)
	waitFor(t, "the record to fail twice", func() bool { return calls.Load() >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want %v", err, context.DeadlineExceeded)
	}
	if took := time.Since(start); took > recordGrace+2*time.Second {
		t.Errorf("Stop took %v, want at most its context and the grace of %v", took, recordGrace)
	}
}

type recordingHooks struct {
	NopHooks
	mu       sync.Mutex
	calls    map[string]int
	err      error
	finished AttemptInfo // the last AttemptFinished reported
}

func (h *recordingHooks) inc(k string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = map[string]int{}
	}
	h.calls[k]++
}

func (h *recordingHooks) count(k string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[k]
}

func (h *recordingHooks) lastErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *recordingHooks) lastFinished() AttemptInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.finished
}

func (h *recordingHooks) AttemptStarted(context.Context, AttemptInfo) { h.inc("started") }
func (h *recordingHooks) AttemptFinished(_ context.Context, info AttemptInfo) {
	h.mu.Lock()
	h.finished = info
	h.mu.Unlock()
	h.inc("finished")
}

func (h *recordingHooks) DeliverySucceeded(context.Context, *Delivery) { h.inc("succeeded") }
func (h *recordingHooks) DeliveryFailed(_ context.Context, _ *Delivery, err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
	h.inc("failed")
}
func (h *recordingHooks) WebhookDisabled(context.Context, string, string) { h.inc("disabled") }

// crashChildEnv, when set, makes the test binary the crash test's child.
const crashChildEnv = "WEBHOOK_CRASH_CHILD"

var testStores = []storeCtor{
	{"memstore", newMemStore},
	{"boltstore", newBoltStore},
}

func newBoltStore(t *testing.T) store.Store {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "webhooks.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestWakeAndPoll: an Emit in this process is delivered without waiting
// for the poll; work enqueued by someone else is found by polling.
func TestWakeAndPoll(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		w := addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.PollInterval = time.Hour
		d := startDispatcher(t, st, cfg)
		time.Sleep(20 * time.Millisecond) // the loop's first claim is done; it now waits an hour
		waitStatus(t, st, emit(t, d)[0], store.StatusSuccess, 1)

		// A second dispatcher on the same store that polls: a delivery
		// enqueued behind its back (as by another process) arrives.
		cfg2 := testConfig()
		cfg2.PollInterval = 20 * time.Millisecond
		startDispatcher(t, st, cfg2)
		body := []byte(`{}`)
		ids, err := st.Enqueue(context.Background(), []*store.Delivery{{
			ID: "del_elsewhere", WebhookID: w.ID, EventID: "evt_elsewhere", EventType: EventUserLogin,
			Tenant: "a", Body: body, Status: store.StatusPending, NextAttemptAt: time.Now(),
		}})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, ids[0], store.StatusSuccess, 1)
	})
}

func TestCapHeader(t *testing.T) {
	small := http.Header{"A": {"1"}}
	if got := capHeader(small, 100); got["A"][0] != "1" {
		t.Errorf("small header changed: %v", got)
	}
	big := http.Header{}
	for i := range 100 {
		big.Set(fmt.Sprintf("X-H%03d", i), string(make([]byte, 100)))
	}
	got := capHeader(big, maxLoggedHeaderBytes)
	n := 0
	for k, vs := range got {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	if n > maxLoggedHeaderBytes || n == 0 {
		t.Errorf("capped header holds %d bytes, want 1 to %d", n, maxLoggedHeaderBytes)
	}
}

func TestWebhookMaxAttemptsOverridesPolicy(t *testing.T) {
	st := newMemStore(t)
	clock := newFakeClock()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(502) })
	w := addWebhook(t, st, "a", rc.URL)
	w.MaxAttempts = 2
	saveWebhook(t, st, w)
	cfg := testConfig()
	cfg.Now = clock.Now
	cfg.Retry = RetryPolicy{Jitter: -1, InitialInterval: time.Minute}
	d := startDispatcher(t, st, cfg)
	id := emit(t, d)[0]
	del := waitStatus(t, st, id, store.StatusPending, 1)
	if want := clock.Now().Add(time.Minute); !del.NextAttemptAt.Equal(want) {
		t.Errorf("next attempt at %v, want %v (the configured InitialInterval)", del.NextAttemptAt, want)
	}
	clock.Advance(time.Minute)
	waitStatus(t, st, id, store.StatusFailed, 2)
}

// TestResponseBodyCap: an attempt stores the response body up to
// Config.MaxResponseBytes, and costs memory for the bytes it reads, not for
// the cap. Every attempt used to allocate a buffer the size of the cap
// (pooled, so up to one per attempt in flight): 8 attempts answered "ok"
// under a 32 MiB cap allocated 256 MiB, and a cap near math.MaxInt
// crashed the process.
func TestResponseBodyCap(t *testing.T) {
	const n = 8
	big := strings.Repeat("x", 10000)
	for _, tt := range []struct {
		name  string
		cap   int
		body  string
		alloc uint64 // most bytes allocated by the n attempts
	}{
		{"n small bodies, 32 MiB cap", 32 << 20, "ok", 8 << 20},
		{"a larger body, a cap near MaxInt", math.MaxInt, big, 0},
		{"a larger body, a small cap", 1000, big, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			events := 1
			if tt.alloc > 0 {
				events = n
			}
			var arrived sync.WaitGroup
			arrived.Add(events)
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, i int) {
				arrived.Done()
				arrived.Wait() // every attempt in flight at once
				io.WriteString(w, tt.body)
			})
			st := newMemStore(t)
			cfg := testConfig()
			cfg.Workers = n
			cfg.PerWebhookConcurrency = n
			cfg.MaxResponseBytes = tt.cap
			d := startDispatcher(t, st, cfg)
			addWebhook(t, st, "a", rc.URL)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ids := emitN(t, d, events)
			for _, id := range ids {
				waitStatus(t, st, id, store.StatusSuccess, 1)
			}
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; tt.alloc > 0 && got > tt.alloc {
				t.Errorf("%d attempts answered %q allocated %d MiB under a %d MiB cap, want under %d MiB",
					n, tt.body, got>>20, tt.cap>>20, tt.alloc>>20)
			}
			for _, id := range ids {
				want := tt.body[:min(len(tt.body), tt.cap)]
				if a := attempts(t, st, id); string(a[0].ResponseBody) != want {
					t.Errorf("stored body of %d bytes, want %d", len(a[0].ResponseBody), len(want))
				}
			}
		})
	}
}

// TestStopWithEndedContextWhenIdle: Stop returns ctx.Err() when its
// context ends before the attempts in flight do; with none in flight there
// is nothing to cut short, and Stop returns nil whatever its context, like
// http.Server.Shutdown. An idle dispatcher's Stop used to return the
// context's error every time (a host whose shutdown deadline had passed
// logged a failed stop), and a second Stop about half the time.
func TestStopWithEndedContextWhenIdle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	const n = 50
	first, second := 0, 0
	for range n {
		d := newStarted(t, newMemStore(t), testConfig())
		if err := d.Stop(ctx); err != nil {
			first++
		}
		if err := d.Stop(ctx); err != nil {
			second++
		}
	}
	if first > 0 || second > 0 {
		t.Errorf("Stop of an idle dispatcher with an ended context failed %d times of %d, a second Stop %d times; want never", first, n, second)
	}
}

// TestStopStartsNoAttempt: Stop waits for the requests already sent, and
// sends no other: a delivery claimed but still waiting for a worker when
// Stop begins is given back unsent, due at once for the next process, while
// Stop still waits for the request in flight. It used to be sent once a
// worker freed, so Stop opened new requests and, with the endpoint hung,
// waited two attempts' Timeout instead of one.
func TestStopStartsNoAttempt(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newHangingReceiver(t)
		addWebhook(t, st, "a", rc.URL)
		addWebhook(t, st, "b", rc.URL)
		cfg := testConfig()
		cfg.Workers = 1 // a's attempt takes the only worker, b's waits for it
		const timeout = time.Second
		cfg.Timeout = timeout
		d := newStarted(t, st, cfg)
		ctx := context.Background()
		if _, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"}); err != nil {
			t.Fatal(err)
		}
		rc.next(t)
		res, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "b"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "b's delivery to be claimed", func() bool {
			del, err := st.GetDelivery(ctx, res.DeliveryIDs[0])
			return err == nil && del.LeaseOwner != ""
		})
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- d.Stop(ctx) }()
		waitFor(t, "b's delivery to be given back", func() bool {
			del, err := st.GetDelivery(ctx, res.DeliveryIDs[0])
			return err == nil && del.LeaseOwner == ""
		})
		if gaveBack := time.Since(start); gaveBack > timeout/2 {
			t.Errorf("b's delivery was given back %v after Stop began, want at once, while a's attempt still hangs (Timeout %v)", gaveBack, timeout)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Stop: %v", err)
		}
		took := time.Since(start)
		if n := rc.count(); n != 1 {
			t.Errorf("the endpoint got %d requests, want 1: Stop sent b's delivery (Stop took %v, Timeout %v)", n, took, timeout)
		}
		if took >= timeout+timeout/2 {
			t.Errorf("Stop took %v, more than one attempt's Timeout (%v)", took, timeout)
		}
		del, err := st.GetDelivery(ctx, res.DeliveryIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		if del.Status != store.StatusPending || del.Attempts != 0 || del.LeaseOwner != "" {
			t.Errorf("b's delivery after Stop: %s, %d attempts, leased by %q; want pending, 0 attempts, not leased",
				del.Status, del.Attempts, del.LeaseOwner)
		}
	})
}

// TestStopMidAttemptKeepsRetryBudget: attempts cut short by Stop are
// logged but spend none of the retry budget, so a host restarting while
// an endpoint is slow does not fail its deliveries.
func TestStopMidAttemptKeepsRetryBudget(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		const stops = 3 // more than the budget
		st := newStore(t)
		clock := newFakeClock()
		hang, release := newGate()
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n > stops {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		})
		t.Cleanup(release)
		w := addWebhook(t, st, "a", rc.URL)
		w.MaxAttempts = 2
		saveWebhook(t, st, w)
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.Retry = RetryPolicy{Jitter: -1, InitialInterval: time.Minute}

		var id string
		for i := 1; i <= stops; i++ {
			d := newStarted(t, st, cfg)
			if i == 1 {
				id = emit(t, d)[0]
			}
			rc.next(t) // the attempt is in flight
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // Stop gives up waiting at once
			if err := d.Stop(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Stop #%d = %v, want Canceled", i, err)
			}
			del, err := st.GetDelivery(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if del.Status != store.StatusPending || del.Attempts != i || del.RoundAttempts != 0 {
				t.Fatalf("after stop #%d: %s, Attempts %d, RoundAttempts %d; want pending, %d, 0",
					i, del.Status, del.Attempts, del.RoundAttempts, i)
			}
			if as := attempts(t, st, id); len(as) != i || as[i-1].ErrorClass != store.ErrorCanceled {
				t.Fatalf("after stop #%d: %d attempts logged, want %d, the last canceled", i, len(as), i)
			}
		}

		// The endpoint now answers 500: the first counted attempt backs off
		// by InitialInterval, and the budget allows one more.
		startDispatcher(t, st, cfg)
		var del *store.Delivery
		waitFor(t, "the first answered attempt to be recorded", func() bool {
			var err error
			if del, err = st.GetDelivery(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			return del.Attempts == stops+1 && del.LeaseOwner == ""
		})
		if del.Status != store.StatusPending || del.RoundAttempts != 1 {
			t.Fatalf("after the first answered attempt: %s, RoundAttempts %d; want pending, 1", del.Status, del.RoundAttempts)
		}
		if want := clock.Now().Add(time.Minute); !del.NextAttemptAt.Equal(want) {
			t.Errorf("next attempt at %v, want %v (the first backoff step)", del.NextAttemptAt, want)
		}
		clock.Advance(time.Minute)
		del = waitStatus(t, st, id, store.StatusFailed, stops+2)
		if del.RoundAttempts != 2 {
			t.Errorf("failed with RoundAttempts %d, want 2 (the budget)", del.RoundAttempts)
		}
	})
}

// TestStopMidAttemptIsNotARetry: an attempt cut short by Stop is counted
// in Stats.Attempts but not in Retried, which counts the retries the
// retry policy scheduled: a host graphing the retry rate sees no spike at
// each restart.
func TestStopMidAttemptIsNotARetry(t *testing.T) {
	st := newMemStore(t)
	rc := newHangingReceiver(t)
	w := addWebhook(t, st, "a", rc.URL)
	d := newStarted(t, st, testConfig())
	res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	rc.next(t) // the attempt is in flight
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Stop gives up waiting at once
	if err := d.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want Canceled", err)
	}
	// Stop returns once the attempt is recorded.
	id := res.DeliveryIDs[0]
	if as := attempts(t, st, id); len(as) != 1 || as[0].ErrorClass != store.ErrorCanceled {
		t.Fatalf("%d attempts recorded, want 1, canceled", len(as))
	}
	s := d.Stats()
	if s.Attempts != 1 || s.Retried != 0 || s.Succeeded != 0 || s.Failed != 0 {
		t.Errorf("Stats: %d attempts, %d retried, %d succeeded, %d failed; want 1 attempt only",
			s.Attempts, s.Retried, s.Succeeded, s.Failed)
	}
	if len(s.Webhooks) != 1 || s.Webhooks[0].WebhookID != w.ID || s.Webhooks[0].Attempts != 1 || s.Webhooks[0].Retried != 0 {
		t.Errorf("Stats.Webhooks = %+v, want %s with 1 attempt, none retried", s.Webhooks, w.ID)
	}
}

// TestLogsCarryNoSecrets runs failing and succeeding deliveries with debug
// logging on and checks no secret, credential or URL password is logged.
func TestLogsCarryNoSecrets(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(500)
		}
	})
	const secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	w := addWebhook(t, st, "a", strings.Replace(rc.URL, "http://", "http://user:hunter2@", 1))
	w.Secrets = []store.Secret{{Value: secret}}
	w.Headers = map[string]string{"X-Api-Key": "key-abc-123"}
	saveWebhook(t, st, w)
	var buf testlog.Buffer
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Retry = RetryPolicy{MaxAttempts: 1}
	d := startDispatcher(t, st, cfg)
	for range 2 {
		d.SendNow(context.Background(), emit(t, d)[0])
	}
	got := rc.next(t)
	if user, pw, ok := basicAuth(got.header); !ok || user != "user" || pw != "hunter2" {
		t.Errorf("URL credentials not sent as basic auth: %q", got.header.Get("Authorization"))
	}
	ds, _, _ := st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: "a", Limit: 10})
	for _, del := range ds {
		for _, a := range attempts(t, st, del.ID) {
			rec := fmt.Sprint(a.RequestURL, a.RequestHeaders, a.Error)
			for _, leak := range []string{secret, "hunter2", "key-abc-123", "dXNlcjpodW50ZXIy"} {
				if strings.Contains(rec, leak) {
					t.Errorf("attempt log holds %q: %s", leak, rec)
				}
			}
		}
	}
	logs := buf.String()
	if !strings.Contains(logs, "webhook attempt") {
		t.Fatalf("no debug log of attempts:\n%s", logs)
	}
	for _, leak := range []string{secret, "hunter2", "key-abc-123", "dXNlcjpodW50ZXIy"} {
		if strings.Contains(logs, leak) {
			t.Errorf("logs hold %q", leak)
		}
	}
}

// clientTransport is a Config.Transport built on an http.Client, as a
// host may write one: its errors are *url.Error, whose message quotes the
// request's URL.
type clientTransport struct{ c *http.Client }

func (ct clientTransport) RoundTrip(r *http.Request) (*http.Response, error) { return ct.c.Do(r) }

// TestAttemptErrorHidesURLQuery: a webhook URL may carry a credential in
// its query (?token=…). However its attempt fails, the attempt's error,
// which the delivery keeps as LastError, the dispatcher logs and
// Hooks.DeliveryFailed receives, does not hold the query.
func TestAttemptErrorHidesURLQuery(t *testing.T) {
	const token = "tok-3f9a1c7e5b"
	query := "?token=" + token + "&sig=a%2Fb"
	hanging := newHangingReceiver(t)
	echo := newEchoServer(t)
	guarded, err := NewTransport(TransportOptions{AllowedRanges: loopback, AllowAnyPort: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(guarded.CloseIdleConnections)
	for _, tc := range []struct {
		name      string
		url       string
		transport http.RoundTripper // nil: the default, guarded one
		class     store.ErrorClass
		says      string // what the error must still say
	}{
		{
			name:      "a Transport's http.Client times out",
			url:       hanging.URL + "/in" + query,
			transport: clientTransport{&http.Client{Transport: guarded, Timeout: 100 * time.Millisecond}},
			class:     store.ErrorTimeout,
			says:      "timeout: context deadline exceeded (Client.Timeout exceeded",
		},
		{
			// The response's first line is the request line, which
			// net/http quotes in its parse error.
			name:  "the endpoint echoes the request",
			url:   "http://" + echo + "/in" + query,
			class: store.ErrorNetwork,
			says:  `malformed HTTP status code "/in?` + redact.Placeholder + `"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore(t)
			w := addWebhook(t, st, "a", tc.url)
			var logs testlog.Buffer
			hooks := &recordingHooks{}
			cfg := testConfig()
			if tc.transport != nil {
				// Its own guard: New refuses the default one's settings with it.
				cfg.Transport, cfg.AllowedRanges, cfg.AllowAnyPort = tc.transport, nil, false
			}
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			cfg.Hooks = hooks
			cfg.Retry = RetryPolicy{MaxAttempts: 1}
			d := startDispatcher(t, st, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			del, a, err := d.SendTest(ctx, w.ID, nil)
			if err != nil {
				t.Fatalf("SendTest: %v", err)
			}
			if a.ErrorClass != tc.class || !strings.Contains(a.Error, tc.says) {
				t.Errorf("attempt error %q, class %q; want class %q, saying %q", a.Error, a.ErrorClass, tc.class, tc.says)
			}
			if !strings.Contains(logs.String(), "webhook delivery failed") {
				t.Fatalf("the failed delivery is not logged:\n%s", logs.String())
			}
			for what, text := range map[string]string{
				"the attempt's error":         a.Error,
				"the delivery's LastError":    del.LastError,
				"the DeliveryFailed error":    fmt.Sprint(hooks.lastErr()),
				"the dispatcher's log output": logs.String(),
			} {
				if strings.Contains(text, token) {
					t.Errorf("%s holds the URL's query: %s", what, text)
				}
			}
		})
	}
}

// newEchoServer returns the address of a TCP server that answers each
// connection's first line with that line and closes it, as a service that
// does not speak HTTP (an echo service) does.
func newEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte(line))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func basicAuth(h http.Header) (string, string, bool) {
	r := http.Request{Header: h}
	return r.BasicAuth()
}

// TestTimeoutsShrinkWebhookConcurrency checks that an endpoint whose
// attempts time out gets fewer concurrent attempts: its first timeouts
// halve its limit down to 1, so once they are in, each new request is
// the only one of its webhook in flight; and that the slots a hung
// endpoint no longer takes serve another webhook.
func TestTimeoutsShrinkWebhookConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		var mu sync.Mutex
		active, timedOut, crowded := 0, 0, 0
		hung := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			mu.Lock()
			active++
			// A request that starts after all of the first wave (4, the
			// cap) timed out must be alone, but for the request before it,
			// which this server may not have seen end yet.
			if timedOut >= 4 && active > 2 {
				crowded++
			}
			mu.Unlock()
			<-r.Context().Done() // hangs until the attempt times out
			mu.Lock()
			active--
			timedOut++
			mu.Unlock()
		})
		healthy := newReceiver(t, nil)
		addWebhook(t, st, "a", hung.URL, EventUserLogin)
		addWebhook(t, st, "a", healthy.URL, EventUserLogout)
		cfg := testConfig()
		cfg.Workers = 8
		cfg.PerWebhookConcurrency = 4
		cfg.Timeout = 150 * time.Millisecond
		cfg.Lease = time.Minute
		cfg.Retry = RetryPolicy{MaxAttempts: 1}
		d := startDispatcher(t, st, cfg)
		const hungEvents = 10
		emitN(t, d, hungEvents)
		waitFor(t, "every attempt to the hung endpoint to fail", func() bool {
			return d.Stats().Failed == hungEvents
		})
		mu.Lock()
		if crowded > 0 {
			t.Errorf("%d requests reached the hung endpoint with 2 others in flight, after its first timeouts", crowded)
		}
		mu.Unlock()
		if n := hung.count(); n != hungEvents {
			t.Errorf("hung endpoint got %d requests, want %d", n, hungEvents)
		}
		// The other webhook keeps its full concurrency.
		for range 20 {
			if _, err := d.Emit(context.Background(), Event{Type: EventUserLogout, Tenant: "a"}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the healthy endpoint to get every event", func() bool { return d.Stats().Succeeded == 20 })
	})
}

// TestStalledResponseBodyIsATimeout: an endpoint that sends its status
// line and headers at once, then stalls the body, holds a worker for the
// whole Timeout like one that never answers. Its attempts are timeouts,
// whatever the status, and shrink its concurrency the same way.
func TestStalledResponseBodyIsATimeout(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			st := newMemStore(t)
			var mu sync.Mutex
			active, stalled, crowded := 0, 0, 0
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				mu.Lock()
				active++
				if stalled >= 4 && active > 2 {
					crowded++
				}
				mu.Unlock()
				w.Header().Set("Content-Length", "100")
				w.WriteHeader(status)
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				<-r.Context().Done() // the rest never comes
				mu.Lock()
				active--
				stalled++
				mu.Unlock()
			})
			addWebhook(t, st, "a", rc.URL)
			cfg := testConfig()
			cfg.Workers = 8
			cfg.PerWebhookConcurrency = 4
			cfg.Timeout = 150 * time.Millisecond
			cfg.Lease = time.Minute
			cfg.Retry = RetryPolicy{MaxAttempts: 1}
			d := startDispatcher(t, st, cfg)
			const events = 10
			ids := emitN(t, d, events)
			waitFor(t, "every attempt to be recorded", func() bool { return d.Stats().Attempts == events })
			for _, id := range ids {
				a := attempts(t, st, id)[0]
				if a.ErrorClass != store.ErrorTimeout || a.ResponseStatus != status || a.Duration < cfg.Timeout {
					t.Errorf("attempt: class %q status %d error %q after %v; want class timeout, status %d, after the %v timeout",
						a.ErrorClass, a.ResponseStatus, a.Error, a.Duration, status, cfg.Timeout)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if crowded > 0 {
				t.Errorf("%d requests reached the stalling endpoint with 2 others in flight, after its first timeouts", crowded)
			}
		})
	}
}

// TestEndlessResponseBodyIsCapped: an endpoint that answers 200 and then
// streams for ever costs an attempt MaxResponseBytes of memory and a short
// drain, not the whole Timeout: the attempt succeeds at once with the
// first MaxResponseBytes bytes stored.
func TestEndlessResponseBodyIsCapped(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	addWebhook(t, st, "a", rc.URL)
	cfg := testConfig()
	cfg.MaxResponseBytes = 100
	d := startDispatcher(t, st, cfg)
	id := emit(t, d)[0]
	waitStatus(t, st, id, store.StatusSuccess, 1)
	a := attempts(t, st, id)[0]
	if len(a.ResponseBody) != cfg.MaxResponseBytes || a.Duration >= cfg.Timeout {
		t.Errorf("attempt stored %d bytes of the body after %v; want %d, well before the %v timeout",
			len(a.ResponseBody), a.Duration, cfg.MaxResponseBytes, cfg.Timeout)
	}
}

// TestSwitchingProtocolsIsAFailedAttempt: an endpoint that answers 101
// Switching Protocols (with the Upgrade headers) and then stays silent
// hands net/http's transport a body that is the raw connection, which the
// attempt's deadline no longer reaches. The attempt must still end, at
// once, as a failed one that names the status, and Stop must not wait for
// it.
func TestSwitchingProtocolsIsAFailedAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 10)
	go func() {
		defer close(conns)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				// Then silence, until the test ends.
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			}()
		}
	}()
	closeAll := func() {
		ln.Close()
		for c := range conns {
			c.Close()
		}
	}
	st := newMemStore(t)
	addWebhook(t, st, "a", "http://"+ln.Addr().String()+"/")
	cfg := testConfig()
	cfg.Timeout = 500 * time.Millisecond
	cfg.Retry = RetryPolicy{MaxAttempts: 1}
	d := startDispatcher(t, st, cfg)
	// Registered after startDispatcher, so it runs before Stop: a hung
	// attempt is released once the test has failed.
	t.Cleanup(closeAll)
	id := emit(t, d)[0]
	deadline := time.Now().Add(10 * cfg.Timeout)
	for len(attempts(t, st, id)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no attempt recorded %v after a 101 answer, with a Timeout of %v", 10*cfg.Timeout, cfg.Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	a := attempts(t, st, id)[0]
	if a.ResponseStatus != http.StatusSwitchingProtocols || a.ErrorClass != store.ErrorHTTPStatus || a.Error != "HTTP 101 Switching Protocols" {
		t.Errorf("attempt: status %d class %q error %q; want 101, http_status, %q",
			a.ResponseStatus, a.ErrorClass, a.Error, "HTTP 101 Switching Protocols")
	}
	waitStatus(t, st, id, store.StatusFailed, 1)
}

// TestWorkersBoundConcurrentAttempts: the dispatcher claims ahead of its
// workers, but never sends more than Workers attempts at once.
func TestWorkersBoundConcurrentAttempts(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		release := make(chan struct{})
		var mu sync.Mutex
		cur, peak := 0, 0
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			mu.Lock()
			cur--
			mu.Unlock()
		})
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Workers = 2
		cfg.PerWebhookConcurrency = 8
		d := startDispatcher(t, st, cfg)
		const events = 8
		emitN(t, d, events)
		// Let one attempt finish at a time, each once the workers are full.
		for i := range events {
			want := min(i+cfg.Workers, events)
			waitFor(t, fmt.Sprintf("%d requests", want), func() bool { return rc.count() >= want })
			release <- struct{}{}
		}
		waitFor(t, "every event delivered", func() bool { return d.Stats().Succeeded == events })
		mu.Lock()
		defer mu.Unlock()
		if peak != cfg.Workers {
			t.Errorf("at most %d attempts were sent at once, want Workers = %d", peak, cfg.Workers)
		}
	})
}

// slowPing is a store whose Ping takes a while, as a remote store's can;
// entered is closed when Ping begins.
type slowPing struct {
	store.Store
	entered chan struct{}
}

func (s slowPing) Ping(ctx context.Context) error {
	close(s.entered)
	time.Sleep(100 * time.Millisecond)
	return s.Store.Ping(ctx)
}

// TestStopDuringStart: a Stop that comes while Start is still checking the
// store wins; Start returns ErrStopped and starts nothing, so no goroutine
// outlives the Stop that returned.
func TestStopDuringStart(t *testing.T) {
	st := newMemStore(t)
	ping := slowPing{st, make(chan struct{})}
	d, err := New(ping, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- d.Start(context.Background()) }()
	<-ping.entered // Start is in Ping
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-started; !errors.Is(err, ErrStopped) {
		t.Errorf("Start that Stop overtook: %v, want ErrStopped", err)
	}
	if d.Stats().Running {
		t.Error("the Dispatcher runs after Stop returned")
	}
}

// deleteAfterMatch deletes a webhook right after the first MatchWebhooks,
// as an owner might while an Emit runs.
type deleteAfterMatch struct {
	store.Store
	victim string
	once   sync.Once
}

func (s *deleteAfterMatch) MatchWebhooks(ctx context.Context, tenant, eventType string) ([]*store.Webhook, error) {
	ws, err := s.Store.MatchWebhooks(ctx, tenant, eventType)
	s.once.Do(func() {
		if err := s.Store.DeleteWebhook(ctx, s.victim); err != nil {
			panic(err)
		}
	})
	return ws, err
}

// TestEmitWhileAWebhookIsDeleted: a matching webhook deleted while Emit
// runs is left out; the event still reaches the others.
func TestEmitWhileAWebhookIsDeleted(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		var hooks []*store.Webhook
		for range 5 {
			hooks = append(hooks, addWebhook(t, st, "a", "https://example.com/hook"))
		}
		ds := &deleteAfterMatch{Store: st, victim: hooks[2].ID}
		d, err := New(ds, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil {
			t.Fatalf("Emit: %v", err)
		}
		if len(res.DeliveryIDs) != 4 {
			t.Fatalf("Emit stored %d deliveries, want 4 (5 webhooks, one deleted)", len(res.DeliveryIDs))
		}
		for _, id := range res.DeliveryIDs {
			del, err := st.GetDelivery(context.Background(), id)
			if err != nil {
				t.Fatalf("GetDelivery(%s): %v", id, err)
			}
			if del.WebhookID == hooks[2].ID {
				t.Error("a delivery was stored for the deleted webhook")
			}
		}
	})
}

// TestRateLimitedWebhookStateIsDropped: the state the dispatcher keeps for
// a rate-limited webhook (its next slot) goes once that slot has passed,
// rather than staying for every such webhook ever attempted.
func TestRateLimitedWebhookStateIsDropped(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	d := startDispatcher(t, st, testConfig())
	var ids []string
	for range 50 {
		w := addWebhook(t, st, "a", rc.URL)
		w.RateLimit = 5 // the next slot 200ms after each attempt
		saveWebhook(t, st, w)
		ids = append(ids, w.ID)
	}
	res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range res.DeliveryIDs {
		waitStatus(t, st, id, store.StatusSuccess, 1)
	}
	for _, id := range ids {
		if err := st.DeleteWebhook(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	hooks := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.hooks)
	}
	deadline := time.Now().Add(10 * time.Second)
	for hooks() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := hooks(); n != 0 {
		t.Errorf("the dispatcher still holds the state of %d webhooks whose slots have passed, want none", n)
	}
}

// TestDeletedWebhooksAreForgotten: what the dispatcher keeps per webhook
// (a lowered concurrency limit, Stats' counters) goes within PurgeInterval
// once the webhook is deleted, rather than staying for every webhook ever
// attempted; the totals stay.
func TestDeletedWebhooksAreForgotten(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newHangingReceiver(t)
		cfg := testConfig()
		cfg.Timeout = 50 * time.Millisecond
		cfg.Retry.MaxAttempts = 1
		cfg.PurgeInterval = 20 * time.Millisecond
		cfg.Retention = -1 // with purging disabled too
		d := startDispatcher(t, st, cfg)
		const n = 20
		var ids []string
		for range n {
			ids = append(ids, addWebhook(t, st, "a", rc.URL).ID)
		}
		kept := addWebhook(t, st, "b", rc.URL)
		for _, tenant := range []string{"a", "b"} {
			res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: tenant})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range res.DeliveryIDs {
				waitStatus(t, st, id, store.StatusFailed, 1)
			}
		}
		for _, id := range ids {
			if err := st.DeleteWebhook(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		sizes := func() (limits, per int) {
			d.mu.Lock()
			defer d.mu.Unlock()
			return len(d.limits), len(d.stats.per)
		}
		deadline := time.Now().Add(2 * time.Second)
		for l, p := sizes(); (l > 1 || p > 1) && time.Now().Before(deadline); l, p = sizes() {
			time.Sleep(10 * time.Millisecond)
		}
		if l, p := sizes(); l != 1 || p != 1 {
			t.Errorf("the dispatcher keeps the limits of %d webhooks and the counters of %d, want 1 each (the one not deleted)", l, p)
		}
		s := d.Stats()
		if s.Attempts != n+1 || s.Failed != n+1 || len(s.Webhooks) != 1 || s.Webhooks[0].WebhookID != kept.ID {
			t.Errorf("Stats: %d attempts, %d failed, counters of %d webhooks; want %d, %d and those of %s only",
				s.Attempts, s.Failed, len(s.Webhooks), n+1, n+1, kept.ID)
		}
	})
}

// panickingHooks panics in every hook, after counting the call.
type panickingHooks struct{ recordingHooks }

func (h *panickingHooks) AttemptStarted(ctx context.Context, i AttemptInfo) {
	h.recordingHooks.AttemptStarted(ctx, i)
	panic("started")
}

func (h *panickingHooks) AttemptFinished(ctx context.Context, i AttemptInfo) {
	h.recordingHooks.AttemptFinished(ctx, i)
	panic("finished")
}

func (h *panickingHooks) DeliverySucceeded(ctx context.Context, d *Delivery) {
	h.recordingHooks.DeliverySucceeded(ctx, d)
	panic("succeeded")
}

func (h *panickingHooks) DeliveryFailed(ctx context.Context, d *Delivery, err error) {
	h.recordingHooks.DeliveryFailed(ctx, d, err)
	panic("failed")
}

func (h *panickingHooks) WebhookDisabled(ctx context.Context, id, reason string) {
	h.recordingHooks.WebhookDisabled(ctx, id, reason)
	panic("disabled")
}

// TestPanickingHooks: a hook that panics is logged, and neither crashes
// the process nor changes what is delivered and recorded.
func TestPanickingHooks(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.Header.Get("X-Webhook-Event") {
		case EventUserLogout:
			w.WriteHeader(500)
		case EventUserDeleted:
			w.WriteHeader(http.StatusGone)
		}
	})
	addWebhook(t, st, "a", rc.URL)
	hooks := &panickingHooks{}
	var logs testlog.Buffer
	cfg := testConfig()
	cfg.Hooks = hooks
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Retry.MaxAttempts = 1
	d := startDispatcher(t, st, cfg)
	for _, c := range []struct {
		event  string
		status store.Status
	}{
		{EventUserLogin, store.StatusSuccess},
		{EventUserLogout, store.StatusFailed},
		{EventUserDeleted, store.StatusFailed},
	} {
		res, err := d.Emit(context.Background(), Event{Type: c.event, Tenant: "a"})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, res.DeliveryIDs[0], c.status, 1)
	}
	// The last hook runs before its attempt leaves the in-flight count.
	waitFor(t, "hooks", func() bool { return hooks.count("disabled") == 1 && d.Stats().InFlight == 0 })
	for k, want := range map[string]int{"started": 3, "finished": 3, "succeeded": 1, "failed": 2} {
		if got := hooks.count(k); got != want {
			t.Errorf("hook %s called %d times, want %d", k, got, want)
		}
	}
	if s := d.Stats(); s.Attempts != 3 || s.Succeeded != 1 || s.Failed != 2 || s.InFlight != 0 {
		t.Errorf("Stats = %+v", s)
	}
	// Logged with the stack that panicked, to find the bug by.
	if !strings.Contains(logs.String(), "panic") || !strings.Contains(logs.String(), "(*panickingHooks).AttemptStarted") {
		t.Errorf("no panic logged with its stack:\n%s", logs.String())
	}
}

// TestClockJumpDoesNotSendTwice: a clock that jumps past the lease of an
// attempt in flight makes the delivery look free in the store; the
// dispatcher that holds it must not claim and send it a second time
// meanwhile, and the delivery is recorded once, its lease cleared.
func TestClockJumpDoesNotSendTwice(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		clock := newFakeClock()
		hang, release := newGate()
		t.Cleanup(release)
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		})
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Now = clock.Now
		d := startDispatcher(t, st, cfg)
		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil {
			t.Fatal(err)
		}
		rc.next(t)
		clock.Advance(24 * time.Hour)
		time.Sleep(100 * time.Millisecond) // a few polls at the new time
		if n := rc.count(); n != 1 {
			t.Fatalf("%d requests of one delivery in flight at once after the clock jumped a day, want 1", n)
		}
		release()
		waitStatus(t, st, res.DeliveryIDs[0], store.StatusSuccess, 1)
		if n := rc.count(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

// TestRotationSigningFollowsTheClock rotates a secret through the Registry
// and checks what a receiver sees, on the dispatcher's clock: during the
// grace period webhook-signature verifies with the new and the previous
// secret and X-Webhook-Signature with the new one only; from the previous
// secret's ExpiresAt on, only the new one signs, even for a webhook the
// dispatcher has cached since before the expiry.
func TestRotationSigningFollowsTheClock(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		ctx := context.Background()
		st := newStore(t)
		clock := newFakeClock()
		clock.Advance(123456789 * time.Nanosecond) // below the stores' precision
		rc := newReceiver(t, nil)
		reg := NewRegistry(st, RegistryOptions{Now: clock.Now, AllowHTTP: true})
		w, err := reg.Create(ctx, "acme", WebhookInput{URL: rc.URL + "/hook", Events: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		old := w.Secrets[0].Value
		if w, err = reg.RotateSecret(ctx, "acme", w.ID, time.Hour); err != nil {
			t.Fatal(err)
		}
		fresh, expires := w.Secrets[0].Value, w.Secrets[1].ExpiresAt
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.WebhookCacheTTL = time.Hour // one read of the webhook serves every attempt
		d := startDispatcher(t, st, cfg)

		check := func(when string, wantOld bool) {
			t.Helper()
			if _, err := d.Emit(ctx, Event{Type: EventWorkflowCompleted, Tenant: "acme", Data: map[string]any{}}); err != nil {
				t.Fatal(err)
			}
			got := rc.next(t)
			if g := got.header.Get(HeaderSignature); g != SignLegacy(fresh, got.body) {
				t.Errorf("%s: X-Webhook-Signature is not the new secret's", when)
			}
			for _, c := range []struct {
				secret string
				want   bool
			}{{fresh, true}, {old, wantOld}} {
				v, err := NewVerifier([]string{c.secret}, VerifyOptions{Now: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Verify(got.body, got.header); (err == nil) != c.want {
					t.Errorf("%s: verify with the %s secret: %v, want verified %v", when, map[bool]string{true: "new", false: "previous"}[c.secret == fresh], err, c.want)
				}
			}
		}
		check("during the grace period", true)
		clock.Advance(expires.Sub(clock.Now()) - time.Nanosecond)
		check("1 ns before ExpiresAt", true)
		clock.Advance(time.Nanosecond)
		check("at ExpiresAt", false)
	})
}

// TestReactivatedWebhookIsSent: a webhook the delivery loop last read
// inactive, and that is active again, gets the deliveries emitted to it.
// The cached read used to fail them unsent ("webhook is inactive") for
// as long as it lived, though Emit had matched the webhook active: events
// lost to a receiver whose owner had just switched it back on.
func TestReactivatedWebhookIsSent(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		w := addWebhook(t, st, "a", rc.URL)
		w.Active = false
		saveWebhook(t, st, w)
		cfg := testConfig()
		// One read serves every attempt, so the cache cannot expire
		// during the test.
		cfg.WebhookCacheTTL = time.Hour
		d := startDispatcher(t, st, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		// The loop reads the webhook inactive (and caches it).
		if del, _, err := d.SendTest(ctx, w.ID, nil); err != nil || del.Status != store.StatusFailed {
			t.Fatalf("SendTest to the inactive webhook = %+v, %v; want failed", del, err)
		}
		w.Active = true
		saveWebhook(t, st, w)
		res, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.DeliveryIDs) != 1 {
			t.Fatalf("Emit matched %d webhooks, want the reactivated one", len(res.DeliveryIDs))
		}
		var del *store.Delivery
		waitFor(t, "the delivery to finish", func() bool {
			var err error
			if del, err = st.GetDelivery(ctx, res.DeliveryIDs[0]); err != nil {
				t.Fatalf("GetDelivery: %v", err)
			}
			return del.Status.Finished()
		})
		if del.Status != store.StatusSuccess || rc.count() != 1 {
			t.Errorf("delivery to the reactivated webhook: %s (%s), %d requests; want success, 1", del.Status, del.LastError, rc.count())
		}
	})
}

// emit emits a user.login event of tenant "a" and returns its delivery
// ids.
func emit(t testing.TB, d *Dispatcher) []string {
	t.Helper()
	res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
	if err != nil {
		t.Fatalf("Emit: %v", err)
	}
	return res.DeliveryIDs
}

// emitN emits n such events and returns all their delivery ids.
func emitN(t testing.TB, d *Dispatcher, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		ids = append(ids, emit(t, d)...)
	}
	return ids
}

// TestUnderscoreReservedHeadersNotSent: a store may hold a header the
// Registry refuses, such as Webhook_Signature, which CGI and WSGI receivers
// read as Webhook-Signature. The dispatcher used to send it (a forged
// signature beside its own); it drops it, and keeps other names with '_'.
func TestUnderscoreReservedHeadersNotSent(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	w := addWebhook(t, st, "acme", rc.URL+"/hook", EventWorkflowCompleted)
	w.Headers = map[string]string{"Webhook_Signature": "v1,forged", "X_Webhook_Event": "forged", "Content_Type": "text/plain",
		"X_Request_Source": "noa"}
	saveWebhook(t, st, w)
	d := startDispatcher(t, st, testConfig())
	if _, err := d.Emit(context.Background(), Event{Type: EventWorkflowCompleted, Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t)
	var under []string
	for k := range got.header {
		if strings.Contains(k, "_") {
			under = append(under, k)
		}
	}
	if len(under) != 1 || got.header.Get("X_request_source") != "noa" {
		t.Errorf("headers with '_' sent: %q; want only X_Request_Source", under)
	}
}

// unreadableWebhook is a store whose webhook bad cannot be read (a damaged
// record, a newer release's format), as boltstore answers: every read of
// it fails. It counts the reads.
type unreadableWebhook struct {
	store.Store
	bad   string
	reads atomic.Int64
}

func (s *unreadableWebhook) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	if id == s.bad {
		s.reads.Add(1)
		return nil, fmt.Errorf("test: webhook %q: %w", id, store.ErrInvalid)
	}
	return s.Store.GetWebhook(ctx, id)
}

// TestUnreadableWebhookIsNotClaimedInALoop: a delivery whose webhook the
// store cannot read keeps its lease, whose expiry retries it. Given back
// due at once, it was claimed again by the next claim, read, and given
// back, in a loop that burnt a processor and logged an error each time,
// for as long as the record stayed unreadable. The other webhook's
// deliveries go on.
func TestUnreadableWebhookIsNotClaimedInALoop(t *testing.T) {
	rc := newReceiver(t, nil)
	inner := newMemStore(t)
	bad := addWebhook(t, inner, "a", rc.URL+"/bad")
	addWebhook(t, inner, "b", rc.URL+"/good")
	st := &unreadableWebhook{Store: inner, bad: bad.ID}
	cfg := testConfig()
	cfg.WebhookCacheTTL = -1 // every claim and attempt reads the store
	d := startDispatcher(t, st, cfg)
	id := emit(t, d)[0]
	waitFor(t, "the unreadable webhook's read", func() bool { return st.reads.Load() > 0 })
	res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "b"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, st, res.DeliveryIDs[0], store.StatusSuccess, 1)
	time.Sleep(20 * cfg.PollInterval) // twenty polls
	// One claim of the delivery: its read for the rate limit, and the
	// attempt's.
	if n := st.reads.Load(); n > 2 {
		t.Errorf("the unreadable webhook was read %d times in twenty polls, want at most twice (one claim)", n)
	}
	del, err := inner.GetDelivery(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if del.Status != store.StatusPending || del.Attempts != 0 || del.LeaseOwner == "" {
		t.Errorf("delivery %s: %d attempts, lease owner %q; want pending, unattempted and leased", del.Status, del.Attempts, del.LeaseOwner)
	}
}
