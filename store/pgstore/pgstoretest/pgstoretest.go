// Package pgstoretest opens pgstore Stores for the tests of other packages,
// each in a schema of its own on the database that WEBHOOK_TEST_POSTGRES_URL
// names.
package pgstoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noa-server/webhook/store/pgstore"
)

// EnvURL is the environment variable that holds the test database's URL.
const EnvURL = "WEBHOOK_TEST_POSTGRES_URL"

// SkipMessage is what a test without EnvURL skips with; CI looks for it.
const SkipMessage = EnvURL + " not set: skipping PostgreSQL tests"

// URL returns the test database's URL, or "" when EnvURL is unset.
func URL() string { return os.Getenv(EnvURL) }

// Open returns a Store on a pool of its own, in a fresh schema named after
// prefix. When tb ends the store and the pool are closed and the schema is
// dropped with everything in it. Without EnvURL, tb is skipped.
func Open(tb testing.TB, prefix string) *pgstore.Store {
	tb.Helper()
	url := URL()
	if url == "" {
		tb.Skip(SkipMessage)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := prefix + hex.EncodeToString(b)
	tb.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
		pool.Close()
	})
	st, err := pgstore.New(context.Background(), pool, pgstore.Options{Schema: schema})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() }) // before the pool closes
	return st
}

// Replica returns another Store on st's schema, on a pool of its own, as a
// second process sharing the database would open it. When tb ends it is
// closed, with its pool, before the schema is dropped.
func Replica(tb testing.TB, st *pgstore.Store) *pgstore.Store {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	r, err := pgstore.New(context.Background(), pool, pgstore.Options{Schema: st.Schema()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() }) // before the pool closes
	return r
}
