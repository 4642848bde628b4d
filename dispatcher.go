package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/noa-server/webhook/internal/redact"
	"github.com/noa-server/webhook/store"
)

// Errors of the Dispatcher. Callers match them with errors.Is.
var (
	// ErrInvalidEvent reports an Emit whose event cannot be sent: no tenant
	// or one that is not UTF-8 or holds a NUL byte, a malformed id, a
	// request id over 256 bytes, a Time whose year RFC 3339 cannot write,
	// or data that does not marshal to JSON. Nothing is stored.
	ErrInvalidEvent = errors.New("webhook: invalid event")
	// ErrPayloadTooLarge reports event data above Config.MaxPayloadBytes.
	// The error is a *PayloadTooLargeError.
	ErrPayloadTooLarge = errors.New("webhook: payload too large")
	// ErrNotRunning reports a call that needs the delivery loop (SendNow,
	// SendTest) while the Dispatcher is not started or already stopped.
	ErrNotRunning = errors.New("webhook: dispatcher not running")
	// ErrStopped reports a Start after Stop: a Dispatcher runs once.
	ErrStopped = errors.New("webhook: dispatcher stopped")
	// ErrNoAttempt reports a SendNow or SendTest whose delivery was
	// finished without the attempt it waited for: the store failed it
	// together with its webhook, disabled when another of the webhook's
	// deliveries met 410 Gone.
	ErrNoAttempt = errors.New("webhook: delivery finished without an attempt")
)

// PayloadTooLargeError reports event data larger than the configured cap.
// It matches ErrPayloadTooLarge.
type PayloadTooLargeError struct {
	// Size is the length of the marshalled data; Limit the cap.
	Size, Limit int
}

// Error says how large the data was and what the limit is.
func (e *PayloadTooLargeError) Error() string {
	return fmt.Sprintf("webhook: event data is %d bytes, above the %d-byte limit", e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrPayloadTooLarge) true.
func (e *PayloadTooLargeError) Is(target error) bool { return target == ErrPayloadTooLarge }

// DeliveryError describes a failed attempt: the response status or the
// transport failure. It is what Hooks.DeliveryFailed receives.
type DeliveryError struct {
	DeliveryID string
	WebhookID  string
	// Attempt is the attempt number, from 1.
	Attempt int
	// StatusCode is the response status, 0 when none arrived.
	StatusCode int
	// Class classifies the failure.
	Class store.ErrorClass
	// Message describes the failure without secrets.
	Message string
}

// Error describes the failed attempt without secrets or the URL.
func (e *DeliveryError) Error() string {
	return fmt.Sprintf("webhook: delivery %s attempt %d: %s", e.DeliveryID, e.Attempt, e.Message)
}

// Unwrap returns ErrBlockedDestination for a refused destination and
// context.DeadlineExceeded for a timeout, so errors.Is works on them.
func (e *DeliveryError) Unwrap() error {
	switch e.Class {
	case store.ErrorBlocked:
		return ErrBlockedDestination
	case store.ErrorTimeout:
		return context.DeadlineExceeded
	}
	return nil
}

// EmitResult tells what Emit stored.
type EmitResult struct {
	// EventID is the payload id: the Event's ID, or the one generated.
	EventID string
	// DeliveryIDs holds one delivery id per matching webhook, in the order
	// of WebhookIDs. A repeated Emit of the same EventID returns the
	// existing deliveries' ids.
	DeliveryIDs []string
	WebhookIDs  []string
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// Dispatcher emits events and delivers them: it fans each event out to the
// matching webhooks, stores the deliveries, and runs the delivery loop that
// claims due deliveries, sends them, records every attempt and schedules
// retries. It is safe for concurrent use.
//
// Every attempt is a POST of the delivery's stored body (the same bytes on
// every attempt) with these headers, which a webhook's custom headers never
// replace:
//
//	Content-Type        application/json
//	User-Agent          Config.UserAgent
//	X-Webhook-Id        the webhook's id ("wh_…")
//	X-Webhook-Event     the event type
//	X-Webhook-Delivery  the delivery's id ("del_…")
//	X-Webhook-Attempt   the attempt number, from 1
//	X-Webhook-Signature "sha256=" + hex HMAC of the body with the current secret
//	Webhook-Id          the event's id (the payload "id"), the same on every attempt
//	Webhook-Timestamp   Unix seconds of this attempt
//	Webhook-Signature   one "v1,<base64>" per active secret (Standard Webhooks)
//
// A 2xx answer succeeds. Anything else fails the attempt and is retried on
// the RetryPolicy's schedule: other statuses (3xx included: redirects are
// never followed), timeouts (a response whose body stalls past
// Config.Timeout included, whatever its status), connection and TLS errors,
// and destinations the SSRF guard refuses. 410 Gone fails the delivery at
// once and disables the webhook, failing its other pending deliveries;
// attempts of them already in flight are recorded when they end, and a
// delivery they would retry fails instead.
//
// Delivery is at least once: a delivery whose attempt was in flight when its
// process died is attempted again once its lease expires.
//
// The zero value is not usable; call New.
type Dispatcher struct {
	st     store.Store
	cfg    Config
	rt     http.RoundTripper // Config.Transport, or the default's for HTTP/2
	h1     *h1Transport      // the default transport's own client, or nil
	log    *slog.Logger
	hooksI Hooks
	// userAgent is the User-Agent header's value, shared by every attempt.
	userAgent []string

	wake chan struct{} // capacity 1: new work or a free slot

	mu       sync.Mutex
	state    int
	inflight int // attempts claimed and not yet recorded
	sending  int // of which not yet answered: sending or waiting for a worker (see work)
	reserved int // worker slots reserved by running claims
	claiming int // claims running
	// dueSeq counts the moments the store may have got due deliveries this
	// process has not claimed (an Emit that stored some unleased, a
	// redelivery, a poll, another replica's wake-up, a claim that filled
	// its limit); clearSeq is the latest of them after which a claim found
	// nothing more. The store may hold unclaimed due work exactly when they
	// differ: only then do freed workers claim, and only when they are
	// equal does Emit hand its deliveries to the workers directly.
	dueSeq, clearSeq uint64
	// blocked holds the webhooks passed over by the last claim that found
	// nothing more (at their concurrency cap): their due deliveries may
	// still wait in the store, so a finishing attempt of one of them
	// claims again, and Emit does not go around them.
	blocked map[string]bool
	// parkedHooks holds the webhooks with parked deliveries (see
	// hookState.parked); parked counts those deliveries, at most Workers.
	parkedHooks map[string]bool
	parked      int
	// held holds the deliveries in flight here (counted in inflight), to
	// whether a claim has returned one of them again meanwhile: a clock
	// that jumped past their leases makes them look free. A claim never
	// sends one of them twice; the lease it took is given back once the
	// attempt in flight is done.
	held  map[string]bool
	hooks map[string]*hookState
	// limits holds the lowered concurrency limits of webhooks whose
	// attempts timed out (see Config.PerWebhookConcurrency); a webhook
	// without an entry has PerWebhookConcurrency.
	limits  map[string]int
	waiters map[string][]chan attemptDone
	cache   map[string]*target
	// cacheEpoch grows whenever a webhook is dropped from cache (see
	// forgetLocked).
	cacheEpoch uint64
	stats      counters
	stopLoop   context.CancelFunc
	abortWork  context.CancelFunc
	loopDone   chan struct{}
	stopped    chan struct{}  // closed when Stop begins
	done       chan struct{}  // closed when Stop has finished
	workers    sync.WaitGroup // attempts started and not yet recorded
	// The pool of goroutines that run the attempts (see startWork): pool
	// counts them. Under poolMu (taken after mu when both are): idle holds
	// those waiting for a delivery, the last to finish on top; slotsUsed
	// counts the worker slots taken, by the deliveries handed to them and
	// not yet answered (at most Workers until Stop begins); queued holds
	// the deliveries waiting for a slot, in order; poolClosed, set by
	// Stop, ends the goroutines.
	poolMu     sync.Mutex
	idle       []poolWorker
	slotsUsed  int
	queued     []*store.Delivery
	queuedArr  []*store.Delivery // queued's largest array so far
	poolClosed bool
	pool       sync.WaitGroup

	// recordCtx is the context of the attempts' records: it outlives
	// workCtx by recordGrace, so an attempt made when Stop gives up
	// waiting is still recorded (see Stop).
	recordCtx   context.Context
	abortRecord context.CancelFunc
}

// hookState is the dispatcher's per-webhook bookkeeping, guarded by mu.
type hookState struct {
	inflight int       // as Dispatcher.inflight, for this webhook
	sending  int       // as Dispatcher.sending, for this webhook
	rate     float64   // the webhook's RateLimit at the last claim, 0 for none
	nextSlot time.Time // rate limit: earliest start of the next attempt
	slotAt   time.Time // when nextSlot was set
	// parked holds claimed deliveries of this webhook that wait, oldest
	// first, for one of its concurrency slots: a claim (or an Emit) that
	// got more of the webhook's deliveries than its limit lets through
	// keeps them here (up to Workers over all webhooks) instead of giving
	// their leases back and claiming them again. Counted in inflight, not
	// in sending. They wait at most a quarter of their lease (see
	// releaseParked).
	parked []parkedDelivery
	// parking counts the deliveries an Emit has decided to park and is
	// storing: they join parked once stored.
	parking int
}

// waits reports whether the webhook's rate limit holds its next attempt
// back at now. A slot set more than clockStep after now has come: the clock
// went back, and the webhook waits at most clockStep more than its interval,
// however far back it went. (Times read a little apart, before a claim and
// after it, are not a step back.)
func (h *hookState) waits(now time.Time) bool {
	return h.rate > 0 && h.nextSlot.After(now) && !now.Before(h.slotAt.Add(-clockStep))
}

// clockStep is how far back a clock must go for waits to see it.
const clockStep = time.Minute

type parkedDelivery struct {
	del *store.Delivery
	at  time.Time
}

type attemptDone struct {
	d   *store.Delivery
	a   *store.Attempt
	err error
	// released reports a delivery given back without an attempt (see
	// deliver): its waiters wait on for the attempt made after.
	released bool
}

// New returns a Dispatcher over st. cfg may be nil for the defaults; it is
// copied, so later changes to it have no effect. New fails on a nil store or
// an invalid Config, with a message naming the setting.
func New(st store.Store, cfg *Config) (*Dispatcher, error) {
	if st == nil {
		return nil, errors.New("webhook: New: nil store")
	}
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Owner == "" {
		id, err := uuid.NewRandom()
		if err != nil {
			return nil, fmt.Errorf("webhook: owner id: %w", err)
		}
		c.Owner = "dispatcher_" + id.String()
	}
	rt := c.Transport
	var h1 *h1Transport
	if rt == nil {
		o := TransportOptions{
			AllowedRanges:       c.AllowedRanges,
			AllowedPorts:        c.AllowedPorts,
			AllowAnyPort:        c.AllowAnyPort,
			MaxIdleConnsPerHost: c.Workers,
		}
		g, err := newGuard(o) // as NewTransport, but with New's prefix alone
		if err != nil {
			return nil, fmt.Errorf("webhook: config: %w", err)
		}
		// A client of our own (see h1Transport), and net/http's Transport
		// for the servers that speak HTTP/2 over TLS.
		h1 = newH1Transport(guardedDialer(g, o).DialContext, maxIdlePerHost(o))
		// Sending what the client of our own sends, and logging the
		// answer as it came: no Accept-Encoding added, nothing unzipped.
		h2 := newGuardedTransport(g, o)
		h2.DisableCompression = true
		rt = h2
	}
	return &Dispatcher{
		st:          st,
		cfg:         c,
		rt:          rt,
		h1:          h1,
		log:         c.Logger,
		hooksI:      guardHooks(c.Hooks, c.Logger),
		userAgent:   []string{c.UserAgent},
		wake:        make(chan struct{}, 1),
		hooks:       make(map[string]*hookState),
		limits:      make(map[string]int),
		blocked:     make(map[string]bool),
		parkedHooks: make(map[string]bool),
		held:        make(map[string]bool),
		dueSeq:      1, // the store may hold due deliveries when we start
		waiters:     make(map[string][]chan attemptDone),
		cache:       make(map[string]*target),
		stopped:     make(chan struct{}),
		done:        make(chan struct{}),
	}, nil
}

// signal wakes the delivery loop without blocking.
func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// markDue records that the store may hold due deliveries nobody in this
// process has claimed, and wakes the loop to claim them.
func (d *Dispatcher) markDue() {
	d.mu.Lock()
	d.dueSeq++
	d.mu.Unlock()
	d.signal()
}

// claimRoom returns how many deliveries the loop would claim now: 0 when
// the store may hold nothing due for this process, when maxClaims claims
// run, or when the workers are busy and too few are free to make a batch
// worth a claim. d.mu is held.
//
// Those who free workers or mark deliveries due wake the loop whenever
// deliveries may be due, even when claimRoom is 0 and the loop goes back to
// sleep: waking it only when claimRoom is positive cut its wake-ups from
// about 35,000 to 3,400 in a 3 s memstore run, but on boltstore it made the
// group commits smaller (21 calls each instead of 30 in fan-out) and
// fan-out slower in 7 of 8 alternating runs.
func (d *Dispatcher) claimRoom() int {
	if !d.duePending() || d.claiming >= maxClaims {
		return 0
	}
	busy := d.sending + d.reserved
	free := min(maxAdmitted(d.cfg.Workers)-busy, maxInflight(d.cfg.Workers)-d.inflight-d.reserved)
	// Claim in batches: while attempts are in flight or claimed, wait
	// until a few workers are free.
	if free <= 0 || (busy > 0 && free < max(1, min(d.cfg.Workers, d.cfg.ClaimBatch)/4)) {
		return 0
	}
	return min(free, d.cfg.ClaimBatch)
}

// duePending reports whether the store may hold due deliveries this
// process has not claimed. d.mu is held.
func (d *Dispatcher) duePending() bool { return d.dueSeq != d.clearSeq }

// Emit stores one delivery of ev for every active webhook of ev.Tenant
// subscribed to ev.Type, atomically, and returns their ids; the deliveries
// are durable when Emit returns (as durable as the store). A running
// Dispatcher in this process starts delivering them at once.
//
// Emitting an event whose ID was emitted before stores no second delivery
// to a webhook (the first payload is kept): Emit is safe to retry. This
// holds while the first delivery is stored: one purged (Config.Retention
// after it finished) no longer counts, and the ID is delivered again. An
// unknown type (ErrUnknownEventType), a missing tenant or one that is not
// UTF-8 or holds a NUL byte, a malformed id, a request id over 256 bytes,
// a Time whose year RFC 3339 cannot write or data that does not marshal
// (ErrInvalidEvent), or data above the size cap (*PayloadTooLargeError) is
// refused and nothing is stored.
// A matching webhook deleted while Emit runs is left out; the others get
// their deliveries.
func (d *Dispatcher) Emit(ctx context.Context, ev Event) (EmitResult, error) {
	data, err := d.prepare(&ev)
	if err != nil {
		return EmitResult{}, err
	}
	matched := -1 // webhooks kept by the previous try
	for tries := 1; ; tries++ {
		ws, err := d.st.MatchWebhooks(ctx, ev.Tenant, ev.Type)
		if err != nil {
			return EmitResult{}, fmt.Errorf("webhook: emit: match webhooks: %w", err)
		}
		// The store filters; check again so a faulty store cannot leak an
		// event across tenants.
		kept := ws[:0]
		for _, w := range ws {
			if w.Active && w.Tenant == ev.Tenant && store.MatchAny(w.Events, ev.Type) {
				kept = append(kept, w)
			}
		}
		res, err := d.enqueue(ctx, &ev, data, kept)
		// ErrNotFound: a webhook matched was deleted before the deliveries
		// were stored (the store stored none). Match again without it: a
		// few times, and for as long as each match finds fewer webhooks
		// (the tenant is deleting several, each under another try).
		if errors.Is(err, store.ErrNotFound) && (tries < maxEmitTries || len(kept) < matched) {
			matched = len(kept)
			continue
		}
		return res, err
	}
}

// maxEmitTries bounds how often Emit matches again after a matched webhook
// was deleted under it, unless each match finds fewer webhooks than the
// one before.
const maxEmitTries = 3

// prepare validates ev, fills its defaults and returns its canonical data.
func (d *Dispatcher) prepare(ev *Event) ([]byte, error) {
	if !d.cfg.Catalog.Known(ev.Type) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, ev.Type)
	}
	if ev.Tenant == "" {
		return nil, fmt.Errorf("%w: tenant is required", ErrInvalidEvent)
	}
	if !tenantText(ev.Tenant) {
		return nil, fmt.Errorf("%w: tenant is not valid UTF-8 or contains a NUL character", ErrInvalidEvent)
	}
	if ev.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("webhook: event id: %w", err)
		}
		ev.ID = "evt_" + id.String()
	} else if err := checkEventID(ev.ID); err != nil {
		return nil, err
	}
	if len(ev.RequestID) > 256 {
		return nil, fmt.Errorf("%w: request id is %d bytes, at most 256", ErrInvalidEvent, len(ev.RequestID))
	}
	if ev.Time.IsZero() {
		ev.Time = d.cfg.Now()
	}
	if y := ev.Time.UTC().Year(); y < 0 || y > 9999 {
		// The payload's RFC 3339 timestamp has four digits of year.
		return nil, fmt.Errorf("%w: time is in the year %d, outside 0 to 9999", ErrInvalidEvent, y)
	}
	data, err := CanonicalJSON(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: data: %w", ErrInvalidEvent, err)
	}
	if string(data) == "null" {
		// A nil map, slice or pointer: nil data, sent as {} like nil.
		data = append(data[:0], "{}"...)
	}
	if len(data) > d.cfg.MaxPayloadBytes {
		return nil, &PayloadTooLargeError{Size: len(data), Limit: d.cfg.MaxPayloadBytes}
	}
	return data, nil
}

