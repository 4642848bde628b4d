package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"time"

	"github.com/noa-server/webhook/store"
)

// Defaults of Config.
const (
	// DefaultWorkers is the most attempts in flight at once, over all
	// webhooks.
	DefaultWorkers = 64
	// DefaultPerWebhookConcurrency is the most attempts in flight at once to
	// one webhook, so a slow endpoint cannot take every worker: the default
	// PerWebhookConcurrency is this, but at most a quarter of Workers.
	DefaultPerWebhookConcurrency = 16
	// DefaultTimeout bounds one attempt (the guide: 30 seconds per attempt).
	DefaultTimeout = 30 * time.Second
	// DefaultPollInterval is how often the store is asked for due
	// deliveries when nothing in this process signals new work.
	DefaultPollInterval = time.Second
	// DefaultMaxPayloadBytes caps an event's marshalled data.
	DefaultMaxPayloadBytes = 256 << 10
	// DefaultMaxResponseBytes caps the response body stored with an attempt.
	DefaultMaxResponseBytes = 4 << 10
	// DefaultRetention is how long finished deliveries are kept.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultPurgeInterval is how often finished deliveries are purged.
	DefaultPurgeInterval = time.Hour
	// DefaultWebhookCacheTTL is how long a webhook read from the store is
	// reused by the delivery loop.
	DefaultWebhookCacheTTL = time.Second
	// DefaultUserAgent is sent with every attempt.
	DefaultUserAgent = "noa-webhook/1"
	// MaxWorkers is the largest Workers New accepts: Start starts four
	// goroutines per worker.
	MaxWorkers = 1 << 16
	// MinInterval is the shortest PollInterval, PurgeInterval and Timeout
	// New accepts: a loop run every nanosecond spins, and an attempt
	// cannot even dial in less.
	MinInterval = time.Millisecond
)

