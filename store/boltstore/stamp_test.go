package boltstore_test

import (
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// TestStampedTimes: the times the store sets itself (a zero CreatedAt or
// UpdatedAt) are UTC, whole microseconds, without a monotonic reading, as
// memstore and pgstore stamp them, whatever zone and precision the clock
// has; and the CreatedAt written back into the webhook equals the one a
// read returns.
func TestStampedTimes(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*3600)
	clocks := map[string]func() time.Time{
		"default": nil, // time.Now: local zone, nanoseconds, monotonic reading
		"local ns": func() time.Time {
			return time.Date(2026, 3, 4, 5, 6, 7, 123456789, zone)
		},
	}
	stamped := func(t *testing.T, what string, got time.Time) {
		t.Helper()
		if got.Location() != time.UTC || got.Nanosecond()%1000 != 0 || got != got.Round(0) {
			t.Errorf("%s = %v (%s), want UTC, whole microseconds, no monotonic reading", what, got, got.Location())
		}
	}
	for name, clock := range clocks {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s, _ := open(t, &boltstore.Options{NoSync: true, Clock: clock})
			w := storetest.NewWebhook("tenant-stamp")
			w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}
			if err := s.CreateWebhook(ctx, w); err != nil {
				t.Fatal(err)
			}
			stamped(t, "CreatedAt written back", w.CreatedAt)
			stamped(t, "UpdatedAt written back", w.UpdatedAt)
			got, err := s.GetWebhook(ctx, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.CreatedAt != w.CreatedAt || got.UpdatedAt != w.UpdatedAt {
				t.Errorf("GetWebhook times %v, %v; CreateWebhook wrote back %v, %v", got.CreatedAt, got.UpdatedAt, w.CreatedAt, w.UpdatedAt)
			}
			up, err := s.UpdateWebhook(ctx, w.ID, func(c *store.Webhook) error {
				c.UpdatedAt = time.Time{}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			stamped(t, "UpdatedAt of UpdateWebhook", up.UpdatedAt)
			d := storetest.NewDelivery(w, "user.login")
			d.CreatedAt, d.UpdatedAt, d.NextAttemptAt = time.Time{}, time.Time{}, time.Time{}
			if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
				t.Fatal(err)
			}
			gd, err := s.GetDelivery(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			stamped(t, "delivery CreatedAt", gd.CreatedAt)
			stamped(t, "delivery NextAttemptAt", gd.NextAttemptAt)
		})
	}
}
