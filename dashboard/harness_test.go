package dashboard_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/dashboard"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
)

// Tenants of the tests and the bearer tokens that name them.
const (
	alice = "tenant-alice"
	bob   = "tenant-bob"
)

var tokens = map[string]string{"alice-token": alice, "bob-token": bob}

// bearerTenant is the host's tenant function: the bearer token names the
// tenant, as in the management API.
func bearerTenant(r *http.Request) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", errors.New("no bearer token")
	}
	t, ok := tokens[tok]
	if !ok {
		return "", errors.New("unknown token")
	}
	return t, nil
}

// failBody is what the receiver answers when it fails: markup that must
// reach the page escaped.
const failBody = `{"error":"<script>alert('xss')</script> overloaded"}`

// receiver is a consumer endpoint that verifies every signature with the
// webhook's secret and answers 200, or 500 while failing is set.
type receiver struct {
	srv      *httptest.Server
	verifier *webhook.Verifier

	mu       sync.Mutex
	failing  bool
	verified int
	refused  int
	events   []string
}

// newReceiver starts a receiver that verifies with secret; with "" it
// refuses every request until setSecret.
func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	rc := &receiver{}
	if secret != "" {
		rc.setSecret(t, secret)
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

// setSecret makes the receiver verify with secret (for a webhook created
// after the receiver, whose secret the host generated).
func (rc *receiver) setSecret(t testing.TB, secret string) {
	t.Helper()
	v, err := webhook.NewVerifier([]string{secret}, webhook.VerifyOptions{})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	rc.mu.Lock()
	rc.verifier = v
	rc.mu.Unlock()
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.verifier == nil || rc.verifier.Verify(body, r.Header) != nil {
		rc.refused++
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	rc.verified++
	rc.events = append(rc.events, r.Header.Get("X-Webhook-Event"))
	if rc.failing {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, failBody)
		return
	}
	w.Header().Set("X-Receiver", "test")
	io.WriteString(w, "OK")
}

func (rc *receiver) setFailing(f bool) {
	rc.mu.Lock()
	rc.failing = f
	rc.mu.Unlock()
}

// counts returns how many requests were verified and refused.
func (rc *receiver) counts() (verified, refused int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.verified, rc.refused
}

// env is a host: a store, a registry, a running dispatcher that reaches
// loopback, and the dashboard mounted at /dashboard/ of a test server.
type env struct {
	st   store.Store
	reg  *webhook.Registry
	disp *webhook.Dispatcher
	srv  *httptest.Server
}

type envOptions struct {
	// wrap, when set, wraps the store the dashboard reads.
	wrap func(store.Store) store.Store
	// noStart leaves the dispatcher stopped.
	noStart  bool
	pageSize int
	// logger is the dashboard's Config.Logger.
	logger *slog.Logger
	// perWebhook is the dispatcher's PerWebhookConcurrency.
	perWebhook int
	// store replaces the default memstore; it is closed at the end.
	store store.Store
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	st := o.store
	if st == nil {
		st = memstore.New()
	}
	t.Cleanup(func() { st.Close() })
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{AllowHTTP: true})
	disp, err := webhook.New(st, &webhook.Config{
		AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		AllowAnyPort:  true,
		PollInterval:  20 * time.Millisecond,
		Timeout:       10 * time.Second,
		// One attempt per round: a failure is final at once, so the
		// dashboard can retry it.
		Retry:                 webhook.RetryPolicy{MaxAttempts: 1},
		PerWebhookConcurrency: o.perWebhook,
	})
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	if !o.noStart {
		if err := disp.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := disp.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
	}
	var dst store.Store = st
	if o.wrap != nil {
		dst = o.wrap(st)
	}
	h, err := dashboard.New(dashboard.Config{
		Registry:   reg,
		Dispatcher: disp,
		Store:      dst,
		Tenant:     bearerTenant,
		Prefix:     "/dashboard",
		PageSize:   o.pageSize,
		Logger:     o.logger,
	})
	if err != nil {
		t.Fatalf("dashboard.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{st: st, reg: reg, disp: disp, srv: srv}
}

// newSecret returns a fresh "whsec_" secret.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// addWebhook registers a webhook of tenant to url with a known secret.
func (e *env) addWebhook(t testing.TB, tenant, url, secret string) *store.Webhook {
	t.Helper()
	wh, err := e.reg.Create(context.Background(), tenant, webhook.WebhookInput{
		URL: url, Events: []string{"workflow.completed", "agent.*"}, Secret: secret,
		Description: "orders <service> & co",
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return wh
}

// seedDeliveries stores n deliveries of wh directly in st, the first
// finished ones alternating success and failed (every third failed) and the
// rest pending, created one second apart ending now.
func seedDeliveries(t testing.TB, st store.Store, wh *store.Webhook, n, finished int) {
	t.Helper()
	seedHistory(t, st, wh, n, finished, time.Second)
}

// seedHistory is seedDeliveries with the deliveries created every apart.
func seedHistory(t testing.TB, st store.Store, wh *store.Webhook, n, finished int, every time.Duration) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	const batch = 1000
	for start := 0; start < n; start += batch {
		var ds []*store.Delivery
		for i := start; i < min(n, start+batch); i++ {
			ds = append(ds, &store.Delivery{
				ID: "del_" + uuid.Must(uuid.NewV7()).String(), WebhookID: wh.ID, Tenant: wh.Tenant,
				EventID: fmt.Sprintf("evt_seed_%d", i), EventType: "workflow.completed",
				Body:      []byte(`{"id":"evt","event":"workflow.completed","data":{}}`),
				Status:    store.StatusPending,
				CreatedAt: now.Add(-time.Duration(n-i) * every), NextAttemptAt: now.Add(time.Hour),
			})
		}
		if _, err := st.Enqueue(ctx, ds); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	done := 0
	for done < finished {
		claimed, err := st.Claim(ctx, store.ClaimParams{
			Now: now.Add(2 * time.Hour), Limit: min(batch, finished-done), Lease: time.Hour, Owner: "seed",
		})
		if err != nil || len(claimed) == 0 {
			t.Fatalf("Claim: %v (%d claimed)", err, len(claimed))
		}
		for _, d := range claimed {
			status, code := store.StatusSuccess, 200
			if done%3 == 2 {
				status, code = store.StatusFailed, 500
			}
			err := st.Complete(ctx, store.CompleteParams{
				DeliveryID: d.ID, Owner: "seed", Status: status, Now: now,
				Attempt: &store.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: now, Duration: time.Millisecond,
					RequestURL: wh.URL, ResponseStatus: code},
			})
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			done++
		}
	}
}

// client is a browser-less user of the dashboard: it sends the tenant's
// token and does not follow redirects.
type client struct {
	t     testing.TB
	base  string
	token string
}

func (e *env) client(t testing.TB, token string) *client {
	return &client{t: t, base: e.srv.URL, token: token}
}

// do sends a request and returns the status, headers and body.
func (c *client) do(method, path string, hdr map[string]string) (int, http.Header, string) {
	c.t.Helper()
	return c.send(method, path, hdr, nil)
}

// postForm sends a same-origin POST of form and returns the status and
// the body.
func (c *client) postForm(path string, form url.Values) (int, string) {
	c.t.Helper()
	code, _, body := c.send(http.MethodPost, path, nil, strings.NewReader(form.Encode()))
	return code, body
}

// send is do with a request body.
func (c *client) send(method, path string, hdr map[string]string, body io.Reader) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// What a browser sends for a form on the dashboard's own page.
		req.Header.Set("Origin", c.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (c *client) get(path string) (int, string) {
	c.t.Helper()
	code, _, body := c.do(http.MethodGet, path, nil)
	return code, body
}

// post sends a same-origin form POST and returns the status and the
// redirect's location.
func (c *client) post(path string) (int, string) {
	c.t.Helper()
	code, h, _ := c.do(http.MethodPost, path, nil)
	return code, h.Get("Location")
}
