// Package pgstore is a PostgreSQL [store.Store], for running several
// dispatcher replicas against one database.
//
// # Setup
//
// [New] takes a pgxpool.Pool the host already has; [Open] makes and owns
// one from a connection URL. Both create the schema (by default
// [DefaultSchema]) and apply the embedded migrations under an advisory
// lock, so replicas starting at once migrate exactly once. A migration
// waits at most [Options.MigrationLockTimeout] at a time for a lock on a
// table in use, and tries again after a pause: the statements queued behind
// it on the table are not held up for as long as another transaction runs.
//
// # Replicas
//
// Claim leases deliveries with SELECT … FOR UPDATE SKIP LOCKED: replicas
// never wait on each other's rows, and a delivery is never handed to two
// claimers while its lease is live. A replica that dies without releasing
// its leases loses them when they expire; the others then claim the
// deliveries again (at-least-once delivery).
//
// PostgreSQL may abort a statement to break a deadlock (SQLSTATE 40P01)
// or a serialization conflict (40001), with a transaction of another
// replica or one outside the store; it rolls the work back whole. Every
// call that takes row locks then runs again, up to five times in all,
// before it returns the error: an attempt's record is not lost to a
// conflict.
//
// Enqueue (when it stores a delivery not leased already), Redeliver and
// Release (when it frees a lease) send a PostgreSQL notification in the
// same transaction; [Store.WakeUps] turns those notifications, from every
// replica, into wake-ups a dispatcher can wait on instead of polling.
//
// # Cost
//
// Each call is one statement (one round trip) except ListAttempts and
// Redeliver on their not-found paths and a Complete that disables a
// webhook. Claim walks a partial index of unleased pending deliveries from
// the oldest due one, plus a small index of the leases in flight, so its
// cost is O(log n + k) in the queue size n; due deliveries it must pass
// over (those of ClaimParams.SkipWebhooks, or rows another claimer holds
// locked) add to k. A claim that passes over 1,000 or more deliveries of the
// webhooks it skips (the backlog of a hung endpoint, which a dispatcher
// skips at its concurrency limit) sets them apart, up to 5,000 at a time,
// in an index keyed by webhook: later claims pass over them with one seek
// per webhook, and take them in due order with the rest once they no longer
// skip the webhook. Listings walk the (tenant, id) or (webhook_id, id)
// index backwards from the cursor.
//
// # Times
//
// Timestamps are stored as timestamptz, at microsecond precision: the store
// truncates every time it writes to microseconds. Claim and Complete use
// the caller's Now, so replicas should keep their clocks in sync (NTP);
// a lease is as long as the clocks agree.
package pgstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noa-server/webhook/store"
)

var _ store.Store = (*Store)(nil)

// DefaultSchema is the PostgreSQL schema the store uses when
// Options.Schema is empty.
const DefaultSchema = "webhook"

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Schema is the PostgreSQL schema holding the store's tables; it is
	// created when missing. It must be an unquoted-style identifier: a
	// letter or underscore, then letters, digits or underscores, at most 63
	// bytes. It is always quoted, so case counts: "MyHooks" is not the
	// schema an unquoted CREATE SCHEMA MyHooks makes (myhooks). Defaults to
	// DefaultSchema.
	Schema string
	// Logger receives the wake-up listener's connection errors, and a
	// warning each time New's migration gives up waiting for a table lock
	// (see MigrationLockTimeout). Defaults to a logger that discards
	// everything.
	Logger *slog.Logger
	// MigrationLockTimeout bounds each wait of a migration for a lock on a
	// table in use (PostgreSQL's lock_timeout, set for the migration's
	// transaction only). A schema change such as ALTER TABLE waits for
	// every transaction using the table to end, and every later statement
	// on the table waits behind it: one long transaction (a report, a
	// pg_dump) would stall the replicas still serving for as long as it
	// runs. When the time is up the migration is rolled back, the queued
	// statements proceed, and New tries again after a pause (about the
	// timeout, doubled at each try up to 30 s, randomised so that replicas
	// starting together spread their tries), until its context ends, when
	// it returns an error that wraps both the context's and PostgreSQL's
	// lock timeout (SQLSTATE 55P03). Defaults to
	// DefaultMigrationLockTimeout; a negative value waits as long as it
	// takes.
	MigrationLockTimeout time.Duration
}

