package webhook

import (
	"context"
	"fmt"
	"sort"
)

// Stats is a snapshot of one Dispatcher's activity since New, for health
// endpoints. Counters count this process's work only; the store's totals per
// webhook come from WebhookStats.
type Stats struct {
	// Running reports whether the delivery loop is started and not stopped.
	Running bool
	// Emitted counts the delivery ids Emit returned (a repeated event id
	// counts again, though the store keeps one delivery).
	Emitted int64
	// InFlight counts attempts in progress now.
	InFlight int
	// Attempts counts finished attempts, those that could not be recorded
	// included (one for each Hooks.AttemptFinished); Succeeded and Failed
	// count deliveries that reached those final states; Retried counts
	// attempts after which the retry policy scheduled the delivery again.
	// An attempt cut short by Stop, due again at once without spending
	// the retry budget, is counted in Attempts only, like one that could
	// not be recorded: Attempts can exceed the sum of the three others.
	Attempts  int64
	Succeeded int64
	Failed    int64
	Retried   int64
	// Webhooks holds the same counters per webhook id, for the webhooks
	// this dispatcher has attempted, sorted by id. A deleted webhook's
	// counters are dropped within Config.PurgeInterval (the totals above
	// keep them).
	Webhooks []WebhookStats
}

// WebhookStats holds one webhook's counters, with the meanings of the
// same fields of Stats.
type WebhookStats struct {
	// WebhookID is the webhook counted.
	WebhookID string
	// Pending, Succeeded and Failed are the store's tallies of the
	// webhook's deliveries when returned by Dispatcher.WebhookStats; in
	// Stats they count this dispatcher's work, and Pending is zero.
	Pending   int64
	InFlight  int
	Attempts  int64
	Succeeded int64
	Failed    int64
	Retried   int64
}

// counters are guarded by Dispatcher.mu.
type counters struct {
	emitted  int64
	attempts int64
	success  int64
	failed   int64
	retried  int64
	per      map[string]*WebhookStats
}

func (c *counters) webhook(id string) *WebhookStats {
	s := c.per[id]
	if s == nil {
		if c.per == nil {
			c.per = make(map[string]*WebhookStats)
		}
		s = &WebhookStats{WebhookID: id}
		c.per[id] = s
	}
	return s
}

// Stats returns a snapshot of the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Stats{
		Running:   d.state == stateRunning,
		Emitted:   d.stats.emitted,
		InFlight:  d.inflight - d.parked, // parked deliveries are claimed, not in flight
		Attempts:  d.stats.attempts,
		Succeeded: d.stats.success,
		Failed:    d.stats.failed,
		Retried:   d.stats.retried,
		Webhooks:  make([]WebhookStats, 0, len(d.stats.per)),
	}
	for id, w := range d.stats.per {
		ws := *w
		if h := d.hooks[id]; h != nil {
			ws.InFlight = h.inflight - len(h.parked)
		}
		s.Webhooks = append(s.Webhooks, ws)
	}
	sort.Slice(s.Webhooks, func(i, j int) bool { return s.Webhooks[i].WebhookID < s.Webhooks[j].WebhookID })
	return s
}

// WebhookStats returns one webhook's delivery tallies from the store
// (pending, succeeded, failed: all processes, all time until purged) with
// this dispatcher's in-flight, attempt and retry counters. It returns
// store.ErrNotFound when the webhook does not exist. It does not check
// the webhook's tenant.
func (d *Dispatcher) WebhookStats(ctx context.Context, webhookID string) (WebhookStats, error) {
	c, err := d.st.CountDeliveries(ctx, webhookID)
	if err != nil {
		return WebhookStats{}, fmt.Errorf("webhook: count deliveries: %w", err)
	}
	ws := WebhookStats{WebhookID: webhookID, Pending: c.Pending, Succeeded: c.Success, Failed: c.Failed}
	d.mu.Lock()
	if h := d.hooks[webhookID]; h != nil {
		ws.InFlight = h.inflight - len(h.parked)
	}
	if w := d.stats.per[webhookID]; w != nil {
		ws.Attempts = w.Attempts
		ws.Retried = w.Retried
	}
	d.mu.Unlock()
	return ws, nil
}
