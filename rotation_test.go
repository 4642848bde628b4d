package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// TestRotationsInGraceAreBounded rotates a webhook's secret again and
// again inside the grace period, through a real Registry, and counts the
// signatures a real receiver gets from a real dispatcher. Every secret in
// its grace period signs every attempt, 48 bytes of webhook-signature
// each, so without a bound about 170 rotations take that one header past
// the 8 KiB that common proxies accept. The rotations beyond
// DefaultMaxPreviousSecrets are refused, nothing they would have changed
// is stored, and the attempt carries one signature per accepted secret: a
// revocation (grace 0) is still accepted, and so is a rotation once the
// first previous secret has expired.
func TestRotationsInGraceAreBounded(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		ctx := context.Background()
		st := newStore(t)
		clock := newFakeClock()
		rc := newReceiver(t, nil)
		reg := NewRegistry(st, RegistryOptions{Now: clock.Now, AllowHTTP: true})
		w, err := reg.Create(ctx, "acme", WebhookInput{URL: rc.URL + "/hook", Events: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Now = clock.Now
		cfg.WebhookCacheTTL = time.Nanosecond // every attempt reads the webhook
		d := startDispatcher(t, st, cfg)

		// deliver emits an event and returns the signatures its attempt
		// carries, checking that each secret of want verifies it alone.
		// It returns once the attempt is recorded: the test then moves the
		// clock past the attempt's lease, and an attempt still waiting for
		// its record would be claimed and sent again.
		deliver := func(when string, want []string) []string {
			t.Helper()
			res, err := d.Emit(ctx, Event{Type: EventWorkflowCompleted, Tenant: "acme", Data: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			got := rc.next(t)
			if id := got.header.Get("X-Webhook-Delivery"); id != res.DeliveryIDs[0] {
				t.Fatalf("%s: the receiver got delivery %s (attempt %s), want %s", when, id, got.header.Get("X-Webhook-Attempt"), res.DeliveryIDs[0])
			}
			waitStatus(t, st, res.DeliveryIDs[0], store.StatusSuccess, 1)
			for i, s := range want {
				v, err := NewVerifier([]string{s}, VerifyOptions{Now: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Verify(got.body, got.header); err != nil {
					t.Errorf("%s: secret %d of %d does not verify: %v", when, i+1, len(want), err)
				}
			}
			return strings.Fields(got.header.Get(HeaderStandardSignature))
		}

		const grace = time.Hour
		accepted := []string{w.Secrets[0].Value} // newest first
		firstRotation := clock.Now()
		var refused int
		for i := range 3 * DefaultMaxPreviousSecrets {
			got, err := reg.RotateSecret(ctx, "acme", w.ID, grace)
			var le *RotationLimitError
			switch {
			case err == nil:
				accepted = append([]string{got.Secrets[0].Value}, accepted...)
			case errors.As(err, &le) && errors.Is(err, ErrRotationLimit):
				refused++
				if le.Limit != DefaultMaxPreviousSecrets || !le.NextExpiry.Equal(firstRotation.Add(grace)) {
					t.Errorf("rotation %d: %+v, want limit %d and the first rotation's expiry %v",
						i+1, le, DefaultMaxPreviousSecrets, firstRotation.Add(grace))
				}
			default:
				t.Fatalf("rotation %d: %v", i+1, err)
			}
			clock.Advance(time.Minute)
		}
		if want := 2 * DefaultMaxPreviousSecrets; refused != want {
			t.Errorf("%d rotations refused, want %d", refused, want)
		}
		sigs := deliver("after the refused rotations", accepted)
		if len(sigs) != DefaultMaxPreviousSecrets+1 {
			t.Fatalf("%d signatures after %d rotations in the grace period, want at most %d",
				len(sigs), 3*DefaultMaxPreviousSecrets, DefaultMaxPreviousSecrets+1)
		}
		stored, err := st.GetWebhook(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Secrets[0].Value != accepted[0] {
			t.Error("a refused rotation changed the current secret")
		}

		// Once the first previous secret expires, a rotation is accepted
		// and the count stays at the bound.
		clock.Advance(firstRotation.Add(grace).Sub(clock.Now()))
		got, err := reg.RotateSecret(ctx, "acme", w.ID, grace)
		if err != nil {
			t.Fatalf("rotation after the first expiry: %v", err)
		}
		accepted = append([]string{got.Secrets[0].Value}, accepted[:len(accepted)-1]...)
		if sigs := deliver("after the first expiry", accepted); len(sigs) != DefaultMaxPreviousSecrets+1 {
			t.Errorf("%d signatures after the first expiry, want %d", len(sigs), DefaultMaxPreviousSecrets+1)
		}

		// A revocation is never refused and leaves one signature.
		got, err = reg.RotateSecret(ctx, "acme", w.ID, 0)
		if err != nil {
			t.Fatalf("revocation at the limit: %v", err)
		}
		if sigs := deliver("after a revocation", []string{got.Secrets[0].Value}); len(sigs) != 1 {
			t.Errorf("%d signatures after a revocation, want 1", len(sigs))
		}
	})
}
