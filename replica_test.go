package webhook

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore"
	"github.com/noa-server/webhook/store/pgstore/pgstoretest"
)

// openReplicas returns a pgstore Store in a fresh schema and another on
// the same schema, each on a pool of its own, as two replicas open them.
// It skips the test without the test database.
func openReplicas(t *testing.T) (*pgstore.Store, *pgstore.Store) {
	t.Helper()
	if pgstoretest.URL() == "" {
		t.Skip(pgstoretest.SkipMessage)
	}
	a := pgstoretest.Open(t, "webhook_test_")
	return a, pgstoretest.Replica(t, a)
}

// withoutWakeUps is a replica's view of its store without the store's
// WakeUps: the replica claims only when it polls or emits.
type withoutWakeUps struct{ store.Store }

// heldReads is a replica's view of its store in which, once hold is set,
// every webhook read waits until release is closed, as on a database slow
// to answer or a pool with no connection free. It hides the store's
// WakeUps, so the replica claims only when it polls or emits.
type heldReads struct {
	store.Store
	hold    atomic.Bool
	held    chan string // the webhook id of each read held
	release <-chan struct{}
}

func (h *heldReads) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	if h.hold.Load() {
		h.held <- id
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	}
	return h.Store.GetWebhook(ctx, id)
}

// TestPGLeaseCheckedAfterWebhookRead: a replica reads the webhook of an
// attempt from the store after checking that the delivery's lease outlasts
// the attempt. When that read takes longer than the lease (a slow
// database, an exhausted pool), another replica claims the delivery and
// sends it; the first must then not send the same attempt too, at the same
// time: it gives the delivery up. Both replicas share a clock the test
// moves past the lease while the read waits.
func TestPGLeaseCheckedAfterWebhookRead(t *testing.T) {
	stA, stB := openReplicas(t)
	rc := newReceiver(t, nil)
	addWebhook(t, stA, "a", rc.URL)
	clock := newFakeClock()

	release, unblock := newGate()
	t.Cleanup(unblock)
	slow := &heldReads{Store: stA, held: make(chan string, 4), release: release}
	cfgA := testConfig()
	cfgA.Owner, cfgA.UserAgent, cfgA.Now = "replica-a", "replica-a", clock.Now
	cfgA.PollInterval = time.Hour // claims only when it emits: hands its deliveries off
	cfgA.WebhookCacheTTL = -1     // every attempt reads its webhook
	a := startDispatcher(t, slow, cfgA)
	cfgB := testConfig()
	cfgB.Owner, cfgB.UserAgent, cfgB.Now = "replica-b", "replica-b", clock.Now
	startDispatcher(t, stB, cfgB)

	waitFor(t, "replica a's first claim", func() bool { return settled(a) })
	slow.hold.Store(true)
	res, err := a.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
	if err != nil || len(res.DeliveryIDs) != 1 {
		t.Fatalf("Emit = %+v, %v", res, err)
	}
	id := res.DeliveryIDs[0]
	select {
	case <-slow.held:
	case <-time.After(15 * time.Second):
		t.Fatal("replica a never read the webhook of its attempt")
	}
	if d, err := stA.GetDelivery(context.Background(), id); err != nil || d.LeaseOwner != "replica-a" {
		t.Fatalf("delivery while a reads its webhook: %+v, %v; want leased to replica-a", d, err)
	}

	// The read outlasts a's lease: b claims the delivery and sends it.
	clock.Advance(cfgA.Timeout + time.Minute + time.Second)
	if r := rc.next(t); r.header.Get("User-Agent") != "replica-b" || r.header.Get("X-Webhook-Delivery") != id {
		t.Fatalf("first request: %v, want replica-b's of %s", r.header, id)
	}
	waitStatus(t, stB, id, store.StatusSuccess, 1)
	unblock()

	// Stop waits for a's attempt, whatever became of it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	rc.mu.Lock()
	for _, r := range rc.reqs[1:] {
		t.Errorf("%s sent attempt %s of the delivery again, after its lease ran out",
			r.header.Get("User-Agent"), r.header.Get("X-Webhook-Attempt"))
	}
	rc.mu.Unlock()
	if as := attempts(t, stB, id); len(as) != 1 || as[0].ResponseStatus != http.StatusOK {
		t.Errorf("attempts recorded: %d, want b's one", len(as))
	}
	if s := a.Stats(); s.Attempts != 0 {
		t.Errorf("replica a counts %d attempts, want none", s.Attempts)
	}
}

