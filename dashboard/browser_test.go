package dashboard_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// browserRanMarker is logged (with -v) when the browser test really drove
// Chromium, so CI can tell it from a skip.
const browserRanMarker = "DASHBOARD BROWSER TEST RAN"

// artifactsDir is where screenshots go: $WEBHOOK_ARTIFACTS_DIR, else a
// temporary directory of the test.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WEBHOOK_ARTIFACTS_DIR")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// tab's context. It skips the test when Chromium is not installed, unless
// WEBHOOK_REQUIRE_BROWSER is set (as CI sets it), which makes that a
// failure.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("WEBHOOK_REQUIRE_BROWSER") != "" {
			t.Fatalf("WEBHOOK_REQUIRE_BROWSER is set but %s is missing: apt-get install chromium", chromiumPath)
		}
		t.Skipf("DASHBOARD BROWSER TEST SKIPPED: %s not found (apt-get install chromium)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Resolve no host name but plainHTTPHost, to 127.0.0.1: the test
		// talks to 127.0.0.1 only, and the browser must not reach
		// anywhere else.
		chromedp.Flag("host-resolver-rules", "MAP "+plainHTTPHost+" 127.0.0.1 , MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, on a context without deadline (its life is
	// the context of the first Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// consoleErrors collects what the page logs as errors: a refused script or
// style (Content-Security-Policy), a missing asset.
type consoleErrors struct {
	mu   sync.Mutex
	msgs []string
}

func (c *consoleErrors) watch(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, log.Enable, struct{}{}); err != nil {
		t.Fatalf("Log.enable: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*log.EventEntryAdded); ok && e.Entry != nil && e.Entry.Level == log.EntryLevelError {
			c.mu.Lock()
			c.msgs = append(c.msgs, e.Entry.Text+" "+e.Entry.URL)
			c.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
}

func (c *consoleErrors) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.msgs
	c.msgs = nil
	return m
}

// site is a running host with the dashboard, as the browser test sees it.
type site struct {
	// dashboard is the URL of the dashboard's root, ending in "/".
	dashboard string
	// token is alice's bearer token; the browser sends it with every
	// request.
	token string
	// webhookID and webhookURL name alice's webhook, delivered to rc.
	webhookID, webhookURL string
	rc                    *receiver
	// foreign is a part of another tenant's webhook URL, never shown.
	foreign string
}

// driveDashboard drives the browser through the dashboard the way an owner
// would: open the webhooks page, send a test event, see the delivery with
// its attempt, retry it once failed, look at the webhook's page and filter
// it, rotate the secret, disable and enable the webhook. It saves a
// screenshot of each step in dir and returns the id of the test delivery.
// It asserts only what the browser and the receiver see, so it runs the
// same against any host.
func driveDashboard(t *testing.T, ctx context.Context, s site, dir string) string {
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("Network.enable: %v", err)
	}
	// The host's tenant function reads a bearer token; the browser sends
	// alice's with every request, forms included.
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + s.token},
	}); err != nil {
		t.Fatalf("Network.setExtraHTTPHeaders: %v", err)
	}
	var console consoleErrors
	console.watch(t, ctx)

	// step runs browser actions with a deadline, failing the test with
	// the page's text when they do not complete.
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage text:\n%s", name, err, body)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	shot := func(name string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
	t.Cleanup(func() {
		if t.Failed() {
			shot("99-failure.png")
		}
	})
	webhookPage := s.dashboard + "webhooks/" + s.webhookID

	// 1. The webhooks page lists alice's webhook and only hers.
	step("open the webhooks page", chromedp.Navigate(s.dashboard), chromedp.WaitVisible(chromedp.CSS("#webhooks")))
	list := text("#webhooks")
	if !strings.Contains(list, s.webhookURL) || strings.Contains(list, s.foreign) {
		t.Fatalf("webhooks page shows:\n%s", list)
	}
	// The embedded style sheet applied (the CSP let it load).
	font, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.documentElement).fontFamily`))
	if err != nil || !strings.Contains(font, "system-ui") {
		t.Errorf("style sheet not applied: font-family %q, %v", font, err)
	}
	shot("01-webhooks.png")

	// 2. Send a test event while the receiver fails: the delivery appears
	// with its failed attempt.
	s.rc.setFailing(true)
	step("open the webhook", chromedp.Click(chromedp.CSS(`tr[data-webhook="`+s.webhookID+`"] a.url`)), chromedp.WaitVisible(chromedp.CSS("#send-test")))
	step("send a test event", chromedp.Click(chromedp.CSS("#send-test")), chromedp.WaitVisible(chromedp.CSS(`[data-attempt="1"]`)))
	if got := text(".notice"); got != "Test event sent." {
		t.Errorf("notice %q", got)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	loc, _, _ = strings.Cut(loc, "?")
	delID := loc[strings.LastIndex(loc, "/")+1:]
	// A host with retries left keeps it pending; reload until the retry
	// budget is spent and the delivery is failed.
	deadline := time.Now().Add(30 * time.Second)
	for text("#delivery-status") != "failed" {
		if time.Now().After(deadline) {
			t.Fatalf("the test delivery is %q after 30s, want failed", text("#delivery-status"))
		}
		step("reload the delivery", chromedp.Sleep(200*time.Millisecond), chromedp.Navigate(loc), chromedp.WaitVisible(chromedp.CSS("#delivery-status")))
	}
	failedAttempts := text("#attempt-count")
	n, err := strconv.Atoi(failedAttempts)
	if err != nil {
		t.Fatalf("attempt count %q", failedAttempts)
	}
	// The newest attempt is open, with its request and response.
	attempt := text(`[data-attempt="` + failedAttempts + `"]`)
	for _, want := range []string{"500 Internal Server Error", "X-Webhook-Signature", "Webhook-Signature", "<script>alert('xss')</script> overloaded"} {
		if !strings.Contains(attempt, want) {
			t.Errorf("attempt %s lacks %q:\n%s", failedAttempts, want, attempt)
		}
	}
	shot("02-failed-delivery.png")

	// 3. Retry it once the receiver is fixed: one more attempt, a success.
	s.rc.setFailing(false)
	step("retry the failed delivery", chromedp.Click(chromedp.CSS("#retry")),
		chromedp.WaitVisible(chromedp.CSS(`[data-attempt="`+strconv.Itoa(n+1)+`"]`)))
	if got := text(".notice"); got != "Delivery attempted again." {
		t.Errorf("notice %q", got)
	}
	if got := text("#delivery-status"); got != "success" {
		t.Fatalf("retried delivery status %q, want success", got)
	}
	if got := text(`[data-attempt="` + strconv.Itoa(n+1) + `"]`); !strings.Contains(got, "200 OK") || !strings.Contains(got, "X-Receiver") {
		t.Errorf("attempt %d header %q, want 200 OK", n+1, got)
	}
	shot("03-retried-delivery.png")

	// 4. The webhook's page lists it, with the chart and the filters.
	step("back to the webhook", chromedp.Click(chromedp.CSS(`.crumbs a[href$="`+s.webhookID+`"]`)), chromedp.WaitVisible(chromedp.CSS("#deliveries")))
	if got := text(`#deliveries tr[data-delivery="` + delID + `"]`); !strings.Contains(got, "success") || !strings.Contains(got, "webhook.test") {
		t.Errorf("deliveries row %q", got)
	}
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".chart rect.success, .chart rect.failed").length`))
	if err != nil || bars == 0 {
		t.Errorf("the chart draws %d bars (%v)", bars, err)
	}
	shot("04-webhook.png")
	step("filter successful deliveries", chromedp.Click(chromedp.CSS(`.filters a[href$="status=success"]`)), chromedp.WaitVisible(chromedp.CSS(`.filters a.current[href$="status=success"]`)))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#deliveries tr[data-status]")].map(r => r.dataset.status)`))
	if err != nil || len(rows) == 0 {
		t.Fatalf("success filter rows: %v, %v", rows, err)
	}
	for _, st := range rows {
		if st != "success" {
			t.Errorf("the success filter lists a %s delivery", st)
		}
	}

	// 5. Rotate the secret: the new one is shown once, and deliveries
	// still verify with the old one during the grace period.
	step("rotate the secret",
		chromedp.Navigate(webhookPage),
		chromedp.Click(chromedp.CSS("details.confirm summary")),
		chromedp.Click(chromedp.CSS("#rotate")),
		chromedp.WaitVisible(chromedp.CSS("#secret")))
	secret := text("#secret")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("the rotation page shows %q, not a secret", secret)
	}
	shot("05-new-secret.png")
	step("send a test after rotating",
		chromedp.Navigate(webhookPage),
		chromedp.Click(chromedp.CSS("#send-test")),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if got := text("#delivery-status"); got != "success" {
		t.Errorf("test after rotation: %s", got)
	}
	for _, page := range []string{s.dashboard, webhookPage} {
		step("open "+page, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("main")))
		if html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); err != nil || strings.Contains(html, secret) {
			t.Errorf("%s shows the secret after the rotation (%v)", page, err)
		}
	}

	// 6. Disable then enable the webhook.
	step("disable", chromedp.Navigate(webhookPage), chromedp.Click(chromedp.CSS("#disable")), chromedp.WaitVisible(chromedp.CSS("#enable")))
	if !strings.Contains(text(".head"), "disabled") {
		t.Error("the page does not show the webhook disabled")
	}
	step("enable", chromedp.Click(chromedp.CSS("#enable")), chromedp.WaitVisible(chromedp.CSS("#disable")))

	if verified, refused := s.rc.counts(); verified < n+2 || refused != 0 {
		t.Errorf("receiver verified %d and refused %d signed requests, want at least %d and 0", verified, refused, n+2)
	}
	if msgs := console.take(); len(msgs) > 0 {
		t.Errorf("the browser logged errors (CSP violations, missing assets):\n%s", strings.Join(msgs, "\n"))
	}
	return delID
}

