package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// TestPGEnqueueErrorStoresNothing: an Enqueue whose context ends while its
// statement is under way (waiting on a lock here; a slow disk or network
// does the same) returns the context's error, and must then have stored
// nothing. Before, the statement went on in the server once the lock was
// free and committed the deliveries: Emit reported a failure for an event
// that was delivered all the same, and a host that emitted it again (with
// a new id, as Emit generates) delivered it twice.
func TestPGEnqueueErrorStoresNothing(t *testing.T) {
	s := newStore(t)
	w := storetest.NewWebhook("tenant_a")
	if err := s.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	// A transaction of the test locks the webhook's row, so the insert's
	// foreign key check waits.
	tx, err := testPool(t).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM `+pgx.Identifier{s.Schema(), "webhooks"}.Sanitize()+
		` WHERE id = $1 FOR UPDATE`, w.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d := storetest.NewDelivery(w, "workflow.completed")
	done := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, []*store.Delivery{d})
		done <- err
	}()
	waitLockWait(t, s.Schema())
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue = %v, want context.Canceled", err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The statement, if it is still alive, now goes on: give it time to
	// commit.
	for range 50 {
		if _, err := s.GetDelivery(t.Context(), d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after an Enqueue that returned an error: GetDelivery error = %v, want ErrNotFound (the delivery was stored)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
