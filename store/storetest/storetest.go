// Package storetest is the conformance suite of store.Store: the single
// definition of correct behaviour that memstore, boltstore, pgstore and any
// third-party store run from their own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s := mystore.Open(t.TempDir())
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Every subtest calls the constructor for a fresh, empty store, so the
// constructor must register its own cleanup with t.Cleanup. After each
// subtest the suite checks the store's invariants through the public
// interface (see [CheckInvariants]) before the constructor's cleanup closes
// it.
//
// # Contract decisions
//
// Where the doc comments of package store leave room, the suite pins the
// behaviour down; every Store must match:
//
//   - Times. A store may truncate times to microseconds and may return them
//     in any location, but keeps the instant of a time given in any
//     location; the suite builds its data at microsecond precision, mostly
//     in UTC, and compares with time.Time.Equal. A zero time is returned as the
//     zero time. Times a store sets itself (CreatedAt, UpdatedAt when zero)
//     come from its own clock. A time read back carries no monotonic clock
//     reading, whatever the caller's carried (one from time.Now does): the
//     store compares the times it keeps by the wall clock, as a time read
//     from disk or a database is compared.
//   - Ordering. Ids are compared as byte strings (in PostgreSQL, a text
//     column needs COLLATE "C"). "Newest first" means
//     descending id; MatchWebhooks' "oldest first" means ascending id.
//     Claim returns deliveries in ascending (NextAttemptAt, ID).
//   - Pagination. A listing's next cursor is "" exactly when the page holds
//     the last matching item (a store looks one item ahead). Cursors are
//     opaque, keyset-based (an item inserted or deleted meanwhile never makes
//     another item appear twice or go missing) and a malformed one is
//     ErrInvalid.
//   - Limits. Listing and Claim limits outside 1..store.MaxPageLimit are
//     ErrInvalid. Purge's Limit 0 means no bound, negative is ErrInvalid.
//     Ids, tenants, event ids, event types and lease owners of up to
//     [MaxAcceptedID] bytes are stored as given; a longer one may be
//     refused, but only with ErrInvalid, storing nothing.
//   - Required inputs. Empty ids, nil records, an empty Tenant (webhooks,
//     listings, MatchWebhooks), an empty eventType, a zero Now (Claim,
//     Complete, Redeliver), a zero Purge Before, a Claim without Owner or
//     with Lease <= 0, an unknown Status filter, and an empty id inside
//     Release's IDs are ErrInvalid. Input is validated before anything is
//     written.
//   - Missing records. Get/Update/Delete of an unknown webhook, GetDelivery,
//     ListAttempts, Redeliver and Complete of an unknown delivery, and
//     CountDeliveries of an unknown webhook are ErrNotFound. Release
//     ignores unknown ids. A store may refuse to store a string that is
//     not valid UTF-8 or holds a NUL byte (with ErrInvalid), but a lookup,
//     filter or owner with one names a missing record like any other.
//   - CreateWebhook sets CreatedAt to now when zero and UpdatedAt to
//     CreatedAt when zero, and writes both back into its argument.
//     UpdateWebhook reads, changes and writes in one transaction (updates
//     at the same time are never lost), hands its change a copy of the
//     stored webhook, keeps the stored ID, Tenant and CreatedAt, sets
//     UpdatedAt to now when the change leaves it zero, returns what it
//     stored, and stores nothing when the change fails. The store keeps
//     no reference to any argument.
//   - Enqueue requires ID, WebhookID, EventID, EventType and Tenant; the
//     webhook must exist (else ErrNotFound) and belong to Tenant (else
//     ErrInvalid); Status must be "" or pending, and a LeaseOwner needs a
//     LeaseExpiresAt (else ErrInvalid). It stores a fresh delivery: Status
//     pending; Attempts, RoundAttempts, LastStatusCode and LastError zeroed;
//     the lease as given when LeaseOwner is set (a leased delivery: Claim
//     passes it over while the lease is live, its owner may Complete or
//     Release it), else no lease; CreatedAt now when
//     zero; UpdatedAt CreatedAt when zero; NextAttemptAt CreatedAt when zero.
//     An ID already stored (or twice in the batch) for another (EventID,
//     WebhookID) is ErrConflict. A duplicate (EventID, WebhookID), within
//     the batch or against the store, returns the first delivery's id and
//     changes nothing; its own ID is not looked at, so it may be the id of
//     another delivery of the batch. Any error stores nothing; a batch
//     with several faults (an unknown webhook and an id in use, say) gets
//     the error of any one of them. Enqueue does not modify its arguments.
//     An empty batch returns no ids and no error. Enqueue does not look at
//     the webhook's Active flag.
//   - Claim sets LeaseOwner = Owner and LeaseExpiresAt = Now + Lease. A
//     lease is live while LeaseExpiresAt > Now. Claim does not look at the
//     webhook's Active flag, and it does not change UpdatedAt: UpdatedAt
//     moves with state changes (Enqueue, Complete, Redeliver, a disable),
//     not with leases (Claim, Release).
//   - Complete: ErrNotFound for an unknown delivery; ErrLeaseLost when the
//     delivery is not pending or its LeaseOwner is not Owner (an owner whose
//     lease expired may still complete while nobody else has claimed it);
//     ErrConflict when Attempt.Number is not Attempts + 1; ErrInvalid when
//     Attempt is nil, Status is invalid, Status is pending with a zero
//     NextAttemptAt, KeepRoundAttempts is set with a Status other than
//     pending, or Attempt.DeliveryID names another delivery (an empty one
//     is filled in). On success: the attempt is appended; Attempts grows by
//     one, and RoundAttempts too unless KeepRoundAttempts is set and the
//     delivery stays pending; LastStatusCode = Attempt.ResponseStatus;
//     LastError = Attempt.Error; Status = p.Status; NextAttemptAt =
//     p.NextAttemptAt when pending, unchanged otherwise; the lease is
//     cleared; UpdatedAt = Now. Any error changes nothing. A Status of
//     pending stores failed instead when the delivery's webhook is
//     inactive (or DisableWebhook is set), NextAttemptAt unchanged: an
//     inactive webhook's delivery is not retried. CompleteParams.Outcome
//     gives both the status and whether RoundAttempts grows.
//   - Complete with DisableWebhook: the webhook gets Active = false,
//     DisabledReason = DisableWebhook, UpdatedAt = Now; every other pending
//     delivery of it that is not under a live lease at Now becomes failed
//     with LastError = DisableWebhook, its lease cleared and UpdatedAt =
//     Now; Attempts are unchanged. One under a live lease is left as it is:
//     its owner's attempt is in flight, and its Complete records it (a
//     success succeeds, a retry fails, as above); an owner whose lease had
//     expired gets ErrLeaseLost.
//   - Release clears the owner's leases; the deliveries keep their
//     NextAttemptAt, so a due one is claimable at once.
//   - Redeliver sets Status pending, NextAttemptAt = Now, RoundAttempts 0,
//     clears the lease, sets UpdatedAt = Now, keeps Attempts, LastStatusCode
//     and LastError, and returns the updated delivery.
//   - Purge removes finished deliveries whose UpdatedAt is strictly before
//     Before; under a Limit, which ones go first is up to the store. Once
//     a delivery is purged or its webhook deleted, its ID and its (EventID,
//     WebhookID) can be enqueued again, with an empty attempt log.
//   - Listings filter by exact equality (EventType is not a pattern). A
//     WebhookID filter naming another tenant's webhook, or no webhook at
//     all, yields an empty page, not an error.
//   - Every method called with a cancelled context returns an error for
//     which errors.Is(err, context.Canceled) holds. After Close every method
//     returns ErrClosed; a second Close returns nil.
//   - Records returned by a store are full records (Secrets included): the
//     API layer, not the store, hides secrets.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/noa-server/webhook/store"
)

