// Command quickstart shows both sides of the library in one process, with no
// flags and no services:
//
//	go run ./examples/quickstart
//
// It starts a receiver (package receiver's middleware: health counters →
// signature verification → idempotency → typed event router) on a free
// loopback port, a Dispatcher on a bbolt file in a temporary directory,
// registers one webhook, emits the guide's example events and a few more,
// waits for every delivery, and prints what the store recorded next to what
// the receiver verified. The receiver fails the system.alert event once, so
// its delivery shows a retry.
//
// It exits 0 only when every delivery succeeded and was verified.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/receiver"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
)

// tenant owns the webhook and the events. A single-tenant host uses one
// constant like this.
const tenant = "acme"

// deliveryTimeout bounds the wait for every delivery to finish.
const deliveryTimeout = 20 * time.Second

func main() {
	if err := checkArgs(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A reader that goes away (… | head) makes writes fail instead of
	// killing the program before run removes its temporary directory.
	signal.Ignore(syscall.SIGPIPE)
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

const usage = `Usage: go run ./examples/quickstart

Starts a receiver and a dispatcher on a bbolt file in one process, emits the
guide's example events, and prints what the store recorded next to what the
receiver verified. It takes no flags, and exits 0 only when every delivery
succeeded and was verified.
`

// errUsage is checkArgs' error for flags or arguments, which the
// quickstart has none of.
var errUsage = errors.New("the quickstart takes no flags or arguments")

// checkArgs answers -h with the usage (flag.ErrHelp) and refuses any other
// flag or argument (errUsage), after writing why to out, rather than
// ignore it and run the demo.
func checkArgs(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { fmt.Fprint(out, usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err) // flag has written it, with the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(out, "unexpected argument %q\n%s", fs.Arg(0), usage)
		return fmt.Errorf("%w: %q", errUsage, fs.Arg(0))
	}
	return nil
}

// run is the whole demo: the receiver's system.alert handler fails once.
func run(ctx context.Context, stdout, stderr io.Writer) error {
	return runWith(ctx, stdout, stderr, 1)
}

// runWith runs the demo with the receiver's system.alert handler failing
// alertFailures times before it succeeds (the tests use more failures than
// the retry budget to check the failure path).
func runWith(ctx context.Context, stdout, stderr io.Writer, alertFailures int) (err error) {
	// Cancelled (Ctrl-C), say so, rather than quote whichever call the
	// cancellation happened to interrupt ("boltstore: context canceled").
	defer func() {
		if err != nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			err = context.Cause(ctx)
		}
	}()
	// 1. A store: a bbolt file, removed at exit.
	dir, err := os.MkdirTemp("", "webhook-quickstart-")
	if err != nil {
		return fmt.Errorf("store directory in %s (set TMPDIR to a writable directory): %w", os.TempDir(), err)
	}
	defer os.RemoveAll(dir)
	st, err := boltstore.Open(filepath.Join(dir, "webhooks.db"), nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()

	// 2. The receiver's address: a free loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())

	// 3. Register the webhook. The receiver is plain http on loopback, so
	// the registry must accept http:// URLs (production keeps https only).
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{AllowHTTP: true})
	hook, err := reg.Create(ctx, tenant, webhook.WebhookInput{
		URL:         "http://" + addr.String() + "/webhooks/noa-server",
		Events:      []string{"workflow.*", "agent.*", "swarm.*", "system.alert", "user.registered"},
		Description: "quickstart receiver",
	})
	if err != nil {
		ln.Close()
		return err
	}
	secret := hook.Secrets[0].Value // shown once: the receiver's owner keeps it

	// 4. Serve the receiver with that secret.
	rec := newRecorder()
	health := receiver.NewHealth(nil)
	handler, err := newReceiver(secret, health, rec, alertFailures)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, srv.Shutdown(shutCtx))
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}()

	// 5. The dispatcher. Its SSRF guard refuses loopback addresses and every
	// port but 80 and 443; open it for exactly the receiver's address and
	// port, nothing else.
	progress := &progressHooks{changed: make(chan struct{}, 1)}
	d, err := webhook.New(st, &webhook.Config{
		AllowedRanges: []netip.Prefix{netip.PrefixFrom(addr.Addr(), addr.Addr().BitLen())},
		AllowedPorts:  []int{int(addr.Port())},
		// Retry after about 250 ms instead of 30 s (at most 3 attempts),
		// so the retry shows within the demo; retries coming due are found
		// by polling.
		Retry:        webhook.RetryPolicy{InitialInterval: 250 * time.Millisecond, MaxAttempts: 3},
		PollInterval: 100 * time.Millisecond,
		Hooks:        progress,
	})
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	defer func() {
		// Stop waits for the attempts in flight to be recorded.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, d.Stop(stopCtx))
	}()

	// 6. Emit. Each Emit stores one delivery per matching webhook before
	// it returns; the running dispatcher sends it at once.
	var emitted []string // delivery ids, in emit order
	for _, ev := range exampleEvents() {
		res, err := d.Emit(ctx, ev)
		if err != nil {
			return fmt.Errorf("emit %s: %w", ev.Type, err)
		}
		emitted = append(emitted, res.DeliveryIDs...)
	}

	// 7. Wait for every delivery to succeed or fail, with a live count.
	start := time.Now()
	waitCtx, cancel := context.WithTimeoutCause(ctx, deliveryTimeout,
		fmt.Errorf("deliveries not finished within %v", deliveryTimeout))
	defer cancel()
	for {
		ok, failed, retries := progress.succeeded.Load(), progress.failed.Load(), progress.retries.Load()
		fmt.Fprintf(stderr, "\r  delivered %d/%d, %d retried, %d failed", ok, len(emitted), retries, failed)
		if ok+failed >= int64(len(emitted)) {
			fmt.Fprintf(stderr, " in %v\n", time.Since(start).Round(time.Millisecond))
			break
		}
		select {
		case <-progress.changed:
		case <-waitCtx.Done():
			fmt.Fprintln(stderr)
			return context.Cause(waitCtx)
		}
	}

	// 8. Read the deliveries back from the store and compare them with what
	// the receiver saw.
	return report(ctx, stdout, st, emitted, rec, health)
}

