package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

var robustnessTests = []subtest{
	{"CancelledContext", testCancelledContext},
	{"BadInput", testBadInput},
	{"Closed", testClosed},
	{"LongStrings", testLongStrings},
	{"OddStrings", testOddStrings},
}

// call is one invocation of a Store method, for the tables below.
type call struct {
	name string
	fn   func(ctx context.Context, s store.Store) error
}

// validCalls returns one call of every context-taking method with valid
// arguments naming existing records, so only the context or the store's
// state can make them fail.
func validCalls(t *testing.T, h *harness) []call {
	t.Helper()
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	d := h.delivery(t, w, Base)
	done := h.delivery(t, w, Base)
	h.finish(t, done, store.StatusFailed, Base.Add(time.Second))
	got := h.claim(t, Base.Add(time.Minute), 1, "robust")
	if len(got) != 1 || got[0].ID != d.ID {
		t.Fatalf("Claim = %q, want [%s]", ids(got), d.ID)
	}
	leased := got[0]
	d = h.delivery(t, w, Base.Add(time.Hour))
	return []call{
		{"Ping", func(ctx context.Context, s store.Store) error { return s.Ping(ctx) }},
		{"CreateWebhook", func(ctx context.Context, s store.Store) error { return s.CreateWebhook(ctx, NewWebhook(tn)) }},
		{"GetWebhook", func(ctx context.Context, s store.Store) error { _, err := s.GetWebhook(ctx, w.ID); return err }},
		{"ListWebhooks", func(ctx context.Context, s store.Store) error {
			_, _, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tn, Limit: 10})
			return err
		}},
		{"UpdateWebhook", func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateWebhook(ctx, w.ID, func(*store.Webhook) error { return nil })
			return err
		}},
		{"MatchWebhooks", func(ctx context.Context, s store.Store) error {
			_, err := s.MatchWebhooks(ctx, tn, "workflow.completed")
			return err
		}},
		{"Enqueue", func(ctx context.Context, s store.Store) error {
			_, err := s.Enqueue(ctx, []*store.Delivery{NewDelivery(w, "workflow.completed")})
			return err
		}},
		{"Claim", func(ctx context.Context, s store.Store) error {
			_, err := s.Claim(ctx, store.ClaimParams{Now: Base, Limit: 1, Lease: Lease, Owner: "x"})
			return err
		}},
		{"Complete", func(ctx context.Context, s store.Store) error {
			return s.Complete(ctx, store.CompleteParams{DeliveryID: leased.ID, Owner: "robust", Attempt: NewAttempt(leased.ID, 1, 200), Status: store.StatusSuccess, Now: Base.Add(time.Hour)})
		}},
		{"Release", func(ctx context.Context, s store.Store) error {
			return s.Release(ctx, store.ReleaseParams{Owner: "robust", IDs: []string{leased.ID}})
		}},
		{"GetDelivery", func(ctx context.Context, s store.Store) error { _, err := s.GetDelivery(ctx, d.ID); return err }},
		{"ListDeliveries", func(ctx context.Context, s store.Store) error {
			_, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 10})
			return err
		}},
		{"ListAttempts", func(ctx context.Context, s store.Store) error { _, err := s.ListAttempts(ctx, done.ID); return err }},
		{"Redeliver", func(ctx context.Context, s store.Store) error {
			_, err := s.Redeliver(ctx, store.RedeliverParams{ID: done.ID, Now: Base.Add(time.Hour)})
			return err
		}},
		{"Purge", func(ctx context.Context, s store.Store) error {
			_, err := s.Purge(ctx, store.PurgeParams{Before: Base.Add(time.Hour)})
			return err
		}},
		{"CountDeliveries", func(ctx context.Context, s store.Store) error { _, err := s.CountDeliveries(ctx, w.ID); return err }},
		// Last: it removes the records the others name.
		{"DeleteWebhook", func(ctx context.Context, s store.Store) error { return s.DeleteWebhook(ctx, w.ID) }},
	}
}

// protect runs fn and turns a panic into an error.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn()
}

func testCancelledContext(t *testing.T, h *harness) {
	calls := validCalls(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range calls {
		err := protect(func() error { return c.fn(ctx, h.s) })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want an error wrapping context.Canceled", c.name, err)
		}
	}
	// The same calls succeed with a live context, so the cancelled context
	// was the only reason they failed.
	for _, c := range calls {
		if err := protect(func() error { return c.fn(h.ctx, h.s) }); err != nil {
			t.Errorf("%s with a live context: %v", c.name, err)
		}
	}
}