// DefaultMigrationLockTimeout is Options.MigrationLockTimeout's default.
const DefaultMigrationLockTimeout = 2 * time.Second

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Store is a store.Store backed by PostgreSQL. It is safe for concurrent
// use by many goroutines and by many processes sharing one database.
//
// Strings are stored as PostgreSQL text, which holds valid UTF-8 without
// NUL bytes: a webhook or delivery with another string is refused with
// store.ErrInvalid and nothing is written, and so is a Claim by an owner
// with one. A lookup or filter by such a string finds nothing, as in the
// other stores. An attempt's log (URL, headers, error) is what a remote
// endpoint sent, so it is recorded with such bytes replaced by U+FFFD
// instead.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	schema  string // unquoted
	channel string // notification channel
	log     *slog.Logger
	q       queries

	lockTimeout time.Duration // Options.MigrationLockTimeout, defaulted

	closed atomic.Bool

	// The wake-up listener, started by the first WakeUps call.
	mu       sync.Mutex
	subs     map[*subscriber]struct{}
	listenOn bool
	stop     context.CancelFunc
	stopCtx  context.Context
	wg       sync.WaitGroup
}

// New returns a Store that keeps its records in pool's database, after
// creating the schema and applying any migration it lacks. Several
// processes may call New at once: migrations run under an advisory lock.
//
// The Store does not own pool: Close leaves it open, and the caller closes
// it after closing the Store.
//
// The store's transactions run at READ COMMITTED, and so must its single
// statements: keep pool's connections at PostgreSQL's default isolation
// level. Where the role or database defaults to REPEATABLE READ or
// SERIALIZABLE, concurrent claims conflict with serialization errors,
// which the store retries a few times but returns when they persist; give
// the store a pool of its own, or use Open, which sets the level.
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("pgstore: nil pool: %w", store.ErrInvalid)
	}
	s, err := newStore(pool, opts)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Open connects to the database at url (a PostgreSQL URL or key=value
// connection string, as pgxpool.ParseConfig reads it) and returns a Store
// that owns the pool: Close closes it. The pool's connections use READ
// COMMITTED whatever the role's, database's or url's default.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if _, err := schemaName(opts.Schema); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, fmt.Errorf("pgstore: malformed connection string: %w", store.ErrInvalid)
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s, err := New(ctx, pool, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

func schemaName(name string) (string, error) {
	if name == "" {
		return DefaultSchema, nil
	}
	if !identRE.MatchString(name) {
		return "", fmt.Errorf("pgstore: schema name %q is not an identifier: %w", name, store.ErrInvalid)
	}
	return name, nil
}

func newStore(pool *pgxpool.Pool, opts Options) (*Store, error) {
	schema, err := schemaName(opts.Schema)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lockTimeout := opts.MigrationLockTimeout
	if lockTimeout == 0 {
		lockTimeout = DefaultMigrationLockTimeout
	}
	// A channel name is at most 63 bytes; a long schema is hashed.
	channel := "webhook_wake:" + schema
	if len(channel) > 63 {
		h := fnv.New64a()
		h.Write([]byte(schema))
		channel = fmt.Sprintf("webhook_wake:%016x", h.Sum64())
	}
	stopCtx, stop := context.WithCancel(context.Background())
	s := &Store{
		pool:    pool,
		schema:  schema,
		channel: channel,
		log:     log,
		q:       buildQueries(pgx.Identifier{schema}.Sanitize()),
		subs:    make(map[*subscriber]struct{}),
		stopCtx: stopCtx,
		stop:    stop,

		lockTimeout: lockTimeout,
	}
	return s, nil
}

// Schema returns the name of the PostgreSQL schema the store uses.
func (s *Store) Schema() string { return s.schema }

// Close stops the wake-up listener, waits for it, and closes the pool if
// the Store owns it (it was made by Open). A pool passed to New stays open.
// Later calls return store.ErrClosed, and so does a call under way that
// fails because Close closed the pool under it; a second Close returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	s.mu.Lock()
	for sub := range s.subs {
		sub.close()
		delete(s.subs, sub)
	}
	s.mu.Unlock()
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) (err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return err
	}
	return wrap(s.pool.Ping(ctx))
}

