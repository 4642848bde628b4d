package webhook

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/pgstore/pgstoretest"
)

// eachStoreWithPostgres runs f against every store of eachStore, and
// against pgstore (skipped without its database).
func eachStoreWithPostgres(t *testing.T, f func(t *testing.T, newStore func(t *testing.T) store.Store)) {
	eachStore(t, f)
	t.Run("pgstore", func(t *testing.T) {
		if pgstoretest.URL() == "" {
			t.Skip(pgstoretest.SkipMessage)
		}
		f(t, func(t *testing.T) store.Store { return pgstoretest.Open(t, "webhook_test_") })
	})
}

// TestGoneKeepsAttemptsInFlight: a 410 Gone disables the webhook while
// other deliveries of it are in flight to the same endpoint. Those
// attempts reached the endpoint and got an answer: each is recorded, and
// its delivery ends as the answer says, except that one that would be
// retried fails, its webhook being inactive. A pending delivery nobody
// holds fails with the webhook, without an attempt.
func TestGoneKeepsAttemptsInFlight(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		t.Run("one dispatcher", func(t *testing.T) { testGoneInFlight(t, newStore(t), false) })
		// The attempts in flight are another replica's, whose cache still
		// holds the webhook active when they end: the store fails the retry.
		t.Run("replicas", func(t *testing.T) { testGoneInFlight(t, newStore(t), true) })
	})
}

