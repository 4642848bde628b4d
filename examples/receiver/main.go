// Command receiver is the Go counterpart of the guide's Express receiver: it
// accepts Noa Server webhooks on port 3001 at POST /webhooks/noa-server and
// serves its counters at GET /webhooks/metrics.
//
// Every request passes IP allowlist → health counters → signature and
// timestamp verification → idempotency → event router.
//
//	WEBHOOK_SECRET=whsec_… go run ./examples/receiver
//
// The secret comes only from the environment (a flag would show it in the
// process list); several secrets, separated by spaces, verify during a
// rotation.
// Every flag can also be set by the environment variable in its help text.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	webhook "github.com/noa-server/webhook"
	"github.com/noa-server/webhook/receiver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one ends the process at once
	// instead of waiting for the requests in flight.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, errorLine(err))
		os.Exit(1)
	}
}

// errorLine is err as the program reports it: prefixed with "receiver:",
// once (the receiver package's own errors already are).
func errorLine(err error) string {
	if msg := err.Error(); strings.HasPrefix(msg, "receiver: ") {
		return msg
	}
	return "receiver: " + err.Error()
}

type config struct {
	addr, path, metricsPath string
	secrets                 []string
	allow, trustedProxies   []string
	db                      string
	allowLegacy, background bool
	tolerance               time.Duration
}

func parseConfig(args []string, getenv func(string) string, errOut io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var envErr error // a variable set to what its flag would refuse
	envBool := func(name string) bool {
		v := getenv(name)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			envErr = errors.Join(envErr, fmt.Errorf("%s: invalid boolean %q", name, v))
		}
		return b
	}
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: receiver [flags]\n\n"+
			"WEBHOOK_SECRET (required) holds the webhook's secret (whsec_…); during a\n"+
			"rotation, several separated by spaces. It has no flag, so that it stays\n"+
			"out of the process list.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var c config
	var allow, trusted, tolerance string
	fs.StringVar(&c.addr, "addr", env("WEBHOOK_ADDR", ":3001"), "listen address ($WEBHOOK_ADDR)")
	fs.StringVar(&c.path, "path", env("WEBHOOK_PATH", "/webhooks/noa-server"), "webhook path ($WEBHOOK_PATH)")
	fs.StringVar(&c.metricsPath, "metrics-path", env("WEBHOOK_METRICS_PATH", "/webhooks/metrics"), "health counters path ($WEBHOOK_METRICS_PATH)")
	fs.StringVar(&allow, "allow", env("WEBHOOK_ALLOW", "0.0.0.0/0,::/0"), "comma-separated client ranges let in ($WEBHOOK_ALLOW); restrict to the sender's addresses in production")
	fs.StringVar(&trusted, "trusted-proxies", env("WEBHOOK_TRUSTED_PROXIES", ""), "comma-separated ranges of reverse proxies whose X-Forwarded-For is trusted ($WEBHOOK_TRUSTED_PROXIES)")
	fs.StringVar(&c.db, "idempotency-db", env("WEBHOOK_IDEMPOTENCY_DB", ""), "bbolt file remembering processed event ids across restarts; empty keeps them in memory ($WEBHOOK_IDEMPOTENCY_DB)")
	fs.BoolVar(&c.allowLegacy, "allow-legacy", envBool("WEBHOOK_ALLOW_LEGACY"), "accept requests signed only with X-Webhook-Signature (replayable; for senders that send nothing else) ($WEBHOOK_ALLOW_LEGACY)")
	fs.BoolVar(&c.background, "background", envBool("WEBHOOK_BACKGROUND"), "answer 202 at once and process in the background (lost on crash) ($WEBHOOK_BACKGROUND)")
	fs.StringVar(&tolerance, "tolerance", env("WEBHOOK_TOLERANCE", "5m"), "accepted clock difference of webhook-timestamp ($WEBHOOK_TOLERANCE)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if envErr != nil {
		return c, envErr
	}
	if err := checkPath("POST", c.path); err != nil {
		return c, fmt.Errorf("-path %w", err)
	}
	if err := checkPath("GET", c.metricsPath); err != nil {
		return c, fmt.Errorf("-metrics-path %w", err)
	}
	c.secrets = strings.Fields(getenv("WEBHOOK_SECRET"))
	if len(c.secrets) == 0 {
		return c, errors.New("WEBHOOK_SECRET is not set")
	}
	c.allow = splitList(allow)
	c.trustedProxies = splitList(trusted)
	d, err := time.ParseDuration(tolerance)
	if err != nil {
		return c, fmt.Errorf("-tolerance: %w", err)
	}
	c.tolerance = d
	return c, nil
}