// checkEventID accepts 1 to 128 bytes of letters, digits, '_', '-' and ':'.
// The id is sent as the webhook-id header and signed as id + "." + …, so
// dots, spaces and control characters are refused.
func checkEventID(id string) error {
	if len(id) > 128 {
		return fmt.Errorf("%w: id is %d bytes, at most 128", ErrInvalidEvent, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':') {
			return fmt.Errorf("%w: id %q: only letters, digits, '_', '-' and ':' are allowed", ErrInvalidEvent, id)
		}
	}
	return nil
}

// enqueue builds one body per webhook and stores the deliveries in one call.
func (d *Dispatcher) enqueue(ctx context.Context, ev *Event, data []byte, ws []*store.Webhook) (EmitResult, error) {
	res := EmitResult{EventID: ev.ID}
	if len(ws) == 0 {
		return res, nil
	}
	now := d.cfg.Now()
	// One backing array for every body: each body is a capped sub-slice.
	size := 0
	for _, w := range ws {
		size += bodySize(ev.ID, ev.Type, w.ID, data, ev.RequestID)
	}
	buf := make([]byte, 0, size)
	ds := make([]*store.Delivery, len(ws))
	recs := make([]store.Delivery, len(ws))
	res.WebhookIDs = make([]string, len(ws))
	for i, w := range ws {
		id, err := uuid.NewV7()
		if err != nil {
			return EmitResult{}, fmt.Errorf("webhook: delivery id: %w", err)
		}
		start := len(buf)
		buf = appendBody(buf, ev.ID, ev.Type, ev.Time, w.ID, data, ev.RequestID)
		recs[i] = store.Delivery{
			ID:            "del_" + id.String(),
			WebhookID:     w.ID,
			EventID:       ev.ID,
			EventType:     ev.Type,
			Tenant:        ev.Tenant,
			Body:          buf[start:len(buf):len(buf)],
			Status:        store.StatusPending,
			NextAttemptAt: now,
			CreatedAt:     now,
			UpdatedAt:     now,
		}
		ds[i] = &recs[i]
		res.WebhookIDs[i] = w.ID
	}
	admitted := d.admit(ws, ds, now)
	ids, err := d.st.Enqueue(ctx, ds)
	if err != nil {
		d.mu.Lock()
		for _, a := range admitted {
			d.unadmit(a)
		}
		d.unpark()
		d.mu.Unlock()
		return EmitResult{}, fmt.Errorf("webhook: emit: enqueue: %w", err)
	}
	res.DeliveryIDs = ids
	queued := false
	d.mu.Lock()
	d.stats.emitted += int64(len(ids))
	perCap := d.cfg.PerWebhookConcurrency
	for i, del := range ds {
		if del.LeaseOwner != "" || ids[i] != del.ID {
			continue
		}
		// Stored due. A delivery that waits only for its own webhook (at
		// its limit, with a round parked) is claimed when that webhook
		// frees a slot (see freed): the other webhooks' deliveries still
		// go straight to the workers meanwhile. Anything else is claimed
		// at once.
		w := ws[i]
		if h := d.hooks[w.ID]; d.state == stateRunning && !d.duePending() && w.RateLimit == 0 &&
			h != nil && h.sending >= d.limitOf(w.ID, perCap) {
			d.blocked[w.ID] = true
		} else {
			queued = true
		}
	}
	var release []string
	for i, a := range admitted {
		switch {
		case ids[a.i] != a.del.ID:
			// A duplicate of a stored delivery: nothing new to send.
			d.unadmit(a)
		case a.parked && d.state != stateRunning:
			// Stop has begun (and released what was parked): give the
			// lease back so another process need not wait for it.
			d.unadmit(a)
			release = append(release, a.del.ID)
		case a.parked:
			h := d.hooks[a.del.WebhookID]
			h.parking--
			h.parked = append(h.parked, parkedDelivery{a.del, now})
			d.parkedHooks[a.del.WebhookID] = true
		default:
			d.startWork(a.del)
		}
		admitted[i] = admission{}
	}
	// Slots may have freed while the store worked.
	d.unpark()
	if queued {
		d.dueSeq++
	}
	d.mu.Unlock()
	if len(release) > 0 {
		d.release(ctx, release)
	}
	if queued {
		d.signal()
	}
	return res, nil
}