// Options tunes the suite for a store. The zero value runs everything at
// full size.
type Options struct {
	// ClaimDeliveries is how many deliveries the concurrent-claim test
	// enqueues. Defaults to 500.
	ClaimDeliveries int
	// Claimers is how many goroutines claim them at once. Defaults to 16.
	Claimers int
	// Serial runs the subtests one after another instead of in parallel,
	// for a store whose constructor cannot run concurrently.
	Serial bool
}

func (o Options) withDefaults() Options {
	if o.ClaimDeliveries <= 0 {
		o.ClaimDeliveries = 500
	}
	if o.Claimers <= 0 {
		o.Claimers = 16
	}
	return o
}

// Run runs the whole conformance suite against stores made by newStore,
// which must return a fresh, empty, open store and register its cleanup
// with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	RunWithOptions(t, newStore, Options{})
}

// RunWithOptions is Run with options.
func RunWithOptions(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) {
	opts = opts.withDefaults()
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"Webhooks", webhookTests},
		{"Enqueue", enqueueTests},
		{"Claim", claimTests},
		{"Complete", completeTests},
		{"Deliveries", deliveryTests},
		{"Times", timeTests},
		{"Robustness", robustnessTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			if !opts.Serial {
				t.Parallel()
			}
			for _, st := range g.tests {
				t.Run(st.name, func(t *testing.T) {
					if !opts.Serial {
						t.Parallel()
					}
					h := newHarness(t, newStore, opts)
					st.fn(t, h)
				})
			}
		})
	}
}