// newReceiver is what a receiving app writes: typed handlers on a Router,
// behind the middleware chain health → Verify → Idempotency.
func newReceiver(secret string, health *receiver.Health, rec *recorder, alertFailures int) (http.Handler, error) {
	router, err := receiver.NewRouter(receiver.RouterOptions{})
	if err != nil {
		return nil, err
	}
	receiver.Handle(router, webhook.EventWorkflowCompleted,
		func(ctx context.Context, e *receiver.Event, d webhook.WorkflowCompletedData) error {
			rec.handled(e.ID, fmt.Sprintf("%s %s in %v", d.WorkflowID, d.Status, ms(d.Duration)))
			return nil
		})
	receiver.Handle(router, webhook.EventAgentStatusChanged,
		func(ctx context.Context, e *receiver.Event, d webhook.AgentStatusChangedData) error {
			rec.handled(e.ID, fmt.Sprintf("%s %s → %s", d.AgentID, d.PreviousStatus, d.CurrentStatus))
			return nil
		})
	receiver.Handle(router, webhook.EventAgentTaskCompleted,
		func(ctx context.Context, e *receiver.Event, d webhook.AgentTaskCompletedData) error {
			rec.handled(e.ID, fmt.Sprintf("%s %s in %v", d.TaskID, d.Status, ms(d.Duration)))
			return nil
		})
	var alerts atomic.Int64
	router.On(webhook.EventSystemAlert, func(ctx context.Context, e *receiver.Event) error {
		if alerts.Add(1) <= int64(alertFailures) {
			// An error answers 500: the sender retries, and Idempotency
			// releases the event id so the retry is processed.
			return errors.New("pager unavailable")
		}
		rec.handled(e.ID, fmt.Sprintf("paged on-call (try %d)", alerts.Load()))
		return nil
	})
	router.On("*", func(ctx context.Context, e *receiver.Event) error {
		rec.handled(e.ID, `logged by the "*" route`)
		return nil
	})

	idem := receiver.NewMemoryStore(receiver.MemoryStoreOptions{})
	chain := health.Middleware(
		receiver.Verify(secret)(
			rec.inspect(secret)( // demo only: records what arrived
				receiver.Idempotency(idem)(
					router))))

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/noa-server", chain)
	mux.Handle("GET /webhooks/metrics", health.Handler())
	return mux, nil
}

