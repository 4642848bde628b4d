package api_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/internal/testlog"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
)

func TestNewRefusesIncompleteConfig(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	disp, err := webhook.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{})
	tenant := func(*http.Request) (string, error) { return "t", nil }
	for name, cfg := range map[string]api.Config{
		"Registry":     {Dispatcher: disp, Store: st, Tenant: tenant},
		"Dispatcher":   {Registry: reg, Store: st, Tenant: tenant},
		"Store":        {Registry: reg, Dispatcher: disp, Tenant: tenant},
		"Tenant":       {Registry: reg, Dispatcher: disp, Store: st},
		"MaxBodyBytes": {Registry: reg, Dispatcher: disp, Store: st, Tenant: tenant, MaxBodyBytes: -1},
	} {
		h, err := api.New(cfg)
		if !errors.Is(err, api.ErrConfig) || h != nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v", name, err)
		}
	}
	if _, err := api.New(api.Config{Registry: reg, Dispatcher: disp, Store: st, Tenant: tenant}); err != nil {
		t.Errorf("complete config: %v", err)
	}
}

// A server fault is answered 500 in the envelope without its cause, which
// goes to the log; a panic of the host's tenant function too.
func TestServerFaultsAreLoggedNotShown(t *testing.T) {
	st := memstore.New()
	disp, err := webhook.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs testlog.Buffer
	h, err := api.New(api.Config{
		Registry: webhook.NewRegistry(st, webhook.RegistryOptions{}), Dispatcher: disp, Store: st,
		Tenant: func(r *http.Request) (string, error) {
			if r.Header.Get("X-Panic") != "" {
				panic("tenant lookup exploded")
			}
			return "t", nil
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	hs := &harness{t: t, api: srv}

	// A request its client left is no server fault: nothing is logged.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(gone, "GET", "/v1/webhooks", nil)
	req.Header.Set("Authorization", "Bearer "+tokenA)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if logs.String() != "" {
		t.Errorf("a request its client left was logged: %s", logs.String())
	}

	st.Close() // every store call now fails with store.ErrClosed
	r := hs.do("GET", "/v1/webhooks", tokenA, "").must(t, http.StatusInternalServerError)
	if code, _ := r.errCode(t); code != "internal_error" || strings.Contains(string(r.raw), store.ErrClosed.Error()) {
		t.Errorf("500 answer: %s", r.raw)
	}
	if !strings.Contains(logs.String(), store.ErrClosed.Error()) {
		t.Errorf("the cause is not logged: %s", logs.String())
	}
	r = hs.do("GET", "/v1/webhooks", tokenA, "", "X-Panic", "1").must(t, http.StatusInternalServerError)
	if code, _ := r.errCode(t); code != "internal_error" || strings.Contains(string(r.raw), "exploded") {
		t.Errorf("panic answer: %s", r.raw)
	}
	if !strings.Contains(logs.String(), "tenant lookup exploded") {
		t.Errorf("the panic is not logged: %s", logs.String())
	}
}

// The test route gives up waiting after SendTimeout with 504; the attempt
// still completes and is logged.
func TestTestWebhookTimeout(t *testing.T) {
	h := newHarness(t, stores[0].open, options{sendTimeout: 200 * time.Millisecond})
	id, _ := h.create(tokenA)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: frees the handler
	h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"url":"`+slow.URL+`"}`).must(t, http.StatusOK)
	r := h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusGatewayTimeout)
	if code, _ := r.errCode(t); code != "timeout" {
		t.Errorf("code %q", code)
	}
	l := h.do("GET", "/v1/webhooks/"+id+"/deliveries", tokenA, "").must(t, http.StatusOK)
	if items := l.items(t); len(items) != 1 || items[0]["event"] != "webhook.test" {
		t.Errorf("the timed-out test delivery is not listed: %s", l.raw)
	}
}

// Times are RFC 3339 in UTC with milliseconds.
func TestTimeFormat(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	id, _ := h.create(tokenA)
	d := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t)
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, k := range []string{"createdAt", "updatedAt"} {
		s, _ := d[k].(string)
		ts, err := time.Parse(time.RFC3339, s)
		if !re.MatchString(s) || err != nil || time.Since(ts) > time.Minute {
			t.Errorf("%s = %q", k, s)
		}
	}
}
