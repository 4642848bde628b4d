package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Defaults of [IdempotencyOptions].
const (
	// DefaultIdempotencyTTL is how long a processed event id is remembered:
	// at least the sender's whole retry window.
	DefaultIdempotencyTTL = 7 * 24 * time.Hour
	// DefaultIdempotencyLease is how long an in-flight reservation holds
	// before a crashed handler's event may be processed again.
	DefaultIdempotencyLease = 2 * time.Minute
)

// ErrStoreFull reports that an [IdempotencyStore] cannot take a new key
// because all its room is held by in-flight reservations. The middleware
// answers 503 with Retry-After.
var ErrStoreFull = errors.New("receiver: idempotency store full")

// ErrNotReserved reports a Complete or Release by a caller that no longer
// holds the reservation (its lease expired and another request took it).
var ErrNotReserved = errors.New("receiver: idempotency key not reserved by this caller")

// ReserveState is the state of a key found by [IdempotencyStore.Reserve].
type ReserveState int

const (
	// Reserved means the key was absent (or expired) and is now in flight
	// for the caller, who must Complete or Release it.
	Reserved ReserveState = iota + 1
	// InFlight means another caller holds the key; its lease ends after
	// Reservation.RetryAfter.
	InFlight
	// Done means the key was completed and its TTL has not run out.
	Done
)

// ReserveParams are the inputs of [IdempotencyStore.Reserve].
type ReserveParams struct {
	// Key is the scoped event id. It is as long as the sender made the id
	// (up to the server's header limit): a store that keeps keys in memory
	// should keep a digest of long ones, as MemoryStore does.
	Key string
	// Token identifies the caller; Complete and Release must present it.
	Token string
	// Lease is how long the reservation holds if never completed or released.
	Lease time.Duration
}

// Reservation is the result of [IdempotencyStore.Reserve].
type Reservation struct {
	// State is Reserved, InFlight or Done.
	State ReserveState
	// RetryAfter is the time left on another caller's lease (InFlight only).
	RetryAfter time.Duration
}

// CompleteParams are the inputs of [IdempotencyStore.Complete].
type CompleteParams struct {
	// Key and Token are those given to Reserve.
	Key   string
	Token string
	// TTL is how long the key stays Done.
	TTL time.Duration
}

// ReleaseParams are the inputs of [IdempotencyStore.Release].
type ReleaseParams struct {
	// Key and Token are those given to Reserve.
	Key   string
	Token string
}

// IdempotencyStore remembers event ids. Implementations must make Reserve
// atomic: of concurrent callers for one absent key exactly one gets
// Reserved. Complete and Release act only for the caller whose Token holds
// the reservation, else they return ErrNotReserved. A Redis implementation
// maps Reserve to SET key token NX PX lease, and Complete/Release to
// token-checked scripts.
type IdempotencyStore interface {
	// Reserve takes Key for the caller when it is absent or expired, else
	// reports who holds it.
	Reserve(ctx context.Context, p ReserveParams) (Reservation, error)
	// Complete marks a reserved key Done for TTL.
	Complete(ctx context.Context, p CompleteParams) error
	// Release forgets a reserved key, so the next delivery is processed.
	Release(ctx context.Context, p ReleaseParams) error
}

// IdempotencyOptions configures [IdempotencyWithOptions].
type IdempotencyOptions struct {
	// Store keeps the keys. Required.
	Store IdempotencyStore
	// Scope namespaces the keys, so one store can serve several endpoints.
	// Defaults to the endpoint's route: the path of the http.ServeMux
	// pattern that routed the request ("/webhooks/noa-server" for
	// "POST /webhooks/noa-server"), so all the paths that a subtree or
	// wildcard pattern matches are one endpoint, as they are to the
	// signature, which does not cover the path. Without a pattern (another
	// router) it defaults to the URL path, which the client chooses: set
	// Scope there, else a delivery replayed to another path that reaches
	// the handler is processed again. Set it too when one route serves
	// several senders, each verified with its own secrets, so that the
	// ids of one cannot shadow those of another.
	Scope string
	// TTL is how long a processed event is remembered. Defaults to
	// DefaultIdempotencyTTL (7 days). Keep it longer than Verify's
	// tolerance (5 minutes by default): a key forgotten while its delivery
	// is still inside the replay window lets a replay of it run again.
	TTL time.Duration
	// Lease is how long an in-flight reservation holds if the process dies
	// before answering. Defaults to DefaultIdempotencyLease (2 minutes);
	// keep it longer than the handler's slowest run.
	Lease time.Duration
	// Logger receives store errors and lost leases. Defaults to discarding.
	Logger *slog.Logger
}