// admission is a delivery Emit hands to this process's workers.
type admission struct {
	del    *store.Delivery
	i      int  // its index in the batch
	parked bool // it waits for a slot (see hookState.parked)
}

// admit hands to this process's workers, when they have room, the
// deliveries Emit is about to store: it leases them to this dispatcher
// (they are stored leased, so no claim is needed) and counts them as in
// flight, or as parked when their webhook (or every worker) is busy; Emit
// starts or parks them once they are stored. It admits nothing while the
// store may hold due deliveries not yet claimed (those go first, in due
// order). A rate-limited webhook's delivery is admitted only when its next
// slot has come (it takes the slot) and never parked. What it does not admit
// is stored for a claim to find.
func (d *Dispatcher) admit(ws []*store.Webhook, ds []*store.Delivery, now time.Time) []admission {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateRunning || d.duePending() {
		return nil
	}
	perCap := d.cfg.PerWebhookConcurrency
	var out []admission
	for i, del := range ds {
		w := ws[i]
		if d.blocked[w.ID] || d.inflight+d.reserved >= maxInflight(d.cfg.Workers) {
			continue
		}
		h := d.hooks[w.ID]
		if w.RateLimit > 0 && h != nil && h.waits(now) {
			continue
		}
		if h == nil {
			h = &hookState{}
			d.hooks[w.ID] = h
		}
		a := admission{del: del, i: i}
		limit := d.limitOf(w.ID, perCap)
		busy := len(h.parked)+h.parking > 0 || h.sending >= limit || d.sending+d.reserved >= maxAdmitted(d.cfg.Workers)
		switch {
		case busy && (w.RateLimit > 0 || !d.mayPark(h, limit)):
			continue
		case busy:
			a.parked = true
			h.parking++
			d.parked++
		default:
			if w.RateLimit > 0 {
				h.rate, h.nextSlot, h.slotAt = w.RateLimit, now.Add(rateInterval(w.RateLimit)), now
			}
			h.sending++
			d.sending++
			d.workers.Add(1)
		}
		h.inflight++
		d.inflight++
		d.held[del.ID] = false
		del.LeaseOwner, del.LeaseExpiresAt = d.cfg.Owner, now.Add(d.cfg.Lease)
		out = append(out, a)
	}
	return out
}

// unadmit undoes admit for a delivery that will not be sent. d.mu is held.
func (d *Dispatcher) unadmit(a admission) {
	d.inflight--
	delete(d.held, a.del.ID)
	h := d.hooks[a.del.WebhookID]
	h.inflight--
	if a.parked {
		h.parking--
		d.parked--
	} else {
		d.sending--
		h.sending--
		d.workers.Done()
	}
	if h.inflight <= 0 && h.rate == 0 {
		delete(d.hooks, a.del.WebhookID)
	}
}

// Start checks the store and starts the delivery loop and the background
// purge. ctx bounds the check only; the loop runs until Stop. Starting a
// running Dispatcher does nothing; starting a stopped one returns ErrStopped.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	state := d.state
	d.mu.Unlock()
	switch state {
	case stateRunning:
		return nil
	case stateStopped:
		return ErrStopped
	}
	if err := d.st.Ping(ctx); err != nil {
		return fmt.Errorf("webhook: start: store: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.state {
	case stateRunning:
		return nil
	case stateStopped:
		return ErrStopped
	}
	base := context.WithoutCancel(ctx)
	loopCtx, stopLoop := context.WithCancel(base)
	workCtx, abortWork := context.WithCancel(base)
	d.recordCtx, d.abortRecord = context.WithCancel(base)
	d.stopLoop, d.abortWork = stopLoop, abortWork
	d.loopDone = make(chan struct{})
	if d.h1 != nil {
		// Its attempts have no context (see send): Stop's cancellation
		// reaches them through Abort.
		context.AfterFunc(workCtx, d.h1.Abort)
	}
	d.state = stateRunning
	// One pool goroutine per attempt that can be in flight. They keep
	// their grown stacks from one attempt to the next, where a goroutine
	// per attempt would grow a new one each time.
	n := maxInflight(d.cfg.Workers)
	d.idle = make([]poolWorker, n)
	d.pool.Add(n)
	for i := range d.idle {
		d.idle[i] = make(poolWorker, 1)
		go d.runPool(workCtx, d.idle[i])
	}
	go d.loop(loopCtx, workCtx)
	d.log.LogAttrs(ctx, slog.LevelInfo, "webhook dispatcher started", slog.String("owner", d.cfg.Owner))
	return nil
}

// Stop stops claiming deliveries (a claim already in flight runs to its
// end), gives back unsent those claimed and not yet sent (waiting for a
// worker or for a slot of their webhook: due at once for the next
// process), waits for the attempts in flight to finish (each within
// Config.Timeout) and be recorded (a record the store keeps failing is
// tried again until the delivery's lease runs out: bound Stop with ctx),
// and returns once no goroutine of the Dispatcher is left. If
// ctx ends first, the attempts in flight are cancelled (recorded as
// canceled and due again at once, so another process takes them without
// waiting for a lease to expire; they spend none of the retry budget) and
// Stop returns ctx.Err() after they are recorded (each bounded by a few
// seconds); with none in flight, Stop returns nil whatever ctx. Stop also
// waits for the Emit calls that are storing deliveries to hand to its
// workers; those end with their own ctx. Stop before Start, and a second
// Stop, are safe (a second Stop returns nil once the first has finished,
// ctx.Err() if ctx ends before); a Start after Stop, or one that was still
// checking the store when Stop came, returns ErrStopped.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	switch d.state {
	case stateNew: // never started, and now never will be
		d.state = stateStopped
		close(d.stopped)
		close(d.done)
		d.mu.Unlock()
		return nil
	case stateStopped:
		d.mu.Unlock()
		select {
		case <-d.done:
			return nil
		default:
		}
		select {
		case <-d.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.state = stateStopped
	close(d.stopped)
	d.mu.Unlock()
	// The deliveries waiting for a worker slot go back unsent now.
	d.poolMu.Lock()
	d.handQueued()
	d.poolMu.Unlock()

	d.stopLoop()
	<-d.loopDone
	d.releaseParked(ctx, time.Time{})
	// With nothing in flight now, none can start (the loop has ended, and
	// neither Emit nor unpark starts one once stopped): only the last
	// attempts' ends may be left, and ctx has nothing to cut short.
	d.mu.Lock()
	idle := d.inflight == 0
	d.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		d.workers.Wait()
		close(finished)
	}()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		if idle {
			<-finished
			break // nothing was cut short: no error
		}
		err = ctx.Err()
		d.abortWork()
		// The attempts end at once; their records get a few seconds more.
		grace := time.NewTimer(recordGrace)
		select {
		case <-finished:
		case <-grace.C:
			d.abortRecord()
			<-finished
		}
		grace.Stop()
	}
	d.abortWork()
	d.abortRecord()
	// Every attempt started has been recorded, and none can start now.
	d.poolMu.Lock()
	d.poolClosed = true
	for _, w := range d.idle {
		close(w)
	}
	d.idle = nil
	d.poolMu.Unlock()
	d.pool.Wait()
	if c, ok := d.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	if d.h1 != nil {
		d.h1.CloseIdleConnections()
	}
	close(d.done)
	d.log.LogAttrs(ctx, slog.LevelInfo, "webhook dispatcher stopped", slog.String("owner", d.cfg.Owner))
	return err
}

// Redeliver puts a finished (success or failed) delivery back in the queue,
// due at once with a fresh retry budget. It returns store.ErrConflict when
// the delivery is still pending and store.ErrNotFound when it does not
// exist. Callers check the delivery's tenant before calling it.
func (d *Dispatcher) Redeliver(ctx context.Context, deliveryID string) (*Delivery, error) {
	del, err := d.st.Redeliver(ctx, store.RedeliverParams{ID: deliveryID, Now: d.cfg.Now()})
	if err != nil {
		return nil, fmt.Errorf("webhook: redeliver: %w", err)
	}
	d.markDue()
	return del, nil
}

// SendNow makes the delivery's next attempt and returns the delivery as
// recorded after it, with that attempt. A finished delivery is redelivered
// first; a pending one is attempted as soon as it is due and a worker is
// free (it is due at once unless a retry is scheduled). The attempt may be
// made by another Dispatcher sharing the store (a replica on pgstore):
// SendNow then reads it from the store, within PollInterval. One this
// Dispatcher makes is returned once its Hooks were called and Stats
// counts it. The Dispatcher must be running (ErrNotRunning). A failed
// attempt is not an error: read the returned attempt. A delivery finished
// meanwhile without that attempt (failed with its webhook) returns
// ErrNoAttempt. If ctx ends first, SendNow returns ctx.Err() and the
// attempt still happens.
func (d *Dispatcher) SendNow(ctx context.Context, deliveryID string) (*Delivery, *Attempt, error) {
	ch, err := d.addWaiter(deliveryID)
	if err != nil {
		return nil, nil, err
	}
	defer d.removeWaiter(deliveryID, ch)
	del, err := d.st.GetDelivery(ctx, deliveryID)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook: send now: %w", err)
	}
	d.forget(del.WebhookID)
	if del.Status.Finished() {
		if _, err := d.st.Redeliver(ctx, store.RedeliverParams{ID: deliveryID, Now: d.cfg.Now()}); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, nil, fmt.Errorf("webhook: send now: %w", err)
		}
	}
	d.markDue()
	return d.await(ctx, deliveryID, del.Attempts, ch)
}

