package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/redact"
	"github.com/noa-server/webhook/internal/tenancy"
	"github.com/noa-server/webhook/store"
)

// webhookView is a webhook as the API shows it. Secret is set only in the
// answers of create and rotate-secret.
type webhookView struct {
	ID                      string            `json:"id"`
	URL                     string            `json:"url"`
	Events                  []string          `json:"events"`
	Description             string            `json:"description"`
	Secret                  string            `json:"secret,omitempty"`
	PreviousSecretExpiresAt string            `json:"previousSecretExpiresAt,omitempty"`
	Active                  bool              `json:"active"`
	DisabledReason          string            `json:"disabledReason,omitempty"`
	Headers                 map[string]string `json:"headers,omitempty"`
	MaxAttempts             int               `json:"maxAttempts,omitempty"`
	RateLimit               float64           `json:"rateLimit,omitempty"`
	CreatedAt               string            `json:"createdAt"`
	UpdatedAt               string            `json:"updatedAt"`
}

// newWebhookView shows w without its secrets: its signing secrets, the
// values of its credential headers and a password in its URL (which the
// Registry refuses, but an older store may hold).
func newWebhookView(w *webhook.Webhook) webhookView {
	v := webhookView{
		ID: w.ID, URL: redact.URL(w.URL), Events: w.Events, Description: w.Description,
		Active: w.Active, DisabledReason: w.DisabledReason,
		MaxAttempts: w.MaxAttempts, RateLimit: w.RateLimit,
		CreatedAt: toStamp(w.CreatedAt), UpdatedAt: toStamp(w.UpdatedAt),
	}
	if v.Events == nil {
		v.Events = []string{}
	}
	if len(w.Headers) > 0 {
		v.Headers = make(map[string]string, len(w.Headers))
		for k, val := range w.Headers {
			if redact.Credential(k) {
				val = redacted
			}
			v.Headers[k] = val
		}
	}
	return v
}

// withSecret shows w with its current secret and, in
// PreviousSecretExpiresAt, when the last of its previous secrets stops
// signing: the latest of their expiries. After a single rotation that is
// the previous secret's expiry, as it always was; when rotations in their
// grace period left several previous secrets, it is the one that tells a
// receiver when it may forget every old secret, whichever rotation gave
// it the longest grace. It is left out when no previous secret signs.
func withSecret(w *webhook.Webhook) webhookView {
	v := newWebhookView(w)
	if len(w.Secrets) > 0 {
		v.Secret = w.Secrets[0].Value
	}
	var last time.Time
	for i, s := range w.Secrets {
		if i > 0 && s.ExpiresAt.After(last) {
			last = s.ExpiresAt
		}
	}
	v.PreviousSecretExpiresAt = optTime(last)
	return v
}

// redacted replaces the value of a header the API does not show (see
// redact.Credential). Sent back as a header's value in an update, it keeps
// the value stored for that header (webhook.WebhookUpdate.KeepHeaderValue);
// in a create it is refused.
const redacted = redact.Placeholder

// refuseRedacted refuses the placeholder as the value of a new webhook's
// header: it stands for a stored credential, and a new webhook has none.
func refuseRedacted(headers map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		if headers[name] == redacted {
			return fieldError(http.StatusBadRequest, CodeValidation, "headers",
				fmt.Sprintf("%s is %q, the placeholder that stands for a stored credential; send the real value", quoteShort(name), redacted))
		}
	}
	return nil
}

// createRequest is the body of POST /v1/webhooks. MaxAttempts and
// RateLimit left out (or 0) mean the dispatcher's retry budget and no rate
// limit.
type createRequest struct {
	URL         string            `json:"url"`
	Events      []string          `json:"events"`
	Description string            `json:"description"`
	Active      *bool             `json:"active"`
	Headers     map[string]string `json:"headers"`
	MaxAttempts int               `json:"maxAttempts"`
	RateLimit   float64           `json:"rateLimit"`
}

// updateRequest is the body of PUT /v1/webhooks/{id}: absent (or null)
// fields are unchanged; 0 sets MaxAttempts and RateLimit back to their
// defaults.
type updateRequest struct {
	URL         *string            `json:"url"`
	Events      *[]string          `json:"events"`
	Description *string            `json:"description"`
	Active      *bool              `json:"active"`
	Headers     *map[string]string `json:"headers"`
	MaxAttempts *int               `json:"maxAttempts"`
	RateLimit   *float64           `json:"rateLimit"`
}

