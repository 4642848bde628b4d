package dashboard_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/memstore"
)

// BenchmarkPages100k times each page of a webhook with 100k deliveries
// (10k finished), over memstore and over a bbolt file.
func BenchmarkPages100k(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memstore", func(*testing.B) store.Store { return memstore.New() }},
		{"boltstore", func(b *testing.B) store.Store {
			st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), &boltstore.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			e := newEnv(b, envOptions{noStart: true, store: s.open(b)})
			wh := e.addWebhook(b, alice, "http://127.0.0.1:1/hook", newSecret())
			seedDeliveries(b, e.st, wh, 100_000, 10_000)
			failed, _, err := e.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{
				Tenant: alice, WebhookID: wh.ID, Status: store.StatusFailed, Limit: 1})
			if err != nil {
				b.Fatal(err)
			}
			c := e.client(b, "alice-token")
			self := "/dashboard/webhooks/" + wh.ID
			for _, p := range []struct{ name, path string }{
				{"webhooks", "/dashboard/"},
				{"webhook", self},
				{"webhook-failed", self + "?status=failed"},
				{"delivery", self + "/deliveries/" + failed[0].ID},
			} {
				b.Run(p.name, func(b *testing.B) {
					for b.Loop() {
						if code, _ := c.get(p.path); code != http.StatusOK {
							b.Fatalf("GET %s = %d", p.path, code)
						}
					}
				})
			}
		})
	}
}