// await returns the attempt of delivery id numbered after+1, with the
// delivery as recorded after it: from ch when a worker of this Dispatcher
// makes it, or from the store, read every PollInterval, when another
// Dispatcher sharing the store claimed the delivery first. ErrNoAttempt
// when the store finished the delivery without it. ch must be among id's
// waiters; an earlier attempt received on it puts it back, and a later one
// sends await to the store.
func (d *Dispatcher) await(ctx context.Context, id string, after int, ch chan attemptDone) (*Delivery, *Attempt, error) {
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case r := <-ch:
			if r.a == nil || r.a.Number == after+1 {
				return r.d, r.a, r.err
			}
			if r.a.Number <= after {
				// An earlier attempt: its worker recorded it, the caller
				// read it from the store and added this waiter, and then
				// the worker handed the attempt to the waiters it found.
				// Wait on for the one asked for (polling finds it if the
				// worker is gone by now).
				d.mu.Lock()
				d.waiters[id] = append(d.waiters[id], ch)
				d.mu.Unlock()
				continue
			}
			// A later one: another Dispatcher made the one asked for,
			// which the store holds.
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-d.stopped:
			return nil, nil, ErrNotRunning
		case <-poll.C:
		}
		del, err := d.st.GetDelivery(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, fmt.Errorf("webhook: delivery %s: %w", id, err)
			}
			continue // the worker's answer or the next read may still come
		}
		if del.Attempts <= after {
			if del.Status.Finished() {
				return nil, nil, fmt.Errorf("%w: %s is %s", ErrNoAttempt, id, del.Status)
			}
			continue
		}
		if d.inFlight(id) {
			// A worker of this Dispatcher made the attempt (or makes the
			// next): it answers on ch once it has reported it to the hooks
			// and Stats, or leaves the delivery unsent and this loop reads
			// the store again.
			continue
		}
		atts, err := d.st.ListAttempts(ctx, id)
		if err != nil {
			continue
		}
		for _, a := range atts {
			if a.Number == after+1 {
				return del, a, nil
			}
		}
	}
}

// inFlight reports whether delivery id is claimed or handed over here and
// its worker has not finished with it.
func (d *Dispatcher) inFlight(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.held[id]
	return ok
}

// SendTest delivers a webhook.test event to one webhook, whatever events it
// subscribes to, and returns the delivery and its first attempt (the
// management API's test endpoint). data may be nil. A delivery to an
// inactive webhook is not sent: it fails at once, with an attempt of class
// canceled. The payload's
// metadata.requestId is a fresh "req_test_…" id, so a receiver can tell test
// deliveries apart in its logs. As with SendNow, the attempt may be made by
// another Dispatcher sharing the store, and ErrNoAttempt reports a delivery
// failed with its webhook before its attempt. The Dispatcher must be
// running.
func (d *Dispatcher) SendTest(ctx context.Context, webhookID string, data any) (*Delivery, *Attempt, error) {
	w, err := d.st.GetWebhook(ctx, webhookID)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook: send test: %w", err)
	}
	d.forget(w.ID)
	reqID, err := uuid.NewRandom()
	if err != nil {
		return nil, nil, fmt.Errorf("webhook: send test: request id: %w", err)
	}
	ev := Event{Type: EventWebhookTest, Tenant: w.Tenant, Data: data, RequestID: "req_test_" + reqID.String()}
	raw, err := d.prepare(&ev)
	if err != nil {
		return nil, nil, err
	}
	ch, err := d.addWaiterPending()
	if err != nil {
		return nil, nil, err
	}
	res, err := d.enqueueWaiting(ctx, &ev, raw, w, ch)
	if err != nil {
		return nil, nil, err
	}
	defer d.removeWaiter(res, ch)
	return d.await(ctx, res, 0, ch)
}

// forget drops a webhook from the cache, so its next attempt reads the
// stored record (an owner testing a webhook right after editing it).
func (d *Dispatcher) forget(webhookID string) {
	d.mu.Lock()
	d.forgetLocked(webhookID)
	d.mu.Unlock()
}

// forgetLocked drops a webhook from the cache and keeps a read that began
// before from caching what it read. d.mu is held.
func (d *Dispatcher) forgetLocked(webhookID string) {
	delete(d.cache, webhookID)
	d.cacheEpoch++
}

// addWaiterPending makes the channel a waiter will receive on, after
// checking the loop runs.
func (d *Dispatcher) addWaiterPending() (chan attemptDone, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateRunning {
		return nil, ErrNotRunning
	}
	return make(chan attemptDone, 1), nil
}

// enqueueWaiting enqueues one delivery of ev to w with ch registered as a
// waiter before the loop can see it. It returns the delivery id.
func (d *Dispatcher) enqueueWaiting(ctx context.Context, ev *Event, data []byte, w *store.Webhook, ch chan attemptDone) (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("webhook: delivery id: %w", err)
	}
	now := d.cfg.Now()
	del := &store.Delivery{
		ID:            "del_" + id.String(),
		WebhookID:     w.ID,
		EventID:       ev.ID,
		EventType:     ev.Type,
		Tenant:        ev.Tenant,
		Body:          appendBody(nil, ev.ID, ev.Type, ev.Time, w.ID, data, ev.RequestID),
		Status:        store.StatusPending,
		NextAttemptAt: now,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	d.mu.Lock()
	d.waiters[del.ID] = append(d.waiters[del.ID], ch)
	d.mu.Unlock()
	ids, err := d.st.Enqueue(ctx, []*store.Delivery{del})
	if err != nil {
		d.removeWaiter(del.ID, ch)
		return "", fmt.Errorf("webhook: send test: enqueue: %w", err)
	}
	d.markDue()
	return ids[0], nil
}

func (d *Dispatcher) addWaiter(id string) (chan attemptDone, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateRunning {
		return nil, ErrNotRunning
	}
	ch := make(chan attemptDone, 1)
	d.waiters[id] = append(d.waiters[id], ch)
	return ch, nil
}

func (d *Dispatcher) removeWaiter(id string, ch chan attemptDone) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ws := d.waiters[id]
	for i, c := range ws {
		if c == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(d.waiters, id)
	} else {
		d.waiters[id] = ws
	}
}

// loop claims due deliveries and starts their attempts until ctx ends.
func (d *Dispatcher) loop(ctx, workCtx context.Context) {
	defer close(d.loopDone)
	var purgeWG sync.WaitGroup
	purgeWG.Add(1)
	go func() {
		defer purgeWG.Done()
		d.purgeLoop(ctx)
	}()
	defer purgeWG.Wait()

	// Claims run in goroutines of their own, a few at once: a claim can
	// wait for a store commit (an fsync), and the workers it did not fill
	// meanwhile would idle. They end before the loop does (they start
	// workers, which Stop waits for).
	var claims sync.WaitGroup
	defer claims.Wait()
	// A store that tells of deliveries stored by other processes (pgstore's
	// LISTEN/NOTIFY) wakes the loop as an Emit in this process does.
	var wakeUps <-chan struct{}
	if w, ok := d.st.(interface {
		WakeUps(context.Context) <-chan struct{}
	}); ok {
		wakeUps = w.WakeUps(ctx)
	}
	// The store is polled every PollInterval however often the loop wakes:
	// retries fall due and leases expire with time alone. The timer wakes
	// the loop sooner for a rate-limited webhook's next slot.
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	timer := time.NewTimer(d.cfg.PollInterval)
	defer timer.Stop()
	for {
		wait := d.startClaims(ctx, workCtx, &claims)
		if ctx.Err() != nil {
			return
		}
		timer.Stop()
		var timerC <-chan time.Time
		if wait < d.cfg.PollInterval {
			timer.Reset(wait)
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case _, ok := <-wakeUps:
			if !ok {
				wakeUps = nil
				continue
			}
			d.noteDue()
		case <-timerC:
			d.noteDue()
		case <-poll.C:
			d.noteDue()
			// Parked deliveries wait at most a quarter of their lease.
			d.releaseParked(ctx, d.cfg.Now().Add(-d.cfg.Lease/4))
		}
	}
}

// noteDue is markDue for the loop itself, which claims next anyway.
func (d *Dispatcher) noteDue() {
	d.mu.Lock()
	d.dueSeq++
	d.mu.Unlock()
}

// rateInterval is the time between two attempts of a webhook limited to
// rate deliveries per second: at most an hour. The Registry refuses slower
// rates, but a store may hold anything, and below about 1e-10 a second the
// interval would overflow a Duration and wrap to the past: no limit at all.
func rateInterval(rate float64) time.Duration {
	return time.Duration(float64(time.Second) / max(rate, MinRateLimit))
}

// recordGrace is how long Stop, once its context has ended, still waits
// for the records of the attempts it cancelled.
const recordGrace = 5 * time.Second

// The first and the longest wait between two tries of an attempt's record
// (see record).
const (
	recordRetryMin = 50 * time.Millisecond
	recordRetryMax = 5 * time.Second
)

// record stores an attempt's outcome. A store failing for a reason that
// may pass (a connection lost, a database failing over) is asked again,
// with backoff, while the delivery's lease (ending at leaseEnds) lasts:
// an attempt made must be recorded and its lease released, or the
// delivery is sent again once the lease expires, and its attempt log
// lacks one.
//
// Not under the attempt's context: Stop cancels that when it gives up
// waiting, maybe while the record waits for the store. Stop ends the
// tries when it gives up on the records too.
func (d *Dispatcher) record(p store.CompleteParams, leaseEnds time.Time) error {
	err := d.st.Complete(d.recordCtx, p)
	if err == nil {
		return nil
	}
	// The lease also ends after what is left of it on the process's own
	// clock: Config.Now may be a fake clock that does not move.
	var until time.Time
	if !leaseEnds.IsZero() {
		until = time.Now().Add(leaseEnds.Sub(d.cfg.Now()))
	}
	for wait := recordRetryMin; ; wait = min(2*wait, recordRetryMax) {
		if !mayPass(err) || d.recordCtx.Err() != nil ||
			!leaseEnds.IsZero() && (d.cfg.Now().Add(wait).After(leaseEnds) || time.Now().Add(wait).After(until)) {
			return err
		}
		if wait == recordRetryMin { // once, when the tries begin
			d.log.LogAttrs(d.recordCtx, slog.LevelWarn, "webhook: record attempt failed, trying again while the lease lasts",
				slog.String("delivery_id", p.DeliveryID), slog.Int("attempt", p.Attempt.Number), slog.String("error", err.Error()))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.recordCtx.Done():
			t.Stop()
			return err
		}
		if err = d.st.Complete(d.recordCtx, p); err == nil {
			return nil
		}
		if (errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrConflict)) && d.landed(p) {
			// The failure before committed the record all the same (its
			// answer was lost with the connection).
			return nil
		}
	}
}

