package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
)

// A host emits an event; the dispatcher signs it and delivers it to the
// subscribed webhook, whose receiver verifies the signature.
func ExampleDispatcher_Emit() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	verifier, _ := webhook.NewVerifier([]string{secret}, webhook.VerifyOptions{})
	received := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		received <- r.Header.Get("X-Webhook-Event") + " " + string(body[:32])
	}))
	defer srv.Close()

	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	_ = st.CreateWebhook(ctx, &store.Webhook{
		ID: "wh_1", Tenant: "acme", URL: srv.URL, Active: true,
		Events:  []string{"workflow.*"},
		Secrets: []store.Secret{{Value: secret}},
	})

	d, err := webhook.New(st, &webhook.Config{
		// httptest listens on loopback and a random port, which the SSRF
		// guard refuses unless told otherwise.
		AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		AllowAnyPort:  true,
	})
	if err != nil {
		panic(err)
	}
	if err := d.Start(ctx); err != nil {
		panic(err)
	}
	defer d.Stop(ctx)

	res, err := d.Emit(ctx, webhook.Event{
		ID:     "evt_42",
		Type:   webhook.EventWorkflowCompleted,
		Tenant: "acme",
		Data:   map[string]any{"workflowId": "wf_7", "status": "completed"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("deliveries:", len(res.DeliveryIDs))
	select {
	case got := <-received:
		fmt.Println("received:", got)
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// deliveries: 1
	// received: workflow.completed {"id":"evt_42","event":"workflow
}

// The default retry schedule, without jitter.
func ExampleRetryPolicy_Next() {
	p := webhook.RetryPolicy{Jitter: -1}
	for attempt := 1; ; attempt++ {
		delay, retry := p.Next(attempt, webhook.AttemptResult{StatusCode: 500})
		if !retry {
			fmt.Printf("after attempt %d: failed\n", attempt)
			break
		}
		fmt.Printf("after attempt %d: retry in %v\n", attempt, delay)
	}
	// Output:
	// after attempt 1: retry in 30s
	// after attempt 2: retry in 2m0s
	// after attempt 3: retry in 8m0s
	// after attempt 4: retry in 32m0s
	// after attempt 5: failed
}
