package api

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/httppanic"
	"github.com/noa-server/webhook/internal/tenancy"
	"github.com/noa-server/webhook/store"
)

// Defaults of Config.
const (
	// DefaultMaxBodyBytes caps a request body. It leaves room for an event
	// of webhook.DefaultMaxPayloadBytes in POST /v1/events.
	DefaultMaxBodyBytes = 512 << 10
	// DefaultSendTimeout bounds how long the test and retry routes wait for
	// their attempt: the dispatcher's 30-second attempt timeout plus time
	// to get a worker.
	DefaultSendTimeout = 45 * time.Second
	// DefaultPageLimit is the page size of a listing without ?limit.
	DefaultPageLimit = 50
	// MaxPageLimit is the largest ?limit a listing accepts.
	MaxPageLimit = 200
)

// ErrConfig reports a Config that New cannot serve. The message names the
// field.
var ErrConfig = errors.New("api: invalid config")

// Config holds what the API serves and how.
type Config struct {
	// Registry manages the webhooks. Required.
	Registry *webhook.Registry
	// Dispatcher sends test events and retries, and emits events for
	// POST /v1/events. Required. The test and retry routes need it
	// started (they answer 503 otherwise); events emitted while it is not
	// running are stored, and delivered once it, or another Dispatcher on
	// the same store, runs (a stopped Dispatcher does not start again).
	Dispatcher *webhook.Dispatcher
	// Store is the store the Registry and Dispatcher use; the delivery
	// routes read it. Required.
	Store store.Store
	// Tenant returns the tenant that owns r, for example from its bearer
	// token. An error, an empty tenant or one no store can hold (not
	// UTF-8, or with a NUL byte) refuses the request with 401; the error's
	// text is never shown to the client. Required.
	Tenant func(r *http.Request) (string, error)
	// Challenge is the WWW-Authenticate header of a 401. Defaults to
	// "Bearer".
	Challenge string
	// EnableEvents serves POST /v1/events, which emits an event to the
	// caller's own webhooks. Off by default: the host normally emits events
	// itself with Dispatcher.Emit.
	EnableEvents bool
	// MaxBodyBytes caps every request body; a larger one is answered 413.
	// Defaults to DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// SendTimeout bounds how long the test and retry routes wait for their
	// attempt before answering 504 (the attempt still completes and is
	// logged). Defaults to DefaultSendTimeout.
	SendTimeout time.Duration
	// Logger receives server faults (the 500s). Defaults to silence.
	Logger *slog.Logger
}

// handler serves the API. It holds no state besides its configuration.
type handler struct {
	reg         *webhook.Registry
	disp        *webhook.Dispatcher
	st          store.Store
	tenant      func(*http.Request) (string, error)
	challenge   string
	maxBody     int64
	sendTimeout time.Duration
	log         *slog.Logger
	openapi     []byte
	mux         *http.ServeMux
	// allow maps each route path to its Allow header.
	allow map[string]string
}

// route is one method and path pattern of the API.
type route struct {
	method string
	path   string
	// public routes are served without asking Config.Tenant.
	public bool
	serve  func(h *handler, w http.ResponseWriter, r *http.Request, tenant string) error
}

// routes lists every route the API serves, with POST /v1/events when
// events is set, in the order of the package documentation.
func routes(events bool) []route {
	rs := []route{
		{method: http.MethodPost, path: "/v1/webhooks", serve: (*handler).createWebhook},
		{method: http.MethodGet, path: "/v1/webhooks", serve: (*handler).listWebhooks},
		{method: http.MethodGet, path: "/v1/webhooks/{id}", serve: (*handler).getWebhook},
		{method: http.MethodPut, path: "/v1/webhooks/{id}", serve: (*handler).updateWebhook},
		{method: http.MethodDelete, path: "/v1/webhooks/{id}", serve: (*handler).deleteWebhook},
		{method: http.MethodPost, path: "/v1/webhooks/{id}/test", serve: (*handler).testWebhook},
		{method: http.MethodPost, path: "/v1/webhooks/{id}/rotate-secret", serve: (*handler).rotateSecret},
		{method: http.MethodGet, path: "/v1/webhooks/{id}/deliveries", serve: (*handler).listDeliveries},
		{method: http.MethodGet, path: "/v1/webhooks/{id}/deliveries/{deliveryId}", serve: (*handler).getDelivery},
		{method: http.MethodPost, path: "/v1/webhooks/{id}/deliveries/{deliveryId}/retry", serve: (*handler).retryDelivery},
		{method: http.MethodGet, path: "/v1/webhooks/openapi.json", public: true, serve: (*handler).serveOpenAPI},
	}
	if events {
		rs = append(rs, route{method: http.MethodPost, path: "/v1/events", serve: (*handler).emitEvent})
	}
	return rs
}