// landed reports whether p's attempt is in the store, recorded by a
// Complete whose answer was an error.
func (d *Dispatcher) landed(p store.CompleteParams) bool {
	as, err := d.st.ListAttempts(d.recordCtx, p.DeliveryID)
	if err != nil {
		return false
	}
	started := p.Attempt.StartedAt.Truncate(time.Microsecond)
	for _, a := range as {
		if a.Number == p.Attempt.Number && a.StartedAt.Truncate(time.Microsecond).Equal(started) {
			return true
		}
	}
	return false
}

// mayPass reports whether a store's err may pass if the call is made
// again: none of the store's answers about the data (not found, conflict,
// lease lost, invalid), nor a closed store. A context error may pass: the
// record's context is checked on its own (see record), and one of the
// store's (a connect timeout while a database fails over, which net
// reports as context.DeadlineExceeded) is no answer about the data.
func mayPass(err error) bool {
	for _, final := range []error{store.ErrNotFound, store.ErrConflict, store.ErrLeaseLost,
		store.ErrInvalid, store.ErrClosed} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}

// maxClaims is the most claims running at once.
const maxClaims = 4

// startClaims starts claims (at most maxClaims at once) for the free
// workers, and returns how long the loop may sleep if nothing wakes it.
// A claim reserves the slots it may fill until it has started its
// deliveries, so concurrent claims never lease more than the free workers.
func (d *Dispatcher) startClaims(ctx, workCtx context.Context, claims *sync.WaitGroup) time.Duration {
	wait := d.cfg.PollInterval
	perCap := d.cfg.PerWebhookConcurrency
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		// A claim that ends, or an attempt that frees a worker, wakes the
		// loop again while deliveries may be due.
		limit := d.claimRoom()
		if limit == 0 {
			return wait
		}
		// The claim sees everything marked due up to seq: its Now is
		// read after seq (an Emit marks its deliveries due after storing
		// them, due at a Now read before).
		seq := d.dueSeq
		now := d.cfg.Now()
		var skip []string
		for id, h := range d.hooks {
			switch {
			case h.sending >= d.limitOf(id, perCap):
				skip = append(skip, id)
			case h.waits(now):
				skip = append(skip, id)
				wait = min(wait, h.nextSlot.Sub(now))
			case h.inflight <= 0:
				// A rate-limited webhook kept only for a slot that has
				// now passed (see work).
				delete(d.hooks, id)
			}
		}
		d.reserved += limit
		d.claiming++
		claims.Add(1)
		go func() {
			defer claims.Done()
			more := d.claim(ctx, workCtx, now, limit, skip)
			d.mu.Lock()
			d.claiming--
			switch {
			case more:
				d.dueSeq++
			case seq > d.clearSeq:
				// Nothing more was due when this claim looked, but for
				// the webhooks it passed over.
				d.clearSeq = seq
				clear(d.blocked)
				for _, id := range skip {
					d.blocked[id] = true
				}
			}
			again := d.duePending()
			d.mu.Unlock()
			if again {
				d.signal()
			}
		}()
	}
}

// claim leases up to limit due deliveries (not of the webhooks in skip),
// starts them, and gives back the limit slots startClaims reserved. It
// reports whether the store may hold more due deliveries right now.
func (d *Dispatcher) claim(ctx, workCtx context.Context, now time.Time, limit int, skip []string) (more bool) {
	perCap := d.cfg.PerWebhookConcurrency
	reserved := limit
	defer func() {
		if reserved > 0 {
			d.mu.Lock()
			d.reserved -= reserved
			d.unpark() // the reservation may have held parked deliveries back
			d.mu.Unlock()
		}
	}()
	// A claim in flight when Stop begins runs to its end (within a lease),
	// and its deliveries are given back unsent as the rest: cancelled, it
	// could commit in the store and lose its answer (a database's reply
	// to a cancelled query), leaving them leased until the leases expire.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Lease)
	defer cancel()
	ds, err := d.st.Claim(cctx, store.ClaimParams{
		Now:          now,
		Limit:        limit,
		Lease:        d.cfg.Lease,
		Owner:        d.cfg.Owner,
		SkipWebhooks: skip,
	})
	if err != nil {
		if ctx.Err() == nil {
			d.log.LogAttrs(ctx, slog.LevelError, "webhook: claim deliveries", slog.String("error", err.Error()))
		}
		return false
	}

	// Learn the webhooks' rate limits before starting anything (the
	// webhooks are cached, and the attempts need them anyway).
	var rates map[string]float64
	for _, del := range ds {
		if _, ok := rates[del.WebhookID]; ok {
			continue
		}
		if rates == nil {
			rates = make(map[string]float64, 4)
		}
		rates[del.WebhookID] = 0
		if t, err := d.webhook(ctx, del.WebhookID); err == nil {
			rates[del.WebhookID] = t.w.RateLimit
		}
	}

	var excess []string
	d.mu.Lock()
	d.reserved -= reserved
	reserved = 0
	for _, del := range ds {
		if _, ok := d.held[del.ID]; ok {
			// In flight here already, its lease run out on the clock:
			// not sent twice at once (see held).
			d.held[del.ID] = true
			continue
		}
		h := d.hooks[del.WebhookID]
		if h == nil {
			h = &hookState{}
			d.hooks[del.WebhookID] = h
		}
		h.rate = rates[del.WebhookID]
		limit := d.limitOf(del.WebhookID, perCap)
		if h.sending >= limit && h.rate == 0 && d.mayPark(h, limit) && d.inflight+d.reserved < maxInflight(d.cfg.Workers) {
			// Over the webhook's limit: wait here for one of its slots.
			h.parked = append(h.parked, parkedDelivery{del, now})
			d.parkedHooks[del.WebhookID] = true
			d.parked++
			h.inflight++
			d.inflight++
			d.held[del.ID] = false
			continue
		}
		if h.sending >= limit || d.sending+d.reserved >= maxAdmitted(d.cfg.Workers) || d.inflight+d.reserved >= maxInflight(d.cfg.Workers) ||
			h.waits(now) {
			excess = append(excess, del.ID)
			continue
		}
		if h.rate > 0 {
			h.nextSlot, h.slotAt = now.Add(rateInterval(h.rate)), now
		}
		h.inflight++
		h.sending++
		d.inflight++
		d.sending++
		d.held[del.ID] = false
		d.workers.Add(1)
		d.startWork(del)
	}
	// The reservation given back may let parked deliveries through.
	d.unpark()
	d.mu.Unlock()
	if len(excess) > 0 {
		// Over a webhook's cap: give the leases back; the webhook is skipped
		// by the next claims until one of its attempts finishes.
		d.release(ctx, excess)
		return true
	}
	return len(ds) == limit
}

// limitOf returns the webhook's concurrency limit now. d.mu is held.
func (d *Dispatcher) limitOf(webhookID string, perCap int) int {
	if l, ok := d.limits[webhookID]; ok {
		return l
	}
	return perCap
}

// adapt updates the webhook's concurrency limit after an attempt that
// ended with class: a timeout halves it (down to 1), a success raises it
// by one (up to PerWebhookConcurrency); other failures, which end quickly,
// leave it. d.mu is held.
func (d *Dispatcher) adapt(webhookID string, class store.ErrorClass) {
	perCap := d.cfg.PerWebhookConcurrency
	switch class {
	case store.ErrorTimeout:
		d.limits[webhookID] = max(1, d.limitOf(webhookID, perCap)/2)
	case store.ErrorNone:
		if l, ok := d.limits[webhookID]; ok {
			if l+1 >= perCap {
				delete(d.limits, webhookID)
			} else {
				d.limits[webhookID] = l + 1
			}
		}
	}
}

// maxAdmitted bounds the claimed attempts not yet answered: Workers being
// sent plus as many started and waiting for a worker. Claiming ahead keeps
// the workers busy while the next claim waits for a store commit; the
// pool's worker slots still keep at most Workers attempts sending at once
// (see startWork).
func maxAdmitted(workers int) int { return 2 * workers }

// maxInflight bounds the deliveries claimed (or handed over by Emit) and
// not yet recorded: the admitted ones (being sent or waiting for a worker,
// see maxAdmitted), the parked ones (at most workers) and as many answered
// ones waiting for their record. They cost memory only, but their leases
// run: the bound keeps them few.
func maxInflight(workers int) int { return 4 * workers }

// work runs one attempt of a claimed delivery and frees its slot; once
// Stop has begun, it gives the delivery back unsent instead.
//
// The worker slot (and the webhook's concurrency slot) is freed as soon as
// the attempt is answered, before it is recorded: recording can wait for a
// store commit (an fsync), and the next attempts need not wait for it. The
// delivery's lease keeps it from being claimed again meanwhile, and at most
// maxInflight(Workers) attempts are claimed and not yet recorded, so the
// records waiting for a commit are bounded (and, with a group-committing
// store, share commits).
func (d *Dispatcher) work(ctx context.Context, del *store.Delivery) {
	defer d.workers.Done()
	// The pool handed del over with a worker slot (see startWork).
	slot := true
	free := func() {
		if slot {
			slot = false
			d.freeSlot()
		}
	}
	answered := false
	var r attemptDone
	// Once Stop has begun, it waits for the attempts sent, and sends no
	// other.
	if !d.stopping() {
		r = d.deliver(ctx, del, func(class store.ErrorClass) {
			answered = true
			free()
			d.mu.Lock()
			d.sending--
			if h := d.hooks[del.WebhookID]; h != nil {
				h.sending--
			}
			d.adapt(del.WebhookID, class)
			again := d.freed(del.WebhookID)
			d.mu.Unlock()
			if again {
				d.signal()
			}
		})
	} else {
		// Stop has begun: the delivery goes back unsent, due at once for
		// whoever runs next, as Stop gives back the parked ones.
		d.release(ctx, []string{del.ID})
		r.released = true
	}
	free()
	d.mu.Lock()
	d.inflight--
	reclaimed := d.held[del.ID]
	delete(d.held, del.ID)
	if !answered {
		d.sending--
	}
	if h := d.hooks[del.WebhookID]; h != nil {
		h.inflight--
		if !answered {
			h.sending--
		}
		if h.inflight <= 0 && !h.waits(d.cfg.Now()) {
			delete(d.hooks, del.WebhookID)
		}
	}
	var ws []chan attemptDone
	if !r.released {
		ws = d.waiters[del.ID]
		delete(d.waiters, del.ID)
	}
	again := d.freed(del.WebhookID)
	d.mu.Unlock()
	if len(ws) > 0 && r.a != nil {
		// The attempt's request headers share values with other attempts
		// (see send): callers get their own copy.
		a := *r.a
		a.RequestHeaders = a.RequestHeaders.Clone()
		r.a = &a
	}
	for _, ch := range ws {
		ch <- r
	}
	if reclaimed {
		// The lease a claim took meanwhile, unless the record cleared it.
		d.release(ctx, []string{del.ID})
		d.markDue()
	} else if again {
		d.signal()
	}
}

