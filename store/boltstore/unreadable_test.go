package boltstore_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// logBuffer is a slog destination tests read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openLogged opens the file at path with a Logger writing to the returned
// buffer, and closes it when the test ends.
func openLogged(t *testing.T, path string, noSync bool) (*boltstore.Store, *logBuffer) {
	t.Helper()
	log := new(logBuffer)
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: noSync, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log
}

// reports counts the lines of log that report key.
func reports(log, key string) int {
	return strings.Count(log, "key="+key)
}

// TestUnreadableDelivery: one delivery record the store cannot decode
// (corrupt bytes, or a record a newer release wrote) stalls nothing but
// itself. Claim takes the deliveries behind it, Purge removes the other
// finished ones, a 410 disables the webhook; each reports the record once,
// with its key, on Options.Logger. The readers that name the record (Get,
// List) and DeleteWebhook of its webhook still fail, naming it, and
// DeleteWebhook deletes nothing. The record itself is never changed.
func TestUnreadableDelivery(t *testing.T) {
	spoil := map[string]func(v []byte) []byte{
		"corrupt": func(v []byte) []byte { return v[:len(v)-3] },
		"newer":   func(v []byte) []byte { v = bytes.Clone(v); v[0] = 0x7f; return v },
	}
	for name, spoil := range spoil {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s, path := open(t, nil)
			tn := "tenant-unreadable"
			a, b := storetest.NewWebhook(tn), storetest.NewWebhook(tn)
			for _, w := range []*store.Webhook{a, b} {
				if err := s.CreateWebhook(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			base := storetest.Base
			mk := func(w *store.Webhook, due time.Duration) *store.Delivery {
				d := storetest.NewDelivery(w, "user.login")
				d.NextAttemptAt = base.Add(due)
				return d
			}
			badDone, goodDone, leasedA := mk(a, 0), mk(b, time.Second), mk(a, 2*time.Second)
			bad, good1, good2 := mk(a, 3*time.Second), mk(b, 4*time.Second), mk(b, 5*time.Second)
			if _, err := s.Enqueue(ctx, []*store.Delivery{badDone, goodDone, leasedA, bad, good1, good2}); err != nil {
				t.Fatal(err)
			}
			got, err := s.Claim(ctx, store.ClaimParams{Now: base.Add(2 * time.Second), Limit: 3, Lease: 2 * time.Hour, Owner: "o"})
			if err != nil || len(got) != 3 {
				t.Fatalf("Claim = %d, %v", len(got), err)
			}
			for i, d := range []*store.Delivery{badDone, goodDone} {
				err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Status: store.StatusSuccess,
					Now: base.Add(time.Duration(i) * time.Second), Attempt: storetest.NewAttempt(d.ID, 1, 200)})
				if err != nil {
					t.Fatal(err)
				}
			}
			s.Close()

			spoiled := map[string]string{}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket([]byte("deliveries"))
				for _, d := range []*store.Delivery{bad, badDone} {
					v := spoil(bk.Get([]byte(d.ID)))
					spoiled[d.ID] = string(v)
					if err := bk.Put([]byte(d.ID), v); err != nil {
						return err
					}
				}
				return nil
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}

			s, log := openLogged(t, path, false)
			// Closing the file ended o's lease of leasedA: o claims it again.
			got, err = s.Claim(ctx, store.ClaimParams{Now: base.Add(2 * time.Second), Limit: 3, Lease: 2 * time.Hour, Owner: "o"})
			if err != nil || len(got) != 1 || got[0].ID != leasedA.ID {
				t.Fatalf("Claim after reopening = %q, %v; want leasedA", idsOf(got), err)
			}

			got, err = s.Claim(ctx, store.ClaimParams{Now: base.Add(time.Hour), Limit: 10, Lease: time.Minute, Owner: "p"})
			if err != nil {
				t.Fatalf("Claim behind an unreadable delivery: %v", err)
			}
			if d := cmp.Diff([]string{good1.ID, good2.ID}, idsOf(got)); d != "" {
				t.Errorf("Claim behind an unreadable delivery (-want +got):\n%s", d)
			}
			if _, err := s.Claim(ctx, store.ClaimParams{Now: base.Add(time.Hour), Limit: 10, Lease: time.Minute, Owner: "p"}); err != nil {
				t.Errorf("second Claim: %v", err)
			}
			if n := reports(log.String(), bad.ID); n != 1 {
				t.Errorf("the log names the unreadable pending delivery %d times, want once:\n%s", n, log.String())
			}

			n, err := s.Purge(ctx, store.PurgeParams{Before: base.Add(time.Hour)})
			if err != nil || n != 1 {
				t.Errorf("Purge past an unreadable delivery = %d, %v; want 1", n, err)
			}
			if _, err := s.GetDelivery(ctx, goodDone.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetDelivery of the purged delivery: %v, want ErrNotFound", err)
			}
			if reports(log.String(), badDone.ID) != 1 {
				t.Errorf("the log does not name the unreadable finished delivery %s:\n%s", badDone.ID, log.String())
			}

			// A 410 on a's readable delivery disables a, past its unreadable one.
			err = s.Complete(ctx, store.CompleteParams{DeliveryID: leasedA.ID, Owner: "o", Status: store.StatusFailed,
				Now: base.Add(time.Hour), Attempt: storetest.NewAttempt(leasedA.ID, 1, 410), DisableWebhook: "410 Gone"})
			if err != nil {
				t.Errorf("Complete disabling a webhook with an unreadable delivery: %v", err)
			}
			if w, err := s.GetWebhook(ctx, a.ID); err != nil || w.Active {
				t.Errorf("webhook after the 410: %+v, %v; want inactive", w, err)
			}

			names := func(what string, err error, ids ...string) {
				t.Helper()
				for _, id := range ids {
					if err != nil && strings.Contains(err.Error(), id) {
						return
					}
				}
				t.Errorf("%s: %v, want an error naming %s", what, err, strings.Join(ids, " or "))
			}
			_, err = s.GetDelivery(ctx, bad.ID)
			names("GetDelivery", err, bad.ID)
			_, _, err = s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 10})
			names("ListDeliveries", err, bad.ID)
			err = s.DeleteWebhook(ctx, a.ID)
			names("DeleteWebhook", err, bad.ID, badDone.ID)
			if _, err := s.GetDelivery(ctx, leasedA.ID); err != nil {
				t.Errorf("a failed DeleteWebhook deleted a delivery: %v", err)
			}
			if err := s.DeleteWebhook(ctx, b.ID); err != nil {
				t.Errorf("DeleteWebhook of the other webhook: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.View(func(tx *bolt.Tx) error {
				for id, v := range spoiled {
					if got := tx.Bucket([]byte("deliveries")).Get([]byte(id)); string(got) != v {
						t.Errorf("the unreadable record %s was changed or removed", id)
					}
				}
				return nil
			})
		})
	}
}