// Config tunes a Dispatcher. The zero value (or nil) is a safe production
// configuration; every field documents its default.
type Config struct {
	// Catalog holds the event types Emit accepts. Defaults to NewCatalog().
	Catalog *Catalog
	// Logger receives the dispatcher's logs. Defaults to silence.
	Logger *slog.Logger
	// Hooks receives lifecycle events for metrics and notifications.
	// Defaults to none.
	Hooks Hooks
	// Now is the clock used for due times, leases, signatures' timestamps
	// and retry schedules. Defaults to time.Now. Tests inject a fake clock
	// (with a short PollInterval) to check schedules without sleeping.
	Now func() time.Time

	// Workers is the most attempts in flight at once (requests sent and not
	// yet answered). Defaults to DefaultWorkers. An answered attempt frees
	// its worker before it is recorded. The deliveries this process holds
	// leased (being sent, waiting for a worker or for a slot of their
	// webhook, or waiting for their record) are at most 4 × Workers.
	// At most MaxWorkers.
	Workers int
	// PerWebhookConcurrency is the most attempts in flight to one webhook.
	// Defaults to DefaultPerWebhookConcurrency, but at most Workers/4 (and
	// at least 1). A webhook whose attempts time out gets fewer: each
	// timeout halves its limit (down to 1), each success raises it by one
	// (up to PerWebhookConcurrency), so a hung endpoint holds few workers.
	// The limit is this process's: replicas sharing a store each apply it.
	PerWebhookConcurrency int
	// ClaimBatch is the most deliveries claimed from the store at once.
	// Defaults to Workers, at most store.MaxPageLimit.
	ClaimBatch int
	// PollInterval is how often the store is polled for due deliveries
	// (retries coming due, or work enqueued by other processes). Deliveries
	// emitted in this process are picked up at once. Defaults to
	// DefaultPollInterval; at least MinInterval (1 ms).
	PollInterval time.Duration
	// Lease is how long a delivery this process claimed (or stored for
	// itself on Emit) stays reserved to it; after a crash another process
	// claims it once the lease expires. Defaults to Timeout plus one
	// minute (plus a third of Timeout, if that is longer). At least
	// Timeout plus a third of it: an attempt is sent only while its lease
	// has Timeout left, and a claimed delivery may wait a quarter of its
	// lease for a slot of its webhook first.
	Lease time.Duration
	// Owner names this process in leases. Defaults to a random
	// "dispatcher_" + UUID, new for every Dispatcher.
	Owner string

	// Timeout bounds one attempt, from dial to the end of the response
	// body. Defaults to DefaultTimeout; at least MinInterval (1 ms).
	Timeout time.Duration
	// Retry is the retry schedule. The zero value is the default schedule
	// (see RetryPolicy).
	Retry RetryPolicy
	// MaxPayloadBytes caps an event's marshalled data; Emit refuses larger
	// data with a *PayloadTooLargeError. Defaults to DefaultMaxPayloadBytes.
	// A delivery's body is the data plus an envelope of at most 2 KiB, and
	// receivers cap the body they read: the receiver package's Verify
	// answers 413 above receiver.VerifyOptions.MaxBodyBytes (1 MiB by
	// default). Above 1 MiB - 2 KiB, every attempt of an event with data
	// near the cap is refused with 413 unless the receivers raise
	// MaxBodyBytes to at least MaxPayloadBytes + 2 KiB.
	MaxPayloadBytes int
	// MaxResponseBytes caps the response body stored with each attempt.
	// Defaults to DefaultMaxResponseBytes.
	MaxResponseBytes int
	// UserAgent is sent with every attempt. Defaults to DefaultUserAgent.
	UserAgent string
	// WebhookCacheTTL is how long the delivery loop reuses a webhook it read
	// from the store (URL, secrets, headers, active). Defaults to
	// DefaultWebhookCacheTTL; negative disables the cache. A change to a
	// webhook (a new URL, a revoked secret, a deactivation) therefore
	// reaches attempts up to this long after it is stored, in this process
	// and in replicas sharing the store; a reactivation reaches them at
	// once, as a delivery is failed for an inactive webhook only once the
	// store confirms it.
	WebhookCacheTTL time.Duration

	// Transport sends the attempts. By default the dispatcher uses its own
	// SSRF-guarded HTTP/1.1 client, with the guard of NewTransport built
	// from AllowedRanges, AllowedPorts and AllowAnyPort, and Workers idle
	// connections kept per destination. It sends each attempt on the
	// worker's goroutine, with net/http's request writer and response
	// parser: on loopback a request costs about a fifth less processor
	// time than through net/http's Transport. Over TLS it offers HTTP/2
	// too: a server that chooses it costs one handshake, is remembered,
	// and is sent to through a net/http Transport with the same guard.
	//
	// A Transport set here replaces the guard: only use one built with
	// NewTransport, or one you trust equally. Redirects are never
	// followed whatever the transport.
	Transport http.RoundTripper
	// AllowedRanges, AllowedPorts and AllowAnyPort relax the SSRF guard of
	// the default transport (see TransportOptions); New refuses them with a
	// Transport, which they would not reach. By default only public
	// unicast addresses on ports 80 and 443 are dialled. An IPv4-mapped
	// range (::ffff:10.0.0.0/104) is read as the IPv4 range it maps
	// (10.0.0.0/8).
	AllowedRanges []netip.Prefix
	AllowedPorts  []int
	AllowAnyPort  bool

	// Retention is how long finished (success or failed) deliveries are
	// kept before they are purged in the background. Defaults to
	// DefaultRetention; negative disables purging.
	Retention time.Duration
	// PurgeInterval is how often the purge runs, and how often the
	// dispatcher forgets what it keeps per webhook (counters, lowered
	// concurrency limits) of webhooks deleted since. Defaults to
	// DefaultPurgeInterval; at least MinInterval (1 ms).
	PurgeInterval time.Duration
}

