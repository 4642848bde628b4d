package api_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// documented holds the statuses the OpenAPI document gives each route
// these tests call.
var documented = map[string][]int{
	"PUT":    {200, 400, 401, 404, 405, 413, 415, 500},
	"DELETE": {200, 401, 404, 405, 500},
	"GET":    {200, 400, 401, 404, 405},
	"rotate": {200, 400, 401, 404, 405, 413, 415},
	"test":   {200, 400, 401, 404, 405, 409, 413, 415, 503, 504},
	"retry":  {200, 400, 401, 404, 405, 409, 413, 415, 503, 504},
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

// A DELETE racing tests and retries of its webhook: each answer is
// documented (a test or retry after the delete is 404), and once the
// DELETE is answered no delivery is recorded under the webhook.
func TestConcurrentDeleteRacingSends(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, open, options{})
		for range 5 {
			id, _ := h.create(tokenA)
			base := "/v1/webhooks/" + id
			var dels []string
			for range 3 {
				dels = append(dels, h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string))
			}
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					kind, path := "test", base+"/test"
					if i%2 == 1 {
						kind, path = "retry", base+"/deliveries/"+dels[i%3]+"/retry"
					}
					if i == 10 {
						kind = "DELETE"
						if r := h.do("DELETE", base, tokenA, ""); r.status != http.StatusOK {
							t.Errorf("DELETE: status %d: %s", r.status, r.raw)
						}
						return
					}
					if r := h.do("POST", path, tokenA, ""); !slices.Contains(documented[kind], r.status) || r.status >= 500 {
						t.Errorf("POST %s: status %d: %s", path, r.status, r.raw)
					}
				})
			}
			wg.Wait()
			h.do("GET", base, tokenA, "").must(t, http.StatusNotFound)
			ds, _, err := h.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: tenantA, WebhookID: id, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) > 0 {
				t.Errorf("%d deliveries recorded under the deleted webhook", len(ds))
			}
		}
	})
}

// deleteAfterRecord opens a store that deletes a delivery's webhook right
// after recording its attempt while armed holds: a DELETE arriving just
// after the attempt of a test or retry.
func deleteAfterRecord(open func(t *testing.T) store.Store, armed *atomic.Bool) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return &deletingStore{Store: open(t), armed: armed} }
}

type deletingStore struct {
	store.Store
	armed *atomic.Bool
}

func (s *deletingStore) Complete(ctx context.Context, p store.CompleteParams) error {
	err := s.Store.Complete(ctx, p)
	if err == nil && s.armed.Load() {
		if d, gerr := s.Store.GetDelivery(ctx, p.DeliveryID); gerr == nil {
			s.Store.DeleteWebhook(ctx, d.WebhookID)
		}
	}
	return err
}

// A retry whose webhook is deleted right after its attempt is recorded is
// answered 404 (or 200, when the attempt was read back before the
// delete), not 500.
func TestRetryOfWebhookDeletedAfterAttempt(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		var armed atomic.Bool
		h := newHarness(t, deleteAfterRecord(open, &armed), options{})
		id, _ := h.create(tokenA)
		base := "/v1/webhooks/" + id
		del := h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string)
		armed.Store(true)
		r := h.do("POST", base+"/deliveries/"+del+"/retry", tokenA, "")
		if r.status == http.StatusOK { // read back before the delete
			return
		}
		r.must(t, http.StatusNotFound)
		if code, _ := r.errCode(t); code != "not_found" {
			t.Errorf("code %q, want not_found", code)
		}
	})
}

// listGone opens a store whose ListAttempts, while armed holds, first
// deletes the delivery's webhook: a DELETE arriving between the two reads
// of a GET.
func listGone(open func(t *testing.T) store.Store, armed *atomic.Bool) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return &listGoneStore{Store: open(t), armed: armed} }
}

type listGoneStore struct {
	store.Store
	armed *atomic.Bool
}

func (s *listGoneStore) ListAttempts(ctx context.Context, id string) ([]*store.Attempt, error) {
	if s.armed.Load() {
		if d, err := s.Store.GetDelivery(ctx, id); err == nil {
			s.Store.DeleteWebhook(ctx, d.WebhookID)
		}
	}
	return s.Store.ListAttempts(ctx, id)
}