type subtest struct {
	name string
	fn   func(t *testing.T, h *harness)
}

// harness is one subtest's store, with what the invariant check needs.
type harness struct {
	s    store.Store
	ctx  context.Context
	opts Options

	mu      sync.Mutex
	tenants map[string]bool
	closed  bool
}

func newHarness(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) *harness {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	h := &harness{s: s, ctx: t.Context(), opts: opts, tenants: make(map[string]bool)}
	// Registered after the constructor's cleanup, so it runs before it.
	t.Cleanup(func() {
		h.mu.Lock()
		closed, tenants := h.closed, slices.Sorted(maps.Keys(h.tenants))
		h.mu.Unlock()
		if closed || t.Failed() {
			return
		}
		if err := CheckInvariants(context.Background(), s, tenants...); err != nil {
			t.Errorf("invariants after %s: %v", t.Name(), err)
		}
	})
	return h
}

// tenant returns a new tenant name the invariant check will visit.
func (h *harness) tenant() string {
	tn := "tenant_" + uuid.NewString()
	h.mu.Lock()
	h.tenants[tn] = true
	h.mu.Unlock()
	return tn
}

// webhook creates a webhook of tenant from NewWebhook, after edit.
func (h *harness) webhook(t *testing.T, tenant string, edit func(w *store.Webhook)) *store.Webhook {
	t.Helper()
	w := NewWebhook(tenant)
	if edit != nil {
		edit(w)
	}
	if err := h.s.CreateWebhook(h.ctx, w); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	return w
}

// replaceWebhook stores w over the webhook of its id and fails the test on
// error.
func (h *harness) replaceWebhook(t *testing.T, w *store.Webhook) {
	t.Helper()
	if _, err := h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error { *c = *w.Clone(); return nil }); err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
}

// enqueue stores ds and fails the test on error.
func (h *harness) enqueue(t *testing.T, ds ...*store.Delivery) []string {
	t.Helper()
	ids, err := h.s.Enqueue(h.ctx, ds)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return ids
}

// delivery enqueues one delivery for w due at due.
func (h *harness) delivery(t *testing.T, w *store.Webhook, due time.Time) *store.Delivery {
	t.Helper()
	d := NewDelivery(w, "workflow.completed")
	d.NextAttemptAt = due
	h.enqueue(t, d)
	return d
}

func (h *harness) getDelivery(t *testing.T, id string) *store.Delivery {
	t.Helper()
	d, err := h.s.GetDelivery(h.ctx, id)
	if err != nil {
		t.Fatalf("GetDelivery(%s): %v", id, err)
	}
	return d
}

func (h *harness) getWebhook(t *testing.T, id string) *store.Webhook {
	t.Helper()
	w, err := h.s.GetWebhook(h.ctx, id)
	if err != nil {
		t.Fatalf("GetWebhook(%s): %v", id, err)
	}
	return w
}

func (h *harness) claim(t *testing.T, now time.Time, limit int, owner string, skip ...string) []*store.Delivery {
	t.Helper()
	ds, err := h.s.Claim(h.ctx, store.ClaimParams{Now: now, Limit: limit, Lease: Lease, Owner: owner, SkipWebhooks: skip})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return ds
}

// complete records attempt number n of a claimed delivery.
func (h *harness) complete(t *testing.T, id, owner string, n int, status store.Status, now time.Time) {
	t.Helper()
	p := store.CompleteParams{
		DeliveryID: id, Owner: owner, Attempt: NewAttempt(id, n, 500), Status: status, Now: now,
	}
	if status == store.StatusPending {
		p.NextAttemptAt = now.Add(time.Minute)
	}
	if status == store.StatusSuccess {
		p.Attempt = NewAttempt(id, n, 200)
	}
	if err := h.s.Complete(h.ctx, p); err != nil {
		t.Fatalf("Complete(%s #%d): %v", id, n, err)
	}
}

