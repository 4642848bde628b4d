// Package memstore is an in-memory [store.Store] for tests, examples and
// hosts that can afford to lose their queue on restart.
//
// It keeps every record in process memory behind one lock (but for the
// copies of the active webhooks that MatchWebhooks reads without it), copies
// records in and out (a caller never shares memory with the store), and
// passes the conformance suite in store/storetest. Claim walks a due-ordered
// index, so its cost grows with the number of due deliveries, not with the
// size of the queue; Purge takes the oldest finished deliveries from a list
// kept in time order, so its cost grows with what it removes, not with what
// the store keeps.
//
// Times are kept without their monotonic clock readings (see package time),
// as a durable store reads them back: due times, leases and secret expiries
// are compared by the wall clock, like the other stores do, also after the
// wall clock steps or the machine resumes from suspend. A finished
// delivery is kept packed in one byte slice (see appendPacked), and its
// times read back in UTC when they were in UTC and in time.Local
// otherwise, as its attempts' are.
package memstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/internal/hdrcode"
)

var _ store.Store = (*Store)(nil)

// Store is an in-memory store.Store. The zero value is not usable; call New.
// It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	closed bool
	// unlockW and unlockR are mu's unlock methods, made once: a method
	// value made per call would allocate on every call.
	unlockW, unlockR func()

	webhooks       map[string]*store.Webhook
	tenantWebhooks map[string][]string // webhook ids per tenant, ascending
	// active holds, for a tenant matched since its webhooks last changed,
	// copies of its active webhooks in ascending id order: MatchWebhooks
	// reads them without the lock. Every Emit matches, and under load a
	// read lock waits behind the writers of Enqueue, Claim and Complete
	// queued before it: without that wait, webhookbench's mem scenario
	// delivered 14% more a second, at about the same processor time a
	// delivery (four alternating pairs of -scenarios raw,mem -duration
	// 4s). A miss fills it under the read lock, and every change to a
	// tenant's webhooks drops the tenant's under the write lock, so a copy
	// is never older than a change made before it was read.
	active sync.Map // tenant -> []*store.Webhook

	deliveries map[string]*delRec // the pending ones
	packed     map[string][]byte  // the finished ones (see appendPacked)
	// aged lists the packed deliveries by when they were last updated,
	// oldest first: Purge takes its victims from the front rather than
	// look at every finished delivery while the other calls wait for the
	// lock. An entry whose delivery has left packed since (deleted or
	// redelivered) is stale, and skipped; stale counts them, and aged is
	// compacted once they are half of it.
	aged              []agedEntry
	stale             int
	tenantDeliveries  map[string][]string // delivery ids per tenant, ascending
	webhookDeliveries map[string][]string // delivery ids per webhook, ascending
	dedup             map[dedupKey]string

	claims *claimIndex
}

// delRec is a pending delivery with its attempts and its place in the claim
// index.
type delRec struct {
	d        store.Delivery
	attempts [][]byte // encodeAttempt of each, by Number
	qi       int      // index in its webhook's ready queue; -1 when not there
	li       int      // index in the lease heap; -1 when not there
}

type dedupKey struct{ eventID, webhookID string }

// New returns an empty, open Store.
func New() *Store {
	s := &Store{
		webhooks:          make(map[string]*store.Webhook),
		tenantWebhooks:    make(map[string][]string),
		deliveries:        make(map[string]*delRec),
		packed:            make(map[string][]byte),
		tenantDeliveries:  make(map[string][]string),
		webhookDeliveries: make(map[string][]string),
		dedup:             make(map[dedupKey]string),
		claims:            newClaimIndex(),
	}
	s.unlockW, s.unlockR = s.mu.Unlock, s.mu.RUnlock
	return s
}

// now is the time the store stamps on records whose caller left it zero:
// UTC, truncated to microseconds like the other stores.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// wall returns t without its monotonic clock reading. Every time the store
// keeps goes through it (see the package documentation).
func wall(t time.Time) time.Time { return t.Round(0) }

