package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

var timeTests = []subtest{
	{"WallClock", testTimesWallClock},
	{"Results", testTimesResults},
	{"Locations", testTimesLocations},
}

// hasMonotonic reports whether t carries a monotonic clock reading: its
// String then ends in "m=±<value>" (see time.Time.String).
func hasMonotonic(t time.Time) bool { return strings.Contains(t.String(), " m=") }

// testTimesWallClock feeds every method that stores a time values from
// time.Now, which carry a monotonic clock reading, and checks that no time
// read back carries one. A time with a reading is compared by it
// (time.Time.Before, After, Equal) with another that has one; a time read
// from disk or a database has none, and is compared by the wall clock. A
// store that kept the readings would decide which deliveries are due,
// which leases have expired and which secrets still sign by elapsed process
// time once the wall clock steps (an NTP correction, a suspended machine or
// VM resuming: the monotonic clock stops while suspended), unlike a durable
// store, and its order of due deliveries would mix the two clocks.
func testTimesWallClock(t *testing.T, h *harness) {
	base := time.Now()
	if !hasMonotonic(base) {
		t.Skip("time.Now gives no monotonic clock reading on this platform")
	}
	at := func(d time.Duration) time.Time { return base.Add(d) } // keeps the reading
	check := func(what string, ts map[string]time.Time) {
		t.Helper()
		for field, v := range ts {
			if hasMonotonic(v) {
				t.Errorf("%s: %s = %v carries a monotonic clock reading", what, field, v)
			}
		}
	}
	checkWebhook := func(what string, w *store.Webhook) {
		t.Helper()
		ts := map[string]time.Time{"CreatedAt": w.CreatedAt, "UpdatedAt": w.UpdatedAt}
		for i, s := range w.Secrets {
			ts[fmt.Sprintf("Secrets[%d].ExpiresAt", i)] = s.ExpiresAt
		}
		check(what, ts)
	}
	checkDelivery := func(what string, d *store.Delivery) {
		t.Helper()
		check(what+" "+d.ID, map[string]time.Time{
			"NextAttemptAt": d.NextAttemptAt, "LeaseExpiresAt": d.LeaseExpiresAt,
			"CreatedAt": d.CreatedAt, "UpdatedAt": d.UpdatedAt,
		})
	}
	checkStored := func(what string, w *store.Webhook, ds ...*store.Delivery) {
		t.Helper()
		checkWebhook(what+": GetWebhook", h.getWebhook(t, w.ID))
		ws, _, err := h.s.ListWebhooks(h.ctx, store.ListWebhooksParams{Tenant: w.Tenant, Limit: 10})
		if err != nil {
			t.Fatalf("ListWebhooks: %v", err)
		}
		for _, got := range ws {
			checkWebhook(what+": ListWebhooks", got)
		}
		ws, err = h.s.MatchWebhooks(h.ctx, w.Tenant, "workflow.completed")
		if err != nil {
			t.Fatalf("MatchWebhooks: %v", err)
		}
		for _, got := range ws {
			checkWebhook(what+": MatchWebhooks", got)
		}
		for _, d := range ds {
			checkDelivery(what+": GetDelivery", h.getDelivery(t, d.ID))
			as, err := h.s.ListAttempts(h.ctx, d.ID)
			if err != nil {
				t.Fatalf("ListAttempts: %v", err)
			}
			for _, a := range as {
				check(what+": ListAttempts", map[string]time.Time{"StartedAt": a.StartedAt})
			}
		}
		page, _, err := h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{Tenant: w.Tenant, Limit: 10})
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		for _, d := range page {
			checkDelivery(what+": ListDeliveries", d)
		}
	}

	w := h.webhook(t, h.tenant(), func(w *store.Webhook) {
		w.CreatedAt, w.UpdatedAt = at(0), at(time.Second)
		w.Secrets[1].ExpiresAt = at(24 * time.Hour)
	})
	checkStored("after CreateWebhook", w)

	_, err := h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
		c.UpdatedAt = at(2 * time.Second)
		c.Secrets = []store.Secret{{Value: "whsec_new"}, {Value: c.Secrets[0].Value, ExpiresAt: at(48 * time.Hour)}}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
	checkStored("after UpdateWebhook", w)

	free := NewDelivery(w, "workflow.completed")
	free.CreatedAt, free.UpdatedAt, free.NextAttemptAt = at(0), at(0), at(0)
	leased := NewDelivery(w, "workflow.completed")
	leased.CreatedAt, leased.UpdatedAt, leased.NextAttemptAt = at(0), at(0), at(0)
	leased.LeaseOwner, leased.LeaseExpiresAt = "sender", at(Lease)
	h.enqueue(t, free, leased)
	checkStored("after Enqueue", w, free, leased)

	claimed := h.claim(t, at(time.Minute), 10, "claimer") // both: the enqueued lease has expired
	if len(claimed) != 2 {
		t.Fatalf("Claim = %q, want both deliveries", ids(claimed))
	}
	checkStored("after Claim", w, free, leased)

	a := NewAttempt(free.ID, 1, 503)
	a.StartedAt = at(time.Minute)
	err = h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: free.ID, Owner: "claimer", Attempt: a,
		Status: store.StatusPending, NextAttemptAt: at(5 * time.Minute), Now: at(2 * time.Minute),
	})
	if err != nil {
		t.Fatalf("Complete to pending: %v", err)
	}
	checkStored("after Complete to pending", w, free, leased)

	// A 410: the webhook and its other pending delivery take Now.
	a = NewAttempt(leased.ID, 1, 410)
	a.StartedAt = at(time.Minute)
	err = h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: leased.ID, Owner: "claimer", Attempt: a,
		Status: store.StatusFailed, DisableWebhook: "gone", Now: at(3 * time.Minute),
	})
	if err != nil {
		t.Fatalf("Complete disabling the webhook: %v", err)
	}
	checkStored("after Complete with DisableWebhook", w, free, leased)

	_, err = h.s.Redeliver(h.ctx, store.RedeliverParams{ID: leased.ID, Now: at(4 * time.Minute)})
	if err != nil {
		t.Fatalf("Redeliver: %v", err)
	}
	checkStored("after Redeliver", w, free, leased)
}