// TestBrowserInProcess drives the dashboard mounted in a test server over
// memstore, a running dispatcher and a receiver that verifies signatures.
func TestBrowserInProcess(t *testing.T) {
	ctx := newBrowser(t)
	dir := artifactsDir(t)

	e := newEnv(t, envOptions{})
	secret := newSecret()
	rc := newReceiver(t, secret)
	wh := e.addWebhook(t, alice, rc.srv.URL+"/webhooks/noa-server", secret)
	e.addWebhook(t, bob, rc.srv.URL+"/bob-endpoint", newSecret())
	// A day of history for the chart.
	seedHistory(t, e.st, wh, 120, 118, 12*time.Minute)

	delID := driveDashboard(t, ctx, site{
		dashboard: e.srv.URL + "/dashboard/", token: "alice-token",
		webhookID: wh.ID, webhookURL: wh.URL, rc: rc, foreign: "/bob-endpoint",
	}, dir)

	// What the pages showed is what the store holds.
	d, err := e.st.GetDelivery(context.Background(), delID)
	if err != nil || d.Status != store.StatusSuccess || d.Attempts != 2 || d.EventType != "webhook.test" || d.Tenant != alice {
		t.Fatalf("stored delivery %s: %+v, %v; want alice's webhook.test, success after 2 attempts", delID, d, err)
	}
	got, err := e.st.GetWebhook(context.Background(), wh.ID)
	if err != nil || !got.Active || len(got.Secrets) != 2 || got.Secrets[1].Value != secret {
		t.Fatalf("webhook after the scenario: %+v, %v; want active with a rotated secret", got, err)
	}
	if !t.Failed() {
		t.Log(browserRanMarker + " (in process): screenshots in " + dir)
	}
}

