package api_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore/pgstoretest"
)

// concurrencyStores are the stores of eachStore, with pgstore (skipped
// without its database).
func concurrencyStores(t *testing.T, f func(t *testing.T, open func(t *testing.T) store.Store)) {
	eachStore(t, f)
	t.Run("pgstore", func(t *testing.T) {
		if pgstoretest.URL() == "" {
			t.Skip(pgstoretest.SkipMessage)
		}
		t.Parallel()
		f(t, func(t *testing.T) store.Store { return pgstoretest.Open(t, "api_test_") })
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
	"PUT":    {200, 400, 401, 404, 405, 409, 413, 415, 500},
	"DELETE": {200, 401, 404, 405, 500},
	"GET":    {200, 400, 401, 404, 405},
	"rotate": {200, 400, 401, 404, 405, 409, 413, 415},
	"test":   {200, 400, 401, 404, 405, 409, 413, 415, 503, 504},
	"retry":  {200, 400, 401, 404, 405, 409, 413, 415, 503, 504},
}

// Twenty clients mixing updates, rotations, tests and retries on one
// webhook get documented answers, none a 500, and the webhook ends in a
// state some serial order of the answered requests gives.
func TestConcurrentChangesOnOneWebhook(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, open, options{})
		id, secret := h.create(tokenA)
		base := "/v1/webhooks/" + id
		first := h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string)
		h.recv.next()

		var (
			mu      sync.Mutex
			descs   []string
			secrets = []string{secret}
			wg      sync.WaitGroup
		)
		for i := range 20 {
			wg.Go(func() {
				for j := range 3 {
					var kind, method, path, body string
					switch (i + j) % 5 {
					case 0:
						kind, method, path, body = "PUT", "PUT", base, fmt.Sprintf(`{"description":"d-%d-%d"}`, i, j)
					case 1:
						kind, method, path = "rotate", "POST", base+"/rotate-secret"
					case 2:
						kind, method, path = "test", "POST", base+"/test"
					case 3:
						kind, method, path = "retry", "POST", base+"/deliveries/"+first+"/retry"
					case 4:
						kind, method, path = "GET", "GET", base
					}
					r := h.do(method, path, tokenA, body)
					if !slices.Contains(documented[kind], r.status) {
						t.Errorf("%s %s: status %d: %s", method, path, r.status, r.raw)
						continue
					}
					if r.status != http.StatusOK {
						continue
					}
					mu.Lock()
					switch kind {
					case "PUT":
						descs = append(descs, fmt.Sprintf("d-%d-%d", i, j))
					case "rotate":
						s := r.data(t)["secret"].(string)
						secrets = append(secrets, s)
						h.recv.addSecret(s)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		got := h.do("GET", base, tokenA, "").must(t, http.StatusOK).data(t)
		if d := got["description"].(string); !slices.Contains(descs, d) {
			t.Errorf("description %q is none of the updates answered 200", d)
		}
		stored, err := h.st.GetWebhook(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stored.Secrets {
			if !slices.Contains(secrets, s.Value) {
				t.Errorf("the webhook signs with a secret no answer gave")
			}
		}
		// Every delivery made meanwhile verifies with the secrets answered.
		for len(h.recv.got) > 0 {
			if rc := <-h.recv.got; rc.err != nil {
				t.Errorf("a delivery made during the race does not verify: %v", rc.err)
			}
		}
		// The last rotation's secret, alone, signs the next test.
		s := h.do("POST", base+"/rotate-secret", tokenA, `{"gracePeriodSeconds":0}`).must(t, http.StatusOK).data(t)["secret"].(string)
		h.recv.setSecrets(s)
		h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK)
		if rc := h.recv.next(); rc.err != nil {
			t.Errorf("the test after the last rotation does not verify with its secret: %v", rc.err)
		}
	})
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

// emitN emits n workflow.completed events for tenantA and waits until
// the webhook id has no pending delivery.
func (h *harness) emitN(id string, n int) {
	h.t.Helper()
	for range n {
		if _, err := h.disp.Emit(context.Background(), webhook.Event{
			Type: webhook.EventWorkflowCompleted, Tenant: tenantA,
			Data: webhook.WorkflowCompletedData{WorkflowID: "wf_1", Status: "completed"},
		}); err != nil {
			h.t.Fatal(err)
		}
	}
	eventually(h.t, "deliveries finished", func() bool {
		c, err := h.st.CountDeliveries(context.Background(), id)
		return err == nil && c.Pending == 0
	})
}

// pageAll lists path page by page with limit, calling between after each
// page with the page's number and cursor, and returns the ids in order.
func (h *harness) pageAll(path string, limit int, between func(page int, cursor string)) []string {
	h.t.Helper()
	var ids []string
	cursor := ""
	for page := 0; ; page++ {
		q := fmt.Sprintf("%s?limit=%d", path, limit)
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := h.do("GET", q, tokenA, "").must(h.t, http.StatusOK)
		for _, it := range r.items(h.t) {
			ids = append(ids, it["id"].(string))
		}
		p := r.body["pagination"].(map[string]any)
		cursor, _ = p["nextCursor"].(string)
		if cursor == "" {
			if p["hasMore"] != false {
				h.t.Errorf("hasMore %v without nextCursor", p["hasMore"])
			}
			return ids
		}
		between(page, cursor)
	}
}

// Listing deliveries page by page while new ones are emitted and old ones
// purged (the page's last item among them) returns no delivery twice and
// skips none that existed throughout; a cursor of a deleted webhook is
// answered 404.
func TestPaginateDeliveriesWhileChanging(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, open, options{})
		id, _ := h.create(tokenA)
		path := "/v1/webhooks/" + id + "/deliveries"
		h.emitN(id, 20) // purged while listing
		time.Sleep(5 * time.Millisecond)
		cut := time.Now()
		time.Sleep(5 * time.Millisecond)
		h.emitN(id, 30) // kept throughout
		var kept []string
		for _, d := range h.items(path + "?limit=200") {
			kept = append(kept, d)
		}
		kept = kept[:30]

		var lastCursor string
		got := h.pageAll(path, 7, func(page int, cursor string) {
			lastCursor = cursor
			h.emitN(id, 2)
			if page == 5 { // the cursor is within the first 20
				if _, err := h.st.Purge(context.Background(), store.PurgeParams{Before: cut}); err != nil {
					t.Fatal(err)
				}
			}
		})
		seen := map[string]bool{}
		for _, d := range got {
			if seen[d] {
				t.Errorf("delivery %s listed twice", d)
			}
			seen[d] = true
		}
		for _, d := range kept {
			if !seen[d] {
				t.Errorf("delivery %s, stored throughout, was skipped", d)
			}
		}

		h.do("DELETE", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK)
		r := h.do("GET", path+"?cursor="+lastCursor, tokenA, "").must(t, http.StatusNotFound)
		if code, _ := r.errCode(t); code != "not_found" {
			t.Errorf("cursor of a deleted webhook: code %q", code)
		}
	})
}

// Listing webhooks page by page while others are created and deleted
// (the page's last one among them) returns none twice and skips none that
// existed throughout.
func TestPaginateWebhooksWhileChanging(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, open, options{})
		var kept []string
		for range 30 {
			id, _ := h.create(tokenA)
			kept = append(kept, id)
		}
		var gone []string
		got := h.pageAll("/v1/webhooks", 4, func(page int, cursor string) {
			id, _ := h.create(tokenA)
			gone = append(gone, id)
			// Delete the page's last webhook, whose id the cursor holds.
			last := kept[len(kept)-1-(page*4+3)]
			h.do("DELETE", "/v1/webhooks/"+last, tokenA, "").must(t, http.StatusOK)
			gone = append(gone, last)
		})
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Errorf("webhook %s listed twice", id)
			}
			seen[id] = true
		}
		for _, id := range kept {
			if !seen[id] && !slices.Contains(gone, id) {
				t.Errorf("webhook %s, stored throughout, was skipped", id)
			}
		}
	})
}

