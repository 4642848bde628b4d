package pgstore

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded schema change, numbered by its file name
// ("0001_init.sql" is version 1).
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("pgstore: migration file %q is not named NNNN_name.sql", base)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	return ms, nil
}

// lockKey is the advisory lock that serializes migrations of one schema.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("github.com/noa-server/webhook/store/pgstore:" + schema))
	return int64(h.Sum64())
}

// codeLockNotAvailable is PostgreSQL's error code of a statement that
// waited lock_timeout for a lock.
const codeLockNotAvailable = "55P03"

// maxMigrationPause is the longest pause between two tries of a migration
// that waited too long for a table lock.
const maxMigrationPause = 30 * time.Second

// migrate creates the schema and applies the migrations it lacks. A try
// whose statement waited s.lockTimeout for a table lock (see
// Options.MigrationLockTimeout) is rolled back, and tried again after a
// pause, until ctx ends.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.Multiplier, b.MaxInterval, b.MaxElapsedTime = max(s.lockTimeout, time.Millisecond), 2, maxMigrationPause, 0
	b.Reset()
	var lockErr error // the last try's that waited too long for a lock
	gaveUp := func() error {
		return fmt.Errorf("pgstore: migrating schema %q: gave up waiting for a table lock: %w (last try: %w)", s.schema, ctx.Err(), lockErr)
	}
	for {
		err := s.migrateOnce(ctx, ms)
		if err == nil {
			return nil
		}
		if pgCode(err) != codeLockNotAvailable {
			if lockErr != nil && ctx.Err() != nil {
				return gaveUp() // ctx ended during a try, likely waiting for the lock again
			}
			return fmt.Errorf("pgstore: migrating schema %q: %w", s.schema, err)
		}
		lockErr = err
		pause := b.NextBackOff()
		s.log.LogAttrs(ctx, slog.LevelWarn, "pgstore: a migration gave up waiting for a table lock that another transaction holds; trying again",
			slog.String("schema", s.schema), slog.Duration("lock_timeout", s.lockTimeout), slog.Duration("pause", pause), slog.String("error", err.Error()))
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return gaveUp()
		}
	}
}

// migrateOnce creates the schema and applies the migrations it lacks, in
// one transaction holding a transaction-scoped advisory lock: concurrent
// callers wait, then find the work done. Versions the database has but this
// code does not know (a newer replica migrated first) are left alone.
//
// The transaction is READ COMMITTED whatever the connection's default, so
// the statements after the lock see what the holder before committed: a
// stricter level would keep the snapshot taken when the lock was asked
// for, and a waiter would create the schema a second time and fail.
//
// The lock timeout is set once the advisory lock is held: a caller waiting
// for another's migration waits for it to end, however long it takes.
func (s *Store) migrateOnce(ctx context.Context, ms []migration) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(s.schema)); err != nil {
			return err
		}
		if s.lockTimeout > 0 {
			msec := max(s.lockTimeout.Milliseconds(), 1)
			if _, err := tx.Exec(ctx, "SELECT set_config('lock_timeout', $1, true)", strconv.FormatInt(msec, 10)); err != nil {
				return err
			}
		}
		// DDL only when something is missing, so a role without CREATE
		// privileges runs against a schema an administrator migrated.
		var hasSchema, hasTable bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
				to_regclass($2) IS NOT NULL`,
			s.schema, s.q.sql(`{{schema}}.schema_migrations`)).Scan(&hasSchema, &hasTable)
		if err != nil {
			return err
		}
		if !hasSchema {
			if _, err := tx.Exec(ctx, s.q.sql(`CREATE SCHEMA {{schema}}`)); err != nil {
				return err
			}
		}
		if !hasTable {
			if _, err := tx.Exec(ctx, s.q.sql(`CREATE TABLE {{schema}}.schema_migrations (
				version    integer PRIMARY KEY,
				name       text NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now())`)); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, s.q.sql(`SELECT version FROM {{schema}}.schema_migrations`))
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, m := range ms {
			if slices.Contains(applied, int32(m.version)) {
				continue
			}
			if _, err := tx.Exec(ctx, s.q.sql(m.sql)); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, s.q.sql(`INSERT INTO {{schema}}.schema_migrations (version, name) VALUES ($1, $2)`),
				m.version, m.name); err != nil {
				return err
			}
		}
		return nil
	})
}