// wallWebhook strips the monotonic clock readings from the times of w,
// which must not share its Secrets with anyone (a Clone).
func wallWebhook(w *store.Webhook) {
	w.CreatedAt, w.UpdatedAt = wall(w.CreatedAt), wall(w.UpdatedAt)
	for i := range w.Secrets {
		w.Secrets[i].ExpiresAt = wall(w.Secrets[i].ExpiresAt)
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("memstore: "+format+": %w", append(args, store.ErrInvalid)...)
}

func notFound(kind, id string) error {
	return fmt.Errorf("memstore: %s %q: %w", kind, id, store.ErrNotFound)
}

// begin checks ctx and takes the lock; the caller must call the returned
// unlock when err is nil.
func (s *Store) begin(ctx context.Context, write bool) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	if write {
		s.mu.Lock()
		unlock = s.unlockW
	} else {
		s.mu.RLock()
		unlock = s.unlockR
	}
	if s.closed {
		unlock()
		return nil, fmt.Errorf("memstore: %w", store.ErrClosed)
	}
	return unlock, nil
}

// Ping returns nil while the store is open.
func (s *Store) Ping(ctx context.Context) error {
	unlock, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	unlock()
	return nil
}

// Close discards every record. Later calls return store.ErrClosed; a second
// Close returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.webhooks, s.tenantWebhooks = nil, nil
	s.active.Clear()
	s.deliveries, s.packed, s.tenantDeliveries, s.webhookDeliveries = nil, nil, nil, nil
	s.aged, s.stale = nil, 0
	s.dedup, s.claims = nil, nil
	return nil
}

// ---- webhooks ----

// CreateWebhook stores a copy of w. When w.CreatedAt is zero it is set to
// now, and when w.UpdatedAt is zero it is set to CreatedAt; both are written
// back into w.
func (s *Store) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	return s.CreateWebhookCapped(ctx, w, 0)
}

// CreateWebhookCapped is CreateWebhook, unless w.Tenant has limit webhooks or
// more already (store.ErrLimit). See store.CappedCreator.
func (s *Store) CreateWebhookCapped(ctx context.Context, w *store.Webhook, limit int) error {
	if err := checkWebhook(w); err != nil {
		return err
	}
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := s.webhooks[w.ID]; ok {
		return fmt.Errorf("memstore: webhook %q: %w", w.ID, store.ErrConflict)
	}
	if limit > 0 && len(s.tenantWebhooks[w.Tenant]) >= limit {
		return fmt.Errorf("memstore: tenant has %d webhooks, the most allowed: %w", limit, store.ErrLimit)
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = now()
	}
	if w.UpdatedAt.IsZero() {
		w.UpdatedAt = w.CreatedAt
	}
	c := w.Clone()
	wallWebhook(c)
	s.webhooks[w.ID] = c
	s.tenantWebhooks[w.Tenant] = insertSorted(s.tenantWebhooks[w.Tenant], w.ID)
	s.active.Delete(w.Tenant)
	return nil
}

func checkWebhook(w *store.Webhook) error {
	switch {
	case w == nil:
		return invalid("nil webhook")
	case w.ID == "":
		return invalid("webhook without id")
	case w.Tenant == "":
		return invalid("webhook %q without tenant", w.ID)
	}
	return nil
}

// GetWebhook returns a copy of the webhook with the given id.
func (s *Store) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	if id == "" {
		return nil, invalid("empty webhook id")
	}
	unlock, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	w, ok := s.webhooks[id]
	if !ok {
		return nil, notFound("webhook", id)
	}
	return w.Clone(), nil
}

// ListWebhooks returns a page of the tenant's webhooks, newest (highest id)
// first.
func (s *Store) ListWebhooks(ctx context.Context, p store.ListWebhooksParams) ([]*store.Webhook, string, error) {
	if p.Tenant == "" {
		return nil, "", invalid("listing webhooks without tenant")
	}
	if err := checkLimit(p.Limit); err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	unlock, err := s.begin(ctx, false)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	var out []*store.Webhook
	next := ""
	ids := s.tenantWebhooks[p.Tenant]
	for i := startBefore(ids, after); i >= 0; i-- {
		if len(out) == p.Limit {
			next = encodeCursor(out[len(out)-1].ID)
			break
		}
		out = append(out, s.webhooks[ids[i]].Clone())
	}
	return out, next, nil
}

