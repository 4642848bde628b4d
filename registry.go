package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/noa-server/webhook/internal/redact"
	"github.com/noa-server/webhook/store"
)

// Registry limits and defaults.
const (
	// DefaultMaxDescription is the default cap on a description, in bytes.
	DefaultMaxDescription = 500
	// DefaultMaxEvents is the default cap on a webhook's subscriptions.
	DefaultMaxEvents = 100
	// DefaultRotationGrace is how long a previous secret keeps signing after
	// RotateSecret when the grace given is negative.
	DefaultRotationGrace = 24 * time.Hour
	// DefaultMaxPreviousSecrets is the default cap on a webhook's previous
	// secrets still in their grace period (see
	// RegistryOptions.MaxPreviousSecrets): with the current secret, six
	// signatures at most in webhook-signature.
	DefaultMaxPreviousSecrets = 5
	// DefaultMaxWebhooks is the default cap on a tenant's webhooks (see
	// RegistryOptions.MaxWebhooks).
	DefaultMaxWebhooks = 100
	// MaxURLLength is the longest webhook URL accepted, in bytes.
	MaxURLLength = 2048
	// MaxHeaders caps a webhook's custom headers.
	MaxHeaders = 20
	// MaxHeaderValueLength caps a custom header value, in bytes.
	MaxHeaderValueLength = 1024
	// MinSecretLength is the shortest free-form secret accepted, in bytes.
	MinSecretLength = 16
	// MaxSecretLength is the longest free-form secret accepted, in bytes.
	MaxSecretLength = 256
)

// ErrNotFound reports a webhook that does not exist or belongs to another
// tenant; the two cases are indistinguishable. It is store.ErrNotFound, so
// errors.Is matches either name.
var ErrNotFound = store.ErrNotFound

// ErrValidation is matched (errors.Is) by every *ValidationError.
var ErrValidation = errors.New("webhook: invalid input")

// ValidationError reports one invalid input field. Its message never holds a
// secret.
type ValidationError struct {
	// Field names the input field, as in the API's JSON ("url", "events[2]",
	// "headers.X-Foo").
	Field string
	// Message says what is wrong, in lowercase.
	Message string
}

// Error names the field and says what is wrong with it.
func (e *ValidationError) Error() string {
	return "webhook: invalid " + e.Field + ": " + e.Message
}

// Is reports whether target is ErrValidation.
func (e *ValidationError) Is(target error) bool { return target == ErrValidation }

// ErrRotationLimit is matched (errors.Is) by every *RotationLimitError.
var ErrRotationLimit = errors.New("webhook: too many previous secrets in their grace period")

// RotationLimitError reports a rotation with a grace period refused
// because the webhook already has Limit previous secrets in their grace
// period (RegistryOptions.MaxPreviousSecrets). Nothing was changed. A
// rotation with no grace period (a revocation) is never refused, and one
// with a grace period is accepted again from NextExpiry on.
type RotationLimitError struct {
	// Limit is the cap that was reached.
	Limit int
	// NextExpiry is when the first of the previous secrets stops signing,
	// freeing a place.
	NextExpiry time.Time
}

// Error says how many previous secrets still sign and when the first
// stops. It holds no secret.
func (e *RotationLimitError) Error() string {
	return fmt.Sprintf("webhook: rotation refused: %d previous secrets are in their grace period, the most allowed; the first expires at %s",
		e.Limit, e.NextExpiry.UTC().Format(time.RFC3339))
}

// Is reports whether target is ErrRotationLimit.
func (e *RotationLimitError) Is(target error) bool { return target == ErrRotationLimit }

// ErrWebhookLimit is matched (errors.Is) by every *WebhookLimitError.
var ErrWebhookLimit = errors.New("webhook: the tenant has the most webhooks allowed")

// WebhookLimitError reports a Create refused because the tenant already
// has Limit webhooks (RegistryOptions.MaxWebhooks). Nothing was stored; a
// Delete frees a place.
type WebhookLimitError struct {
	// Limit is the cap that was reached.
	Limit int
}

// Error says what the cap is.
func (e *WebhookLimitError) Error() string {
	return fmt.Sprintf("webhook: create refused: the tenant has %d webhooks, the most allowed", e.Limit)
}

