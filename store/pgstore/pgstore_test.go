package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore"
	"github.com/noa-server/webhook/store/storetest"
)

// envURL names the environment variable holding the URL of a PostgreSQL
// database the tests may create and drop schemas in. Every test whose name
// starts with TestPG (and every BenchmarkPG) skips without it.
const envURL = "WEBHOOK_TEST_POSTGRES_URL"

var shared struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.pool != nil {
		shared.pool.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testURL returns the database URL or skips the test.
func testURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv(envURL)
	if url == "" {
		tb.Skip(envURL + " not set: skipping PostgreSQL tests")
	}
	return url
}

// testPool returns the pool the tests share (stores made by New borrow it).
func testPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := testURL(tb)
	shared.once.Do(func() {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			shared.err = err
			return
		}
		cfg.MaxConns = 24
		shared.pool, shared.err = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	if shared.err != nil {
		tb.Fatalf("connecting to %s: %v", envURL, shared.err)
	}
	return shared.pool
}

// freshSchema returns a new schema name, dropped with everything in it
// when the test ends.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	pool := testPool(tb)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "pgstore_test_" + hex.EncodeToString(b)
	tb.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

// newStore returns a store on the shared pool in a fresh schema, closed
// when the test ends.
func newStore(tb testing.TB) *pgstore.Store {
	tb.Helper()
	return newStoreIn(tb, freshSchema(tb))
}

func newStoreIn(tb testing.TB, schema string) *pgstore.Store {
	tb.Helper()
	s, err := pgstore.New(context.Background(), testPool(tb), pgstore.Options{Schema: schema})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestPGConformance(t *testing.T) {
	testPool(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t) })
}

