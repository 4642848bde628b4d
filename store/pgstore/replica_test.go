package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	webhook "github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore"
	"github.com/noa-server/webhook/store/storetest"
)

// errKilled is what a killed replica's store returns.
var errKilled = errors.New("replica killed")

// killable is a replica's view of the store that can be cut off at once,
// as if the process died: from then on it reads and writes nothing, so the
// leases it holds stay in the database until they expire.
type killable struct {
	store.Store
	dead atomic.Bool
}

func (k *killable) alive() error {
	if k.dead.Load() {
		return errKilled
	}
	return nil
}

func (k *killable) Ping(ctx context.Context) error {
	if err := k.alive(); err != nil {
		return err
	}
	return k.Store.Ping(ctx)
}

func (k *killable) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	if err := k.alive(); err != nil {
		return nil, err
	}
	return k.Store.GetWebhook(ctx, id)
}

func (k *killable) MatchWebhooks(ctx context.Context, tenant, eventType string) ([]*store.Webhook, error) {
	if err := k.alive(); err != nil {
		return nil, err
	}
	return k.Store.MatchWebhooks(ctx, tenant, eventType)
}

func (k *killable) UpdateWebhook(ctx context.Context, id string, change func(*store.Webhook) error) (*store.Webhook, error) {
	if err := k.alive(); err != nil {
		return nil, err
	}
	return k.Store.UpdateWebhook(ctx, id, change)
}

func (k *killable) Enqueue(ctx context.Context, ds []*store.Delivery) ([]string, error) {
	if err := k.alive(); err != nil {
		return nil, err
	}
	return k.Store.Enqueue(ctx, ds)
}

func (k *killable) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Delivery, error) {
	if err := k.alive(); err != nil {
		return nil, err
	}
	return k.Store.Claim(ctx, p)
}

func (k *killable) Complete(ctx context.Context, p store.CompleteParams) error {
	if err := k.alive(); err != nil {
		return err
	}
	return k.Store.Complete(ctx, p)
}

func (k *killable) Release(ctx context.Context, p store.ReleaseParams) error {
	if err := k.alive(); err != nil {
		return err
	}
	return k.Store.Release(ctx, p)
}

func (k *killable) GetDelivery(ctx context.Context, id string) (*store.Delivery, error) {
	if err := k.alive(); err != nil {
		return nil, err
	}
	return k.Store.GetDelivery(ctx, id)
}

func (k *killable) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if err := k.alive(); err != nil {
		return 0, err
	}
	return k.Store.Purge(ctx, p)
}

// receiver is the consumers' endpoint. It counts 2xx answers per
// (webhook path, event id). In the second phase it holds every request
// from the victim replica (told apart by its User-Agent) without answering
// until the request's context ends, as a hung replica would see it.
type receiver struct {
	victimUA string
	holding  atomic.Bool
	release  chan struct{}

	mu      sync.Mutex
	ok      map[string]int
	victim  map[string]bool // keys the victim sent while held
	changed chan struct{}   // signalled after every request
}

