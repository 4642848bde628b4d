package dashboard_test

import (
	"bytes"
	"context"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/dashboard"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
	"github.com/noa-server/webhook/store/storetest"
)

func TestNewRefusesIncompleteConfig(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{})
	disp, err := webhook.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	full := dashboard.Config{Registry: reg, Dispatcher: disp, Store: st, Tenant: bearerTenant}
	tests := []struct {
		name string
		edit func(*dashboard.Config)
		want string
	}{
		{"no registry", func(c *dashboard.Config) { c.Registry = nil }, "Config.Registry"},
		{"no dispatcher", func(c *dashboard.Config) { c.Dispatcher = nil }, "Config.Dispatcher"},
		{"no store", func(c *dashboard.Config) { c.Store = nil }, "Config.Store"},
		{"no tenant", func(c *dashboard.Config) { c.Tenant = nil }, "Config.Tenant"},
		{"prefix with trailing slash", func(c *dashboard.Config) { c.Prefix = "/dashboard/" }, "Config.Prefix"},
		{"relative prefix", func(c *dashboard.Config) { c.Prefix = "dashboard" }, "Config.Prefix"},
		{"prefix with //", func(c *dashboard.Config) { c.Prefix = "/a//b" }, "Config.Prefix"},
		{"prefix with ..", func(c *dashboard.Config) { c.Prefix = "/a/../b" }, "Config.Prefix"},
		{"prefix with .", func(c *dashboard.Config) { c.Prefix = "/a/." }, "Config.Prefix"},
		{"prefix with a control character", func(c *dashboard.Config) { c.Prefix = "/a\nb" }, "Config.Prefix"},
		{"page too large", func(c *dashboard.Config) { c.PageSize = store.MaxPageLimit + 1 }, "Config.PageSize"},
		{"negative sample", func(c *dashboard.Config) { c.ChartSample = -1 }, "Config.ChartSample"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := full
			tt.edit(&cfg)
			_, err := dashboard.New(cfg)
			if !errors.Is(err, dashboard.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want ErrConfig naming %s", err, tt.want)
			}
		})
	}
	if _, err := dashboard.New(full); err != nil {
		t.Fatalf("New(full config) = %v", err)
	}
}

func TestEveryAnswerIsLockedDown(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	c := e.client(t, "alice-token")
	_, first, _ := c.do(http.MethodGet, "/dashboard/", nil)
	csp := first.Get("Content-Security-Policy")
	for _, path := range []string{"/dashboard/", "/dashboard/webhooks/" + wh.ID, "/dashboard/nope", "/dashboard/static/style.css"} {
		code, h, _ := c.do(http.MethodGet, path, nil)
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "form-action 'self'") {
			t.Errorf("GET %s (%d): Content-Security-Policy %q is not strict", path, code, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: missing nosniff or frame denial: %v", path, h)
		}
		if strings.HasPrefix(h.Get("Content-Type"), "text/html") && h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: page cacheable: Cache-Control %q", path, h.Get("Cache-Control"))
		}
	}
	// No script anywhere, not even inline: the CSP would refuse it.
	for _, path := range []string{"/dashboard/", "/dashboard/webhooks/" + wh.ID} {
		if _, body := c.get(path); strings.Contains(strings.ToLower(body), "<script") || strings.Contains(body, " style=") {
			t.Errorf("GET %s: the page has inline script or style", path)
		}
	}
	// Answers other than a page: a redirect after an action, refusals,
	// the static files, each with its own Content-Type.
	answers := []struct {
		method, path string
		hdr          map[string]string
		code         int
		contentType  string
	}{
		{http.MethodPost, "/dashboard/webhooks/" + wh.ID + "/disable", nil, http.StatusSeeOther, ""},
		{http.MethodPost, "/dashboard/webhooks/" + wh.ID + "/enable", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "text/html; charset=utf-8"},
		{http.MethodGet, "/dashboard/", map[string]string{"Authorization": ""}, http.StatusUnauthorized, "text/html; charset=utf-8"},
		{http.MethodGet, "/dashboard/static/style.css", nil, http.StatusOK, "text/css; charset=utf-8"},
		{http.MethodGet, "/dashboard/static/icon.svg", nil, http.StatusOK, "image/svg+xml"},
	}
	for _, a := range answers {
		code, h, _ := c.do(a.method, a.path, a.hdr)
		if code != a.code || h.Get("Content-Type") != a.contentType {
			t.Errorf("%s %s = %d %q, want %d %q", a.method, a.path, code, h.Get("Content-Type"), a.code, a.contentType)
		}
		if h.Get("Content-Security-Policy") != csp || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s: security headers missing: %v", a.method, a.path, h)
		}
	}
	if code, body := c.get("/dashboard/static/"); code != http.StatusNotFound || strings.Contains(body, `href="style.css"`) {
		t.Errorf("GET /dashboard/static/ = %d, want 404 without a listing", code)
	}
}