// finish claims d alone at now and completes it with status.
func (h *harness) finish(t *testing.T, d *store.Delivery, status store.Status, now time.Time) {
	t.Helper()
	cur := h.getDelivery(t, d.ID)
	owner := "finisher-" + uuid.NewString()
	got := h.claim(t, maxTime(now, cur.NextAttemptAt), store.MaxPageLimit, owner)
	found := false
	for _, c := range got {
		if c.ID == d.ID {
			found = true
		} else if err := h.s.Release(h.ctx, store.ReleaseParams{Owner: owner, IDs: []string{c.ID}}); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if !found {
		t.Fatalf("delivery %s could not be claimed to finish it", d.ID)
	}
	h.complete(t, d.ID, owner, cur.Attempts+1, status, now)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ---- test data ----

// Base is the reference time of the suite's data: microsecond precision,
// UTC, in the past.
var Base = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// Lease is the lease the suite's claims take.
const Lease = 30 * time.Second

// NewID returns prefix + a fresh UUIDv7, the id format of every record
// ("wh_", "del_", "evt_").
func NewID(prefix string) string {
	return prefix + uuid.Must(uuid.NewV7()).String()
}

// NewWebhook returns an active webhook of tenant with every field set:
// two secrets (one expiring), custom headers, MaxAttempts, RateLimit and
// times at microsecond precision. It is not stored.
func NewWebhook(tenant string) *store.Webhook {
	id := NewID("wh_")
	return &store.Webhook{
		ID:          id,
		Tenant:      tenant,
		URL:         "https://hooks.example.com/" + id,
		Events:      []string{"workflow.completed", "agent.*"},
		Description: "conformance webhook ✓",
		Active:      true,
		Secrets: []store.Secret{
			{Value: "whsec_" + uuid.NewString()},
			{Value: "whsec_old_" + uuid.NewString(), ExpiresAt: Base.Add(24 * time.Hour)},
		},
		Headers:     map[string]string{"X-Team": "noa", "X-Env": "test"},
		MaxAttempts: 7,
		RateLimit:   2.5,
		CreatedAt:   Base,
		UpdatedAt:   Base.Add(time.Second),
	}
}

// NewDelivery returns a pending delivery of eventType to w, due at Base,
// with CreatedAt and UpdatedAt at Base. It is not stored.
func NewDelivery(w *store.Webhook, eventType string) *store.Delivery {
	id := NewID("del_")
	evt := NewID("evt_")
	body := fmt.Sprintf(`{"id":%q,"event":%q,"timestamp":"2025-03-14T15:09:26Z","webhookId":%q,"data":{"html":"<a&b>"},"metadata":{"apiVersion":"v1","requestId":"req_1"}}`,
		evt, eventType, w.ID)
	return &store.Delivery{
		ID:            id,
		WebhookID:     w.ID,
		EventID:       evt,
		EventType:     eventType,
		Tenant:        w.Tenant,
		Body:          []byte(body),
		Status:        store.StatusPending,
		NextAttemptAt: Base,
		CreatedAt:     Base,
		UpdatedAt:     Base,
	}
}

// NewAttempt returns attempt number n of delivery id that got status (0 for
// a transport error), with every field set.
func NewAttempt(id string, n, status int) *store.Attempt {
	a := &store.Attempt{
		DeliveryID:     id,
		Number:         n,
		StartedAt:      Base.Add(time.Duration(n) * time.Minute),
		Duration:       1234567 * time.Microsecond,
		RequestURL:     "https://hooks.example.com/x?attempt=" + fmt.Sprint(n),
		RequestHeaders: map[string][]string{"Content-Type": {"application/json"}, "X-Webhook-Attempt": {fmt.Sprint(n)}},
		ResponseStatus: status,
	}
	switch {
	case status == 0:
		a.ErrorClass = store.ErrorTimeout
		a.Error = "attempt timed out after 30s"
	case status < 200 || status > 299:
		a.ErrorClass = store.ErrorHTTPStatus
		a.Error = fmt.Sprintf("unexpected status %d", status)
		a.ResponseHeaders = map[string][]string{"Retry-After": {"3"}}
		a.ResponseBody = []byte("try later")
	default:
		a.ResponseHeaders = map[string][]string{"Content-Type": {"text/plain"}}
		a.ResponseBody = []byte("ok")
	}
	return a
}

// ---- comparison ----

// cmpOpts compare records: times with Equal (cmp uses the method), nil and
// empty slices and maps alike.
var cmpOpts = []cmp.Option{cmpopts.EquateEmpty()}

func diff(want, got any) string { return cmp.Diff(want, got, cmpOpts...) }

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// ---- invariants ----

// CheckInvariants checks, through the public interface, that the records of
// the given tenants are consistent: listings are strictly newest first and
// repeat nothing; every delivery's webhook exists and has the delivery's
// tenant; statuses are valid; finished deliveries hold no lease; Attempts
// equals the length of the attempt log, whose numbers run 1..Attempts;
// RoundAttempts is between 0 and Attempts; a lease has both an owner and an
// expiry or neither; and CountDeliveries agrees with the listings. It
// returns the first violation found.
func CheckInvariants(ctx context.Context, s store.Store, tenants ...string) error {
	for _, tn := range tenants {
		var webhooks []*store.Webhook
		cursor := ""
		for {
			page, next, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tn, Cursor: cursor, Limit: store.MaxPageLimit})
			if err != nil {
				return fmt.Errorf("ListWebhooks(%s): %w", tn, err)
			}
			webhooks = append(webhooks, page...)
			if next == "" {
				break
			}
			cursor = next
		}
		tally := make(map[string]*store.Counts)
		for i, w := range webhooks {
			if w.Tenant != tn {
				return fmt.Errorf("ListWebhooks(%s) returned %s of tenant %s", tn, w.ID, w.Tenant)
			}
			if i > 0 && webhooks[i-1].ID <= w.ID {
				return fmt.Errorf("ListWebhooks(%s): %s listed before %s", tn, webhooks[i-1].ID, w.ID)
			}
			tally[w.ID] = &store.Counts{}
		}
		var deliveries []*store.Delivery
		cursor = ""
		for {
			page, next, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Cursor: cursor, Limit: store.MaxPageLimit})
			if err != nil {
				return fmt.Errorf("ListDeliveries(%s): %w", tn, err)
			}
			deliveries = append(deliveries, page...)
			if next == "" {
				break
			}
			cursor = next
		}
		for i, d := range deliveries {
			if i > 0 && deliveries[i-1].ID <= d.ID {
				return fmt.Errorf("ListDeliveries(%s): %s listed before %s", tn, deliveries[i-1].ID, d.ID)
			}
			if d.Tenant != tn {
				return fmt.Errorf("ListDeliveries(%s) returned %s of tenant %s", tn, d.ID, d.Tenant)
			}
			c := tally[d.WebhookID]
			if c == nil {
				return fmt.Errorf("delivery %s names webhook %s, which tenant %s does not have", d.ID, d.WebhookID, tn)
			}
			switch d.Status {
			case store.StatusPending:
				c.Pending++
			case store.StatusSuccess:
				c.Success++
			case store.StatusFailed:
				c.Failed++
			default:
				return fmt.Errorf("delivery %s has status %q", d.ID, d.Status)
			}
			if d.Status.Finished() && (d.LeaseOwner != "" || !d.LeaseExpiresAt.IsZero()) {
				return fmt.Errorf("delivery %s is %s but leased by %q until %v", d.ID, d.Status, d.LeaseOwner, d.LeaseExpiresAt)
			}
			if (d.LeaseOwner == "") != d.LeaseExpiresAt.IsZero() {
				return fmt.Errorf("delivery %s is leased by %q until %v", d.ID, d.LeaseOwner, d.LeaseExpiresAt)
			}
			if d.RoundAttempts < 0 || d.RoundAttempts > d.Attempts {
				return fmt.Errorf("delivery %s has RoundAttempts %d, Attempts %d", d.ID, d.RoundAttempts, d.Attempts)
			}
			as, err := s.ListAttempts(ctx, d.ID)
			if err != nil {
				return fmt.Errorf("ListAttempts(%s): %w", d.ID, err)
			}
			if len(as) != d.Attempts {
				return fmt.Errorf("delivery %s has Attempts %d but %d attempts logged", d.ID, d.Attempts, len(as))
			}
			for j, a := range as {
				if a.Number != j+1 || a.DeliveryID != d.ID {
					return fmt.Errorf("attempt %d of delivery %s is number %d of %q", j, d.ID, a.Number, a.DeliveryID)
				}
			}
		}
		for id, want := range tally {
			got, err := s.CountDeliveries(ctx, id)
			if err != nil {
				return fmt.Errorf("CountDeliveries(%s): %w", id, err)
			}
			if got != *want {
				return fmt.Errorf("CountDeliveries(%s) = %+v, listings say %+v", id, got, *want)
			}
		}
	}
	return nil
}
