package boltstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/noa-server/webhook/internal/boltfile/boltfiletest"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// open opens a store in a fresh file that the test closes.
func open(t *testing.T, opts *boltstore.Options) (*boltstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhooks.db")
	s, err := boltstore.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		// NoSync keeps the suite fast on a shared machine; TestReopen
		// covers durability with fsync on.
		path := filepath.Join(t.TempDir(), "webhooks.db")
		s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		// The suite checks the store through its interface first; then
		// the closed file's indexes must agree with its records.
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if t.Failed() {
				return
			}
			if err := boltstore.CheckFile(path); err != nil {
				t.Errorf("file after %s: %v", t.Name(), err)
			}
		})
		return s
	})
}

// TestReopen writes every kind of record, closes the file, reopens it and
// finds the same records, indexes included (claims, listings and counts
// answer as before), but for the leases, which end with the Store.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, nil)
	tn := "tenant-reopen"
	w := storetest.NewWebhook(tn)
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	var ds []*store.Delivery
	for i := range 5 {
		d := storetest.NewDelivery(w, "workflow.completed")
		d.NextAttemptAt = storetest.Base.Add(time.Duration(i) * time.Second)
		ds = append(ds, d)
	}
	if _, err := s.Enqueue(ctx, ds); err != nil {
		t.Fatal(err)
	}
	now := storetest.Base.Add(time.Minute)
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 3, Lease: time.Hour, Owner: "w"})
	if err != nil || len(claimed) != 3 {
		t.Fatalf("Claim = %d, %v", len(claimed), err)
	}
	// One success, one retry, one left leased.
	if err := s.Complete(ctx, store.CompleteParams{DeliveryID: ds[0].ID, Owner: "w", Attempt: storetest.NewAttempt(ds[0].ID, 1, 200), Status: store.StatusSuccess, Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, store.CompleteParams{DeliveryID: ds[1].ID, Owner: "w", Attempt: storetest.NewAttempt(ds[1].ID, 1, 503), Status: store.StatusPending, NextAttemptAt: now.Add(time.Hour), Now: now}); err != nil {
		t.Fatal(err)
	}

	type snapshot struct {
		Webhook    *store.Webhook
		Deliveries []*store.Delivery
		Attempts   [][]*store.Attempt
		Counts     store.Counts
	}
	snap := func(s *boltstore.Store) snapshot {
		t.Helper()
		var sn snapshot
		var err error
		if sn.Webhook, err = s.GetWebhook(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if sn.Deliveries, _, err = s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 100}); err != nil {
			t.Fatal(err)
		}
		for _, d := range sn.Deliveries {
			as, err := s.ListAttempts(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			sn.Attempts = append(sn.Attempts, as)
		}
		if sn.Counts, err = s.CountDeliveries(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		return sn
	}
	before := snap(s)
	if len(before.Deliveries) != 5 || before.Counts != (store.Counts{Pending: 4, Success: 1}) {
		t.Fatalf("before reopening: %d deliveries, counts %+v", len(before.Deliveries), before.Counts)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	after := snap(s2)
	// Leases end with the Store that granted them: ds[2] is back without
	// its lease, the rest as it was.
	for _, d := range before.Deliveries {
		if d.ID == ds[2].ID {
			if d.LeaseOwner != "w" {
				t.Fatalf("before reopening, ds[2] is leased to %q, want w", d.LeaseOwner)
			}
			d.LeaseOwner, d.LeaseExpiresAt = "", time.Time{}
		}
	}
	if d := cmp.Diff(before, after, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("records after reopening (-before +after):\n%s", d)
	}
	if d := cmp.Diff(w, after.Webhook, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("webhook after reopening (-stored +reopened):\n%s", d)
	}
	// The indexes came back too: the two never-claimed deliveries are due,
	// and so is the one whose lease ended with the first Store; the retry
	// is not.
	got, err := s2.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute, Owner: "w2"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{ds[2].ID, ds[3].ID, ds[4].ID}, idsOf(got)); d != "" {
		t.Errorf("Claim after reopening (-want +got):\n%s", d)
	}
	if _, err := s2.Enqueue(ctx, []*store.Delivery{ds[0]}); err != nil {
		t.Errorf("Enqueue of a duplicate after reopening: %v", err)
	}
	if c, _ := s2.CountDeliveries(ctx, w.ID); c != before.Counts {
		t.Errorf("a duplicate Enqueue after reopening changed counts to %+v", c)
	}
}

func idsOf(ds []*store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// TestLockedFile checks that a second Open of a file in use fails after the
// timeout instead of hanging.
func TestLockedFile(t *testing.T) {
	_, path := open(t, nil)
	_, err := boltstore.Open(path, &boltstore.Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("second Open of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another process") || !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("error %q does not say the file is in use", err)
	}
}

// TestCorruptRecord checks that a record the decoder cannot read is an error
// from every reader, not a panic, and that Claim, which steps over it (see
// TestUnreadableDelivery), reports it.
func TestCorruptRecord(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, nil)
	w := storetest.NewWebhook("tenant-corrupt")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	d := storetest.NewDelivery(w, "workflow.completed")
	if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("webhooks")).Put([]byte(w.ID), []byte{1, 200, 200, 200}); err != nil {
			return err
		}
		return tx.Bucket([]byte("deliveries")).Put([]byte(d.ID), []byte{1, 1, 0xff})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, log := openLogged(t, path, false)
	if _, err := s.GetWebhook(ctx, w.ID); err == nil {
		t.Error("GetWebhook of a corrupt record: no error")
	}
	if _, err := s.GetDelivery(ctx, d.ID); err == nil {
		t.Error("GetDelivery of a corrupt record: no error")
	}
	if _, _, err := s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: w.Tenant, Limit: 10}); err == nil {
		t.Error("ListDeliveries over a corrupt record: no error")
	}
	if got, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 10, Lease: time.Minute, Owner: "o"}); err != nil || len(got) != 0 {
		t.Errorf("Claim of a corrupt record = %d deliveries, %v; want none, stepped over", len(got), err)
	}
	if reports(log.String(), d.ID) != 1 || !strings.Contains(log.String(), "corrupt") {
		t.Errorf("Claim did not report the corrupt record %s once:\n%s", d.ID, log.String())
	}
}