// UpdateWebhook changes the webhook id under the store's lock. See
// store.Store.
func (s *Store) UpdateWebhook(ctx context.Context, id string, change func(w *store.Webhook) error) (*store.Webhook, error) {
	if id == "" {
		return nil, invalid("empty webhook id")
	}
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	old, ok := s.webhooks[id]
	if !ok {
		return nil, notFound("webhook", id)
	}
	w := old.Clone()
	if err := change(w); err != nil {
		return nil, err
	}
	w.ID, w.Tenant, w.CreatedAt = old.ID, old.Tenant, old.CreatedAt
	if w.UpdatedAt.IsZero() {
		w.UpdatedAt = now()
	}
	w = w.Clone() // change may have put in slices that others hold
	wallWebhook(w)
	s.webhooks[id] = w
	s.active.Delete(w.Tenant)
	return w.Clone(), nil
}

// DeleteWebhook removes the webhook, its deliveries and their attempts.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	if id == "" {
		return invalid("empty webhook id")
	}
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	w, ok := s.webhooks[id]
	if !ok {
		return notFound("webhook", id)
	}
	gone := make(map[string]bool)
	for _, did := range s.webhookDeliveries[id] {
		gone[did] = true
		s.dropDelivery(did)
	}
	delete(s.webhookDeliveries, id)
	s.tenantDeliveries[w.Tenant] = slices.DeleteFunc(s.tenantDeliveries[w.Tenant], func(did string) bool { return gone[did] })
	if len(s.tenantDeliveries[w.Tenant]) == 0 {
		delete(s.tenantDeliveries, w.Tenant)
	}
	delete(s.webhooks, id)
	s.active.Delete(w.Tenant)
	s.tenantWebhooks[w.Tenant] = removeSorted(s.tenantWebhooks[w.Tenant], id)
	if len(s.tenantWebhooks[w.Tenant]) == 0 {
		delete(s.tenantWebhooks, w.Tenant)
	}
	return nil
}

// dropDelivery forgets delivery id everywhere except the id slices, which
// the caller filters in one pass.
func (s *Store) dropDelivery(id string) {
	if r, ok := s.deliveries[id]; ok {
		s.claims.remove(r)
		delete(s.deliveries, id)
		delete(s.dedup, dedupKey{r.d.EventID, r.d.WebhookID})
		return
	}
	h := readHead(&dec{b: s.packed[id]})
	s.unpack(id)
	delete(s.dedup, dedupKey{string(h.eventID), string(h.webhookID)})
}

// agedEntry is a packed delivery's id and when it was last updated, as
// Unix seconds and nanoseconds: a time.Time would add a *Location to each.
type agedEntry struct {
	sec  int64
	nsec int32
	id   string
}

func newAgedEntry(id string, t time.Time) agedEntry {
	return agedEntry{sec: t.Unix(), nsec: int32(t.Nanosecond()), id: id}
}

// before reports whether e was last updated before o was.
func (e *agedEntry) before(o *agedEntry) bool {
	return e.sec < o.sec || e.sec == o.sec && e.nsec < o.nsec
}

// current reports whether e's delivery is packed as it was when e was
// made: not since deleted, nor redelivered (and maybe finished again).
func (s *Store) current(e *agedEntry) bool {
	b, ok := s.packed[e.id]
	if !ok {
		return false
	}
	t := (&dec{b: b}).time() // UpdatedAt, packed first
	return t.Unix() == e.sec && int32(t.Nanosecond()) == e.nsec
}

// unpack forgets packed delivery id, deleted or redelivered: its entry in
// aged is stale from now on.
func (s *Store) unpack(id string) {
	delete(s.packed, id)
	s.stale++
	if s.stale > minCompact && s.stale > len(s.aged)/2 {
		s.aged = slices.DeleteFunc(s.aged, func(e agedEntry) bool { return !s.current(&e) })
		s.stale = 0
	}
}

// minCompact is the fewest stale entries of aged that make it compacted.
const minCompact = 1024

