package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore"
	"github.com/noa-server/webhook/store/storetest"
)

// TestPGDeadlockRetried makes each writing call meet a deadlock: a
// transaction of the test locks a row the call then waits on, and asks for
// a lock the call holds. PostgreSQL breaks the cycle by aborting the call's
// statement (its wait began first, so its deadlock check runs first). The
// call was rolled back entirely, so the store runs it again once the test's
// transaction commits: it succeeds, and what it records is not lost (an
// attempt answered, a webhook's 410 Gone, an emitted event).
func TestPGDeadlockRetried(t *testing.T) {
	tests := []struct {
		name string
		// run sets the stage and returns the test transaction's two
		// statements (first, taken before op; second, closing the cycle),
		// their arguments, op, and a check of what op stored.
		run func(t *testing.T, s *pgstore.Store, w *store.Webhook) (first, second stmt, op func(context.Context) error, check func(t *testing.T))
	}{
		{
			// One statement: the webhook is share-locked, then the delivery.
			name: "Complete scheduling a retry",
			run: func(t *testing.T, s *pgstore.Store, w *store.Webhook) (stmt, stmt, func(context.Context) error, func(*testing.T)) {
				d := claimedDelivery(t, s, w)
				return stmt{`SELECT 1 FROM {{schema}}.deliveries WHERE id = $1 FOR UPDATE`, []any{d.ID}},
					stmt{`SELECT 1 FROM {{schema}}.webhooks WHERE id = $1 FOR UPDATE`, []any{w.ID}},
					func(ctx context.Context) error {
						return s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Attempt: storetest.NewAttempt(d.ID, 1, 500),
							Status: store.StatusPending, NextAttemptAt: storetest.Base.Add(time.Minute), Now: storetest.Base.Add(time.Second)})
					},
					func(t *testing.T) {
						got := getDelivery(t, s, d.ID)
						if got.Status != store.StatusPending || got.Attempts != 1 || got.LeaseOwner != "" {
							t.Errorf("delivery is %s after %d attempts, leased by %q; want pending after 1, not leased", got.Status, got.Attempts, got.LeaseOwner)
						}
					}
			},
		},
		{
			// A transaction: the webhook is locked, then the delivery, then
			// the webhook's other pending deliveries.
			name: "Complete disabling the webhook",
			run: func(t *testing.T, s *pgstore.Store, w *store.Webhook) (stmt, stmt, func(context.Context) error, func(*testing.T)) {
				d := claimedDelivery(t, s, w)
				other := storetest.NewDelivery(w, "workflow.completed")
				other.NextAttemptAt = storetest.Base.Add(time.Hour)
				if _, err := s.Enqueue(t.Context(), []*store.Delivery{other}); err != nil {
					t.Fatal(err)
				}
				return stmt{`SELECT 1 FROM {{schema}}.deliveries WHERE id = $1 FOR UPDATE`, []any{other.ID}},
					stmt{`SELECT 1 FROM {{schema}}.webhooks WHERE id = $1 FOR UPDATE`, []any{w.ID}},
					func(ctx context.Context) error {
						return s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Attempt: storetest.NewAttempt(d.ID, 1, 410),
							Status: store.StatusFailed, DisableWebhook: "gone", Now: storetest.Base.Add(time.Second)})
					},
					func(t *testing.T) {
						if got := getDelivery(t, s, d.ID); got.Status != store.StatusFailed || got.Attempts != 1 {
							t.Errorf("delivery answered 410 is %s after %d attempts, want failed after 1", got.Status, got.Attempts)
						}
						if got := getDelivery(t, s, other.ID); got.Status != store.StatusFailed {
							t.Errorf("the webhook's other delivery is %s, want failed", got.Status)
						}
						if got, err := s.GetWebhook(t.Context(), w.ID); err != nil || got.Active {
							t.Errorf("webhook after its 410: %+v, %v; want inactive", got, err)
						}
					}
			},
		},
		{
			// The webhook is locked, then its deliveries (the cascade).
			name: "DeleteWebhook",
			run: func(t *testing.T, s *pgstore.Store, w *store.Webhook) (stmt, stmt, func(context.Context) error, func(*testing.T)) {
				d := claimedDelivery(t, s, w)
				return stmt{`SELECT 1 FROM {{schema}}.deliveries WHERE id = $1 FOR UPDATE`, []any{d.ID}},
					stmt{`SELECT 1 FROM {{schema}}.webhooks WHERE id = $1 FOR KEY SHARE`, []any{w.ID}},
					func(ctx context.Context) error { return s.DeleteWebhook(ctx, w.ID) },
					func(t *testing.T) {
						if _, err := s.GetWebhook(t.Context(), w.ID); !errors.Is(err, store.ErrNotFound) {
							t.Errorf("GetWebhook after the delete: %v, want ErrNotFound", err)
						}
						if _, err := s.GetDelivery(t.Context(), d.ID); !errors.Is(err, store.ErrNotFound) {
							t.Errorf("GetDelivery after the delete: %v, want ErrNotFound", err)
						}
					}
			},
		},
		{
			// The delivery is inserted, then its webhook key-share-locked
			// (the foreign key). The test's transaction inserts the same
			// event for the webhook, which waits on the Enqueue's row.
			name: "Enqueue",
			run: func(t *testing.T, s *pgstore.Store, w *store.Webhook) (stmt, stmt, func(context.Context) error, func(*testing.T)) {
				d := storetest.NewDelivery(w, "workflow.completed")
				theirs := storetest.NewID("del_")
				var ids []string
				return stmt{`SELECT 1 FROM {{schema}}.webhooks WHERE id = $1 FOR UPDATE`, []any{w.ID}},
					stmt{`INSERT INTO {{schema}}.deliveries (id, webhook_id, event_id, event_type, tenant, body, status,
						next_attempt_at, created_at, updated_at)
						VALUES ($1, $2, $3, 'workflow.completed', $4, '{}', 'pending', now(), now(), now())`,
						[]any{theirs, w.ID, d.EventID, w.Tenant}},
					func(ctx context.Context) error {
						var err error
						ids, err = s.Enqueue(ctx, []*store.Delivery{d})
						return err
					},
					func(t *testing.T) {
						// The test's transaction stored the event first.
						if len(ids) != 1 || ids[0] != theirs {
							t.Errorf("Enqueue returned %q, want [%s], the delivery stored for the event", ids, theirs)
						}
					}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := freshSchema(t)
			s := newStoreIn(t, schema)
			w := storetest.NewWebhook("tenant_a")
			if err := s.CreateWebhook(t.Context(), w); err != nil {
				t.Fatal(err)
			}
			first, second, op, check := tt.run(t, s, w)
			if err := deadlock(t, schema, first, second, op); err != nil {
				t.Fatalf("%s met a deadlock: %v", tt.name, err)
			}
			check(t)
		})
	}
}