func testClosed(t *testing.T, h *harness) {
	calls := validCalls(t, h)
	// Each call once while the store is open (but the last, which deletes
	// the webhook), so that what a store caches of the records they name
	// (the tenant's webhooks that MatchWebhooks reads, say) is cached:
	// Close must end the cache's answers too.
	for _, c := range calls[:len(calls)-1] {
		if err := protect(func() error { return c.fn(h.ctx, h.s) }); err != nil {
			t.Fatalf("%s before Close: %v", c.name, err)
		}
	}
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	for _, c := range calls {
		err := protect(func() error { return c.fn(h.ctx, h.s) })
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", c.name, err)
		}
	}
	if err := h.s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

func testBadInput(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	d := h.delivery(t, w, Base)
	ctx := h.ctx
	s := h.s
	inv, nf := store.ErrInvalid, store.ErrNotFound
	garbage := []string{"garbage!", "%%%", "\x00\xff", "not a cursor"}
	type bad struct {
		name string
		want error
		fn   func() error
	}
	cases := []bad{
		{"CreateWebhook(nil)", inv, func() error { return s.CreateWebhook(ctx, nil) }},
		{"CreateWebhook without id", inv, func() error { x := NewWebhook(tn); x.ID = ""; return s.CreateWebhook(ctx, x) }},
		{"CreateWebhook without tenant", inv, func() error { x := NewWebhook(""); return s.CreateWebhook(ctx, x) }},
		{"GetWebhook(\"\")", inv, func() error { _, err := s.GetWebhook(ctx, ""); return err }},
		{"GetWebhook(unknown)", nf, func() error { _, err := s.GetWebhook(ctx, NewID("wh_")); return err }},
		{"UpdateWebhook(\"\")", inv, func() error {
			_, err := s.UpdateWebhook(ctx, "", func(*store.Webhook) error { return nil })
			return err
		}},
		{"DeleteWebhook(\"\")", inv, func() error { return s.DeleteWebhook(ctx, "") }},
		{"DeleteWebhook(unknown)", nf, func() error { return s.DeleteWebhook(ctx, NewID("wh_")) }},
		{"MatchWebhooks without tenant", inv, func() error { _, err := s.MatchWebhooks(ctx, "", "workflow.completed"); return err }},
		{"MatchWebhooks without event type", inv, func() error { _, err := s.MatchWebhooks(ctx, tn, ""); return err }},
		{"ListWebhooks without tenant", inv, func() error {
			_, _, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Limit: 10})
			return err
		}},
		{"GetDelivery(\"\")", inv, func() error { _, err := s.GetDelivery(ctx, ""); return err }},
		{"GetDelivery(unknown)", nf, func() error { _, err := s.GetDelivery(ctx, NewID("del_")); return err }},
		{"ListAttempts(\"\")", inv, func() error { _, err := s.ListAttempts(ctx, ""); return err }},
		{"ListAttempts(unknown)", nf, func() error { _, err := s.ListAttempts(ctx, NewID("del_")); return err }},
		{"ListDeliveries without tenant", inv, func() error {
			_, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Limit: 10})
			return err
		}},
		{"ListDeliveries with a bogus status", inv, func() error {
			_, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Status: "done", Limit: 10})
			return err
		}},
		{"Enqueue([nil])", inv, func() error { _, err := s.Enqueue(ctx, []*store.Delivery{nil}); return err }},
		{"Claim without owner", inv, func() error {
			_, err := s.Claim(ctx, store.ClaimParams{Now: Base, Limit: 1, Lease: Lease})
			return err
		}},
		{"Claim without lease", inv, func() error {
			_, err := s.Claim(ctx, store.ClaimParams{Now: Base, Limit: 1, Owner: "o"})
			return err
		}},
		{"Claim with a negative lease", inv, func() error {
			_, err := s.Claim(ctx, store.ClaimParams{Now: Base, Limit: 1, Lease: -time.Second, Owner: "o"})
			return err
		}},
		{"Claim without Now", inv, func() error {
			_, err := s.Claim(ctx, store.ClaimParams{Limit: 1, Lease: Lease, Owner: "o"})
			return err
		}},
		{"Release without owner", inv, func() error { return s.Release(ctx, store.ReleaseParams{IDs: []string{d.ID}}) }},
		{"Release of an empty id", inv, func() error { return s.Release(ctx, store.ReleaseParams{Owner: "o", IDs: []string{""}}) }},
		{"Redeliver(\"\")", inv, func() error { _, err := s.Redeliver(ctx, store.RedeliverParams{Now: Base}); return err }},
		{"Redeliver without Now", inv, func() error { _, err := s.Redeliver(ctx, store.RedeliverParams{ID: d.ID}); return err }},
		{"Purge without Before", inv, func() error { _, err := s.Purge(ctx, store.PurgeParams{}); return err }},
		{"Purge with a negative limit", inv, func() error { _, err := s.Purge(ctx, store.PurgeParams{Before: Base, Limit: -1}); return err }},
		{"CountDeliveries(\"\")", inv, func() error { _, err := s.CountDeliveries(ctx, ""); return err }},
	}
	for _, limit := range []int{0, -1, store.MaxPageLimit + 1} {
		cases = append(cases,
			bad{fmt.Sprintf("ListWebhooks with Limit %d", limit), inv, func() error {
				_, _, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tn, Limit: limit})
				return err
			}},
			bad{fmt.Sprintf("ListDeliveries with Limit %d", limit), inv, func() error {
				_, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Limit: limit})
				return err
			}},
			bad{fmt.Sprintf("Claim with Limit %d", limit), inv, func() error {
				_, err := s.Claim(ctx, store.ClaimParams{Now: Base, Limit: limit, Lease: Lease, Owner: "o"})
				return err
			}},
		)
	}
	for _, c := range garbage {
		cases = append(cases,
			bad{fmt.Sprintf("ListWebhooks with cursor %q", c), inv, func() error {
				_, _, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tn, Limit: 10, Cursor: c})
				return err
			}},
			bad{fmt.Sprintf("ListDeliveries with cursor %q", c), inv, func() error {
				_, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 10, Cursor: c})
				return err
			}},
		)
	}
	for _, c := range cases {
		if err := protect(c.fn); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Nothing the bad calls did changed the good records.
	if dd := diff(w, h.getWebhook(t, w.ID)); dd != "" {
		t.Errorf("bad input changed a webhook (-want +got):\n%s", dd)
	}
	if dd := diff(d, h.getDelivery(t, d.ID)); dd != "" {
		t.Errorf("bad input changed a delivery (-want +got):\n%s", dd)
	}
}

