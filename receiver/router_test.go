package receiver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	webhook "github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/testlog"
)

// routed sends a verified event of type typ with data through Verify → r.
func routed(t *testing.T, h http.Handler, id, typ, data string) *httptest.ResponseRecorder {
	t.Helper()
	v := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})
	rec := httptest.NewRecorder()
	v(h).ServeHTTP(rec, signedRequest(t, eventBody(id, typ, data), id, guideTime, secret1))
	return rec
}

func newRouter(t *testing.T, o RouterOptions) *Router {
	t.Helper()
	r, err := NewRouter(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type workflowData struct {
	WorkflowID string `json:"workflowId"`
	Status     string `json:"status"`
}

func TestRouterMatching(t *testing.T) {
	t.Parallel()
	r := newRouter(t, RouterOptions{})
	var mu sync.Mutex
	var got []string
	rec := func(name string) HandlerFunc {
		return func(ctx context.Context, e *Event) error {
			mu.Lock()
			got = append(got, name+":"+e.Type)
			mu.Unlock()
			return nil
		}
	}
	r.On("workflow.completed", rec("exact"))
	r.On("workflow.*", rec("workflow"))
	r.On("agent.task.*", rec("agent.task"))
	r.On("agent.*", rec("agent"))
	tests := []struct{ typ, want string }{
		{"workflow.completed", "exact:workflow.completed"},
		{"workflow.failed", "workflow:workflow.failed"},
		{"agent.task.completed", "agent.task:agent.task.completed"},
		{"agent.spawned", "agent:agent.spawned"},
		{"workflowx.created", ""},
		{"user.login", ""},
	}
	for _, tt := range tests {
		got = nil
		res := routed(t, r, "evt_1", tt.typ, `{}`)
		if res.Code != 200 {
			t.Fatalf("%s: status %d", tt.typ, res.Code)
		}
		if (tt.want == "" && len(got) != 0) || (tt.want != "" && (len(got) != 1 || got[0] != tt.want)) {
			t.Fatalf("%s: handlers run %v, want %q", tt.typ, got, tt.want)
		}
	}
	r.On("*", rec("all"))
	got = nil
	routed(t, r, "evt_1", "user.login", `{}`)
	if len(got) != 1 || got[0] != "all:user.login" {
		t.Fatalf("catch-all: %v", got)
	}
}

func TestRouterTypedAndErrors(t *testing.T) {
	t.Parallel()
	r := newRouter(t, RouterOptions{})
	var seen workflowData
	Handle(r, "workflow.completed", func(ctx context.Context, e *Event, d workflowData) error {
		seen = d
		if raw, ok := RawBodyFromContext(ctx); !ok || len(raw) == 0 {
			t.Error("raw body not in the handler's context")
		}
		return nil
	})
	r.On("workflow.failed", func(ctx context.Context, e *Event) error { return errors.New("db down") })
	if res := routed(t, r, "evt_1", "workflow.completed", `{"workflowId":"wf_1","status":"ok"}`); res.Code != 200 || seen.WorkflowID != "wf_1" || seen.Status != "ok" {
		t.Fatalf("typed: %d %+v", res.Code, seen)
	}
	if res := routed(t, r, "evt_2", "workflow.completed", `{"workflowId":42}`); res.Code != 400 {
		t.Fatalf("bad data: %d", res.Code)
	}
	res := routed(t, r, "evt_3", "workflow.failed", `{}`)
	if res.Code != 500 || res.Body.String() != "Processing failed\n" {
		t.Fatalf("handler error: %d %q", res.Code, res.Body.String())
	}
	// Without Verify in front: 500, handler not run.
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != 500 {
		t.Fatalf("unverified: %d", rec.Code)
	}
}

// TestRouterHandlerPanic: a synchronous handler that panics is answered 500
// like a handler error (the sender gets an answer, not a dropped
// connection), the panic is logged with its stack, and the key is released
// so the retry is processed.
func TestRouterHandlerPanic(t *testing.T) {
	t.Parallel()
	var logs testlog.Buffer
	r := newRouter(t, RouterOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var calls atomic.Int32
	r.On("order.created", func(context.Context, *Event) error {
		if calls.Add(1) == 1 {
			panic("handler bug")
		}
		return nil
	})
	health := NewHealth(nil)
	srv := httptest.NewServer(health.Middleware(idemChain(t, NewMemoryStore(MemoryStoreOptions{}), r)))
	defer srv.Close()
	for i, want := range []int{http.StatusInternalServerError, http.StatusOK} {
		if code := postTo(t, srv, signedRequest(t, guideBody, guideID, guideTime, secret1)); code != want {
			t.Fatalf("delivery %d: status %d, want %d", i+1, code, want)
		}
	}
	if s := health.Stats(); s.Failed != 1 || s.Processed != 1 {
		t.Errorf("stats %+v, want 1 failed, 1 processed", s)
	}
	if l := logs.String(); !strings.Contains(l, "handler bug") || !strings.Contains(l, "TestRouterHandlerPanic.func1") {
		t.Errorf("the panic is not logged with its stack:\n%s", l)
	}
}

// A synchronous handler may still abort its answer the net/http way; the
// idempotency key is released, so the retry runs the handler again.
func TestRouterHandlerAborts(t *testing.T) {
	t.Parallel()
	r := newRouter(t, RouterOptions{})
	var calls atomic.Int32
	r.On("order.created", func(context.Context, *Event) error {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		return nil
	})
	srv := httptest.NewServer(idemChain(t, NewMemoryStore(MemoryStoreOptions{}), r))
	defer srv.Close()
	req := signedRequest(t, guideBody, guideID, guideTime, secret1)
	req.RequestURI = ""
	req.URL, _ = req.URL.Parse(srv.URL + "/webhooks/noa-server")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("an aborted answer arrived: status %d", resp.StatusCode)
	}
	if code := postTo(t, srv, signedRequest(t, guideBody, guideID, guideTime, secret1)); code != http.StatusOK {
		t.Fatalf("retry: status %d", code)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
}

func TestRouterRegistrationPanics(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *Event) error { return nil }
	for _, p := range []string{"", "a*", "*.x", "a.*.b", "dup", "dup.*"} {
		r := newRouter(t, RouterOptions{})
		r.On("dup", nop)
		r.On("dup.*", nop)
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("pattern %q accepted", p)
				}
			}()
			r.On(p, nop)
		}()
	}
}

