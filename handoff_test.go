package webhook

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// countingStore counts the calls the dispatcher makes, and can hold its
// claims until a gate opens.
type countingStore struct {
	store.Store
	claims, releases, released atomic.Int64

	mu       sync.Mutex
	enqueued []store.Delivery // as given to Enqueue, without bodies
	gate     chan struct{}    // when not nil, Claim waits until it is closed
}

func (s *countingStore) Enqueue(ctx context.Context, ds []*store.Delivery) ([]string, error) {
	s.mu.Lock()
	for _, d := range ds {
		c := *d
		c.Body = nil
		s.enqueued = append(s.enqueued, c)
	}
	s.mu.Unlock()
	return s.Store.Enqueue(ctx, ds)
}

func (s *countingStore) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Delivery, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.claims.Add(1)
	return s.Store.Claim(ctx, p)
}

func (s *countingStore) Release(ctx context.Context, p store.ReleaseParams) error {
	err := s.Store.Release(ctx, p)
	s.releases.Add(1)
	s.released.Add(int64(len(p.IDs)))
	return err
}

func (s *countingStore) enqueuedCopy() []store.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Delivery(nil), s.enqueued...)
}

// settled reports whether the dispatcher knows of no unclaimed due work.
func settled(d *Dispatcher) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.duePending() && d.claiming == 0
}

// newGate returns a channel for handlers to wait on and a function that
// closes it, once however often it is called.
func newGate() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// backlog stores n due deliveries of w directly, as a previous process
// would have left them.
func backlog(t *testing.T, st store.Store, w *store.Webhook, n int) {
	t.Helper()
	for range n {
		del := storetest.NewDelivery(w, EventUserLogin)
		del.NextAttemptAt = time.Now().Add(-time.Minute)
		if _, err := st.Enqueue(context.Background(), []*store.Delivery{del}); err != nil {
			t.Fatal(err)
		}
	}
}

// With nothing queued, Emit stores its deliveries leased to the dispatcher
// and hands them to the workers: no claim, no release, and one attempt each.
func TestEmitHandsOffWithoutClaiming(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		cs := &countingStore{Store: newStore(t)}
		// At most 8 events emitted and not yet received: the endpoint
		// keeps up, as it does in a steady state.
		window := make(chan struct{}, 8)
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { <-window })
		addWebhook(t, cs, "a", rc.URL)
		cfg := testConfig()
		cfg.Workers = 8
		cfg.PerWebhookConcurrency = 8
		cfg.PollInterval = time.Hour // no polls during the test
		d := startDispatcher(t, cs, cfg)
		waitFor(t, "the first claim", func() bool { return settled(d) })
		claims := cs.claims.Load()

		const events = 100
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range events / 4 {
					window <- struct{}{}
					if _, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		waitFor(t, "every delivery", func() bool { return d.Stats().Succeeded == events })

		if n := cs.claims.Load() - claims; n != 0 {
			t.Errorf("%d claims while emitting, want none", n)
		}
		if n := cs.releases.Load(); n != 0 {
			t.Errorf("%d releases, want none", n)
		}
		leased := 0
		for _, del := range cs.enqueuedCopy() {
			if del.LeaseOwner == d.cfg.Owner && del.LeaseExpiresAt.After(time.Now()) {
				leased++
			}
		}
		if leased != events {
			t.Errorf("%d of %d deliveries enqueued leased to the dispatcher", leased, events)
		}
		if n := rc.count(); n != events {
			t.Errorf("receiver got %d requests, want %d", n, events)
		}
		ds, _, err := cs.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: "a", Limit: store.MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, del := range ds {
			if del.Status != store.StatusSuccess || del.Attempts != 1 || del.LeaseOwner != "" {
				t.Errorf("delivery %s: %s after %d attempts, leased by %q; want success after 1, no lease", del.ID, del.Status, del.Attempts, del.LeaseOwner)
			}
		}
	})
}

// While deliveries stored earlier wait to be claimed, Emit does not go
// around them: it stores its deliveries unleased, and the claim takes them
// all in due order.
func TestEmitQueuesBehindUnclaimedDeliveries(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		cs := &countingStore{Store: newStore(t), gate: make(chan struct{})}
		rc := newReceiver(t, nil)
		w := addWebhook(t, cs, "a", rc.URL)
		backlog(t, cs.Store, w, 3)
		cfg := testConfig()
		cfg.PollInterval = time.Hour
		d := startDispatcher(t, cs, cfg) // its first claim waits at the gate

		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil {
			t.Fatal(err)
		}
		for _, del := range cs.enqueuedCopy() {
			if del.ID == res.DeliveryIDs[0] && del.LeaseOwner != "" {
				t.Errorf("Emit behind a backlog enqueued its delivery leased to %q, want unleased", del.LeaseOwner)
			}
		}
		cs.mu.Lock()
		close(cs.gate)
		cs.gate = nil
		cs.mu.Unlock()
		waitFor(t, "the backlog and the event", func() bool { return d.Stats().Succeeded == 4 })
	})
}

