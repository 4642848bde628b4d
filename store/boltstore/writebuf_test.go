package boltstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// TestWritesKeepTheirBytes: Enqueue and Complete encode what they write in
// buffers they reuse once their call returns. Many concurrent calls, which
// share commits, some of them refused half way (so the others run again in
// a new transaction), store every body, attempt and error byte for byte as
// given: no call's bytes are overwritten by another's, before or after its
// commit.
func TestWritesKeepTheirBytes(t *testing.T) {
	ctx := t.Context()
	s, path, w := openWithWebhook(t, "tenant-bytes")
	const workers, rounds = 32, 20
	type stored struct {
		body, response []byte
		err            string
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		want = map[string]stored{}
	)
	for g := range workers {
		wg.Go(func() {
			for i := range rounds {
				d := storetest.NewDelivery(w, "user.login")
				// Bodies of sizes that differ, so buffers are grown and
				// reused with bytes of other lengths in them.
				d.Body = fmt.Appendf(nil, `{"g":%d,"i":%d,"pad":%q}`, g, i, strings.Repeat(string(rune('a'+g%26)), (g*rounds+i)%900))
				d.LeaseOwner, d.LeaseExpiresAt = "o", storetest.Base.Add(time.Hour)
				batch := []*store.Delivery{d}
				if i%4 == 0 {
					refused := storetest.NewDelivery(w, "user.login")
					refused.EventID = refusedEventID // refused by bbolt after d's writes
					batch = append(batch, refused)
					if _, err := s.Enqueue(ctx, batch); !errors.Is(err, store.ErrInvalid) {
						t.Errorf("Enqueue with a %d-byte event id: %v, want ErrInvalid", len(refusedEventID), err)
					}
					continue
				}
				if _, err := s.Enqueue(ctx, batch); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				if i%5 == 0 {
					// Refused: another owner. Its rollback runs the
					// calls it shared a transaction with again.
					err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "other", Status: store.StatusSuccess,
						Now: storetest.Base, Attempt: storetest.NewAttempt(d.ID, 1, 200)})
					if !errors.Is(err, store.ErrLeaseLost) {
						t.Errorf("Complete by another owner: %v, want ErrLeaseLost", err)
					}
				}
				a := storetest.NewAttempt(d.ID, 1, 500)
				a.ResponseBody = bytes.Repeat([]byte{byte('A' + (g+i)%26)}, (g+i*7)%300)
				a.Error = fmt.Sprintf("answer %d of worker %d", i, g)
				err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Status: store.StatusFailed,
					Now: storetest.Base.Add(time.Minute), Attempt: a})
				if err != nil {
					t.Errorf("Complete: %v", err)
					return
				}
				mu.Lock()
				want[d.ID] = stored{d.Body, a.ResponseBody, a.Error}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(want) != workers*rounds*3/4 {
		t.Fatalf("%d deliveries completed, want %d", len(want), workers*rounds*3/4)
	}
	for id, x := range want {
		d, err := s.GetDelivery(ctx, id)
		if err != nil {
			t.Fatalf("GetDelivery: %v", err)
		}
		if !bytes.Equal(d.Body, x.body) || d.Status != store.StatusFailed || d.LastError != x.err {
			t.Errorf("delivery %s: body %.40q, status %s, last error %q; want %.40q, failed, %q", id, d.Body, d.Status, d.LastError, x.body, x.err)
		}
		as, err := s.ListAttempts(ctx, id)
		if err != nil || len(as) != 1 {
			t.Fatalf("ListAttempts = %d attempts, %v; want 1", len(as), err)
		}
		if !bytes.Equal(as[0].ResponseBody, x.response) || as[0].Error != x.err || as[0].DeliveryID != id {
			t.Errorf("attempt of %s: response %q, error %q, delivery %s; want %q, %q", id, as[0].ResponseBody, as[0].Error, as[0].DeliveryID, x.response, x.err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := boltstore.CheckFile(path); err != nil {
		t.Error(err)
	}
}
