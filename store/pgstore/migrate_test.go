package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// schemaVersions returns the versions schema_migrations records, ascending.
func schemaVersions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), s.q.sql(`SELECT version FROM {{schema}}.schema_migrations ORDER BY version`))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// downgradeTo1 takes s's schema back to what migration 0001 made.
func downgradeTo1(t *testing.T, s *Store, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), s.q.sql(`
		ALTER TABLE {{schema}}.deliveries DROP COLUMN held;
		CREATE INDEX deliveries_claimable ON {{schema}}.deliveries (next_attempt_at, id)
			WHERE status = 'pending' AND lease_owner = '';
		DELETE FROM {{schema}}.schema_migrations WHERE version = 2`)); err != nil {
		t.Fatal(err)
	}
}

// TestPGMigrateNewerSchema opens a schema that a newer release migrated
// further (a version this code does not know, with a table of its own): the
// older code opens it, leaves that migration alone and works against it, as
// the README's rolling-upgrade paragraph says.
func TestPGMigrateNewerSchema(t *testing.T) {
	ctx := t.Context()
	s, pool := newTestStore(t)
	w := storetest.NewWebhook("tenant_n")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, s.q.sql(`
		CREATE TABLE {{schema}}.from_the_future (x integer);
		INSERT INTO {{schema}}.schema_migrations (version, name) VALUES (9999, '9999_future.sql')`)); err != nil {
		t.Fatal(err)
	}
	before := schemaVersions(t, s)

	older, err := New(ctx, pool, Options{Schema: s.schema})
	if err != nil {
		t.Fatalf("New on a schema migrated further: %v", err)
	}
	defer older.Close()
	if got := schemaVersions(t, older); len(got) != len(before) || got[len(got)-1] != 9999 {
		t.Errorf("schema_migrations after New = %v, want %v unchanged", got, before)
	}
	if _, err := older.GetWebhook(ctx, w.ID); err != nil {
		t.Errorf("GetWebhook through the older code: %v", err)
	}
	d := storetest.NewDelivery(w, "user.login")
	if _, err := older.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Errorf("Enqueue through the older code: %v", err)
	}
}

// TestPGMigrateFailureRollsBack has a migration fail half-way (an object
// with the name it creates is in the way): New fails, and the schema is
// left as it was, at the old version with its data, none of the failed
// migration's statements applied. Once the obstacle is gone, New
// migrates it.
func TestPGMigrateFailureRollsBack(t *testing.T) {
	ctx := t.Context()
	old, pool := newTestStore(t)
	// Back to the schema of migration 0001, with a table whose name
	// 0002's last index takes.
	downgradeTo1(t, old, pool)
	if _, err := pool.Exec(ctx, old.q.sql(`CREATE TABLE {{schema}}.deliveries_claimable_webhook (x integer)`)); err != nil {
		t.Fatal(err)
	}
	w := storetest.NewWebhook("tenant_f")
	if err := old.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	old.Close()

	if s, err := New(ctx, pool, Options{Schema: old.schema}); err == nil {
		s.Close()
		t.Fatal("New with migration 0002 in the way succeeded")
	} else if !strings.Contains(err.Error(), "0002_held.sql") {
		t.Fatalf("New with migration 0002 in the way: %v, want that migration's error", err)
	}
	if got := schemaVersions(t, old); len(got) != 1 || got[0] != 1 {
		t.Errorf("schema_migrations after a failed migration = %v, want [1]", got)
	}
	var held, heldIndex bool
	err := pool.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'held' AND NOT attisdropped),
			to_regclass($2) IS NOT NULL`,
		old.q.sql(`{{schema}}.deliveries`), old.q.sql(`{{schema}}.deliveries_held`)).Scan(&held, &heldIndex)
	if err != nil {
		t.Fatal(err)
	}
	if held || heldIndex {
		t.Errorf("after a failed migration: column held %v, index deliveries_held %v; want neither", held, heldIndex)
	}
	var n int
	if err := pool.QueryRow(ctx, old.q.sql(`SELECT count(*) FROM {{schema}}.webhooks`)).Scan(&n); err != nil || n != 1 {
		t.Errorf("webhooks after a failed migration = %d, %v; want 1", n, err)
	}

	if _, err := pool.Exec(ctx, old.q.sql(`DROP TABLE {{schema}}.deliveries_claimable_webhook`)); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, pool, Options{Schema: old.schema})
	if err != nil {
		t.Fatalf("New once the obstacle is gone: %v", err)
	}
	defer s.Close()
	if got := schemaVersions(t, s); len(got) != 2 {
		t.Errorf("schema_migrations = %v, want [1 2]", got)
	}
}

// TestPGQuotedSchema runs a store in a schema whose name only a quoted
// identifier keeps (mixed case): it is created, reopened at its current
// version without migrating again, and used, apart from the lower-case
// schema an unquoted name would fold to.
func TestPGQuotedSchema(t *testing.T) {
	ctx := t.Context()
	_, pool := newTestStore(t)
	b := make([]byte, 4)
	rand.Read(b)
	schema := "Mixed_Case_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	s, err := New(ctx, pool, Options{Schema: schema})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	again, err := New(ctx, pool, Options{Schema: schema})
	if err != nil {
		t.Fatalf("New at the current version: %v", err)
	}
	defer again.Close()
	if got := schemaVersions(t, again); len(got) != 2 {
		t.Errorf("schema_migrations = %v, want each version once", got)
	}
	var folded bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = lower($1))`, schema).Scan(&folded); err != nil || folded {
		t.Errorf("a lower-case schema exists too (%v, %v)", folded, err)
	}
	w := storetest.NewWebhook("tenant_q")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	d := storetest.NewDelivery(w, "user.login")
	if _, err := again.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	now := storetest.Base.Add(time.Hour)
	got, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute, Owner: "o"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim = %d, %v; want 1", len(got), err)
	}
	if err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o",
		Attempt: storetest.NewAttempt(d.ID, 1, 200), Status: store.StatusSuccess, Now: now}); err != nil {
		t.Fatal(err)
	}
	if n, err := again.Purge(ctx, store.PurgeParams{Before: now.Add(time.Second), Limit: 10}); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v; want 1", n, err)
	}
	if _, err := s.GetDelivery(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDelivery after Purge: %v, want ErrNotFound", err)
	}
}