func TestRequestsWithoutTenantAreRefused(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	for _, token := range []string{"", "forged-token"} {
		c := e.client(t, token)
		if code, _ := c.get("/dashboard/"); code != http.StatusUnauthorized {
			t.Errorf("token %q: GET = %d, want 401", token, code)
		}
		if code, _ := c.post("/dashboard/webhooks/" + wh.ID + "/disable"); code != http.StatusUnauthorized {
			t.Errorf("token %q: POST disable = %d, want 401", token, code)
		}
	}
	got, err := e.reg.Get(context.Background(), alice, wh.ID)
	if err != nil || !got.Active {
		t.Fatalf("webhook after refused requests: %+v, %v; want active", got, err)
	}
}

// A tenant no store can hold (not UTF-8, or with a NUL byte, as a host's
// Tenant function may pass on from a user name) names no tenant: every
// page and action is refused with 401, as for an empty one, not answered
// 500 and logged as a server fault.
func TestTenantTheRegistryCannotHoldIsRefused(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	for _, tenant := range []string{"\xff", "acme\x00"} {
		var logs bytes.Buffer
		h, reg := bareDashboard(t, st, func(c *dashboard.Config) {
			c.Tenant = func(*http.Request) (string, error) { return tenant, nil }
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		wh, err := reg.Create(context.Background(), alice, webhook.WebhookInput{URL: "https://example.com/hook", Events: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		self := "/webhooks/" + wh.ID
		for _, r := range []struct{ method, path string }{
			{"GET", "/"},
			{"GET", self},
			{"GET", self + "/deliveries/del_x"},
			{"POST", self + "/disable"},
			{"POST", self + "/rotate-secret"},
			{"POST", self + "/test"},
			{"POST", self + "/deliveries/del_x/retry"},
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(r.method, r.path, nil))
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "Not signed in") {
				t.Errorf("tenant %q: %s %s = %d, want 401", tenant, r.method, r.path, rec.Code)
			}
		}
		if logs.Len() != 0 {
			t.Errorf("tenant %q: refusals were logged as server faults:\n%s", tenant, logs.String())
		}
	}
}

func TestChallengeLetsABrowserSignIn(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	h, err := dashboard.New(dashboard.Config{
		Registry: e.reg, Dispatcher: e.disp, Store: e.st, Challenge: `Basic realm="webhooks"`,
		Tenant: func(r *http.Request) (string, error) {
			if _, token, ok := r.BasicAuth(); ok && tokens[token] != "" {
				return tokens[token], nil
			}
			return "", errors.New("no credentials")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Basic realm="webhooks"` {
		t.Fatalf("GET / without credentials = %d, WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth("", "alice-token")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("GET / with credentials = %d", rec.Code)
	}
}

func TestWebhooksPageShowsOnlyTheTenantsWebhooks(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	aliceSecret, bobSecret := newSecret(), newSecret()
	wa := e.addWebhook(t, alice, "http://127.0.0.1:1/alice-hook", aliceSecret)
	wb := e.addWebhook(t, bob, "http://127.0.0.1:1/bob-hook", bobSecret)
	seedDeliveries(t, e.st, wa, 10, 9) // 6 success, 3 failed, 1 pending

	code, body := e.client(t, "alice-token").get("/dashboard/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	for _, want := range []string{wa.ID, "/alice-hook", "workflow.completed", "agent.*", "active", "66.7%", "6 ok · 3 failed",
		"orders &lt;service&gt; &amp; co"} {
		if !strings.Contains(body, want) {
			t.Errorf("webhooks page lacks %q", want)
		}
	}
	for _, leak := range []string{wb.ID, "bob-hook", aliceSecret, bobSecret, "whsec_"} {
		if strings.Contains(html.UnescapeString(body), leak) {
			t.Errorf("webhooks page shows %q", leak)
		}
	}
	// The last delivery is the newest one, pending.
	newest, _, err := e.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: alice, WebhookID: wa.ID, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "/deliveries/"+newest[0].ID) {
		t.Errorf("webhooks page does not link the last delivery %s", newest[0].ID)
	}
}

func TestTenantCannotSeeOrActOnAnotherTenantsObjects(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, newSecret())
	bobSecret := newSecret()
	wa := e.addWebhook(t, alice, rc.srv.URL+"/a", newSecret())
	wb := e.addWebhook(t, bob, rc.srv.URL+"/b", bobSecret)
	seedDeliveries(t, e.st, wa, 3, 3)
	seedDeliveries(t, e.st, wb, 3, 3)
	bobDels, _, err := e.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: bob, WebhookID: wb.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	aliceDels, _, err := e.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: alice, WebhookID: wa.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	bd := bobDels[0] // finished: a retry would be allowed for bob
	c := e.client(t, "alice-token")
	_, missing := c.get("/dashboard/webhooks/wh_00000000-0000-7000-8000-000000000000")

	gets := []string{
		"/dashboard/webhooks/" + wb.ID,
		"/dashboard/webhooks/" + wb.ID + "?status=failed",
		"/dashboard/webhooks/" + wb.ID + "/deliveries/" + bd.ID,
		// Alice's own webhook with Bob's delivery.
		"/dashboard/webhooks/" + wa.ID + "/deliveries/" + bd.ID,
		// Bob's webhook with Alice's delivery.
		"/dashboard/webhooks/" + wb.ID + "/deliveries/" + aliceDels[0].ID,
	}
	for _, path := range gets {
		code, body := c.get(path)
		if code != http.StatusNotFound {
			t.Errorf("alice GET %s = %d, want 404", path, code)
		}
		if strings.Contains(body, rc.srv.URL+"/b") || strings.Contains(html.UnescapeString(body), bobSecret) {
			t.Errorf("alice GET %s shows bob's webhook", path)
		}
	}
	// Bob's 404 reads exactly like a webhook that does not exist.
	_, foreign := c.get("/dashboard/webhooks/" + wb.ID)
	if foreign != missing {
		t.Errorf("another tenant's webhook answers differently from a missing one:\n%s\n---\n%s", foreign, missing)
	}

	posts := []string{
		"/dashboard/webhooks/" + wb.ID + "/test",
		"/dashboard/webhooks/" + wb.ID + "/disable",
		"/dashboard/webhooks/" + wb.ID + "/enable",
		"/dashboard/webhooks/" + wb.ID + "/rotate-secret",
		"/dashboard/webhooks/" + wb.ID + "/deliveries/" + bd.ID + "/retry",
		"/dashboard/webhooks/" + wa.ID + "/deliveries/" + bd.ID + "/retry",
	}
	for _, path := range posts {
		if code, _ := c.post(path); code != http.StatusNotFound {
			t.Errorf("alice POST %s = %d, want 404", path, code)
		}
	}
	after, err := e.st.GetWebhook(context.Background(), wb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Active || len(after.Secrets) != 1 || after.Secrets[0].Value != bobSecret {
		t.Errorf("bob's webhook changed: active %v, %d secrets", after.Active, len(after.Secrets))
	}
	gotBD, err := e.st.GetDelivery(context.Background(), bd.ID)
	if err != nil || gotBD.Status != bd.Status || gotBD.Attempts != bd.Attempts {
		t.Errorf("bob's delivery changed: %+v, %v", gotBD, err)
	}
	if verified, _ := rc.counts(); verified != 0 {
		t.Errorf("alice's actions sent %d requests to bob's endpoint", verified)
	}
	// And bob still sees his own.
	if code, _ := e.client(t, "bob-token").get("/dashboard/webhooks/" + wb.ID + "/deliveries/" + bd.ID); code != http.StatusOK {
		t.Errorf("bob GET his delivery = %d, want 200", code)
	}
}

// A page cursor names a position, not a tenant: another tenant's cursor
// pages through the caller's own records only.
func TestAnotherTenantsCursorShowsOnlyOwnRecords(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true, pageSize: 2})
	var bobHooks []*store.Webhook
	for range 3 {
		e.addWebhook(t, alice, "http://127.0.0.1:1/alice", newSecret())
		bobHooks = append(bobHooks, e.addWebhook(t, bob, "http://127.0.0.1:1/bob", newSecret()))
	}
	wa := e.addWebhook(t, alice, "http://127.0.0.1:1/alice", newSecret())
	wb := bobHooks[0]
	seedDeliveries(t, e.st, wa, 5, 5)
	seedDeliveries(t, e.st, wb, 5, 5)
	ctx := context.Background()
	_, hookCursor, err := e.reg.List(ctx, bob, "", 2)
	if err != nil || hookCursor == "" {
		t.Fatalf("bob's first page of webhooks: cursor %q, %v", hookCursor, err)
	}
	bobDels, delCursor, err := e.st.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: bob, WebhookID: wb.ID, Limit: 2})
	if err != nil || delCursor == "" {
		t.Fatalf("bob's first page of deliveries: cursor %q, %v", delCursor, err)
	}
	c := e.client(t, "alice-token")
	for _, path := range []string{
		"/dashboard/?cursor=" + url.QueryEscape(hookCursor),
		"/dashboard/webhooks/" + wa.ID + "?cursor=" + url.QueryEscape(delCursor),
	} {
		code, body := c.get(path)
		if code != http.StatusOK && code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 200 or 400", path, code)
		}
		for _, w := range bobHooks {
			if strings.Contains(body, w.ID) {
				t.Errorf("GET %s shows bob's webhook %s", path, w.ID)
			}
		}
		for _, d := range bobDels {
			if strings.Contains(body, d.ID) {
				t.Errorf("GET %s shows bob's delivery %s", path, d.ID)
			}
		}
		if strings.Contains(body, "/bob") {
			t.Errorf("GET %s shows bob's URL", path)
		}
	}
}

func TestCrossOriginActionsAreRefused(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	c := e.client(t, "alice-token")
	path := "/dashboard/webhooks/" + wh.ID + "/disable"
	attacks := []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": ""},
		{"Sec-Fetch-Site": "", "Origin": "https://evil.example"},
		// A page of another site whose referrer policy is no-referrer.
		{"Sec-Fetch-Site": "", "Origin": "null"},
	}
	for _, hdr := range attacks {
		code, _, body := c.do(http.MethodPost, path, hdr)
		if code != http.StatusForbidden || !strings.Contains(body, "Cross-origin request refused") {
			t.Errorf("POST with %v = %d, want 403", hdr, code)
		}
	}
	if got, _ := e.reg.Get(context.Background(), alice, wh.ID); !got.Active {
		t.Fatal("a cross-origin POST disabled the webhook")
	}
	// Actions are POST only: a GET link cannot trigger one.
	if code, _ := c.get(path); code == http.StatusSeeOther || code == http.StatusOK {
		t.Errorf("GET %s = %d, want a refusal", path, code)
	}
	if got, _ := e.reg.Get(context.Background(), alice, wh.ID); !got.Active {
		t.Fatal("a GET disabled the webhook")
	}
	// The dashboard's own form works.
	if code, loc := c.post(path); code != http.StatusSeeOther || loc != "/dashboard/webhooks/"+wh.ID+"?done=disabled" {
		t.Fatalf("same-origin POST = %d %q, want 303 to the webhook", code, loc)
	}
}

func TestEnableAndDisable(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, newSecret())
	wh := e.addWebhook(t, alice, rc.srv.URL+"/hook", newSecret())
	c := e.client(t, "alice-token")
	self := "/dashboard/webhooks/" + wh.ID

	if code, _ := c.post(self + "/disable"); code != http.StatusSeeOther {
		t.Fatalf("disable = %d", code)
	}
	if got, _ := e.reg.Get(context.Background(), alice, wh.ID); got.Active {
		t.Fatal("webhook still active after disable")
	}
	_, body := c.get(self + "?done=disabled")
	if !strings.Contains(body, `id="enable"`) || strings.Contains(body, `id="send-test"`) || !strings.Contains(body, "Webhook disabled") {
		t.Error("the disabled webhook's page does not offer Enable only, with the notice")
	}
	if code, _ := c.post(self + "/test"); code != http.StatusConflict {
		t.Errorf("test on a disabled webhook = %d, want 409", code)
	}
	if code, _ := c.post(self + "/enable"); code != http.StatusSeeOther {
		t.Fatalf("enable = %d", code)
	}
	if got, _ := e.reg.Get(context.Background(), alice, wh.ID); !got.Active {
		t.Fatal("webhook inactive after enable")
	}
	// The notice is one of the dashboard's own texts, never the query's.
	_, body = c.get(self + "?done=" + url.QueryEscape("<b>you have been hacked</b>"))
	if strings.Contains(body, "hacked") {
		t.Error("the page reflects ?done")
	}
}

func TestSendTestAndRetryAFailedDelivery(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := newSecret()
	rc := newReceiver(t, secret)
	wh := e.addWebhook(t, alice, rc.srv.URL+"/hook", secret)
	c := e.client(t, "alice-token")

	rc.setFailing(true)
	code, loc := c.post("/dashboard/webhooks/" + wh.ID + "/test")
	m := regexp.MustCompile(`^/dashboard/webhooks/` + wh.ID + `/deliveries/(del_[0-9a-f-]+)\?done=test$`).FindStringSubmatch(loc)
	if code != http.StatusSeeOther || m == nil {
		t.Fatalf("POST test = %d %q, want 303 to the delivery", code, loc)
	}
	delID := m[1]
	_, body := c.get(loc)
	for _, want := range []string{
		"Test event sent.", "webhook.test", `id="delivery-status">failed`, "Attempt 1", "500 Internal Server Error",
		"X-Webhook-Signature", "Webhook-Signature", "Retry delivery",
		// The receiver's markup is escaped, never run.
		"&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("failed delivery page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(html.UnescapeString(body), secret) {
		t.Error("failed delivery page has raw markup or the secret")
	}

	rc.setFailing(false)
	code, loc = c.post("/dashboard/webhooks/" + wh.ID + "/deliveries/" + delID + "/retry")
	if code != http.StatusSeeOther || loc != "/dashboard/webhooks/"+wh.ID+"/deliveries/"+delID+"?done=retried" {
		t.Fatalf("POST retry = %d %q", code, loc)
	}
	_, body = c.get(loc)
	for _, want := range []string{"Delivery attempted again.", `id="delivery-status">success`, "Attempt 2", "200 OK", "X-Receiver", `id="attempt-count">2`} {
		if !strings.Contains(body, want) {
			t.Errorf("retried delivery page lacks %q", want)
		}
	}
	if verified, refused := rc.counts(); verified != 2 || refused != 0 {
		t.Errorf("receiver verified %d and refused %d requests, want 2 and 0", verified, refused)
	}
	d, err := e.st.GetDelivery(context.Background(), delID)
	if err != nil || d.Status != store.StatusSuccess || d.Attempts != 2 {
		t.Fatalf("stored delivery %+v, %v; want success after 2 attempts", d, err)
	}
	// The webhook's list shows it, and the success filter finds it.
	_, body = c.get("/dashboard/webhooks/" + wh.ID + "?status=success")
	if !strings.Contains(body, `data-delivery="`+delID+`"`) {
		t.Error("the success filter does not list the retried delivery")
	}
	_, body = c.get("/dashboard/webhooks/" + wh.ID + "?status=failed")
	if strings.Contains(body, `data-delivery="`+delID+`"`) {
		t.Error("the failed filter lists a successful delivery")
	}
	// A pending delivery is not retried by hand.
	seedDeliveries(t, e.st, wh, 1, 0)
	pending, _, _ := e.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: alice, WebhookID: wh.ID, Status: store.StatusPending, Limit: 1})
	if code, _ := c.post("/dashboard/webhooks/" + wh.ID + "/deliveries/" + pending[0].ID + "/retry"); code != http.StatusConflict {
		t.Errorf("retry of a pending delivery = %d, want 409", code)
	}
}

// A retry whose delivery is failed with its webhook before its attempt
// (another delivery met 410 Gone meanwhile) is a conflict the user is told
// about, as in the management API, not a server fault.
func TestRetryWhenTheWebhookIsDisabledMeanwhile(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, envOptions{perWebhook: 1, logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var n atomic.Int32
	inFlight, gone := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(gone) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		close(inFlight)
		select {
		case <-gone:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusGone)
	}))
	defer srv.Close()
	defer release()
	wh := e.addWebhook(t, alice, srv.URL+"/hook", newSecret())
	ctx := context.Background()
	emit := func() string {
		res, err := e.disp.Emit(ctx, webhook.Event{Type: "workflow.completed", Tenant: alice})
		if err != nil || len(res.DeliveryIDs) != 1 {
			t.Fatalf("Emit = %+v, %v", res, err)
		}
		return res.DeliveryIDs[0]
	}
	del := emit()
	for {
		d, err := e.st.GetDelivery(ctx, del)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == store.StatusFailed {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Another delivery holds the webhook's only slot until it meets 410
	// Gone, once the retry has put the first back in the queue.
	emit()
	<-inFlight
	go func() {
		defer release()
		for {
			d, err := e.st.GetDelivery(ctx, del)
			if err != nil || d.Status == store.StatusPending {
				return
			}
			select {
			case <-t.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	code, _, body := e.client(t, "alice-token").do(http.MethodPost, "/dashboard/webhooks/"+wh.ID+"/deliveries/"+del+"/retry", nil)
	if code != http.StatusConflict || !strings.Contains(body, "disabled") {
		t.Errorf("retry of a delivery failed with its webhook = %d, want 409 saying the webhook was disabled:\n%s", code, body)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a conflict was logged as a server fault:\n%s", logs.String())
	}
	if n := n.Load(); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}

func TestActionsNeedARunningDispatcher(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	if code, _ := e.client(t, "alice-token").post("/dashboard/webhooks/" + wh.ID + "/test"); code != http.StatusServiceUnavailable {
		t.Fatalf("test with a stopped dispatcher = %d, want 503", code)
	}
}

func TestRotateSecretShowsTheNewSecretOnce(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	old := newSecret()
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", old)
	c := e.client(t, "alice-token")

	code, h, body := c.do(http.MethodPost, "/dashboard/webhooks/"+wh.ID+"/rotate-secret", nil)
	if code != http.StatusOK {
		t.Fatalf("rotate = %d", code)
	}
	stored, err := e.st.GetWebhook(context.Background(), wh.ID)
	if err != nil {
		t.Fatal(err)
	}
	fresh := stored.Secrets[0].Value
	if fresh == old || !strings.HasPrefix(fresh, webhook.SecretPrefix) {
		t.Fatalf("stored secret after rotation: %q", fresh)
	}
	if !strings.Contains(html.UnescapeString(body), `<pre class="secret" id="secret">`+fresh+`</pre>`) {
		t.Error("the rotation page does not show the new secret")
	}
	if strings.Contains(html.UnescapeString(body), old) {
		t.Error("the rotation page shows the previous secret")
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("the rotation page is cacheable: %q", h.Get("Cache-Control"))
	}
	if len(stored.Secrets) != 2 || stored.Secrets[1].Value != old || stored.Secrets[1].ExpiresAt.IsZero() {
		t.Errorf("the previous secret does not keep signing for a grace period: %+v", stored.Secrets[1:])
	}
	for _, path := range []string{"/dashboard/", "/dashboard/webhooks/" + wh.ID} {
		if _, body := c.get(path); strings.Contains(html.UnescapeString(body), fresh) || strings.Contains(html.UnescapeString(body), old) {
			t.Errorf("GET %s shows a secret", path)
		}
	}
}

// TestRotateSecretSentAgain: the rotation form sent again (the browser
// resubmits it when the secret's page is reloaded) is answered 409 and
// rotates nothing, so the secret just shown stays the one that signs. The
// form from a page loaded afresh rotates again.
func TestRotateSecretSentAgain(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	c := e.client(t, "alice-token")
	self := "/dashboard/webhooks/" + wh.ID
	versionRE := regexp.MustCompile(`name="version" value="([^"]+)"`)
	formOf := func() url.Values {
		t.Helper()
		_, page := c.get(self)
		m := versionRE.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("the webhook's page has no rotation form with a version")
		}
		return url.Values{"version": {html.UnescapeString(m[1])}}
	}
	form := formOf()
	if code, _ := c.postForm(self+"/rotate-secret", form); code != http.StatusOK {
		t.Fatalf("rotate = %d", code)
	}
	shown, err := e.st.GetWebhook(context.Background(), wh.ID)
	if err != nil {
		t.Fatal(err)
	}
	code, body := c.postForm(self+"/rotate-secret", form)
	if code != http.StatusConflict || !strings.Contains(body, "was not rotated") {
		t.Errorf("the form sent again = %d, %q; want 409 saying the secret was not rotated", code, body)
	}
	after, err := e.st.GetWebhook(context.Background(), wh.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Secrets[0].Value != shown.Secrets[0].Value || len(after.Secrets) != len(shown.Secrets) {
		t.Error("the form sent again rotated the secret")
	}
	for _, s := range after.Secrets {
		if strings.Contains(body, s.Value) {
			t.Error("the refusal shows a secret")
		}
	}
	if code, _ := c.postForm(self+"/rotate-secret", formOf()); code != http.StatusOK {
		t.Errorf("rotate from the page loaded again = %d, want 200", code)
	}
}

// A rotation beyond the Registry's limit of previous secrets in their
// grace period is a 409 page that says when the first of them expires,
// not a server error, and shows no secret.
func TestRotateSecretAtTheLimit(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	c := e.client(t, "alice-token")
	path := "/dashboard/webhooks/" + wh.ID + "/rotate-secret"
	for range webhook.DefaultMaxPreviousSecrets {
		if code, _, _ := c.do(http.MethodPost, path, nil); code != http.StatusOK {
			t.Fatalf("rotate = %d", code)
		}
	}
	before, err := e.st.GetWebhook(context.Background(), wh.ID)
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := c.do(http.MethodPost, path, nil)
	if code != http.StatusConflict {
		t.Fatalf("rotation at the limit = %d, want 409", code)
	}
	first := before.Secrets[len(before.Secrets)-1].ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC")
	if text := html.UnescapeString(body); !strings.Contains(text, "Too many previous secrets") || !strings.Contains(text, first) {
		t.Errorf("the refusal does not say why, or when the first previous secret (%s) expires", first)
	}
	for _, s := range before.Secrets {
		if strings.Contains(html.UnescapeString(body), s.Value) {
			t.Error("the refusal shows a secret")
		}
	}
}

func TestBadQueriesAreClientErrors(t *testing.T) {
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	c := e.client(t, "alice-token")
	tests := []struct {
		path string
		want int
	}{
		{"/dashboard/webhooks/" + wh.ID + "?status=bogus", http.StatusBadRequest},
		{"/dashboard/webhooks/" + wh.ID + "?cursor=not-a-cursor", http.StatusBadRequest},
		{"/dashboard/webhooks/" + wh.ID + "?cursor=" + strings.Repeat("x", 2000), http.StatusBadRequest},
		{"/dashboard/?cursor=%00%ff", http.StatusBadRequest},
		{"/dashboard/webhooks/not-an-id", http.StatusNotFound},
		{"/dashboard/webhooks/" + wh.ID + "/deliveries/del_missing", http.StatusNotFound},
		{"/dashboard/webhooks/" + wh.ID + "/deliveries/%3Cscript%3E", http.StatusNotFound},
		{"/dashboard/elsewhere", http.StatusNotFound},
	}
	for _, tt := range tests {
		if code, body := c.get(tt.path); code != tt.want || !strings.Contains(body, "<h1>") {
			t.Errorf("GET %s = %d, want %d with an error page", tt.path, code, tt.want)
		}
	}
}

// The delivery page hides credential-like header values, as the management
// API does: the receiver's cookies and tokens, and the request's when a
// store holds them unredacted.
func TestDeliveryPageRedactsCredentialHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=SUPERSECRETCOOKIE")
		w.Header().Add("Authorization", "Bearer RESPONSETOKEN")
		w.Header().Add("Authorization", "Bearer SECONDTOKEN")
		w.Header().Set("X-Request-Id", "rq-1")
	}))
	t.Cleanup(rc.Close)
	wh := e.addWebhook(t, alice, rc.URL+"/hook", newSecret())
	c := e.client(t, "alice-token")
	code, loc := c.post("/dashboard/webhooks/" + wh.ID + "/test")
	if code != http.StatusSeeOther {
		t.Fatalf("POST test = %d %q, want 303 to the delivery", code, loc)
	}
	_, body := c.get(loc)

	// Another writer (an older version, another store) kept the request's
	// credentials in full: the page still hides them.
	seedDeliveries(t, e.st, wh, 1, 0)
	ctx := context.Background()
	claimed, err := e.st.Claim(ctx, store.ClaimParams{Now: time.Now().Add(2 * time.Hour), Limit: 1, Lease: time.Hour, Owner: "seed"})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("Claim: %v (%d claimed)", err, len(claimed))
	}
	d := claimed[0]
	err = e.st.Complete(ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "seed", Status: store.StatusSuccess, Now: time.Now(),
		Attempt: &store.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: time.Now(), RequestURL: wh.URL, ResponseStatus: 200,
			RequestHeaders: http.Header{"Authorization": {"Bearer REQUESTTOKEN"}, "X-Api-Key": {"REQUESTKEY"}, "X-Team": {"core"}}},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	_, seeded := c.get("/dashboard/webhooks/" + wh.ID + "/deliveries/" + d.ID)

	for name, page := range map[string]string{"response headers": body, "request headers": seeded} {
		shown := html.UnescapeString(page)
		for _, secret := range []string{"SUPERSECRETCOOKIE", "RESPONSETOKEN", "SECONDTOKEN", "REQUESTTOKEN", "REQUESTKEY"} {
			if strings.Contains(shown, secret) {
				t.Errorf("%s: the page shows %s", name, secret)
			}
		}
		if !strings.Contains(shown, "[redacted]") {
			t.Errorf("%s: the page lacks the [redacted] placeholder", name)
		}
	}
	for _, want := range []string{"<th>Set-Cookie</th><td>[redacted]</td>", "<th>Authorization</th><td>[redacted]</td>", "<th>X-Request-Id</th><td>rq-1</td>"} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Errorf("response headers: the page lacks %q", want)
		}
	}
	for _, want := range []string{"<th>Authorization</th><td>[redacted]</td>", "<th>X-Api-Key</th><td>[redacted]</td>", "<th>X-Team</th><td>core</td>"} {
		if !strings.Contains(html.UnescapeString(seeded), want) {
			t.Errorf("request headers: the page lacks %q", want)
		}
	}
}