// A claim that gets more of a webhook's deliveries than its concurrency
// limit lets through parks one more round of them instead of giving their
// leases back, and releases the rest; parked ones start as slots free.
func TestClaimParksDeliveriesOverTheWebhookLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		cs := &countingStore{Store: newStore(t)}
		hold, unhold := newGate()
		defer unhold() // before the receiver's cleanup, which waits for its handlers
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n <= 2 {
				<-hold
			}
		})
		w := addWebhook(t, cs, "a", rc.URL)
		backlog(t, cs.Store, w, 6)
		cfg := testConfig()
		cfg.Workers = 8
		cfg.ClaimBatch = 8
		cfg.PerWebhookConcurrency = 2
		d := startDispatcher(t, cs, cfg)

		waitFor(t, "two attempts in flight and two parked", func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return rc.count() == 2 && d.parked == 2
		})
		if s := d.Stats(); s.InFlight != 2 {
			t.Errorf("Stats().InFlight = %d with 2 sending and 2 parked, want 2", s.InFlight)
		}
		unhold()
		waitFor(t, "every delivery", func() bool { return d.Stats().Succeeded == 6 })
		if n := rc.count(); n != 6 {
			t.Errorf("receiver got %d requests, want 6", n)
		}
		seen := map[string]bool{}
		rc.mu.Lock()
		for _, r := range rc.reqs {
			id := r.header.Get("X-Webhook-Delivery")
			if seen[id] {
				t.Errorf("delivery %s sent twice", id)
			}
			seen[id] = true
		}
		rc.mu.Unlock()
	})
}

// Parked deliveries go back to the store when the dispatcher stops, and
// when they have waited a quarter of their lease.
func TestParkedDeliveriesAreReleased(t *testing.T) {
	for _, stop := range []bool{true, false} {
		name := "Stop"
		if !stop {
			name = "Timeout"
		}
		t.Run(name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
				cs := &countingStore{Store: newStore(t)}
				rc := newHangingReceiver(t)
				w := addWebhook(t, cs, "a", rc.URL)
				backlog(t, cs.Store, w, 4)
				clk := newFakeClock()
				cfg := testConfig()
				cfg.Now = clk.Now
				cfg.Workers = 8
				cfg.ClaimBatch = 8
				cfg.PerWebhookConcurrency = 2
				cfg.Timeout = 30 * time.Second
				cfg.Lease = time.Minute
				d := newStarted(t, cs, cfg)
				parked := func() int {
					d.mu.Lock()
					defer d.mu.Unlock()
					return d.parked
				}
				waitFor(t, "two parked", func() bool { return rc.count() == 2 && parked() == 2 })

				if stop {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					defer cancel()
					d.Stop(ctx)
				} else {
					defer func() {
						ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
						defer cancel()
						d.Stop(ctx)
					}()
					clk.Advance(cfg.Lease/4 + time.Second)
					waitFor(t, "the parked deliveries' release", func() bool { return cs.released.Load() >= 2 })
					if n := parked(); n != 0 {
						t.Errorf("%d deliveries still parked", n)
					}
				}
				if n := cs.released.Load(); n != 2 {
					t.Errorf("%d deliveries released, want the 2 parked", n)
				}
				ds, _, err := cs.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: "a", Status: store.StatusPending, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				unleased := 0
				for _, del := range ds {
					if del.LeaseOwner == "" {
						unleased++
					}
				}
				// After Stop the two in flight are recorded canceled and
				// unleased too; otherwise they are still being sent.
				want := 2
				if stop {
					want = 4
				}
				if unleased != want {
					t.Errorf("%d pending deliveries unleased, want %d", unleased, want)
				}
			})
		})
	}
}

