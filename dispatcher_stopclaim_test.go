package webhook

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
)

// answerLost is a store whose Claim, once it has started, waits for its
// context to end or for proceed, then claims; when its context has ended
// meanwhile it returns the context's error all the same: a database whose
// claim committed while its answer was lost to a cancelled query.
type answerLost struct {
	store.Store
	started chan struct{}
	proceed chan struct{}
	once    sync.Once
}

func (s *answerLost) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Delivery, error) {
	s.once.Do(func() { close(s.started) })
	select {
	case <-ctx.Done():
	case <-s.proceed:
	}
	ds, err := s.Store.Claim(context.WithoutCancel(ctx), p)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return ds, err
}

// TestStopLetsClaimInFlightEnd: a claim in flight when Stop begins runs to
// its end, and Stop gives back what it leased, as it gives back every
// delivery claimed and not sent. Cancelling the claim instead could leave
// deliveries leased and unsent until their leases expired: a store may
// commit a claim whose answer the cancellation loses.
func TestStopLetsClaimInFlightEnd(t *testing.T) {
	ctx := context.Background()
	st := &answerLost{Store: memstore.New(), started: make(chan struct{}), proceed: make(chan struct{})}
	rc := newHangingReceiver(t)
	w := addWebhook(t, st, "a", rc.URL)
	now := time.Now()
	del := &store.Delivery{ID: "del_claimed_at_stop", WebhookID: w.ID, EventID: "evt_1", EventType: EventUserLogin,
		Tenant: "a", Body: []byte(`{}`), NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
	if _, err := st.Enqueue(ctx, []*store.Delivery{del}); err != nil {
		t.Fatal(err)
	}
	d := newStarted(t, st, testConfig())
	select {
	case <-st.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the dispatcher never claimed")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(ctx) }()
	waitFor(t, "Stop to begin", func() bool { return !d.Stats().Running })
	// Let the claim end (unless Stop cancelled it, which has happened by
	// now if it does).
	time.Sleep(20 * time.Millisecond)
	close(st.proceed)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	got, err := st.GetDelivery(ctx, del.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusPending || got.Attempts != 0 || got.LeaseOwner != "" {
		t.Errorf("the delivery after Stop: %s, %d attempts, leased by %q; want pending, 0 attempts, not leased",
			got.Status, got.Attempts, got.LeaseOwner)
	}
	if n := rc.count(); n != 0 {
		t.Errorf("the endpoint got %d requests, want none", n)
	}
}