func newReceiver(victimUA string) *receiver {
	return &receiver{victimUA: victimUA, release: make(chan struct{}), ok: make(map[string]int),
		victim: make(map[string]bool), changed: make(chan struct{}, 1)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var payload struct {
		ID string `json:"id"`
	}
	if err != nil || json.Unmarshal(body, &payload) != nil || payload.ID == "" {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	key := r.URL.Path + " " + payload.ID
	if r.UserAgent() == rc.victimUA && rc.holding.Load() {
		rc.mu.Lock()
		rc.victim[key] = true
		rc.mu.Unlock()
		rc.signal()
		select {
		case <-r.Context().Done():
		case <-rc.release:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	rc.mu.Lock()
	rc.ok[key]++
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	rc.signal()
}

func (rc *receiver) signal() {
	select {
	case rc.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds (checked under the lock after every
// request), failing the test after a generous deadline.
func (rc *receiver) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		rc.mu.Lock()
		done := cond()
		rc.mu.Unlock()
		if done {
			return
		}
		select {
		case <-rc.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestPGReplicas runs three dispatchers on one schema. Every delivery
// reaches its endpoint exactly once while all replicas live; then one
// replica hangs and dies holding leases, and the others deliver its work,
// each delivery once, after its leases expire.
func TestPGReplicas(t *testing.T) {
	schema := freshSchema(t)
	const (
		tenant   = "tenant_replicas"
		events1  = 100 // phase one: 300 deliveries (3 webhooks)
		events2  = 40  // phase two: 120 deliveries
		victimUA = "replica-c"
	)
	rc := newReceiver(victimUA)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	defer close(rc.release)

	base := newStoreIn(t, schema)
	var hooks []*store.Webhook
	for i := range 3 {
		w := storetest.NewWebhook(tenant)
		w.URL = fmt.Sprintf("%s/w%d", srv.URL, i)
		w.Events = []string{"*"}
		w.MaxAttempts, w.RateLimit = 0, 0
		if err := base.CreateWebhook(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		hooks = append(hooks, w)
	}

	cfg := func(name string, timeout, lease time.Duration) *webhook.Config {
		return &webhook.Config{
			Owner: name, UserAgent: name, Timeout: timeout, Lease: lease,
			PollInterval: 100 * time.Millisecond, Workers: 8, PerWebhookConcurrency: 4,
			Retry:     webhook.RetryPolicy{InitialInterval: 100 * time.Millisecond, Jitter: -1},
			Retention: -1,
		}
	}
	victimStore := &killable{Store: newStoreIn(t, schema)}
	replicas := []struct {
		s   store.Store
		cfg *webhook.Config
	}{
		{newStoreIn(t, schema), cfg("replica-a", 20*time.Second, time.Minute)},
		{newStoreIn(t, schema), cfg("replica-b", 20*time.Second, time.Minute)},
		// The victim's lease is short, so the others take over quickly.
		{victimStore, cfg(victimUA, 2*time.Second, 3*time.Second)},
	}
	var ds []*webhook.Dispatcher
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, r := range replicas {
		d := startReplica(t, ctx, r.s, r.cfg)
		ds = append(ds, d)
	}
	defer func() {
		for i, d := range ds {
			sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
			// The victim's Stop cannot record or release anything: ignore it.
			if err := d.Stop(sctx); err != nil && i < 2 {
				t.Errorf("Stop of a live replica: %v", err)
			}
			c()
		}
	}()

	emit := func(d *webhook.Dispatcher, n int) []string {
		var keys []string
		for range n {
			ev := webhook.Event{Type: "workflow.completed", Tenant: tenant, Data: map[string]any{"workflowId": "wf_1"}}
			ev.ID = storetest.NewID("evt_")
			if _, err := d.Emit(ctx, ev); err != nil {
				t.Fatalf("Emit: %v", err)
			}
			for i := range hooks {
				keys = append(keys, fmt.Sprintf("/w%d %s", i, ev.ID))
			}
		}
		return keys
	}
	allOnce := func(keys []string) func() bool {
		return func() bool {
			for _, k := range keys {
				if rc.ok[k] == 0 {
					return false
				}
			}
			return true
		}
	}
	checkOnce := func(phase string, keys []string) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		twice := 0
		for _, k := range keys {
			if rc.ok[k] != 1 {
				twice++
			}
		}
		if twice > 0 {
			t.Errorf("%s: %d of %d deliveries answered 2xx more than once", phase, twice, len(keys))
		}
	}

	// Phase one: every replica emits; every delivery arrives once.
	start := time.Now()
	var keys1 []string
	for i := range events1 {
		keys1 = append(keys1, emit(ds[i%len(ds)], 1)...)
	}
	t.Logf("phase one emitted: %v", time.Since(start))
	rc.waitFor(t, "phase one deliveries", allOnce(keys1))
	t.Logf("phase one: %v", time.Since(start))
	checkOnce("phase one", keys1)

	// Phase two: the victim hangs on every request, then dies holding its
	// leases; the others must deliver its deliveries after they expire.
	rc.holding.Store(true)
	keys2 := emit(ds[2], events2) // the victim's own emits wake it first
	rc.waitFor(t, "the victim to send", func() bool { return len(rc.victim) > 0 })
	victimStore.dead.Store(true)
	t.Logf("victim killed: %v", time.Since(start))
	rc.waitFor(t, "phase two deliveries", allOnce(keys2))
	t.Logf("phase two: %v", time.Since(start))
	checkOnce("phase two", keys2)
	rc.mu.Lock()
	taken := len(rc.victim)
	for k := range rc.victim {
		if rc.ok[k] != 1 {
			t.Errorf("%s, held by the dead replica, was answered %d times by the others", k, rc.ok[k])
		}
	}
	rc.mu.Unlock()
	t.Logf("the dead replica held %d deliveries; the others delivered them", taken)

	defer func() { t.Logf("end: %v", time.Since(start)) }()
	// Every delivery is recorded as a success after one attempt: the dead
	// replica's attempts were never recorded, and nothing was sent twice.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var all []*store.Delivery
		cursor := ""
		for {
			page, next, err := base.ListDeliveries(t.Context(), store.ListDeliveriesParams{Tenant: tenant, Cursor: cursor, Limit: store.MaxPageLimit})
			if err != nil {
				t.Fatal(err)
			}
			all, cursor = append(all, page...), next
			if next == "" {
				break
			}
		}
		bad := 0
		for _, d := range all {
			if d.Status != store.StatusSuccess || d.Attempts != 1 {
				bad++
			}
		}
		if len(all) == len(keys1)+len(keys2) && bad == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries stored, %d not a success after exactly one attempt; want %d successes",
				len(all), bad, len(keys1)+len(keys2))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPGReplicaWakeUp checks that a dispatcher on pgstore is woken by
// another replica's Emit (pgstore's WakeUps) instead of waiting for its next
// poll: its poll interval is an hour, and the delivery must arrive within a
// minute.
func TestPGReplicaWakeUp(t *testing.T) {
	schema := freshSchema(t)
	const tenant = "tenant_wakeup"
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		select {
		case got <- r.Header.Get("X-Webhook-Delivery"):
		default:
		}
	}))
	defer srv.Close()

	emitterStore, sleeperStore := newStoreIn(t, schema), newStoreIn(t, schema)
	w := storetest.NewWebhook(tenant)
	w.URL, w.Events, w.MaxAttempts, w.RateLimit = srv.URL+"/hook", []string{"*"}, 0, 0
	if err := emitterStore.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	cfg := func(owner string) *webhook.Config {
		return &webhook.Config{Owner: owner, PollInterval: time.Hour, Retention: -1}
	}
	// The emitting replica never starts its delivery loop.
	emitter, err := webhook.New(emitterStore, cfg("emitter"))
	if err != nil {
		t.Fatal(err)
	}
	sleeper := startReplica(t, t.Context(), sleeperStore, cfg("sleeper"))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sleeper.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}()

	// The sleeper's first claim (at Start) should find nothing: give it a
	// moment (if it were late, the test would pass without a wake-up, never
	// fail spuriously). Its listener may
	// not be connected yet when the first event is stored (a wake-up sent
	// before it listens is lost), so emit one event a second until one is
	// delivered: without wake-ups none would be before the hour is up.
	time.Sleep(300 * time.Millisecond)
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		res, err := emitter.Emit(t.Context(), webhook.Event{
			Type: webhook.EventWorkflowCompleted, Tenant: tenant, ID: fmt.Sprintf("evt_wake_%d", i),
			Data: json.RawMessage(`{"n":1}`),
		})
		if err != nil {
			t.Fatalf("Emit: %v", err)
		}
		if len(res.DeliveryIDs) != 1 {
			t.Fatalf("Emit stored %d deliveries, want 1", len(res.DeliveryIDs))
		}
		select {
		case id := <-got:
			if id == "" {
				t.Fatal("delivery without X-Webhook-Delivery")
			}
			return
		case <-tick.C:
		case <-deadline:
			t.Fatal("no delivery within a minute: the sleeping replica was not woken")
		}
	}
}

// TestPGStopRecordsAnsweredAttempt stops a replica, with a context that
// ends at once, while it records an answered attempt (the record waits for
// a row lock the test holds). Stop promises to wait a few seconds for the
// record even then: the delivery must end up a success after one attempt,
// its lease released, not left leased with the 2xx forgotten (another
// replica would send it again once the lease expired).
func TestPGStopRecordsAnsweredAttempt(t *testing.T) {
	schema := freshSchema(t)
	pool := testPool(t)
	const tenant = "tenant_stop_record"
	locked := make(chan pgx.Tx, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Lock the delivery's row before answering, so the record waits.
		tx, err := pool.Begin(context.Background())
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := tx.Exec(context.Background(), "SELECT 1 FROM "+pgx.Identifier{schema}.Sanitize()+
			".deliveries WHERE id = $1 FOR UPDATE", r.Header.Get("X-Webhook-Delivery")); err != nil {
			t.Error(err)
		}
		locked <- tx
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	st := newStoreIn(t, schema)
	w := storetest.NewWebhook(tenant)
	w.URL, w.Events, w.MaxAttempts, w.RateLimit = srv.URL+"/hook", []string{"*"}, 0, 0
	if err := st.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	d := startReplica(t, t.Context(), st, &webhook.Config{Owner: "stopping", Retention: -1})
	res, err := d.Emit(t.Context(), webhook.Event{Type: webhook.EventWorkflowCompleted, Tenant: tenant, Data: map[string]any{"workflowId": "wf_1"}})
	if err != nil || len(res.DeliveryIDs) != 1 {
		t.Fatalf("Emit: %v, %v", res, err)
	}
	var tx pgx.Tx
	select {
	case tx = <-locked:
	case <-time.After(30 * time.Second):
		t.Fatal("no attempt within 30 s")
	}
	defer tx.Rollback(context.Background())
	// Wait for the record to wait for the lock.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, schema).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the attempt's record never waited for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}

	stopped := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	go func() { stopped <- d.Stop(ctx) }()
	// Stop gives up waiting at once and cancels what is in flight; the
	// lock goes a moment later, well within "a few seconds".
	time.Sleep(500 * time.Millisecond)
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Stop = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return")
	}
	got, err := st.GetDelivery(t.Context(), res.DeliveryIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusSuccess || got.Attempts != 1 || got.LeaseOwner != "" {
		t.Errorf("after Stop: status %s, %d attempts, lease owner %q; want success, 1 attempt, no lease",
			got.Status, got.Attempts, got.LeaseOwner)
	}
}

// TestPGLeaseOutlivesQueuedAttempt runs a replica with one worker and a
// lease just above its timeout: an Emit to two hung webhooks hands both
// deliveries to its workers, and the second waits a whole timeout for the
// worker. Its lease must not run out while it is sent (another replica
// would claim it and send it too, and the first attempt's record would be
// refused): every request an endpoint receives is a recorded attempt.
func TestPGLeaseOutlivesQueuedAttempt(t *testing.T) {
	schema := freshSchema(t)
	const tenant = "tenant_lease_queue"
	var (
		mu       sync.Mutex
		requests = make(map[string]int) // delivery id -> requests received
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests[r.Header.Get("X-Webhook-Delivery")]++
		mu.Unlock()
		io.Copy(io.Discard, r.Body) // so the server sees the client leave
		<-r.Context().Done()        // hung until the attempt times out
	}))
	defer srv.Close()

	st := newStoreIn(t, schema)
	for i := range 2 {
		w := storetest.NewWebhook(tenant)
		w.URL, w.Events, w.MaxAttempts, w.RateLimit = fmt.Sprintf("%s/w%d", srv.URL, i), []string{"*"}, 1, 0
		if err := st.CreateWebhook(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(owner string, workers int) *webhook.Config {
		return &webhook.Config{Owner: owner, Workers: workers, Timeout: time.Second, Lease: 1500 * time.Millisecond,
			PollInterval: 50 * time.Millisecond, Retention: -1}
	}
	var ds []*webhook.Dispatcher
	for _, c := range []*webhook.Config{cfg("one-worker", 1), cfg("other", 4)} {
		ds = append(ds, startReplica(t, t.Context(), newStoreIn(t, schema), c))
	}
	defer func() {
		for _, d := range ds {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := d.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
			cancel()
		}
	}()
	time.Sleep(300 * time.Millisecond) // the first claims find nothing
	res, err := ds[0].Emit(t.Context(), webhook.Event{Type: webhook.EventWorkflowCompleted, Tenant: tenant, Data: map[string]any{"workflowId": "wf_1"}})
	if err != nil || len(res.DeliveryIDs) != 2 {
		t.Fatalf("Emit: %v, %v", res, err)
	}
	for _, id := range res.DeliveryIDs {
		waitFinished(t, st, id)
	}
	time.Sleep(500 * time.Millisecond) // any late request arrives
	mu.Lock()
	defer mu.Unlock()
	for _, id := range res.DeliveryIDs {
		as, err := st.ListAttempts(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if requests[id] != len(as) {
			t.Errorf("delivery %s: the endpoint received %d requests, %d attempts are recorded", id, requests[id], len(as))
		}
	}
}

// waitFinished waits for delivery id to succeed or fail.
func waitFinished(t *testing.T, st store.Store, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := st.GetDelivery(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.Finished() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s still %s after 30 s", id, d.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPGReplicasOnTinyPools runs three dispatchers on one schema, each
// with eight workers on a pool of one connection (and the one its wake-up
// listener holds), so nearly every call waits for a connection. Events
// emitted through all of them at once go to a webhook that answers 204
// and to one that always answers 500 (three attempts each). Nothing hangs,
// and every count agrees: the endpoints' requests, the attempt logs,
// CountDeliveries and the sum of the dispatchers' Stats.
func TestPGReplicasOnTinyPools(t *testing.T) {
	schema := freshSchema(t)
	const (
		tenant   = "tenant_tiny"
		events   = 60
		attempts = 3
	)
	var (
		mu       sync.Mutex
		requests = make(map[string]int) // delivery id -> requests received
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests[r.Header.Get("X-Webhook-Delivery")]++
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	base := newStoreIn(t, schema)
	var ok, fail *store.Webhook
	for _, p := range []string{"/ok", "/fail"} {
		w := storetest.NewWebhook(tenant)
		w.URL, w.Events, w.MaxAttempts, w.RateLimit = srv.URL+p, []string{"*"}, attempts, 0
		if err := base.CreateWebhook(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		if p == "/ok" {
			ok = w
		} else {
			fail = w
		}
	}
	var ds []*webhook.Dispatcher
	for i := range 3 {
		cfg, err := pgxpool.ParseConfig(testURL(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		st, err := pgstore.New(t.Context(), pool, pgstore.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() }) // before the pool closes
		d := startReplica(t, t.Context(), st, &webhook.Config{
			Owner: fmt.Sprint("tiny-", i), Workers: 8, PollInterval: 20 * time.Millisecond, Retention: -1,
			Retry: webhook.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Jitter: -1},
		})
		ds = append(ds, d)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, d := range ds {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := d.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
			cancel()
		}
	}
	defer stop()

	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() {
			for j := range events / len(ds) {
				ev := webhook.Event{Type: "workflow.completed", Tenant: tenant, ID: fmt.Sprintf("evt_tiny_%d_%d", i, j),
					Data: map[string]any{"workflowId": "wf_1"}}
				if _, err := d.Emit(t.Context(), ev); err != nil {
					t.Errorf("Emit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := map[string]store.Counts{ok.ID: {Success: events}, fail.ID: {Failed: events}}
	deadline := time.Now().Add(30 * time.Second)
	for id, c := range want {
		for {
			got, err := base.CountDeliveries(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got == c {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CountDeliveries(%s) = %+v, want %+v", id, got, c)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stop()

	type totals struct{ Attempts, Succeeded, Failed, Retried int64 }
	var sum totals
	for _, d := range ds {
		s := d.Stats()
		sum.Attempts += s.Attempts
		sum.Succeeded += s.Succeeded
		sum.Failed += s.Failed
		sum.Retried += s.Retried
	}
	wantSum := totals{Attempts: events * (1 + attempts), Succeeded: events, Failed: events, Retried: events * (attempts - 1)}
	if sum != wantSum {
		t.Errorf("the dispatchers' Stats add up to %+v, want %+v", sum, wantSum)
	}
	all, _, err := base.ListDeliveries(t.Context(), store.ListDeliveriesParams{Tenant: tenant, Limit: store.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, del := range all {
		as, err := base.ListAttempts(t.Context(), del.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 1
		if del.WebhookID == fail.ID {
			n = attempts
		}
		if requests[del.ID] != n || len(as) != n || del.Attempts != n {
			t.Errorf("delivery %s to %s: %d requests, %d attempts logged, Attempts %d; want %d",
				del.ID, del.WebhookID, requests[del.ID], len(as), del.Attempts, n)
		}
	}
}

// TestPGStopOnExhaustedPool stops a replica while the record of an
// answered attempt waits for a connection: the host holds the only one of
// the replica's pool. Stop, its context ended, waits a few seconds
// (recordGrace, five) for the record, then gives up and returns: it does
// not hang on the pool. The record is lost, not the delivery: it stays
// leased, to be attempted again once the lease expires.
func TestPGStopOnExhaustedPool(t *testing.T) {
	schema := freshSchema(t)
	const tenant = "tenant_exhausted"
	arrived := make(chan struct{}, 1)
	answer := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-answer
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	cfg, err := pgxpool.ParseConfig(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st, err := pgstore.New(t.Context(), pool, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close() // before the pool closes
	w := storetest.NewWebhook(tenant)
	w.URL, w.Events, w.MaxAttempts, w.RateLimit = srv.URL, []string{"*"}, 0, 0
	if err := st.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	// No poll and no wake-ups (recording hides them): once its attempt is
	// under way, only its record uses the pool.
	rec := &recording{Store: st, completing: make(chan struct{}, 1)}
	d := startReplica(t, t.Context(), rec, &webhook.Config{Owner: "exhausted", PollInterval: time.Hour, Retention: -1})
	res, err := d.Emit(t.Context(), webhook.Event{Type: webhook.EventWorkflowCompleted, Tenant: tenant, Data: map[string]any{"workflowId": "wf_1"}})
	if err != nil || len(res.DeliveryIDs) != 1 {
		t.Fatalf("Emit: %v, %v", res, err)
	}
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no attempt within 20 s")
	}
	conn, err := pool.Acquire(t.Context()) // the host takes the pool's only connection
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(conn.Release)
	defer release() // before the pool closes
	close(answer)
	select {
	case <-rec.completing: // and waits for a connection
	case <-time.After(20 * time.Second):
		t.Fatal("the answered attempt was not recorded")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(ctx) }()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Stop = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		release()
		<-stopped
		t.Fatal("Stop hung on the exhausted pool")
	}
	if n := pool.Stat().CanceledAcquireCount(); n != 1 {
		t.Errorf("%d waits for a connection were given up, want the record's", n)
	}
	release()
	got, err := st.GetDelivery(t.Context(), res.DeliveryIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusPending || got.Attempts != 0 || got.LeaseOwner != "exhausted" {
		t.Errorf("after Stop: %s, %d attempts, leased by %q; want pending, unrecorded, leased until its lease expires",
			got.Status, got.Attempts, got.LeaseOwner)
	}
}

// recording is a replica's view of its store that signals on completing
// each time Complete is called. It hides the store's WakeUps.
type recording struct {
	store.Store
	completing chan struct{}
}

func (r *recording) Complete(ctx context.Context, p store.CompleteParams) error {
	select {
	case r.completing <- struct{}{}:
	default:
	}
	return r.Store.Complete(ctx, p)
}

// startReplica starts a dispatcher on st with cfg, made to reach the
// tests' loopback receivers; the caller stops it.
func startReplica(t *testing.T, ctx context.Context, st store.Store, cfg *webhook.Config) *webhook.Dispatcher {
	t.Helper()
	cfg.AllowedRanges = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cfg.AllowAnyPort = true
	d, err := webhook.New(st, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return d
}
