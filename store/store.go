// Package store defines the records the webhook library persists and the
// Store interface every storage backend implements.
//
// It is a leaf package: of this module it imports only internal/redact (the
// rules of what its records hide when printed or logged), so a backend
// (memstore, boltstore, pgstore, or a third party's) never depends on the
// delivery engine. The exported conformance suite in store/storetest is the
// single definition of correct behaviour for any Store.
package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Sentinel errors returned by every Store. Callers match them with errors.Is.
var (
	// ErrNotFound reports that no record has the given id.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports that the operation conflicts with the record's
	// current state: an id already in use, or a redelivery of a delivery that
	// is still pending.
	ErrConflict = errors.New("store: conflict")
	// ErrLeaseLost reports that a Complete or Release named an owner that no
	// longer holds the delivery's lease (it expired and another owner may have
	// claimed it). Nothing was changed.
	ErrLeaseLost = errors.New("store: lease lost")
	// ErrInvalid reports input a Store refuses: a nil record, an empty id, a
	// listing or Claim limit outside 1..MaxPageLimit, a negative Purge
	// limit, a malformed cursor, a string longer than the store can index
	// (every store keeps ids, tenants and event ids of 1,000 bytes).
	ErrInvalid = errors.New("store: invalid input")
	// ErrClosed reports a call on a Store after Close.
	ErrClosed = errors.New("store: closed")
	// ErrLimit reports a CreateWebhookCapped refused because the tenant
	// has as many webhooks as the cap allows. Nothing was changed.
	ErrLimit = errors.New("store: limit reached")
)

// CappedCreator is implemented by a Store that can cap a tenant's webhooks
// atomically; the three stores of this module do. The Registry uses it
// when its store has it (see webhook.RegistryOptions.MaxWebhooks), and
// otherwise counts the tenant's webhooks before CreateWebhook, a check
// that concurrent creates can overshoot.
type CappedCreator interface {
	// CreateWebhookCapped is CreateWebhook, unless w.Tenant has limit
	// webhooks or more already: it then stores nothing and returns
	// ErrLimit. The count and the write are one step, so concurrent calls
	// never take a tenant past limit. An id in use is ErrConflict, as in
	// CreateWebhook, whatever the count. A limit of 0 or less is no cap.
	CreateWebhookCapped(ctx context.Context, w *Webhook, limit int) error
}

// Status is the state of a delivery, in the guide's words.
type Status string

// The states a delivery moves through: pending until an attempt succeeds
// (success) or the retry budget is spent (failed). A failed or successful
// delivery becomes pending again only through Redeliver.
const (
	// StatusPending is a delivery waiting for its next attempt, or in one.
	StatusPending Status = "pending"
	// StatusSuccess is a delivery an endpoint answered with a 2xx.
	StatusSuccess Status = "success"
	// StatusFailed is a delivery that ended without success; only
	// Redeliver makes it pending again.
	StatusFailed Status = "failed"
)

// Valid reports whether s is one of the three statuses.
func (s Status) Valid() bool {
	return s == StatusPending || s == StatusSuccess || s == StatusFailed
}

// Finished reports whether s is a final state (success or failed).
func (s Status) Finished() bool { return s == StatusSuccess || s == StatusFailed }

// Secret is one signing secret of a webhook.
type Secret struct {
	// Value is the secret as shown to the user: "whsec_" + base64 of 32
	// random bytes, or a free-form string the host supplied.
	Value string
	// ExpiresAt is when a previous secret stops signing after a rotation.
	// The zero time means it never expires (the current secret).
	ExpiresAt time.Time
}