// TestClaimEarlierNow checks that a claim whose Now is earlier than a
// previous claim's (clocks of two processes, or a test) never takes a lease
// that is live at its own Now, even after a later claim moved the expired
// lease back to the due index.
func TestClaimEarlierNow(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t, &boltstore.Options{NoSync: true})
	w := storetest.NewWebhook("tenant-clock")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	d := storetest.NewDelivery(w, "workflow.completed")
	if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	claim := func(now time.Time, owner string) []*store.Delivery {
		t.Helper()
		got, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	base := storetest.Base
	if got := claim(base, "a"); len(got) != 1 {
		t.Fatalf("first claim = %d", len(got))
	}
	// A claim at base+2m moves a's expired lease back and takes it ...
	if got := claim(base.Add(2*time.Minute), "b"); len(got) != 1 {
		t.Fatalf("claim after expiry = %d", len(got))
	}
	// ... b's lease (until base+3m) is live at base+30s and at base+2m30s.
	if got := claim(base.Add(150*time.Second), "c"); len(got) != 0 {
		t.Fatalf("claim under b's live lease took %q", idsOf(got))
	}
	// Force the index to hold b's expired lease: a sweep at base+4m with a
	// SkipWebhooks that leaves it in due, then a claim back at base+2m30s.
	if got, err := s.Claim(ctx, store.ClaimParams{Now: base.Add(4 * time.Minute), Limit: 10, Lease: time.Minute, Owner: "x", SkipWebhooks: []string{w.ID}}); err != nil || len(got) != 0 {
		t.Fatalf("skipping claim = %d, %v", len(got), err)
	}
	if got := claim(base.Add(150*time.Second), "c"); len(got) != 0 {
		t.Fatalf("claim with an earlier Now took %q under b's live lease", idsOf(got))
	}
	got, err := s.GetDelivery(ctx, d.ID)
	if err != nil || got.LeaseOwner != "b" {
		t.Fatalf("lease owner %q, %v; want b", got.LeaseOwner, err)
	}
	// b may still complete: nobody else claimed it.
	err = s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "b", Attempt: storetest.NewAttempt(d.ID, 1, 200), Status: store.StatusSuccess, Now: base.Add(5 * time.Minute)})
	if err != nil {
		t.Fatalf("Complete by the owner of an expired, unclaimed lease: %v", err)
	}
}

