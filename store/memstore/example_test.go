package memstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
)

// A delivery's life in a store: enqueued, claimed by a worker under a
// lease, completed after one failed and one successful attempt.
func Example() {
	ctx := context.Background()
	s := memstore.New()
	defer s.Close()

	w := &store.Webhook{
		ID: "wh_1", Tenant: "acme", URL: "https://hooks.example.com/in",
		Events: []string{"workflow.*"}, Active: true,
		Secrets: []store.Secret{{Value: "whsec_example"}},
	}
	if err := s.CreateWebhook(ctx, w); err != nil {
		panic(err)
	}
	matched, _ := s.MatchWebhooks(ctx, "acme", "workflow.completed")
	fmt.Println("matched:", len(matched), matched[0].ID)

	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	ids, _ := s.Enqueue(ctx, []*store.Delivery{{
		ID: "del_1", WebhookID: "wh_1", EventID: "evt_1", EventType: "workflow.completed",
		Tenant: "acme", Body: []byte(`{"id":"evt_1"}`), NextAttemptAt: now,
	}})
	fmt.Println("enqueued:", ids)

	claimed, _ := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Lease: 30 * time.Second, Owner: "worker-1"})
	fmt.Println("claimed:", claimed[0].ID, "by", claimed[0].LeaseOwner)

	// The first attempt gets a 503: retry in a minute.
	_ = s.Complete(ctx, store.CompleteParams{
		DeliveryID: "del_1", Owner: "worker-1", Now: now,
		Attempt: &store.Attempt{Number: 1, ResponseStatus: 503, ErrorClass: store.ErrorHTTPStatus, Error: "status 503"},
		Status:  store.StatusPending, NextAttemptAt: now.Add(time.Minute),
	})
	again, _ := s.Claim(ctx, store.ClaimParams{Now: now.Add(time.Second), Limit: 10, Lease: 30 * time.Second, Owner: "worker-2"})
	fmt.Println("due again too early:", len(again))

	later := now.Add(time.Minute)
	claimed, _ = s.Claim(ctx, store.ClaimParams{Now: later, Limit: 10, Lease: 30 * time.Second, Owner: "worker-2"})
	_ = s.Complete(ctx, store.CompleteParams{
		DeliveryID: claimed[0].ID, Owner: "worker-2", Now: later,
		Attempt: &store.Attempt{Number: 2, ResponseStatus: 200},
		Status:  store.StatusSuccess,
	})
	d, _ := s.GetDelivery(ctx, "del_1")
	fmt.Println("status:", d.Status, "attempts:", d.Attempts, "last:", d.LastStatusCode)
	counts, _ := s.CountDeliveries(ctx, "wh_1")
	fmt.Printf("counts: %+v\n", counts)
	// Output:
	// matched: 1 wh_1
	// enqueued: [del_1]
	// claimed: del_1 by worker-1
	// due again too early: 0
	// status: success attempts: 2 last: 200
	// counts: {Pending:0 Success:1 Failed:0}
}
