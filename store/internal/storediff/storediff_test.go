package storediff_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/memstore"
	"github.com/noa-server/webhook/store/pgstore/pgstoretest"
	"github.com/noa-server/webhook/store/storetest"
)

// The seeds and the number of calls each one makes: a few by default (some
// 700 calls, a few seconds with -race), as many as wanted with the flags:
//
//	go test -run TestStoresAgree ./store/internal/storediff -seeds 300 -steps 400
//
// Every seed runs on fresh stores.
var (
	seeds     = flag.Int("seeds", 6, "how many seeds TestStoresAgree runs")
	firstSeed = flag.Uint64("first-seed", 0, "the first seed TestStoresAgree runs")
	steps     = flag.Int("steps", 120, "how many calls each seed makes")
)

const (
	// snapshotEvery is how often (in calls) every record of every tenant
	// is compared, besides each call's own results.
	snapshotEvery = 25
)

// TestStoresAgree applies one seeded random sequence of calls to memstore,
// boltstore and pgstore at once and fails at the first call whose results
// differ, with the diff and the calls that led there. After every call
// that writes it also compares every webhook's counts, and every few calls
// every record of every tenant.
//
// What the contract leaves open is not compared: which store returns a
// time in which location (times are compared with Equal), the value of a
// time a store takes from its own clock, nil or empty slices and maps,
// cursors (only whether there is a next page), error messages (only the
// sentinels they match), which fault's error a batch with several gets,
// and which deliveries a Purge under a Limit removes first (its calls
// bound only a Purge that removes everything it may). The records are
// what every store can hold: times at microsecond precision, strings
// PostgreSQL's text can hold (others are only looked up).
func TestStoresAgree(t *testing.T) {
	withPG := pgstoretest.URL() != ""
	if !withPG {
		t.Run("pgstore", func(t *testing.T) { t.Skip(pgstoretest.SkipMessage) })
	}
	for seed := *firstSeed; seed < *firstSeed+uint64(*seeds); seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			targets := []target{
				{"memstore", memstore.New()},
				{"boltstore", openBolt(t)},
			}
			if withPG {
				targets = append(targets, target{"pgstore", pgstoretest.Open(t, "storediff_")})
			}
			t.Cleanup(func() { targets[0].s.Close() })
			run(t, seed, targets)
		})
	}
}

type target struct {
	name string
	s    store.Store
}

func openBolt(t *testing.T) store.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "diff.db"), &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// outcome is what one store made of one call.
type outcome struct {
	Result any
	// Err lists the sentinel errors the call's error matches.
	Err string
	err error
}

// errChange is what an UpdateWebhook's change returns to abort it.
var errChange = errors.New("change refused")

func classify(err error) string {
	if err == nil {
		return ""
	}
	var is []string
	for _, s := range []struct {
		name string
		err  error
	}{
		{"ErrNotFound", store.ErrNotFound}, {"ErrConflict", store.ErrConflict}, {"ErrLeaseLost", store.ErrLeaseLost},
		{"ErrInvalid", store.ErrInvalid}, {"ErrClosed", store.ErrClosed}, {"ErrLimit", store.ErrLimit}, {"errChange", errChange},
	} {
		if errors.Is(err, s.err) {
			is = append(is, s.name)
		}
	}
	if len(is) == 0 {
		return "unexpected error"
	}
	return strings.Join(is, "+")
}

var cmpOpts = []cmp.Option{
	cmpopts.EquateEmpty(),
	cmpopts.IgnoreUnexported(outcome{}),
	cmp.Transformer("generated", func(t time.Time) time.Time {
		if generated(t) {
			return generatedTime
		}
		return t
	}),
}

// The calls' own times are around storetest.Base, in 2025, or among
// edgeTimes. A time from a store's clock (a CreatedAt or UpdatedAt left
// zero) is in the years of this test's run: its value is each store's, so
// it is compared as generatedTime.
var generatedTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func generated(t time.Time) bool { return t.Year() >= 2026 && t.Year() < 9000 }