// plainHTTPHost is a host name the test browser resolves to 127.0.0.1.
// Unlike 127.0.0.1 itself, an http:// origin with a host name is not
// potentially trustworthy, so the browser sends no Sec-Fetch-Site header:
// what an intranet host serving the dashboard over plain http gets.
const plainHTTPHost = "dashboard.test"

// TestBrowserActionsOnAPlainHTTPHost: the dashboard's own forms work where
// the browser sends no Sec-Fetch-Site and CrossOriginProtection judges by
// the Origin header alone, which the page's referrer policy must leave
// the browser free to send.
func TestBrowserActionsOnAPlainHTTPHost(t *testing.T) {
	ctx := newBrowser(t)
	e := newEnv(t, envOptions{noStart: true})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("Network.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer alice-token"},
	}); err != nil {
		t.Fatalf("Network.setExtraHTTPHeaders: %v", err)
	}
	page := strings.Replace(e.srv.URL, "127.0.0.1", plainHTTPHost, 1) + "/dashboard/webhooks/" + wh.ID
	for _, s := range []struct{ button, notice string }{
		{"#disable", "Webhook disabled"},
		{"#enable", "Webhook enabled"},
	} {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(sctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(s.button)),
			// The answer is the webhook's page with a notice, or an error
			// page: the page clicked on has neither.
			chromedp.Click(chromedp.CSS(s.button)), chromedp.WaitVisible(chromedp.CSS("p.notice, p.lead")))
		cancel()
		if err != nil {
			t.Fatalf("click %s: %v", s.button, err)
		}
		main, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(main, s.notice) {
			t.Fatalf("after %s on %s the page says:\n%s", s.button, page, main)
		}
	}
	if got, err := e.reg.Get(context.Background(), alice, wh.ID); err != nil || !got.Active {
		t.Fatalf("webhook after disable and enable: %+v, %v", got, err)
	}
	if !t.Failed() {
		t.Log(browserRanMarker + " (plain http host)")
	}
}