// A delivery read while its webhook is deleted is answered 404, not as a
// delivery with attempts and an empty attempt log.
func TestGetDeliveryOfWebhookDeletedMeanwhile(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		var armed atomic.Bool
		h := newHarness(t, listGone(open, &armed), options{})
		id, _ := h.create(tokenA)
		base := "/v1/webhooks/" + id
		del := h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string)
		armed.Store(true)
		r := h.do("GET", base+"/deliveries/"+del, tokenA, "")
		if r.status == http.StatusOK {
			d := r.data(t)
			if log, _ := d["attemptLog"].([]any); float64(len(log)) != d["attempts"] {
				t.Fatalf("answered %v attempts with %d in the log: %s", d["attempts"], len(log), r.raw)
			}
			return
		}
		r.must(t, http.StatusNotFound)
	})
}

// deleteOnEnqueue opens a store whose Enqueue, while deletes is positive,
// first deletes the webhook of the batch's first delivery: a DELETE landing
// between an Emit's match and its enqueue, once per try.
func deleteOnEnqueue(open func(t *testing.T) store.Store, deletes *atomic.Int32) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return &enqueueGoneStore{Store: open(t), deletes: deletes} }
}

type enqueueGoneStore struct {
	store.Store
	deletes *atomic.Int32
}

func (s *enqueueGoneStore) Enqueue(ctx context.Context, ds []*store.Delivery) ([]string, error) {
	if len(ds) > 0 && s.deletes.Add(-1) >= 0 {
		s.Store.DeleteWebhook(ctx, ds[0].WebhookID)
	}
	return s.Store.Enqueue(ctx, ds)
}

// An event emitted while the tenant deletes several of its webhooks, each
// DELETE landing between the emit's match and its enqueue, is accepted
// for the webhooks left, not answered 500.
func TestEmitWhileWebhooksAreDeleted(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		var deletes atomic.Int32
		h := newHarness(t, deleteOnEnqueue(open, &deletes), options{events: true})
		var ids []string
		for range 6 {
			id, _ := h.create(tokenA)
			ids = append(ids, id)
		}
		deletes.Store(5)
		r := h.do("POST", "/v1/events", tokenA, `{"event":"workflow.completed","data":{"workflowId":"wf_1","status":"completed","duration":1}}`).must(t, http.StatusAccepted)
		if got := r.data(t)["webhookIds"].([]any); len(got) != 1 || got[0] != ids[5] {
			t.Errorf("delivered to %v, want [%s]", got, ids[5])
		}
	})
}

// slowUpdates opens a store whose UpdateWebhook, while slow holds, waits
// 30 ms before its transaction: a request that took its time to reach
// the database.
func slowUpdates(open func(t *testing.T) store.Store, slow *atomic.Bool) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return &slowUpdateStore{Store: open(t), slow: slow} }
}

type slowUpdateStore struct {
	store.Store
	slow *atomic.Bool
}

func (s *slowUpdateStore) UpdateWebhook(ctx context.Context, id string, change func(*store.Webhook) error) (*store.Webhook, error) {
	if s.slow.Swap(false) {
		time.Sleep(30 * time.Millisecond)
	}
	return s.Store.UpdateWebhook(ctx, id, change)
}

// The webhook's updatedAt is that of the change stored last: an update
// that reached the store after another never shows an earlier time.
func TestUpdatedAtFollowsStoreOrder(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		var slow atomic.Bool
		h := newHarness(t, slowUpdates(open, &slow), options{})
		id, _ := h.create(tokenA)
		base := "/v1/webhooks/" + id
		for _, late := range []string{`{"description":"late"}`, ""} {
			slow.Store(true)
			var wg sync.WaitGroup
			var early string
			wg.Go(func() {
				if late == "" {
					h.do("POST", base+"/rotate-secret", tokenA, "").must(t, http.StatusOK)
				} else {
					h.do("PUT", base, tokenA, late).must(t, http.StatusOK)
				}
			})
			wg.Go(func() {
				time.Sleep(10 * time.Millisecond)
				early = h.do("PUT", base, tokenA, `{"description":"early"}`).must(t, http.StatusOK).data(t)["updatedAt"].(string)
			})
			wg.Wait()
			got := h.do("GET", base, tokenA, "").must(t, http.StatusOK).data(t)
			if got["updatedAt"].(string) < early {
				t.Errorf("after a slow %s: updatedAt %s, earlier than %s answered by the update stored before it", cmp.Or(late, "rotation"), got["updatedAt"], early)
			}
		}
	})
}
