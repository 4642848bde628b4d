package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
)

// A store survives a restart: a delivery enqueued before Close is claimable
// after Open of the same file.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "boltstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "webhooks.db")
	ctx := context.Background()

	s, err := boltstore.Open(path, nil)
	if err != nil {
		panic(err)
	}
	w := &store.Webhook{ID: "wh_1", Tenant: "acme", URL: "https://hooks.example.com/in", Events: []string{"*"}, Active: true}
	if err := s.CreateWebhook(ctx, w); err != nil {
		panic(err)
	}
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	ids, err := s.Enqueue(ctx, []*store.Delivery{{
		ID: "del_1", WebhookID: "wh_1", EventID: "evt_1", EventType: "workflow.completed",
		Tenant: "acme", Body: []byte(`{"id":"evt_1"}`), NextAttemptAt: now,
	}})
	if err != nil {
		panic(err)
	}
	fmt.Println("enqueued:", ids)
	s.Close()

	s, err = boltstore.Open(path, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Lease: 30 * time.Second, Owner: "worker-1"})
	if err != nil {
		panic(err)
	}
	fmt.Println("claimed after reopening:", claimed[0].ID, string(claimed[0].Body))
	// Output:
	// enqueued: [del_1]
	// claimed after reopening: del_1 {"id":"evt_1"}
}

// Stats counts the commits that Enqueue, Claim and Complete share: two
// calls one after another commit once each, and the writer was busy for
// both. A host compares two readings taken some time apart.
func ExampleStore_Stats() {
	dir, err := os.MkdirTemp("", "boltstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := boltstore.Open(filepath.Join(dir, "webhooks.db"), nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	w := &store.Webhook{ID: "wh_1", Tenant: "acme", URL: "https://hooks.example.com/in", Events: []string{"*"}, Active: true}
	if err := s.CreateWebhook(ctx, w); err != nil {
		panic(err)
	}

	before := s.Stats()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	if _, err := s.Enqueue(ctx, []*store.Delivery{{
		ID: "del_1", WebhookID: "wh_1", EventID: "evt_1", EventType: "workflow.completed",
		Tenant: "acme", Body: []byte(`{"id":"evt_1"}`), NextAttemptAt: now,
	}}); err != nil {
		panic(err)
	}
	// A Claim writes nothing (its leases are in memory); a Complete does.
	if _, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Lease: 30 * time.Second, Owner: "worker-1"}); err != nil {
		panic(err)
	}
	if err := s.Complete(ctx, store.CompleteParams{
		DeliveryID: "del_1", Owner: "worker-1", Status: store.StatusSuccess, Now: now,
		Attempt: &store.Attempt{DeliveryID: "del_1", Number: 1, StartedAt: now, ResponseStatus: 200},
	}); err != nil {
		panic(err)
	}
	after := s.Stats()
	fmt.Println("commits:", after.Commits-before.Commits, "calls:", after.Calls-before.Calls)
	fmt.Println("writer busy:", after.Busy > before.Busy, "pages written:", after.PageWrites > before.PageWrites)
	// Output:
	// commits: 2 calls: 2
	// writer busy: true pages written: true
}