// MaxAcceptedID is the length, in bytes, of the longest id, tenant, event
// id or event type every Store accepts. A longer one may be refused with
// ErrInvalid (a store's index keys have a size limit), storing nothing.
const MaxAcceptedID = 1000

// testLongStrings stores ids, tenants, event ids, event types and lease
// owners of MaxAcceptedID bytes, which every store keeps, and of 64 KiB,
// which a store may refuse, but only as bad input and without storing
// anything. The strings are random, so a store cannot compress them under
// its limits.
func testLongStrings(t *testing.T, h *harness) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func(n int) string {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	hook := h.webhook(t, h.tenant(), nil)
	for _, n := range []int{MaxAcceptedID, 64 << 10} {
		mayRefuse := n > MaxAcceptedID
		webhooks := map[string]func(w *store.Webhook){
			"id":     func(w *store.Webhook) { w.ID = str(n) },
			"tenant": func(w *store.Webhook) { w.Tenant = str(n) },
		}
		for field, edit := range webhooks {
			w := NewWebhook(h.tenant())
			edit(w)
			err := h.s.CreateWebhook(h.ctx, w)
			switch {
			case err == nil:
				if d := diff(w, h.getWebhook(t, w.ID)); d != "" {
					t.Errorf("webhook with a %d-byte %s (-want +got):\n%s", n, field, d)
				}
				h.mu.Lock()
				h.tenants[w.Tenant] = true // for the invariant check
				h.mu.Unlock()
			case !mayRefuse || !errors.Is(err, store.ErrInvalid):
				t.Errorf("CreateWebhook with a %d-byte %s: %v", n, field, err)
			default:
				if _, err := h.s.GetWebhook(h.ctx, w.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("a refused webhook with a %d-byte %s was stored (GetWebhook: %v)", n, field, err)
				}
			}
		}
		deliveries := map[string]func(d *store.Delivery){
			"id":          func(d *store.Delivery) { d.ID = str(n) },
			"event id":    func(d *store.Delivery) { d.EventID = str(n) },
			"event type":  func(d *store.Delivery) { d.EventType = str(n) },
			"lease owner": func(d *store.Delivery) { d.LeaseOwner, d.LeaseExpiresAt = str(n), Base.Add(Lease) },
		}
		for field, edit := range deliveries {
			before, err := h.s.CountDeliveries(h.ctx, hook.ID)
			if err != nil {
				t.Fatalf("CountDeliveries: %v", err)
			}
			d := NewDelivery(hook, "workflow.completed")
			edit(d)
			_, err = h.s.Enqueue(h.ctx, []*store.Delivery{NewDelivery(hook, "workflow.completed"), d})
			switch {
			case err == nil:
				if dd := diff(d, h.getDelivery(t, d.ID)); dd != "" {
					t.Errorf("delivery with a %d-byte %s (-want +got):\n%s", n, field, dd)
				}
			case !mayRefuse || !errors.Is(err, store.ErrInvalid):
				t.Errorf("Enqueue with a %d-byte %s: %v", n, field, err)
			default:
				if c, err := h.s.CountDeliveries(h.ctx, hook.ID); err != nil || c != before {
					t.Errorf("a refused Enqueue with a %d-byte %s stored deliveries: counts %+v, %v; want %+v", n, field, c, err, before)
				}
			}
		}
	}
}