// run drives the targets with the calls of seed and compares them.
func run(t *testing.T, seed uint64, targets []target) {
	g := newGen(seed, targets[0].s, len(targets))
	var history []string
	fail := func(what string, got []outcome) {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "seed %d: the stores disagree on %s\n", seed, what)
		for i := 1; i < len(got); i++ {
			if d := cmp.Diff(got[0], got[i], cmpOpts...); d != "" {
				fmt.Fprintf(&b, "%s (-) and %s (+):\n%s", targets[0].name, targets[i].name, d)
			}
		}
		for i, o := range got {
			if o.err != nil {
				fmt.Fprintf(&b, "%s's error: %v\n", targets[i].name, o.err)
			}
		}
		b.WriteString("calls so far (latest last):\n")
		for _, h := range history[max(0, len(history)-15):] {
			b.WriteString("  " + h + "\n")
		}
		t.Fatal(b.String())
	}
	compare := func(what string, loose bool, call func(i int, s store.Store) (any, error)) outcome {
		t.Helper()
		got := make([]outcome, len(targets))
		for i, tg := range targets {
			v, err := call(i, tg.s)
			got[i] = outcome{Result: v, Err: classify(err), err: err}
			if loose && err != nil {
				got[i].Err = "an error"
			}
		}
		for i := 1; i < len(got); i++ {
			if !cmp.Equal(got[0], got[i], cmpOpts...) {
				fail(what, got)
			}
		}
		return got[0]
	}
	for step := range *steps {
		c := g.next()
		history = append(history, fmt.Sprintf("%d: %s", step, c.desc))
		o := compare(fmt.Sprintf("call %d, %s", step, c.desc), c.anyError, c.run)
		if c.done != nil {
			c.done(o.Result, o.err)
		}
		if c.writes {
			compare(fmt.Sprintf("the counts after call %d, %s", step, c.desc), false, func(_ int, s store.Store) (any, error) {
				return g.counts(s), nil
			})
		}
		if step%snapshotEvery == snapshotEvery-1 || step == *steps-1 {
			compare(fmt.Sprintf("the records after call %d, %s", step, c.desc), false, func(_ int, s store.Store) (any, error) {
				return g.snapshot(t, s), nil
			})
		}
	}
}

// call is one call of the sequence, made on every store.
type call struct {
	desc string
	// run makes the call on store i.
	run func(i int, s store.Store) (any, error)
	// done learns from the first store's result, when set.
	done func(result any, err error)
	// writes is set for a call that may change a count.
	writes bool
	// anyError is set for a call with several faults: which one its error
	// names is up to the store, so only whether it failed is compared.
	anyError bool
}

// ---- the generator ----

// The tenants, event types and subscriptions the calls draw from. Tenants
// that differ only in case or trailing space are distinct tenants.
var (
	tenants    = []string{"acme", "Acme", "acme ", "tenant-ü", "b"}
	eventTypes = []string{"workflow.completed", "workflow.failed", "agent.error", "agent.status.changed", "user.login", "x"}
	patterns   = []string{"*", "workflow.*", "workflow.completed", "agent.*", "agent.error", "user.*", "nothing.at.all", "agent.status.*"}
	owners     = []string{"alpha", "beta", "gamma"}
	// oddStrings are strings some store cannot hold (PostgreSQL's text
	// cannot): they are only looked up, never stored.
	oddStrings = []string{"wh_\xff", "del_\x00", "\xc3("}
)

type gen struct {
	rng  *rand.Rand
	ref  store.Store // the first store, read to choose arguments
	n    int         // stores
	now  time.Time
	ids  int
	zone *time.Location

	webhooks   []string          // every webhook id ever created (some deleted)
	tenantOf   map[string]string // of each webhook
	deliveries []string          // every delivery id ever stored (some gone)
	listing    *listing
	backlogged string // the webhook of the latest backlog
}

// listing is a paged listing in progress: each store walks it with its own
// cursors, while other calls change the records between its pages.
type listing struct {
	webhooks   bool
	wp         store.ListWebhooksParams
	dp         store.ListDeliveriesParams
	cursors    []string
	pagesSoFar int
}

func newGen(seed uint64, ref store.Store, n int) *gen {
	return &gen{
		rng:      rand.New(rand.NewPCG(seed, 0xd1ff)),
		ref:      ref,
		n:        n,
		now:      storetest.Base,
		zone:     time.FixedZone("UTC+5:30", 5*3600+1800),
		tenantOf: make(map[string]string),
	}
}

func (g *gen) chance(pct int) bool { return g.rng.IntN(100) < pct }

func pick[T any](g *gen, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// dur returns a random duration under max, in whole microseconds.
func (g *gen) dur(max time.Duration) time.Duration {
	return time.Duration(g.rng.Int64N(int64(max/time.Microsecond)+1)) * time.Microsecond
}

// edgeTimes are instants at the ends of what the stores encode.
var edgeTimes = []time.Time{
	time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC), // the zero time + 1µs
	time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), // before the Unix epoch
	time.Unix(0, 0).UTC(),
	time.Unix(-1, 999999000).UTC(),
	time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
}