// TestHandleNilPanics: a nil typed handler is a programmer error caught
// at registration, as On catches a nil HandlerFunc, not a 500 on every
// delivery.
func TestHandleNilPanics(t *testing.T) {
	t.Parallel()
	r := newRouter(t, RouterOptions{})
	defer func() {
		if recover() == nil {
			t.Error("Handle with a nil handler did not panic")
		}
	}()
	Handle[workflowData](r, "workflow.completed", nil)
}

func TestRouterBackground(t *testing.T) {
	t.Parallel()
	type failure struct {
		e   *Event
		err error
	}
	failures := make(chan failure, 10)
	r := newRouter(t, RouterOptions{
		Background: &BackgroundOptions{Workers: 2, QueueSize: 8, MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
		OnFailure:  func(e *Event, err error) { failures <- failure{e, err} },
	})
	// Not started: 503, so the sender retries later.
	if res := routed(t, r, "evt_0", "x.ok", `{}`); res.Code != 503 || res.Header().Get("Retry-After") == "" {
		t.Fatalf("before Start: %d", res.Code)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 10)
	attempts := map[string]int{}
	var mu sync.Mutex
	r.On("x.ok", func(ctx context.Context, e *Event) error { done <- e.ID; return nil })
	r.On("x.flaky", func(ctx context.Context, e *Event) error {
		mu.Lock()
		attempts[e.ID]++
		n := attempts[e.ID]
		mu.Unlock()
		if n < 3 {
			return errors.New("transient")
		}
		done <- e.ID
		return nil
	})
	r.On("x.bad", func(ctx context.Context, e *Event) error { panic("always") })

	for _, c := range []struct{ id, typ string }{{"evt_1", "x.ok"}, {"evt_2", "x.flaky"}, {"evt_3", "x.bad"}} {
		if res := routed(t, r, c.id, c.typ, `{}`); res.Code != 202 {
			t.Fatalf("%s: %d", c.id, res.Code)
		}
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case id := <-done:
			got[id] = true
		case <-time.After(20 * time.Second):
			t.Fatal("background events not processed")
		}
	}
	if !got["evt_1"] || !got["evt_2"] {
		t.Fatalf("processed %v", got)
	}
	select {
	case f := <-failures:
		if f.e.ID != "evt_3" || f.err == nil {
			t.Fatalf("failure %+v", f)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("failure not reported")
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := routed(t, r, "evt_4", "x.ok", `{}`); res.Code != 503 {
		t.Fatalf("after Stop: %d", res.Code)
	}
}

func TestRouterBackgroundQueueFullAndStopDeadline(t *testing.T) {
	t.Parallel()
	failures := make(chan error, 10)
	r := newRouter(t, RouterOptions{
		Background: &BackgroundOptions{Workers: 1, QueueSize: 1, MaxAttempts: 2, InitialInterval: time.Hour},
		OnFailure:  func(e *Event, err error) { failures <- err },
	})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	r.On("x.slow", func(ctx context.Context, e *Event) error {
		close(started)
		<-ctx.Done() // runs until Stop gives up
		return ctx.Err()
	})
	r.On("x.fail", func(ctx context.Context, e *Event) error { return errors.New("no") })
	if res := routed(t, r, "evt_1", "x.slow", `{}`); res.Code != 202 {
		t.Fatal(res.Code)
	}
	<-started
	if res := routed(t, r, "evt_2", "x.fail", `{}`); res.Code != 202 {
		t.Fatal(res.Code)
	}
	res := routed(t, r, "evt_3", "x.fail", `{}`)
	if res.Code != 503 || res.Header().Get("Retry-After") == "" {
		t.Fatalf("queue full: %d", res.Code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // give up at once
	if err := r.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v", err)
	}
	// Both events were reported, none dropped silently.
	for range 2 {
		select {
		case err := <-failures:
			if !errors.Is(err, ErrRouterStopped) {
				t.Fatalf("failure = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("event dropped without report")
		}
	}
}

// TestRouterCatalogTypes decodes the catalog's data structs of package
// webhook.
func TestRouterCatalogTypes(t *testing.T) {
	t.Parallel()
	r := newRouter(t, RouterOptions{})
	var wf webhook.WorkflowCompletedData
	var ag webhook.AgentStatusChangedData
	var task webhook.AgentTaskCompletedData
	Handle(r, webhook.EventWorkflowCompleted, func(_ context.Context, _ *Event, d webhook.WorkflowCompletedData) error { wf = d; return nil })
	Handle(r, webhook.EventAgentStatusChanged, func(_ context.Context, _ *Event, d webhook.AgentStatusChangedData) error { ag = d; return nil })
	Handle(r, webhook.EventAgentTaskCompleted, func(_ context.Context, _ *Event, d webhook.AgentTaskCompletedData) error { task = d; return nil })
	routed(t, r, "evt_1", webhook.EventWorkflowCompleted, `{"workflowId":"wf_1","executionId":"ex_1","status":"succeeded","duration":1500,"result":{"ok":true}}`)
	routed(t, r, "evt_2", webhook.EventAgentStatusChanged, `{"agentId":"ag_1","previousStatus":"idle","currentStatus":"busy"}`)
	routed(t, r, "evt_3", webhook.EventAgentTaskCompleted, `{"agentId":"ag_1","taskId":"t_1","duration":20}`)
	if wf.WorkflowID != "wf_1" || wf.Duration != 1500 || string(wf.Result) != `{"ok":true}` {
		t.Errorf("workflow = %+v", wf)
	}
	if ag.AgentID != "ag_1" || ag.PreviousStatus != "idle" || ag.CurrentStatus != "busy" {
		t.Errorf("agent = %+v", ag)
	}
	if task.TaskID != "t_1" || task.Duration != 20 {
		t.Errorf("task = %+v", task)
	}
}

// The zero Router is a synchronous router that logs nothing, as
// NewRouter(RouterOptions{}) returns.
func TestRouterZeroValue(t *testing.T) {
	t.Parallel()
	var r Router
	var got []string
	var mu sync.Mutex
	r.On("order.created", func(_ context.Context, e *Event) error {
		mu.Lock()
		got = append(got, e.ID)
		mu.Unlock()
		return nil
	})
	Handle(&r, "order.*", func(context.Context, *Event, struct{ N int }) error { return nil })
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	srv := httptest.NewServer(VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})(&r))
	defer srv.Close()
	for _, tc := range []struct {
		id, typ, data string
		want          int
	}{
		{"evt_1", "order.created", `{}`, http.StatusOK},
		{"evt_2", "order.shipped", `{"N":"x"}`, http.StatusBadRequest}, // typed handler, bad data: logged
		{"evt_3", "user.deleted", `{}`, http.StatusOK},                 // no handler: logged
	} {
		req := signedRequest(t, eventBody(tc.id, tc.typ, tc.data), tc.id, guideTime, secret1)
		if code := postTo(t, srv, req); code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.typ, code, tc.want)
		}
	}
	mu.Lock()
	if len(got) != 1 || got[0] != "evt_1" {
		t.Errorf("handled %v, want [evt_1]", got)
	}
	mu.Unlock()
	if err := r.Dispatch(context.Background(), &Event{ID: "evt_4", Type: "user.created"}); err != nil {
		t.Errorf("Dispatch of an unhandled type = %v", err)
	}
	// Without Verify in front: 500, logged.
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("unverified: %d, want 500", rec.Code)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// TestRouterChainOverHTTP sends, over a real server, what a router must
// survive: signed bodies that are too large, not JSON, or not the
// envelope (refused before the idempotency store, which stays empty), an
// unknown event type (200, logged, remembered), data that does not decode
// and a handler error (400 and 500, the key released so the sender's retry
// is processed).
func TestRouterChainOverHTTP(t *testing.T) {
	t.Parallel()
	var logs testlog.Buffer
	r := newRouter(t, RouterOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var ran atomic.Int32
	Handle(r, "workflow.completed", func(context.Context, *Event, workflowData) error { ran.Add(1); return nil })
	r.On("workflow.failed", func(context.Context, *Event) error { ran.Add(1); return errors.New("db down") })
	store := NewMemoryStore(MemoryStoreOptions{})
	idem := Idempotency(store)
	verify := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime), MaxBodyBytes: 1024})
	srv := httptest.NewServer(verify(idem(r)))
	defer srv.Close()

	post := func(body string, chunked bool) int {
		t.Helper()
		req := signedRequest(t, body, "evt_r", guideTime, secret1)
		if chunked {
			req.Body = io.NopCloser(strings.NewReader(body)) // no length: sent chunked
			req.ContentLength = -1
		}
		return postTo(t, srv, req)
	}
	refused := []struct {
		name    string
		body    string
		chunked bool
		want    int
	}{
		{"too large, with length", eventBody("evt_r", "workflow.completed", `"`+strings.Repeat("a", 2048)+`"`), false, 413},
		{"too large, chunked", eventBody("evt_r", "workflow.completed", `"`+strings.Repeat("a", 2048)+`"`), true, 413},
		{"not JSON", "evt_r=1&event=workflow.completed", false, 400},
		{"a JSON array", `[{"id":"evt_r"}]`, false, 400},
		{"truncated JSON", eventBody("evt_r", "workflow.completed", `{}`)[:40], false, 400},
		{"payload timestamp not a time", `{"id":"evt_r","event":"workflow.completed","timestamp":"yesterday"}`, false, 400},
	}
	for _, tt := range refused {
		if code := post(tt.body, tt.chunked); code != tt.want {
			t.Fatalf("%s: status %d, want %d", tt.name, code, tt.want)
		}
		if n := store.Len(); n != 0 {
			t.Fatalf("%s: %d keys in the store, want none", tt.name, n)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("handlers ran %d times for refused bodies", n)
	}

	steps := []struct {
		name string
		body string
		want int
		keys int
	}{
		{"unknown type", eventBody("evt_r", "user.login", `{}`), 200, 1},
		{"unknown type, duplicate", eventBody("evt_r", "user.login", `{}`), 200, 1},
	}
	for _, s := range steps {
		if code := post(s.body, false); code != s.want || store.Len() != s.keys {
			t.Fatalf("%s: status %d with %d keys, want %d with %d", s.name, code, store.Len(), s.want, s.keys)
		}
	}
	if !strings.Contains(logs.String(), "unhandled event type") {
		t.Errorf("unknown type not logged:\n%s", logs.String())
	}
	for _, s := range []struct {
		name, id, typ, data string
		want                int
	}{
		{"data does not decode", "evt_d", "workflow.completed", `{"workflowId":42}`, 400},
		{"retry of it", "evt_d", "workflow.completed", `{"workflowId":42}`, 400},
		{"handler error", "evt_f", "workflow.failed", `{}`, 500},
		{"retry of it", "evt_f", "workflow.failed", `{}`, 500},
	} {
		if code := postTo(t, srv, signedRequest(t, eventBody(s.id, s.typ, s.data), s.id, guideTime, secret1)); code != s.want {
			t.Fatalf("%s: status %d, want %d", s.name, code, s.want)
		}
	}
	if n := store.Len(); n != 1 {
		t.Errorf("%d keys after failed deliveries, want 1 (failures release theirs)", n)
	}
	if n := ran.Load(); n != 2 {
		t.Errorf("the failing handler ran %d times, want 2 (each retry)", n)
	}
}

// TestRouterBackgroundHandlerGoexit: a background handler that ends its
// goroutine with runtime.Goexit fails its event (OnFailure, Health) and
// does not take a worker with it: later events are still processed.
func TestRouterBackgroundHandlerGoexit(t *testing.T) {
	t.Parallel()
	failures := make(chan string, 1)
	r := newRouter(t, RouterOptions{
		Background: &BackgroundOptions{Workers: 1},
		OnFailure:  func(e *Event, err error) { failures <- e.ID },
	})
	processed := make(chan string, 1)
	r.On("x.exit", func(context.Context, *Event) error { runtime.Goexit(); return nil })
	r.On("x.ok", func(_ context.Context, e *Event) error { processed <- e.ID; return nil })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	health := NewHealth(nil)
	for _, c := range []struct{ id, typ string }{{"evt_1", "x.exit"}, {"evt_2", "x.ok"}} {
		if res := routed(t, health.Middleware(r), c.id, c.typ, `{}`); res.Code != http.StatusAccepted {
			t.Fatalf("%s: status %d", c.id, res.Code)
		}
	}
	for _, want := range []struct {
		ch chan string
		id string
	}{{failures, "evt_1"}, {processed, "evt_2"}} {
		select {
		case id := <-want.ch:
			if id != want.id {
				t.Fatalf("got %s, want %s", id, want.id)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s was neither processed nor reported failed", want.id)
		}
	}
	// The outcome is counted just after the handler returns.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s := health.Stats()
		if s.Processed == 1 && s.Failed == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 1 processed, 1 failed", s)
		}
	}
}