// finish packs r, finished: it leaves the pending deliveries. The packed
// bytes are kept until purged (by default 30 days after the delivery
// finished: webhook.Config.Retention), in a slice of their own length.
func (s *Store) finish(r *delRec) {
	s.pack(r.d.ID, appendPacked(make([]byte, 0, packedLen(&r.d, r.attempts)), &r.d, r.attempts), r.d.UpdatedAt)
	delete(s.deliveries, r.d.ID)
}

// pack keeps b, delivery id packed, last updated at updated.
func (s *Store) pack(id string, b []byte, updated time.Time) {
	s.packed[id] = b
	e := newAgedEntry(id, updated)
	// Deliveries finish mostly in the order of their times: the entry goes
	// last, or a few places before it; after the ones of the same time.
	i := len(s.aged)
	if i > 0 && e.before(&s.aged[i-1]) {
		i = sort.Search(i, func(j int) bool { return e.before(&s.aged[j]) })
	}
	s.aged = slices.Insert(s.aged, i, e)
}

// MatchWebhooks returns copies of the tenant's active webhooks subscribed to
// eventType, in ascending id order (oldest first).
func (s *Store) MatchWebhooks(ctx context.Context, tenant, eventType string) ([]*store.Webhook, error) {
	if tenant == "" || eventType == "" {
		return nil, invalid("matching webhooks needs a tenant and an event type")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	var ws []*store.Webhook
	if v, ok := s.active.Load(tenant); ok {
		ws = v.([]*store.Webhook)
	} else {
		unlock, err := s.begin(ctx, false)
		if err != nil {
			return nil, err
		}
		ws = s.activeOf(tenant)
		unlock()
	}
	var out []*store.Webhook
	for _, w := range ws {
		if store.MatchAny(w.Events, eventType) {
			out = append(out, w.Clone())
		}
	}
	return out, nil
}

// activeOf returns copies of the tenant's active webhooks, in ascending id
// order, and keeps them in s.active when the tenant has webhooks (a tenant
// without any, which Emit may name as often as any other, takes no room).
// s.mu is held, for reading at least.
func (s *Store) activeOf(tenant string) []*store.Webhook {
	ids := s.tenantWebhooks[tenant]
	if len(ids) == 0 {
		return nil
	}
	ws := make([]*store.Webhook, 0, len(ids))
	for _, id := range ids {
		if w := s.webhooks[id]; w.Active {
			ws = append(ws, w.Clone())
		}
	}
	s.active.Store(tenant, ws)
	return ws
}

// ---- deliveries ----

// Enqueue stores copies of ds atomically. See store.Store.
func (s *Store) Enqueue(ctx context.Context, ds []*store.Delivery) ([]string, error) {
	if err := store.ValidateEnqueue(ds); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	// What Enqueue allocates is allocated before it takes the lock that
	// every Enqueue, Claim and Complete needs: the copies (the body's
	// above all) are the longest part of an Enqueue, and an allocation can
	// make the goroutine that holds the lock help the garbage collector
	// meanwhile. A duplicate's record is made for nothing.
	t := now()
	recs := make([]*delRec, len(ds))
	for i, d := range ds {
		recs[i] = newDelRec(d, t)
	}
	ids := make([]string, len(ds))
	fresh := make([]*delRec, 0, len(ds))
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()

	batch := make(map[dedupKey]string, len(ds))
	batchIDs := make(map[string]bool, len(ds))
	for i, d := range ds {
		w, ok := s.webhooks[d.WebhookID]
		if !ok {
			return nil, notFound("webhook", d.WebhookID)
		}
		if w.Tenant != d.Tenant {
			return nil, invalid("delivery %q names tenant %q, its webhook belongs to another", d.ID, d.Tenant)
		}
		key := dedupKey{d.EventID, d.WebhookID}
		if id, ok := s.dedup[key]; ok {
			ids[i] = id
			continue
		}
		if id, ok := batch[key]; ok {
			ids[i] = id
			continue
		}
		if s.exists(d.ID) || batchIDs[d.ID] {
			return nil, fmt.Errorf("memstore: delivery %q: %w", d.ID, store.ErrConflict)
		}
		batch[key] = d.ID
		batchIDs[d.ID] = true
		ids[i] = d.ID
		fresh = append(fresh, recs[i])
	}

	for _, r := range fresh {
		d := &r.d
		s.deliveries[d.ID] = r
		s.dedup[dedupKey{d.EventID, d.WebhookID}] = d.ID
		s.tenantDeliveries[d.Tenant] = insertSorted(s.tenantDeliveries[d.Tenant], d.ID)
		s.webhookDeliveries[d.WebhookID] = insertSorted(s.webhookDeliveries[d.WebhookID], d.ID)
		if r.d.LeaseOwner != "" {
			s.claims.addLeased(r)
		} else {
			s.claims.addReady(r)
		}
	}
	return ids, nil
}

// Claim leases due deliveries. See store.Store.
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Delivery, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	var skip map[string]bool
	if len(p.SkipWebhooks) > 0 {
		skip = make(map[string]bool, len(p.SkipWebhooks))
		for _, id := range p.SkipWebhooks {
			skip[id] = true
		}
	}
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	s.claims.expire(p.Now)
	rs := s.claims.claim(p.Now, p.Limit, skip)
	out := make([]store.Delivery, len(rs))
	for i, r := range rs {
		r.d.LeaseOwner = p.Owner
		r.d.LeaseExpiresAt = wall(p.Now.Add(p.Lease))
		s.claims.addLeased(r)
		out[i] = r.d
	}
	unlock()
	// A stored body never changes (a record's other fields do, under the
	// lock), so the copies of the bodies are made without holding it.
	ptrs := make([]*store.Delivery, len(out))
	for i := range out {
		out[i].Body = slices.Clone(out[i].Body)
		ptrs[i] = &out[i]
	}
	return ptrs, nil
}

