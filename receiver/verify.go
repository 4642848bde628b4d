package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	webhook "github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/redact"
)

// DefaultMaxBodyBytes is the largest body the Verify middleware reads
// (1 MiB); a larger one is answered 413.
const DefaultMaxBodyBytes = 1 << 20

// ErrMalformedPayload reports a body whose signature verified but which is
// not a JSON object of the guide's envelope.
var ErrMalformedPayload = errors.New("receiver: malformed payload")

// ErrInvalidSecret reports a secret that cannot be right: empty, surrounded by
// whitespace, or pasted with a signature's "v1," prefix. The message never
// contains the secret.
var ErrInvalidSecret = errors.New("receiver: invalid secret")

// VerifyOptions configures [NewVerifier] and [VerifyWithOptions]. The zero
// value of every field but Secrets is the safe default.
type VerifyOptions struct {
	// Secrets are the endpoint's signing secrets ("whsec_…"), several during
	// a rotation; a request signed with any of them verifies. Required.
	Secrets []string
	// Tolerance is how far webhook-timestamp may be from Now, both ways.
	// Defaults to 5 minutes ([webhook.DefaultTolerance]).
	Tolerance time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// AllowLegacy accepts a request that carries only the guide's
	// X-Webhook-Signature, for senders that send nothing else. That header
	// binds no timestamp, so such a request can be replayed. Defaults to
	// false: a request with only the legacy header is refused (downgrade
	// protection), which is right for senders that send both schemes, as
	// this library's does. When the Standard Webhooks headers are present
	// they are always the ones verified.
	AllowLegacy bool
	// MaxBodyBytes caps the body; a larger one is answered 413. Defaults to
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Logger receives one record per refused request (without secrets or
	// signatures). Defaults to discarding.
	Logger *slog.Logger
}

// plainVerifyOptions has the fields of VerifyOptions and none of its
// methods.
type plainVerifyOptions VerifyOptions

// Format prints o as fmt prints a struct, but with each secret shown as
// "[redacted]", as a host's logs must not hold them.
func (o VerifyOptions) Format(f fmt.State, verb rune) {
	o.Secrets = hiddenSecrets(o.Secrets)
	out := fmt.Sprintf(fmt.FormatString(f, verb), plainVerifyOptions(o))
	if verb == 'v' && f.Flag('#') {
		out = strings.Replace(out, "receiver.plainVerifyOptions", "receiver.VerifyOptions", 1)
	}
	fmt.Fprint(f, out)
}

// LogValue logs o's settings with each secret shown as "[redacted]".
func (o VerifyOptions) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("Secrets", hiddenSecrets(o.Secrets)),
		slog.Duration("Tolerance", o.Tolerance),
		slog.Bool("AllowLegacy", o.AllowLegacy),
		slog.Int64("MaxBodyBytes", o.MaxBodyBytes),
	)
}

// hiddenSecrets returns one redact.Placeholder for each of secrets; nil
// stays nil.
func hiddenSecrets(secrets []string) []string {
	if secrets == nil {
		return nil
	}
	out := make([]string, len(secrets))
	for i := range out {
		out[i] = redact.Placeholder
	}
	return out
}

// Verifier verifies signed deliveries and decodes their envelope. It is safe
// for concurrent use.
type Verifier struct {
	v       *webhook.Verifier
	maxBody int64
	log     *slog.Logger
}

// NewVerifier returns a Verifier for opts. It fails with [ErrInvalidSecret]
// (wrapping [webhook.ErrNoSecrets] when there is none) for secrets that
// cannot be right, and on a negative MaxBodyBytes or Tolerance.
func NewVerifier(opts VerifyOptions) (*Verifier, error) {
	if len(opts.Secrets) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSecret, webhook.ErrNoSecrets)
	}
	for i, s := range opts.Secrets {
		switch {
		case s == "":
			return nil, fmt.Errorf("%w: secret %d is empty", ErrInvalidSecret, i)
		case strings.TrimSpace(s) != s:
			return nil, fmt.Errorf("%w: secret %d has leading or trailing whitespace", ErrInvalidSecret, i)
		case strings.HasPrefix(s, "v1,"):
			return nil, fmt.Errorf("%w: secret %d starts with \"v1,\" (a signature was pasted, not the secret)", ErrInvalidSecret, i)
		}
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("receiver: MaxBodyBytes %d is negative", opts.MaxBodyBytes)
	}
	if opts.Tolerance < 0 {
		return nil, fmt.Errorf("receiver: Tolerance %v is negative", opts.Tolerance)
	}
	v, err := webhook.NewVerifier(opts.Secrets, webhook.VerifyOptions{
		Tolerance:   opts.Tolerance,
		Now:         opts.Now,
		AllowLegacy: opts.AllowLegacy,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	max := opts.MaxBodyBytes
	if max == 0 {
		max = DefaultMaxBodyBytes
	}
	return &Verifier{v: v, maxBody: max, log: loggerOr(opts.Logger)}, nil
}

// Verify checks the signature headers h against the raw body and, when they
// verify, decodes the envelope. It is the whole verification of the
// middleware, for stacks other than net/http. h is read as http.Header
// reads, by canonical key: fill it with Add or Set, not by assigning the
// lower-case names some platforms deliver, else no header is found and
// every request is refused. Errors match, with errors.Is,
// the sentinels of package webhook ([webhook.ErrInvalidSignature],
// [webhook.ErrTimestampTooOld], [webhook.ErrMalformedHeader], …) or
// [ErrMalformedPayload]. The returned event's Data aliases body.
func (v *Verifier) Verify(body []byte, h http.Header) (*Event, error) {
	if err := v.v.Verify(body, h); err != nil {
		return nil, err
	}
	ev, err := decodeEvent(body)
	if err != nil {
		return nil, err
	}
	if len(h.Values(webhook.HeaderStandardSignature)) > 0 { // webhook-id was signed
		ev.MessageID = h.Get(webhook.HeaderStandardID)
	}
	return ev, nil
}

func decodeEvent(body []byte) (*Event, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, ErrMalformedPayload
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedPayload, err)
	}
	return &ev, nil
}