// TestUnreadableWebhook: one webhook record the store cannot decode does
// not stop a tenant's events: MatchWebhooks steps over it, reporting it
// once with its key, and matches the tenant's other webhooks. The readers
// that name it still fail, naming it, and it is never changed.
func TestUnreadableWebhook(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, &boltstore.Options{NoSync: true})
	tn := "tenant-unreadable-webhook"
	a, b := storetest.NewWebhook(tn), storetest.NewWebhook(tn)
	for _, w := range []*store.Webhook{a, b} {
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	var spoiled []byte
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("webhooks"))
		spoiled = bytes.Clone(bk.Get([]byte(a.ID)))
		spoiled = spoiled[:len(spoiled)-2]
		return bk.Put([]byte(a.ID), spoiled)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, log := openLogged(t, path, true)
	for range 2 {
		got, err := s.MatchWebhooks(ctx, tn, "workflow.completed")
		if err != nil {
			t.Fatalf("MatchWebhooks of a tenant with an unreadable webhook: %v", err)
		}
		if len(got) != 1 || got[0].ID != b.ID {
			t.Errorf("MatchWebhooks = %d webhooks, want the readable one %s", len(got), b.ID)
		}
	}
	if n := reports(log.String(), a.ID); n != 1 {
		t.Errorf("the log reports the unreadable webhook %d times, want once:\n%s", n, log.String())
	}
	if _, err := s.GetWebhook(ctx, a.ID); err == nil || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("GetWebhook: %v, want an error naming %s", err, a.ID)
	}
	if _, _, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: tn, Limit: 10}); err == nil || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("ListWebhooks: %v, want an error naming %s", err, a.ID)
	}
	if err := s.DeleteWebhook(ctx, a.ID); err == nil || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("DeleteWebhook: %v, want an error naming %s", err, a.ID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket([]byte("webhooks")).Get([]byte(a.ID)); !bytes.Equal(got, spoiled) {
			t.Error("the unreadable webhook record was changed or removed")
		}
		return nil
	})
}
