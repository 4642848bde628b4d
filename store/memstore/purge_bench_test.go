package memstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// finished stores the finished deliveries from..to-1, last updated at, 100
// for each tenant (with one webhook each).
func finished(t testing.TB, s *Store, from, to int, at time.Time) {
	t.Helper()
	for i := from; i < to; i++ {
		finishedOf(t, s, fmt.Sprintf("wh_%08d", i/100), fmt.Sprintf("del_%08d", i), at)
	}
}

// finishedOf stores the finished delivery id of webhook wid (created with a
// tenant of its own when absent), last updated at.
func finishedOf(t testing.TB, s *Store, wid, id string, at time.Time) {
	t.Helper()
	if s.webhooks[wid] == nil {
		w := &store.Webhook{ID: wid, Tenant: "t" + wid, URL: "https://example.com", Events: []string{"*"}, Active: true}
		if err := s.CreateWebhook(context.Background(), w); err != nil {
			t.Fatal(err)
		}
	}
	w := s.webhooks[wid]
	r := &delRec{qi: -1, li: -1, d: store.Delivery{
		ID: id, WebhookID: w.ID, EventID: "evt_" + id, EventType: "user.login",
		Tenant: w.Tenant, Body: []byte("{}"), Status: store.StatusSuccess, Attempts: 1, RoundAttempts: 1,
		CreatedAt: at, UpdatedAt: at, NextAttemptAt: at,
	}}
	s.pack(r.d.ID, appendPacked(nil, &r.d, nil), r.d.UpdatedAt)
	s.dedup[dedupKey{r.d.EventID, w.ID}] = r.d.ID
	s.webhookDeliveries[w.ID] = insertSorted(s.webhookDeliveries[w.ID], r.d.ID)
	s.tenantDeliveries[w.Tenant] = insertSorted(s.tenantDeliveries[w.Tenant], r.d.ID)
}

// BenchmarkPurgeBatch: a Purge under a Limit costs about the same whatever
// the number of finished deliveries of other tenants. The dispatcher purges
// in batches of 1000 while every Enqueue, Claim and Complete waits for the
// lock; a batch that sorted every purgeable delivery to pick the oldest ids
// made purging a large backlog quadratic: a batch of 10 took 0.18 ms among
// 1,000 and 46 ms among 100,000; 0.02 and 0.06 ms once it took the first
// ones found, and 0.01 to 0.03 ms both since it takes the oldest from a
// list in time order.
func BenchmarkPurgeBatch(b *testing.B) {
	at := time.Now().Add(-time.Hour)
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprint("finished=", n), func(b *testing.B) {
			s := New()
			defer s.Close()
			finished(b, s, 0, n, at)
			next := n
			for b.Loop() {
				// Put back as many as a batch takes: the store holds n.
				b.StopTimer()
				finished(b, s, next, next+10, at)
				next += 10
				b.StartTimer()
				k, err := s.Purge(context.Background(), store.PurgeParams{Before: at.Add(time.Minute), Limit: 10})
				if k != 10 || err != nil {
					b.Fatalf("Purge = %d, %v; want 10", k, err)
				}
			}
		})
	}
}

// BenchmarkPurgeNothing: a Purge that finds nothing last updated early
// enough, as every purge pass does until the oldest delivery reaches the
// retention, returns at once rather than look at every finished delivery
// while every other call waits for the lock: among 100,000 each took 11 to
// 14.5 ms before it did.
func BenchmarkPurgeNothing(b *testing.B) {
	at := time.Now().Add(-time.Hour)
	s := New()
	defer s.Close()
	finished(b, s, 0, 100_000, at)
	for b.Loop() {
		k, err := s.Purge(context.Background(), store.PurgeParams{Before: at.Add(-time.Minute), Limit: 1000})
		if k != 0 || err != nil {
			b.Fatalf("Purge = %d, %v; want 0", k, err)
		}
	}
}

// BenchmarkPurgeFew: once past the retention, a purge pass finds the few
// deliveries that aged out since the last among the many kept, as the
// dispatcher's passes do in a store at a steady state: 10 among 100,000
// kept, all of one tenant, the ones purged older (and of lower ids) than
// the ones kept. Each took 22 to 25 ms while Purge looked at every finished
// delivery to find them and filtered the tenant's and the webhook's ids;
// 0.03 to 0.05 ms since it takes the oldest from a list in time order.
func BenchmarkPurgeFew(b *testing.B) {
	old := time.Now().Add(-time.Hour)
	s := New()
	defer s.Close()
	next := 0
	addOld := func() {
		for range 10 {
			finishedOf(b, s, "wh_one", fmt.Sprintf("del_a%08d", next), old)
			next++
		}
	}
	for i := range 100_000 {
		finishedOf(b, s, "wh_one", fmt.Sprintf("del_b%08d", i), time.Now())
	}
	for b.Loop() {
		b.StopTimer()
		addOld()
		b.StartTimer()
		k, err := s.Purge(context.Background(), store.PurgeParams{Before: old.Add(time.Minute), Limit: 1000})
		if k != 10 || err != nil {
			b.Fatalf("Purge = %d, %v; want 10", k, err)
		}
	}
}
