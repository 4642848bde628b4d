package webhook_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/receiver"
	"github.com/noa-server/webhook/store/memstore"
)

// The whole round trip in one process: a tenant registers a webhook, the host
// emits an event, the dispatcher signs and delivers it, and a receiver built
// from the receiver middleware verifies it and hands its typed data to a
// handler.
func Example() {
	ctx := context.Background()

	// The receiver's address is needed to register the webhook, and the
	// webhook's generated secret to build the receiver: take the address
	// first and start serving once the handler is complete.
	srv := httptest.NewUnstartedServer(nil)
	defer srv.Close()

	st := memstore.New()
	defer st.Close()
	// AllowHTTP: the test server speaks plain http (production URLs must be
	// https).
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{AllowHTTP: true})
	wh, err := reg.Create(ctx, "acme", webhook.WebhookInput{
		URL:    "http://" + srv.Listener.Addr().String() + "/webhooks/noa-server",
		Events: []string{"workflow.completed", "workflow.failed"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	received := make(chan string, 1)
	router, err := receiver.NewRouter(receiver.RouterOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	receiver.Handle(router, webhook.EventWorkflowCompleted,
		func(ctx context.Context, e *receiver.Event, d webhook.WorkflowCompletedData) error {
			received <- fmt.Sprintf("%s %s %s %s", e.Type, e.ID, d.WorkflowID, d.Status)
			return nil
		})
	srv.Config.Handler = receiver.Verify(wh.Secrets[0].Value)(
		receiver.Idempotency(receiver.NewMemoryStore(receiver.MemoryStoreOptions{}))(router))
	srv.Start()

	d, err := webhook.New(st, &webhook.Config{
		// httptest listens on loopback and a random port, which the SSRF
		// guard refuses unless told otherwise. Never relax it in production.
		AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		AllowAnyPort:  true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := d.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer d.Stop(ctx)

	res, err := d.Emit(ctx, webhook.Event{
		ID:     "evt_42",
		Type:   webhook.EventWorkflowCompleted,
		Tenant: "acme",
		Data:   webhook.WorkflowCompletedData{WorkflowID: "wf_7", Status: "completed"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("deliveries:", len(res.DeliveryIDs), strings.HasPrefix(res.DeliveryIDs[0], "del_"))

	select {
	case got := <-received:
		fmt.Println("handled:", got)
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// deliveries: 1 true
	// handled: workflow.completed evt_42 wf_7 completed
}
