package dashboard

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/httppanic"
	"github.com/noa-server/webhook/internal/tenancy"
	"github.com/noa-server/webhook/store"
)

// Defaults of Config.
const (
	// DefaultPageSize is how many webhooks or deliveries a page lists.
	DefaultPageSize = 50
	// DefaultChartSample is how many of a webhook's newest deliveries its
	// chart counts.
	DefaultChartSample = 500
	// DefaultSendTimeout bounds how long a test or retry waits for its
	// attempt before the page is shown without it.
	DefaultSendTimeout = 45 * time.Second
	// DefaultRotationGrace is how long the previous secret keeps signing
	// after a rotation from the dashboard.
	DefaultRotationGrace = 24 * time.Hour
)

// ErrConfig reports a Config that New cannot serve. The message names the
// field.
var ErrConfig = errors.New("dashboard: invalid config")

// Config holds what the dashboard shows and how.
type Config struct {
	// Registry reads and changes the webhooks. Required.
	Registry *webhook.Registry
	// Dispatcher sends test events and retries. Required; it must be
	// started for those actions to work (they answer 503 otherwise).
	Dispatcher *webhook.Dispatcher
	// Store is the store the Registry and Dispatcher use; the delivery pages
	// read it. Required.
	Store store.Store
	// Tenant returns the tenant that owns r; it is the same function the
	// management API takes (api.Config.Tenant). An error, an empty tenant
	// or one no webhook can belong to (not UTF-8, or with a NUL byte)
	// refuses the request with 401; the error's text is never shown.
	// Required.
	Tenant func(r *http.Request) (string, error)
	// Challenge is the WWW-Authenticate header of a 401, for example
	// `Basic realm="webhooks"` to have a browser ask its user for the
	// credentials Tenant reads (with r.BasicAuth). Defaults to none.
	Challenge string
	// Prefix is the path the dashboard is mounted at, without a trailing
	// slash ("/dashboard"). Every link and form starts with it. Defaults to
	// "" (the root).
	Prefix string
	// PageSize is how many webhooks or deliveries a page lists, 1 to
	// store.MaxPageLimit. Defaults to DefaultPageSize.
	PageSize int
	// ChartSample is how many of a webhook's newest deliveries its chart
	// counts, 1 to store.MaxPageLimit. Defaults to DefaultChartSample.
	ChartSample int
	// SendTimeout bounds how long a test or retry waits for its attempt;
	// the attempt still completes and is logged. Defaults to
	// DefaultSendTimeout.
	SendTimeout time.Duration
	// RotationGrace is how long the previous secret keeps signing after a
	// rotation. Defaults to DefaultRotationGrace; negative drops every
	// previous secret at once, including one still in an earlier
	// rotation's grace period (Registry.RotateSecret with grace 0). With
	// a grace period, a rotation is refused with a 409 page while the
	// webhook has the Registry's most previous secrets in their grace
	// period (webhook.RegistryOptions.MaxPreviousSecrets).
	RotationGrace time.Duration
	// Now is the clock of the chart. Defaults to time.Now.
	Now func() time.Time
	// Logger receives server faults (the 500s), a panic among them (of a
	// page, of Tenant or of Store), with its stack: the browser gets the
	// error page. Defaults to silence.
	Logger *slog.Logger
}

