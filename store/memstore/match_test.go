package memstore

import (
	"fmt"
	"testing"

	"github.com/noa-server/webhook/store/storetest"
)

// TestMatchCachesOnlyTenantsWithWebhooks: MatchWebhooks keeps the copies it
// reads without the lock for tenants that have webhooks, and for no other:
// a host emits for every tenant, most of which may have none.
func TestMatchCachesOnlyTenantsWithWebhooks(t *testing.T) {
	ctx := t.Context()
	s := New()
	defer s.Close()
	cached := func() int {
		n := 0
		for range s.active.Range {
			n++
		}
		return n
	}
	for i := range 100 {
		if ws, err := s.MatchWebhooks(ctx, fmt.Sprintf("tenant-%d", i), "user.login"); err != nil || len(ws) != 0 {
			t.Fatalf("MatchWebhooks of a tenant without webhooks = %v, %v", ws, err)
		}
	}
	if n := cached(); n != 0 {
		t.Fatalf("%d tenants without webhooks cached, want none", n)
	}
	w := storetest.NewWebhook("acme")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ws, err := s.MatchWebhooks(ctx, "acme", w.Events[0]); err != nil || len(ws) != 1 {
			t.Fatalf("MatchWebhooks = %v, %v; want its webhook", ws, err)
		}
	}
	if n := cached(); n != 1 {
		t.Fatalf("%d tenants cached, want 1", n)
	}
	if err := s.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if ws, err := s.MatchWebhooks(ctx, "acme", w.Events[0]); err != nil || len(ws) != 0 {
		t.Fatalf("MatchWebhooks after the delete = %v, %v; want none", ws, err)
	}
	if n := cached(); n != 0 {
		t.Fatalf("%d tenants cached after their last webhook went, want none", n)
	}
}