// stopping reports whether Stop has begun.
func (d *Dispatcher) stopping() bool {
	select {
	case <-d.stopped:
		return true
	default:
		return false
	}
}

// freed reports whether the loop should claim now that an attempt of the
// webhook has freed its slots: when the store may hold due deliveries, in
// particular ones of this webhook that the last claim passed over. d.mu is
// held.
func (d *Dispatcher) freed(webhookID string) bool {
	d.unpark()
	if d.blocked[webhookID] {
		// Claim its deliveries once it can take one more attempt.
		if h := d.hooks[webhookID]; h == nil || len(h.parked) == 0 && h.sending < d.limitOf(webhookID, d.cfg.PerWebhookConcurrency) {
			delete(d.blocked, webhookID)
			d.dueSeq++
		}
	}
	return d.duePending()
}

// poolWorker hands a goroutine of the pool its next delivery. It holds one,
// and is empty whenever the goroutine is idle.
type poolWorker chan *store.Delivery

// startWork hands a delivery, counted in d.workers, to the pool, and never
// waits. d.mu is held.
//
// A delivery goes to a goroutine only once a worker slot is free for it;
// until then it waits in queued. The goroutine that went idle last takes
// it. Both keep the goroutines' stacks grown: the collector shrinks the
// stack of a goroutine that waits with little of it in use, and the next
// attempt grows it again, a copy at each step. When the deliveries went
// round the goroutines in turn, as a channel's receivers do, and waited
// there for a slot, many went to a goroutine shrunk since its last
// attempt: growing and shrinking stacks took about 4% of the processor of
// webhookbench's bolt scenario, whose collector runs some 75 times a
// second, and takes about 2% since (two profiles of each).
func (d *Dispatcher) startWork(del *store.Delivery) {
	d.poolMu.Lock()
	defer d.poolMu.Unlock()
	d.queued = append(d.queued, del)
	if cap(d.queued) > cap(d.queuedArr) {
		d.queuedArr = d.queued[:0]
	}
	d.handQueued()
}

// handQueued hands the queued deliveries to idle goroutines while worker
// slots are free, or all of them once Stop has begun (they are given back
// unsent, see work). d.poolMu is held. The pool has a goroutine for every
// delivery that can be in flight, but one that has just finished may not be
// idle yet: it takes what is left once it is (runPool).
func (d *Dispatcher) handQueued() {
	for len(d.queued) > 0 && len(d.idle) > 0 && (d.slotsUsed < d.cfg.Workers || d.stopping()) {
		del := d.queued[0]
		d.queued[0] = nil
		d.queued = d.queued[1:]
		if len(d.queued) == 0 {
			d.queued = d.queuedArr[:0] // its array again, not a new one
		}
		w := d.idle[len(d.idle)-1]
		d.idle = d.idle[:len(d.idle)-1]
		d.slotsUsed++
		w <- del
	}
}

// freeSlot gives back the worker slot of a delivery handed to the pool.
func (d *Dispatcher) freeSlot() {
	d.poolMu.Lock()
	d.slotsUsed--
	d.handQueued()
	d.poolMu.Unlock()
}

// runPool runs the deliveries handed to w until Stop closes the pool.
func (d *Dispatcher) runPool(ctx context.Context, w poolWorker) {
	defer d.pool.Done()
	for del := range w {
		d.work(ctx, del)
		d.poolMu.Lock()
		if d.poolClosed {
			d.poolMu.Unlock()
			return
		}
		d.idle = append(d.idle, w)
		d.handQueued()
		d.poolMu.Unlock()
	}
}

// mayPark reports whether one more delivery of the webhook may be parked:
// at most one round of its limit per webhook (a slow webhook, its limit
// lowered, parks few), at most Workers in all. d.mu is held.
func (d *Dispatcher) mayPark(h *hookState, limit int) bool {
	return d.parked < d.cfg.Workers && len(h.parked)+h.parking < limit
}

// unpark starts the parked deliveries that the webhooks' limits and the
// free workers now let through. d.mu is held.
func (d *Dispatcher) unpark() {
	if len(d.parkedHooks) == 0 || d.state != stateRunning {
		return
	}
	perCap := d.cfg.PerWebhookConcurrency
	for id := range d.parkedHooks {
		h := d.hooks[id]
		for len(h.parked) > 0 && h.sending < d.limitOf(id, perCap) && d.sending+d.reserved < maxAdmitted(d.cfg.Workers) {
			del := h.parked[0].del
			h.parked[0] = parkedDelivery{}
			h.parked = h.parked[1:]
			d.parked--
			h.sending++
			d.sending++
			d.workers.Add(1)
			d.startWork(del)
		}
		if len(h.parked) == 0 {
			h.parked = nil
			delete(d.parkedHooks, id)
		}
	}
}

// releaseParked gives back the leases of the deliveries parked before
// (all of them when before is zero), so that they are claimed again rather
// than wait on while their leases run out.
func (d *Dispatcher) releaseParked(ctx context.Context, before time.Time) {
	var ids []string
	d.mu.Lock()
	for id := range d.parkedHooks {
		h := d.hooks[id]
		n := 0
		for n < len(h.parked) && (before.IsZero() || h.parked[n].at.Before(before)) {
			ids = append(ids, h.parked[n].del.ID)
			delete(d.held, h.parked[n].del.ID)
			n++
		}
		h.parked = h.parked[n:]
		d.parked -= n
		h.inflight -= n
		d.inflight -= n
		if len(h.parked) == 0 {
			h.parked = nil
			delete(d.parkedHooks, id)
		}
		if h.inflight <= 0 && h.parking == 0 && h.rate == 0 {
			delete(d.hooks, id)
		}
	}
	d.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	d.release(ctx, ids)
	d.markDue()
}

// release gives this dispatcher's leases on ids back to the store, even
// when ctx has ended (a stopping dispatcher releases too), within a few
// seconds; a failure is logged (the leases then run out by themselves).
func (d *Dispatcher) release(ctx context.Context, ids []string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.st.Release(rctx, store.ReleaseParams{Owner: d.cfg.Owner, IDs: ids}); err != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "webhook: release deliveries", slog.String("error", err.Error()))
	}
}

// webhook returns the delivery's webhook prepared for sending, from the
// short-lived cache when it is fresh.
func (d *Dispatcher) webhook(ctx context.Context, id string) (*target, error) {
	ttl := d.cfg.WebhookCacheTTL
	var epoch uint64
	if ttl > 0 {
		d.mu.Lock()
		t, ok := d.cache[id]
		epoch = d.cacheEpoch
		d.mu.Unlock()
		if ok && time.Now().Before(t.expires) {
			return t, nil
		}
	}
	w, err := d.st.GetWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	t := newTarget(w, d.cfg.Now())
	if ttl > 0 {
		now := time.Now()
		t.expires = now.Add(ttl)
		d.mu.Lock()
		if len(d.cache) >= 4096 {
			for k, e := range d.cache {
				if !now.Before(e.expires) {
					delete(d.cache, k)
				}
			}
		}
		// A webhook forgotten meanwhile (disabled, say) may have changed
		// after this read: it is not cached.
		if d.cacheEpoch == epoch {
			d.cache[id] = t
		}
		d.mu.Unlock()
	}
	return t, nil
}