// TestBrowserLongTextStaysOnThePage: a description of one long word (a
// pasted URL) and an error that quotes an endpoint's garbled answer whole
// wrap inside their column: the pages never grow wider than the window,
// which would push the state and the actions out of sight.
func TestBrowserLongTextStaysOnThePage(t *testing.T) {
	ctx := newBrowser(t)
	e := newEnv(t, envOptions{noStart: true})
	word := "https://wiki.example/" + strings.Repeat("x", 300)
	wh, err := e.reg.Create(context.Background(), alice, webhook.WebhookInput{
		URL: "http://127.0.0.1:1/hook", Events: []string{"*"}, Description: word,
	})
	if err != nil {
		t.Fatal(err)
	}
	seedDeliveries(t, e.st, wh, 1, 0)
	bg := context.Background()
	claimed, err := e.st.Claim(bg, store.ClaimParams{Now: time.Now().Add(2 * time.Hour), Limit: 1, Lease: time.Hour, Owner: "seed"})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("Claim: %v (%d claimed)", err, len(claimed))
	}
	err = e.st.Complete(bg, store.CompleteParams{
		DeliveryID: claimed[0].ID, Owner: "seed", Status: store.StatusFailed, Now: time.Now(),
		Attempt: &store.Attempt{DeliveryID: claimed[0].ID, Number: 1, StartedAt: time.Now(), RequestURL: wh.URL,
			ErrorClass: store.ErrorNetwork, Error: `malformed HTTP response "` + strings.Repeat("A", 300) + `"`},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("Network.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer alice-token"},
	}); err != nil {
		t.Fatalf("Network.setExtraHTTPHeaders: %v", err)
	}
	for _, path := range []string{"/dashboard/", "/dashboard/webhooks/" + wh.ID} {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(sctx, chromedp.Navigate(e.srv.URL+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
		cancel()
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if err != nil {
			t.Fatal(err)
		}
		if widths[0] > widths[1] {
			t.Errorf("%s is %d px wide in a window of %d", path, widths[0], widths[1])
		}
	}
	if !t.Failed() {
		t.Log(browserRanMarker + " (long text)")
	}
}