// A webhook at its limit (a slow one) keeps its own deliveries in the
// store, claimed when it frees a slot; the other webhooks' deliveries of
// the same events still go straight to the workers.
func TestSlowWebhookDoesNotStopTheHandOff(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		cs := &countingStore{Store: newStore(t)}
		hold, unhold := newGate()
		defer unhold() // before the receiver's cleanup, which waits for its handlers
		slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { <-hold })
		window := make(chan struct{}, 4)
		fast := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { <-window })
		slowHook := addWebhook(t, cs, "a", slow.URL)
		fastHook := addWebhook(t, cs, "a", fast.URL)
		cfg := testConfig()
		cfg.Workers = 16
		cfg.PerWebhookConcurrency = 4 // the fast one, 4 events at most ahead, never waits
		cfg.PollInterval = time.Hour
		d := startDispatcher(t, cs, cfg)
		waitFor(t, "the first claim", func() bool { return settled(d) })

		const events = 20
		for range events {
			window <- struct{}{}
			if _, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the fast webhook's deliveries", func() bool { return fast.count() == events })
		handed := map[string]int{}
		for _, del := range cs.enqueuedCopy() {
			if del.LeaseOwner != "" {
				handed[del.WebhookID]++
			}
		}
		if n := handed[fastHook.ID]; n != events {
			t.Errorf("%d of the fast webhook's %d deliveries handed to the workers, want all", n, events)
		}
		// The slow one: four sent, four parked, the rest stored for later.
		if n := handed[slowHook.ID]; n != 8 {
			t.Errorf("%d of the slow webhook's deliveries handed over, want 8 (4 sent, 4 parked)", n)
		}
		unhold()
		waitFor(t, "every delivery", func() bool { return d.Stats().Succeeded == 2*events })
		if n := slow.count(); n != events {
			t.Errorf("slow endpoint got %d requests, want %d", n, events)
		}
	})
}

// Whatever Emit hands over while Stop runs is sent and recorded, or given
// back: after Stop no delivery is left leased to the stopped dispatcher.
func TestStopDuringEmitsLeavesNothingLeased(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() })
		addWebhook(t, st, "a", rc.URL)
		cfg := testConfig()
		cfg.Workers = 4
		cfg.PerWebhookConcurrency = 2
		cfg.Timeout = 30 * time.Second
		cfg.Lease = time.Hour
		d := newStarted(t, st, cfg)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 10 {
					if _, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		d.Stop(ctx)
		wg.Wait()
		ds, _, err := st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: "a", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 40 {
			t.Fatalf("%d deliveries stored, want 40", len(ds))
		}
		for _, del := range ds {
			if del.LeaseOwner != "" {
				t.Errorf("delivery %s (%s) still leased by %q after Stop", del.ID, del.Status, del.LeaseOwner)
			}
		}
	})
}

// TestClaimRoom checks when the loop claims: only with deliveries maybe
// due, a claim to spare, and a batch's worth of free workers.
func TestClaimRoom(t *testing.T) {
	d, err := New(newMemStore(t), &Config{Workers: 16, ClaimBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range []struct {
		name                                 string
		due                                  bool
		claiming, sending, inflight, reserve int
		want                                 int
	}{
		{name: "nothing due", due: false, want: 0},
		{name: "idle", due: true, want: 16},
		{name: "claims at their limit", due: true, claiming: maxClaims, want: 0},
		{name: "a few workers free", due: true, sending: 29, inflight: 29, want: 0},
		{name: "a batch's worth free", due: true, sending: 28, inflight: 28, want: 4},
		{name: "reserved by a claim", due: true, sending: 20, inflight: 20, reserve: 10, claiming: 1, want: 0},
		{name: "answered, waiting for their record", due: true, inflight: maxInflight(16) - 2, want: 2},
		{name: "every slot in flight", due: true, inflight: maxInflight(16), want: 0},
	} {
		d.clearSeq = d.dueSeq
		if c.due {
			d.dueSeq++
		}
		d.claiming, d.sending, d.inflight, d.reserved = c.claiming, c.sending, c.inflight, c.reserve
		if got := d.claimRoom(); got != c.want {
			t.Errorf("%s: claimRoom() = %d, want %d", c.name, got, c.want)
		}
	}
}

// A rate-limited webhook's delivery is handed over when its slot has come,
// and takes the slot: the next one, emitted at once, waits for the next
// slot and is claimed then.
func TestRateLimitedHandOff(t *testing.T) {
	cs := &countingStore{Store: newMemStore(t)}
	rc := newReceiver(t, nil)
	w := addWebhook(t, cs, "a", rc.URL)
	w.RateLimit = 4 // one every 250ms
	saveWebhook(t, cs, w)
	cfg := testConfig()
	cfg.PollInterval = time.Hour // no polls during the test
	d := startDispatcher(t, cs, cfg)
	waitFor(t, "the first claim", func() bool { return settled(d) })
	claims := cs.claims.Load()

	start := time.Now()
	first, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, first.DeliveryIDs[0], store.StatusSuccess, 1)
	if n := cs.claims.Load() - claims; n != 0 {
		t.Errorf("%d claims for a delivery whose slot had come, want none", n)
	}
	second, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, second.DeliveryIDs[0], store.StatusSuccess, 1)
	if el := time.Since(start); el < 240*time.Millisecond {
		t.Errorf("two deliveries at 4/s in %v, want at least 250ms apart", el)
	}
	if cs.claims.Load() == claims {
		t.Error("the second delivery was not claimed: it went around the rate limit")
	}
	if n := rc.count(); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}