// Complete records the attempt and moves the delivery on. See store.Store.
func (s *Store) Complete(ctx context.Context, p store.CompleteParams) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	// Encoding the attempt is the longest part of a Complete: it is done
	// (and a first attempt's list allocated) before taking the lock that
	// every Enqueue, Claim and Complete needs, with the refs that the
	// dispatcher's request headers carry, checked against the delivery's
	// once it is read.
	refs := hdrcode.Guess(p.DeliveryID, p.Attempt.RequestHeaders)
	att := encodeAttempt(p.Attempt, refs)
	first := [][]byte{att}
	at := wall(p.Now)
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	r, ok := s.deliveries[p.DeliveryID]
	if !ok {
		if _, ok := s.packed[p.DeliveryID]; ok {
			return fmt.Errorf("memstore: delivery %q: %w", p.DeliveryID, store.ErrLeaseLost)
		}
		return notFound("delivery", p.DeliveryID)
	}
	if r.d.LeaseOwner != p.Owner {
		return fmt.Errorf("memstore: delivery %q: %w", p.DeliveryID, store.ErrLeaseLost)
	}
	if p.Attempt.Number != r.d.Attempts+1 {
		return fmt.Errorf("memstore: attempt %d of delivery %q, want %d: %w",
			p.Attempt.Number, p.DeliveryID, r.d.Attempts+1, store.ErrConflict)
	}
	w := s.webhooks[r.d.WebhookID]
	if w == nil && p.DisableWebhook != "" {
		return notFound("webhook", r.d.WebhookID)
	}
	status, countsRound := p.Outcome(w == nil || w.Active)

	if !hdrcode.Match(refs, r.d.ID, r.d.EventID, r.d.EventType, r.d.WebhookID) {
		att = encodeAttempt(p.Attempt, refsOf(&r.d))
		first[0] = att
	}
	if r.attempts == nil {
		r.attempts = first
	} else {
		r.attempts = append(r.attempts, att)
	}

	s.claims.remove(r)
	r.d.Attempts++
	if countsRound {
		r.d.RoundAttempts++
	}
	r.d.LastStatusCode = p.Attempt.ResponseStatus
	r.d.LastError = p.Attempt.Error
	r.d.Status = status
	r.d.LeaseOwner, r.d.LeaseExpiresAt = "", time.Time{}
	r.d.UpdatedAt = at
	if status == store.StatusPending {
		r.d.NextAttemptAt = wall(p.NextAttemptAt)
		s.claims.addReady(r)
	}

	if p.DisableWebhook != "" {
		w.Active = false
		w.DisabledReason = p.DisableWebhook
		w.UpdatedAt = at
		s.active.Delete(w.Tenant)
		for _, did := range s.webhookDeliveries[w.ID] {
			o, ok := s.deliveries[did]
			if !ok || o == r || o.d.LeaseOwner != "" && o.d.LeaseExpiresAt.After(at) {
				continue // finished, or an attempt in flight its owner records
			}
			s.claims.remove(o)
			o.d.Status = store.StatusFailed
			o.d.LastError = p.DisableWebhook
			o.d.LeaseOwner, o.d.LeaseExpiresAt = "", time.Time{}
			o.d.UpdatedAt = at
			s.finish(o)
		}
	}
	if status != store.StatusPending {
		s.finish(r)
	}
	return nil
}