// deliver makes one attempt and records it with the delivery's next state
// (or gives the delivery back when its lease is too short for one).
// It calls answered with the attempt's error class once the attempt has its
// outcome, before recording it (not at all when it makes no attempt, nor
// for a 410 Gone, which must be recorded before the webhook's next attempt).
func (d *Dispatcher) deliver(ctx context.Context, del *store.Delivery, answered func(store.ErrorClass)) attemptDone {
	t, err := d.webhook(ctx, del.WebhookID)
	if err == nil && !t.w.Active {
		// An inactive webhook's delivery fails unsent: not on the word of
		// the cache, which may hold a deactivation undone since (an owner
		// switching a webhook back on, whose new events Emit matched
		// active). Rare, so the store is read again.
		d.forget(del.WebhookID)
		t, err = d.webhook(ctx, del.WebhookID)
	}
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			d.log.LogAttrs(ctx, slog.LevelError, "webhook: load webhook", slog.String("webhook_id", del.WebhookID), slog.String("error", err.Error()))
			if ctx.Err() != nil {
				// Stop cut the read short: the delivery goes back, due
				// at once for whoever runs next.
				d.release(ctx, []string{del.ID})
			}
			// Otherwise the store failed, or holds a webhook record it
			// cannot read: the delivery keeps its lease, whose expiry
			// retries it. Given back, it would be due at once, and the
			// next claim would take it again: a webhook that cannot be
			// read would be claimed, read and given back in a loop.
		}
		return attemptDone{err: fmt.Errorf("webhook: load webhook: %w", err)}
	}
	// A delivery that waited for a worker (or parked), or for the store to
	// read its webhook (a slow database, a pool with no connection free),
	// may have less lease left than an attempt can take: another process
	// could claim it and send it too while this attempt runs, whose record
	// would then be refused. Give it back, to be claimed again with a
	// fresh lease. Checked after the read, the last wait before the send.
	if !del.LeaseExpiresAt.IsZero() && d.cfg.Now().Add(d.cfg.Timeout).After(del.LeaseExpiresAt) {
		d.release(ctx, []string{del.ID})
		d.markDue()
		return attemptDone{released: true}
	}
	w := t.w
	number := del.Attempts + 1
	info := AttemptInfo{DeliveryID: del.ID, WebhookID: w.ID, EventID: del.EventID, EventType: del.EventType, Tenant: del.Tenant, Attempt: number}
	var att *store.Attempt
	var res AttemptResult
	d.hooksI.AttemptStarted(ctx, info)
	if !w.Active {
		att = &store.Attempt{
			DeliveryID: del.ID, Number: number, StartedAt: d.cfg.Now(),
			RequestURL: t.redacted, ErrorClass: store.ErrorCanceled,
			Error: "webhook is inactive; the delivery was not sent",
		}
	} else {
		att, res = d.send(ctx, t, del, number)
	}
	// A 410 disables the webhook when it is recorded; until then the
	// attempt keeps its slots, so no other delivery of that webhook is
	// sent to an endpoint that has just said it is gone.
	if att.ResponseStatus != http.StatusGone {
		answered(att.ErrorClass)
	}

	now := d.cfg.Now()
	p := store.CompleteParams{DeliveryID: del.ID, Owner: d.cfg.Owner, Attempt: att, Now: now}
	switch {
	case !w.Active:
		p.Status = store.StatusFailed
	case att.ErrorClass == store.ErrorNone:
		p.Status = store.StatusSuccess
	case att.ResponseStatus == http.StatusGone:
		p.Status = store.StatusFailed
		p.DisableWebhook = "the endpoint answered 410 Gone"
	case att.ErrorClass == store.ErrorCanceled:
		// The dispatcher is stopping: due again at once, for whoever runs,
		// without spending the retry budget the endpoint did not use.
		p.Status = store.StatusPending
		p.NextAttemptAt = now
		p.KeepRoundAttempts = true
	default:
		policy := d.cfg.Retry
		if w.MaxAttempts > 0 {
			policy.MaxAttempts = w.MaxAttempts
		}
		if delay, ok := policy.Next(del.RoundAttempts+1, res); ok {
			p.Status = store.StatusPending
			p.NextAttemptAt = now.Add(delay)
		} else {
			p.Status = store.StatusFailed
		}
	}

	// The webhook may have been disabled while this attempt was in flight
	// (a 410 Gone to another of its deliveries, here or in a replica, or
	// the registry): the store then fails this one rather than retry it
	// (see store.CompleteParams), and a 410 of this one does not disable
	// it a second time. Asked for it, so that what is reported is what is
	// stored: from the store, not the cache, which may hold a deactivation
	// made elsewhere as active, and with recordCtx, as ctx has ended for
	// an attempt cancelled by Stop. A disable committed between this read
	// and the record is still missed.
	gone := p.DisableWebhook != ""
	if p.Status == store.StatusPending || gone {
		if cur, err := d.st.GetWebhook(d.recordCtx, w.ID); err == nil && !cur.Active {
			p.Status, p.NextAttemptAt, p.KeepRoundAttempts = store.StatusFailed, time.Time{}, false
			p.DisableWebhook = ""
		}
	}

	info.StatusCode, info.ErrorClass, info.Duration = att.ResponseStatus, att.ErrorClass, att.Duration

	if err := d.record(p, del.LeaseExpiresAt); err != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "webhook: record attempt",
			slog.String("delivery_id", del.ID), slog.Int("attempt", number), slog.String("error", err.Error()))
		// The attempt was made all the same: it is counted and reported
		// finished, with no outcome (the delivery is as the store left
		// it), so that every AttemptStarted has its AttemptFinished.
		d.mu.Lock()
		d.stats.attempts++
		d.stats.webhook(w.ID).Attempts++
		d.mu.Unlock()
		d.hooksI.AttemptFinished(ctx, info)
		return attemptDone{a: att, err: fmt.Errorf("webhook: record attempt: %w", err)}
	}

	out := *del
	out.Status = p.Status
	out.Attempts = number
	if !p.KeepRoundAttempts {
		out.RoundAttempts++
	}
	if p.Status == store.StatusPending {
		out.NextAttemptAt = p.NextAttemptAt
	}
	out.LeaseOwner, out.LeaseExpiresAt = "", time.Time{}
	out.LastStatusCode, out.LastError = att.ResponseStatus, att.Error
	out.UpdatedAt = now

	info.Outcome, info.NextAttemptAt = out.Status, p.NextAttemptAt
	d.mu.Lock()
	ws := d.stats.webhook(w.ID)
	d.stats.attempts++
	ws.Attempts++
	switch {
	case out.Status == store.StatusSuccess:
		d.stats.success++
		ws.Succeeded++
	case out.Status == store.StatusFailed:
		d.stats.failed++
		ws.Failed++
	case !p.KeepRoundAttempts:
		// Scheduled again by the retry policy. An attempt cut short by
		// Stop (KeepRoundAttempts) is no retry: it spends none of the
		// budget and is due again at once.
		d.stats.retried++
		ws.Retried++
	}
	if gone {
		// Its parked deliveries, which the store left leased to us, fail
		// unsent when they start: the webhook is read afresh.
		d.forgetLocked(w.ID)
	}
	d.mu.Unlock()

	d.hooksI.AttemptFinished(ctx, info)
	if d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.LogAttrs(ctx, slog.LevelDebug, "webhook attempt",
			slog.String("delivery_id", del.ID), slog.String("webhook_id", w.ID), slog.Int("attempt", number),
			slog.Int("status", att.ResponseStatus), slog.String("error_class", string(att.ErrorClass)),
			slog.Duration("duration", att.Duration), slog.String("outcome", string(out.Status)))
	}
	switch out.Status {
	case store.StatusSuccess:
		d.hooksI.DeliverySucceeded(ctx, &out)
	case store.StatusFailed:
		derr := &DeliveryError{DeliveryID: del.ID, WebhookID: w.ID, Attempt: number, StatusCode: att.ResponseStatus, Class: att.ErrorClass, Message: att.Error}
		d.log.LogAttrs(ctx, slog.LevelInfo, "webhook delivery failed",
			slog.String("delivery_id", del.ID), slog.String("webhook_id", w.ID), slog.Int("attempts", number), slog.String("error", att.Error))
		d.hooksI.DeliveryFailed(ctx, &out, derr)
	}
	if p.DisableWebhook != "" {
		d.log.LogAttrs(ctx, slog.LevelWarn, "webhook disabled", slog.String("webhook_id", w.ID), slog.String("reason", p.DisableWebhook))
		d.hooksI.WebhookDisabled(ctx, w.ID, p.DisableWebhook)
	}
	return attemptDone{d: &out, a: att}
}

// reservedHeaders are set by the dispatcher or by net/http; a webhook's
// custom headers never replace them.
var reservedHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "User-Agent": true, "Host": true,
	"Transfer-Encoding": true, "Connection": true, "Keep-Alive": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Expect": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Content-Encoding": true,
}

func reservedHeader(canonical string) bool {
	return underscoreAlias(canonical, func(c string) bool {
		return reservedHeaders[c] || strings.HasPrefix(c, "X-Webhook-") || strings.HasPrefix(c, "Webhook-")
	})
}

// underscoreAlias reports whether reserved holds for the canonical header
// name, or for the name it reads as at a receiver that does not tell '_'
// from '-': CGI and WSGI servers pass both Webhook_Signature and
// Webhook-Signature to the application as HTTP_WEBHOOK_SIGNATURE.
func underscoreAlias(canonical string, reserved func(string) bool) bool {
	if reserved(canonical) {
		return true
	}
	return strings.Contains(canonical, "_") && reserved(http.CanonicalHeaderKey(strings.ReplaceAll(canonical, "_", "-")))
}

// send makes the HTTP request of one attempt.
func (d *Dispatcher) send(ctx context.Context, t *target, del *store.Delivery, number int) (*store.Attempt, AttemptResult) {
	now := d.cfg.Now()
	att := &store.Attempt{DeliveryID: del.ID, Number: number, StartedAt: now, RequestURL: t.redacted}
	if t.u == nil {
		att.ErrorClass, att.Error = store.ErrorBlocked, t.urlErr
		return att, AttemptResult{ErrorClass: store.ErrorBlocked}
	}

	h := make(http.Header, len(t.custom)+12)
	for k, v := range t.custom {
		h[k] = v
	}
	h["Content-Type"] = contentTypeJSON
	// Shared read-only values: net/http only reads a request's headers.
	h["User-Agent"] = d.userAgent
	h["X-Webhook-Id"] = t.idHeader
	h["X-Webhook-Event"] = []string{del.EventType}
	h["X-Webhook-Delivery"] = []string{del.ID}
	if number < len(attemptHeaders) {
		h["X-Webhook-Attempt"] = attemptHeaders[number]
	} else {
		h["X-Webhook-Attempt"] = []string{strconv.Itoa(number)}
	}
	if signer := t.signerAt(now); signer != nil {
		signer.Sign(h, del.EventID, now, del.Body)
	}
	if t.sensitive {
		logged := h.Clone()
		for k := range t.custom {
			if redact.Credential(k) {
				logged[k] = redacted
			}
		}
		att.RequestHeaders = logged
	} else {
		att.RequestHeaders = h
	}

	// Timed from before the deadline is set, so an attempt that runs into
	// it lasts at least Timeout.
	t0 := time.Now()
	deadline := t0.Add(d.cfg.Timeout)
	req := &http.Request{
		Method:        http.MethodPost,
		URL:           t.u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: int64(len(del.Body)),
		Host:          t.u.Host,
	}
	// The transport directly: no redirect is ever followed, and a 3xx is
	// the attempt's answer.
	var resp *http.Response
	err := errOffersH2
	if d.h1 != nil {
		// The default transport ends the attempt at the deadline by
		// itself, and on Stop's word (Start): no context per attempt.
		// It writes a payload's bytes itself (writeRequest).
		req.Body = newPayload(del.Body)
		req.GetBody = func() (io.ReadCloser, error) { return newPayload(del.Body), nil }
		resp, err = d.h1.roundTripUntil(req, deadline)
	}
	if err == errOffersH2 {
		// Config.Transport, or the default one's HTTP/2 over TLS.
		req.Body = newBody(del.Body)
		req.GetBody = func() (io.ReadCloser, error) { return newBody(del.Body), nil }
		actx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		resp, err = d.rt.RoundTrip(req.WithContext(actx))
	}
	if err != nil {
		att.Duration = time.Since(t0)
		class, msg := classify(err, ctx.Err() != nil, d.cfg.Timeout)
		if class == store.ErrorTimeout && time.Now().Before(deadline) {
			// A limit of the transport's own (dial, TLS handshake) ended
			// the attempt before Timeout: name it.
			msg = "timeout: " + trimOp(err)
		}
		// The message may quote what the endpoint answered: one that
		// echoes the request line (a service that is not HTTP) makes it
		// quote the URL's query, where credentials are kept.
		att.ErrorClass, att.Error = class, redact.QueryIn(msg, t.w.URL)
		return att, AttemptResult{ErrorClass: class}
	}
	if resp.StatusCode < 200 {
		// 101 Switching Protocols, the only 1xx net/http returns: its body
		// is the raw connection, which the transport no longer closes when
		// actx ends, so a silent endpoint would hold the read, the worker
		// and Stop for ever. What follows a switch is not HTTP: leave it
		// unread (closing it closes the connection).
		resp.Body.Close()
		resp.Body = http.NoBody
	}
	att.ResponseBody, err = readCapped(resp.Body, d.cfg.MaxResponseBytes)
	if err == nil && len(att.ResponseBody) == d.cfg.MaxResponseBytes {
		// Drain a little more so the connection can be reused.
		_, err = io.CopyN(io.Discard, resp.Body, 64<<10)
	}
	resp.Body.Close()
	att.Duration = time.Since(t0)
	att.ResponseStatus = resp.StatusCode
	att.ResponseHeaders = capHeader(resp.Header, maxLoggedHeaderBytes)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// The body did not end within the timeout: the attempt held its
		// worker as long as one never answered, and is a timeout like it,
		// whatever its status.
		att.ErrorClass = store.ErrorTimeout
		att.Error = "response body not finished within " + d.cfg.Timeout.String()
		return att, AttemptResult{StatusCode: resp.StatusCode, ErrorClass: store.ErrorTimeout}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return att, AttemptResult{StatusCode: resp.StatusCode}
	}
	att.ErrorClass = store.ErrorHTTPStatus
	att.Error = "HTTP " + strconv.Itoa(resp.StatusCode)
	if text := http.StatusText(resp.StatusCode); text != "" {
		att.Error += " " + text
	}
	// Not from now, the attempt's start: deliver adds the delay to the
	// time the attempt ended, so a Retry-After date is kept however slow
	// the response was.
	return att, AttemptResult{
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Now()),
		ErrorClass: store.ErrorHTTPStatus,
	}
}

