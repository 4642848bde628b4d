package pgstore_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noa-server/webhook/store/pgstore"
)

// Open makes a store that owns its connection pool; replicas of the host
// point at the same database (and schema) and share the queue.
func ExampleOpen() {
	ctx := context.Background()
	s, err := pgstore.Open(ctx, os.Getenv("DATABASE_URL"), pgstore.Options{Schema: "webhook"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // closes the pool too
	// Pass s to webhook.New; it satisfies store.Store.
}

// New borrows the host's pool: Close leaves it open.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	s, err := pgstore.New(ctx, pool, pgstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // the pool stays open
}

// WakeUps lets a delivery loop claim as soon as any replica enqueues,
// instead of waiting for its next poll.
func ExampleStore_WakeUps() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := pgstore.Open(ctx, os.Getenv("DATABASE_URL"), pgstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	wake := s.WakeUps(ctx)
	for range wake { // closed when ctx ends or the store closes
		// Claim due deliveries here.
	}
}