// POST /v1/webhooks
func (h *handler) createWebhook(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req createRequest
	if err := decodeBody(w, r, h.maxBody, &req, false); err != nil {
		return err
	}
	if err := refuseRedacted(req.Headers); err != nil {
		return err
	}
	wh, err := h.reg.Create(r.Context(), tenant, webhook.WebhookInput{
		URL: req.URL, Events: req.Events, Description: req.Description, Active: req.Active, Headers: req.Headers,
		MaxAttempts: req.MaxAttempts, RateLimit: req.RateLimit,
	})
	if err != nil {
		return h.registryError(err)
	}
	w.Header().Set("Location", "/v1/webhooks/"+wh.ID)
	h.ok(w, r, http.StatusCreated, withSecret(wh))
	return nil
}

// GET /v1/webhooks?cursor=&limit=
func (h *handler) listWebhooks(w http.ResponseWriter, r *http.Request, tenant string) error {
	q, err := queryParams(r, "cursor", "limit")
	if err != nil {
		return err
	}
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	cursor := q.Get("cursor")
	if len(cursor) > 1024 {
		return errBadCursor
	}
	ws, next, err := h.reg.List(r.Context(), tenant, cursor, limit)
	if ve, ok := errors.AsType[*webhook.ValidationError](err); errors.Is(err, store.ErrInvalid) || ok && ve.Field == "cursor" {
		return errBadCursor
	}
	if err != nil {
		return h.registryError(err)
	}
	out := make([]webhookView, len(ws))
	for i, wh := range ws {
		out[i] = newWebhookView(wh)
	}
	h.page(w, r, out, next)
	return nil
}

