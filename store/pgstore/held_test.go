package pgstore

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// TestPGClaimHoldsSkippedBacklog gives a webhook the dispatcher skips (a
// hung endpoint's, at its concurrency limit) a backlog of due deliveries
// ahead of another webhook's. The first claim skipping it steps over the
// backlog and holds it; the next ones step over nothing. A claim that no
// longer skips the webhook takes the held deliveries merged in due order
// with the others.
func TestPGClaimHoldsSkippedBacklog(t *testing.T) {
	ctx := t.Context()
	s, pool := newTestStore(t)

	hung, ok := storetest.NewWebhook("tenant_h"), storetest.NewWebhook("tenant_h")
	for _, w := range []*store.Webhook{hung, ok} {
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// hung's backlog is due one per millisecond from Base; ok's 20
	// deliveries every 200 ms from Base + 0.5 ms, among them.
	const backlog = 1500
	oks := spaced(ok, 20, storetest.Base.Add(500*time.Microsecond), 200*time.Millisecond)
	all := append(spaced(hung, backlog, storetest.Base, time.Millisecond), oks...)
	for batch := range slices.Chunk(all, 500) {
		if _, err := s.Enqueue(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, s.q.sql(`ANALYZE {{schema}}.deliveries`)); err != nil {
		t.Fatal(err)
	}
	now := storetest.Base.Add(time.Hour)
	claim := func(limit int, skip ...string) []*store.Delivery {
		t.Helper()
		ds, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: limit, Lease: time.Minute, Owner: "me", SkipWebhooks: skip})
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return ds
	}
	count := func(where string, args ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, s.q.sql(`SELECT count(*) FROM {{schema}}.deliveries WHERE `+where), args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// steps runs a claim of limit 8 skipping hung, rolled back, and returns
	// the rows its walks of deliveries_claimable stepped over (read and
	// filtered out).
	steps := func() int {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		// A table this small is cheaper to scan whole; a queue of any
		// size is walked through the index, as here.
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"); err != nil {
			t.Fatal(err)
		}
		var out []byte
		err = tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+s.q.claim,
			now, []string{hung.ID}, 8, "me", now.Add(time.Minute)).Scan(&out)
		if err != nil {
			t.Fatalf("EXPLAIN ANALYZE claim: %v", err)
		}
		var plans []struct{ Plan planNode }
		if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
			t.Fatalf("plan %s: %v", out, err)
		}
		return plans[0].Plan.removed("deliveries_claimable")
	}
	ids := func(ds []*store.Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}

	// Before: a claim steps over the 1401 deliveries of hung due before
	// ok's eighth (Base + 1400.5 ms).
	if n := steps(); n < 1401 {
		t.Fatalf("a claim skipping the backlog's webhook stepped over %d rows, want at least 1401", n)
	}
	if got := claim(8, hung.ID); !slices.Equal(ids(got), ids(oks[:8])) {
		t.Fatalf("Claim skipping %s = %q, want ok's first eight", hung.ID, ids(got))
	}
	if n := count(`held AND webhook_id = $1`, hung.ID); n != 1401 {
		t.Errorf("%d of the backlog held, want the 1401 the claim stepped over", n)
	}
	// After: only the 99 younger ones are left to step over, too few to hold.
	if n := steps(); n > 200 {
		t.Errorf("after holding, a claim still stepped over %d rows", n)
	}

	// ok's eight come back; a claim that skips nothing takes the oldest
	// due deliveries, held or not, in due order.
	if err := s.Release(ctx, store.ReleaseParams{Owner: "me", IDs: ids(oks[:8])}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b *store.Delivery) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if got := claim(1000); !slices.Equal(ids(got), ids(all[:1000])) {
		t.Errorf("Claim of 1000 skipping nothing returned %d deliveries, not the 1000 oldest in due order", len(got))
	}
	if n := count(`held AND lease_owner <> ''`); n != 0 {
		t.Errorf("%d leased deliveries still marked held", n)
	}
	if got := claim(1000); !slices.Equal(ids(got), ids(all[1000:])) {
		t.Errorf("second Claim returned %d deliveries, not the remaining %d in due order", len(got), len(all)-1000)
	}
	if n := count(`held`); n != 0 {
		t.Errorf("%d deliveries still held once every one is claimed", n)
	}
}

// spaced returns n new deliveries to w, not stored, due every step from
// first.
func spaced(w *store.Webhook, n int, first time.Time, step time.Duration) []*store.Delivery {
	ds := make([]*store.Delivery, n)
	for i := range ds {
		ds[i] = storetest.NewDelivery(w, "workflow.completed")
		ds[i].NextAttemptAt = first.Add(time.Duration(i) * step)
	}
	return ds
}

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON) output.
type planNode struct {
	IndexName string     `json:"Index Name"`
	Removed   int        `json:"Rows Removed by Filter"`
	Loops     int        `json:"Actual Loops"`
	Plans     []planNode `json:"Plans"`
}

// removed returns the rows the scans of index removed by their filters.
func (n planNode) removed(index string) int {
	sum := 0
	if n.IndexName == index {
		sum = n.Removed * max(n.Loops, 1)
	}
	for _, c := range n.Plans {
		sum += c.removed(index)
	}
	return sum
}