// exists reports whether delivery id is stored, pending or finished.
func (s *Store) exists(id string) bool {
	_, pending := s.deliveries[id]
	_, finished := s.packed[id]
	return pending || finished
}

// Release gives up the owner's leases. See store.Store.
func (s *Store) Release(ctx context.Context, p store.ReleaseParams) error {
	if p.Owner == "" {
		return invalid("release without owner")
	}
	if slices.Contains(p.IDs, "") {
		return invalid("release of an empty id")
	}
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	for _, id := range p.IDs {
		r, ok := s.deliveries[id]
		if !ok || r.d.LeaseOwner != p.Owner {
			continue
		}
		s.claims.remove(r)
		r.d.LeaseOwner, r.d.LeaseExpiresAt = "", time.Time{}
		s.claims.addReady(r)
	}
	return nil
}

// GetDelivery returns a copy of one delivery.
func (s *Store) GetDelivery(ctx context.Context, id string) (*store.Delivery, error) {
	if id == "" {
		return nil, invalid("empty delivery id")
	}
	unlock, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if r, ok := s.deliveries[id]; ok {
		d := cloneDelivery(&r.d)
		return &d, nil
	}
	b, ok := s.packed[id]
	if !ok {
		return nil, notFound("delivery", id)
	}
	d, _ := unpackDelivery(b)
	d.Body = slices.Clone(d.Body)
	return &d, nil
}

// ListDeliveries returns a page of deliveries, newest (highest id) first.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]*store.Delivery, string, error) {
	if p.Tenant == "" {
		return nil, "", invalid("listing deliveries without tenant")
	}
	if p.Status != "" && !p.Status.Valid() {
		return nil, "", invalid("unknown status %q", p.Status)
	}
	if err := checkLimit(p.Limit); err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	unlock, err := s.begin(ctx, false)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	ids := s.tenantDeliveries[p.Tenant]
	if p.WebhookID != "" {
		ids = s.webhookDeliveries[p.WebhookID]
	}
	var out []*store.Delivery
	next := ""
	for i := startBefore(ids, after); i >= 0; i-- {
		var d store.Delivery
		if r, ok := s.deliveries[ids[i]]; ok {
			if r.d.Tenant != p.Tenant ||
				(p.Status != "" && r.d.Status != p.Status) ||
				(p.EventType != "" && r.d.EventType != p.EventType) {
				continue
			}
			d = r.d
		} else {
			b := s.packed[ids[i]]
			h := readHead(&dec{b: b})
			if string(h.tenant) != p.Tenant ||
				(p.Status != "" && string(h.status) != string(p.Status)) ||
				(p.EventType != "" && string(h.kind) != p.EventType) {
				continue
			}
			d, _ = unpackDelivery(b)
		}
		if len(out) == p.Limit {
			next = encodeCursor(out[len(out)-1].ID)
			break
		}
		if p.WithoutBody {
			d.Body = nil
		} else {
			d.Body = slices.Clone(d.Body)
		}
		out = append(out, &d)
	}
	return out, next, nil
}