// items lists path in one page and returns the ids.
func (h *harness) items(path string) []string {
	h.t.Helper()
	var ids []string
	for _, it := range h.do("GET", path, tokenA, "").must(h.t, http.StatusOK).items(h.t) {
		ids = append(ids, it["id"].(string))
	}
	return ids
}

// Two hundred clients reading and listing while a few write get no 500
// (and, under -race, no data race; TestMain checks no goroutine outlives
// the server).
func TestManyReadersFewWriters(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, open, options{})
		id, _ := h.create(tokenA, "*")
		base := "/v1/webhooks/" + id
		h.emitN(id, 5)
		del := h.items(base + "/deliveries")[0]
		reads := []string{"/v1/webhooks", "/v1/webhooks?limit=1", base, base + "/deliveries?limit=2", base + "/deliveries/" + del, "/v1/webhooks/openapi.json"}

		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				path := reads[i%len(reads)]
				if r := h.do("GET", path, tokenA, ""); r.status != http.StatusOK {
					t.Errorf("GET %s: status %d: %s", path, r.status, r.raw)
				}
			})
		}
		for i := range 4 {
			wg.Go(func() {
				for j := range 5 {
					var r *response
					switch i {
					case 0:
						r = h.do("PUT", base, tokenA, fmt.Sprintf(`{"description":"w%d"}`, j))
					case 1:
						r = h.do("POST", base+"/rotate-secret", tokenA, "")
					case 2:
						other, _ := h.create(tokenA)
						r = h.do("DELETE", "/v1/webhooks/"+other, tokenA, "")
					case 3:
						r = h.do("POST", base+"/test", tokenA, "")
					}
					if r.status != http.StatusOK {
						t.Errorf("writer %d: status %d: %s", i, r.status, r.raw)
					}
				}
			})
		}
		wg.Wait()
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

