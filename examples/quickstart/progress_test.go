package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store/memstore"
)

// An attempt cut short by Stop is due again at once without spending the
// retry budget: the progress line counts it as the library's Stats do,
// not as a retry.
func TestProgressCountsRetriesAsStats(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select { // hang until the attempt is cancelled
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr(u.Hostname())
	port, _ := strconv.Atoi(u.Port())

	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{AllowHTTP: true})
	if _, err := reg.Create(ctx, tenant, webhook.WebhookInput{URL: srv.URL, Events: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	progress := &progressHooks{changed: make(chan struct{}, 1)}
	d, err := webhook.New(st, &webhook.Config{
		AllowedRanges: []netip.Prefix{netip.PrefixFrom(addr, addr.BitLen())},
		AllowedPorts:  []int{port},
		Hooks:         progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Emit(ctx, webhook.Event{Type: webhook.EventSystemAlert, Tenant: tenant, Data: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the attempt never reached the endpoint")
	}
	// Stop gives up at once: the attempt in flight is cancelled.
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_ = d.Stop(stopCtx)

	s := d.Stats()
	if s.Attempts != 1 {
		t.Fatalf("Stats.Attempts = %d, want the one cancelled attempt", s.Attempts)
	}
	if got := progress.retries.Load(); got != s.Retried {
		t.Errorf("progress counts %d retried, Stats.Retried %d", got, s.Retried)
	}
	if got := progress.succeeded.Load() + progress.failed.Load(); got != 0 {
		t.Errorf("progress counts %d finished deliveries, want 0", got)
	}
}
