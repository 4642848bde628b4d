package pgstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// TestPGClaimExpiredOrder checks that a delivery whose lease expired is
// claimed in its NextAttemptAt order, before younger unleased ones.
func TestPGClaimExpiredOrder(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := storetest.NewWebhook("tenant_a")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	old := storetest.NewDelivery(w, "workflow.completed")
	young := storetest.NewDelivery(w, "workflow.completed")
	young.NextAttemptAt = storetest.Base.Add(time.Second)
	if _, err := s.Enqueue(ctx, []*store.Delivery{old, young}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: 10 * time.Second, Owner: "dead"})
	if err != nil || len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("first Claim = %v, %v; want %s", got, err, old.ID)
	}
	got, err = s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(20 * time.Second), Limit: 1, Lease: time.Minute, Owner: "heir"})
	if err != nil || len(got) != 1 || got[0].ID != old.ID || got[0].LeaseOwner != "heir" {
		t.Fatalf("Claim after the lease expired = %v, %v; want %s leased by heir", got, err, old.ID)
	}
	got, err = s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(20 * time.Second), Limit: 5, Lease: time.Minute, Owner: "heir"})
	if err != nil || len(got) != 1 || got[0].ID != young.ID {
		t.Fatalf("third Claim = %v, %v; want only %s", got, err, young.ID)
	}
}

// TestPGEnqueueRace makes Enqueue meet a duplicate that another
// transaction stores while the Enqueue statement runs: the statement's
// snapshot does not see it, ON CONFLICT does, and Enqueue must still
// return the stored id.
func TestPGEnqueueRace(t *testing.T) {
	schema := freshSchema(t)
	s := newStoreIn(t, schema)
	pool := testPool(t)
	ctx := t.Context()
	w := storetest.NewWebhook("tenant_a")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	first := storetest.NewDelivery(w, "workflow.completed")
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "deliveries"}.Sanitize()+`
		(id, webhook_id, event_id, event_type, tenant, body, status, next_attempt_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7)`,
		first.ID, w.ID, first.EventID, first.EventType, w.Tenant, first.Body, storetest.Base)
	if err != nil {
		t.Fatal(err)
	}

	dup := storetest.NewDelivery(w, "workflow.completed")
	dup.EventID = first.EventID
	other := storetest.NewDelivery(w, "workflow.completed")
	done := enqueueBlocked(t, s, pool, schema, other, dup)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Enqueue: %v", r.err)
	}
	if len(r.ids) != 2 || r.ids[0] != other.ID || r.ids[1] != first.ID {
		t.Errorf("Enqueue ids = %q, want [%s %s]", r.ids, other.ID, first.ID)
	}
	if _, err := s.GetDelivery(ctx, dup.ID); err == nil {
		t.Errorf("the duplicate %s was stored", dup.ID)
	}
}

// TestPGEnqueueAfterPurge: a delivery purged while an Enqueue of the same
// event runs is replaced by the new one, and Enqueue returns the new id,
// not the purged one (which the statement's snapshot still showed).
func TestPGEnqueueAfterPurge(t *testing.T) {
	schema := freshSchema(t)
	s := newStoreIn(t, schema)
	pool := testPool(t)
	ctx := t.Context()
	w := storetest.NewWebhook("tenant_a")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	old := storetest.NewDelivery(w, "workflow.completed")
	if _, err := s.Enqueue(ctx, []*store.Delivery{old}); err != nil {
		t.Fatal(err)
	}
	// The purge, held open: it has deleted the row and not committed.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{schema, "deliveries"}.Sanitize()+` WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	dup := storetest.NewDelivery(w, "workflow.completed")
	dup.EventID = old.EventID
	done := enqueueBlocked(t, s, pool, schema, dup)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Enqueue: %v", r.err)
	}
	if len(r.ids) != 1 || r.ids[0] != dup.ID {
		t.Errorf("Enqueue ids = %q, want [%s], the delivery it stored", r.ids, dup.ID)
	}
	if _, err := s.GetDelivery(ctx, r.ids[0]); err != nil {
		t.Errorf("GetDelivery of the id Enqueue returned: %v", err)
	}
}

