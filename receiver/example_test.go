package receiver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	webhook "github.com/noa-server/webhook"
	"github.com/noa-server/webhook/receiver"
)

const exampleSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// signed returns a request as the sender signs it.
func signed(body, id string, at time.Time) *http.Request {
	s, _ := webhook.NewSigner(exampleSecret)
	r := httptest.NewRequest(http.MethodPost, "/webhooks/noa-server", strings.NewReader(body))
	s.Sign(r.Header, id, at, []byte(body))
	return r
}

// Verify is the short form: the secrets, and the defaults of
// VerifyOptions (the real clock, a 5-minute tolerance, a 1 MiB body).
func ExampleVerify() {
	h := receiver.Verify(exampleSecret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := receiver.EventFromContext(r.Context())
		fmt.Println("handler ran for", ev.ID)
	}))

	body := `{"id":"evt_2","event":"user.login","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":{},"metadata":{"apiVersion":"v1","requestId":""}}`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signed(body, "evt_2", time.Now()))
	fmt.Println(rec.Code)

	// The body with its event type changed no longer matches the signature.
	r := signed(body, "evt_2", time.Now())
	r.Body = io.NopCloser(strings.NewReader(strings.Replace(body, "user.login", "user.logout", 1)))
	r.ContentLength = -1
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output:
	// handler ran for evt_2
	// 200
	// 401 Invalid signature
}

func ExampleVerifyWithOptions() {
	now := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	verify, err := receiver.VerifyWithOptions(receiver.VerifyOptions{
		Secrets: []string{exampleSecret},
		Now:     func() time.Time { return now }, // a fixed clock for the example
	})
	if err != nil {
		panic(err)
	}
	h := verify(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := receiver.EventFromContext(r.Context())
		body, _ := io.ReadAll(r.Body) // the identical bytes that were signed
		fmt.Printf("verified %s %s (%d bytes)\n", ev.Type, ev.ID, len(body))
	}))

	body := `{"id":"evt_1","event":"workflow.completed","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":{},"metadata":{"apiVersion":"v1","requestId":"req_1"}}`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signed(body, "evt_1", now))
	fmt.Println(rec.Code)

	// A replay ten minutes later is outside the 5-minute tolerance.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, signed(body, "evt_1", now.Add(-10*time.Minute)))
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output:
	// verified workflow.completed evt_1 (158 bytes)
	// 200
	// 401 Timestamp outside tolerance
}

type WorkflowCompleted struct {
	WorkflowID string `json:"workflowId"`
	Duration   int    `json:"duration"`
}

func ExampleRouter() {
	router, err := receiver.NewRouter(receiver.RouterOptions{})
	if err != nil {
		panic(err)
	}
	receiver.Handle(router, "workflow.completed", func(ctx context.Context, e *receiver.Event, d WorkflowCompleted) error {
		fmt.Printf("workflow %s took %dms\n", d.WorkflowID, d.Duration)
		return nil
	})
	router.On("agent.*", func(ctx context.Context, e *receiver.Event) error {
		fmt.Println("agent event:", e.Type)
		return nil
	})

	verifier, err := receiver.NewVerifier(receiver.VerifyOptions{Secrets: []string{exampleSecret}})
	if err != nil {
		panic(err)
	}
	h := verifier.Middleware(router)
	for _, ev := range []struct{ typ, data string }{
		{"workflow.completed", `{"workflowId":"wf_42","duration":1200}`},
		{"agent.status.changed", `{"agentId":"ag_1","status":"idle"}`},
		{"user.login", `{}`}, // no handler: 200, logged
	} {
		body := `{"id":"evt_` + ev.typ + `","event":"` + ev.typ + `","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":` + ev.data + `,"metadata":{"apiVersion":"v1","requestId":"r"}}`
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signed(body, "evt_"+ev.typ, time.Now()))
		fmt.Println(rec.Code)
	}
	// Output:
	// workflow wf_42 took 1200ms
	// 200
	// agent event: agent.status.changed
	// 200
	// 200
}

// Verify, then Idempotency: the sender's retry of a delivery that was
// processed is answered 200 without running the handler again.
func ExampleIdempotency() {
	store := receiver.NewMemoryStore(receiver.MemoryStoreOptions{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := receiver.EventFromContext(r.Context())
		fmt.Println("processing", ev.ID)
	})
	h := receiver.Verify(exampleSecret)(receiver.Idempotency(store)(handler))

	body := `{"id":"evt_1","event":"user.login","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":{},"metadata":{"apiVersion":"v1","requestId":"req_1"}}`
	for range 2 { // the delivery, then a retry of it
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signed(body, "evt_1", time.Now()))
		fmt.Println(rec.Code)
	}
	// Output:
	// processing evt_1
	// 200
	// 200
}

// IPAllowlist lets through only the sender's addresses; behind a reverse
// proxy, IPAllowlistWithOptions names the proxies whose X-Forwarded-For it
// reads.
func ExampleIPAllowlist() {
	allow := receiver.IPAllowlist("203.0.113.0/24", "2001:db8::/32")
	h := allow(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, peer := range []string{"203.0.113.7:40000", "198.51.100.1:40000"} {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/noa-server", nil)
		r.RemoteAddr = peer
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		fmt.Println(peer, rec.Code)
	}
	// Output:
	// 203.0.113.7:40000 200
	// 198.51.100.1:40000 403
}