func testGoneInFlight(t *testing.T, st store.Store, replicas bool) {
	arrived := make(chan string, 10)
	okGate, releaseOK := newGate()
	failGate, releaseFail := newGate()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		event := r.Header.Get("X-Webhook-Event")
		arrived <- event
		switch event {
		case EventUserLogin:
			<-okGate
		case EventUserLogout:
			<-failGate
			w.WriteHeader(http.StatusInternalServerError)
		case EventUserDeleted:
			w.WriteHeader(http.StatusGone)
		}
	})
	w := addWebhook(t, st, "a", rc.URL)
	// A delivery due in an hour, which nobody holds when the 410 comes.
	waiting := &store.Delivery{
		ID: "del_waiting", WebhookID: w.ID, EventID: "evt_waiting", EventType: EventUserUpdated,
		Tenant: "a", Body: []byte(`{}`), NextAttemptAt: time.Now().Add(time.Hour),
	}
	if _, err := st.Enqueue(context.Background(), []*store.Delivery{waiting}); err != nil {
		t.Fatal(err)
	}
	hooks := &recordingHooks{}
	start := func(perWebhook int, cacheTTL time.Duration) *Dispatcher {
		cfg := testConfig()
		cfg.PerWebhookConcurrency = perWebhook
		cfg.WebhookCacheTTL = cacheTTL
		cfg.Hooks = hooks
		return startDispatcher(t, st, cfg)
	}
	// held sends the deliveries held in flight. As a replica, it is at its
	// limit for the webhook while they are, so the 410 goes to the other.
	var held *Dispatcher
	if replicas {
		held = start(2, time.Hour)
	} else {
		held = start(3, 0)
	}
	// Before the dispatchers stop, which wait for the attempts.
	t.Cleanup(releaseOK)
	t.Cleanup(releaseFail)

	emit := func(d *Dispatcher, event string) string {
		t.Helper()
		res, err := d.Emit(context.Background(), Event{Type: event, Tenant: "a"})
		if err != nil || len(res.DeliveryIDs) != 1 {
			t.Fatalf("Emit(%s) = %+v, %v", event, res, err)
		}
		return res.DeliveryIDs[0]
	}
	arrive := func(want string) {
		t.Helper()
		select {
		case got := <-arrived:
			if got != want {
				t.Fatalf("request for %s reached the receiver, want %s", got, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no request for %s reached the receiver", want)
		}
	}
	ok := emit(held, EventUserLogin)
	arrive(EventUserLogin)
	retried := emit(held, EventUserLogout)
	arrive(EventUserLogout)
	d := held
	if replicas {
		d = start(3, 0)
	}
	gone := emit(d, EventUserDeleted)
	arrive(EventUserDeleted)
	waitFor(t, "the 410 to disable the webhook", func() bool { return hooks.count("disabled") == 1 })
	releaseOK()
	releaseFail()
	waitFor(t, "the attempts in flight to end", func() bool { return d.Stats().InFlight == 0 && held.Stats().InFlight == 0 })

	want := []struct {
		id       string
		status   store.Status
		code     int
		attempts int
	}{
		{ok, store.StatusSuccess, http.StatusOK, 1},
		{retried, store.StatusFailed, http.StatusInternalServerError, 1},
		{gone, store.StatusFailed, http.StatusGone, 1},
		{waiting.ID, store.StatusFailed, 0, 0},
	}
	for _, c := range want {
		del, err := st.GetDelivery(context.Background(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		if del.Status != c.status || del.LastStatusCode != c.code || del.Attempts != c.attempts || del.LeaseOwner != "" {
			t.Errorf("delivery %s: %s, last status %d, %d attempts, leased by %q; want %s, %d, %d, not leased",
				c.id, del.Status, del.LastStatusCode, del.Attempts, del.LeaseOwner, c.status, c.code, c.attempts)
		}
		atts, err := st.ListAttempts(context.Background(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(atts) != c.attempts {
			t.Errorf("delivery %s: %d attempts logged, want %d", c.id, len(atts), c.attempts)
		} else if c.attempts == 1 && atts[0].ResponseStatus != c.code {
			t.Errorf("delivery %s: attempt logged with status %d, want %d", c.id, atts[0].ResponseStatus, c.code)
		}
	}
	if n := rc.count(); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
	if replicas {
		return
	}
	// The dispatcher reports what the store holds.
	if s := d.Stats(); s.Attempts != 3 || s.Succeeded != 1 || s.Failed != 2 || s.Retried != 0 {
		t.Errorf("Stats = %+v; want 3 attempts, 1 succeeded, 2 failed, none retried", s)
	}
}

// TestRetryOfDeactivatedWebhookReported: the webhook is deactivated while
// an attempt of it is in flight, elsewhere than by this dispatcher's 410
// (the registry, a replica), and the attempt would be retried. The store
// fails the delivery; what the dispatcher returns, reports to its hooks
// and counts says so too, whether its webhook cache still holds the
// webhook active or the attempt was cut short by a Stop whose context had
// ended.
func TestRetryOfDeactivatedWebhookReported(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		t.Run("cached active", func(t *testing.T) {
			st := newStore(t)
			arrived := make(chan struct{}, 1)
			gate, release := newGate()
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				arrived <- struct{}{}
				<-gate
				w.WriteHeader(http.StatusInternalServerError)
			})
			wh := addWebhook(t, st, "a", rc.URL)
			hooks := &recordingHooks{}
			cfg := testConfig()
			cfg.WebhookCacheTTL = time.Hour
			cfg.Hooks = hooks
			d := startDispatcher(t, st, cfg)
			t.Cleanup(release)

			done := goSendTest(d, wh.ID)
			<-arrived
			deactivate(t, st, wh.ID)
			release()
			r := <-done
			if r.err != nil {
				t.Fatalf("SendTest: %v", r.err)
			}
			stored, err := st.GetDelivery(context.Background(), r.del.ID)
			if err != nil {
				t.Fatal(err)
			}
			checkReportedFailed(t, d, hooks, stored, r.del)
		})
		t.Run("stopping", func(t *testing.T) {
			st := newStore(t)
			arrived := make(chan struct{}, 1)
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				arrived <- struct{}{}
				<-r.Context().Done()
			})
			wh := addWebhook(t, st, "a", rc.URL)
			hooks := &recordingHooks{}
			cfg := testConfig()
			cfg.WebhookCacheTTL = -1 // every read of the webhook asks the store
			cfg.Hooks = hooks
			d := newStarted(t, st, cfg)
			res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a"})
			if err != nil || len(res.DeliveryIDs) != 1 {
				t.Fatalf("Emit = %+v, %v", res, err)
			}
			<-arrived
			deactivate(t, st, wh.ID)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := d.Stop(ctx); err == nil {
				t.Fatal("Stop with an ended context = nil, want its error")
			}
			stored, err := st.GetDelivery(context.Background(), res.DeliveryIDs[0])
			if err != nil {
				t.Fatal(err)
			}
			checkReportedFailed(t, d, hooks, stored, nil)
		})
	})
}

// deactivate turns the webhook off in the store, as the registry does.
func deactivate(t *testing.T, st store.Store, id string) {
	t.Helper()
	if _, err := st.UpdateWebhook(context.Background(), id, func(w *store.Webhook) error {
		w.Active = false
		return nil
	}); err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
}