// Middleware returns next wrapped in verification: the body is read once (up
// to MaxBodyBytes, else 413), verified (401 for a missing or wrong signature,
// a stale or future timestamp and a refused legacy-only request; 400 for a
// malformed header or payload, or a body that cannot be read), then
// restored (Body, ContentLength, GetBody) so next reads the identical
// bytes, which are also in the context ([RawBodyFromContext]) with the
// decoded event ([EventFromContext]).
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		body, code, msg := v.readBody(w, r)
		if code != 0 {
			v.refuse(ctx, w, code, msg, nil)
			return
		}
		ev, err := v.Verify(body, r.Header)
		if err != nil {
			code, msg := statusOf(err)
			v.refuse(ctx, w, code, msg, err)
			return
		}
		ctx = context.WithValue(ctx, rawBodyKey, body)
		ctx = context.WithValue(ctx, eventKey, ev)
		r2 := r.WithContext(ctx)
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		r2.TransferEncoding = nil
		r2.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(body)), nil
		}
		next.ServeHTTP(w, r2)
	})
}

func (v *Verifier) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	if r.ContentLength > v.maxBody {
		return nil, http.StatusRequestEntityTooLarge, "Payload too large"
	}
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, 0, ""
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, v.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, "Payload too large"
		}
		return nil, http.StatusBadRequest, "Unreadable body"
	}
	return body, 0, ""
}

func (v *Verifier) refuse(ctx context.Context, w http.ResponseWriter, code int, msg string, err error) {
	markOutcome(ctx, outcomeRejected)
	attrs := []slog.Attr{slog.Int("status", code)}
	if err != nil {
		attrs = append(attrs, slog.String("reason", err.Error()))
	} else {
		attrs = append(attrs, slog.String("reason", msg))
	}
	v.log.LogAttrs(ctx, slog.LevelWarn, "receiver: webhook refused", attrs...)
	plain(w, code, msg)
}

// statusOf maps a verification error to the answer: 400 for what cannot be
// parsed, 401 for what does not authenticate.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, webhook.ErrMalformedHeader):
		return http.StatusBadRequest, "Malformed signature header"
	case errors.Is(err, ErrMalformedPayload):
		return http.StatusBadRequest, "Malformed payload"
	case errors.Is(err, webhook.ErrMissingSignature):
		return http.StatusUnauthorized, "Missing signature"
	case errors.Is(err, webhook.ErrTimestampTooOld), errors.Is(err, webhook.ErrTimestampTooNew):
		return http.StatusUnauthorized, "Timestamp outside tolerance"
	case errors.Is(err, webhook.ErrLegacyOnly):
		return http.StatusUnauthorized, "Standard Webhooks signature required"
	default:
		return http.StatusUnauthorized, "Invalid signature"
	}
}

// Verify returns middleware that verifies deliveries signed with any of
// secrets, with the defaults of [VerifyOptions]. It panics when the secrets
// are invalid (see [NewVerifier]): a programmer error caught at
// construction, never per request.
func Verify(secrets ...string) func(http.Handler) http.Handler {
	mw, err := VerifyWithOptions(VerifyOptions{Secrets: secrets})
	if err != nil {
		panic(err)
	}
	return mw
}

// VerifyWithOptions returns the verification middleware of
// [Verifier.Middleware] configured by opts, or the error of [NewVerifier].
func VerifyWithOptions(opts VerifyOptions) (func(http.Handler) http.Handler, error) {
	v, err := NewVerifier(opts)
	if err != nil {
		return nil, err
	}
	return v.Middleware, nil
}