// Security headers of every answer.
const (
	// contentSecurityPolicy allows the embedded style sheet and nothing
	// else: no script, no frame, no plugin, forms only to this origin.
	contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// handler serves the dashboard.
type handler struct {
	reg         *webhook.Registry
	disp        *webhook.Dispatcher
	st          store.Store
	tenant      func(*http.Request) (string, error)
	challenge   string
	prefix      string
	pageSize    int
	chartSample int
	sendTimeout time.Duration
	grace       time.Duration
	now         func() time.Time
	log         *slog.Logger
	pages       map[string]*template.Template
	mux         *http.ServeMux
}

// New returns the dashboard's http.Handler. It serves the paths listed in
// the package documentation under cfg.Prefix. It fails with ErrConfig when a
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
		return nil, fmt.Errorf("%w: Config.%s required", ErrConfig, strings.Join(missing, ", Config."))
	}
	if p := cfg.Prefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || path.Clean(p) != p ||
		strings.ContainsAny(p, "{}?#% \"'<>") || strings.ContainsFunc(p, unicode.IsControl)) {
		return nil, fmt.Errorf("%w: Config.Prefix must be a clean path that starts with / and does not end with one, like \"/dashboard\"", ErrConfig)
	}
	if cfg.PageSize < 0 || cfg.PageSize > store.MaxPageLimit {
		return nil, fmt.Errorf("%w: Config.PageSize must be from 1 to %d", ErrConfig, store.MaxPageLimit)
	}
	if cfg.ChartSample < 0 || cfg.ChartSample > store.MaxPageLimit {
		return nil, fmt.Errorf("%w: Config.ChartSample must be from 1 to %d", ErrConfig, store.MaxPageLimit)
	}
	if cfg.SendTimeout < 0 {
		return nil, fmt.Errorf("%w: Config.SendTimeout must not be negative", ErrConfig)
	}
	h := &handler{
		reg:         cfg.Registry,
		disp:        cfg.Dispatcher,
		st:          cfg.Store,
		tenant:      cfg.Tenant,
		challenge:   cfg.Challenge,
		prefix:      cfg.Prefix,
		pageSize:    cmpOr(cfg.PageSize, DefaultPageSize),
		chartSample: cmpOr(cfg.ChartSample, DefaultChartSample),
		sendTimeout: cmpOr(cfg.SendTimeout, DefaultSendTimeout),
		grace:       cmpOr(cfg.RotationGrace, DefaultRotationGrace),
		now:         cfg.Now,
		log:         cfg.Logger,
		mux:         http.NewServeMux(),
	}
	if cfg.RotationGrace < 0 {
		h.grace = 0
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h.pages = pages

	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	p := h.prefix
	h.mux.Handle("GET "+p+"/static/", http.StripPrefix(p+"/static/", h.staticFiles(http.FileServerFS(static))))
	h.mux.Handle("GET "+p+"/{$}", h.page(h.webhooksPage))
	h.mux.Handle("GET "+p+"/webhooks/{id}", h.page(h.webhookPage))
	h.mux.Handle("GET "+p+"/webhooks/{id}/deliveries/{deliveryId}", h.page(h.deliveryPage))
	h.mux.Handle("POST "+p+"/webhooks/{id}/test", h.action(h.sendTest))
	h.mux.Handle("POST "+p+"/webhooks/{id}/enable", h.action(h.enable))
	h.mux.Handle("POST "+p+"/webhooks/{id}/disable", h.action(h.disable))
	h.mux.Handle("POST "+p+"/webhooks/{id}/rotate-secret", h.action(h.rotateSecret))
	h.mux.Handle("POST "+p+"/webhooks/{id}/deliveries/{deliveryId}/retry", h.action(h.retry))
	if p != "" {
		// Mounted with mux.Handle(prefix+"/", h), the bare prefix is
		// redirected by the host's mux; answer it here too when mounted
		// at the root of another handler.
		h.mux.Handle("GET "+p, http.RedirectHandler(p+"/", http.StatusMovedPermanently))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, errNoPage)
	})
	return h, nil
}

// cmpOr returns v, or def when v is zero.
func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ServeHTTP sets the security headers of every answer and routes r.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// Nothing to other sites, but a real Origin on the dashboard's own
	// forms: with no-referrer a browser sends "Origin: null", which
	// CrossOriginProtection refuses wherever the browser sends no
	// Sec-Fetch-Site (plain http on a host name, older browsers).
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	defer h.recoverPanic(w, r)
	h.mux.ServeHTTP(w, r)
}

// recoverPanic answers a panic of a page (or of the host's Tenant function
// or store) with the error page and logs it with its stack, instead of
// letting net/http drop the connection. http.ErrAbortHandler, a deliberate
// abort, goes on up.
func (h *handler) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	httppanic.Log(h.log, r, "dashboard: panic", v)
	h.fail(w, r, errInternal)
}

// staticFiles serves the embedded assets, cacheable for a short while,
// without directory listings.
func (h *handler) staticFiles(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			h.fail(w, r, errNoPage)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// pageFunc serves one page or action for tenant. It writes nothing when it
// returns an error.
type pageFunc func(w http.ResponseWriter, r *http.Request, tenant string) error

// page wraps a GET page: the tenant is resolved and errors become pages.
func (h *handler) page(fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := h.tenant(r)
		if err != nil || !tenancy.Usable(tenant) {
			if h.challenge != "" {
				w.Header().Set("WWW-Authenticate", h.challenge)
			}
			h.fail(w, r, errUnauthorized)
			return
		}
		if err := fn(w, r, tenant); err != nil {
			h.fail(w, r, err)
		}
	})
}

