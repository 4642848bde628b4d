// Package tenancy holds the tenant-scoped lookups that the management API
// and the dashboard share. A malformed id, a missing record and another
// tenant's record are one answer: not found.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store"
)

// Errors of a lookup that must not tell a missing record from another
// tenant's.
var (
	// ErrNoWebhook reports a webhook the tenant does not have, whatever
	// the reason.
	ErrNoWebhook = errors.New("no webhook with this id")
	// ErrNoDelivery reports a delivery the tenant does not have for this
	// webhook, whatever the reason.
	ErrNoDelivery = errors.New("no delivery with this id for this webhook")
)

// Usable reports whether a host may give tenant as a request's tenant: it
// is not empty, is valid UTF-8 and holds no NUL byte, the tenants the
// Registry and every store take (webhook.Registry refuses the others).
func Usable(tenant string) bool {
	return tenant != "" && utf8.ValidString(tenant) && strings.IndexByte(tenant, 0) < 0
}

// ValidID reports whether s is prefix followed by 1 to 100 letters, digits,
// '-' or '_': the form of every id the library makes ("wh_", "del_").
func ValidID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) == 0 || len(rest) > 100 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Webhook returns the tenant's webhook id, or ErrNoWebhook. Any other
// error is the Registry's.
func Webhook(ctx context.Context, reg *webhook.Registry, tenant, id string) (*store.Webhook, error) {
	if !ValidID(id, "wh_") {
		return nil, ErrNoWebhook
	}
	w, err := reg.Get(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoWebhook
	}
	if err != nil {
		return nil, err
	}
	if w.Tenant != tenant { // the Registry checks; so do we
		return nil, ErrNoWebhook
	}
	return w, nil
}

// Delivery returns the tenant's webhook id and its delivery deliveryID, or
// ErrNoWebhook or ErrNoDelivery. Any other error is the Registry's or the
// store's.
func Delivery(ctx context.Context, reg *webhook.Registry, st store.Store, tenant, id, deliveryID string) (*store.Webhook, *store.Delivery, error) {
	w, err := Webhook(ctx, reg, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	if !ValidID(deliveryID, "del_") {
		return nil, nil, ErrNoDelivery
	}
	d, err := st.GetDelivery(ctx, deliveryID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNoDelivery
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get delivery: %w", err)
	}
	if d.Tenant != tenant || d.WebhookID != w.ID {
		return nil, nil, ErrNoDelivery
	}
	return w, d, nil
}

// Attempts returns the attempts of d, a delivery the caller has read, that
// d counts: those numbered up to d.Attempts. An attempt recorded since d
// was read (a retry, the dispatcher's next try) is left for the next read,
// so that a page shows one moment of its delivery: its status, its count
// and its latest attempt agree. A store records an attempt with its
// delivery in one transaction, so every attempt d counts is there. A
// delivery deleted since (with its webhook) is ErrNoDelivery.
func Attempts(ctx context.Context, st store.Store, d *store.Delivery) ([]*store.Attempt, error) {
	as, err := st.ListAttempts(ctx, d.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoDelivery
	}
	if err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	return slices.DeleteFunc(as, func(a *store.Attempt) bool { return a.Number > d.Attempts }), nil
}