// ListAttempts returns copies of a delivery's attempts, by Number.
func (s *Store) ListAttempts(ctx context.Context, deliveryID string) ([]*store.Attempt, error) {
	if deliveryID == "" {
		return nil, invalid("empty delivery id")
	}
	unlock, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var attempts [][]byte
	var refs hdrcode.Refs
	if r, ok := s.deliveries[deliveryID]; ok {
		attempts, refs = r.attempts, refsOf(&r.d)
	} else if b, ok := s.packed[deliveryID]; ok {
		var d store.Delivery
		d, attempts = unpackDelivery(b)
		refs = refsOf(&d)
	} else {
		return nil, notFound("delivery", deliveryID)
	}
	out := make([]*store.Attempt, len(attempts))
	for i, a := range attempts {
		out[i] = decodeAttempt(refs, a)
	}
	return out, nil
}

// Redeliver makes a finished delivery pending again. See store.Store.
func (s *Store) Redeliver(ctx context.Context, p store.RedeliverParams) (*store.Delivery, error) {
	if p.ID == "" {
		return nil, invalid("empty delivery id")
	}
	if p.Now.IsZero() {
		return nil, invalid("redeliver without Now")
	}
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, ok := s.deliveries[p.ID]; ok {
		return nil, fmt.Errorf("memstore: delivery %q is pending: %w", p.ID, store.ErrConflict)
	}
	b, ok := s.packed[p.ID]
	if !ok {
		return nil, notFound("delivery", p.ID)
	}
	r := &delRec{qi: -1, li: -1}
	r.d, r.attempts = unpackDelivery(b)
	s.unpack(p.ID)
	s.deliveries[p.ID] = r
	r.d.Status = store.StatusPending
	r.d.RoundAttempts = 0
	r.d.NextAttemptAt = wall(p.Now)
	r.d.LeaseOwner, r.d.LeaseExpiresAt = "", time.Time{}
	r.d.UpdatedAt = r.d.NextAttemptAt
	s.claims.addReady(r)
	d := cloneDelivery(&r.d)
	return &d, nil
}

// Purge removes finished deliveries updated before p.Before, with their
// attempts: up to p.Limit of them (0: all), the oldest first.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if p.Before.IsZero() {
		return 0, invalid("purge without Before")
	}
	if p.Limit < 0 {
		return 0, invalid("purge limit %d", p.Limit)
	}
	unlock, err := s.begin(ctx, true)
	if err != nil {
		return 0, err
	}
	defer unlock()
	before := newAgedEntry("", p.Before)
	if len(s.aged) == 0 || !s.aged[0].before(&before) {
		return 0, nil
	}
	gone := make(map[string]bool)
	tenants := make(map[string][]string)  // the ids purged of each
	webhooks := make(map[string][]string) // likewise
	n := 0                                // the entries of aged looked at
	for ; n < len(s.aged) && (p.Limit == 0 || len(gone) < p.Limit); n++ {
		e := &s.aged[n]
		if !e.before(&before) {
			break
		}
		if !s.current(e) {
			s.stale = max(s.stale-1, 0)
			continue
		}
		h := readHead(&dec{b: s.packed[e.id]})
		gone[e.id] = true
		tenants[string(h.tenant)] = append(tenants[string(h.tenant)], e.id)
		webhooks[string(h.webhookID)] = append(webhooks[string(h.webhookID)], e.id)
		delete(s.packed, e.id)
		delete(s.dedup, dedupKey{string(h.eventID), string(h.webhookID)})
	}
	clear(s.aged[:n])
	s.aged = shrunk(s.aged[n:])
	for t, ids := range tenants {
		if s.tenantDeliveries[t] = removeOldest(s.tenantDeliveries[t], ids, gone); len(s.tenantDeliveries[t]) == 0 {
			delete(s.tenantDeliveries, t)
		}
	}
	for w, ids := range webhooks {
		if s.webhookDeliveries[w] = removeOldest(s.webhookDeliveries[w], ids, gone); len(s.webhookDeliveries[w]) == 0 {
			delete(s.webhookDeliveries, w)
		}
	}
	return len(gone), nil
}

