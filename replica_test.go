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