// Is reports whether target is ErrWebhookLimit.
func (e *WebhookLimitError) Is(target error) bool { return target == ErrWebhookLimit }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// RegistryOptions tunes a Registry. The zero value is the safe default.
type RegistryOptions struct {
	// Catalog decides which event types and patterns are valid. Defaults to
	// NewCatalog().
	Catalog *Catalog
	// AllowHTTP accepts http:// URLs. Defaults to false: https only.
	AllowHTTP bool
	// Now is the clock of rotations and of CreatedAt and UpdatedAt.
	// Defaults to time.Now.
	Now func() time.Time
	// Rand is the source of ids and secrets. Defaults to crypto/rand.
	Rand io.Reader
	// MaxDescription caps a description in bytes. Defaults to
	// DefaultMaxDescription.
	MaxDescription int
	// MaxEvents caps a webhook's subscriptions. Defaults to DefaultMaxEvents.
	MaxEvents int
	// MaxPreviousSecrets caps how many previous secrets of a webhook may be
	// in their grace period at once. Each secret that signs adds an entry
	// of 48 bytes to the webhook-signature header of every attempt, and an
	// HMAC of the body to its signing, so rotations in quick succession
	// must not pile them up: RotateSecret with a grace period refuses, with
	// a *RotationLimitError, to go beyond the cap, rather than cut short a
	// grace period a receiver was promised. Defaults to
	// DefaultMaxPreviousSecrets.
	MaxPreviousSecrets int
	// MaxWebhooks caps how many webhooks one tenant may have: Create
	// refuses, with a *WebhookLimitError, to go beyond it. Each event a
	// tenant emits is stored and sent once per matching webhook, so the cap
	// bounds what one of its events costs. The check is atomic on a store
	// that implements store.CappedCreator (the three of this module); on
	// another, concurrent creates may overshoot it. Defaults to
	// DefaultMaxWebhooks; negative for no cap.
	MaxWebhooks int
}

// Registry manages webhooks on behalf of tenants: it validates input,
// generates ids and secrets, and never lets one tenant see or change another
// tenant's webhooks. It is safe for concurrent use when its Store is. The
// zero value is not usable; call NewRegistry.
type Registry struct {
	st   store.Store
	opts RegistryOptions
}