// TestClosed checks Close's contract beyond the suite: Close waits for
// nothing and a closed store answers ErrClosed, not a bbolt error.
func TestClosed(t *testing.T) {
	s, _ := open(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Enqueue(context.Background(), nil); !errors.Is(err, store.ErrClosed) {
		t.Errorf("empty Enqueue after Close: %v, want ErrClosed", err)
	}
}

// TestGroupCommit runs many concurrent Enqueue calls, a third of them bound
// to fail, so failing and succeeding calls share transactions: each call
// gets its own answer, and exactly the successful ones are stored, durably.
func TestGroupCommit(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, nil)
	w := storetest.NewWebhook("tenant-group")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	const n = 96
	errs := make([]error, n)
	batches := make([][]*store.Delivery, n)
	var wg sync.WaitGroup
	for i := range n {
		batch := []*store.Delivery{storetest.NewDelivery(w, "workflow.completed"), storetest.NewDelivery(w, "agent.error")}
		if i%3 == 0 {
			batch[1].WebhookID = storetest.NewID("wh_") // unknown: the whole call fails
		}
		batches[i] = batch
		wg.Go(func() { _, errs[i] = s.Enqueue(ctx, batch) })
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		switch {
		case i%3 == 0 && !errors.Is(err, store.ErrNotFound):
			t.Errorf("call %d: %v, want ErrNotFound", i, err)
		case i%3 != 0 && err != nil:
			t.Errorf("call %d: %v", i, err)
		case i%3 != 0:
			want += 2
		}
	}
	s.Close()
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, batch := range batches {
		_, err := s.GetDelivery(ctx, batch[0].ID)
		if i%3 == 0 && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("call %d failed but its first delivery is stored (%v)", i, err)
		}
		if i%3 != 0 && err != nil {
			t.Errorf("call %d succeeded but its delivery is missing after reopening: %v", i, err)
		}
	}
	c, err := s.CountDeliveries(ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: int64(want)}) {
		t.Errorf("CountDeliveries = %+v, %v; want %d pending", c, err, want)
	}
}