// Webhook is a subscription: deliveries of matching events of one tenant go
// to its URL.
type Webhook struct {
	// ID is "wh_" followed by a UUIDv7.
	ID string
	// Tenant is the API caller that owns the webhook. Events reach only the
	// webhooks of their own tenant.
	Tenant string
	// URL is the absolute destination of every delivery.
	URL string
	// Events are the subscribed event types: exact names ("workflow.completed"),
	// prefix wildcards ("agent.*") or "*" for every event.
	Events []string
	// Description is free text for the owner.
	Description string
	// Active webhooks receive deliveries; inactive ones receive none.
	Active bool
	// DisabledReason says why the library deactivated the webhook (for
	// example after a 410 Gone). Empty when active or deactivated by hand.
	DisabledReason string
	// Secrets sign every delivery. Secrets[0] is the current secret; any
	// others are previous secrets still inside their grace period.
	Secrets []Secret
	// Headers are custom request headers sent with every delivery. They never
	// override the headers the library sets.
	Headers map[string]string
	// MaxAttempts overrides the dispatcher's retry budget when positive.
	MaxAttempts int
	// RateLimit caps deliveries per second to this webhook when positive,
	// in each dispatcher that sends them.
	RateLimit float64
	// CreatedAt and UpdatedAt are set by the Store.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Clone returns a deep copy of w: it shares no slice or map with w.
func (w *Webhook) Clone() *Webhook {
	c := *w
	c.Events = slices.Clone(w.Events)
	c.Secrets = slices.Clone(w.Secrets)
	c.Headers = maps.Clone(w.Headers)
	return &c
}

// Delivery is one event to be delivered to one webhook, with its state.
type Delivery struct {
	// ID is "del_" followed by a UUIDv7, so ids sort by creation time.
	ID        string
	WebhookID string
	// EventID is the "id" of the payload ("evt_…"). (EventID, WebhookID) is
	// unique: enqueuing it twice stores one delivery.
	EventID   string
	EventType string
	Tenant    string
	// Body holds the exact bytes sent on every attempt.
	Body   []byte
	Status Status
	// Attempts counts every attempt ever made; attempt numbers run from 1.
	Attempts int
	// RoundAttempts counts the attempts since the delivery was enqueued or
	// last redelivered, except those completed with KeepRoundAttempts
	// (see CompleteParams); the retry budget applies to it.
	RoundAttempts int
	// NextAttemptAt is when a pending delivery becomes due.
	NextAttemptAt time.Time
	// LeaseOwner and LeaseExpiresAt are set by Claim, or by Enqueue for a
	// delivery enqueued already leased (see Store.Enqueue). A delivery whose
	// lease has not expired cannot be claimed again.
	LeaseOwner     string
	LeaseExpiresAt time.Time
	// LastStatusCode and LastError summarise the latest attempt.
	LastStatusCode int
	LastError      string
	// CreatedAt is set by the Store on Enqueue (when zero); UpdatedAt on
	// every change.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ErrorClass classifies why an attempt failed.
type ErrorClass string

// The error classes of an attempt. An attempt that got a 2xx has none.
const (
	// ErrorNone is the class of an attempt that did not fail.
	ErrorNone ErrorClass = ""
	// ErrorHTTPStatus is a response other than 2xx.
	ErrorHTTPStatus ErrorClass = "http_status"
	// ErrorTimeout is an attempt that did not end within its timeout.
	ErrorTimeout ErrorClass = "timeout"
	// ErrorRefused is a connection the destination refused.
	ErrorRefused ErrorClass = "connection_refused"
	// ErrorReset is a connection the destination reset.
	ErrorReset ErrorClass = "connection_reset"
	// ErrorDNS is a host name that did not resolve.
	ErrorDNS ErrorClass = "dns"
	// ErrorTLS is a failed TLS handshake or certificate check.
	ErrorTLS ErrorClass = "tls"
	// ErrorBlocked is a destination the SSRF guard refused.
	ErrorBlocked ErrorClass = "blocked_destination"
	// ErrorNetwork is any other transport error.
	ErrorNetwork ErrorClass = "network"
	// ErrorCanceled is an attempt cut short because the dispatcher
	// stopped; it spends none of the retry budget.
	ErrorCanceled ErrorClass = "canceled"
)

// Attempt is the log of one HTTP attempt of a delivery.
type Attempt struct {
	DeliveryID string
	// Number is 1 for the first attempt, and increases by one per attempt.
	Number    int
	StartedAt time.Time
	Duration  time.Duration
	// RequestURL and RequestHeaders are what was sent; secrets never appear
	// in them (signatures do, they reveal nothing).
	RequestURL     string
	RequestHeaders http.Header
	// ResponseStatus is 0 when no response arrived.
	ResponseStatus  int
	ResponseHeaders http.Header
	// ResponseBody is capped by the dispatcher (4 KiB by default).
	ResponseBody []byte
	ErrorClass   ErrorClass
	// Error is a message without secrets or credentials.
	Error string
}

// Counts tallies a webhook's deliveries by status.
type Counts struct {
	Pending int64
	Success int64
	Failed  int64
}

// ListWebhooksParams selects a page of one tenant's webhooks, newest first.
type ListWebhooksParams struct {
	// Tenant is required: listings never cross tenants.
	Tenant string
	// Cursor is the NextCursor of the previous page; empty for the first.
	Cursor string
	// Limit is the page size, 1 to 1000.
	Limit int
}

// ListDeliveriesParams selects a page of deliveries, newest first.
type ListDeliveriesParams struct {
	// Tenant is required.
	Tenant string
	// WebhookID, Status and EventType filter when set.
	WebhookID string
	Status    Status
	EventType string
	// Cursor is the NextCursor of the previous page; empty for the first.
	Cursor string
	// Limit is the page size, 1 to 1000.
	Limit int
	// WithoutBody leaves every returned delivery's Body nil, for views
	// that do not show it (a list, a chart): a page of large payloads is
	// then not read, nor copied.
	WithoutBody bool
}

// ClaimParams selects due deliveries to lease.
type ClaimParams struct {
	// Now decides which deliveries are due (NextAttemptAt <= Now) and whose
	// leases have expired (LeaseExpiresAt <= Now).
	Now time.Time
	// Limit is the most deliveries returned, at least 1.
	Limit int
	// Lease is how long the claim holds; positive.
	Lease time.Duration
	// Owner names the claimer; required.
	Owner string
	// SkipWebhooks are webhook ids whose deliveries must not be claimed
	// (the caller is already at its concurrency cap for them).
	SkipWebhooks []string
}

// ValidateEnqueue reports, as an error wrapping ErrInvalid, a batch that no
// Store's Enqueue accepts: a nil delivery; one without ID, WebhookID,
// EventID, EventType or Tenant; one whose Status is neither "" nor pending;
// one with a LeaseOwner but no LeaseExpiresAt. Every Store calls it before
// enqueuing.
func ValidateEnqueue(ds []*Delivery) error {
	for i, d := range ds {
		switch {
		case d == nil:
			return fmt.Errorf("delivery %d is nil: %w", i, ErrInvalid)
		case d.ID == "" || d.WebhookID == "" || d.EventID == "" || d.EventType == "" || d.Tenant == "":
			return fmt.Errorf("delivery %d lacks an id, webhook id, event id, event type or tenant: %w", i, ErrInvalid)
		case d.Status != "" && d.Status != StatusPending:
			return fmt.Errorf("delivery %q is enqueued with status %q: %w", d.ID, d.Status, ErrInvalid)
		case d.LeaseOwner != "" && d.LeaseExpiresAt.IsZero():
			return fmt.Errorf("delivery %q is enqueued leased without LeaseExpiresAt: %w", d.ID, ErrInvalid)
		}
	}
	return nil
}

// Validate reports, as an error wrapping ErrInvalid, ClaimParams that no
// Store accepts: no Now, no Owner, a Lease that is not positive, or a Limit
// outside 1..MaxPageLimit. Every Store calls it before claiming.
func (p ClaimParams) Validate() error {
	switch {
	case p.Now.IsZero():
		return fmt.Errorf("claim without Now: %w", ErrInvalid)
	case p.Owner == "":
		return fmt.Errorf("claim without owner: %w", ErrInvalid)
	case p.Lease <= 0:
		return fmt.Errorf("claim with lease %v: %w", p.Lease, ErrInvalid)
	case p.Limit < 1 || p.Limit > MaxPageLimit:
		return fmt.Errorf("claim limit %d outside 1..%d: %w", p.Limit, MaxPageLimit, ErrInvalid)
	}
	return nil
}

// CompleteParams records one attempt and moves the delivery to its next state.
type CompleteParams struct {
	// DeliveryID and Owner identify the leased delivery. ErrLeaseLost when
	// Owner no longer holds the lease.
	DeliveryID string
	Owner      string
	// Attempt is appended to the delivery's attempt log; required. Its
	// Number must be the delivery's Attempts + 1.
	Attempt *Attempt
	// Status is the next state. When pending, NextAttemptAt is when the
	// delivery is due again; but a delivery whose webhook is inactive is
	// not retried: it becomes failed instead, its NextAttemptAt unchanged.
	Status        Status
	NextAttemptAt time.Time
	// KeepRoundAttempts leaves RoundAttempts unchanged: the attempt is
	// logged and Attempts grows, but it spends none of the retry budget. A
	// dispatcher sets it for an attempt it cut short itself (it was
	// stopping). Only with Status pending; should the delivery fail instead
	// (its webhook is inactive), the attempt counts.
	KeepRoundAttempts bool
	// DisableWebhook, when set, deactivates the delivery's webhook with this
	// reason, atomically with the attempt (the receiver answered 410 Gone).
	// Every other pending delivery of the webhook fails with it, but for
	// those under a live lease (LeaseExpiresAt after Now): their attempts
	// are in flight, and their owners' Completes record them as usual, the
	// deliveries ending as the attempts say (a retry fails, the webhook
	// being inactive).
	DisableWebhook string
	// Now is the time written to UpdatedAt.
	Now time.Time
}

// Outcome returns what a Store records for p, given whether the
// delivery's webhook is active: the delivery's next status (failed instead
// of pending when the webhook is inactive or p disables it) and whether the
// attempt counts toward RoundAttempts (every attempt, but one completed
// with KeepRoundAttempts that leaves the delivery pending).
func (p CompleteParams) Outcome(webhookActive bool) (status Status, countsRound bool) {
	status = p.Status
	if status == StatusPending && (!webhookActive || p.DisableWebhook != "") {
		status = StatusFailed
	}
	return status, !p.KeepRoundAttempts || status != StatusPending
}

// Validate reports, as an error wrapping ErrInvalid, CompleteParams that no
// Store accepts: no DeliveryID, Owner, Attempt or Now, an Attempt of another
// delivery, an unknown Status, pending without NextAttemptAt, or
// KeepRoundAttempts with a Status other than pending. Every Store calls it
// before completing.
func (p CompleteParams) Validate() error {
	switch {
	case p.DeliveryID == "" || p.Owner == "":
		return fmt.Errorf("complete without delivery id or owner: %w", ErrInvalid)
	case p.Attempt == nil:
		return fmt.Errorf("complete of %q without an attempt: %w", p.DeliveryID, ErrInvalid)
	case p.Attempt.DeliveryID != "" && p.Attempt.DeliveryID != p.DeliveryID:
		return fmt.Errorf("attempt of %q completes %q: %w", p.Attempt.DeliveryID, p.DeliveryID, ErrInvalid)
	case !p.Status.Valid():
		return fmt.Errorf("complete with status %q: %w", p.Status, ErrInvalid)
	case p.Status == StatusPending && p.NextAttemptAt.IsZero():
		return fmt.Errorf("complete to pending without NextAttemptAt: %w", ErrInvalid)
	case p.KeepRoundAttempts && p.Status != StatusPending:
		return fmt.Errorf("complete to %s with KeepRoundAttempts: %w", p.Status, ErrInvalid)
	case p.Now.IsZero():
		return fmt.Errorf("complete without Now: %w", ErrInvalid)
	}
	return nil
}

// ReleaseParams gives up leases so the deliveries are claimable at once.
type ReleaseParams struct {
	Owner string
	IDs   []string
}

// RedeliverParams puts a finished delivery back in the queue.
type RedeliverParams struct {
	ID string
	// Now is when the delivery becomes due.
	Now time.Time
}

// PurgeParams removes finished deliveries.
type PurgeParams struct {
	// Before removes success and failed deliveries last updated before it,
	// with their attempts. Pending deliveries are never purged.
	Before time.Time
	// Limit bounds how many are removed in one call; 0 means no bound.
	Limit int
}

// Store persists webhooks, deliveries and attempts. Implementations must be
// safe for concurrent use, return copies (a caller may modify what it gets
// without changing the stored record), honour ctx cancellation, and return
// the sentinel errors above, wrapped as they like.
type Store interface {
	// Ping reports whether the store is usable.
	Ping(ctx context.Context) error

	// CreateWebhook stores w, whose ID must be set. It sets CreatedAt and
	// UpdatedAt when zero. ErrConflict when the ID exists.
	CreateWebhook(ctx context.Context, w *Webhook) error
	// GetWebhook returns the webhook with the given id, of any tenant.
	GetWebhook(ctx context.Context, id string) (*Webhook, error)
	// ListWebhooks returns a page and the cursor of the next one ("" at the end).
	ListWebhooks(ctx context.Context, p ListWebhooksParams) ([]*Webhook, string, error)
	// UpdateWebhook changes the webhook id in one transaction: it reads the
	// stored webhook, calls change with a copy of it and stores what change
	// leaves, so concurrent updates never undo each other. ID, Tenant and
	// CreatedAt stay as stored whatever change does; a zero UpdatedAt
	// becomes the time of the update. An error from change aborts the
	// update and is returned as it is. change may be called more than
	// once (on a retried transaction), each time with a fresh copy, so it
	// must not keep what it is given or change anything else. It returns
	// the webhook as stored; ErrNotFound when absent.
	UpdateWebhook(ctx context.Context, id string, change func(w *Webhook) error) (*Webhook, error)
	// DeleteWebhook removes the webhook with its deliveries and attempts.
	DeleteWebhook(ctx context.Context, id string) error
	// MatchWebhooks returns the active webhooks of tenant subscribed to
	// eventType (see MatchEvent), oldest first.
	MatchWebhooks(ctx context.Context, tenant, eventType string) ([]*Webhook, error)

	// Enqueue stores deliveries atomically: all or none. A delivery whose
	// (EventID, WebhookID) is already stored, or earlier in the batch, is a
	// duplicate: it is not stored again, and its own ID is not looked at.
	// It returns, for each input in order, the id of the stored delivery:
	// the new one, or the existing one for a duplicate. ErrConflict when
	// two deliveries it would store, or one it would store and one stored
	// already, have the same ID.
	//
	// A delivery given with a LeaseOwner is stored under that lease, until
	// LeaseExpiresAt: Claim passes it over until the lease expires, and its
	// owner may Complete or Release it as if it had claimed it. A
	// dispatcher uses this to send at once what it has just stored, without
	// claiming it back. A duplicate is not leased (its slot holds the
	// existing id, not the one given).
	Enqueue(ctx context.Context, ds []*Delivery) ([]string, error)
	// Claim leases up to Limit pending deliveries that are due and not under
	// a live lease, oldest NextAttemptAt first. A delivery is never handed to
	// two claimers while its lease is live. A store that no other process
	// can share (memstore, boltstore) may keep its leases in memory only:
	// closing it then ends them.
	Claim(ctx context.Context, p ClaimParams) ([]*Delivery, error)
	// Complete records an attempt and moves the delivery to its next state,
	// releasing the lease.
	Complete(ctx context.Context, p CompleteParams) error
	// Release gives up the owner's leases on the given deliveries; ids not
	// leased by the owner are ignored.
	Release(ctx context.Context, p ReleaseParams) error
	// GetDelivery returns one delivery.
	GetDelivery(ctx context.Context, id string) (*Delivery, error)
	// ListDeliveries returns a page and the cursor of the next one.
	ListDeliveries(ctx context.Context, p ListDeliveriesParams) ([]*Delivery, string, error)
	// ListAttempts returns a delivery's attempts in order.
	ListAttempts(ctx context.Context, deliveryID string) ([]*Attempt, error)
	// Redeliver makes a finished delivery pending and due at p.Now, with a
	// fresh retry budget (RoundAttempts = 0). ErrConflict when it is pending.
	Redeliver(ctx context.Context, p RedeliverParams) (*Delivery, error)
	// Purge removes finished deliveries and returns how many.
	Purge(ctx context.Context, p PurgeParams) (int, error)
	// CountDeliveries tallies one webhook's deliveries by status.
	CountDeliveries(ctx context.Context, webhookID string) (Counts, error)

	// Close releases the store's resources. Calls after Close return ErrClosed.
	Close() error
}

// MaxPageLimit is the largest page a listing returns.
const MaxPageLimit = 1000

// MatchEvent reports whether the subscription pattern matches eventType:
// "*" matches every type, "prefix.*" matches every type that starts with
// "prefix.", anything else must equal eventType.
func MatchEvent(pattern, eventType string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(eventType, pattern[:len(pattern)-1])
	default:
		return pattern == eventType
	}
}

// MatchAny reports whether any of patterns matches eventType.
func MatchAny(patterns []string, eventType string) bool {
	for _, p := range patterns {
		if MatchEvent(p, eventType) {
			return true
		}
	}
	return false
}