// NewRegistry returns a Registry over st. A nil st is a programmer error:
// NewRegistry panics with "webhook: NewRegistry: nil store" at once, rather
// than let every later call fail, as [New] refuses a nil store.
func NewRegistry(st store.Store, opts RegistryOptions) *Registry {
	if st == nil {
		panic("webhook: NewRegistry: nil store")
	}
	if opts.Catalog == nil {
		opts.Catalog = NewCatalog()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.MaxDescription <= 0 {
		opts.MaxDescription = DefaultMaxDescription
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.MaxPreviousSecrets <= 0 {
		opts.MaxPreviousSecrets = DefaultMaxPreviousSecrets
	}
	if opts.MaxWebhooks == 0 {
		opts.MaxWebhooks = DefaultMaxWebhooks
	}
	return &Registry{st: st, opts: opts}
}

// WebhookInput is a new webhook.
type WebhookInput struct {
	// URL is the absolute destination: https (http only with AllowHTTP),
	// an ASCII host (an internationalized domain name in its xn-- form), a
	// port from 1 to 65535 if any, no user info, no fragment, no space in
	// the query (percent-encode it), at most MaxURLLength bytes.
	URL string
	// Events are event types or patterns ("agent.*", "*"); at least one,
	// at most RegistryOptions.MaxEvents. Duplicates are dropped, keeping the
	// first.
	Events []string
	// Description is free text, at most RegistryOptions.MaxDescription
	// bytes of UTF-8 without NUL characters.
	Description string
	// Active defaults to true when nil.
	Active *bool
	// Secret is the signing secret. Empty means generate one: "whsec_" +
	// base64 of 32 random bytes. A supplied secret is either "whsec_" + std
	// base64 of 24 to 64 bytes, or a free-form string of MinSecretLength to
	// MaxSecretLength bytes of UTF-8 without spaces or control characters
	// that does not start with "v1," (a pasted signature).
	Secret string
	// Headers are custom headers sent with every delivery; at most
	// MaxHeaders. Names must be valid tokens and not headers the library
	// sets (X-Webhook-*, Webhook-*, Content-Type, Content-Length,
	// Content-Encoding, Host, User-Agent, Expect, hop-by-hop headers), nor
	// one of those spelt with '_' for '-' (Webhook_Signature), which CGI
	// and WSGI receivers read as the header itself.
	Headers map[string]string
	// MaxAttempts overrides the dispatcher's retry budget when positive;
	// at most MaxWebhookAttempts.
	MaxAttempts int
	// RateLimit caps deliveries per second when positive, from MinRateLimit
	// to MaxRateLimit; 0 means no cap. Each dispatcher applies it alone:
	// replicas sharing a store each send up to this rate.
	RateLimit float64
}

// plainWebhookInput has the fields of WebhookInput and none of its methods.
type plainWebhookInput WebhookInput

// Format prints in as fmt prints a struct, but with its Secret (when one is
// supplied) and the values of its credential headers shown as
// "[redacted]" and its URL's query as "?[redacted]", as a host's logs must
// not hold them.
func (in WebhookInput) Format(f fmt.State, verb rune) {
	out := fmt.Sprintf(fmt.FormatString(f, verb), plainWebhookInput(in.hidden()))
	if verb == 'v' && f.Flag('#') {
		out = strings.Replace(out, "webhook.plainWebhookInput", "webhook.WebhookInput", 1)
	}
	fmt.Fprint(f, out)
}

// LogValue logs in as Format prints it, without its secrets.
func (in WebhookInput) LogValue() slog.Value {
	h := in.hidden()
	attrs := []slog.Attr{
		slog.String("URL", h.URL),
		slog.Any("Events", h.Events),
		slog.String("Description", h.Description),
	}
	if h.Active != nil {
		attrs = append(attrs, slog.Bool("Active", *h.Active))
	}
	return slog.GroupValue(append(attrs,
		slog.String("Secret", h.Secret),
		slog.Any("Headers", h.Headers),
		slog.Int("MaxAttempts", h.MaxAttempts),
		slog.Float64("RateLimit", h.RateLimit),
	)...)
}

// hidden returns a copy of in without what Format and LogValue hide.
func (in WebhookInput) hidden() WebhookInput {
	in.URL = redact.Logged(in.URL)
	if in.Secret != "" {
		in.Secret = redact.Placeholder
	}
	in.Headers = redact.Headers(in.Headers)
	return in
}

// Bounds of a webhook's MaxAttempts and positive RateLimit.
const (
	// MaxWebhookAttempts is the largest retry budget a webhook may have.
	MaxWebhookAttempts = 100
	// MinRateLimit is the slowest rate limit: one delivery an hour.
	MinRateLimit = 1.0 / 3600
	// MaxRateLimit is the fastest rate limit, in deliveries per second.
	MaxRateLimit = 100_000
)

// WebhookUpdate changes a webhook; nil fields are left unchanged.
type WebhookUpdate struct {
	URL         *string
	Events      *[]string
	Description *string
	// Active true re-activates the webhook and clears its DisabledReason.
	Active *bool
	// Headers replace the webhook's custom headers.
	Headers *map[string]string
	// KeepHeaderValue, when not empty, is a value of Headers that keeps
	// the value the webhook stores for that name (compared in canonical
	// form) when the update is applied, in the same store transaction, so
	// an update racing another never brings back a value it replaced. A
	// name the webhook does not store is a *ValidationError on "headers".
	KeepHeaderValue string
	MaxAttempts     *int
	RateLimit       *float64
}

// Create validates in and stores a new webhook of tenant with a new id
// ("wh_" + UUIDv7). The returned webhook holds the secret: show it once.
func (r *Registry) Create(ctx context.Context, tenant string, in WebhookInput) (*store.Webhook, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	w := &store.Webhook{
		Tenant:      tenant,
		Description: in.Description,
		Active:      in.Active == nil || *in.Active,
		MaxAttempts: in.MaxAttempts,
		RateLimit:   in.RateLimit,
	}
	var err error
	if w.URL, err = r.checkURL(in.URL); err != nil {
		return nil, err
	}
	if w.Events, err = r.checkEvents(in.Events); err != nil {
		return nil, err
	}
	if w.Headers, err = checkHeaders(in.Headers); err != nil {
		return nil, err
	}
	if err := r.checkScalars(w); err != nil {
		return nil, err
	}
	secret := in.Secret
	if secret == "" {
		if secret, err = r.newSecret(); err != nil {
			return nil, err
		}
	} else if err := CheckSecret(secret); err != nil {
		return nil, err
	}
	w.Secrets = []store.Secret{{Value: secret}}
	id, err := uuid.NewV7FromReader(r.opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("webhook: generate id: %w", err)
	}
	w.ID = "wh_" + id.String()
	w.CreatedAt = r.opts.Now().UTC()
	w.UpdatedAt = w.CreatedAt
	if err := r.create(ctx, w); err != nil {
		return nil, err
	}
	return w, nil
}

// create stores w, within RegistryOptions.MaxWebhooks.
func (r *Registry) create(ctx context.Context, w *store.Webhook) error {
	most := r.opts.MaxWebhooks
	if most < 0 {
		return r.st.CreateWebhook(ctx, w)
	}
	if cc, ok := r.st.(store.CappedCreator); ok {
		err := cc.CreateWebhookCapped(ctx, w, most)
		if errors.Is(err, store.ErrLimit) {
			return &WebhookLimitError{Limit: most}
		}
		return err
	}
	n := 0
	for cursor := ""; ; {
		ws, next, err := r.st.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: w.Tenant, Cursor: cursor, Limit: min(most, store.MaxPageLimit)})
		if err != nil {
			return err
		}
		if n += len(ws); n >= most {
			return &WebhookLimitError{Limit: most}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return r.st.CreateWebhook(ctx, w)
}

// Get returns tenant's webhook id, or ErrNotFound.
func (r *Registry) Get(ctx context.Context, tenant, id string) (*store.Webhook, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty id", ErrNotFound)
	}
	w, err := r.st.GetWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	if w.Tenant != tenant {
		return nil, fmt.Errorf("webhook %q: %w", id, ErrNotFound)
	}
	return w, nil
}

// List returns a page of tenant's webhooks, newest first, and the cursor of
// the next page ("" at the end). A limit above store.MaxPageLimit is
// lowered to it; 0 or less means 100.
func (r *Registry) List(ctx context.Context, tenant, cursor string, limit int) ([]*store.Webhook, string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, "", err
	}
	switch {
	case limit <= 0:
		limit = 100
	case limit > store.MaxPageLimit:
		limit = store.MaxPageLimit
	}
	ws, next, err := r.st.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tenant, Cursor: cursor, Limit: limit})
	if errors.Is(err, store.ErrInvalid) {
		return nil, "", invalid("cursor", "malformed cursor")
	}
	return ws, next, err
}

