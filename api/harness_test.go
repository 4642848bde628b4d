package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/memstore"
)

// Bearer tokens of the two tenants every harness knows.
const (
	tokenA  = "token-of-acme"
	tokenB  = "token-of-globex"
	tenantA = "acme"
	tenantB = "globex"
)

var stores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memstore", func(t *testing.T) store.Store { return memstore.New() }},
	{"boltstore", func(t *testing.T) store.Store {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "webhooks.db"), &boltstore.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

// eachStore runs f once per store implementation.
func eachStore(t *testing.T, f func(t *testing.T, open func(t *testing.T) store.Store)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f(t, s.open)
		})
	}
}

type options struct {
	events      bool
	maxAttempts int
	maxBody     int64
	sendTimeout time.Duration
	noStart     bool
	perWebhook  int // Config.PerWebhookConcurrency
	maxWebhooks int // RegistryOptions.MaxWebhooks
	// regNow is the Registry's clock (of rotations and of createdAt and
	// updatedAt); nil is time.Now.
	regNow func() time.Time
	// logger receives the logs of the dispatcher and of the API; nil is
	// silence.
	logger *slog.Logger
	// tenant maps a request to its tenant; nil is bearerTenant.
	tenant func(*http.Request) (string, error)
}

// regClock is a Registry clock a test moves by hand.
type regClock struct {
	mu  sync.Mutex
	now time.Time
}

func newRegClock() *regClock {
	return &regClock{now: time.Now().UTC().Truncate(time.Second)}
}

func (c *regClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *regClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// harness is the API served over real HTTP on a real store, with a
// running dispatcher and a receiver that verifies signatures.
type harness struct {
	t    *testing.T
	api  *httptest.Server
	st   store.Store
	disp *webhook.Dispatcher
	recv *receiver
}

func newHarness(t *testing.T, open func(t *testing.T) store.Store, o options) *harness {
	t.Helper()
	st := open(t)
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	retry := webhook.RetryPolicy{Jitter: -1, InitialInterval: time.Hour, MaxAttempts: o.maxAttempts}
	disp, err := webhook.New(st, &webhook.Config{
		AllowedRanges: loopback, AllowAnyPort: true,
		PollInterval: 10 * time.Millisecond, Retry: retry, Timeout: 5 * time.Second,
		PerWebhookConcurrency: o.perWebhook, Logger: o.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !o.noStart {
		if err := disp.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	tenant := o.tenant
	if tenant == nil {
		tenant = bearerTenant
	}
	h, err := api.New(api.Config{
		Registry:     webhook.NewRegistry(st, webhook.RegistryOptions{AllowHTTP: true, Now: o.regNow, MaxWebhooks: o.maxWebhooks}),
		Dispatcher:   disp,
		Store:        st,
		Tenant:       tenant,
		EnableEvents: o.events,
		MaxBodyBytes: o.maxBody,
		SendTimeout:  o.sendTimeout,
		Logger:       o.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	hs := &harness{t: t, api: srv, st: st, disp: disp, recv: newReceiver(t)}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := disp.Stop(ctx); err != nil {
			t.Errorf("stop dispatcher: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return hs
}

var errNoToken = errors.New("no valid bearer token")

func bearerTenant(r *http.Request) (string, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer " + tokenA:
		return tenantA, nil
	case "Bearer " + tokenB:
		return tenantB, nil
	}
	return "", errNoToken
}

// response is one answer of the API.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// data returns the envelope's data as an object.
func (r *response) data(t *testing.T) map[string]any {
	t.Helper()
	d, ok := r.body["data"].(map[string]any)
	if !ok {
		t.Fatalf("data is not an object: %s", r.raw)
	}
	return d
}

// items returns the envelope's data as an array of objects.
func (r *response) items(t *testing.T) []map[string]any {
	t.Helper()
	arr, ok := r.body["data"].([]any)
	if !ok {
		t.Fatalf("data is not an array: %s", r.raw)
	}
	out := make([]map[string]any, len(arr))
	for i, v := range arr {
		out[i] = v.(map[string]any)
	}
	return out
}

// errCode returns error.code and error.field of a failure envelope.
func (r *response) errCode(t *testing.T) (code, field string) {
	t.Helper()
	if r.body["success"] != false {
		t.Fatalf("not a failure envelope: %d %s", r.status, r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r.raw)
	}
	if m, _ := e["message"].(string); m == "" {
		t.Errorf("error without message: %s", r.raw)
	}
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

// do sends one request; body "" sends none. A JSON body gets
// Content-Type: application/json unless hdr sets one.
func (h *harness) do(method, path, token, body string, hdr ...string) *response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.api.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return send(h.t, req)
}

func send(t *testing.T, req *http.Request) *response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{status: res.StatusCode, header: res.Header, raw: raw}
	if req.Method != http.MethodHead {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: Content-Type %q, body %s", req.Method, req.URL.Path, ct, raw)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v: %s", req.Method, req.URL.Path, err, raw)
		}
	}
	return r
}

// must checks the status and the success envelope.
func (r *response) must(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if status < 300 && r.body["success"] != true {
		t.Fatalf("not a success envelope: %s", r.raw)
	}
	return r
}

// create registers a webhook of token's tenant to the receiver and returns
// its id and secret; the receiver verifies with that secret from then on.
func (h *harness) create(token string, events ...string) (id, secret string) {
	h.t.Helper()
	if len(events) == 0 {
		events = []string{"workflow.completed"}
	}
	ev, _ := json.Marshal(events)
	r := h.do("POST", "/v1/webhooks", token, `{"url":"`+h.recv.url()+`","events":`+string(ev)+`}`).must(h.t, http.StatusCreated)
	d := r.data(h.t)
	id, secret = d["id"].(string), d["secret"].(string)
	h.recv.addSecret(secret)
	return id, secret
}

// receiver is the consumer's endpoint: it verifies every request with the
// secrets it was given and answers status.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	secrets []string
	status  atomic.Int32
	got     chan received
}

type received struct {
	header http.Header
	body   []byte
	err    error // the verification's
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, got: make(chan received, 256)}
	rc.status.Store(http.StatusOK)
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			rc.mu.Lock()
			secrets := append([]string(nil), rc.secrets...)
			rc.mu.Unlock()
			var v *webhook.Verifier
			if v, err = webhook.NewVerifier(secrets, webhook.VerifyOptions{}); err == nil {
				err = v.Verify(body, r.Header)
			}
		}
		select {
		case rc.got <- received{header: r.Header.Clone(), body: body, err: err}:
		default:
		}
		st := int(rc.status.Load())
		w.WriteHeader(st)
		if st == http.StatusOK {
			io.WriteString(w, "OK")
		} else {
			io.WriteString(w, "Processing failed")
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/webhooks/noa-server" }

func (rc *receiver) addSecret(s string) {
	rc.mu.Lock()
	rc.secrets = append(rc.secrets, s)
	rc.mu.Unlock()
}

func (rc *receiver) setSecrets(s ...string) {
	rc.mu.Lock()
	rc.secrets = s
	rc.mu.Unlock()
}

// next returns the next request the receiver got.
func (rc *receiver) next() received {
	rc.t.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(20 * time.Second):
		rc.t.Fatal("the receiver got nothing in 20 s")
		return received{}
	}
}

// eventually polls cond until it holds, failing after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noSecret fails when raw holds any of secrets.
func noSecret(t *testing.T, what string, raw []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && bytes.Contains(raw, []byte(s)) {
			t.Errorf("%s shows a secret: %s", what, raw)
		}
	}
}