// enqueueBlocked starts s.Enqueue(ds) and returns once it waits on a row
// lock that a transaction of the test holds; the Enqueue's result arrives
// on the channel after that transaction ends.
func enqueueBlocked(t *testing.T, s store.Store, pool *pgxpool.Pool, schema string, ds ...*store.Delivery) <-chan enqueueResult {
	t.Helper()
	ctx := t.Context()
	done := make(chan enqueueResult, 1)
	go func() {
		ids, err := s.Enqueue(ctx, ds)
		done <- enqueueResult{ids, err}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%WITH input AS%' AND query LIKE '%'||$1||'%')`, schema).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return done
		}
		select {
		case r := <-done:
			t.Fatalf("Enqueue returned %v, %v without waiting on the test's transaction", r.ids, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Enqueue never waited on the test's transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type enqueueResult struct {
	ids []string
	err error
}

// TestPGTextLimits checks that strings PostgreSQL's text cannot hold are
// refused as bad input, with nothing written.
func TestPGTextLimits(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, bad := range []string{"nul\x00byte", "bad utf-8 \xff"} {
		w := storetest.NewWebhook("tenant_a")
		w.Description = bad
		if err := s.CreateWebhook(ctx, w); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateWebhook with description %q: %v, want ErrInvalid", bad, err)
		}
		w.Description = ""
		w.Headers = map[string]string{"X-Bad": bad}
		if err := s.CreateWebhook(ctx, w); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateWebhook with header %q: %v, want ErrInvalid", bad, err)
		}
		if _, err := s.GetWebhook(ctx, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused webhook was stored (GetWebhook: %v)", err)
		}
	}
	w := storetest.NewWebhook("tenant_a")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	good := storetest.NewDelivery(w, "workflow.completed")
	bad := storetest.NewDelivery(w, "workflow.\x00completed")
	if _, err := s.Enqueue(ctx, []*store.Delivery{good, bad}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Enqueue with a NUL in the event type: %v, want ErrInvalid", err)
	}
	if _, err := s.GetDelivery(ctx, good.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused batch stored a delivery (GetDelivery: %v)", err)
	}
}

// TestPGAttemptLogCleaned checks that an attempt whose log holds bytes
// PostgreSQL's text cannot store (a remote endpoint sent them) is recorded,
// with those bytes replaced, rather than refused.
func TestPGAttemptLogCleaned(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	w := storetest.NewWebhook("tenant_a")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	d := storetest.NewDelivery(w, "workflow.completed")
	if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: time.Minute, Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	a := storetest.NewAttempt(d.ID, 1, 500)
	a.ResponseHeaders = map[string][]string{"X-Odd": {"a\x00b", "c\xffd"}}
	a.Error = "unexpected status 500: \xfe"
	err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Attempt: a, Status: store.StatusFailed,
		DisableWebhook: "gone\x00", Now: storetest.Base.Add(time.Second)})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	as, err := s.ListAttempts(ctx, d.ID)
	if err != nil || len(as) != 1 {
		t.Fatalf("ListAttempts = %d, %v", len(as), err)
	}
	got := as[0].ResponseHeaders["X-Odd"]
	if len(got) != 2 || got[0] != "a\uFFFDb" || got[1] != "c\uFFFDd" || as[0].Error != "unexpected status 500: \uFFFD" {
		t.Errorf("stored attempt: headers %q, error %q", got, as[0].Error)
	}
	if hw, err := s.GetWebhook(ctx, w.ID); err != nil || hw.Active || hw.DisabledReason != "gone\uFFFD" {
		t.Errorf("disabled webhook: %+v, %v", hw, err)
	}
}