// Update applies the non-nil fields of u to tenant's webhook id and returns
// the result. Setting Active to true clears DisabledReason. The webhook is
// read and written in one store transaction: an update made meanwhile (a
// secret rotation, the dispatcher disabling the webhook) is never undone.
func (r *Registry) Update(ctx context.Context, tenant, id string, u WebhookUpdate) (*store.Webhook, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	var (
		target  string
		events  []string
		headers map[string]string
		err     error
	)
	if u.URL != nil {
		if target, err = r.checkURL(*u.URL); err != nil {
			return nil, err
		}
	}
	if u.Events != nil {
		if events, err = r.checkEvents(*u.Events); err != nil {
			return nil, err
		}
	}
	if u.Headers != nil {
		if headers, err = checkHeaders(*u.Headers); err != nil {
			return nil, err
		}
	}
	return r.change(ctx, tenant, id, func(w *store.Webhook) error {
		if u.URL != nil {
			w.URL = target
		}
		if u.Events != nil {
			w.Events = slices.Clone(events)
		}
		if u.Description != nil {
			w.Description = *u.Description
		}
		if u.Active != nil {
			w.Active = *u.Active
			if w.Active {
				w.DisabledReason = ""
			}
		}
		if u.Headers != nil {
			kept, err := keepHeaders(headers, w.Headers, u.KeepHeaderValue)
			if err != nil {
				return err
			}
			w.Headers = kept
		}
		if u.MaxAttempts != nil {
			w.MaxAttempts = *u.MaxAttempts
		}
		if u.RateLimit != nil {
			w.RateLimit = *u.RateLimit
		}
		if err := r.checkScalars(w); err != nil {
			return err
		}
		// Read in the transaction, so the change stored last has the
		// latest time.
		w.UpdatedAt = r.opts.Now().UTC()
		return nil
	})
}

