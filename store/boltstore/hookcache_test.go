package boltstore

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// TestHookCacheStaleFill plays a MatchWebhooks whose read began before an
// UpdateWebhook committed and that fills the cache after it: what it read
// must not be kept.
func TestHookCacheStaleFill(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "hooks.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := storetest.NewWebhook("tenant-stale")
	w.Events = []string{"workflow.completed"}
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}

	_, gen, ok := s.hooks.get(w.Tenant)
	if ok {
		t.Fatal("the cache holds a tenant nobody matched")
	}
	stale := []*store.Webhook{w.Clone()} // what the slow match read
	w.Events = []string{"agent.error"}
	if _, err := s.UpdateWebhook(ctx, w.ID, func(c *store.Webhook) error { c.Events = w.Events; return nil }); err != nil {
		t.Fatal(err)
	}
	s.hooks.fill(w.Tenant, gen, stale)

	for ev, want := range map[string]int{"workflow.completed": 0, "agent.error": 1} {
		got, err := s.MatchWebhooks(ctx, w.Tenant, ev)
		if err != nil || len(got) != want {
			t.Errorf("MatchWebhooks(%s) = %d webhooks, %v; want %d", ev, len(got), err, want)
		}
	}
}

// TestHookCacheBound matches more tenants than the cache holds: it starts
// over rather than grow.
func TestHookCacheBound(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "hooks.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range maxCachedTenants + 10 {
		if _, err := s.MatchWebhooks(ctx, fmt.Sprintf("tenant-%d", i), "workflow.completed"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.hooks.tenants); n == 0 || n > maxCachedTenants {
		t.Errorf("the cache holds %d tenants; want 1 to %d", n, maxCachedTenants)
	}
}