// testTimesResults checks that the records UpdateWebhook, Claim and
// Redeliver return hold their times as stored, given times from time.Now
// (nanoseconds, a monotonic clock reading): equal to what a read finds
// afterwards, and without a monotonic reading. A caller compares them with
// its own clock (the dispatcher gives back a claimed delivery whose lease
// has not enough time left for an attempt): with a reading it would
// measure the lease by elapsed process time, while the store, and every
// other replica, measure it by the wall clock.
func testTimesResults(t *testing.T, h *harness) {
	base := time.Now()
	if !hasMonotonic(base) {
		t.Skip("time.Now gives no monotonic clock reading on this platform")
	}
	at := func(d time.Duration) time.Time { return base.Add(d) } // keeps the reading
	noReading := func(what string, ts ...time.Time) {
		t.Helper()
		for _, v := range ts {
			if hasMonotonic(v) {
				t.Errorf("%s holds %v, with a monotonic clock reading", what, v)
			}
		}
	}

	w := h.webhook(t, h.tenant(), nil)
	got, err := h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
		c.UpdatedAt = at(time.Second)
		c.Secrets = []store.Secret{{Value: "whsec_new"}, {Value: c.Secrets[0].Value, ExpiresAt: at(24 * time.Hour)}}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
	noReading("UpdateWebhook's result", got.CreatedAt, got.UpdatedAt, got.Secrets[1].ExpiresAt)
	if d := diff(h.getWebhook(t, w.ID), got); d != "" {
		t.Errorf("UpdateWebhook returned other than it stored (-stored +returned):\n%s", d)
	}

	d := NewDelivery(w, "workflow.completed")
	d.CreatedAt, d.UpdatedAt, d.NextAttemptAt = at(0), at(0), at(0)
	h.enqueue(t, d)
	claimed := h.claim(t, at(time.Minute), 1, "claimer")
	if len(claimed) != 1 {
		t.Fatalf("Claim = %q, want [%s]", ids(claimed), d.ID)
	}
	c := claimed[0]
	noReading("Claim's result", c.NextAttemptAt, c.LeaseExpiresAt, c.CreatedAt, c.UpdatedAt)
	if diff := diff(h.getDelivery(t, d.ID), c); diff != "" {
		t.Errorf("Claim returned other than it stored (-stored +returned):\n%s", diff)
	}

	a := NewAttempt(d.ID, 1, 200)
	a.StartedAt = at(time.Minute)
	err = h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "claimer", Attempt: a, Status: store.StatusSuccess, Now: at(2 * time.Minute),
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	red, err := h.s.Redeliver(h.ctx, store.RedeliverParams{ID: d.ID, Now: at(3 * time.Minute)})
	if err != nil {
		t.Fatalf("Redeliver: %v", err)
	}
	noReading("Redeliver's result", red.NextAttemptAt, red.CreatedAt, red.UpdatedAt)
	if diff := diff(h.getDelivery(t, d.ID), red); diff != "" {
		t.Errorf("Redeliver returned other than it stored (-stored +returned):\n%s", diff)
	}
}

