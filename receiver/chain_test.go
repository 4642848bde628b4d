package receiver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	webhook "github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/testlog"
)

// TestFullChain sends requests signed by the sender side over real HTTP
// through IP allowlist → Health → Verify → Idempotency (bbolt) → Router.
func TestFullChain(t *testing.T) {
	t.Parallel()
	store, err := OpenBoltStore(filepath.Join(t.TempDir(), "idem.db"), BoltStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	health := NewHealth(nil)
	router := newRouter(t, RouterOptions{})
	var mu sync.Mutex
	var seenBody []byte
	var seenData workflowData
	Handle(router, "workflow.completed", func(ctx context.Context, e *Event, d workflowData) error {
		raw, _ := RawBodyFromContext(ctx)
		mu.Lock()
		seenBody, seenData = raw, d
		mu.Unlock()
		return nil
	})
	router.On("workflow.failed", func(ctx context.Context, e *Event) error { return io.ErrUnexpectedEOF })

	chain := IPAllowlist("127.0.0.0/8", "::1")(
		health.Middleware(
			Verify(secret2, secret1)(
				Idempotency(store)(
					router))))
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/noa-server", chain)
	mux.Handle("GET /webhooks/metrics", health.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	signer, err := webhook.NewSigner(secret1, secret2)
	if err != nil {
		t.Fatal(err)
	}
	post := func(id, body string, mutate func(http.Header)) int {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+"/webhooks/noa-server", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		signer.Sign(req.Header, id, time.Now(), []byte(body))
		if mutate != nil {
			mutate(req.Header)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode
	}
	// Bytes JSON.stringify would keep but a Go re-encoding would change.
	body := eventBody("evt_a", "workflow.completed", `{"workflowId":"wf_<1>&","status":"done\u2028"}`)
	steps := []struct {
		name   string
		id     string
		body   string
		mutate func(http.Header)
		want   int
	}{
		{"first delivery", "evt_a", body, nil, 200},
		{"duplicate", "evt_a", body, nil, 200},
		{"tampered", "evt_b", body, func(h http.Header) { h.Set("webhook-signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") }, 401},
		{"handler error", "evt_c", eventBody("evt_c", "workflow.failed", `{}`), nil, 500},
		{"unknown type", "evt_d", eventBody("evt_d", "user.login", `{}`), nil, 200},
		{"malformed header", "evt_e", body, func(h http.Header) { h.Set("webhook-timestamp", "soon") }, 400},
	}
	for _, s := range steps {
		if got := post(s.id, s.body, s.mutate); got != s.want {
			t.Fatalf("%s: status %d, want %d", s.name, got, s.want)
		}
	}
	mu.Lock()
	if !bytes.Equal(seenBody, []byte(body)) {
		t.Fatalf("handler saw %q, sender signed %q", seenBody, body)
	}
	if seenData.WorkflowID != "wf_<1>&" || seenData.Status != "done\u2028" {
		t.Fatalf("data = %+v", seenData)
	}
	mu.Unlock()

	resp, err := srv.Client().Get(srv.URL + "/webhooks/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got HealthStats
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := HealthStats{Received: 6, Processed: 2, Failed: 1, Duplicates: 1, Rejected: 2, SuccessRate: 2.0 / 6}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("metrics (-want +got):\n%s", d)
	}
}

func TestHealthCountsBackgroundAndPanics(t *testing.T) {
	t.Parallel()
	health := NewHealth(nil)
	failed := make(chan struct{}, 1)
	r := newRouter(t, RouterOptions{
		Background: &BackgroundOptions{MaxAttempts: 1},
		OnFailure:  func(*Event, error) { failed <- struct{}{} },
	})
	processed := make(chan struct{}, 1)
	r.On("x.ok", func(context.Context, *Event) error { processed <- struct{}{}; return nil })
	r.On("x.bad", func(context.Context, *Event) error { return io.EOF })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := health.Middleware(r)
	if res := routed(t, h, "evt_1", "x.ok", `{}`); res.Code != 202 {
		t.Fatal(res.Code)
	}
	<-processed
	if res := routed(t, h, "evt_2", "x.bad", `{}`); res.Code != 202 {
		t.Fatal(res.Code)
	}
	<-failed
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	panicky := health.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("x") }))
	func() {
		defer func() { _ = recover() }()
		panicky.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil))
	}()
	want := HealthStats{Received: 3, Processed: 1, Failed: 2, SuccessRate: 1.0 / 3}
	if d := cmp.Diff(want, health.Stats()); d != "" {
		t.Fatalf("stats (-want +got):\n%s", d)
	}
	// Nothing received: a rate of 0, never NaN.
	if s := NewHealth(nil).Stats(); s.SuccessRate != 0 {
		t.Fatalf("empty rate %v", s.SuccessRate)
	}
}