func TestSchemaValidation(t *testing.T) {
	for _, name := range []string{"1abc", "a-b", `a"b`, "a b", "ä", "x;DROP TABLE y", string(make([]byte, 64))} {
		_, err := pgstore.Open(context.Background(), "postgres://127.0.0.1:1/none", pgstore.Options{Schema: name})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open with schema %q: %v, want ErrInvalid", name, err)
		}
	}
	_, err := pgstore.New(context.Background(), nil, pgstore.Options{})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("New with a nil pool: %v, want ErrInvalid", err)
	}
	_, err = pgstore.Open(context.Background(), "postgres://u:s3cret@[::1", pgstore.Options{})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Open with a malformed URL: %v, want ErrInvalid", err)
	} else if contains(err.Error(), "s3cret") {
		t.Errorf("Open's error reveals the password: %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestPGMigrateConcurrent starts several stores on one new schema at once,
// the way replicas start: every one succeeds and each migration is applied
// once.
func TestPGMigrateConcurrent(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t)
	const replicas = 6
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	stores := make([]*pgstore.Store, replicas)
	for i := range replicas {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.New(t.Context(), pool, pgstore.Options{Schema: schema})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: New: %v", i, err)
		}
		defer stores[i].Close()
	}
	var n, distinct int
	err := pool.QueryRow(t.Context(), "SELECT count(*), count(DISTINCT version) FROM "+
		pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&n, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || n != distinct {
		t.Errorf("schema_migrations holds %d rows for %d versions, want each version once", n, distinct)
	}
	// The stores work against the one schema.
	w := storetest.NewWebhook("tenant_a")
	if err := stores[0].CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[replicas-1].GetWebhook(t.Context(), w.ID); err != nil {
		t.Errorf("a webhook created through one replica is not visible through another: %v", err)
	}
	// A later start migrates nothing and keeps the data.
	again := newStoreIn(t, schema)
	if _, err := again.GetWebhook(t.Context(), w.ID); err != nil {
		t.Errorf("restart lost a webhook: %v", err)
	}
	if again.Schema() != schema {
		t.Errorf("Schema() = %q, want %q", again.Schema(), schema)
	}
}

// TestPGMigrateConcurrentIsolation starts replicas on one new schema at
// once through connections whose default isolation level is stricter
// than READ COMMITTED (set by an operator on the role or database): they
// still migrate it once, all of them successfully.
func TestPGMigrateConcurrentIsolation(t *testing.T) {
	for _, level := range []string{"repeatable read", "serializable"} {
		t.Run(level, func(t *testing.T) {
			cfg, err := pgxpool.ParseConfig(testURL(t))
			if err != nil {
				t.Fatal(err)
			}
			cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = level
			cfg.MaxConns = 4
			pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			schema := freshSchema(t)
			var wg sync.WaitGroup
			errs := make([]error, cfg.MaxConns)
			for i := range errs {
				wg.Go(func() {
					s, err := pgstore.New(t.Context(), pool, pgstore.Options{Schema: schema})
					if err == nil {
						s.Close()
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("replica %d: New: %v", i, err)
				}
			}
		})
	}
}

// TestPGPoolOwnership checks that Close leaves a borrowed pool open and
// closes a pool made by Open.
func TestPGPoolOwnership(t *testing.T) {
	pool := testPool(t)
	s := newStore(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	if err := pool.Ping(t.Context()); err != nil {
		t.Errorf("Close closed the borrowed pool: %v", err)
	}

	schema := freshSchema(t)
	owned, err := pgstore.Open(t.Context(), testURL(t), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	w := storetest.NewWebhook("tenant_a")
	if err := owned.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	if err := owned.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := owned.GetWebhook(t.Context(), w.ID); !errors.Is(err, store.ErrClosed) {
		t.Errorf("GetWebhook after Close: %v, want ErrClosed", err)
	}
	// The data outlives the store: another store on the schema reads it.
	if _, err := newStoreIn(t, schema).GetWebhook(t.Context(), w.ID); err != nil {
		t.Errorf("GetWebhook through a new store: %v", err)
	}
}

// waitWake waits for a wake-up on ch, generously.
func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: wake-up channel closed", what)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no wake-up within 20 s", what)
	}
}

// TestPGWakeUps checks that Enqueue, Release and Redeliver through one
// store wake a subscriber of another store on the same schema, that the
// listener survives losing its connection, and that the channel closes
// when its context ends.
func TestPGWakeUps(t *testing.T) {
	schema := freshSchema(t)
	listener := newStoreIn(t, schema)
	writer := newStoreIn(t, schema)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wake := listener.WakeUps(ctx)
	waitWake(t, wake, "listener start") // sent once LISTEN is in place

	w := storetest.NewWebhook("tenant_a")
	if err := writer.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	d := storetest.NewDelivery(w, "workflow.completed")
	if _, err := writer.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "Enqueue")

	if got, err := writer.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: time.Minute, Owner: "o"}); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %d, %v", len(got), err)
	}
	if err := writer.Release(ctx, store.ReleaseParams{Owner: "o", IDs: []string{d.ID}}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "Release")

	if _, err := writer.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: time.Minute, Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	err := writer.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Attempt: storetest.NewAttempt(d.ID, 1, 500),
		Status: store.StatusFailed, Now: storetest.Base.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Redeliver(ctx, store.RedeliverParams{ID: d.ID, Now: storetest.Base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "Redeliver")

	// Kill the listener's connection: it reconnects and wakes (it may
	// have missed notifications), then forwards new ones.
	pool := testPool(t)
	channel := ""
	deadline := time.Now().Add(20 * time.Second)
	for channel == "" && time.Now().Before(deadline) {
		err := pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity
			WHERE query = $1 AND pid <> pg_backend_pid()`, "LISTEN "+pgx.Identifier{"webhook_wake:" + schema}.Sanitize()).Scan(&channel)
		if errors.Is(err, pgx.ErrNoRows) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if channel != "true" {
		t.Fatalf("could not terminate the listener's backend (%q)", channel)
	}
	waitWake(t, wake, "reconnect")
	d2 := storetest.NewDelivery(w, "workflow.completed")
	if _, err := writer.Enqueue(ctx, []*store.Delivery{d2}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "Enqueue after reconnect")

	// A second subscriber gets its own wake-ups.
	ctx2, cancel2 := context.WithCancel(ctx)
	wake2 := listener.WakeUps(ctx2)
	if _, err := writer.Enqueue(ctx, []*store.Delivery{storetest.NewDelivery(w, "workflow.completed")}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake2, "second subscriber")
	cancel2()
	for range wake2 { // drains, then ends when the channel is closed
	}

	if err := listener.Close(); err != nil {
		t.Fatal(err)
	}
	for range wake {
	}
	if ch := listener.WakeUps(t.Context()); ch != nil {
		if _, ok := <-ch; ok {
			t.Error("WakeUps after Close returned an open channel")
		}
	}
}

// TestPGLeastPrivilege runs a store as a role that may not create schemas
// or tables, against a schema an administrator migrated: New succeeds and
// the store works with only USAGE and table privileges.
func TestPGLeastPrivilege(t *testing.T) {
	pool := testPool(t)
	schema := freshSchema(t)
	newStoreIn(t, schema) // the administrator's migration
	role := schema + "_app"
	ctx := t.Context()
	qs, qr := pgx.Identifier{schema}.Sanitize(), pgx.Identifier{role}.Sanitize()
	for _, sql := range []string{
		"CREATE ROLE " + qr + " LOGIN",
		"GRANT USAGE ON SCHEMA " + qs + " TO " + qr,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + qs + " TO " + qr,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		bg := context.Background()
		pool.Exec(bg, "DROP OWNED BY "+qr)
		pool.Exec(bg, "DROP ROLE IF EXISTS "+qr)
	})
	cfg, err := pgxpool.ParseConfig(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = role
	appPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer appPool.Close()
	// The role really lacks the privilege New would need for DDL.
	if _, err := appPool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema + "_x"}.Sanitize()); err == nil {
		pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema + "_x"}.Sanitize())
		t.Skip("the test role can create schemas: privileges are not enforced here")
	}
	s, err := pgstore.New(ctx, appPool, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatalf("New as a role without CREATE: %v", err)
	}
	defer s.Close()
	w := storetest.NewWebhook("tenant_a")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, []*store.Delivery{storetest.NewDelivery(w, "workflow.completed")}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 1, Lease: time.Minute, Owner: "o"}); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %d, %v", len(got), err)
	}
}

// strictURL returns the test database's URL with connections defaulting to
// REPEATABLE READ, as an operator may set for a role or database.
func strictURL(tb testing.TB) string {
	tb.Helper()
	url := testURL(tb)
	switch {
	case !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://"):
		return url + " default_transaction_isolation='repeatable read'"
	case strings.Contains(url, "?"):
		return url + "&default_transaction_isolation=repeatable%20read"
	default:
		return url + "?default_transaction_isolation=repeatable%20read"
	}
}

// TestPGStricterIsolation runs concurrent claims and updates on connections
// that default to REPEATABLE READ: none fails with a serialization error,
// through a pool Open makes and, for updates, through a borrowed one.
func TestPGStricterIsolation(t *testing.T) {
	updates := func(t *testing.T, s *pgstore.Store) {
		w := storetest.NewWebhook("tenant_a")
		w.MaxAttempts = 0
		if err := s.CreateWebhook(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 10 {
					if _, err := s.UpdateWebhook(t.Context(), w.ID, func(c *store.Webhook) error {
						c.MaxAttempts++
						return nil
					}); err != nil {
						t.Errorf("UpdateWebhook: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	}

	t.Run("Open", func(t *testing.T) {
		s, err := pgstore.Open(t.Context(), strictURL(t), pgstore.Options{Schema: freshSchema(t)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		updates(t, s)
		w := storetest.NewWebhook("tenant_a")
		if err := s.CreateWebhook(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		ds := make([]*store.Delivery, 200)
		for i := range ds {
			ds[i] = storetest.NewDelivery(w, "workflow.completed")
		}
		if _, err := s.Enqueue(t.Context(), ds); err != nil {
			t.Fatal(err)
		}
		var (
			wg      sync.WaitGroup
			claimed sync.Map
		)
		for i := range 8 {
			wg.Go(func() {
				for {
					got, err := s.Claim(t.Context(), store.ClaimParams{Now: time.Now(), Limit: 5, Lease: time.Minute, Owner: fmt.Sprint("claimer-", i)})
					if err != nil {
						t.Errorf("Claim: %v", err)
						return
					}
					if len(got) == 0 {
						return
					}
					for _, d := range got {
						if _, dup := claimed.LoadOrStore(d.ID, true); dup {
							t.Errorf("delivery %s claimed twice", d.ID)
						}
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("New", func(t *testing.T) {
		cfg, err := pgxpool.ParseConfig(strictURL(t))
		if err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		s, err := pgstore.New(t.Context(), pool, pgstore.Options{Schema: freshSchema(t)})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer s.Close()
		updates(t, s)
	})
}

// TestPGCallsRacingClose: a call that passed the closed check just before
// Close used to meet the pool Close closes and return pgx's "closed pool"
// error, which matches nothing a caller can test for (a dispatcher stopping
// logged it as a store failure). Every call that fails while Close runs
// must match store.ErrClosed.
func TestPGCallsRacingClose(t *testing.T) {
	schema := freshSchema(t)
	newStoreIn(t, schema) // creates the tables
	type call func(ctx context.Context, s *pgstore.Store, id string) error
	calls := []call{
		func(ctx context.Context, s *pgstore.Store, id string) error {
			_, err := s.GetWebhook(ctx, id)
			return err
		},
		func(ctx context.Context, s *pgstore.Store, _ string) error {
			_, err := s.MatchWebhooks(ctx, "tenant_a", "user.login")
			return err
		},
		func(ctx context.Context, s *pgstore.Store, _ string) error {
			_, err := s.Claim(ctx, store.ClaimParams{Now: time.Now(), Limit: 5, Lease: time.Minute, Owner: "o"})
			return err
		},
		func(ctx context.Context, s *pgstore.Store, id string) error {
			_, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: "tenant_a", WebhookID: id, Limit: 5})
			return err
		},
		func(ctx context.Context, s *pgstore.Store, _ string) error { return s.Ping(ctx) },
	}
	const goroutines = 32
	for round := range 5 {
		s, err := pgstore.Open(t.Context(), testURL(t), pgstore.Options{Schema: schema})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		w := storetest.NewWebhook("tenant_a")
		if err := s.CreateWebhook(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			wrong []error
			ok    atomic.Int64 // calls answered before Close
		)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					err := calls[g%len(calls)](t.Context(), s, w.ID)
					if err == nil {
						ok.Add(1)
						continue
					}
					if !errors.Is(err, store.ErrClosed) {
						mu.Lock()
						wrong = append(wrong, err)
						mu.Unlock()
					}
					return
				}
			}()
		}
		for deadline := time.Now().Add(5 * time.Second); ok.Load() < 2*goroutines && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for _, err := range wrong {
			t.Errorf("round %d: a call racing Close returned %v, want an error matching store.ErrClosed", round, err)
		}
		if len(wrong) > 0 {
			return
		}
	}
}