// Idempotency returns middleware that runs next at most once per event id
// (see [IdempotencyWithOptions]), with store and the default TTL and lease.
// It panics when store is nil.
func Idempotency(store IdempotencyStore) func(http.Handler) http.Handler {
	mw, err := IdempotencyWithOptions(IdempotencyOptions{Store: store})
	if err != nil {
		panic(err)
	}
	return mw
}

// IdempotencyWithOptions returns middleware that deduplicates deliveries by
// event id (the signed webhook-id, else the payload id), scoped per
// endpoint. It must be mounted inside Verify: a request without a verified
// event is answered 500 and never touches the store, and a verified event
// without an id is answered 400. It fails on a nil Store and on a negative
// TTL or Lease.
//
//   - The first delivery reserves the key atomically and runs next; a 2xx
//     answer marks the key done for TTL, any other answer, a panic or a
//     runtime.Goexit releases it so the sender's retry is processed.
//   - A duplicate of a finished event is answered 200 without running next.
//   - A duplicate while the first is in flight is answered 409 with
//     Retry-After.
//   - A store error is answered 503 with Retry-After (the sender retries).
//
// With a background [Router], the handler's 2xx means "queued", so the key
// is marked done then; a later processing failure goes to
// RouterOptions.OnFailure, not to the sender.
func IdempotencyWithOptions(opts IdempotencyOptions) (func(http.Handler) http.Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("receiver: IdempotencyOptions.Store is nil")
	}
	if opts.TTL < 0 || opts.Lease < 0 {
		return nil, fmt.Errorf("receiver: negative idempotency TTL (%v) or lease (%v)", opts.TTL, opts.Lease)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultIdempotencyTTL
	}
	if opts.Lease == 0 {
		opts.Lease = DefaultIdempotencyLease
	}
	log := loggerOr(opts.Logger)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			ev, ok := EventFromContext(ctx)
			if !ok {
				log.LogAttrs(ctx, slog.LevelError, "receiver: idempotency middleware reached without a verified event; mount it inside Verify")
				plain(w, http.StatusInternalServerError, "Receiver misconfigured")
				return
			}
			id := ev.idempotencyKey()
			if id == "" {
				markOutcome(ctx, outcomeRejected)
				plain(w, http.StatusBadRequest, "Missing event id")
				return
			}
			scope := opts.Scope
			if scope == "" {
				scope = routeScope(r)
			}
			key := scope + "\x00" + id
			token := uuid.NewString()
			res, err := opts.Store.Reserve(ctx, ReserveParams{Key: key, Token: token, Lease: opts.Lease})
			if err != nil {
				log.LogAttrs(ctx, slog.LevelError, "receiver: idempotency reserve failed",
					slog.String("event_id", id), slog.String("error", err.Error()))
				retryAfter(w, 5*time.Second)
				plain(w, http.StatusServiceUnavailable, "Try again later")
				return
			}
			switch res.State {
			case Done:
				markOutcome(ctx, outcomeDuplicate)
				plain(w, http.StatusOK, "OK (duplicate)")
				return
			case InFlight:
				markOutcome(ctx, outcomeDuplicate)
				retryAfter(w, res.RetryAfter)
				plain(w, http.StatusConflict, "Delivery in progress")
				return
			case Reserved:
			default:
				log.LogAttrs(ctx, slog.LevelError, "receiver: idempotency store returned an unknown state",
					slog.Int("state", int(res.State)))
				plain(w, http.StatusInternalServerError, "Receiver misconfigured")
				return
			}

			sw := &statusWriter{ResponseWriter: w}
			// The outcome is recorded even if the client went away, so it
			// must not depend on the request's context.
			bg := context.WithoutCancel(ctx)
			// returned stays false when next ends by panicking or by
			// runtime.Goexit (which recover does not see): no answer is
			// sent then, so the key must be released.
			returned := false
			defer func() {
				p := recover()
				var err error
				if returned && sw.code() >= 200 && sw.code() < 300 {
					err = opts.Store.Complete(bg, CompleteParams{Key: key, Token: token, TTL: opts.TTL})
				} else {
					err = opts.Store.Release(bg, ReleaseParams{Key: key, Token: token})
				}
				if err != nil {
					log.LogAttrs(ctx, slog.LevelWarn, "receiver: idempotency record failed",
						slog.String("event_id", id), slog.String("error", err.Error()))
				}
				if p != nil {
					panic(p)
				}
			}()
			next.ServeHTTP(sw, r)
			returned = true
		})
	}, nil
}

// routeScope is the default scope of r: the path of the http.ServeMux
// pattern that routed it, which is the same whatever path the client sent,
// else (another router set no pattern) its URL path. A pattern's method
// and host hold no '/', so its path starts at the first one.
func routeScope(r *http.Request) string {
	if i := strings.IndexByte(r.Pattern, '/'); i >= 0 {
		return r.Pattern[i:]
	}
	return r.URL.Path
}