// checkPath returns an error for a path that run's ServeMux would refuse
// with a panic, or would read as a host name: it must start with "/" and
// make a valid pattern after method.
func checkPath(method, path string) (err error) {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("%q: does not start with /", path)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%q: %v", path, r)
		}
	}()
	http.NewServeMux().Handle(method+" "+path, http.NotFoundHandler())
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// run serves until ctx ends. When ready is not nil it receives the listening
// address once the server accepts connections.
func run(ctx context.Context, args []string, getenv func(string) string, logOut io.Writer, ready chan<- string) error {
	c, err := parseConfig(args, getenv, logOut)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))

	var store receiver.IdempotencyStore = receiver.NewMemoryStore(receiver.MemoryStoreOptions{})
	if c.db != "" {
		bs, err := receiver.OpenBoltStore(c.db, receiver.BoltStoreOptions{})
		if err != nil {
			return err
		}
		defer bs.Close()
		store = bs
	}

	ropts := receiver.RouterOptions{Logger: log}
	if c.background {
		ropts.Background = &receiver.BackgroundOptions{}
		ropts.OnFailure = func(e *receiver.Event, err error) {
			// Park the event for replay; here it is only logged.
			log.Error("event not processed", slog.String("event_id", e.ID), slog.String("event", e.Type))
		}
	}
	router, err := receiver.NewRouter(ropts)
	if err != nil {
		return err
	}
	receiver.Handle(router, webhook.EventWorkflowCompleted,
		func(ctx context.Context, e *receiver.Event, d webhook.WorkflowCompletedData) error {
			log.InfoContext(ctx, "workflow completed", slog.String("event_id", e.ID),
				slog.String("workflow_id", d.WorkflowID), slog.String("status", d.Status), slog.Int64("duration_ms", d.Duration))
			return nil
		})
	receiver.Handle(router, webhook.EventAgentStatusChanged,
		func(ctx context.Context, e *receiver.Event, d webhook.AgentStatusChangedData) error {
			log.InfoContext(ctx, "agent status changed", slog.String("event_id", e.ID),
				slog.String("agent_id", d.AgentID), slog.String("from", d.PreviousStatus), slog.String("to", d.CurrentStatus))
			return nil
		})
	receiver.Handle(router, webhook.EventAgentTaskCompleted,
		func(ctx context.Context, e *receiver.Event, d webhook.AgentTaskCompletedData) error {
			log.InfoContext(ctx, "agent task completed", slog.String("event_id", e.ID),
				slog.String("agent_id", d.AgentID), slog.String("task_id", d.TaskID))
			return nil
		})

	allow, err := receiver.IPAllowlistWithOptions(receiver.IPAllowlistOptions{Allow: c.allow, TrustedProxies: c.trustedProxies, Logger: log})
	if err != nil {
		return err
	}
	verify, err := receiver.VerifyWithOptions(receiver.VerifyOptions{Secrets: c.secrets, AllowLegacy: c.allowLegacy, Tolerance: c.tolerance, Logger: log})
	if err != nil {
		return err
	}
	idem, err := receiver.IdempotencyWithOptions(receiver.IdempotencyOptions{Store: store, Logger: log})
	if err != nil {
		return err
	}
	health := receiver.NewHealth(log)

	mux := http.NewServeMux()
	mux.Handle("POST "+c.path, allow(health.Middleware(verify(idem(router)))))
	mux.Handle("GET "+c.metricsPath, allow(health.Handler()))

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if err := router.Start(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	log.Info("webhook server running", slog.String("addr", ln.Addr().String()), slog.String("path", c.path))
	if ready != nil {
		ready <- ln.Addr().String()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		_ = router.Stop(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: waiting for the requests in flight; a second signal ends the process at once")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-errc
	if serr := router.Stop(sctx); err == nil {
		err = serr
	}
	return err
}