// testOddStrings looks records up by strings that are not valid UTF-8 or
// hold a NUL byte. A store may refuse to store such a string (PostgreSQL's
// text holds neither), but a lookup by one is a lookup of a record that is
// not there, answered as any other: ErrNotFound, an empty result, or
// ErrLeaseLost for an owner that holds no lease. An event type is not a
// record: "*" matches such a one, and so does a "prefix.*" it starts with.
func testOddStrings(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil) // "workflow.completed", "agent.*"
	all := h.webhook(t, tn, func(w *store.Webhook) { w.Events = []string{"*"} })
	match := func(event string, want ...*store.Webhook) {
		t.Helper()
		got, err := h.s.MatchWebhooks(h.ctx, tn, event)
		if err != nil {
			t.Errorf("MatchWebhooks(%q): %v", event, err)
			return
		}
		slices.SortFunc(want, func(a, b *store.Webhook) int { return strings.Compare(a.ID, b.ID) })
		if d := diff(webhookIDs(want), webhookIDs(got)); d != "" {
			t.Errorf("MatchWebhooks(%q) (-want +got):\n%s", event, d)
		}
	}
	match("agent.\xff\x00", w, all)
	leased := h.delivery(t, w, Base)
	if got := h.claim(t, Base, 1, "owner"); len(got) != 1 {
		t.Fatalf("Claim = %q, want [%s]", ids(got), leased.ID)
	}
	ctx, s := h.ctx, h.s
	for _, odd := range []string{"wh_\xff", "del_\x00", "\xc3("} {
		nf := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s(%q): %v, want ErrNotFound", what, odd, err)
			}
		}
		none := func(what string, n int, err error) {
			t.Helper()
			if err != nil || n != 0 {
				t.Errorf("%s(%q) = %d records, %v; want none, no error", what, odd, n, err)
			}
		}
		_, err := s.GetWebhook(ctx, odd)
		nf("GetWebhook", err)
		_, err = s.UpdateWebhook(ctx, odd, func(*store.Webhook) error { return nil })
		nf("UpdateWebhook", err)
		nf("DeleteWebhook", s.DeleteWebhook(ctx, odd))
		_, err = s.CountDeliveries(ctx, odd)
		nf("CountDeliveries", err)
		_, err = s.GetDelivery(ctx, odd)
		nf("GetDelivery", err)
		_, err = s.ListAttempts(ctx, odd)
		nf("ListAttempts", err)
		_, err = s.Redeliver(ctx, store.RedeliverParams{ID: odd, Now: Base})
		nf("Redeliver", err)
		nf("Complete", s.Complete(ctx, store.CompleteParams{
			DeliveryID: odd, Owner: "owner", Attempt: NewAttempt("", 1, 200), Status: store.StatusSuccess, Now: Base}))
		err = s.Complete(ctx, store.CompleteParams{
			DeliveryID: leased.ID, Owner: odd, Attempt: NewAttempt(leased.ID, 1, 200), Status: store.StatusSuccess, Now: Base})
		wantErr(t, fmt.Sprintf("Complete by owner %q", odd), err, store.ErrLeaseLost)
		if err := s.Release(ctx, store.ReleaseParams{Owner: "owner", IDs: []string{odd}}); err != nil {
			t.Errorf("Release(%q): %v, want nil", odd, err)
		}
		if err := s.Release(ctx, store.ReleaseParams{Owner: odd, IDs: []string{leased.ID}}); err != nil {
			t.Errorf("Release by owner %q: %v, want nil", odd, err)
		}
		ws, err := s.MatchWebhooks(ctx, odd, "workflow.completed")
		none("MatchWebhooks by tenant", len(ws), err)
		match(odd, all)
		ws, _, err = s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: odd, Limit: 10})
		none("ListWebhooks", len(ws), err)
		for what, p := range map[string]store.ListDeliveriesParams{
			"ListDeliveries by tenant":     {Tenant: odd},
			"ListDeliveries by webhook":    {Tenant: tn, WebhookID: odd},
			"ListDeliveries by event type": {Tenant: tn, EventType: odd},
		} {
			p.Limit = 10
			ds, _, err := s.ListDeliveries(ctx, p)
			none(what, len(ds), err)
		}
		ds, err := s.Claim(ctx, store.ClaimParams{Now: Base, Limit: 10, Lease: Lease, Owner: "other", SkipWebhooks: []string{odd}})
		none("Claim skipping", len(ds), err)
	}
	if d := h.getDelivery(t, leased.ID); d.LeaseOwner != "owner" || d.Attempts != 0 {
		t.Errorf("after the lookups the delivery is leased by %q with %d attempts; want owner, none", d.LeaseOwner, d.Attempts)
	}
}

func webhookIDs(ws []*store.Webhook) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ID
	}
	return out
}