// maxLoggedHeaderBytes caps the response headers stored with an attempt.
const maxLoggedHeaderBytes = 4 << 10

// capHeader returns h, or a copy of it trimmed to about limit bytes of
// names and values when it is larger.
func capHeader(h http.Header, limit int) http.Header {
	n := 0
	for k, vs := range h {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	if n <= limit {
		return h
	}
	out := make(http.Header)
	n = 0
	for k, vs := range h {
		for _, v := range vs {
			if n+len(k)+len(v) > limit {
				continue
			}
			n += len(k) + len(v)
			out[k] = append(out[k], v)
		}
	}
	return out
}

var (
	contentTypeJSON = []string{"application/json"}
	// attemptHeaders holds the X-Webhook-Attempt values of the first
	// attempts.
	attemptHeaders = func() [][]string {
		out := make([][]string, 32)
		for i := range out {
			out[i] = []string{strconv.Itoa(i)}
		}
		return out
	}()
	redacted = []string{redact.Placeholder}
	readBufs = sync.Pool{New: func() any { return new([]byte) }}
)

// newBody returns a request body over a delivery's bytes. It must stay an
// io.NopCloser around a *bytes.Reader: net/http recognises that pair as
// in-memory and writes the headers and body in one write, where any other
// reader makes it flush the headers on their own first (a second write
// system call and packet per attempt).
func newBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// readCapped reads up to limit bytes of r (nil when there are none) and
// returns the error that ended the read before limit, if any. It costs
// memory for what it reads: only a limit up to maxPooledRead is read into
// a pooled buffer of the limit's size.
func readCapped(r io.Reader, limit int) ([]byte, error) {
	if limit > maxPooledRead {
		b, err := io.ReadAll(io.LimitReader(r, int64(limit)))
		if len(b) == 0 {
			return nil, err
		}
		return b, err
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	if cap(*bp) < limit {
		*bp = make([]byte, limit)
	}
	buf := (*bp)[:limit]
	n, err := io.ReadFull(r, buf)
	if n == 0 {
		return nil, err
	}
	return bytes.Clone(buf[:n]), err
}

// maxPooledRead is the largest Config.MaxResponseBytes read into pooled
// buffers of its size (one per attempt reading its response).
const maxPooledRead = 64 << 10

// target is a webhook prepared for sending: its URL parsed and checked, its
// custom headers filtered, its signer built. It is shared read-only by the
// attempts that use it.
type target struct {
	w        *store.Webhook
	u        *url.URL // nil when the URL cannot be sent to
	urlErr   string   // why u is nil
	redacted string   // the URL without credentials, for attempt logs
	idHeader []string // the X-Webhook-Id header's value
	// custom holds the webhook's custom headers that may be sent, with
	// canonical keys; sensitive reports that one of them is left out of logs.
	custom    http.Header
	sensitive bool
	// signer signs with the secrets active at creation; it must be rebuilt
	// from signerUntil on (when a previous secret expires).
	signer      *Signer
	signerUntil time.Time
	expires     time.Time // end of its life in the cache
}

func newTarget(w *store.Webhook, now time.Time) *target {
	t := &target{w: w, redacted: redact.URL(w.URL), idHeader: []string{w.ID}}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		t.urlErr = "the webhook URL is not an absolute URL"
	case u.Scheme != "https" && u.Scheme != "http":
		t.urlErr = "scheme " + strconv.Quote(u.Scheme) + " is not allowed"
	default:
		t.u = u
	}
	if len(w.Headers) > 0 {
		t.custom = make(http.Header, len(w.Headers))
		for k, v := range w.Headers {
			ck := http.CanonicalHeaderKey(k)
			if reservedHeader(ck) || !validToken(ck) || !validHeaderValue(v) {
				continue
			}
			t.custom[ck] = []string{v}
			if redact.Credential(ck) {
				t.sensitive = true
			}
		}
	}
	if t.u != nil && t.u.User != nil {
		// Credentials in the URL become HTTP basic auth, as net/http's
		// client would send them, and are kept out of logs.
		pw, _ := t.u.User.Password()
		if t.custom == nil {
			t.custom = make(http.Header, 1)
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(t.u.User.Username(), pw)
		t.custom["Authorization"] = req.Header["Authorization"]
		t.sensitive = true
		u2 := *t.u
		u2.User = nil
		t.u = &u2
	}
	t.signer, t.signerUntil = buildSigner(w.Secrets, now)
	return t
}

// signerAt returns the signer for the secrets active at now.
func (t *target) signerAt(now time.Time) *Signer {
	if t.signerUntil.IsZero() || now.Before(t.signerUntil) {
		return t.signer
	}
	s, _ := buildSigner(t.w.Secrets, now)
	return s
}

// buildSigner returns a signer for the secrets active at now (nil when
// there is none) and when the next of them expires (zero for never).
func buildSigner(ss []store.Secret, now time.Time) (*Signer, time.Time) {
	secrets := activeSecrets(ss, now)
	var until time.Time
	for i, s := range ss {
		if i > 0 && !s.ExpiresAt.IsZero() && now.Before(s.ExpiresAt) && (until.IsZero() || s.ExpiresAt.Before(until)) {
			until = s.ExpiresAt
		}
	}
	if len(secrets) == 0 {
		return nil, until
	}
	signer, err := NewSigner(secrets...)
	if err != nil {
		return nil, until
	}
	return signer, until
}

// activeSecrets returns the current secret and the previous ones still in
// their grace period at now.
func activeSecrets(ss []store.Secret, now time.Time) []string {
	out := make([]string, 0, len(ss))
	for i, s := range ss {
		if s.Value == "" {
			continue
		}
		if i > 0 && !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
			continue
		}
		out = append(out, s.Value)
	}
	return out
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// classify maps a transport error to an error class and a message without
// the URL (which may carry credentials) or the DNS server's address.
func classify(err error, stopping bool, timeout time.Duration) (store.ErrorClass, string) {
	err = withoutURL(err)
	var (
		dnsErr   *net.DNSError
		netErr   net.Error
		recErr   tls.RecordHeaderError
		certErr  *tls.CertificateVerificationError
		alertErr tls.AlertError
		authErr  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, ErrBlockedDestination):
		return store.ErrorBlocked, trimOp(err)
	case stopping:
		return store.ErrorCanceled, "the dispatcher stopped during the attempt"
	case errors.Is(err, context.DeadlineExceeded):
		return store.ErrorTimeout, "no response within " + timeout.String()
	case errors.As(err, &dnsErr):
		// Not dnsErr.Error(): it names the DNS server, an address of the
		// host's network the tenant reading the attempt has no use for.
		return store.ErrorDNS, "lookup " + dnsErr.Name + ": " + dnsErr.Err
	case errors.Is(err, syscall.ECONNREFUSED):
		return store.ErrorRefused, "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return store.ErrorReset, "connection reset: " + trimOp(err)
	case errors.As(err, &recErr), errors.As(err, &certErr), errors.As(err, &alertErr),
		errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &invErr):
		return store.ErrorTLS, "TLS: " + trimOp(err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return store.ErrorTimeout, "no response within " + timeout.String()
	}
	return store.ErrorNetwork, trimOp(err)
}

// trimOp returns the innermost useful message of a net.OpError chain,
// never the URL a *url.Error quotes.
func trimOp(err error) string {
	err = withoutURL(err)
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// withoutURL returns the error the innermost *url.Error of err's chain
// wraps, or err when there is none. A url.Error's message quotes the
// request's URL, query included, which may carry a credential; the
// default transport returns none, but a Config.Transport built on an
// http.Client does.
func withoutURL(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	return err
}

// purgeLoop removes finished deliveries older than the retention (unless
// purging is disabled) and forgets deleted webhooks, at start and every
// PurgeInterval, until ctx ends.
func (d *Dispatcher) purgeLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.PurgeInterval)
	defer t.Stop()
	for {
		if d.cfg.Retention > 0 {
			if n, err := d.purge(ctx); err != nil && ctx.Err() == nil {
				d.log.LogAttrs(ctx, slog.LevelError, "webhook: purge deliveries", slog.String("error", err.Error()))
			} else if n > 0 {
				d.log.LogAttrs(ctx, slog.LevelInfo, "webhook: purged deliveries", slog.Int("count", n))
			}
		}
		d.forgetDeleted(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purge removes finished deliveries last updated before now - Retention,
// in batches, and returns how many.
func (d *Dispatcher) purge(ctx context.Context) (int, error) {
	const batch = 1000
	before := d.cfg.Now().Add(-d.cfg.Retention)
	total := 0
	for {
		n, err := d.st.Purge(ctx, store.PurgeParams{Before: before, Limit: batch})
		total += n
		if err != nil {
			return total, err
		}
		if n < batch {
			return total, nil
		}
	}
}

// forgetDeleted drops what the dispatcher keeps of webhooks that no longer
// exist and have nothing in flight: their lowered concurrency limits, their
// counters and their cached records.
func (d *Dispatcher) forgetDeleted(ctx context.Context) {
	d.mu.Lock()
	ids := make([]string, 0, len(d.stats.per)+len(d.limits))
	for id := range d.stats.per {
		ids = append(ids, id)
	}
	for id := range d.limits {
		if d.stats.per[id] == nil {
			ids = append(ids, id)
		}
	}
	d.mu.Unlock()
	for _, id := range ids {
		if _, err := d.st.GetWebhook(ctx, id); !errors.Is(err, store.ErrNotFound) {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		d.mu.Lock()
		if d.hooks[id] == nil {
			delete(d.stats.per, id)
			delete(d.limits, id)
			d.forgetLocked(id)
		}
		d.mu.Unlock()
	}
}