// slowAttempts opens a store whose ListAttempts, once armed, waits 300 ms
// before its read: a delivery read just before an attempt is recorded,
// its attempts just after.
func slowAttempts(open func(t *testing.T) store.Store, armed *atomic.Bool) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return &slowAttemptsStore{Store: open(t), armed: armed} }
}

type slowAttemptsStore struct {
	store.Store
	armed *atomic.Bool
}

func (s *slowAttemptsStore) ListAttempts(ctx context.Context, id string) ([]*store.Attempt, error) {
	if s.armed.Swap(false) {
		time.Sleep(300 * time.Millisecond)
	}
	return s.Store.ListAttempts(ctx, id)
}

// A delivery read (or answered by a retry) while another retry records
// its attempt shows one moment of it: as many attempts in attemptLog as
// "attempts" says, and the latest of them at the top.
func TestDeliveryReadDuringAnAttempt(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		var armed atomic.Bool
		h := newHarness(t, slowAttempts(open, &armed), options{})
		doc := loadDoc(t, h)
		id, _ := h.create(tokenA)
		base := "/v1/webhooks/" + id
		del := h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string)
		for _, c := range []struct{ method, path, tmpl string }{
			{"GET", base + "/deliveries/" + del, "/v1/webhooks/{id}/deliveries/{deliveryId}"},
			{"POST", base + "/deliveries/" + del + "/retry", "/v1/webhooks/{id}/deliveries/{deliveryId}/retry"},
		} {
			before, err := h.st.GetDelivery(context.Background(), del)
			if err != nil {
				t.Fatal(err)
			}
			var r *response
			var wg sync.WaitGroup
			armed.Store(true)
			wg.Go(func() { r = h.do(c.method, c.path, tokenA, "") })
			time.Sleep(50 * time.Millisecond)
			if c.method == "POST" {
				// The first retry has its attempt; its read back of the
				// attempts waits.
				eventually(t, "the retry's attempt", func() bool {
					d, err := h.st.GetDelivery(context.Background(), del)
					return err == nil && d.Status == store.StatusSuccess && d.Attempts == before.Attempts+1
				})
			}
			h.do("POST", base+"/deliveries/"+del+"/retry", tokenA, "").must(t, http.StatusOK)
			wg.Wait()
			doc.check(t, c.method, c.tmpl, r)
			d := r.must(t, http.StatusOK).data(t)
			log := d["attemptLog"].([]any)
			if float64(len(log)) != d["attempts"] {
				t.Errorf("%s %s: attempts %v with %d in attemptLog", c.method, c.tmpl, d["attempts"], len(log))
				continue
			}
			last := log[len(log)-1].(map[string]any)
			if d["timestamp"] != last["startedAt"] {
				t.Errorf("%s %s: timestamp %v is not the last attempt's %v", c.method, c.tmpl, d["timestamp"], last["startedAt"])
			}
		}
	})
}

// pauseBeforeSend opens a store that, while armed, sets the webhook of a
// delivery inactive just before the delivery is queued (Enqueue, for a
// test) or queued again (Redeliver, for a retry): a PUT {"active": false}
// landing between the route's read of the webhook and the attempt.
func pauseBeforeSend(open func(t *testing.T) store.Store, armed *atomic.Bool) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return &pausingStore{Store: open(t), armed: armed} }
}