// withDefaults returns a copy of c (nil allowed) with every zero field set
// to its default.
func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
		out.AllowedRanges = append([]netip.Prefix(nil), c.AllowedRanges...)
		out.AllowedPorts = append([]int(nil), c.AllowedPorts...)
	}
	if out.Catalog == nil {
		out.Catalog = NewCatalog()
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Hooks == nil {
		out.Hooks = NopHooks{}
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Workers == 0 {
		out.Workers = DefaultWorkers
	}
	if out.PerWebhookConcurrency == 0 {
		out.PerWebhookConcurrency = max(1, min(DefaultPerWebhookConcurrency, out.Workers/4))
	}
	if out.ClaimBatch == 0 {
		out.ClaimBatch = min(out.Workers, store.MaxPageLimit)
	}
	if out.PollInterval == 0 {
		out.PollInterval = DefaultPollInterval
	}
	if out.Timeout == 0 {
		out.Timeout = DefaultTimeout
	}
	if out.Lease == 0 {
		out.Lease = max(addSat(out.Timeout, time.Minute), minLease(out.Timeout))
	}
	if out.MaxPayloadBytes == 0 {
		out.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if out.MaxResponseBytes == 0 {
		out.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if out.UserAgent == "" {
		out.UserAgent = DefaultUserAgent
	}
	if out.WebhookCacheTTL == 0 {
		out.WebhookCacheTTL = DefaultWebhookCacheTTL
	}
	if out.Retention == 0 {
		out.Retention = DefaultRetention
	}
	if out.PurgeInterval == 0 {
		out.PurgeInterval = DefaultPurgeInterval
	}
	out.Retry = out.Retry.withDefaults()
	return out
}

// validate reports the first setting that cannot work, after withDefaults.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("webhook: config: "+format, args...))
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		bad("Workers is %d, want 1 to %d", c.Workers, MaxWorkers)
	}
	if c.PerWebhookConcurrency < 1 {
		bad("PerWebhookConcurrency is %d, want at least 1", c.PerWebhookConcurrency)
	}
	if c.ClaimBatch < 1 || c.ClaimBatch > store.MaxPageLimit {
		bad("ClaimBatch is %d, want 1 to %d", c.ClaimBatch, store.MaxPageLimit)
	}
	if c.PollInterval < MinInterval {
		bad("PollInterval is %v, want at least %v", c.PollInterval, MinInterval)
	}
	if c.Timeout < MinInterval {
		bad("Timeout is %v, want at least %v", c.Timeout, MinInterval)
	}
	if least := minLease(c.Timeout); c.Lease < least || c.Lease-c.Lease/4 < c.Timeout {
		bad("Lease is %v, want at least %v (Timeout %v plus a third): an attempt is sent only while its lease has Timeout left, "+
			"and a delivery may wait a quarter of its lease first", c.Lease, least, c.Timeout)
	}
	if c.MaxPayloadBytes < 0 {
		bad("MaxPayloadBytes is %d, want positive", c.MaxPayloadBytes)
	}
	if c.MaxResponseBytes < 0 {
		bad("MaxResponseBytes is %d, want positive", c.MaxResponseBytes)
	}
	if c.PurgeInterval < MinInterval {
		bad("PurgeInterval is %v, want at least %v", c.PurgeInterval, MinInterval)
	}
	if c.Transport != nil && (len(c.AllowedRanges) > 0 || len(c.AllowedPorts) > 0 || c.AllowAnyPort) {
		bad("AllowedRanges, AllowedPorts and AllowAnyPort configure the default transport, and Transport replaces it: " +
			"set them in the TransportOptions of NewTransport instead")
	}
	if !(c.Retry.Multiplier >= 1) { // NaN too
		bad("Retry.Multiplier is %v, want at least 1", c.Retry.Multiplier)
	}
	if c.Retry.MaxRetryAfter < c.Retry.MinRetryAfter {
		bad("Retry.MaxRetryAfter %v is below Retry.MinRetryAfter %v", c.Retry.MaxRetryAfter, c.Retry.MinRetryAfter)
	}
	if !(c.Retry.Jitter < 1) { // NaN too
		bad("Retry.Jitter is %v, want below 1", c.Retry.Jitter)
	}
	return errors.Join(errs...)
}

// minLease is the shortest Lease that works with timeout: the dispatcher
// sends an attempt only while its lease has timeout left (see deliver), and
// lets a claimed delivery wait up to a quarter of its lease for a slot of
// its webhook (see releaseParked), so lease - lease/4 must cover timeout:
// timeout plus a third of it (rounded up) does. It saturates rather than
// overflow (no Lease works with a Timeout above three quarters of the
// largest Duration).
func minLease(timeout time.Duration) time.Duration {
	if timeout < 1 {
		return timeout
	}
	return addSat(timeout, (timeout+2)/3)
}

// addSat returns a+b for non-negative b, or the largest Duration when the
// sum overflows.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