// GET /v1/webhooks/{id}
func (h *handler) getWebhook(w http.ResponseWriter, r *http.Request, tenant string) error {
	wh, err := h.tenantWebhook(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	h.ok(w, r, http.StatusOK, newWebhookView(wh))
	return nil
}

// PUT /v1/webhooks/{id}
//
// A header sent with the value "[redacted]", as a read shows a credential,
// keeps the value the webhook stores for it.
func (h *handler) updateWebhook(w http.ResponseWriter, r *http.Request, tenant string) error {
	id := r.PathValue("id")
	var req updateRequest
	if err := decodeBody(w, r, h.maxBody, &req, false); err != nil {
		return err
	}
	if req == (updateRequest{}) {
		return errorf(http.StatusBadRequest, CodeValidation,
			"nothing to update: send at least one of url, events, description, active, headers, maxAttempts, rateLimit")
	}
	if !tenancy.ValidID(id, "wh_") {
		return errNoWebhook
	}
	// The registry keeps the stored value behind a placeholder in the
	// transaction of the update, not from an earlier read that a racing
	// update could have made stale.
	wh, err := h.reg.Update(r.Context(), tenant, id, webhook.WebhookUpdate{
		URL: req.URL, Events: req.Events, Description: req.Description, Active: req.Active, Headers: req.Headers,
		KeepHeaderValue: redacted, MaxAttempts: req.MaxAttempts, RateLimit: req.RateLimit,
	})
	if err != nil {
		return h.registryError(err)
	}
	h.ok(w, r, http.StatusOK, newWebhookView(wh))
	return nil
}

// deleted is the answer of DELETE /v1/webhooks/{id}.
type deleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// DELETE /v1/webhooks/{id}
func (h *handler) deleteWebhook(w http.ResponseWriter, r *http.Request, tenant string) error {
	id := r.PathValue("id")
	if !tenancy.ValidID(id, "wh_") {
		return errNoWebhook
	}
	if err := h.reg.Delete(r.Context(), tenant, id); err != nil {
		return h.registryError(err)
	}
	h.ok(w, r, http.StatusOK, deleted{ID: id, Deleted: true})
	return nil
}

// testRequest is the optional body of POST /v1/webhooks/{id}/test.
type testRequest struct {
	Data json.RawMessage `json:"data"`
}

// testData is the webhook.test event's data when the request names none.
type testData struct {
	Message string `json:"message"`
}

// POST /v1/webhooks/{id}/test
//
// It sends a webhook.test event to the webhook now, whatever events it
// subscribes to, and answers the delivery with its attempt once the
// attempt is recorded: a failed attempt (the endpoint answered 500) is a
// successful test call whose delivery shows the failure, and is retried
// like any delivery. An inactive webhook is refused with 409, also when
// it is made inactive after this read and before the attempt.
func (h *handler) testWebhook(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req testRequest
	if err := decodeBody(w, r, h.maxBody, &req, true); err != nil {
		return err
	}
	var data any = testData{Message: "This is a test event sent from the webhooks API."}
	if d := strings.TrimSpace(string(req.Data)); d != "" && d != "null" {
		if d[0] != '{' {
			return fieldError(http.StatusBadRequest, CodeValidation, "data", "data must be a JSON object")
		}
		data = req.Data
	}
	wh, err := h.tenantWebhook(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !wh.Active {
		return errInactive
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.sendTimeout)
	defer cancel()
	d, a, err := h.disp.SendTest(ctx, wh.ID, data)
	switch {
	case errors.Is(err, webhook.ErrPayloadTooLarge):
		return fieldError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "data", "data is larger than the server's event cap")
	case errors.Is(err, webhook.ErrInvalidJSON):
		return unsendableData(err)
	case err != nil:
		return h.sendError(err)
	case unsent(d, a):
		return errInactiveMeanwhile
	}
	var as []*store.Attempt
	if a != nil {
		as = []*store.Attempt{a}
	}
	h.ok(w, r, http.StatusOK, newDeliveryDetail(d, as, wh.URL))
	return nil
}

// rotateRequest is the optional body of POST /v1/webhooks/{id}/rotate-secret.
type rotateRequest struct {
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds"`
}

// maxGracePeriod bounds how long a previous secret may keep signing.
const maxGracePeriod = 30 * 24 * time.Hour

// POST /v1/webhooks/{id}/rotate-secret
//
// A rotation with a grace period is refused with 409 too_many_secrets
// while the webhook has the Registry's most previous secrets in their
// grace period (webhook.RegistryOptions.MaxPreviousSecrets); one with
// gracePeriodSeconds 0 is always accepted.
func (h *handler) rotateSecret(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req rotateRequest
	if err := decodeBody(w, r, h.maxBody, &req, true); err != nil {
		return err
	}
	grace := webhook.DefaultRotationGrace
	if g := req.GracePeriodSeconds; g != nil {
		if *g < 0 || *g > int64(maxGracePeriod/time.Second) {
			return fieldError(http.StatusBadRequest, CodeValidation, "gracePeriodSeconds",
				fmt.Sprintf("gracePeriodSeconds must be from 0 to %d", int64(maxGracePeriod/time.Second)))
		}
		grace = time.Duration(*g) * time.Second
	}
	id := r.PathValue("id")
	if !tenancy.ValidID(id, "wh_") {
		return errNoWebhook
	}
	wh, err := h.reg.RotateSecret(r.Context(), tenant, id, grace)
	if err != nil {
		return h.registryError(err)
	}
	h.ok(w, r, http.StatusOK, withSecret(wh))
	return nil
}

// registryError answers an error of the Registry.
func (h *handler) registryError(err error) error {
	if ve, ok := errors.AsType[*webhook.ValidationError](err); ok {
		return fieldError(http.StatusBadRequest, CodeValidation, ve.Field, ve.Message)
	}
	if le, ok := errors.AsType[*webhook.RotationLimitError](err); ok {
		return errorf(http.StatusConflict, CodeTooManySecrets, fmt.Sprintf(
			"the webhook has %d previous secrets in their grace period, the most allowed, and each signs every delivery: "+
				"rotate again from %s, when the first expires, or with gracePeriodSeconds 0 to revoke them all now",
			le.Limit, toStamp(le.NextExpiry)))
	}
	if le, ok := errors.AsType[*webhook.WebhookLimitError](err); ok {
		return errorf(http.StatusConflict, CodeTooManyWebhooks, fmt.Sprintf(
			"the tenant has %d webhooks, the most allowed: delete one before creating another", le.Limit))
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoWebhook
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, CodeConflict, "the webhook changed or already exists; read it and try again")
	}
	return err
}