// change applies fn to tenant's webhook id in one store transaction. A
// webhook of another tenant is ErrNotFound, as for Get.
func (r *Registry) change(ctx context.Context, tenant, id string, fn func(w *store.Webhook) error) (*store.Webhook, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: empty id", ErrNotFound)
	}
	return r.st.UpdateWebhook(ctx, id, func(w *store.Webhook) error {
		if w.Tenant != tenant {
			return fmt.Errorf("webhook %q: %w", id, ErrNotFound)
		}
		return fn(w)
	})
}

// Delete removes tenant's webhook id with its deliveries.
func (r *Registry) Delete(ctx context.Context, tenant, id string) error {
	if _, err := r.Get(ctx, tenant, id); err != nil {
		return err
	}
	return r.st.DeleteWebhook(ctx, id)
}

// RotateSecret gives tenant's webhook id a new generated secret. The
// previous current secret keeps signing webhook-signature until now+grace
// (a negative grace means DefaultRotationGrace); X-Webhook-Signature is
// signed with the new secret only, at once. Previous secrets already
// expired are dropped.
//
// A zero grace is a revocation: every previous secret is dropped at once,
// including those still in the grace period of an earlier rotation, and it
// is never refused. A rotation with a grace period is refused with a
// *RotationLimitError (ErrRotationLimit) when the webhook already has
// RegistryOptions.MaxPreviousSecrets previous secrets in their grace
// period: it would add one more signature to every attempt, and dropping
// the oldest instead would cut short the grace period its receivers were
// given. It is accepted again when the first of them expires.
//
// The returned webhook's Secrets[0] is the new secret.
func (r *Registry) RotateSecret(ctx context.Context, tenant, id string, grace time.Duration) (*store.Webhook, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	if grace < 0 {
		grace = DefaultRotationGrace
	}
	secret, err := r.newSecret()
	if err != nil {
		return nil, err
	}
	return r.change(ctx, tenant, id, func(w *store.Webhook) error {
		now := r.opts.Now() // in the transaction, as in Update
		kept := []store.Secret{{Value: secret}}
		if grace == 0 {
			w.Secrets = kept
			w.UpdatedAt = now.UTC()
			return nil
		}
		var next time.Time // the first expiry of the previous secrets kept
		for i, s := range w.Secrets {
			switch {
			case i == 0:
				kept = append(kept, store.Secret{Value: s.Value, ExpiresAt: now.Add(grace)})
			case !s.ExpiresAt.IsZero() && s.ExpiresAt.After(now):
				kept = append(kept, s)
				if next.IsZero() || s.ExpiresAt.Before(next) {
					next = s.ExpiresAt
				}
			}
		}
		// kept holds the new secret, the one it replaces and the previous
		// secrets still in their grace period.
		if previous := len(kept) - 2; previous >= r.opts.MaxPreviousSecrets {
			return &RotationLimitError{Limit: r.opts.MaxPreviousSecrets, NextExpiry: next}
		}
		w.Secrets = kept
		w.UpdatedAt = now.UTC()
		return nil
	})
}

// ActiveSecrets returns the secrets that sign w's deliveries at now: the
// current one first, then the previous ones whose ExpiresAt is zero (no
// expiry) or after now. Empty values are left out.
func ActiveSecrets(w *store.Webhook, now time.Time) []string {
	out := make([]string, 0, len(w.Secrets))
	for i, s := range w.Secrets {
		if i == 0 || s.ExpiresAt.IsZero() || s.ExpiresAt.After(now) {
			if s.Value != "" {
				out = append(out, s.Value)
			}
		}
	}
	return out
}

