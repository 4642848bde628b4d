package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore"
)

// concurrencyStores are the stores of eachStore, with pgstore when
// WEBHOOK_TEST_POSTGRES_URL names a database the tests may make schemas in.
func concurrencyStores(t *testing.T, f func(t *testing.T, open func(t *testing.T) store.Store)) {
	eachStore(t, f)
	url := os.Getenv("WEBHOOK_TEST_POSTGRES_URL")
	if url == "" {
		return
	}
	t.Run("pgstore", func(t *testing.T) {
		t.Parallel()
		f(t, func(t *testing.T) store.Store {
			pool, err := pgxpool.New(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 8)
			rand.Read(b)
			schema := "api_test_" + hex.EncodeToString(b)
			t.Cleanup(func() {
				if _, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
					t.Errorf("drop schema %s: %v", schema, err)
				}
				pool.Close()
			})
			st, err := pgstore.New(context.Background(), pool, pgstore.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	})
}

// slowReads opens a store whose GetWebhook answers 5 ms after its read,
// the time a busy database may take: a decision made on the read meets
// the writes made meanwhile.
func slowReads(open func(t *testing.T) store.Store) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return slowStore{open(t)} }
}

type slowStore struct{ store.Store }

func (s slowStore) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	w, err := s.Store.GetWebhook(ctx, id)
	time.Sleep(5 * time.Millisecond)
	return w, err
}

// A header sent back as "[redacted]" keeps the value stored when the PUT
// is made, not the value of an earlier read: an update racing one that
// sets the header never brings back the value it replaced.
func TestConcurrentRedactedHeaderKeepsLatest(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, slowReads(open), options{})
		id, _ := h.create(tokenA)
		base := "/v1/webhooks/" + id
		h.do("PUT", base, tokenA, `{"headers":{"Authorization":"Bearer original"}}`).must(t, http.StatusOK)
		for round := range 10 {
			var wg sync.WaitGroup
			for i := range 10 {
				wg.Go(func() {
					body := `{"headers":{"Authorization":"[redacted]","X-Env":"` + fmt.Sprint(i) + `"}}`
					if i%2 == 0 {
						body = fmt.Sprintf(`{"headers":{"Authorization":"Bearer r%d-%d"}}`, round, i)
					}
					if r := h.do("PUT", base, tokenA, body); r.status != http.StatusOK {
						t.Errorf("PUT %s: status %d: %s", body, r.status, r.raw)
					}
				})
			}
			wg.Wait()
			w, err := h.st.GetWebhook(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Headers["Authorization"]; !strings.HasPrefix(got, fmt.Sprintf("Bearer r%d-", round)) {
				t.Fatalf("round %d: Authorization is %q, a value replaced by an update answered 200", round, got)
			}
		}
	})
}
