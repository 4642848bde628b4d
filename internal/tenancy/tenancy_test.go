package tenancy_test

import (
	"errors"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/tenancy"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/memstore"
	"github.com/noa-server/webhook/store/storetest"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"wh_0190b6a0-0000-7000-8000-000000000000": true,
		"wh_a_B-9": true,
		"wh_":      false,
		"del_abc":  false, // another prefix
		"wh_a/b":   false,
		"wh_a b":   false,
		"wh_é":     false,
		"wh_../x":  false,
		"WH_abc":   false,
	} {
		if got := tenancy.ValidID(id, "wh_"); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
	long := "wh_"
	for range 100 {
		long += "a"
	}
	if !tenancy.ValidID(long, "wh_") || tenancy.ValidID(long+"a", "wh_") {
		t.Error("ValidID: 100 characters after the prefix are the most")
	}
}

// Another tenant's records are answered exactly like missing ones.
func TestLookups(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	ctx := t.Context()
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{})
	mine, theirs := storetest.NewWebhook("acme"), storetest.NewWebhook("globex")
	other := storetest.NewWebhook("acme")
	for _, w := range []*store.Webhook{mine, theirs, other} {
		if err := st.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	d := storetest.NewDelivery(mine, "workflow.completed")
	dOther := storetest.NewDelivery(other, "workflow.completed")
	if _, err := st.Enqueue(ctx, []*store.Delivery{d, dOther}); err != nil {
		t.Fatal(err)
	}

	if w, err := tenancy.Webhook(ctx, reg, "acme", mine.ID); err != nil || w.ID != mine.ID {
		t.Errorf("Webhook(own) = %v, %v", w, err)
	}
	if w, got, err := tenancy.Delivery(ctx, reg, st, "acme", mine.ID, d.ID); err != nil || w.ID != mine.ID || got.ID != d.ID {
		t.Errorf("Delivery(own) = %v, %v, %v", w, got, err)
	}
	for _, c := range []struct {
		name, tenant, webhookID, deliveryID string
		want                                error
	}{
		{"another tenant's webhook", "acme", theirs.ID, "", tenancy.ErrNoWebhook},
		{"a webhook for another tenant", "globex", mine.ID, "", tenancy.ErrNoWebhook},
		{"a missing webhook", "acme", "wh_0190b6a0-0000-7000-8000-000000000000", "", tenancy.ErrNoWebhook},
		{"a malformed webhook id", "acme", "wh_../" + mine.ID, "", tenancy.ErrNoWebhook},
		{"another webhook's delivery", "acme", mine.ID, dOther.ID, tenancy.ErrNoDelivery},
		{"a missing delivery", "acme", mine.ID, "del_0190b6a0-0000-7000-8000-000000000000", tenancy.ErrNoDelivery},
		{"a malformed delivery id", "acme", mine.ID, "del_?", tenancy.ErrNoDelivery},
		{"a delivery through another tenant", "globex", mine.ID, d.ID, tenancy.ErrNoWebhook},
	} {
		var err error
		if c.deliveryID == "" {
			_, err = tenancy.Webhook(ctx, reg, c.tenant, c.webhookID)
		} else {
			_, _, err = tenancy.Delivery(ctx, reg, st, c.tenant, c.webhookID, c.deliveryID)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

// Usable takes the tenants the Registry takes, and no other.
func TestUsable(t *testing.T) {
	reg := webhook.NewRegistry(memstore.New(), webhook.RegistryOptions{})
	for _, tenant := range []string{"acme", "caf\u00e9", "a b", "", "acme\x00", "acm\xe9", "\xff"} {
		_, err := reg.Get(t.Context(), tenant, "wh_1")
		refused := errors.Is(err, webhook.ErrValidation)
		if tenancy.Usable(tenant) == refused {
			t.Errorf("Usable(%q) = %v; the Registry answers %v", tenant, tenancy.Usable(tenant), err)
		}
	}
}

// Attempts leaves out an attempt recorded after its delivery was read, so
// a page's count and attempt list agree, and answers a delivery deleted
// since like a missing one.
func TestAttempts(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	ctx := t.Context()
	w := storetest.NewWebhook("acme")
	if err := st.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	d := storetest.NewDelivery(w, "workflow.completed")
	if _, err := st.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	attempt := func(n int) {
		t.Helper()
		now := time.Now()
		if _, err := st.Claim(ctx, store.ClaimParams{Owner: "o", Limit: 1, Lease: time.Minute, Now: now}); err != nil {
			t.Fatal(err)
		}
		err := st.Complete(ctx, store.CompleteParams{
			DeliveryID: d.ID, Owner: "o", Now: now, Status: store.StatusPending, NextAttemptAt: now,
			Attempt: &store.Attempt{DeliveryID: d.ID, Number: n, StartedAt: now, ResponseStatus: 500},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	attempt(1)
	read, err := st.GetDelivery(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	attempt(2) // between the page's two reads
	as, err := tenancy.Attempts(ctx, st, read)
	if err != nil || len(as) != 1 || as[0].Number != 1 {
		t.Fatalf("Attempts of a delivery read with 1 attempt, after a second = %v, %v; want attempt 1 alone", as, err)
	}
	if err := st.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tenancy.Attempts(ctx, st, read); !errors.Is(err, tenancy.ErrNoDelivery) {
		t.Errorf("Attempts of a deleted delivery: err = %v, want ErrNoDelivery", err)
	}
}