// CheckSecret reports whether secret is acceptable as a supplied signing
// secret (see WebhookInput.Secret). Its errors never contain the secret.
func CheckSecret(secret string) error {
	if rest, ok := strings.CutPrefix(secret, SecretPrefix); ok {
		k, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return invalid("secret", "%s secret is not valid standard base64", SecretPrefix)
		}
		if len(k) < 24 || len(k) > 64 {
			return invalid("secret", "%s secret decodes to %d bytes, want 24 to 64", SecretPrefix, len(k))
		}
		return nil
	}
	if len(secret) < MinSecretLength || len(secret) > MaxSecretLength {
		return invalid("secret", "secret is %d bytes, want %d to %d", len(secret), MinSecretLength, MaxSecretLength)
	}
	if strings.HasPrefix(secret, "v1,") {
		return invalid("secret", "secret starts with a signature prefix \"v1,\"")
	}
	for i := 0; i < len(secret); i++ {
		if secret[i] <= ' ' || secret[i] == 0x7f {
			return invalid("secret", "secret contains a space or control character")
		}
	}
	if !utf8.ValidString(secret) {
		return invalid("secret", "secret is not valid UTF-8")
	}
	return nil
}

func (r *Registry) newSecret() (string, error) {
	var k [32]byte
	if _, err := io.ReadFull(r.opts.Rand, k[:]); err != nil {
		return "", fmt.Errorf("webhook: generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(k[:]), nil
}

// checkTenant refuses a tenant no store can hold: empty, not UTF-8, or
// with a NUL byte (which PostgreSQL text cannot hold).
func checkTenant(tenant string) error {
	switch {
	case tenant == "":
		return invalid("tenant", "empty")
	case !tenantText(tenant):
		return invalid("tenant", "not valid UTF-8 or contains a NUL character")
	}
	return nil
}

// tenantText reports whether a tenant is valid UTF-8 without NUL.
func tenantText(tenant string) bool {
	return utf8.ValidString(tenant) && strings.IndexByte(tenant, 0) < 0
}

func (r *Registry) checkURL(raw string) (string, error) {
	if raw == "" {
		return "", invalid("url", "required")
	}
	if len(raw) > MaxURLLength {
		return "", invalid("url", "%d bytes, at most %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", invalid("url", "not a valid URL")
	}
	switch {
	case !u.IsAbs():
		return "", invalid("url", "must be absolute")
	case u.Scheme == "http" && !r.opts.AllowHTTP:
		return "", invalid("url", "scheme must be https")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", invalid("url", "scheme must be https")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return "", invalid("url", "host required")
	case u.User != nil:
		return "", invalid("url", "must not contain user info")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", invalid("url", "must not contain a fragment")
	}
	if err := checkPort(u); err != nil {
		return "", err
	}
	// Go's resolver looks up no name that is not ASCII (every attempt
	// would fail with "no such host"), and net/http does not convert one.
	for i := 0; i < len(u.Host); i++ {
		if u.Host[i] >= utf8.RuneSelf {
			return "", invalid("url", "host is not ASCII; write an internationalized domain name in its xn-- form")
		}
	}
	// net/http escapes a path but sends a query as it is written: a space
	// in it would split the request line, which receivers refuse (400).
	if strings.Contains(u.RawQuery, " ") {
		return "", invalid("url", "the query contains a space; percent-encode it as %%20")
	}
	return raw, nil
}

// checkPort accepts a URL without a port or with a decimal port from 1 to
// 65535. url.Parse leaves the range to the dialer, and takes a bare colon
// ("https://a.example:/") for no port.
func checkPort(u *url.URL) error {
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return invalid("url", "empty port after ':'")
		}
		return nil
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return invalid("url", "port %s, want 1 to 65535", truncate(port, 16))
	}
	return nil
}

func (r *Registry) checkEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, invalid("events", "at least one event required")
	}
	out := make([]string, 0, len(events))
	for i, e := range events {
		if err := r.opts.Catalog.CheckPattern(e); err != nil {
			return nil, invalid(fmt.Sprintf("events[%d]", i), "unknown event type or pattern %q", truncate(e, 64))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if len(out) > r.opts.MaxEvents {
		return nil, invalid("events", "%d events, at most %d", len(out), r.opts.MaxEvents)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// registryReservedHeaders are the headers a webhook may not set (canonical
// form): every header the dispatcher would drop (reservedHeaders), and more.
var registryReservedHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Content-Encoding": true,
	"Host": true, "User-Agent": true, "Expect": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// registryReservedHeader reports whether the Registry refuses a custom
// header of this canonical name; checkHeaders also refuses its
// underscore spellings (see underscoreAlias).
func registryReservedHeader(c string) bool {
	return registryReservedHeaders[c] || strings.HasPrefix(c, "X-Webhook-") || strings.HasPrefix(c, "Webhook-")
}

func checkHeaders(h map[string]string) (map[string]string, error) {
	if len(h) == 0 {
		return nil, nil
	}
	if len(h) > MaxHeaders {
		return nil, invalid("headers", "%d headers, at most %d", len(h), MaxHeaders)
	}
	out := make(map[string]string, len(h))
	for name, value := range h {
		if !validToken(name) {
			// Not named: an invalid name may be a whole header line
			// pasted in ("Authorization: Bearer …"), credential included.
			return nil, invalid("headers", "not a valid header name (the name is not shown, as it may hold a credential)")
		}
		field := "headers." + truncate(name, 64)
		c := http.CanonicalHeaderKey(name)
		if underscoreAlias(c, registryReservedHeader) {
			return nil, invalid(field, "reserved header")
		}
		if _, dup := out[c]; dup {
			return nil, invalid(field, "duplicate header name")
		}
		if len(value) > MaxHeaderValueLength {
			return nil, invalid(field, "value is %d bytes, at most %d", len(value), MaxHeaderValueLength)
		}
		for i := 0; i < len(value); i++ {
			if b := value[i]; b < ' ' && b != '\t' || b == 0x7f {
				return nil, invalid(field, "value contains a control character")
			}
		}
		out[c] = value
	}
	return out, nil
}

// keepHeaders returns a copy of headers (in canonical form) with every
// value equal to keep replaced by the value stored for its name. An empty
// keep keeps nothing.
func keepHeaders(headers, stored map[string]string, keep string) (map[string]string, error) {
	out := maps.Clone(headers)
	if keep == "" {
		return out, nil
	}
	for _, name := range slices.Sorted(maps.Keys(out)) {
		if out[name] != keep {
			continue
		}
		v, ok := stored[name]
		if !ok {
			return nil, invalid("headers", "%s is %q, which keeps the stored value, but the webhook stores no such header; send the real value", truncate(name, 64), keep)
		}
		out[name] = v
	}
	return out, nil
}

// validToken reports whether s is an HTTP token (RFC 9110, section
// 5.6.2), which is what a header name must be.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// tokenByte marks the bytes a token may hold.
var tokenByte = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

func (r *Registry) checkScalars(w *store.Webhook) error {
	if len(w.Description) > r.opts.MaxDescription {
		return invalid("description", "%d bytes, at most %d", len(w.Description), r.opts.MaxDescription)
	}
	if !utf8.ValidString(w.Description) {
		return invalid("description", "not valid UTF-8")
	}
	// A description keeps tabs and line breaks but not NUL, which
	// PostgreSQL text cannot hold; the URL, events, headers and secret
	// refuse every control character already.
	if strings.IndexByte(w.Description, 0) >= 0 {
		return invalid("description", "contains a NUL character")
	}
	if w.MaxAttempts < 0 || w.MaxAttempts > MaxWebhookAttempts {
		return invalid("maxAttempts", "%d, want 0 to %d", w.MaxAttempts, MaxWebhookAttempts)
	}
	// The comparisons are false for NaN: it is refused too.
	if !(w.RateLimit == 0 || w.RateLimit >= MinRateLimit && w.RateLimit <= MaxRateLimit) {
		return invalid("rateLimit", "%g, want 0 (no limit) or %g to %d deliveries per second", w.RateLimit, MinRateLimit, MaxRateLimit)
	}
	return nil
}
