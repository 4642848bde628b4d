package boltstore_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// TestLargeRecords stores bodies, headers and response bodies many pages
// long (the dispatcher's default 256 KiB payload cap, and 4 MiB for a host
// that raised it), holding every byte value, and reads them back intact after
// a reopen.
func TestLargeRecords(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, nil)
	w := storetest.NewWebhook("tenant-large")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	r := rand.NewChaCha8([32]byte{1})
	noise := func(n int) []byte {
		b := make([]byte, n)
		r.Read(b)
		return b
	}
	var ds []*store.Delivery
	for _, size := range []int{256<<10 + 300, 4 << 20} {
		d := storetest.NewDelivery(w, "user.login")
		d.Body = noise(size)
		ds = append(ds, d)
	}
	if _, err := s.Enqueue(ctx, ds); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: 10, Lease: time.Minute, Owner: "o"})
	if err != nil || len(claimed) != len(ds) {
		t.Fatalf("Claim: %d deliveries, %v", len(claimed), err)
	}
	attempts := map[string]*store.Attempt{}
	for _, d := range ds {
		a := storetest.NewAttempt(d.ID, 1, 200)
		a.RequestHeaders = http.Header{}
		for i := range 20 {
			a.RequestHeaders.Set("X-Custom-"+strings.Repeat("h", i), string(noise(4<<10)))
		}
		a.ResponseHeaders = http.Header{"X-Large": {string(noise(64 << 10))}}
		a.ResponseBody = noise(1 << 20)
		attempts[d.ID] = a
		err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Status: store.StatusSuccess, Now: storetest.Base, Attempt: a})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := boltstore.CheckFile(path); err != nil {
		t.Fatal(err)
	}
	s, err = boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range ds {
		got, err := s.GetDelivery(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Body, d.Body) {
			t.Errorf("delivery %s: the %d-byte body read back differs", d.ID, len(d.Body))
		}
		as, err := s.ListAttempts(ctx, d.ID)
		if err != nil || len(as) != 1 {
			t.Fatalf("ListAttempts: %d, %v", len(as), err)
		}
		// cmp walks a byte slice element by element: the response body is
		// compared on its own.
		stored, read := *attempts[d.ID], *as[0]
		if !bytes.Equal(stored.ResponseBody, read.ResponseBody) {
			t.Errorf("attempt of %s: the %d-byte response body read back differs", d.ID, len(stored.ResponseBody))
		}
		stored.ResponseBody, read.ResponseBody = nil, nil
		if diff := cmp.Diff(stored, read); diff != "" {
			t.Errorf("attempt of %s (-stored +read):\n%.2000s", d.ID, diff)
		}
	}
}

// TestSteadyFileSize runs rounds of enqueue, claim, complete and purge
// with a retention of a few rounds: the deliveries alive at once stay
// about the same, and so must the file, its freed pages reused. A leak of
// pages (or of records Purge leaves) grows it with every round.
func TestSteadyFileSize(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, &boltstore.Options{NoSync: true})
	w := storetest.NewWebhook("tenant-steady")
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	const (
		rounds    = 36
		warmup    = 9
		perRound  = 200
		retention = 4 // rounds
	)
	body := bytes.Repeat([]byte("b"), 3000)
	now := storetest.Base
	var warm int64
	for round := range rounds {
		var ds []*store.Delivery
		for range perRound {
			d := storetest.NewDelivery(w, "user.login")
			d.Body, d.NextAttemptAt = body, now
			ds = append(ds, d)
		}
		if _, err := s.Enqueue(ctx, ds); err != nil {
			t.Fatal(err)
		}
		for {
			claimed, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 100, Lease: time.Minute, Owner: "o"})
			if err != nil {
				t.Fatal(err)
			}
			if len(claimed) == 0 {
				break
			}
			for _, d := range claimed {
				err := s.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "o", Status: store.StatusSuccess,
					Now: now, Attempt: storetest.NewAttempt(d.ID, 1, 200)})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		now = now.Add(time.Minute)
		if _, err := s.Purge(ctx, store.PurgeParams{Before: now.Add(-retention * time.Minute), Limit: 1000}); err != nil {
			t.Fatal(err)
		}
		if round == warmup-1 {
			warm = fileSize(t, path)
		}
	}
	c, err := s.CountDeliveries(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Success != retention*perRound {
		t.Errorf("%d deliveries kept, want the last %d rounds' %d", c.Success, retention, retention*perRound)
	}
	// bbolt grows a file in steps that double up to 1 GiB: twice the size
	// after the warm-up is one step of slack, and well under what the
	// deliveries of all the rounds (about 22 MB) would take.
	if size := fileSize(t, path); size > 2*warm {
		t.Errorf("the file grew from %d bytes after %d rounds to %d after %d, with the same deliveries alive", warm, warmup, size, rounds)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestDeleteWebhookMany deletes a webhook whose deliveries, in every state,
// span many pages of every index: the file must not grow for it, and what
// is left (another webhook's deliveries, counters included) must agree
// with its indexes.
func TestDeleteWebhookMany(t *testing.T) {
	ctx := t.Context()
	s, path := open(t, &boltstore.Options{NoSync: true})
	gone, kept := storetest.NewWebhook("tenant-many"), storetest.NewWebhook("tenant-many")
	for _, w := range []*store.Webhook{gone, kept} {
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	const batches, perBatch = 20, 250
	for range batches {
		var ds []*store.Delivery
		for range perBatch {
			ds = append(ds, storetest.NewDelivery(gone, "user.login"))
		}
		ds = append(ds, storetest.NewDelivery(kept, "user.login"))
		if _, err := s.Enqueue(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	// Leave deliveries finished (with attempts), pending again after an
	// attempt, and leased, of both webhooks.
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: storetest.Base, Limit: store.MaxPageLimit, Lease: time.Minute, Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range claimed {
		p := store.CompleteParams{DeliveryID: d.ID, Owner: "o", Status: store.StatusSuccess, Now: storetest.Base, Attempt: storetest.NewAttempt(d.ID, 1, 200)}
		switch i % 3 {
		case 1:
			p.Status, p.NextAttemptAt = store.StatusPending, storetest.Base.Add(time.Hour)
		case 2:
			continue // stays leased
		}
		if err := s.Complete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	want, err := s.CountDeliveries(ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)
	if err := s.DeleteWebhook(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if size := fileSize(t, path); size > before {
		t.Errorf("DeleteWebhook grew the file from %d to %d bytes", before, size)
	}
	if got, err := s.CountDeliveries(ctx, kept.ID); err != nil || got != want {
		t.Errorf("the other webhook counts %+v (%v), want %+v as before", got, err, want)
	}
	if _, err := s.CountDeliveries(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CountDeliveries of the deleted webhook: %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := boltstore.CheckFile(path); err != nil {
		t.Error(err)
	}
}