// checkReportedFailed checks that the stored delivery failed after one
// attempt, and that the dispatcher's report (its returned copy when got is
// not nil, its hooks and Stats) agrees.
func checkReportedFailed(t *testing.T, d *Dispatcher, hooks *recordingHooks, stored, got *Delivery) {
	t.Helper()
	if stored.Status != store.StatusFailed || stored.Attempts != 1 || stored.RoundAttempts != 1 {
		t.Errorf("stored delivery: %s, %d attempts, %d in the round; want failed, 1, 1",
			stored.Status, stored.Attempts, stored.RoundAttempts)
	}
	if got != nil && (got.Status != stored.Status || got.RoundAttempts != stored.RoundAttempts) {
		t.Errorf("returned delivery: %s, %d in the round; stored: %s, %d",
			got.Status, got.RoundAttempts, stored.Status, stored.RoundAttempts)
	}
	if n := hooks.count("failed"); n != 1 {
		t.Errorf("DeliveryFailed called %d times, want 1", n)
	}
	if s := d.Stats(); s.Attempts != 1 || s.Failed != 1 || s.Retried != 0 {
		t.Errorf("Stats = %+v; want 1 attempt, 1 failed, none retried", s)
	}
}

// TestGoneTwiceDisablesOnce: two attempts in flight to the same endpoint
// both meet 410 Gone. The first disables the webhook; the second's
// delivery fails, but the webhook, already inactive, is not disabled
// again: WebhookDisabled is called once, and the reason and time stored
// are the first's.
func TestGoneTwiceDisablesOnce(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		arrived := make(chan string, 10)
		firstGate, releaseFirst := newGate()
		secondGate, releaseSecond := newGate()
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			event := r.Header.Get("X-Webhook-Event")
			arrived <- event
			if event == EventUserLogin {
				<-firstGate
			} else {
				<-secondGate
			}
			w.WriteHeader(http.StatusGone)
		})
		wh := addWebhook(t, st, "a", rc.URL)
		hooks := &recordingHooks{}
		cfg := testConfig()
		cfg.PerWebhookConcurrency = 2
		cfg.Hooks = hooks
		d := startDispatcher(t, st, cfg)
		t.Cleanup(releaseFirst)
		t.Cleanup(releaseSecond)

		var ids []string
		for _, event := range []string{EventUserLogin, EventUserLogout} {
			res, err := d.Emit(context.Background(), Event{Type: event, Tenant: "a"})
			if err != nil || len(res.DeliveryIDs) != 1 {
				t.Fatalf("Emit(%s) = %+v, %v", event, res, err)
			}
			ids = append(ids, res.DeliveryIDs[0])
			if got := <-arrived; got != event {
				t.Fatalf("request for %s reached the receiver, want %s", got, event)
			}
		}
		releaseFirst()
		waitFor(t, "the first 410 to disable the webhook", func() bool { return hooks.count("disabled") == 1 })
		first := getWebhook(t, st, wh.ID)
		releaseSecond()
		waitFor(t, "the attempts in flight to end", func() bool { return d.Stats().InFlight == 0 })

		if n := hooks.count("disabled"); n != 1 {
			t.Errorf("WebhookDisabled called %d times, want 1", n)
		}
		if got := getWebhook(t, st, wh.ID); got.Active || got.DisabledReason != first.DisabledReason || !got.UpdatedAt.Equal(first.UpdatedAt) {
			t.Errorf("webhook after the second 410: active %v, reason %q, updated %v; want as the first left it: %q, %v",
				got.Active, got.DisabledReason, got.UpdatedAt, first.DisabledReason, first.UpdatedAt)
		}
		for _, id := range ids {
			if del := waitStatus(t, st, id, store.StatusFailed, 1); del.LastStatusCode != http.StatusGone {
				t.Errorf("delivery %s: last status %d, want 410", id, del.LastStatusCode)
			}
		}
		if s := d.Stats(); s.Attempts != 2 || s.Failed != 2 {
			t.Errorf("Stats = %+v; want 2 attempts, 2 failed", s)
		}
	})
}

func getWebhook(t *testing.T, st store.Store, id string) *store.Webhook {
	t.Helper()
	w, err := st.GetWebhook(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