type pausingStore struct {
	store.Store
	armed *atomic.Bool
}

func (s *pausingStore) pause(ctx context.Context, webhookID string) {
	if s.armed.Swap(false) {
		s.Store.UpdateWebhook(ctx, webhookID, func(w *store.Webhook) error {
			w.Active = false
			return nil
		})
	}
}

func (s *pausingStore) Enqueue(ctx context.Context, ds []*store.Delivery) ([]string, error) {
	if len(ds) > 0 {
		s.pause(ctx, ds[0].WebhookID)
	}
	return s.Store.Enqueue(ctx, ds)
}

func (s *pausingStore) Redeliver(ctx context.Context, p store.RedeliverParams) (*store.Delivery, error) {
	if d, err := s.Store.GetDelivery(ctx, p.ID); err == nil {
		s.pause(ctx, d.WebhookID)
	}
	return s.Store.Redeliver(ctx, p)
}

// A test or retry whose webhook is paused after the route read it active
// sends nothing and is answered 409 webhook_inactive, as a test or retry
// of a paused webhook is: not 200, as though the test had been sent.
func TestTestAndRetryOfWebhookPausedMeanwhile(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		var armed atomic.Bool
		h := newHarness(t, pauseBeforeSend(open, &armed), options{})
		doc := loadDoc(t, h)
		id, _ := h.create(tokenA)
		base := "/v1/webhooks/" + id
		del := h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string)
		h.recv.next()
		for _, c := range []struct{ path, tmpl string }{
			{base + "/test", "/v1/webhooks/{id}/test"},
			{base + "/deliveries/" + del + "/retry", "/v1/webhooks/{id}/deliveries/{deliveryId}/retry"},
		} {
			h.do("PUT", base, tokenA, `{"active":true}`).must(t, http.StatusOK)
			armed.Store(true)
			r := h.do("POST", c.path, tokenA, "")
			doc.check(t, "POST", c.tmpl, r)
			if r.status != http.StatusConflict {
				t.Errorf("POST %s: %d %s, want 409", c.tmpl, r.status, r.raw)
				continue
			}
			if code, _ := r.errCode(t); code != api.CodeWebhookInactive {
				t.Errorf("POST %s: code %q, want %s", c.tmpl, code, api.CodeWebhookInactive)
			}
		}
		select {
		case rc := <-h.recv.got:
			t.Errorf("the paused webhook got a request: %s", rc.body)
		case <-time.After(100 * time.Millisecond):
		}
	})
}

