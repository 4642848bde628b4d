// Package webhook sends signed webhooks reliably: a host emits events, the
// library stores one delivery per subscribed webhook and delivers it over
// HTTP with retries, signatures and a guard against server-side request
// forgery. The subpackage receiver is the other side: net/http middleware
// that verifies, deduplicates and routes what this package sends.
//
// # Sending
//
// A [Registry] manages each tenant's webhooks: it validates URLs, event
// patterns and custom headers (refusals are [*ValidationError], matching
// [ErrValidation]), generates "wh_" ids and "whsec_" secrets, rotates
// secrets with a grace period, and reports another tenant's webhook as
// [ErrNotFound], exactly like a missing one. The [Catalog] holds the event
// types a host emits (the guide's, plus its own through [Catalog.Register]);
// subscriptions name a type, "prefix.*" or "*".
//
// A [Dispatcher], built with [New], turns each [Event] given to
// [Dispatcher.Emit] into durable deliveries (one per active matching
// webhook, never two for the same event id while the first is kept; see
// [Config.Retention]), then delivers them in the background once
// [Dispatcher.Start] runs. Every body has the guide's envelope,
// {"id","event","timestamp","webhookId","data","metadata"}, and its data
// is [CanonicalJSON]: the bytes JavaScript's
// JSON.stringify(JSON.parse(body)) gives back, so receivers that re-encode the
// parsed body (as the guide's sample does) still compute the same signature.
// Integers above 2^53 lose precision in that form, as in JavaScript: send
// large ids as strings. Typed data for the guide's examples is in
// [WorkflowCompletedData], [AgentStatusChangedData] and
// [AgentTaskCompletedData].
//
// [Config.Hooks] reports every attempt and outcome for metrics, and
// [Dispatcher.Stats] and [Dispatcher.WebhookStats] give counters for health
// endpoints. The management REST API of the guide
// ([github.com/noa-server/webhook/api]) and a web dashboard
// ([github.com/noa-server/webhook/dashboard]) serve a Registry and a
// Dispatcher over HTTP, each tenant seeing only its own webhooks. The Example
// of this package does the whole round trip in one process; the programs in
// the module's examples directory are a host (examples/sender), a consumer
// (examples/receiver) and both at once (examples/quickstart).
//
// # Receiving
//
// Receivers verify with a [Verifier], or better with the middleware of
// [github.com/noa-server/webhook/receiver], which adds idempotency by event
// id, an IP allowlist and typed routing. Each delivery carries
// two signatures: the guide's X-Webhook-Signature ("sha256=" + hex
// HMAC-SHA256 of the raw body, keyed with the whole secret) and the Standard
// Webhooks headers webhook-id, webhook-timestamp and webhook-signature,
// which bind a timestamp so a captured request cannot be replayed later. A
// [Signer] produces both; [SignLegacy] and [SignStandard] compute one
// signature each. Verify the raw bytes received, never a re-encoded value.
//
// # Stores
//
// Webhooks, deliveries and attempts live in a [store.Store]. The module
// ships an in-memory store ([github.com/noa-server/webhook/store/memstore],
// for tests and single processes), a bbolt file store
// ([github.com/noa-server/webhook/store/boltstore], the embedded default
// for one process) and a PostgreSQL store
// ([github.com/noa-server/webhook/store/pgstore]) that several replicas
// share: they claim deliveries under leases without waiting on each other,
// and a replica that dies loses its leases when they expire ([Config.Lease]).
// All pass the same conformance suite,
// [github.com/noa-server/webhook/store/storetest].
//
// # Retries
//
// A 2xx whose body ends within [Config.Timeout] is a success; every other
// status (redirects are not followed), a timeout (a body that stalls past
// [Config.Timeout] included, whatever its status), a network or TLS error, or
// a destination the SSRF guard refuses is a failed attempt, retried
// with exponential backoff and jitter per [RetryPolicy] until the webhook's
// or the dispatcher's attempt budget is spent, when the delivery becomes
// failed. By default a delivery is attempted five times over about 43
// minutes ([DefaultMaxAttempts] lists the schedule). A Retry-After header
// on a 429, 502, 503 or 504 answer sets the next attempt, within bounds. A
// 410 Gone disables the webhook. An attempt cancelled by [Dispatcher.Stop]
// is logged but spends none of the budget. [Dispatcher.Redeliver] sends a
// finished delivery again with a fresh budget.
//
// # Security
//
// Generated secrets are 32 random bytes from crypto/rand; no secret appears
// in errors, logs or attempt records, nor where fmt prints or slog logs a
// [Webhook], a [WebhookInput], a [Signer] or a [Verifier]: each shows
// "[redacted]" for a secret, a credential header's value and a URL's
// query. During a rotation
// ([Registry.RotateSecret]) the webhook-signature header of every delivery
// carries a signature for the new secret and one for each previous secret
// still in its grace period ([ActiveSecrets]), so receivers that verify it
// can switch at their own pace; X-Webhook-Signature carries only the
// current secret's, so a receiver verifying only that header needs the new
// secret at once. Every signature lengthens the headers of every attempt,
// so a rotation with a grace period is refused ([ErrRotationLimit]) while
// [RegistryOptions.MaxPreviousSecrets] previous secrets (5 by default) are
// in their grace period, rather than cut one short; a revocation (grace
// 0) is always accepted.
// The default transport checks every resolved address at dial time, as
// [NewTransport]'s does, and refuses loopback, private, link-local and
// other special ranges; it ignores proxy settings and follows no
// redirect; only ports 80 and 443 are dialled. A [Registry] accepts only
// https URLs. Every webhook belongs to a tenant and an [Event] reaches
// only its tenant's webhooks. A [Verifier] refuses timestamps more than
// [DefaultTolerance] away from its clock and, unless
// [VerifyOptions.AllowLegacy] is set, requests carrying only the
// replayable legacy header (downgrade protection).
//
// For local development against a receiver on the same machine, relax the
// guard with [Config.AllowedRanges] (127.0.0.0/8 and ::1/128) and
// [Config.AllowAnyPort], and accept http URLs with
// [RegistryOptions.AllowHTTP]; never in production.
//
// # Shutdown
//
// [Dispatcher.Stop] stops claiming work, gives back unsent what it claimed
// and has not sent, waits for the attempts in flight to be recorded and
// returns when no goroutine is left; if its context ends first, the
// attempts in flight are cancelled and left due at once for another
// process, with their retry budget intact. Deliveries are stored
// before Emit returns, so nothing emitted is lost by a stop or a crash: an
// unfinished delivery is attempted again after its lease expires.
package webhook