// TestChainLogsAndAnswersHoldNoSecret sends refused and accepted
// deliveries through the whole chain with every logger on at debug level,
// and checks that neither the logs nor the answers hold the secret, its
// key, or any signature (sent or expected): nothing that would help an
// attacker forge or brute-force one.
func TestChainLogsAndAnswersHoldNoSecret(t *testing.T) {
	t.Parallel()
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := guideTime
	router := newRouter(t, RouterOptions{Logger: log})
	router.On("workflow.failed", func(context.Context, *Event) error { return errors.New("db down") })
	allow, err := IPAllowlistWithOptions(IPAllowlistOptions{Allow: []string{"127.0.0.1", "::1"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	verify := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(now), MaxBodyBytes: 4096, Logger: log})
	idem, err := IdempotencyWithOptions(IdempotencyOptions{Store: NewMemoryStore(MemoryStoreOptions{}), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(allow(NewHealth(log).Middleware(verify(idem(router)))))
	defer srv.Close()

	forbidden := []string{secret1, strings.TrimPrefix(secret1, webhook.SecretPrefix)}
	deliver := func(name, body string, at time.Time, edit func(http.Header), want int) {
		t.Helper()
		req := signedRequest(t, body, "evt_log", at, secret1)
		if edit != nil {
			edit(req.Header)
		}
		// The expected signatures of what was sent, and what was sent.
		forbidden = append(forbidden,
			strings.TrimPrefix(webhook.SignStandard(secret1, "evt_log", now.Unix(), []byte(body)), "v1,"),
			strings.TrimPrefix(webhook.SignStandard(secret1, "evt_log", at.Unix(), []byte(body)), "v1,"),
			strings.TrimPrefix(webhook.SignLegacy(secret1, []byte(body)), "sha256="))
		for _, k := range []string{"webhook-signature", "X-Webhook-Signature"} {
			for _, v := range req.Header.Values(k) {
				forbidden = append(forbidden, strings.TrimPrefix(strings.TrimPrefix(v, "v1,"), "sha256="))
			}
		}
		req.RequestURI = ""
		req.URL, _ = req.URL.Parse(srv.URL + "/webhooks/noa-server")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d", name, resp.StatusCode, want)
		}
		for _, f := range forbidden {
			if f != "" && strings.Contains(string(answer)+fmt.Sprint(resp.Header), f) {
				t.Fatalf("%s: the answer holds %q", name, f)
			}
		}
	}
	body := eventBody("evt_log", "workflow.completed", `{}`)
	deliver("accepted", body, now, nil, 200)
	deliver("duplicate", body, now, nil, 200)
	deliver("handler error", eventBody("evt_log2", "workflow.failed", `{}`), now, func(h http.Header) {
		h.Set("webhook-id", "evt_log2")
		h.Set("webhook-signature", webhook.SignStandard(secret1, "evt_log2", now.Unix(), []byte(eventBody("evt_log2", "workflow.failed", `{}`))))
	}, 500)
	deliver("wrong secret", body, now, func(h http.Header) {
		h.Set("webhook-signature", webhook.SignStandard(secret2, "evt_log", now.Unix(), []byte(body)))
	}, 401)
	deliver("one bit off", body, now, func(h http.Header) {
		mac, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(h.Get("webhook-signature"), "v1,"))
		mac[0] ^= 1
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac))
	}, 401)
	deliver("stale", body, now.Add(-time.Hour), nil, 401)
	deliver("legacy only", body, now, func(h http.Header) {
		h.Del("webhook-id")
		h.Del("webhook-timestamp")
		h.Del("webhook-signature")
	}, 401)
	deliver("malformed timestamp", body, now, func(h http.Header) { h.Set("webhook-timestamp", "soon") }, 400)
	deliver("oversized", eventBody("evt_log", "workflow.completed", `"`+strings.Repeat("a", 8192)+`"`), now, nil, 413)

	l := logs.String()
	if strings.Count(l, "webhook refused") != 6 {
		t.Fatalf("want 6 refusals logged, got:\n%s", l)
	}
	for _, f := range forbidden {
		if f != "" && strings.Contains(l, f) {
			t.Fatalf("the logs hold %q:\n%s", f, l)
		}
	}
}

// TestHealthCountsGoexitAsFailed: a handler that ends with runtime.Goexit
// sends no answer (the connection is closed), so Health counts it failed,
// not processed.
func TestHealthCountsGoexitAsFailed(t *testing.T) {
	t.Parallel()
	health := NewHealth(nil)
	srv := httptest.NewServer(health.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runtime.Goexit() })))
	defer srv.Close()
	if resp, err := srv.Client().Post(srv.URL, "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		t.Fatalf("an answer arrived: status %d", resp.StatusCode)
	}
	want := HealthStats{Received: 1, Failed: 1}
	if d := cmp.Diff(want, health.Stats()); d != "" {
		t.Fatalf("stats (-want +got):\n%s", d)
	}
}

// TestHealthHandlerServesOnlyCounters pins what the metrics endpoint
// exposes: the six documented numbers as uncached JSON, nothing else.
func TestHealthHandlerServesOnlyCounters(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(NewHealth(nil).Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
	}
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"received": 0.0, "processed": 0.0, "failed": 0.0, "duplicates": 0.0, "rejected": 0.0, "successRate": 0.0}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("metrics (-want +got):\n%s", d)
	}
}
