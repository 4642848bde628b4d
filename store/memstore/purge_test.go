package memstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// finished stores n finished deliveries, last updated at, 100 for each of
// n/100 tenants.
func finished(t *testing.T, s *Store, n int, at time.Time) {
	t.Helper()
	var w *store.Webhook
	for i := range n {
		if i%100 == 0 {
			w = &store.Webhook{ID: fmt.Sprintf("wh_%08d", i), Tenant: fmt.Sprintf("t%08d", i), URL: "https://example.com", Events: []string{"*"}, Active: true}
			if err := s.CreateWebhook(context.Background(), w); err != nil {
				t.Fatal(err)
			}
		}
		r := &delRec{qi: -1, li: -1, d: store.Delivery{
			ID: fmt.Sprintf("del_%08d", i), WebhookID: w.ID, EventID: fmt.Sprintf("evt_%08d", i), EventType: "user.login",
			Tenant: w.Tenant, Body: []byte("{}"), Status: store.StatusSuccess, Attempts: 1, RoundAttempts: 1,
			CreatedAt: at, UpdatedAt: at, NextAttemptAt: at,
		}}
		s.deliveries[r.d.ID] = r
		s.dedup[dedupKey{r.d.EventID, w.ID}] = r.d.ID
		s.webhookDeliveries[w.ID] = append(s.webhookDeliveries[w.ID], r.d.ID)
		s.tenantDeliveries[w.Tenant] = append(s.tenantDeliveries[w.Tenant], r.d.ID)
	}
}

// TestPurgeBatchCost: a Purge under a Limit costs about the same whatever
// the number of finished deliveries of other tenants. The dispatcher purges in batches of
// 1000 while every Enqueue, Claim and Complete waits for the lock; a batch
// that sorted every purgeable delivery to pick the oldest ids made purging a
// large backlog quadratic.
func TestPurgeBatchCost(t *testing.T) {
	at := time.Now().Add(-time.Hour)
	batch := func(n int) time.Duration {
		s := New()
		defer s.Close()
		finished(t, s, n, at)
		best := time.Hour
		for range 5 {
			t0 := time.Now()
			k, err := s.Purge(context.Background(), store.PurgeParams{Before: at.Add(time.Minute), Limit: 10})
			best = min(best, time.Since(t0))
			if k != 10 || err != nil {
				t.Fatalf("Purge = %d, %v; want 10", k, err)
			}
		}
		return best
	}
	small, large := batch(1000), batch(100_000)
	if large > 20*small+2*time.Millisecond {
		t.Errorf("a Purge of 10 takes %v among 100,000 finished deliveries and %v among 1,000", large, small)
	}
}