// testTimesLocations stores times given in locations far from UTC, at the
// ends of the years a time.Time formats with four digits (where a time's
// year in its own location is not its year in UTC), and finds the same
// instants: a store may return a time in any location, but never refuses
// or moves one for the location it was given in.
func testTimesLocations(t *testing.T, h *harness) {
	east, west := time.FixedZone("UTC+14", 14*3600), time.FixedZone("UTC-12", -12*3600)
	late := time.Date(9999, 12, 31, 20, 0, 0, 0, time.UTC).In(east) // the year 10000 in east
	early := time.Date(1, 1, 1, 6, 0, 0, 0, time.UTC).In(west)      // the year 0 in west
	mid := Base.In(east)

	w := NewWebhook(h.tenant())
	w.CreatedAt, w.UpdatedAt = early, late
	w.Secrets[1].ExpiresAt = late
	w.Secrets = append(w.Secrets, store.Secret{Value: "whsec_early", ExpiresAt: early})
	if err := h.s.CreateWebhook(h.ctx, w); err != nil {
		t.Fatalf("CreateWebhook with times in other locations: %v", err)
	}
	if d := diff(w, h.getWebhook(t, w.ID)); d != "" {
		t.Errorf("GetWebhook (-want +got):\n%s", d)
	}
	got, err := h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
		c.UpdatedAt = mid
		c.Secrets = []store.Secret{{Value: "whsec_new"}, {Value: c.Secrets[0].Value, ExpiresAt: late}}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWebhook with times in other locations: %v", err)
	}
	if !got.UpdatedAt.Equal(mid) || !got.Secrets[1].ExpiresAt.Equal(late) {
		t.Errorf("UpdateWebhook stored UpdatedAt %v and expiry %v, want %v and %v", got.UpdatedAt, got.Secrets[1].ExpiresAt, mid, late)
	}
	if d := diff(got, h.getWebhook(t, w.ID)); d != "" {
		t.Errorf("GetWebhook after UpdateWebhook (-returned +got):\n%s", d)
	}

	for _, due := range []time.Time{early, mid, late} {
		d := NewDelivery(w, "workflow.completed")
		d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = due, early, late
		d.LeaseOwner, d.LeaseExpiresAt = "sender", late
		h.enqueue(t, d)
		if dd := diff(d, h.getDelivery(t, d.ID)); dd != "" {
			t.Errorf("GetDelivery of a delivery due at %v (-want +got):\n%s", due, dd)
		}
	}
}