// A password in a webhook's URL is a credential like the Authorization
// header the dispatcher makes of it: no page shows it, even when a store
// written by another writer (an older version, a migration) holds such a
// URL and attempts logged with it.
func TestPagesHideURLCredentials(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, "")
	wh := e.addWebhook(t, alice, rc.srv.URL+"/hook", newSecret())
	ctx := context.Background()
	const password = "URLPASSWORD"
	withUser := strings.Replace(rc.srv.URL, "http://", "http://ops:"+password+"@", 1) + "/hook"
	if _, err := e.st.UpdateWebhook(ctx, wh.ID, func(w *store.Webhook) error {
		w.URL = withUser
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, "alice-token")
	code, sent := c.post("/dashboard/webhooks/" + wh.ID + "/test")
	if code != http.StatusSeeOther {
		t.Fatalf("POST test = %d %q, want 303 to the delivery", code, sent)
	}
	seedDeliveries(t, e.st, wh, 1, 0)
	claimed, err := e.st.Claim(ctx, store.ClaimParams{Now: time.Now().Add(2 * time.Hour), Limit: 1, Lease: time.Hour, Owner: "seed"})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("Claim: %v (%d claimed)", err, len(claimed))
	}
	logged := claimed[0]
	err = e.st.Complete(ctx, store.CompleteParams{
		DeliveryID: logged.ID, Owner: "seed", Status: store.StatusSuccess, Now: time.Now(),
		Attempt: &store.Attempt{DeliveryID: logged.ID, Number: 1, StartedAt: time.Now(), RequestURL: withUser, ResponseStatus: 200},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	self := "/dashboard/webhooks/" + wh.ID
	pages := map[string]string{}
	for _, path := range []string{"/dashboard/", self, sent, self + "/deliveries/" + logged.ID} {
		_, pages["GET "+path] = c.get(path)
	}
	_, _, pages["POST rotate-secret"] = c.do(http.MethodPost, self+"/rotate-secret", nil)
	for name, body := range pages {
		shown := html.UnescapeString(body)
		if strings.Contains(shown, password) {
			t.Errorf("%s shows the URL's password", name)
		}
		if !strings.Contains(shown, strings.TrimPrefix(rc.srv.URL, "http://")+"/hook") {
			t.Errorf("%s does not show the webhook's URL", name)
		}
	}
}

// bareDashboard is the dashboard over st with the config edit made, and
// its Registry; its Dispatcher is not started. A page is read with get.
func bareDashboard(tb testing.TB, st store.Store, edit func(*dashboard.Config)) (http.Handler, *webhook.Registry) {
	tb.Helper()
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{})
	disp, err := webhook.New(st, &webhook.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := dashboard.Config{Registry: reg, Dispatcher: disp, Store: st, Tenant: bearerTenant}
	if edit != nil {
		edit(&cfg)
	}
	h, err := dashboard.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return h, reg
}

// get serves GET path as alice, with ctx.
func get(ctx context.Context, h http.Handler, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(ctx, "GET", path, nil)
	r.Header.Set("Authorization", "Bearer alice-token")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// TestClientGoneIsNoServerFault: a request whose client went away is not
// logged as a server fault (Config.Logger receives only those), while a
// real fault still is.
func TestClientGoneIsNoServerFault(t *testing.T) {
	st := memstore.New()
	var logs bytes.Buffer
	h, _ := bareDashboard(t, st, func(c *dashboard.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	get(gone, h, "/")
	if logs.Len() != 0 {
		t.Errorf("a request its client left was logged:\n%s", logs.String())
	}

	st.Close() // a real fault: the store is gone
	if rec := get(context.Background(), h, "/"); rec.Code != http.StatusInternalServerError {
		t.Errorf("page over a closed store = %d, want 500", rec.Code)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a server fault was not logged: %q", logs.String())
	}
}

// panickyStore is a store of the host's with a bug: its webhook listings
// panic.
type panickyStore struct{ store.Store }

func (panickyStore) ListWebhooks(context.Context, store.ListWebhooksParams) ([]*store.Webhook, string, error) {
	panic("the host's store has a bug")
}

// TestPanicIsAnErrorPage: a panic while a page is served (here in the
// host's store) is answered with the error page and logged with its stack,
// instead of reaching net/http, which drops the connection.
func TestPanicIsAnErrorPage(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	var logs bytes.Buffer
	h, _ := bareDashboard(t, panickyStore{st}, func(c *dashboard.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	rec := func() *httptest.ResponseRecorder {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("the panic left the dashboard: %v", p)
			}
		}()
		return get(context.Background(), h, "/")
	}()
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "Server error") {
		t.Errorf("a page that panicked = %d, %q; want 500 with the error page", rec.Code, rec.Body.String())
	}
	if l := logs.String(); !strings.Contains(l, "dashboard: panic") || !strings.Contains(l, "the host's store has a bug") ||
		!strings.Contains(l, "panickyStore.ListWebhooks") {
		t.Errorf("the panic was logged as %q; want the message, the panic and its stack", l)
	}
}

// stalledStore is a store whose delivery listings wait for their
// context to end.
type stalledStore struct{ store.Store }

func (s stalledStore) ListDeliveries(ctx context.Context, _ store.ListDeliveriesParams) ([]*store.Delivery, string, error) {
	<-ctx.Done()
	return nil, "", ctx.Err()
}

// TestRequestDeadlineIsAnErrorPage: when the host's deadline for a request
// ends before its page is ready, the browser, still there, gets an error
// page, not an empty 200.
func TestRequestDeadlineIsAnErrorPage(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	h, reg := bareDashboard(t, stalledStore{st}, nil)
	wh, err := reg.Create(context.Background(), alice, webhook.WebhookInput{URL: "https://example.com/hook", Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	// The host's middleware gives each request 20 ms.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	rec := get(ctx, h, "/webhooks/"+wh.ID)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "<h1>") {
		t.Errorf("page past the request's deadline = %d with %d bytes, want 503 with an error page", rec.Code, rec.Body.Len())
	}
}

// TestChartSaysWhenCapped: the chart notes that it counts only the newest
// ChartSample deliveries when there are more, and only then.
func TestChartSaysWhenCapped(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	h, reg := bareDashboard(t, st, func(c *dashboard.Config) { c.ChartSample = 3 })
	wh, err := reg.Create(context.Background(), alice, webhook.WebhookInput{URL: "https://example.com/hook", Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	page := func() string {
		rec := get(context.Background(), h, "/webhooks/"+wh.ID)
		if rec.Code != http.StatusOK {
			t.Fatalf("webhook page: %d", rec.Code)
		}
		return rec.Body.String()
	}
	for n := 1; n <= 4; n++ {
		if _, err := st.Enqueue(context.Background(), []*store.Delivery{storetest.NewDelivery(wh, "user.login")}); err != nil {
			t.Fatal(err)
		}
		if capped := strings.Contains(page(), "newest 3 deliveries"); capped != (n > 3) {
			t.Errorf("with %d deliveries and a sample of 3, the chart says it is capped: %v", n, capped)
		}
	}
}

// BenchmarkWebhookPageLargeBodies renders a webhook's page over 500
// deliveries of 256 KiB payloads: the page shows none of the bodies, and
// B/op says whether it reads them anyway.
func BenchmarkWebhookPageLargeBodies(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	h, reg := bareDashboard(b, st, nil)
	wh, err := reg.Create(context.Background(), alice, webhook.WebhookInput{URL: "https://example.com/hook", Events: []string{"*"}})
	if err != nil {
		b.Fatal(err)
	}
	big := `{"data":"` + strings.Repeat("x", 256<<10) + `"}`
	for range dashboard.DefaultChartSample {
		d := storetest.NewDelivery(wh, "user.login")
		d.Body = []byte(big)
		if _, err := st.Enqueue(context.Background(), []*store.Delivery{d}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if rec := get(context.Background(), h, "/webhooks/"+wh.ID); rec.Code != http.StatusOK {
			b.Fatalf("webhook page: %d", rec.Code)
		}
	}
}