// Clients each updating their own field of one webhook (on a store whose
// reads are slow, so a decision made on a read meets the writes made
// meanwhile), while others rotate its secret (revoking the previous ones
// now and then), test it and retry its delivery, lose no update answered
// 200: each field ends with the last value its client was answered 200 for,
// the last rotation's secret is current, and every delivery made meanwhile
// verifies with the secrets answered.
func TestConcurrentUpdatesOfDifferentFields(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, slowReads(open), options{})
		doc := loadDoc(t, h)
		id, secret := h.create(tokenA)
		base := "/v1/webhooks/" + id
		first := h.do("POST", base+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string)
		h.recv.next()

		fields := []struct {
			name string
			body func(j int) (string, any)
		}{
			{"description", func(j int) (string, any) { return fmt.Sprintf(`{"description":"d%d"}`, j), fmt.Sprintf("d%d", j) }},
			{"events", func(j int) (string, any) {
				ev := []string{"workflow.completed", "workflow.failed", "agent.*"}[j%3]
				return `{"events":["` + ev + `"]}`, []any{ev}
			}},
			{"headers", func(j int) (string, any) {
				return fmt.Sprintf(`{"headers":{"X-Env":"v%d"}}`, j), map[string]any{"X-Env": fmt.Sprintf("v%d", j)}
			}},
			{"maxAttempts", func(j int) (string, any) { return fmt.Sprintf(`{"maxAttempts":%d}`, j+1), float64(j + 1) }},
		}
		last := make([]any, len(fields))
		var (
			wg         sync.WaitGroup
			mu         sync.Mutex
			secrets    = []string{secret}
			lastSecret = secret
		)
		for i, f := range fields {
			wg.Go(func() {
				for j := range 15 {
					body, v := f.body(j)
					r := h.do("PUT", base, tokenA, body)
					doc.check(t, "PUT", "/v1/webhooks/{id}", r)
					if r.status == http.StatusOK {
						last[i] = v
					}
				}
			})
		}
		wg.Go(func() {
			for j := range 15 {
				body := ""
				if j%4 == 3 {
					body = `{"gracePeriodSeconds":0}`
				}
				r := h.do("POST", base+"/rotate-secret", tokenA, body)
				doc.check(t, "POST", "/v1/webhooks/{id}/rotate-secret", r)
				if r.status == http.StatusOK {
					mu.Lock()
					lastSecret = r.data(t)["secret"].(string)
					secrets = append(secrets, lastSecret)
					mu.Unlock()
				}
			}
		})
		for range 3 {
			wg.Go(func() {
				for j := range 10 {
					if j%2 == 0 {
						doc.check(t, "POST", "/v1/webhooks/{id}/test", h.do("POST", base+"/test", tokenA, ""))
					} else {
						doc.check(t, "POST", "/v1/webhooks/{id}/deliveries/{deliveryId}/retry",
							h.do("POST", base+"/deliveries/"+first+"/retry", tokenA, ""))
					}
				}
			})
		}
		wg.Wait()

		got := h.do("GET", base, tokenA, "").must(t, http.StatusOK).data(t)
		for i, f := range fields {
			if !reflect.DeepEqual(got[f.name], last[i]) {
				t.Errorf("%s is %v; the last update answered 200 set %v", f.name, got[f.name], last[i])
			}
		}
		if w, err := h.st.GetWebhook(context.Background(), id); err != nil || w.Secrets[0].Value != lastSecret {
			t.Errorf("the current secret is not the last rotation's (err %v)", err)
		}
		// Verified now, with every secret answered: a delivery signed with a
		// new secret may reach the receiver before its rotation's answer
		// reaches the client.
		v, err := webhook.NewVerifier(secrets, webhook.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for len(h.recv.got) > 0 {
			if rc := <-h.recv.got; v.Verify(rc.body, rc.header) != nil {
				t.Errorf("a delivery made during the race verifies with no secret answered")
			}
		}
	})
}

// Once a DELETE is answered, the endpoint of a webhook with a backlog
// (one attempt at a time, each slow) gets nothing more after
// webhook.DefaultWebhookCacheTTL.
func TestNothingSentAfterDelete(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, open, options{perWebhook: 1, events: true})
		var (
			mu       sync.Mutex
			arrivals []time.Time
		)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}))
		defer srv.Close()
		id := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+srv.URL+`","events":["*"],"rateLimit":20}`).must(t, http.StatusCreated).data(t)["id"].(string)
		for range 30 {
			h.emit(tokenA, "workflow.completed", `{}`)
		}
		eventually(t, "the backlog to start", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(arrivals) >= 2
		})
		h.do("DELETE", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK)
		deadline := time.Now().Add(webhook.DefaultWebhookCacheTTL + 50*time.Millisecond)
		time.Sleep(2 * webhook.DefaultWebhookCacheTTL)
		mu.Lock()
		defer mu.Unlock()
		for _, at := range arrivals {
			if at.After(deadline) {
				t.Errorf("a request reached the endpoint %v after the DELETE was answered", at.Sub(deadline)+webhook.DefaultWebhookCacheTTL+50*time.Millisecond)
			}
		}
	})
}

// Of ten DELETEs of one webhook at once, one is answered 200 and the
// others 404, as a second DELETE is, on every store.
func TestConcurrentDeletesOfOneWebhook(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		h := newHarness(t, slowReads(open), options{})
		doc := loadDoc(t, h)
		for range 3 {
			id, _ := h.create(tokenA)
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				codes = map[int]int{}
			)
			for range 10 {
				wg.Go(func() {
					r := h.do("DELETE", "/v1/webhooks/"+id, tokenA, "")
					doc.check(t, "DELETE", "/v1/webhooks/{id}", r)
					mu.Lock()
					codes[r.status]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if codes[http.StatusOK] != 1 || codes[http.StatusNotFound] != 9 {
				t.Errorf("ten DELETEs answered %v, want one 200 and nine 404", codes)
			}
		}
	})
}
