package boltstore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/storetest"
)

// TestLayout checks the bytes Enqueue and Complete leave in the file,
// bucket by bucket, against the layout of the package documentation built
// with the reference encoders: a file written now reads as the files
// written before, and the other way round.
func TestLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layout.db")
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	w := storetest.NewWebhook("tenant-layout")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	lease := storetest.Base.Add(time.Minute)
	leased := func(d *store.Delivery) *store.Delivery {
		d.LeaseOwner, d.LeaseExpiresAt = "owner", lease
		return d
	}
	var (
		done    = leased(storetest.NewDelivery(w, "a.done"))  // completed: success
		retried = leased(storetest.NewDelivery(w, "a.retry")) // completed: pending again
		due     = storetest.NewDelivery(w, "a.due")           // never leased
		held    = leased(storetest.NewDelivery(w, "a.held"))  // still leased
	)
	due.NextAttemptAt = storetest.Base.Add(-time.Hour)
	if _, err := s.Enqueue(ctx, []*store.Delivery{done, retried, due, held}); err != nil {
		t.Fatal(err)
	}
	now := storetest.Base.Add(time.Second)
	okAttempt := storetest.NewAttempt(done.ID, 1, 200)
	retryAttempt := storetest.NewAttempt(retried.ID, 1, 503)
	// The headers the dispatcher sends, which repeat the delivery's values;
	// the retried attempt's name another webhook.
	okAttempt.RequestHeaders["Webhook-Id"] = []string{done.EventID}
	okAttempt.RequestHeaders["X-Webhook-Event"] = []string{done.EventType}
	okAttempt.RequestHeaders["X-Webhook-Id"] = []string{done.WebhookID}
	retryAttempt.RequestHeaders["X-Webhook-Id"] = []string{"wh_another"}
	if err := s.Complete(ctx, store.CompleteParams{DeliveryID: done.ID, Owner: "owner", Status: store.StatusSuccess, Now: now, Attempt: okAttempt}); err != nil {
		t.Fatal(err)
	}
	next := storetest.Base.Add(time.Hour)
	if err := s.Complete(ctx, store.CompleteParams{DeliveryID: retried.ID, Owner: "owner", Status: store.StatusPending, Now: now, NextAttemptAt: next, Attempt: retryAttempt}); err != nil {
		t.Fatal(err)
	}

	// The deliveries as they must be stored.
	done.Status, done.Attempts, done.RoundAttempts, done.LastStatusCode = store.StatusSuccess, 1, 1, 200
	done.LeaseOwner, done.LeaseExpiresAt, done.UpdatedAt = "", time.Time{}, now
	retried.Attempts, retried.RoundAttempts, retried.LastStatusCode, retried.LastError = 1, 1, 503, retryAttempt.Error
	retried.LeaseOwner, retried.LeaseExpiresAt, retried.UpdatedAt, retried.NextAttemptAt = "", time.Time{}, now, next
	if retried.LastError == "" {
		t.Fatal("the retried attempt has no error: the test would not cover LastError")
	}

	want := map[string]map[string]string{
		string(bDeliveries): {}, string(bDelTenant): {}, string(bDelWebhook): {}, string(bDedup): {},
		string(bDue): {}, string(bHeld): {}, string(bLeased): {}, string(bFinished): {}, string(bAttempts): {},
	}
	// The lease of held is the Store's, in memory: the file holds held
	// without one, due at its NextAttemptAt.
	got, err := s.GetDelivery(ctx, held.ID)
	if err != nil || got.LeaseOwner != "owner" || !got.LeaseExpiresAt.Equal(lease) {
		t.Fatalf("GetDelivery(held) = %+v, %v; want leased to owner until %v", got, err, lease)
	}
	stored := *held
	stored.LeaseOwner, stored.LeaseExpiresAt = "", time.Time{}
	for _, d := range []*store.Delivery{done, retried, due, &stored} {
		want[string(bDeliveries)][d.ID] = string(encodeDelivery(d))
		want[string(bDelTenant)][string(pairKey(d.Tenant, d.ID))] = ""
		want[string(bDelWebhook)][string(pairKey(d.WebhookID, d.ID))] = ""
		want[string(bDedup)][string(pairKey(d.EventID, d.WebhookID))] = d.ID
	}
	want[string(bDue)][string(timeKey(due.NextAttemptAt, due.ID))] = w.ID
	want[string(bDue)][string(timeKey(next, retried.ID))] = w.ID
	want[string(bDue)][string(timeKey(held.NextAttemptAt, held.ID))] = w.ID
	want[string(bFinished)][string(timeKey(now, done.ID))] = ""
	refs := func(d *store.Delivery) attemptRefs {
		return attemptRefs{d.ID, d.EventID, d.EventType, d.WebhookID}
	}
	want[string(bAttempts)][string(attemptKey(done.ID, 1))] = string(encodeAttempt(okAttempt, refs(done)))
	want[string(bAttempts)][string(attemptKey(retried.ID, 1))] = string(encodeAttempt(retryAttempt, refs(retried)))
	wantCounts := string(encodeCounts(store.Counts{Pending: 3, Success: 1}))

	err = s.db.View(func(tx *bolt.Tx) error {
		for name, entries := range want {
			got := map[string]string{}
			err := tx.Bucket([]byte(name)).ForEach(func(k, v []byte) error {
				got[string(k)] = string(v)
				return nil
			})
			if err != nil {
				return err
			}
			if diff := cmp.Diff(entries, got); diff != "" {
				t.Errorf("bucket %s (-want +got):\n%s", name, diff)
			}
		}
		if got := string(tx.Bucket(bCounts).Get([]byte(w.ID))); got != wantCounts {
			t.Errorf("counts %x, want %x", got, wantCounts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
