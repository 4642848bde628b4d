package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPGClaimPlan checks, on a queue of 50 000 deliveries, that PostgreSQL
// runs Claim through the partial indexes (a walk from the oldest due
// delivery, O(log n + k)) and never scans the table, and that listings use
// the (tenant, id) index backwards.
func TestPGClaimPlan(t *testing.T) {
	ctx := t.Context()
	s, pool := newTestStore(t)
	q := s.q.sql
	if _, err := pool.Exec(ctx, q(`
		INSERT INTO {{schema}}.webhooks SELECT 'wh_' || i, 'tenant_' || (i % 200), 'https://e.example/', '{*}', '', true, '',
			'[]', '{}', 0, 0, now(), now() FROM generate_series(1, 1000) i;
		INSERT INTO {{schema}}.deliveries (id, webhook_id, event_id, event_type, tenant, body, status, attempts,
				next_attempt_at, lease_owner, lease_expires_at, created_at, updated_at)
			SELECT 'del_' || lpad(i::text, 8, '0'), 'wh_' || (i % 1000 + 1), 'evt_' || i, 'workflow.completed',
				'tenant_' || ((i % 1000 + 1) % 200), '\x7b7d', CASE WHEN i % 3 = 0 THEN 'success' ELSE 'pending' END, 0,
				now() + (i % 1000) * interval '1 second',
				CASE WHEN i % 3 = 1 AND i % 50 = 1 THEN 'owner' ELSE '' END,
				CASE WHEN i % 3 = 1 AND i % 50 = 1 THEN now() + interval '1 minute' END,
				now(), now()
			FROM generate_series(1, 50000) i;
		ANALYZE {{schema}}.webhooks;
		ANALYZE {{schema}}.deliveries`)); err != nil {
		t.Fatal(err)
	}
	explain := func(sql string, args ...any) string {
		t.Helper()
		rows, err := pool.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	now := time.Now().Add(10 * time.Second)
	plan := explain(s.q.claim, now, []string{"wh_7"}, 10, "me", now.Add(time.Minute))
	for _, want := range []string{"deliveries_claimable", "deliveries_held", "deliveries_leased"} {
		if !strings.Contains(plan, want) {
			t.Errorf("Claim does not use index %s:\n%s", want, plan)
		}
	}
	if strings.Contains(plan, "Seq Scan") {
		t.Errorf("Claim scans a table:\n%s", plan)
	}
	t.Logf("Claim plan:\n%s", plan)
	plan = explain(s.q.listWebhooks, "tenant_3", 11)
	if strings.Contains(plan, "Seq Scan") {
		t.Errorf("ListWebhooks scans the table:\n%s", plan)
	}
	for _, c := range []struct {
		sql   string
		args  []any
		index string
	}{
		{`SELECT ` + deliveryCols + ` FROM ` + s.q.schema + `.deliveries WHERE tenant = $1 ORDER BY id DESC LIMIT $2`, []any{"tenant_3", 51}, "deliveries_tenant_id"},
		{`SELECT ` + deliveryCols + ` FROM ` + s.q.schema + `.deliveries WHERE tenant = $1 AND webhook_id = $3 AND id < $4 ORDER BY id DESC LIMIT $2`, []any{"tenant_3", 51, "wh_3", "del_00040000"}, "deliveries_webhook_id"},
		{s.q.purgeLimit, []any{now, 100}, "deliveries_finished_updated"},
	} {
		plan := explain(c.sql, c.args...)
		if !strings.Contains(plan, c.index) || strings.Contains(plan, "Seq Scan") {
			t.Errorf("want a scan of %s:\n%s", c.index, plan)
		}
	}
}

// newTestStore returns a Store in a fresh schema on a pool of its own, and
// the pool; the test's end closes both and drops the schema. It skips the
// test when WEBHOOK_TEST_POSTGRES_URL is not set.
func newTestStore(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	url := os.Getenv("WEBHOOK_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("WEBHOOK_TEST_POSTGRES_URL not set: skipping PostgreSQL tests")
	}
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "pgstore_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	s, err := New(t.Context(), pool, Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, pool
}