// TestPGLeaseLostMidAttempt: a replica's lease runs out while its attempt
// is in flight (the replicas' shared clock jumps past it), and another
// replica claims the delivery and sends it again, with the same attempt
// number. The first replica's record comes after the other's, or while
// the other's attempt is in flight: either way the store refuses it
// (store.ErrLeaseLost) and changes nothing. The attempt log holds the
// other replica's attempt only, the delivery succeeded once, and the
// counts agree: the first replica counts an attempt with no outcome, the
// other one success.
func TestPGLeaseLostMidAttempt(t *testing.T) {
	for _, tt := range []struct {
		name string
		// bFirst: b's attempt is recorded before a's answer comes; else a
		// is answered while b's attempt is in flight.
		bFirst bool
	}{
		{"answered after the other replica recorded", true},
		{"answered while the other replica's attempt is in flight", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stA, stB := openReplicas(t)
			gateA, releaseA := newGate()
			gateB, releaseB := newGate()
			if tt.bFirst {
				releaseB()
			}
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.UserAgent() == "replica-a" {
					<-gateA
				} else {
					<-gateB
				}
			})
			t.Cleanup(releaseA) // before the receiver closes
			t.Cleanup(releaseB)
			w := addWebhook(t, stA, "a", rc.URL)
			clock := newFakeClock()
			hooksA, hooksB := &recordingHooks{}, &recordingHooks{}
			cfg := func(name string, hooks Hooks) *Config {
				c := testConfig()
				c.Owner, c.UserAgent, c.Now, c.Hooks = name, name, clock.Now, hooks
				return c
			}
			// a claims only when it emits: once its lease has run out, it
			// would claim the delivery back from under b otherwise.
			cfgA := cfg("replica-a", hooksA)
			cfgA.PollInterval = time.Hour
			a := startDispatcher(t, withoutWakeUps{stA}, cfgA)
			res, err := a.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
			if err != nil || len(res.DeliveryIDs) != 1 {
				t.Fatalf("Emit = %+v, %v", res, err)
			}
			id := res.DeliveryIDs[0]
			if r := rc.next(t); r.header.Get("User-Agent") != "replica-a" {
				t.Fatalf("first request from %q, want replica-a", r.header.Get("User-Agent"))
			}
			// Its claims are over (the one at Start may have found the
			// delivery, and a second follow it), or one at the new time
			// would claim the delivery back.
			waitFor(t, "replica a to stop claiming", func() bool { return settled(a) })

			// a's lease runs out mid-attempt; b, started now, takes over.
			clock.Advance(testConfig().Timeout + time.Minute + time.Second)
			b := startDispatcher(t, stB, cfg("replica-b", hooksB))
			if r := rc.next(t); r.header.Get("User-Agent") != "replica-b" || r.header.Get("X-Webhook-Attempt") != "1" {
				t.Fatalf("second request: %v, want replica-b's attempt 1", r.header)
			}
			if tt.bFirst {
				waitStatus(t, stA, id, store.StatusSuccess, 1)
			}
			releaseA()
			waitFor(t, "replica a's attempt to finish", func() bool { return hooksA.count("finished") == 1 })
			if info := hooksA.lastFinished(); info.Outcome != "" || info.StatusCode != http.StatusOK {
				t.Errorf("a's AttemptFinished: outcome %q, status %d; want none (not recorded), 200", info.Outcome, info.StatusCode)
			}
			releaseB()
			waitStatus(t, stA, id, store.StatusSuccess, 1)
			waitFor(t, "replica b's attempt to finish", func() bool { return hooksB.count("finished") == 1 })

			as := attempts(t, stA, id)
			if len(as) != 1 || as[0].RequestHeaders.Get("User-Agent") != "replica-b" || as[0].ResponseStatus != http.StatusOK {
				t.Errorf("attempt log: %d attempts, want b's one", len(as))
			}
			if c, err := stB.CountDeliveries(context.Background(), w.ID); err != nil || c != (store.Counts{Success: 1}) {
				t.Errorf("CountDeliveries = %+v, %v; want one success", c, err)
			}
			sa, sb := a.Stats(), b.Stats()
			if sa.Attempts != 1 || sa.Succeeded+sa.Failed+sa.Retried != 0 || hooksA.count("succeeded") != 0 {
				t.Errorf("replica a: %d attempts, %d succeeded, %d failed, %d retried, %d DeliverySucceeded; want 1 attempt, no outcome",
					sa.Attempts, sa.Succeeded, sa.Failed, sa.Retried, hooksA.count("succeeded"))
			}
			if sb.Attempts != 1 || sb.Succeeded != 1 || hooksB.count("succeeded") != 1 {
				t.Errorf("replica b: %d attempts, %d succeeded, %d DeliverySucceeded; want 1, 1, 1",
					sb.Attempts, sb.Succeeded, hooksB.count("succeeded"))
			}
		})
	}
}
