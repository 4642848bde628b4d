package receiver

import (
	"context"
	"encoding/json"
	"time"
)

// Event is a verified delivery, decoded from the guide's envelope:
// {"id","event","timestamp","webhookId","data","metadata":{"apiVersion","requestId"}}.
type Event struct {
	// ID is the payload "id" ("evt_…"). It is the same on every retry.
	ID string `json:"id"`
	// Type is the payload "event" ("workflow.completed").
	Type string `json:"event"`
	// Timestamp is the payload "timestamp": when the event happened, not
	// when this attempt was sent.
	Timestamp time.Time `json:"timestamp"`
	// WebhookID is the payload "webhookId" of the subscription.
	WebhookID string `json:"webhookId"`
	// Data is the event-specific object, exactly as received. Decode it with
	// [json.Unmarshal], or register a typed handler with [Handle].
	Data json.RawMessage `json:"data"`
	// Metadata is the payload "metadata".
	Metadata Metadata `json:"metadata"`
	// MessageID is the signed webhook-id header; empty for a request that
	// carried only the guide's X-Webhook-Signature. It is not part of the
	// JSON body.
	MessageID string `json:"-"`
}

// Metadata is the "metadata" object of the payload.
type Metadata struct {
	// APIVersion is the payload's API version ("v1").
	APIVersion string `json:"apiVersion"`
	// RequestID is the id of the host request that caused the event.
	RequestID string `json:"requestId"`
}

// idempotencyKey is the signed webhook-id, else the payload id.
func (e *Event) idempotencyKey() string {
	if e.MessageID != "" {
		return e.MessageID
	}
	return e.ID
}

type ctxKey int

const (
	eventKey ctxKey = iota
	rawBodyKey
	outcomeKey
)

// EventFromContext returns the event that the Verify middleware verified and
// decoded for the request whose context is ctx. It reports false when no
// verified event is in ctx.
func EventFromContext(ctx context.Context) (*Event, bool) {
	e, ok := ctx.Value(eventKey).(*Event)
	return e, ok && e != nil
}

// RawBodyFromContext returns the exact bytes of the request body that the
// Verify middleware verified. The slice must not be modified. It reports
// false when the request did not pass through Verify.
func RawBodyFromContext(ctx context.Context) ([]byte, bool) {
	b, ok := ctx.Value(rawBodyKey).([]byte)
	return b, ok
}
