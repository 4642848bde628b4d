package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// modelDelivery is the reference model's view of one delivery.
type modelDelivery struct {
	id, webhookID  string
	status         store.Status
	attempts       int
	roundAttempts  int
	due            time.Time
	owner          string
	leaseExpiresAt time.Time
}

// modelTest drives a fresh store with a long random (but seeded, so
// reproducible) sequence of Enqueue, Claim, Complete, Release, Redeliver and
// webhook disables, and checks every answer against a brute-force model of
// the contract.
func modelTest(seed uint64) func(t *testing.T, h *harness) {
	return func(t *testing.T, h *harness) { runModel(t, h, seed) }
}

func runModel(t *testing.T, h *harness, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	tn := h.tenant()
	var hooks []*store.Webhook
	for range 3 {
		hooks = append(hooks, h.webhook(t, tn, nil))
	}
	owners := []string{"alpha", "beta", "gamma"}
	model := make(map[string]*modelDelivery)
	var order []string // ids in enqueue order, for reproducible picks
	// inactive holds the webhooks a Complete disabled.
	inactive := make(map[string]bool)
	now := Base
	dur := func(maxSeconds int) time.Duration {
		return time.Duration(rng.IntN(maxSeconds*1000)) * time.Millisecond
	}
	pick := func(keep func(m *modelDelivery) bool) *modelDelivery {
		var c []*modelDelivery
		for _, id := range order {
			if m := model[id]; keep(m) {
				c = append(c, m)
			}
		}
		if len(c) == 0 {
			return nil
		}
		return c[rng.IntN(len(c))]
	}
	leased := func(m *modelDelivery) bool { return m.status == store.StatusPending && m.owner != "" }

	for step := range 400 {
		what := ""
		switch r := rng.IntN(100); {
		case r < 20: // enqueue
			what = "Enqueue"
			var batch []*store.Delivery
			for range 1 + rng.IntN(4) {
				w := hooks[rng.IntN(len(hooks))]
				d := NewDelivery(w, "workflow.completed")
				d.NextAttemptAt = now.Add(dur(60) - 10*time.Second)
				batch = append(batch, d)
			}
			h.enqueue(t, batch...)
			for _, d := range batch {
				model[d.ID] = &modelDelivery{id: d.ID, webhookID: d.WebhookID, status: store.StatusPending, due: d.NextAttemptAt}
				order = append(order, d.ID)
			}
		case r < 45: // claim
			what = "Claim"
			p := store.ClaimParams{Now: now, Limit: 1 + rng.IntN(5), Lease: Lease, Owner: owners[rng.IntN(len(owners))]}
			if rng.IntN(3) == 0 {
				p.SkipWebhooks = []string{hooks[rng.IntN(len(hooks))].ID}
			}
			var want []*modelDelivery
			for _, m := range model {
				if m.status == store.StatusPending && !m.due.After(now) &&
					(m.owner == "" || !m.leaseExpiresAt.After(now)) && !slices.Contains(p.SkipWebhooks, m.webhookID) {
					want = append(want, m)
				}
			}
			slices.SortFunc(want, func(a, b *modelDelivery) int {
				if c := a.due.Compare(b.due); c != 0 {
					return c
				}
				return cmp.Compare(a.id, b.id)
			})
			want = want[:min(len(want), p.Limit)]
			got, err := h.s.Claim(h.ctx, p)
			if err != nil {
				t.Fatalf("step %d: Claim: %v", step, err)
			}
			wantIDs := make([]string, len(want))
			for i, m := range want {
				wantIDs[i] = m.id
				m.owner, m.leaseExpiresAt = p.Owner, now.Add(p.Lease)
			}
			if d := diff(wantIDs, ids(got)); d != "" {
				for _, g := range got {
					switch m := model[g.ID]; {
					case m == nil:
						d += fmt.Sprintf("\nunexpected %s: this test never enqueued it", g.ID)
					case !slices.Contains(wantIDs, g.ID):
						d += fmt.Sprintf("\nunexpected %s: model %+v", g.ID, *m)
					}
				}
				t.Fatalf("step %d: Claim(%+v) (-want +got):\n%s", step, p, d)
			}
		case r < 70: // complete
			what = "Complete"
			m := pick(leased)
			if m == nil {
				break
			}
			owner := m.owner
			thief := rng.IntN(5) == 0
			if thief {
				owner = owners[(slices.Index(owners, m.owner)+1)%len(owners)]
			}
			p := store.CompleteParams{DeliveryID: m.id, Owner: owner, Now: now}
			switch rng.IntN(4) {
			case 0, 1:
				p.Status, p.NextAttemptAt = store.StatusPending, now.Add(dur(40))
				p.Attempt = NewAttempt(m.id, m.attempts+1, 500)
				p.KeepRoundAttempts = rng.IntN(3) == 0
			case 2:
				p.Status, p.Attempt = store.StatusSuccess, NewAttempt(m.id, m.attempts+1, 200)
			default:
				p.Status, p.Attempt = store.StatusFailed, NewAttempt(m.id, m.attempts+1, 0)
				if rng.IntN(4) == 0 {
					p.DisableWebhook = "410 Gone at step " + fmt.Sprint(step)
				}
			}
			err := h.s.Complete(h.ctx, p)
			if thief {
				if !errors.Is(err, store.ErrLeaseLost) {
					t.Fatalf("step %d: Complete by a non-owner: %v, want ErrLeaseLost", step, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("step %d: Complete: %v", step, err)
			}
			m.attempts++
			m.status, m.owner, m.leaseExpiresAt = p.Status, "", time.Time{}
			if p.Status == store.StatusPending {
				m.due = p.NextAttemptAt
				if inactive[m.webhookID] {
					m.status = store.StatusFailed
				}
			}
			if !p.KeepRoundAttempts || m.status != store.StatusPending {
				m.roundAttempts++ // an attempt that ends the delivery counts
			}
			if p.DisableWebhook != "" {
				inactive[m.webhookID] = true
				for _, o := range model {
					if o.webhookID == m.webhookID && o.status == store.StatusPending &&
						(o.owner == "" || !o.leaseExpiresAt.After(now)) {
						o.status, o.owner, o.leaseExpiresAt = store.StatusFailed, "", time.Time{}
					}
				}
			}
		case r < 80: // release
			what = "Release"
			owner := owners[rng.IntN(len(owners))]
			var rel []string
			for _, id := range order {
				if m := model[id]; leased(m) && rng.IntN(2) == 0 {
					rel = append(rel, id)
					if m.owner == owner {
						m.owner, m.leaseExpiresAt = "", time.Time{}
					}
				}
			}
			if err := h.s.Release(h.ctx, store.ReleaseParams{Owner: owner, IDs: rel}); err != nil {
				t.Fatalf("step %d: Release: %v", step, err)
			}
		case r < 88: // redeliver
			what = "Redeliver"
			m := pick(func(m *modelDelivery) bool { return true })
			if m == nil {
				break
			}
			_, err := h.s.Redeliver(h.ctx, store.RedeliverParams{ID: m.id, Now: now})
			if m.status == store.StatusPending {
				if !errors.Is(err, store.ErrConflict) {
					t.Fatalf("step %d: Redeliver of a pending delivery: %v, want ErrConflict", step, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("step %d: Redeliver: %v", step, err)
			}
			m.status, m.roundAttempts, m.due, m.owner, m.leaseExpiresAt = store.StatusPending, 0, now, "", time.Time{}
		default: // time passes
			what = "Advance"
			now = now.Add(dur(20))
		}
		if step%50 == 49 || step == 399 {
			checkModel(t, h, model, fmt.Sprintf("step %d (%s)", step, what))
		}
	}
}

// checkModel compares every delivery in the store with the model.
func checkModel(t *testing.T, h *harness, model map[string]*modelDelivery, when string) {
	t.Helper()
	for id, m := range model {
		d := h.getDelivery(t, id)
		got := modelDelivery{
			id: d.ID, webhookID: d.WebhookID, status: d.Status, attempts: d.Attempts, roundAttempts: d.RoundAttempts,
			due: d.NextAttemptAt, owner: d.LeaseOwner, leaseExpiresAt: d.LeaseExpiresAt,
		}
		if dd := cmpModel(*m, got); dd != "" {
			t.Fatalf("%s: delivery %s differs from the model: %s", when, id, dd)
		}
	}
}

func cmpModel(want, got modelDelivery) string {
	switch {
	case want.status != got.status:
		return fmt.Sprintf("status %s, want %s", got.status, want.status)
	case want.attempts != got.attempts || want.roundAttempts != got.roundAttempts:
		return fmt.Sprintf("attempts %d/%d, want %d/%d", got.attempts, got.roundAttempts, want.attempts, want.roundAttempts)
	case want.status == store.StatusPending && !want.due.Equal(got.due):
		return fmt.Sprintf("due %v, want %v", got.due, want.due)
	case want.owner != got.owner || !want.leaseExpiresAt.Equal(got.leaseExpiresAt):
		return fmt.Sprintf("leased by %q until %v, want %q until %v", got.owner, got.leaseExpiresAt, want.owner, want.leaseExpiresAt)
	}
	return ""
}