// closing makes *err match store.ErrClosed when the store was closed while
// the call ran: a call that passed check just before Close may meet the
// pool Close closed ("closed pool") or a connection closed under it, and
// must say the store is closed, as it would have a moment later. Every
// exported method that uses the pool defers it.
func (s *Store) closing(err *error) {
	if *err != nil && s.closed.Load() && !errors.Is(*err, store.ErrClosed) {
		*err = fmt.Errorf("pgstore: %w: %w", store.ErrClosed, *err)
	}
}

// check returns ErrClosed after Close and ctx's error when it is done.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: %w", store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return nil
}

// ---- errors ----

func invalid(format string, args ...any) error {
	return fmt.Errorf("pgstore: "+format+": %w", append(args, store.ErrInvalid)...)
}

func notFound(kind, id string) error {
	return fmt.Errorf("pgstore: %s %q: %w", kind, id, store.ErrNotFound)
}

// PostgreSQL error codes the store maps to sentinels.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	// codeProgramLimitExceeded is a value too large for where it goes:
	// an id or tenant longer than an index entry holds (some 2,700 bytes).
	codeProgramLimitExceeded = "54000"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// wrap prefixes err; nil stays nil. pgx already wraps context errors so
// errors.Is(err, context.Canceled) holds. PostgreSQL's data exceptions
// (class 22: a NUL byte or invalid UTF-8 in text, a number out of range)
// and a value over one of its size limits (an id or tenant too long for an
// index) are bad input, so they also match store.ErrInvalid.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	if code := pgCode(err); strings.HasPrefix(code, "22") || code == codeProgramLimitExceeded {
		return fmt.Errorf("pgstore: %w: %w", store.ErrInvalid, err)
	}
	return fmt.Errorf("pgstore: %w", err)
}

// ---- values ----

// now is the time the store stamps on records whose caller left it zero.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// ts truncates t to the precision PostgreSQL stores (PostgreSQL would round).
func ts(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// ceilMicro rounds t up to a microsecond, so "stored < ceilMicro(t)" is
// "stored < t" for stored times.
func ceilMicro(t time.Time) time.Time {
	if u := t.Truncate(time.Microsecond); !u.Equal(t) {
		return u.Add(time.Microsecond)
	}
	return t
}

// nullTime returns nil for the zero time, else t truncated, in UTC: a
// secret's expiry is kept as JSON text, whose times have four digits of
// year in their own location, so a time near the year 9999 in UTC is
// written in UTC, not in a location where its year has five.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = ts(t).UTC()
	return &t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// textOK reports whether PostgreSQL's text (and jsonb) can hold s as is:
// valid UTF-8 without NUL bytes.
func textOK(s string) bool { return utf8.ValidString(s) && !strings.Contains(s, "\x00") }

// textOKs reports whether every one of ss is textOK. A lookup by a string
// that is not names no stored record (none can hold it), so it is
// answered as the lookup of a missing one, without asking PostgreSQL,
// which would refuse the string as a parameter.
func textOKs(ss ...string) bool {
	for _, s := range ss {
		if !textOK(s) {
			return false
		}
	}
	return true
}

// cleanText makes s storable as text, replacing invalid bytes and NULs with
// U+FFFD. It is for logs of what a remote endpoint sent, which the store
// records rather than refuses.
func cleanText(s string) string {
	if textOK(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanHeader returns h, or a cleaned copy when any name or value is not
// storable as is.
func cleanHeader(h http.Header) http.Header {
	ok := true
	for k, vs := range h {
		ok = ok && textOK(k)
		for _, v := range vs {
			ok = ok && textOK(v)
		}
	}
	if ok {
		return h
	}
	c := make(http.Header, len(h))
	for k, vs := range h {
		k = cleanText(k)
		for _, v := range vs {
			c[k] = append(c[k], cleanText(v))
		}
	}
	return c
}

func checkLimit(n int) error {
	if n < 1 || n > store.MaxPageLimit {
		return invalid("limit %d outside 1..%d", n, store.MaxPageLimit)
	}
	return nil
}

// ---- cursors ----

// Cursors are opaque: a kind byte and the last id of the page, base64url.

func encodeCursor(kind byte, id string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind, ':'}, id...))
}

func decodeCursor(kind byte, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 3 || b[0] != kind || b[1] != ':' || !textOK(string(b[2:])) {
		return "", invalid("malformed cursor")
	}
	return string(b[2:]), nil
}