// TestPGMigrateYieldsToALongTransaction: migration 0002 alters deliveries,
// which a long transaction has read (a report, a pg_dump), so it waits for
// that transaction to end, and every later statement on the table waits
// behind it. It waits MigrationLockTimeout at a time: between its tries, a
// query on the table goes through. A New whose context ends meanwhile
// fails, the schema as it was; one that outlasts the transaction migrates.
func TestPGMigrateYieldsToALongTransaction(t *testing.T) {
	ctx := t.Context()
	old, pool := newTestStore(t)
	downgradeTo1(t, old, pool)
	deliveries := old.q.sql(`{{schema}}.deliveries`)
	count := old.q.sql(`SELECT count(*) FROM {{schema}}.deliveries`)

	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(context.Background())
	if _, err := long.Exec(ctx, count); err != nil {
		t.Fatal(err)
	}
	opts := Options{Schema: old.schema, MigrationLockTimeout: 50 * time.Millisecond}

	short, cancel := context.WithTimeout(ctx, time.Second)
	s, err := New(short, pool, opts)
	cancel()
	if err == nil {
		s.Close()
		t.Fatal("New migrated while a transaction held deliveries")
	}
	if !errors.Is(err, context.DeadlineExceeded) || pgCode(err) != codeLockNotAvailable {
		t.Fatalf("New whose context ended while it waited for a lock: %v; want the deadline and the lock timeout", err)
	}
	if got := schemaVersions(t, old); len(got) != 1 || got[0] != 1 {
		t.Errorf("schema_migrations after New gave up = %v, want [1]", got)
	}

	var logs bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	type result struct {
		s   *Store
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := New(ctx, pool, opts)
		done <- result{s, err}
	}()
	// Once the migration has asked for its lock, a query on the table.
	waiting := false
	for deadline := time.Now().Add(10 * time.Second); !waiting && time.Now().Before(deadline); {
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
				WHERE relation = to_regclass($1) AND mode = 'AccessExclusiveLock' AND NOT granted)`,
			deliveries).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
	}
	if !waiting {
		t.Fatal("the migration never waited for its lock on deliveries")
	}
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	var n int
	err = pool.QueryRow(qctx, count).Scan(&n)
	qcancel()
	if err != nil {
		t.Fatalf("a query on deliveries while the migration waits for its lock: %v", err)
	}
	select {
	case r := <-done:
		t.Fatalf("New returned (%v) while the long transaction still held deliveries", r.err)
	default:
	}

	if err := long.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("New once the long transaction ended: %v", r.err)
	}
	defer r.s.Close()
	if got := schemaVersions(t, r.s); len(got) != 2 {
		t.Errorf("schema_migrations = %v, want [1 2]", got)
	}
	if !strings.Contains(logs.String(), "gave up waiting for a table lock") {
		t.Errorf("New logged %q, want a warning for each try that waited too long", logs.String())
	}
}