// TestMatchDuringUpdates matches a tenant's webhooks from several goroutines
// while another keeps changing which event one of them is subscribed to:
// once the changes end, every match sees the last one. Under the race
// detector it also checks how the matches share the store's webhook cache.
func TestMatchDuringUpdates(t *testing.T) {
	ctx := t.Context()
	s, _ := open(t, &boltstore.Options{NoSync: true})
	w := storetest.NewWebhook("tenant-match")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	events := []string{"workflow.completed", "agent.error"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.MatchWebhooks(ctx, w.Tenant, events[0]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	const updates = 300
	for i := range updates {
		if _, err := s.UpdateWebhook(ctx, w.ID, func(c *store.Webhook) error {
			c.Events = []string{events[i%2]}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	last := events[(updates-1)%2]
	for _, ev := range events {
		got, err := s.MatchWebhooks(ctx, w.Tenant, ev)
		if err != nil {
			t.Fatal(err)
		}
		if want := ev == last; (len(got) == 1) != want {
			t.Errorf("MatchWebhooks(%s) after the updates = %d webhooks; want the webhook: %v", ev, len(got), want)
		}
	}
}

// TestOpenTruncated: a file cut short (a copy interrupted, a full disk) is
// an error from Open; bbolt alone maps it and crashes the process reading
// the missing pages.
func TestOpenTruncated(t *testing.T) {
	s, path := open(t, &boltstore.Options{NoSync: true})
	w := storetest.NewWebhook("t")
	if err := s.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		var batch []*store.Delivery
		for range 25 {
			d := storetest.NewDelivery(w, "user.login")
			d.Body = append(d.Body[:len(d.Body):len(d.Body)], bytes.Repeat([]byte(" "), 2000)...)
			batch = append(batch, d)
		}
		if _, err := s.Enqueue(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 1<<20 {
		t.Fatalf("the file is %d bytes, want over 1 MiB", fi.Size())
	}
	full := boltfiletest.Truncated(t, path, []int{8192, 16384, 32768, int(fi.Size()) / 2}, func(path string) error {
		s, err := boltstore.Open(path, nil)
		if err == nil {
			s.Close()
		}
		return err
	})
	whole := filepath.Join(t.TempDir(), "whole.db")
	if err := os.WriteFile(whole, full, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := boltstore.Open(whole, nil)
	if err != nil {
		t.Fatalf("Open of the whole copy: %v", err)
	}
	defer s2.Close()
	if n, err := s2.CountDeliveries(t.Context(), w.ID); err != nil || n.Pending != 1000 {
		t.Errorf("the whole copy counts %+v (%v), want 1000 pending", n, err)
	}
}

// TestKeyTooLarge: an id, tenant or event id longer than a bbolt key can
// hold is the caller's input, so it is ErrInvalid, like every other input
// the store refuses, and stores nothing.
func TestKeyTooLarge(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, &boltstore.Options{NoSync: true})
	long := strings.Repeat("x", bolt.MaxKeySize)
	err := s.CreateWebhook(ctx, storetest.NewWebhook(long))
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateWebhook with a %d-byte tenant: %v, want ErrInvalid", len(long), err)
	}
	w := storetest.NewWebhook("tenant-long")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	ok, bad := storetest.NewDelivery(w, "user.login"), storetest.NewDelivery(w, "user.login")
	bad.EventID = long
	if _, err := s.Enqueue(ctx, []*store.Delivery{ok, bad}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Enqueue with a %d-byte event id: %v, want ErrInvalid", len(long), err)
	}
	if c, err := s.CountDeliveries(ctx, w.ID); err != nil || c != (store.Counts{}) {
		t.Errorf("after the refused Enqueue: counts %+v (%v), want none", c, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := boltstore.CheckFile(path); err != nil {
		t.Error(err)
	}
}

// TestNewerFormat opens a file whose records carry a format version this
// build does not know, as one written by a later release would: every
// reader says so (not that the record is corrupt, which sends an operator
// looking for disk faults), Claim and Purge report it so and step over it,
// and no writer changes the records.
func TestNewerFormat(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, nil)
	w := storetest.NewWebhook("tenant-newer")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	pending, done := storetest.NewDelivery(w, "user.login"), storetest.NewDelivery(w, "user.login")
	if _, err := s.Enqueue(ctx, []*store.Delivery{pending, done}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 2, Lease: time.Minute, Owner: "o"})
	if err != nil || len(ds) != 2 {
		t.Fatalf("Claim: %d deliveries, %v", len(ds), err)
	}
	err = s.Complete(ctx, store.CompleteParams{DeliveryID: done.ID, Owner: "o", Status: store.StatusSuccess,
		Now: storetest.Base, Attempt: storetest.NewAttempt(done.ID, 1, 200)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Raise the version byte (the first) of every record.
	records := [][]byte{[]byte("webhooks"), []byte("deliveries"), []byte("attempts")}
	before := map[string]string{}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range records {
			b := tx.Bucket(name)
			var keys [][]byte
			b.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil })
			for _, k := range keys {
				v := bytes.Clone(b.Get(k))
				v[0] = 0x7f
				before[string(name)+"/"+string(k)] = string(v)
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, log := openLogged(t, path, false)
	newer := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "newer release") || strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%s: %v, want an error saying a newer release wrote the record", what, err)
		}
	}
	_, err = s.GetWebhook(ctx, w.ID)
	newer("GetWebhook", err)
	_, err = s.GetDelivery(ctx, pending.ID)
	newer("GetDelivery", err)
	_, err = s.ListAttempts(ctx, done.ID)
	newer("ListAttempts of the delivery", err)
	_, _, err = s.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: w.Tenant, Limit: 10})
	newer("ListDeliveries", err)
	if got, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base.Add(time.Hour), Limit: 10, Lease: time.Minute, Owner: "p"}); err != nil || len(got) != 0 {
		t.Errorf("Claim = %d deliveries, %v; want none, the newer record stepped over", len(got), err)
	}
	err = s.Complete(ctx, store.CompleteParams{DeliveryID: pending.ID, Owner: "o", Status: store.StatusSuccess,
		Now: storetest.Base, Attempt: storetest.NewAttempt(pending.ID, 1, 200)})
	newer("Complete", err)
	_, err = s.Redeliver(ctx, store.RedeliverParams{ID: done.ID, Now: storetest.Base})
	newer("Redeliver", err)
	if n, err := s.Purge(ctx, store.PurgeParams{Before: storetest.Base.Add(time.Hour)}); err != nil || n != 0 {
		t.Errorf("Purge = %d, %v; want 0, the newer record stepped over", n, err)
	}
	for _, id := range []string{pending.ID, done.ID} {
		if reports(log.String(), id) != 1 {
			t.Errorf("Claim and Purge did not report the newer record %s once:\n%s", id, log.String())
		}
	}
	if strings.Count(log.String(), "newer release") != 2 {
		t.Errorf("the reports do not say a newer release wrote the records:\n%s", log.String())
	}
	_, err = s.UpdateWebhook(ctx, w.ID, func(*store.Webhook) error { return nil })
	newer("UpdateWebhook", err)
	err = s.DeleteWebhook(ctx, w.ID)
	newer("DeleteWebhook", err)
	_, err = s.Enqueue(ctx, []*store.Delivery{storetest.NewDelivery(w, "user.login")})
	newer("Enqueue", err)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	after := map[string]string{}
	db.View(func(tx *bolt.Tx) error {
		for _, name := range records {
			tx.Bucket(name).ForEach(func(k, v []byte) error {
				after[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		}
		return nil
	})
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the writers changed the records of the newer release (-before +after):\n%s", diff)
	}
}