// CountDeliveries tallies one webhook's deliveries by status.
func (s *Store) CountDeliveries(ctx context.Context, webhookID string) (store.Counts, error) {
	if webhookID == "" {
		return store.Counts{}, invalid("empty webhook id")
	}
	unlock, err := s.begin(ctx, false)
	if err != nil {
		return store.Counts{}, err
	}
	defer unlock()
	if _, ok := s.webhooks[webhookID]; !ok {
		return store.Counts{}, notFound("webhook", webhookID)
	}
	var c store.Counts
	for _, id := range s.webhookDeliveries[webhookID] {
		if _, ok := s.deliveries[id]; ok {
			c.Pending++
			continue
		}
		switch store.Status(readHead(&dec{b: s.packed[id]}).status) {
		case store.StatusSuccess:
			c.Success++
		case store.StatusFailed:
			c.Failed++
		}
	}
	return c, nil
}

// ---- helpers ----

func checkLimit(n int) error {
	if n < 1 || n > store.MaxPageLimit {
		return invalid("limit %d outside 1..%d", n, store.MaxPageLimit)
	}
	return nil
}

const cursorPrefix = "m1:"

// encodeCursor names the position after id in a newest-first listing.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

// decodeCursor returns the id a cursor continues after, "" for none.
func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) || len(b) == len(cursorPrefix) {
		return "", invalid("malformed cursor")
	}
	return string(b[len(cursorPrefix):]), nil
}

// startBefore returns the index of the last id in the ascending slice that
// sorts before after (the last index when after is ""), or -1.
func startBefore(ids []string, after string) int {
	if after == "" {
		return len(ids) - 1
	}
	i, _ := slices.BinarySearch(ids, after)
	return i - 1
}

func insertSorted(ids []string, id string) []string {
	if n := len(ids); n == 0 || ids[n-1] < id {
		return append(ids, id)
	}
	i, found := slices.BinarySearch(ids, id)
	if found {
		return ids
	}
	return slices.Insert(ids, i, id)
}

// removeOldest removes from ids, ascending, the ones of drop that it holds
// (gone holds them all, and maybe others). Purge removes the oldest
// deliveries, whose ids mostly come first: the ids kept before the last one
// removed move up, rather than every one after the first move down, and
// the slice then starts after them.
func removeOldest(ids, drop []string, gone map[string]bool) []string {
	last := -1
	for _, id := range drop {
		if i, found := slices.BinarySearch(ids, id); found {
			last = max(last, i)
		}
	}
	w := last
	for r := last; r >= 0; r-- {
		if !gone[ids[r]] {
			ids[w] = ids[r]
			w--
		}
	}
	clear(ids[:w+1])
	return shrunk(ids[w+1:])
}

// shrunk returns s, in an array of its own length once it holds less than
// a quarter of its array's: a slice that entries leave from the front
// keeps the array's front until an append outgrows it.
func shrunk[E any](s []E) []E {
	if len(s) < cap(s)/4 {
		return slices.Clone(s)
	}
	return s
}

func removeSorted(ids []string, id string) []string {
	if i, found := slices.BinarySearch(ids, id); found {
		return slices.Delete(ids, i, i+1)
	}
	return ids
}

// newDelRec returns the record Enqueue stores for d: a copy in the pending
// state, its times defaulted from t.
func newDelRec(d *store.Delivery, t time.Time) *delRec {
	r := &delRec{d: cloneDelivery(d), qi: -1, li: -1}
	r.d.NextAttemptAt, r.d.LeaseExpiresAt = wall(r.d.NextAttemptAt), wall(r.d.LeaseExpiresAt)
	r.d.CreatedAt, r.d.UpdatedAt = wall(r.d.CreatedAt), wall(r.d.UpdatedAt)
	r.d.Status = store.StatusPending
	r.d.Attempts, r.d.RoundAttempts = 0, 0
	r.d.LastStatusCode, r.d.LastError = 0, ""
	if r.d.LeaseOwner == "" {
		r.d.LeaseExpiresAt = time.Time{}
	}
	if r.d.CreatedAt.IsZero() {
		r.d.CreatedAt = t
	}
	if r.d.UpdatedAt.IsZero() {
		r.d.UpdatedAt = r.d.CreatedAt
	}
	if r.d.NextAttemptAt.IsZero() {
		r.d.NextAttemptAt = r.d.CreatedAt
	}
	return r
}

func cloneDelivery(d *store.Delivery) store.Delivery {
	c := *d
	c.Body = slices.Clone(d.Body)
	return c
}
