// Command sender is a host of the webhooks library: it serves the
// management API of the guide with bearer-token tenancy, keeps webhooks and
// deliveries in a bbolt file, and delivers events.
//
// Run it for local development, with a receiver on this machine:
//
//	go run ./examples/sender -tokens dev-token:acme -allow-insecure -retry-initial 2s -events-api
//
// then follow the guide with host http://127.0.0.1:8080 and token
// dev-token (replay-guide.sh does it with curl). Flags:
//
//	-addr            listen address (default 127.0.0.1:8080)
//	-db              bbolt file (default webhooks.db)
//	-tokens          comma-separated token:tenant pairs; required unless
//	                 SENDER_TOKENS holds them (which keeps the tokens out
//	                 of ps and of the shell's history)
//	-allow-insecure  accept http:// webhook URLs, deliver to loopback
//	                 addresses, and to any port (of any address the guard
//	                 allows); for local development only
//	-retry-initial   delay before the first retry (default 30s)
//	-events-api      serve POST /v1/events, which emits an event for the
//	                 caller's tenant
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/dashboard"
	"github.com/noa-server/webhook/store/boltstore"
)

// tokensEnv is the environment variable read when -tokens is not given.
const tokensEnv = "SENDER_TOKENS"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one ends the process at once
	// instead of waiting for the attempts in flight.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(1)
	}
}

// run serves the API until ctx ends, then shuts down in order: the HTTP
// server, the delivery loop (attempts in flight finish), the store. It
// writes "listening on http://ADDR" to stdout once it accepts connections.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sender", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	dbPath := fs.String("db", "webhooks.db", "bbolt database file")
	tokenList := fs.String("tokens", "", "comma-separated token:tenant pairs, e.g. tok1:acme,tok2:globex (required unless $"+tokensEnv+" holds them)")
	allowInsecure := fs.Bool("allow-insecure", false, "accept http:// URLs, deliver to loopback addresses, and to any port of any allowed address (local development only)")
	retryInitial := fs.Duration("retry-initial", webhook.DefaultInitialInterval, "delay before the first retry of a failed delivery")
	eventsAPI := fs.Bool("events-api", false, "serve POST /v1/events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	list, source := *tokenList, "-tokens"
	if list == "" {
		list, source = os.Getenv(tokensEnv), "$"+tokensEnv
	}
	tokens, err := parseTokens(list, source)
	if err != nil {
		return err
	}
	if *retryInitial <= 0 {
		return fmt.Errorf("-retry-initial must be positive, not %v", *retryInitial)
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))

	st, err := boltstore.Open(*dbPath, &boltstore.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("open %s: %w", *dbPath, err)
	}
	defer st.Close()

	cfg := &webhook.Config{Logger: log, Retry: webhook.RetryPolicy{InitialInterval: *retryInitial}}
	if *allowInsecure {
		cfg.AllowedRanges = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		cfg.AllowAnyPort = true
	}
	disp, err := webhook.New(st, cfg)
	if err != nil {
		return err
	}
	if err := disp.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), webhook.DefaultTimeout+5*time.Second)
		defer cancel()
		_ = disp.Stop(sctx)
	}()

	reg := webhook.NewRegistry(st, webhook.RegistryOptions{AllowHTTP: *allowInsecure})
	h, err := api.New(api.Config{
		Registry:     reg,
		Dispatcher:   disp,
		Store:        st,
		Tenant:       tokens.tenant,
		EnableEvents: *eventsAPI,
		Logger:       log,
	})
	if err != nil {
		return err
	}

	dash, err := dashboard.New(dashboard.Config{
		Registry:   reg,
		Dispatcher: disp,
		Store:      st,
		Tenant:     tokens.dashboardTenant,
		Challenge:  `Basic realm="webhooks dashboard"`,
		Prefix:     "/dashboard",
		Logger:     log,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", dash)
	mux.Handle("/", h)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// The test and retry routes wait for an attempt of up to 30 s.
		WriteTimeout: api.DefaultSendTimeout + 10*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if *allowInsecure {
		log.Warn("-allow-insecure: http:// URLs and loopback destinations are allowed; never use this in production")
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	// A test or retry call waits for its attempt, up to the attempt's
	// timeout: say why nothing seems to happen, and how to stop waiting.
	log.Info("shutting down: waiting for the requests and attempts in flight; a second signal ends the process at once")
	sctx, cancel := context.WithTimeout(context.Background(), api.DefaultSendTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// tokenTable maps SHA-256 digests of bearer tokens to tenants, so a lookup
// takes the same time whatever the token shares with a valid one.
type tokenTable map[[sha256.Size]byte]string

var errUnauthorized = errors.New("missing or unknown bearer token")

// parseTokens reads the token:tenant pairs of s; source (the flag or the
// variable that held s) names it in errors, which never show a token.
func parseTokens(s, source string) (tokenTable, error) {
	t := make(tokenTable)
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		token, tenant, ok := strings.Cut(pair, ":")
		if !ok || token == "" || tenant == "" || strings.ContainsAny(pair, " \t") {
			return nil, errors.New(source + ": a pair is not token:tenant (comma-separated, no spaces); its text is not shown, as it may hold a token")
		}
		key := sha256.Sum256([]byte(token))
		if prev, dup := t[key]; dup {
			return nil, fmt.Errorf("%s: a token is given twice (for %q and %q)", source, prev, tenant)
		}
		t[key] = tenant
	}
	if len(t) == 0 {
		return nil, errors.New("-tokens (or $" + tokensEnv + ") is required: comma-separated token:tenant pairs")
	}
	return t, nil
}

// tenant is the api.Config.Tenant function: the tenant of the request's
// bearer token.
func (t tokenTable) tenant(r *http.Request) (string, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", errUnauthorized
	}
	tenant, ok := t[sha256.Sum256([]byte(strings.TrimSpace(token)))]
	if !ok {
		return "", errUnauthorized
	}
	return tenant, nil
}

// dashboardTenant is the dashboard.Config.Tenant function: a bearer token
// as for the API, or the token as the password of HTTP Basic credentials,
// which a browser asks its user for.
func (t tokenTable) dashboardTenant(r *http.Request) (string, error) {
	if _, token, ok := r.BasicAuth(); ok {
		if tenant, ok := t[sha256.Sum256([]byte(token))]; ok {
			return tenant, nil
		}
		return "", errUnauthorized
	}
	return t.tenant(r)
}