// New returns the API's http.Handler. It serves the paths listed in the
// package documentation, as they are, so a host mounts it with
// mux.Handle("/v1/", h) (or at its root). It fails with ErrConfig when a
// required field is missing or a setting is out of range.
func New(cfg Config) (http.Handler, error) {
	var missing []string
	if cfg.Registry == nil {
		missing = append(missing, "Registry")
	}
	if cfg.Dispatcher == nil {
		missing = append(missing, "Dispatcher")
	}
	if cfg.Store == nil {
		missing = append(missing, "Store")
	}
	if cfg.Tenant == nil {
		missing = append(missing, "Tenant")
	}
	if len(missing) > 0 {
		return nil, errors.Join(ErrConfig, errors.New("api: Config."+strings.Join(missing, ", Config.")+" required"))
	}
	if cfg.MaxBodyBytes < 0 || cfg.SendTimeout < 0 {
		return nil, errors.Join(ErrConfig, errors.New("api: Config.MaxBodyBytes and Config.SendTimeout must not be negative"))
	}
	h := &handler{
		reg:         cfg.Registry,
		disp:        cfg.Dispatcher,
		st:          cfg.Store,
		tenant:      cfg.Tenant,
		challenge:   cfg.Challenge,
		maxBody:     cfg.MaxBodyBytes,
		sendTimeout: cfg.SendTimeout,
		log:         cfg.Logger,
		mux:         http.NewServeMux(),
	}
	if h.challenge == "" {
		h.challenge = "Bearer"
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.sendTimeout == 0 {
		h.sendTimeout = DefaultSendTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	doc, err := openAPIDocument(cfg.EnableEvents)
	if err != nil {
		return nil, err
	}
	h.openapi = doc

	rs := routes(cfg.EnableEvents)
	allow := make(map[string][]string)
	for _, rt := range rs {
		h.mux.Handle(rt.method+" "+rt.path, h.wrap(rt))
		allow[rt.path] = append(allow[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allow[rt.path] = append(allow[rt.path], http.MethodHead)
		}
	}
	h.allow = make(map[string]string, len(allow))
	for path, methods := range allow {
		h.allow[path] = strings.Join(methods, ", ")
		// The other common methods answer 405 with Allow. They are
		// registered one by one rather than as a method-less pattern, which
		// would conflict with GET /v1/webhooks/{id} for the literal
		// /v1/webhooks/openapi.json.
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if !slices.Contains(methods, m) {
				h.mux.HandleFunc(m+" "+path, h.notAllowed)
			}
		}
	}
	h.mux.HandleFunc("/", h.notFound)
	return h, nil
}

// ServeHTTP routes r.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// notAllowed answers a method a route path is not served with.
func (h *handler) notAllowed(w http.ResponseWriter, r *http.Request) {
	_, pattern := h.mux.Handler(r)
	_, path, _ := strings.Cut(pattern, " ")
	h.methodNotAllowed(w, r, h.allow[path])
}

// methodNotAllowed answers 405 with allow. The message names the method,
// shortened: a method is any token the client sends.
func (h *handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	h.fail(w, r, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		shorten(r.Method)+" is not allowed here; allowed: "+allow))
}

// notFound answers a request no route matches: 405 when its path is a
// route's with a method outside the common ones (OPTIONS, TRACE, …), 404
// otherwise.
func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	probe := *r
	probe.Method = http.MethodGet
	if _, pattern := h.mux.Handler(&probe); pattern != "/" && pattern != "" {
		_, path, _ := strings.Cut(pattern, " ")
		if allow, ok := h.allow[path]; ok {
			h.methodNotAllowed(w, r, allow)
			return
		}
	}
	h.fail(w, r, errorf(http.StatusNotFound, CodeNotFound, "no such route"))
}

// wrap authenticates the request (unless the route is public), runs the
// route and answers its error.
func (h *handler) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer h.recoverPanic(w, r)
		var tenant string
		if !rt.public {
			t, err := h.tenant(r)
			if err != nil || !tenancy.Usable(t) {
				w.Header().Set("WWW-Authenticate", h.challenge)
				h.fail(w, r, errorf(http.StatusUnauthorized, CodeUnauthorized, "missing or invalid credentials"))
				return
			}
			tenant = t
		}
		if err := rt.serve(h, w, r, tenant); err != nil {
			h.fail(w, r, err)
		}
	})
}

// recoverPanic answers a panic of a route (or of the host's Tenant
// function) with a 500 in the envelope and logs it with its stack, instead
// of dropping the connection.
func (h *handler) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	httppanic.Log(h.log, r, "webhook api: panic", v)
	h.fail(w, r, errorf(http.StatusInternalServerError, CodeInternal, "internal error; the server's log has the details"))
}