// TestPGMigrateHeld upgrades a schema made before migration 0002, with
// deliveries pending in it, leased and not: they stay claimable and
// completable.
func TestPGMigrateHeld(t *testing.T) {
	ctx := t.Context()
	old, pool := newTestStore(t)
	// Back to the schema of migration 0001.
	if _, err := pool.Exec(ctx, old.q.sql(`
		ALTER TABLE {{schema}}.deliveries DROP COLUMN held;
		CREATE INDEX deliveries_claimable ON {{schema}}.deliveries (next_attempt_at, id)
			WHERE status = 'pending' AND lease_owner = '';
		DELETE FROM {{schema}}.schema_migrations WHERE version = 2`)); err != nil {
		t.Fatal(err)
	}
	w := storetest.NewWebhook("tenant_m")
	if err := old.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	ds := spaced(w, 3, storetest.Base, time.Second)
	ds[0].LeaseOwner, ds[0].LeaseExpiresAt = "before", storetest.Base.Add(time.Hour)
	if _, err := old.Enqueue(ctx, ds); err != nil {
		t.Fatalf("Enqueue into the old schema: %v", err)
	}
	old.Close()

	s, err := New(ctx, pool, Options{Schema: old.schema})
	if err != nil {
		t.Fatalf("New on the old schema: %v", err)
	}
	defer s.Close()
	var version int
	if err := pool.QueryRow(ctx, s.q.sql(`SELECT max(version) FROM {{schema}}.schema_migrations`)).Scan(&version); err != nil || version < 2 {
		t.Fatalf("schema version %d, %v; want 2", version, err)
	}
	got, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(time.Minute), Limit: 10, Lease: time.Minute, Owner: "after"})
	if err != nil || len(got) != 2 || got[0].ID != ds[1].ID || got[1].ID != ds[2].ID {
		t.Fatalf("Claim after the upgrade = %d deliveries, %v; want the two unleased in due order", len(got), err)
	}
	err = s.Complete(ctx, store.CompleteParams{DeliveryID: ds[0].ID, Owner: "before",
		Attempt: storetest.NewAttempt(ds[0].ID, 1, 200), Status: store.StatusSuccess, Now: storetest.Base.Add(time.Minute)})
	if err != nil {
		t.Errorf("Complete of a delivery leased before the upgrade: %v", err)
	}
}

// TestPGHoldAcrossReplicas has two replicas claim one queue at once: one
// skips a webhook with a backlog (it holds the backlog), the other does not
// (it claims the held deliveries, and the rest). Every delivery is
// completed exactly once, and none is left held.
func TestPGHoldAcrossReplicas(t *testing.T) {
	ctx := t.Context()
	a, pool := newTestStore(t)
	b, err := New(ctx, pool, Options{Schema: a.schema})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hung, ok := storetest.NewWebhook("tenant_r"), storetest.NewWebhook("tenant_r")
	for _, w := range []*store.Webhook{hung, ok} {
		if err := a.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	all := append(spaced(hung, 3000, storetest.Base, time.Millisecond),
		spaced(ok, 600, storetest.Base.Add(2*time.Second+500*time.Microsecond), 5*time.Millisecond)...)
	for batch := range slices.Chunk(all, 500) {
		if _, err := a.Enqueue(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	now := storetest.Base.Add(time.Hour)
	var mu sync.Mutex
	done := make(map[string]string) // delivery id -> replica that completed it
	complete := func(s *Store, owner string, ds []*store.Delivery) {
		t.Helper()
		for _, d := range ds {
			if owner == "a" && d.WebhookID == hung.ID {
				t.Errorf("a claimed %s of the webhook it skips", d.ID)
			}
			err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: owner,
				Attempt: storetest.NewAttempt(d.ID, 1, 200), Status: store.StatusSuccess, Now: now})
			if err != nil {
				t.Errorf("%s: Complete %s: %v", owner, d.ID, err)
			}
			mu.Lock()
			if other, dup := done[d.ID]; dup {
				t.Errorf("%s completed %s, which %s completed already", owner, d.ID, other)
			}
			done[d.ID] = owner
			mu.Unlock()
		}
	}
	// a's first claim steps over the backlog's first 2,000 and holds them.
	ds, err := a.Claim(ctx, store.ClaimParams{Now: now, Limit: 50, Lease: time.Minute, Owner: "a", SkipWebhooks: []string{hung.ID}})
	if err != nil || len(ds) != 50 {
		t.Fatalf("a's first Claim = %d deliveries, %v", len(ds), err)
	}
	complete(a, "a", ds)
	var held int
	if err := pool.QueryRow(ctx, a.q.sql(`SELECT count(*) FROM {{schema}}.deliveries WHERE held`)).Scan(&held); err != nil || held < 2000 {
		t.Fatalf("%d held after a's first claim (%v), want at least 2000", held, err)
	}
	var wg sync.WaitGroup
	for _, r := range []struct {
		name string
		s    *Store
		skip []string
	}{{"a", a, []string{hung.ID}}, {"b", b, nil}} {
		wg.Go(func() {
			for {
				ds, err := r.s.Claim(ctx, store.ClaimParams{Now: now, Limit: 50, Lease: time.Minute, Owner: r.name, SkipWebhooks: r.skip})
				if err != nil {
					t.Errorf("%s: Claim: %v", r.name, err)
					return
				}
				if len(ds) == 0 {
					return
				}
				complete(r.s, r.name, ds)
			}
		})
	}
	wg.Wait()
	// b returns when it finds nothing: what a may have left locked at that
	// moment is claimed now.
	for {
		ds, err := b.Claim(ctx, store.ClaimParams{Now: now, Limit: 1000, Lease: time.Minute, Owner: "b"})
		if err != nil || len(ds) == 0 {
			break
		}
		complete(b, "b", ds)
	}
	if len(done) != len(all) {
		t.Errorf("%d of %d deliveries completed", len(done), len(all))
	}
	var pending int
	if err := pool.QueryRow(ctx, a.q.sql(`SELECT count(*) FILTER (WHERE held), count(*) FILTER (WHERE status = 'pending')
		FROM {{schema}}.deliveries`)).Scan(&held, &pending); err != nil || held != 0 || pending != 0 {
		t.Errorf("%d held, %d pending left (%v); want none", held, pending, err)
	}
}