// action wraps a POST action: cross-origin browser requests are refused
// before the tenant is even asked, then it is served like a page.
func (h *handler) action(fn pageFunc) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, errCrossOrigin)
	}))
	return cop.Handler(h.page(func(w http.ResponseWriter, r *http.Request, tenant string) error {
		// Forms carry no body the dashboard reads; bound it anyway.
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		return fn(w, r, tenant)
	}))
}

// pageError is a failure shown to the user as a page.
type pageError struct {
	status  int
	title   string
	message string
}

func (e *pageError) Error() string { return e.title + ": " + e.message }

var (
	errUnauthorized = &pageError{http.StatusUnauthorized, "Not signed in", "This request does not name a tenant the server accepts."}
	errCrossOrigin  = &pageError{http.StatusForbidden, "Cross-origin request refused", "Actions can only be taken from the dashboard's own pages."}
	errNoPage       = &pageError{http.StatusNotFound, "Not found", "There is no page here."}
	errNoWebhook    = &pageError{http.StatusNotFound, "Not found", "There is no webhook with this id."}
	errNoDelivery   = &pageError{http.StatusNotFound, "Not found", "There is no delivery with this id for this webhook."}
	errBadCursor    = &pageError{http.StatusBadRequest, "Bad request", "The page cursor is not one this dashboard wrote; start from the first page."}
	errBadStatus    = &pageError{http.StatusBadRequest, "Bad request", "The status filter must be pending, success or failed."}
	errNotRunning   = &pageError{http.StatusServiceUnavailable, "Unavailable", "The delivery engine is not running; try again later."}
	errInactive     = &pageError{http.StatusConflict, "Webhook disabled", "Enable the webhook before sending to it."}
	errDisabled     = &pageError{http.StatusConflict, "Webhook disabled", "The webhook was disabled meanwhile and the delivery failed with it, unsent; its page says why."}
	errPending      = &pageError{http.StatusConflict, "Already queued", "This delivery is pending: its next attempt is already scheduled."}
	errEnded        = &pageError{http.StatusServiceUnavailable, "Request ended", "The request ended before its page was ready; try again."}
	errBadForm      = &pageError{http.StatusBadRequest, "Bad request", "The form could not be read."}
	errChanged      = &pageError{http.StatusConflict, "Webhook changed", "The webhook changed since its page was loaded, perhaps rotated by this same form sent again: the secret was not rotated. Open the webhook's page again to rotate it."}
	errInternal     = &pageError{http.StatusInternalServerError, "Server error", "Something went wrong on the server; it has been logged."}
)

// errorPage is the data of error.html.
type errorPage struct {
	layout
	Message string
}

// fail answers err as an error page. Errors that are not a *pageError are
// logged and shown as a 500 without their text, unless the request's
// context ended: no fault of the server, shown as a 503.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	pe, ok := errors.AsType[*pageError](err)
	if !ok && r.Context().Err() != nil {
		// The client went away, or the host's deadline for the request
		// ended (its middleware), and the request's work stopped with it.
		// In the second case the browser is still there: answer it (a
		// client that left reads nothing, whatever is written).
		h.log.DebugContext(r.Context(), "dashboard: request ended before its answer",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		pe, ok = errEnded, true
	}
	if !ok {
		h.log.ErrorContext(r.Context(), "dashboard: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		pe = errInternal
	}
	h.render(w, r, pe.status, "error", errorPage{layout: h.layout(pe.title), Message: pe.message})
}

// layout is what every page template reads.
type layout struct {
	// Base is Config.Prefix: every link starts with it.
	Base  string
	Title string
	// Crumbs are the links of the breadcrumb bar, last one current.
	Crumbs []crumb
}

type crumb struct {
	Href  string
	Label string
}

func (h *handler) layout(title string, crumbs ...crumb) layout {
	return layout{Base: h.prefix, Title: title, Crumbs: crumbs}
}

// render writes page name with data. The page is rendered to a buffer
// first so a template fault becomes a clean 500.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		h.log.ErrorContext(r.Context(), "dashboard: render failed", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "dashboard: internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show live state, and one shows a secret: never cache them.
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"webhooks", "webhook", "delivery", "secret", "error"}

// parsePages parses every page with the layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: parse layout: %w", err)
	}
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}