// exampleEvents are the guide's three example payloads, with its data, and
// four more events of the catalog.
func exampleEvents() []webhook.Event {
	at := func(h, m, s int) time.Time { return time.Date(2025, 10, 22, h, m, s, 0, time.UTC) }
	return []webhook.Event{
		{Type: webhook.EventWorkflowCompleted, Tenant: tenant, RequestID: "req_12345",
			Data: webhook.WorkflowCompletedData{
				WorkflowID: "wf_789", ExecutionID: "exec_abc", Name: "Data Processing Pipeline",
				Status: "success", Duration: 45000,
				StartedAt: at(9, 59, 15), CompletedAt: at(10, 0, 0),
				Result: json.RawMessage(`{"recordsProcessed":1000,"outputFile":"/data/output.json"}`),
			}},
		{Type: webhook.EventAgentStatusChanged, Tenant: tenant,
			Data: webhook.AgentStatusChangedData{
				AgentID: "ag_xyz", Name: "Backend Developer", PreviousStatus: "idle",
				CurrentStatus: "busy", TaskID: "task_123", SwarmID: "swarm_789",
			}},
		{Type: webhook.EventAgentTaskCompleted, Tenant: tenant,
			Data: webhook.AgentTaskCompletedData{
				AgentID: "ag_xyz", TaskID: "task_123", Type: "code_generation",
				Status: "completed", Duration: 30000,
				Result: json.RawMessage(`{"filesCreated":["/src/api/users.ts","/src/api/auth.ts"],"linesOfCode":450}`),
			}},
		{Type: webhook.EventWorkflowFailed, Tenant: tenant,
			Data: map[string]any{"workflowId": "wf_790", "executionId": "exec_abd", "error": "step 3 timed out"}},
		{Type: webhook.EventSwarmCreated, Tenant: tenant,
			Data: map[string]any{"swarmId": "swarm_789", "name": "API Team", "agents": 3}},
		{Type: webhook.EventSystemAlert, Tenant: tenant,
			Data: map[string]any{"severity": "warning", "message": "queue depth above 1000"}},
		{Type: webhook.EventUserRegistered, Tenant: tenant,
			Data: map[string]any{"userId": "usr_42", "email": "ada@example.com"}},
	}
}

// ms turns the guide's millisecond durations into a time.Duration.
func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// progressHooks counts finished deliveries for the progress line. Hooks run
// on delivery goroutines, so they only bump counters and signal.
type progressHooks struct {
	webhook.NopHooks
	succeeded, failed, retries atomic.Int64
	changed                    chan struct{}
}

func (p *progressHooks) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *progressHooks) AttemptFinished(_ context.Context, info webhook.AttemptInfo) {
	// Failed, and scheduled again by the retry policy: what Stats.Retried
	// counts. An attempt cut short by Stop is due again too, but it is no
	// retry: it spends none of the budget.
	if info.Outcome == store.StatusPending && info.ErrorClass != store.ErrorCanceled {
		p.retries.Add(1)
		p.signal()
	}
}

func (p *progressHooks) DeliverySucceeded(context.Context, *webhook.Delivery) {
	p.succeeded.Add(1)
	p.signal()
}

func (p *progressHooks) DeliveryFailed(context.Context, *webhook.Delivery, error) {
	p.failed.Add(1)
	p.signal()
}
