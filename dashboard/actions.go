package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/tenancy"
	"github.com/noa-server/webhook/store"
)

// testData is the data of the webhook.test event the dashboard sends.
type testData struct {
	Message string `json:"message"`
}

// POST {prefix}/webhooks/{id}/test
//
// It sends a webhook.test event now and shows its delivery once the attempt
// is recorded (or the webhook's page if it takes longer than SendTimeout).
func (h *handler) sendTest(w http.ResponseWriter, r *http.Request, tenant string) error {
	wh, err := h.tenantWebhook(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !wh.Active {
		return errInactive
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.sendTimeout)
	defer cancel()
	d, _, err := h.disp.SendTest(ctx, wh.ID, testData{Message: "This is a test event sent from the webhooks dashboard."})
	switch {
	case errors.Is(err, context.DeadlineExceeded) || d == nil && err == nil:
		h.redirect(w, r, "/webhooks/"+wh.ID, "test-pending")
		return nil
	case err != nil:
		return h.sendError(err)
	}
	h.redirect(w, r, "/webhooks/"+wh.ID+"/deliveries/"+d.ID, "test")
	return nil
}

// POST {prefix}/webhooks/{id}/deliveries/{deliveryId}/retry
//
// A finished delivery is attempted again now with a fresh retry budget; a
// pending one is refused with 409 (it is already queued).
func (h *handler) retry(w http.ResponseWriter, r *http.Request, tenant string) error {
	wh, d, err := h.tenantDelivery(r.Context(), tenant, r.PathValue("id"), r.PathValue("deliveryId"))
	if err != nil {
		return err
	}
	if !d.Status.Finished() {
		return errPending
	}
	if !wh.Active {
		return errInactive
	}
	self := "/webhooks/" + wh.ID + "/deliveries/" + d.ID
	ctx, cancel := context.WithTimeout(r.Context(), h.sendTimeout)
	defer cancel()
	_, _, err = h.disp.SendNow(ctx, d.ID)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		h.redirect(w, r, self, "retry-pending")
		return nil
	case errors.Is(err, store.ErrConflict): // another click queued it first
		return errPending
	case err != nil:
		return h.sendError(err)
	}
	h.redirect(w, r, self, "retried")
	return nil
}

// sendError maps an error of the Dispatcher to a page.
func (h *handler) sendError(err error) error {
	switch {
	case errors.Is(err, webhook.ErrNotRunning):
		return errNotRunning
	case errors.Is(err, webhook.ErrNoAttempt):
		return errDisabled
	case errors.Is(err, store.ErrNotFound):
		return errNoWebhook
	}
	return fmt.Errorf("send: %w", err)
}

// POST {prefix}/webhooks/{id}/enable
func (h *handler) enable(w http.ResponseWriter, r *http.Request, tenant string) error {
	return h.setActive(w, r, tenant, true)
}

// POST {prefix}/webhooks/{id}/disable
func (h *handler) disable(w http.ResponseWriter, r *http.Request, tenant string) error {
	return h.setActive(w, r, tenant, false)
}

func (h *handler) setActive(w http.ResponseWriter, r *http.Request, tenant string, active bool) error {
	id := r.PathValue("id")
	if !tenancy.ValidID(id, "wh_") {
		return errNoWebhook
	}
	wh, err := h.reg.Update(r.Context(), tenant, id, webhook.WebhookUpdate{Active: &active})
	if errors.Is(err, store.ErrNotFound) {
		return errNoWebhook
	}
	if err != nil {
		return fmt.Errorf("update webhook: %w", err)
	}
	done := "disabled"
	if active {
		done = "enabled"
	}
	h.redirect(w, r, "/webhooks/"+wh.ID, done)
	return nil
}

// secretPage is the data of secret.html: the one page that shows a secret.
type secretPage struct {
	layout
	Webhook *store.Webhook
	Secret  string
	// PreviousUntil is when the previous secret stops signing; zero when
	// it stopped at once.
	PreviousSigns bool
	Grace         string
}

// POST {prefix}/webhooks/{id}/rotate-secret
//
// The new secret is in this answer only (never cached, never shown again).
// A rotation the Registry refuses because the webhook has the most
// previous secrets in their grace period is answered 409 with when the
// first of them expires.
//
// The form sends the version of the webhook its page showed. A rotation
// changes it, so a form sent again (a reload of this answer, which the
// browser resubmits) is answered 409 and rotates nothing: a second
// rotation would replace the secret just shown, which the user may have
// copied already, and X-Webhook-Signature would stop using it at once. A
// request without a version (a script) rotates whatever the version.
func (h *handler) rotateSecret(w http.ResponseWriter, r *http.Request, tenant string) error {
	id := r.PathValue("id")
	if !tenancy.ValidID(id, "wh_") {
		return errNoWebhook
	}
	if err := r.ParseForm(); err != nil {
		return errBadForm
	}
	if v := r.PostForm.Get("version"); v != "" {
		cur, err := h.reg.Get(r.Context(), tenant, id)
		if errors.Is(err, store.ErrNotFound) {
			return errNoWebhook
		}
		if err != nil {
			return fmt.Errorf("read webhook: %w", err)
		}
		if webhookVersion(cur) != v {
			return errChanged
		}
	}
	wh, err := h.reg.RotateSecret(r.Context(), tenant, id, h.grace)
	if errors.Is(err, store.ErrNotFound) {
		return errNoWebhook
	}
	if le, ok := errors.AsType[*webhook.RotationLimitError](err); ok {
		return &pageError{http.StatusConflict, "Too many previous secrets", fmt.Sprintf(
			"This webhook already has %d previous secrets still signing during their grace period, the most allowed. "+
				"The first of them stops signing at %s; rotate again after that.",
			le.Limit, le.NextExpiry.UTC().Format("2006-01-02 15:04:05 UTC"))}
	}
	if err != nil {
		return fmt.Errorf("rotate secret: %w", err)
	}
	if len(wh.Secrets) == 0 {
		return errors.New("rotate secret: the registry returned no secret")
	}
	p := secretPage{
		layout: h.layout("New signing secret",
			crumb{Href: h.prefix + "/", Label: "Webhooks"},
			crumb{Href: h.prefix + "/webhooks/" + wh.ID, Label: wh.ID},
			crumb{Label: "New secret"}),
		Webhook:       wh,
		Secret:        wh.Secrets[0].Value,
		PreviousSigns: len(wh.Secrets) > 1 && h.grace > 0,
		Grace:         roughly(h.grace),
	}
	h.render(w, r, http.StatusOK, "secret", p)
	return nil
}

// redirect answers 303 to the dashboard path (after the prefix) with the
// notice code done.
func (h *handler) redirect(w http.ResponseWriter, r *http.Request, path, done string) {
	http.Redirect(w, r, h.prefix+path+"?done="+done, http.StatusSeeOther)
}