// claimedDelivery enqueues a delivery of w and claims it for owner "o".
func claimedDelivery(t *testing.T, s store.Store, w *store.Webhook) *store.Delivery {
	t.Helper()
	d := storetest.NewDelivery(w, "workflow.completed")
	if _, err := s.Enqueue(t.Context(), []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(t.Context(), store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: time.Minute, Owner: "o"})
	if err != nil || len(got) != 1 || got[0].ID != d.ID {
		t.Fatalf("Claim = %v, %v; want %s", got, err, d.ID)
	}
	return d
}

func getDelivery(t *testing.T, s store.Store, id string) *store.Delivery {
	t.Helper()
	d, err := s.GetDelivery(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// stmt is a statement of the test's transaction ({{schema}} stands for
// the quoted schema) with its arguments.
type stmt struct {
	sql  string
	args []any
}

// deadlock runs op against a transaction of the test that closes a lock
// cycle with it: the transaction runs first, then op, which waits on what
// first locked; then the transaction runs second, which waits on a lock
// op holds. It commits once second returns, and deadlock returns op's
// error.
func deadlock(t *testing.T, schema string, first, second stmt, op func(context.Context) error) error {
	t.Helper()
	ctx := t.Context()
	pool := testPool(t)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	exec := func(st stmt) error {
		_, err := tx.Exec(ctx, strings.ReplaceAll(st.sql, "{{schema}}", pgx.Identifier{schema}.Sanitize()), st.args...)
		return err
	}
	// Where the test may, its transaction is never the one PostgreSQL
	// aborts: it checks for deadlocks only after a minute of waiting.
	var super bool
	if err := tx.QueryRow(ctx, `SELECT current_setting('is_superuser') = 'on'`).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super {
		if _, err := tx.Exec(ctx, `SELECT set_config('deadlock_timeout', '1min', true)`); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec(first); err != nil {
		t.Fatalf("the test's first statement: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	// Wait for op to wait on the test's lock.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%')`, schema).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the call returned (%v) without waiting on the test's transaction", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the call never waited on the test's transaction")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := exec(second); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "40P01" {
			t.Fatal("PostgreSQL aborted the test's transaction, not the call: run as a superuser")
		}
		t.Fatalf("the test's second statement: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not return after the test's transaction committed")
		return nil
	}
}

// TestPGCancelReleasesLocks cancels calls holding row locks: one whose
// statement waits on a lock of the test's transaction (Complete disabling
// a webhook, which holds the webhook's row), and a transaction between
// its statements (UpdateWebhook, whose change sees the context end). Each
// returns an error that matches context.Canceled, and its locks go with
// it: a replica then locks the webhook's row without waiting for the
// test's transaction.
func TestPGCancelReleasesLocks(t *testing.T) {
	tests := []struct {
		name string
		// call runs the cancelled call; cancel cancels its context once it
		// is under way.
		call func(t *testing.T, ctx context.Context, s *pgstore.Store, w *store.Webhook, cancel func()) error
	}{
		{
			name: "statement waiting on a lock",
			call: func(t *testing.T, ctx context.Context, s *pgstore.Store, w *store.Webhook, cancel func()) error {
				d := claimedDelivery(t, s, w)
				other := storetest.NewDelivery(w, "workflow.completed")
				other.NextAttemptAt = storetest.Base.Add(time.Hour)
				if _, err := s.Enqueue(t.Context(), []*store.Delivery{other}); err != nil {
					t.Fatal(err)
				}
				tx, err := testPool(t).Begin(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(context.Background()) // after the check
				if _, err := tx.Exec(t.Context(), `SELECT 1 FROM `+pgx.Identifier{s.Schema(), "deliveries"}.Sanitize()+
					` WHERE id = $1 FOR UPDATE`, other.ID); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() {
					done <- s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Attempt: storetest.NewAttempt(d.ID, 1, 410),
						Status: store.StatusFailed, DisableWebhook: "gone", Now: storetest.Base.Add(time.Second)})
				}()
				waitLockWait(t, s.Schema())
				cancel()
				err = <-done
				lockWebhook(t, s.Schema(), w.ID)
				return err
			},
		},
		{
			name: "transaction between statements",
			call: func(t *testing.T, ctx context.Context, s *pgstore.Store, w *store.Webhook, cancel func()) error {
				_, err := s.UpdateWebhook(ctx, w.ID, func(c *store.Webhook) error {
					cancel()
					c.Description = "changed"
					return nil
				})
				lockWebhook(t, s.Schema(), w.ID)
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			w := storetest.NewWebhook("tenant_a")
			if err := s.CreateWebhook(t.Context(), w); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if err := tt.call(t, ctx, s, w, cancel); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled call: %v, want context.Canceled", err)
			}
			got, err := s.GetWebhook(t.Context(), w.ID)
			if err != nil || !got.Active || got.Description != w.Description {
				t.Errorf("webhook after the cancelled call: %+v, %v; want it unchanged", got, err)
			}
		})
	}
}

// waitLockWait waits until a statement on schema waits on a lock.
func waitLockWait(t *testing.T, schema string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting bool
		if err := testPool(t).QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%')`, schema).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no statement waited on a lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockWebhook locks the webhook's row in a transaction of its own, as a
// replica's UpdateWebhook would, and fails the test if that takes longer
// than ten seconds (a lock left behind).
func lockWebhook(t *testing.T, schema, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tx, err := testPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+pgx.Identifier{schema, "webhooks"}.Sanitize()+` WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Errorf("locking the webhook after the cancelled call: %v (a lock was left behind)", err)
	}
}

// TestPGConcurrentWriters runs, on four stores sharing one schema as four
// replicas, every writing call at once for a few hundred rounds: Enqueue,
// Claim with Complete (success, retry, failure, 410 Gone disabling the
// webhook) or Release, Redeliver, Purge, and DeleteWebhook with
// CreateWebhook. No call fails but with the sentinels its race allows
// (a webhook or delivery deleted meanwhile, a redelivery of a pending
// delivery), and once they are done the records agree: every delivery's
// attempt log holds exactly its Attempts, numbered from 1; none is left
// leased; and CountDeliveries tallies what ListDeliveries lists.
func TestPGConcurrentWriters(t *testing.T) {
	schema := freshSchema(t)
	const (
		tenant  = "tenant_c"
		rounds  = 150
		writers = 4
	)
	stores := make([]*pgstore.Store, writers)
	for i := range stores {
		stores[i] = newStoreIn(t, schema)
	}
	ctx := t.Context()
	var (
		mu    sync.Mutex
		hooks []string // webhook ids, some deleted
	)
	newHook := func(s store.Store) {
		w := storetest.NewWebhook(tenant)
		w.RateLimit = 0
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		hooks = append(hooks, w.ID)
		mu.Unlock()
	}
	pick := func(r *rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		return hooks[r.IntN(len(hooks))]
	}
	for range 6 {
		newHook(stores[0])
	}
	now := storetest.Base.Add(time.Hour)
	fail := func(what string, err error, allowed ...error) {
		for _, a := range allowed {
			if errors.Is(err, a) {
				return
			}
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	var (
		wg     sync.WaitGroup
		purged atomic.Int64
	)
	for i, s := range stores {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			owner := fmt.Sprint("replica-", i)
			for range rounds {
				switch n := r.IntN(10); {
				case n < 3:
					var ds []*store.Delivery
					for range 1 + r.IntN(4) {
						d := storetest.NewDelivery(&store.Webhook{ID: pick(r), Tenant: tenant}, "workflow.completed")
						d.NextAttemptAt = now
						ds = append(ds, d)
					}
					_, err := s.Enqueue(ctx, ds)
					fail("Enqueue", err, store.ErrNotFound)
				case n < 8:
					got, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 5, Lease: time.Hour, Owner: owner})
					fail("Claim", err)
					for _, d := range got {
						p := store.CompleteParams{DeliveryID: d.ID, Owner: owner, Now: now,
							Attempt: storetest.NewAttempt(d.ID, d.Attempts+1, 200)}
						switch r.IntN(6) {
						case 0:
							fail("Release", s.Release(ctx, store.ReleaseParams{Owner: owner, IDs: []string{d.ID}}))
							continue
						case 1:
							p.Attempt, p.Status, p.NextAttemptAt = storetest.NewAttempt(d.ID, d.Attempts+1, 500), store.StatusPending, now
						case 2:
							p.Attempt, p.Status = storetest.NewAttempt(d.ID, d.Attempts+1, 500), store.StatusFailed
						case 3:
							p.Attempt, p.Status, p.DisableWebhook = storetest.NewAttempt(d.ID, d.Attempts+1, 410), store.StatusFailed, "gone"
						default:
							p.Status = store.StatusSuccess
						}
						fail("Complete", s.Complete(ctx, p), store.ErrNotFound)
					}
				case n < 9:
					id := pick(r)
					fail("DeleteWebhook", s.DeleteWebhook(ctx, id), store.ErrNotFound)
					newHook(s)
				default:
					ds, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tenant, Status: store.StatusFailed, Limit: 3})
					fail("ListDeliveries", err)
					for _, d := range ds {
						_, err := s.Redeliver(ctx, store.RedeliverParams{ID: d.ID, Now: now})
						fail("Redeliver", err, store.ErrNotFound, store.ErrConflict)
					}
					n, err := s.Purge(ctx, store.PurgeParams{Before: now.Add(time.Minute), Limit: 1 + r.IntN(5)})
					purged.Add(int64(n))
					fail("Purge", err)
				}
			}
		})
	}
	wg.Wait()
	if purged.Load() == 0 {
		t.Error("no Purge removed anything: the test did not purge while others wrote")
	}

	s := stores[0]
	for _, id := range hooks {
		c, err := s.CountDeliveries(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ds, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tenant, WebhookID: id, Limit: store.MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		var tally store.Counts
		for _, d := range ds {
			switch d.Status {
			case store.StatusPending:
				tally.Pending++
			case store.StatusSuccess:
				tally.Success++
			case store.StatusFailed:
				tally.Failed++
			}
			if d.LeaseOwner != "" {
				t.Errorf("delivery %s is left leased to %s", d.ID, d.LeaseOwner)
			}
			as, err := s.ListAttempts(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(as) != d.Attempts {
				t.Errorf("delivery %s has Attempts %d and %d attempts logged", d.ID, d.Attempts, len(as))
			}
			for i, a := range as {
				if a.Number != i+1 {
					t.Errorf("delivery %s: attempt %d is numbered %d", d.ID, i+1, a.Number)
				}
			}
		}
		if c != tally {
			t.Errorf("webhook %s: CountDeliveries = %+v, its listing tallies %+v", id, c, tally)
		}
	}
}