// at returns t, in another location now and then: a store may return a time
// in any location, but the instant must round-trip.
func (g *gen) at(t time.Time) time.Time {
	if g.chance(30) {
		return t.In(g.zone)
	}
	return t
}

// id returns a new id: mostly prefix + a counter (ids that sort in creation
// order, as UUIDv7s do), sometimes prefix + random bytes of mixed case and
// punctuation, which sort elsewhere (byte order, not a collation's).
func (g *gen) id(prefix string) string {
	g.ids++
	if g.chance(25) {
		const alphabet = "AZaz09_-.~Éé"
		var b strings.Builder
		b.WriteString(prefix)
		for range 1 + g.rng.IntN(10) {
			r := []rune(alphabet)
			b.WriteRune(r[g.rng.IntN(len(r))])
		}
		fmt.Fprintf(&b, "%d", g.ids)
		return b.String()
	}
	return fmt.Sprintf("%s%06d-%08x", prefix, g.ids, g.rng.Uint32())
}

// rel describes t relative to the clock.
func (g *gen) rel(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return fmt.Sprintf("now%+v", t.Sub(g.now))
}

func (g *gen) liveWebhooks() []string {
	var out []string
	for _, id := range g.webhooks {
		if _, err := g.ref.GetWebhook(ctx, id); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// someDeliveries returns up to n of the stored deliveries, as the first
// store holds them, that keep says are wanted.
func (g *gen) someDeliveries(n int, keep func(d *store.Delivery) bool) []*store.Delivery {
	var out []*store.Delivery
	for _, i := range g.rng.Perm(len(g.deliveries)) {
		d, err := g.ref.GetDelivery(ctx, g.deliveries[i])
		if err == nil && keep(d) {
			if out = append(out, d); len(out) == n {
				break
			}
		}
	}
	return out
}

var ctx = context.Background()

func (g *gen) next() call {
	type choice struct {
		weight int
		make   func() call
	}
	choices := []choice{
		{8, g.createWebhook}, {5, g.updateWebhook}, {2, g.deleteWebhook}, {4, g.match},
		{16, g.enqueue}, {15, g.claim}, {15, g.complete}, {5, g.release}, {5, g.redeliver}, {3, g.purge},
		{12, g.page}, {8, g.get}, {10, g.advance}, {1, g.backlog},
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	r := g.rng.IntN(total)
	for _, c := range choices {
		if r -= c.weight; r < 0 {
			return c.make()
		}
	}
	panic("unreachable")
}

// ---- webhooks ----

func (g *gen) events() []string {
	var out []string
	for range g.rng.IntN(4) {
		out = append(out, pick(g, patterns))
	}
	return out
}

func (g *gen) createWebhook() call {
	id := g.id("wh_")
	if len(g.webhooks) > 0 && g.chance(8) {
		id = pick(g, g.webhooks) // taken, or taken by a deleted one
	}
	tenant := pick(g, tenants)
	if g.chance(3) {
		tenant = ""
	}
	w := &store.Webhook{
		ID: id, Tenant: tenant, URL: "https://hooks.example/" + id, Events: g.events(),
		Description: pick(g, []string{"", "a webhook ✓", "<&>"}), Active: g.chance(85),
		Secrets:     []store.Secret{{Value: fmt.Sprintf("whsec_%d", g.ids)}},
		MaxAttempts: g.rng.IntN(8), RateLimit: float64(g.rng.IntN(3)) / 2,
		CreatedAt: g.at(g.now.Add(-g.dur(time.Hour))),
	}
	if g.chance(5) {
		w.CreatedAt = time.Time{} // the store's clock
	}
	if g.chance(50) {
		exp := g.now.Add(g.dur(48 * time.Hour))
		if g.chance(5) {
			exp = pick(g, edgeTimes)
		}
		w.Secrets = append(w.Secrets, store.Secret{Value: "whsec_old", ExpiresAt: g.at(exp)})
	}
	if g.chance(50) {
		w.Headers = map[string]string{"X-Team": "noa", "authorization": "Bearer x"}
	}
	if g.chance(70) {
		w.UpdatedAt = g.at(w.CreatedAt.Add(g.dur(time.Minute)))
	} // else zero: the store sets it to CreatedAt
	// Some creates are capped, at a cap small enough to be reached.
	limit := 0
	if g.chance(30) {
		limit = 1 + g.rng.IntN(4)
	}
	return call{
		desc:   fmt.Sprintf("CreateWebhook(%s of %q, events %q, active %v, cap %d)", id, tenant, w.Events, w.Active, limit),
		writes: true,
		run: func(_ int, s store.Store) (any, error) {
			c := w.Clone()
			var err error
			if limit > 0 {
				err = s.(store.CappedCreator).CreateWebhookCapped(ctx, c, limit)
			} else {
				err = s.CreateWebhook(ctx, c)
			}
			return [2]time.Time{c.CreatedAt, c.UpdatedAt}, err // what it wrote back
		},
		done: func(_ any, err error) {
			if err == nil {
				g.webhooks = append(g.webhooks, id)
				g.tenantOf[id] = tenant
			}
		},
	}
}

// pickWebhook returns a webhook id: a live one mostly, else a deleted or
// unknown one.
func (g *gen) pickWebhook() string {
	live := g.liveWebhooks()
	switch {
	case len(live) > 0 && g.chance(85):
		return pick(g, live)
	case len(g.webhooks) > 0 && g.chance(50):
		return pick(g, g.webhooks)
	case g.chance(10):
		return pick(g, oddStrings)
	}
	return g.id("wh_unknown_")
}

func (g *gen) updateWebhook() call {
	id := g.pickWebhook()
	kind := g.rng.IntN(8)
	events := g.events()
	newTenant := pick(g, tenants)
	updated := g.at(g.now)
	desc := []string{"toggle Active", "set Events", "rotate secrets", "move to another id, tenant and creation time",
		"clear everything", "fail", "keep UpdatedAt", "zero UpdatedAt"}[kind]
	return call{
		desc:   fmt.Sprintf("UpdateWebhook(%s: %s)", id, desc),
		writes: true,
		run: func(_ int, s store.Store) (any, error) {
			return s.UpdateWebhook(ctx, id, func(w *store.Webhook) error {
				if kind != 6 {
					w.UpdatedAt = updated
				}
				switch kind {
				case 0:
					w.Active = !w.Active
					w.DisabledReason = ""
				case 1:
					w.Events = slices.Clone(events)
				case 2:
					w.Secrets = append([]store.Secret{{Value: "whsec_rotated"}}, w.Secrets...)
					if len(w.Secrets) > 1 {
						w.Secrets[1].ExpiresAt = updated.Add(time.Hour)
					}
				case 3:
					w.ID, w.Tenant, w.CreatedAt = "wh_stolen", newTenant, updated
					w.URL = "https://moved.example/"
				case 4:
					w.Events, w.Secrets, w.Headers, w.Description = nil, nil, nil, ""
				case 5:
					w.URL = "https://aborted.example/"
					return errChange
				case 7:
					w.UpdatedAt = time.Time{} // the store's clock
				}
				return nil
			})
		},
	}
}

func (g *gen) deleteWebhook() call {
	id := g.pickWebhook()
	return call{
		desc:   fmt.Sprintf("DeleteWebhook(%s)", id),
		writes: true,
		run:    func(_ int, s store.Store) (any, error) { return nil, s.DeleteWebhook(ctx, id) },
	}
}

func (g *gen) match() call {
	tenant, ev := pick(g, tenants), pick(g, eventTypes)
	switch r := g.rng.IntN(100); {
	case r < 3:
		ev = ""
	case r < 5:
		ev = pick(g, oddStrings)
	case r < 7:
		tenant = pick(g, oddStrings)
	}
	return call{
		desc: fmt.Sprintf("MatchWebhooks(%q, %q)", tenant, ev),
		run:  func(_ int, s store.Store) (any, error) { return s.MatchWebhooks(ctx, tenant, ev) },
	}
}

// ---- deliveries ----

func (g *gen) enqueue() call {
	live := g.liveWebhooks()
	if len(live) == 0 {
		return g.createWebhook()
	}
	var batch []*store.Delivery
	var kinds []string
	faults := 0
	for range g.rng.IntN(6) {
		wid := pick(g, live)
		d := &store.Delivery{
			ID: g.id("del_"), WebhookID: wid, EventID: g.id("evt_"), EventType: pick(g, eventTypes),
			Tenant: g.tenantOf[wid], Body: []byte(fmt.Sprintf(`{"n":%d}`, g.ids)),
			NextAttemptAt: g.at(g.now.Add(g.dur(time.Minute) - 20*time.Second)),
			CreatedAt:     g.at(g.now.Add(-g.dur(time.Minute))),
		}
		if g.chance(60) {
			d.UpdatedAt = d.CreatedAt
		}
		if g.chance(5) {
			d.CreatedAt, d.UpdatedAt = time.Time{}, time.Time{} // the store's clock
		}
		if g.chance(20) {
			d.Status = store.StatusPending
		}
		if g.chance(10) { // stale state, which Enqueue resets
			d.Attempts, d.RoundAttempts, d.LastStatusCode, d.LastError = 3, 2, 500, "stale"
			d.LeaseExpiresAt = g.now.Add(time.Hour)
		}
		if g.chance(10) {
			d.Body = nil
		}
		if g.chance(2) {
			d.NextAttemptAt = pick(g, edgeTimes)
		}
		if g.chance(2) {
			d.CreatedAt = pick(g, edgeTimes)
		}
		kind := "new"
		switch r := g.rng.IntN(100); {
		case r < 3 && len(batch) > 0: // another event with the id of an earlier one
			d.ID = pick(g, batch).ID
			kind = "another event reusing id " + d.ID
			faults++
		case r < 5 && len(batch) > 0: // a duplicate, given the id of an earlier one
			prev := pick(g, batch)
			if old := g.someDeliveries(1, func(*store.Delivery) bool { return true }); len(old) == 1 && g.chance(50) {
				d.WebhookID, d.EventID, d.Tenant = old[0].WebhookID, old[0].EventID, old[0].Tenant
				kind = "duplicate of " + old[0].ID + " reusing the batch's id " + prev.ID
			} else if other := pick(g, batch); other.ID != prev.ID {
				d.WebhookID, d.EventID, d.Tenant = other.WebhookID, other.EventID, other.Tenant
				kind = "duplicate of " + other.ID + " reusing the batch's id " + prev.ID
			} else {
				break
			}
			d.ID = prev.ID
		case r < 12 && len(g.deliveries) > 0: // a duplicate of a stored delivery
			if old := g.someDeliveries(1, func(*store.Delivery) bool { return true }); len(old) == 1 {
				d.WebhookID, d.EventID, d.Tenant = old[0].WebhookID, old[0].EventID, old[0].Tenant
				kind = "duplicate of " + old[0].ID
			}
		case r < 20 && len(batch) > 0: // a duplicate of an earlier one in the batch
			prev := pick(g, batch)
			d.WebhookID, d.EventID, d.Tenant = prev.WebhookID, prev.EventID, prev.Tenant
			kind = "duplicate of " + prev.ID
		case r < 30:
			d.LeaseOwner = pick(g, owners)
			d.LeaseExpiresAt = g.at(g.now.Add(g.dur(time.Minute) - 10*time.Second))
			if g.chance(5) {
				d.LeaseExpiresAt = pick(g, edgeTimes)
			}
			kind = "leased by " + d.LeaseOwner
		case r < 34:
			d.NextAttemptAt = time.Time{}
			kind = "without NextAttemptAt"
		case r < 36 && len(g.deliveries) > 0:
			d.ID = pick(g, g.deliveries)
			kind = "reusing id " + d.ID
			faults++
		case r < 37:
			d.WebhookID = g.id("wh_unknown_")
			kind = "of an unknown webhook"
			faults++
		case r < 38:
			d.Tenant = pick(g, tenants)
			kind = "of tenant " + d.Tenant
			faults++
		}
		batch = append(batch, d)
		kinds = append(kinds, d.ID+" "+kind)
	}
	return call{
		desc:     fmt.Sprintf("Enqueue(%q)", kinds),
		writes:   true,
		anyError: faults > 1,
		run: func(_ int, s store.Store) (any, error) {
			in := make([]*store.Delivery, len(batch))
			for i, d := range batch {
				c := *d
				c.Body = slices.Clone(d.Body)
				in[i] = &c
			}
			return s.Enqueue(ctx, in)
		},
		done: func(result any, err error) {
			if err != nil {
				return
			}
			for _, id := range result.([]string) {
				if !slices.Contains(g.deliveries, id) {
					g.deliveries = append(g.deliveries, id)
				}
			}
		},
	}
}

// backlog enqueues many due deliveries of one webhook, which claims that
// skip it step over (and the stores then hold apart).
func (g *gen) backlog() call {
	live := g.liveWebhooks()
	if len(live) == 0 {
		return g.createWebhook()
	}
	wid := pick(g, live)
	var batch []*store.Delivery
	for range 70 + g.rng.IntN(30) {
		batch = append(batch, &store.Delivery{
			ID: g.id("del_"), WebhookID: wid, EventID: g.id("evt_"), EventType: pick(g, eventTypes),
			Tenant: g.tenantOf[wid], Body: []byte("{}"), NextAttemptAt: g.now.Add(-g.dur(time.Minute)),
			CreatedAt: g.now,
		})
	}
	g.backlogged = wid
	return call{
		desc:   fmt.Sprintf("Enqueue(a backlog of %d for %s)", len(batch), wid),
		writes: true,
		run:    func(_ int, s store.Store) (any, error) { return s.Enqueue(ctx, batch) },
		done: func(result any, err error) {
			if err == nil {
				g.deliveries = append(g.deliveries, result.([]string)...)
			}
		},
	}
}

func (g *gen) claim() call {
	p := store.ClaimParams{
		Now: g.at(g.now), Limit: 1 + g.rng.IntN(6), Lease: time.Second + g.dur(40*time.Second), Owner: pick(g, owners),
	}
	if g.chance(15) {
		p.Now = p.Now.Add(-g.dur(30 * time.Second)) // a replica whose clock is behind
	}
	if g.chance(1) {
		p.Now = pick(g, edgeTimes)
	}
	if g.chance(30) {
		for range 1 + g.rng.IntN(2) {
			p.SkipWebhooks = append(p.SkipWebhooks, g.pickWebhook())
		}
	}
	if g.backlogged != "" && g.chance(60) {
		p.SkipWebhooks = append(p.SkipWebhooks, g.backlogged)
	}
	if g.chance(5) {
		p.Limit = 50 + g.rng.IntN(100)
	}
	return call{
		desc:   fmt.Sprintf("Claim(now+%v, limit %d, lease %v, %s, skip %q)", p.Now.Sub(g.now), p.Limit, p.Lease, p.Owner, p.SkipWebhooks),
		writes: true,
		run:    func(_ int, s store.Store) (any, error) { return s.Claim(ctx, p) },
	}
}

func (g *gen) attempt(id string, n, status int) *store.Attempt {
	a := &store.Attempt{
		DeliveryID: id, Number: n, StartedAt: g.at(g.now.Add(-g.dur(time.Second))), Duration: g.dur(time.Second),
		RequestURL:     "https://hooks.example/x",
		RequestHeaders: http.Header{"Content-Type": {"application/json"}, "X-Webhook-Delivery": {id}, "X-Webhook-Attempt": {fmt.Sprint(n)}},
		ResponseStatus: status,
	}
	switch {
	case status == 0:
		a.ErrorClass, a.Error = store.ErrorTimeout, "timed out"
	case status >= 300:
		a.ErrorClass, a.Error = store.ErrorHTTPStatus, fmt.Sprintf("status %d", status)
		a.ResponseHeaders = http.Header{"Retry-After": {"3"}}
		a.ResponseBody = []byte("later")
	default:
		a.ResponseBody = []byte{}
	}
	if g.chance(20) {
		a.DeliveryID = "" // filled in
	}
	return a
}

func (g *gen) complete() call {
	cands := g.someDeliveries(1, func(d *store.Delivery) bool { return d.LeaseOwner != "" })
	if len(cands) == 0 || g.chance(10) {
		cands = g.someDeliveries(1, func(*store.Delivery) bool { return true })
	}
	id, owner, number := g.id("del_unknown_"), pick(g, owners), 1
	if len(cands) == 1 {
		d := cands[0]
		id, number = d.ID, d.Attempts+1
		if d.LeaseOwner != "" && g.chance(85) {
			owner = d.LeaseOwner
		}
		if g.chance(5) {
			number += pick(g, []int{-1, 1})
		}
	}
	p := store.CompleteParams{DeliveryID: id, Owner: owner, Now: g.at(g.now)}
	switch r := g.rng.IntN(100); {
	case r < 40:
		p.Status, p.NextAttemptAt = store.StatusPending, g.at(g.now.Add(g.dur(40*time.Second)))
		p.Attempt = g.attempt(id, number, 503)
		p.KeepRoundAttempts = g.chance(25)
	case r < 70:
		p.Status, p.Attempt = store.StatusSuccess, g.attempt(id, number, 200)
	default:
		p.Status, p.Attempt = store.StatusFailed, g.attempt(id, number, 0)
	}
	if g.chance(12) {
		p.DisableWebhook = "410 Gone"
		p.Attempt.ResponseStatus = 410
	}
	return call{
		desc: fmt.Sprintf("Complete(%s #%d by %s: %s, next %s, keep %v, disable %q)", id, number, owner, p.Status,
			g.rel(p.NextAttemptAt), p.KeepRoundAttempts, p.DisableWebhook),
		writes: true,
		run: func(_ int, s store.Store) (any, error) {
			c := p
			a := *p.Attempt
			c.Attempt = &a
			return nil, s.Complete(ctx, c)
		},
	}
}

func (g *gen) release() call {
	owner := pick(g, owners)
	var ids []string
	for _, d := range g.someDeliveries(1+g.rng.IntN(4), func(d *store.Delivery) bool { return d.LeaseOwner != "" || g.chance(20) }) {
		ids = append(ids, d.ID)
	}
	if g.chance(20) {
		ids = append(ids, g.id("del_unknown_"))
	}
	if g.chance(5) {
		ids = append(ids, pick(g, oddStrings))
	}
	return call{
		desc:   fmt.Sprintf("Release(%s, %q)", owner, ids),
		writes: true,
		run: func(_ int, s store.Store) (any, error) {
			return nil, s.Release(ctx, store.ReleaseParams{Owner: owner, IDs: slices.Clone(ids)})
		},
	}
}

func (g *gen) redeliver() call {
	id := g.id("del_unknown_")
	if ds := g.someDeliveries(1, func(d *store.Delivery) bool { return d.Status.Finished() || g.chance(20) }); len(ds) == 1 {
		id = ds[0].ID
	}
	now := g.at(g.now)
	return call{
		desc:   fmt.Sprintf("Redeliver(%s)", id),
		writes: true,
		run: func(_ int, s store.Store) (any, error) {
			return s.Redeliver(ctx, store.RedeliverParams{ID: id, Now: now})
		},
	}
}

func (g *gen) purge() call {
	before := g.at(g.now.Add(-g.dur(2 * time.Minute)))
	if g.chance(10) {
		before = g.now.Add(time.Hour)
	}
	// Which deliveries a Purge under a Limit removes first is up to the
	// store: the Limit is set only when it bounds nothing.
	n := len(g.someDeliveries(len(g.deliveries)+1, func(d *store.Delivery) bool {
		return d.Status.Finished() && d.UpdatedAt.Before(before)
	}))
	limit := 0
	if g.chance(50) {
		limit = n + g.rng.IntN(2)
		if limit == 0 {
			limit = 1
		}
	}
	return call{
		desc:   fmt.Sprintf("Purge(before now-%v, limit %d)", g.now.Sub(before), limit),
		writes: true,
		run: func(_ int, s store.Store) (any, error) {
			return s.Purge(ctx, store.PurgeParams{Before: before, Limit: limit})
		},
	}
}

// ---- reads ----

// page lists the next page of the listing in progress, or the first page
// of a new one.
type pageResult struct {
	Webhooks   []*store.Webhook
	Deliveries []*store.Delivery
	More       bool
}

func (g *gen) page() call {
	if g.listing == nil || g.chance(30) {
		l := &listing{webhooks: g.chance(35), cursors: make([]string, g.n)}
		tenant := pick(g, tenants)
		if g.chance(3) {
			tenant = pick(g, oddStrings)
		}
		limit := 1 + g.rng.IntN(4)
		if l.webhooks {
			l.wp = store.ListWebhooksParams{Tenant: tenant, Limit: limit}
		} else {
			l.dp = store.ListDeliveriesParams{Tenant: tenant, Limit: limit, WithoutBody: g.chance(20)}
			if g.chance(30) {
				l.dp.WebhookID = g.pickWebhook()
			}
			if g.chance(25) {
				l.dp.Status = pick(g, []store.Status{store.StatusPending, store.StatusSuccess, store.StatusFailed})
			}
			if g.chance(20) {
				l.dp.EventType = pick(g, eventTypes)
			}
			if g.chance(3) {
				l.dp.EventType = pick(g, oddStrings)
			}
		}
		g.listing = l
	}
	l := g.listing
	l.pagesSoFar++
	var desc string
	if l.webhooks {
		desc = fmt.Sprintf("ListWebhooks(%#v) page %d", l.wp, l.pagesSoFar)
	} else {
		desc = fmt.Sprintf("ListDeliveries(%#v) page %d", l.dp, l.pagesSoFar)
	}
	return call{
		desc: desc,
		run: func(i int, s store.Store) (any, error) {
			var r pageResult
			var next string
			var err error
			if l.webhooks {
				p := l.wp
				p.Cursor = l.cursors[i]
				r.Webhooks, next, err = s.ListWebhooks(ctx, p)
			} else {
				p := l.dp
				p.Cursor = l.cursors[i]
				r.Deliveries, next, err = s.ListDeliveries(ctx, p)
			}
			l.cursors[i], r.More = next, next != ""
			return r, err
		},
		done: func(result any, err error) {
			if err != nil || !result.(pageResult).More {
				g.listing = nil
			}
		},
	}
}

func (g *gen) get() call {
	switch g.rng.IntN(4) {
	case 0:
		id := g.pickWebhook()
		return call{desc: fmt.Sprintf("GetWebhook(%s)", id), run: func(_ int, s store.Store) (any, error) { return s.GetWebhook(ctx, id) }}
	case 1:
		id := g.pickWebhook()
		return call{desc: fmt.Sprintf("CountDeliveries(%s)", id), run: func(_ int, s store.Store) (any, error) { return s.CountDeliveries(ctx, id) }}
	}
	id := g.id("del_unknown_")
	if len(g.deliveries) > 0 && g.chance(90) {
		id = pick(g, g.deliveries)
	}
	return call{desc: fmt.Sprintf("GetDelivery and ListAttempts(%s)", id), run: func(_ int, s store.Store) (any, error) {
		d, err := s.GetDelivery(ctx, id)
		if err != nil {
			return nil, err
		}
		as, err := s.ListAttempts(ctx, id)
		return []any{d, as}, err
	}}
}

// advance moves the clock: by a random step, or to the instant a lease
// expires or a delivery becomes due, where Claim's boundaries are.
func (g *gen) advance() call {
	to := g.now.Add(g.dur(20 * time.Second))
	switch r := g.rng.IntN(10); {
	case r < 3:
		if ds := g.someDeliveries(1, func(d *store.Delivery) bool {
			return d.LeaseOwner != "" && d.LeaseExpiresAt.After(g.now) && d.LeaseExpiresAt.Before(g.now.Add(time.Hour))
		}); len(ds) == 1 {
			to = ds[0].LeaseExpiresAt
		}
	case r < 5:
		if ds := g.someDeliveries(1, func(d *store.Delivery) bool {
			return d.Status == store.StatusPending && d.NextAttemptAt.After(g.now) && d.NextAttemptAt.Before(g.now.Add(time.Hour))
		}); len(ds) == 1 {
			to = ds[0].NextAttemptAt
		}
	}
	d := to.Sub(g.now)
	return call{
		desc: fmt.Sprintf("the clock moves %v", d),
		run: func(int, store.Store) (any, error) {
			return nil, nil
		},
		done: func(any, error) { g.now = to.UTC() },
	}
}

// ---- whole-store comparisons ----

// counts returns CountDeliveries of every webhook ever created.
func (g *gen) counts(s store.Store) map[string]string {
	out := make(map[string]string, len(g.webhooks))
	for _, id := range g.webhooks {
		c, err := s.CountDeliveries(ctx, id)
		if err != nil {
			out[id] = classify(err)
		} else {
			out[id] = fmt.Sprintf("%+v", c)
		}
	}
	return out
}

// snapshot is every record of every tenant, read through the listings,
// and every webhook and delivery ever stored, read by id.
type snapshot struct {
	Webhooks   map[string][]*store.Webhook
	Deliveries map[string][]*store.Delivery
	Attempts   map[string][]*store.Attempt
	Missing    []string
}

func (g *gen) snapshot(t *testing.T, s store.Store) snapshot {
	t.Helper()
	sn := snapshot{
		Webhooks: make(map[string][]*store.Webhook), Deliveries: make(map[string][]*store.Delivery),
		Attempts: make(map[string][]*store.Attempt),
	}
	for _, tn := range tenants {
		for cursor := ""; ; {
			page, next, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tn, Cursor: cursor, Limit: 7})
			if err != nil {
				t.Fatalf("ListWebhooks: %v", err)
			}
			sn.Webhooks[tn] = append(sn.Webhooks[tn], page...)
			if cursor = next; next == "" {
				break
			}
		}
		for cursor := ""; ; {
			page, next, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Cursor: cursor, Limit: 7})
			if err != nil {
				t.Fatalf("ListDeliveries: %v", err)
			}
			sn.Deliveries[tn] = append(sn.Deliveries[tn], page...)
			if cursor = next; next == "" {
				break
			}
		}
	}
	for _, id := range g.webhooks {
		if _, err := s.GetWebhook(ctx, id); err != nil {
			sn.Missing = append(sn.Missing, id+": "+classify(err))
		}
	}
	for _, id := range g.deliveries {
		if _, err := s.GetDelivery(ctx, id); err != nil {
			sn.Missing = append(sn.Missing, id+": "+classify(err))
			continue
		}
		as, err := s.ListAttempts(ctx, id)
		if err != nil {
			t.Fatalf("ListAttempts: %v", err)
		}
		sn.Attempts[id] = as
	}
	return sn
}
