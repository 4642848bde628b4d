package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
)

// benchHandler serves the API over a memstore holding one webhook with 100
// finished deliveries of one attempt each.
func benchHandler(b *testing.B) (h http.Handler, webhookID, deliveryID string) {
	st := memstore.New()
	b.Cleanup(func() { st.Close() })
	disp, err := webhook.New(st, nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{})
	h, err = api.New(api.Config{Registry: reg, Dispatcher: disp, Store: st,
		Tenant: func(*http.Request) (string, error) { return "t", nil }})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	w, err := reg.Create(ctx, "t", webhook.WebhookInput{URL: "https://example.com/hook", Events: []string{"*"}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range 100 {
		d := &store.Delivery{
			ID: fmt.Sprintf("del_%04d", i), WebhookID: w.ID, EventID: fmt.Sprintf("evt_%04d", i),
			EventType: "workflow.completed", Tenant: "t", Status: store.StatusPending, NextAttemptAt: now,
			Body: []byte(`{"id":"evt_1","event":"workflow.completed","timestamp":"2025-10-22T10:00:00Z","webhookId":"wh_1","data":{"workflowId":"wf_789","status":"success"},"metadata":{"apiVersion":"v1","requestId":"req_1"}}`),
		}
		if _, err := st.Enqueue(ctx, []*store.Delivery{d}); err != nil {
			b.Fatal(err)
		}
	}
	claimed, err := st.Claim(ctx, store.ClaimParams{Now: now, Limit: 100, Lease: time.Minute, Owner: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range claimed {
		err := st.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "bench", Status: store.StatusSuccess, Now: now,
			Attempt: &store.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: now, Duration: 150 * time.Millisecond,
				RequestURL: w.URL, RequestHeaders: http.Header{"Content-Type": {"application/json"}, "X-Webhook-Signature": {"sha256=abc"}},
				ResponseStatus: 200, ResponseBody: []byte("OK")}})
		if err != nil {
			b.Fatal(err)
		}
	}
	return h, w.ID, claimed[0].ID
}

func benchGet(b *testing.B, h http.Handler, path string) {
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

func BenchmarkGetWebhook(b *testing.B) {
	h, id, _ := benchHandler(b)
	benchGet(b, h, "/v1/webhooks/"+id)
}

func BenchmarkGetDelivery(b *testing.B) {
	h, id, del := benchHandler(b)
	benchGet(b, h, "/v1/webhooks/"+id+"/deliveries/"+del)
}

func BenchmarkListDeliveries50(b *testing.B) {
	h, id, _ := benchHandler(b)
	benchGet(b, h, "/v1/webhooks/"+id+"/deliveries")
}
