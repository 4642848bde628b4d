package webhook

import (
	"context"
	"time"

	"github.com/noa-server/webhook/store"
)

// Hooks receives the dispatcher's lifecycle events, so a host can feed
// metrics (Prometheus, OpenTelemetry) or notify webhook owners. Methods are
// called synchronously from delivery goroutines: they must be quick, safe
// for concurrent use, and must not call back into the Dispatcher's Stop.
// Embed NopHooks to implement only some of them.
type Hooks interface {
	// AttemptStarted is called just before an attempt's request is sent.
	AttemptStarted(ctx context.Context, info AttemptInfo)
	// AttemptFinished is called after an attempt is recorded, with its
	// outcome and duration.
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
	// deliveries failed with it.
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
	// Outcome is the delivery's state after the attempt; NextAttemptAt is
	// set when it will be retried.
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
