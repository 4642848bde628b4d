package webhook

import (
	"time"

	"github.com/noa-server/webhook/store"
)

// Webhook is a subscription: deliveries of matching events go to its URL.
type Webhook = store.Webhook

// Delivery is one event on its way to one webhook, with its state.
type Delivery = store.Delivery

// Attempt is the log of one HTTP attempt of a delivery.
type Attempt = store.Attempt

// Event is something that happened in the host, to be delivered to every
// active webhook of its tenant subscribed to its type.
type Event struct {
	// ID is the payload "id". Emitting the same ID twice does not deliver it
	// twice to a webhook (an idempotency key for hosts that retry Emit)
	// while the first delivery is kept: once the purge has removed it
	// (Config.Retention after it finished), the same ID is delivered again.
	// Defaults to "evt_" + a new UUIDv7. A given ID is 1 to 128 bytes of
	// letters, digits, '_', '-' and ':'.
	ID string
	// Type is the event type, one of the catalog's ("workflow.completed").
	Type string
	// Tenant is the owner of the webhooks the event may reach. Required
	// (use one constant tenant for a single-tenant host): UTF-8 without NUL,
	// as the Registry requires of a webhook's tenant.
	Tenant string
	// Data is the event-specific payload, marshalled with encoding/json and
	// rewritten as CanonicalJSON (a json.RawMessage is validated and
	// canonicalised, not sent as is). Nil, and data that marshals to null
	// (a nil map, slice or pointer, JSON null), is sent as {}.
	Data any
	// RequestID is sent as metadata.requestId. Optional; at most 256 bytes.
	RequestID string
	// Time is the payload "timestamp", sent in RFC 3339 in UTC to the
	// second; its year must be 0 to 9999. Defaults to Config.Now().
	Time time.Time
}
