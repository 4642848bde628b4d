package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/noa-server/webhook/store"
)

// Hooks receives the dispatcher's lifecycle events, so a host can feed
// metrics (Prometheus, OpenTelemetry) or notify webhook owners. Methods are
// called synchronously from delivery goroutines: they must be quick, safe
// for concurrent use, and must not call back into the Dispatcher's Stop.
// A method that panics is logged (at Error) and the delivery goes on as if
// it had returned. Embed NopHooks to implement only some of them.
type Hooks interface {
	// AttemptStarted is called when an attempt begins: just before its
	// request is sent, or, for an attempt that sends none (its webhook is
	// inactive, its URL cannot be sent to), before it is recorded. Every
	// AttemptStarted is followed by exactly one AttemptFinished for the
	// same attempt, even when its record fails, so that started minus
	// finished is the number of attempts in progress.
	AttemptStarted(ctx context.Context, info AttemptInfo)
	// AttemptFinished is called after an attempt is recorded, with its
	// outcome and duration. It is called too for an attempt that could
	// not be recorded, the store having failed (a failure that may pass
	// is tried again, with backoff, while the delivery's lease lasts) or
	// the lease having been lost (store.ErrLeaseLost; logged at Warn
	// either way). Its StatusCode, ErrorClass and Duration then say what
	// the attempt met, but its Outcome is empty, the delivery's next state
	// being unknown (it is normally attempted again once its lease runs
	// out), and neither DeliverySucceeded nor DeliveryFailed follows.
	AttemptFinished(ctx context.Context, info AttemptInfo)
	// DeliverySucceeded is called when a delivery got a 2xx.
	DeliverySucceeded(ctx context.Context, d *Delivery)
	// DeliveryFailed is called when a delivery is failed for good by one
	// of its attempts: its retry budget is spent, or its webhook answered
	// 410 Gone or is inactive. err is a *DeliveryError. The webhook's
	// other pending deliveries, which the store fails together with the
	// one that met 410 Gone, are not reported one by one (nor counted in
	// Stats.Failed): WebhookDisabled stands for them.
	DeliveryFailed(ctx context.Context, d *Delivery, err error)
	// WebhookDisabled is called when the dispatcher deactivated a webhook
	// (after 410 Gone), with the reason it stored; the webhook's pending
	// deliveries failed with it, but for those with an attempt in flight,
	// reported by their attempts as they end.
	WebhookDisabled(ctx context.Context, webhookID, reason string)
}

// AttemptInfo describes one attempt for Hooks.
type AttemptInfo struct {
	DeliveryID string
	WebhookID  string
	EventID    string
	EventType  string
	Tenant     string
	// Attempt is the attempt number, from 1.
	Attempt int
	// The fields below are set for AttemptFinished only.
	//
	// StatusCode is 0 when no response arrived.
	StatusCode int
	// ErrorClass is empty when the attempt succeeded.
	ErrorClass store.ErrorClass
	// Duration is how long the HTTP exchange took.
	Duration time.Duration
	// Outcome is the delivery's state after the attempt, empty when the
	// attempt could not be recorded; NextAttemptAt is set when it will be
	// attempted again. An attempt cut short by Stop has ErrorClass
	// store.ErrorCanceled and Outcome pending, due again at once: it
	// spends no retry budget, and Stats.Retried does not count it.
	Outcome       store.Status
	NextAttemptAt time.Time
}

// NopHooks implements Hooks with methods that do nothing. Embed it in a
// struct to override only the hooks you need.
type NopHooks struct{}

// AttemptStarted does nothing.
func (NopHooks) AttemptStarted(context.Context, AttemptInfo) {}

// AttemptFinished does nothing.
func (NopHooks) AttemptFinished(context.Context, AttemptInfo) {}

// DeliverySucceeded does nothing.
func (NopHooks) DeliverySucceeded(context.Context, *Delivery) {}

// DeliveryFailed does nothing.
func (NopHooks) DeliveryFailed(context.Context, *Delivery, error) {}

// WebhookDisabled does nothing.
func (NopHooks) WebhookDisabled(context.Context, string, string) {}

var _ Hooks = NopHooks{}

// guardedHooks calls a host's Hooks and logs a panic of theirs instead of
// letting it end the delivery goroutine, and with it the process.
type guardedHooks struct {
	h   Hooks
	log *slog.Logger
}

// guardHooks returns h guarded, or h itself when it cannot panic.
func guardHooks(h Hooks, log *slog.Logger) Hooks {
	if _, ok := h.(NopHooks); ok {
		return h
	}
	return guardedHooks{h: h, log: log}
}

// recover, deferred by each method, logs the hook's panic, if any.
func (g guardedHooks) recover(ctx context.Context, hook string) {
	if r := recover(); r != nil {
		g.log.LogAttrs(ctx, slog.LevelError, "webhook: hook panicked",
			slog.String("hook", hook), slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
	}
}

func (g guardedHooks) AttemptStarted(ctx context.Context, info AttemptInfo) {
	defer g.recover(ctx, "AttemptStarted")
	g.h.AttemptStarted(ctx, info)
}

func (g guardedHooks) AttemptFinished(ctx context.Context, info AttemptInfo) {
	defer g.recover(ctx, "AttemptFinished")
	g.h.AttemptFinished(ctx, info)
}

func (g guardedHooks) DeliverySucceeded(ctx context.Context, d *Delivery) {
	defer g.recover(ctx, "DeliverySucceeded")
	g.h.DeliverySucceeded(ctx, d)
}

func (g guardedHooks) DeliveryFailed(ctx context.Context, d *Delivery, err error) {
	defer g.recover(ctx, "DeliveryFailed")
	g.h.DeliveryFailed(ctx, d, err)
}

func (g guardedHooks) WebhookDisabled(ctx context.Context, webhookID, reason string) {
	defer g.recover(ctx, "WebhookDisabled")
	g.h.WebhookDisabled(ctx, webhookID, reason)
}
