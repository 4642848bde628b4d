package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/redact"
	"github.com/noa-server/webhook/internal/tenancy"
	"github.com/noa-server/webhook/store"
)

// deliveryItem is a delivery in a listing.
type deliveryItem struct {
	ID             string `json:"id"`
	WebhookID      string `json:"webhookId"`
	EventID        string `json:"eventId"`
	Event          string `json:"event"`
	Status         string `json:"status"`
	Attempts       int    `json:"attempts"`
	NextAttemptAt  string `json:"nextAttemptAt,omitempty"`
	LastStatusCode int    `json:"lastStatusCode,omitempty"`
	LastError      string `json:"lastError,omitempty"`
	CreatedAt      string `json:"createdAt"`
	UpdatedAt      string `json:"updatedAt"`
}

// deliveryDetail is the guide's delivery log entry: the latest attempt's
// request and response at the top, every attempt in attemptLog.
type deliveryDetail struct {
	ID        string        `json:"id"`
	WebhookID string        `json:"webhookId"`
	EventID   string        `json:"eventId"`
	Event     string        `json:"event"`
	Status    string        `json:"status"`
	Attempts  int           `json:"attempts"`
	Request   requestView   `json:"request"`
	Response  *responseView `json:"response"`
	// Timestamp is when the latest attempt started, or when the delivery
	// was created if none has been made.
	Timestamp     string        `json:"timestamp"`
	NextAttemptAt string        `json:"nextAttemptAt,omitempty"`
	CreatedAt     string        `json:"createdAt"`
	UpdatedAt     string        `json:"updatedAt"`
	AttemptLog    []attemptView `json:"attemptLog"`
}

type requestView struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	// Body is the payload as sent: a JSON object.
	Body json.RawMessage `json:"body"`
}

type responseView struct {
	// StatusCode is 0 when no response arrived.
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       string            `json:"body"`
	// Duration is in milliseconds.
	Duration   int64  `json:"duration"`
	ErrorClass string `json:"errorClass,omitempty"`
	Error      string `json:"error,omitempty"`
}

type attemptView struct {
	Number    int          `json:"number"`
	StartedAt string       `json:"startedAt"`
	Request   attemptReq   `json:"request"`
	Response  responseView `json:"response"`
}

type attemptReq struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// stampLayout is how the API shows a time: RFC 3339 in UTC with
// milliseconds, "2025-10-22T10:00:00.000Z".
const stampLayout = "2006-01-02T15:04:05.000Z07:00"

// toStamp formats t in stampLayout. Times are formatted into strings before
// encoding: a json.Marshaler per field would cost more than the rest of a
// listing.
func toStamp(t time.Time) string { return t.UTC().Format(stampLayout) }

// optTime is toStamp, or "" (left out) for the zero time.
func optTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return toStamp(t)
}

func newDeliveryItem(d *store.Delivery) deliveryItem {
	it := deliveryItem{
		ID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID, Event: d.EventType,
		Status: string(d.Status), Attempts: d.Attempts,
		LastStatusCode: d.LastStatusCode, LastError: d.LastError,
		CreatedAt: toStamp(d.CreatedAt), UpdatedAt: toStamp(d.UpdatedAt),
	}
	if d.Status == store.StatusPending {
		it.NextAttemptAt = optTime(d.NextAttemptAt)
	}
	return it
}

// flatten turns a header into one value per name, the way the guide shows
// headers, with the values of credential-like headers (Authorization,
// Cookie, Set-Cookie, …) replaced by "[redacted]". The dispatcher already
// leaves them out of the attempts it records; this holds for any store. The
// rule is [redact.Credential], which the dashboard shares.
func flatten(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if redact.Credential(k) {
			out[k] = redact.Placeholder
		} else {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

func newResponseView(a *store.Attempt) responseView {
	rv := responseView{
		StatusCode: a.ResponseStatus,
		Body:       string(a.ResponseBody),
		Duration:   a.Duration.Milliseconds(),
		ErrorClass: string(a.ErrorClass),
		Error:      a.Error,
	}
	if len(a.ResponseHeaders) > 0 {
		rv.Headers = flatten(a.ResponseHeaders)
	}
	return rv
}

// newDeliveryDetail builds the detail of d with its attempts, in order.
// webhookURL is shown as the request URL while no attempt has been made.
func newDeliveryDetail(d *store.Delivery, attempts []*store.Attempt, webhookURL string) deliveryDetail {
	dd := deliveryDetail{
		ID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID, Event: d.EventType,
		Status: string(d.Status), Attempts: d.Attempts,
		Request:   requestView{URL: redact.URL(webhookURL), Method: http.MethodPost, Headers: map[string]string{}},
		Timestamp: toStamp(d.CreatedAt),
		CreatedAt: toStamp(d.CreatedAt), UpdatedAt: toStamp(d.UpdatedAt),
		AttemptLog: make([]attemptView, 0, len(attempts)),
	}
	if d.Status == store.StatusPending {
		dd.NextAttemptAt = optTime(d.NextAttemptAt)
	}
	if json.Valid(d.Body) {
		dd.Request.Body = d.Body
	} else {
		// Stores keep the bytes they were given; show foreign ones as text.
		dd.Request.Body, _ = json.Marshal(string(d.Body))
	}
	for _, a := range attempts {
		dd.AttemptLog = append(dd.AttemptLog, attemptView{
			Number:    a.Number,
			StartedAt: toStamp(a.StartedAt),
			Request:   attemptReq{URL: redact.URL(a.RequestURL), Method: http.MethodPost, Headers: flatten(a.RequestHeaders)},
			Response:  newResponseView(a),
		})
	}
	if n := len(attempts); n > 0 {
		last := attempts[n-1]
		dd.Request.URL = redact.URL(last.RequestURL)
		dd.Request.Headers = flatten(last.RequestHeaders)
		rv := newResponseView(last)
		dd.Response = &rv
		dd.Timestamp = toStamp(last.StartedAt)
	}
	return dd
}

// tenantWebhook returns the tenant's webhook id, or a 404 that does not
// tell a missing webhook from another tenant's.
func (h *handler) tenantWebhook(ctx context.Context, tenant, id string) (*webhook.Webhook, error) {
	w, err := tenancy.Webhook(ctx, h.reg, tenant, id)
	if err != nil {
		return nil, h.lookupError(err)
	}
	return w, nil
}

// tenantDelivery returns the delivery deliveryId of the tenant's webhook
// id, or a 404.
func (h *handler) tenantDelivery(ctx context.Context, tenant, id, deliveryID string) (*webhook.Webhook, *store.Delivery, error) {
	w, d, err := tenancy.Delivery(ctx, h.reg, h.st, tenant, id, deliveryID)
	if err != nil {
		return nil, nil, h.lookupError(err)
	}
	return w, d, nil
}

// lookupError answers a tenancy lookup's error.
func (h *handler) lookupError(err error) error {
	switch {
	case errors.Is(err, tenancy.ErrNoWebhook):
		return errNoWebhook
	case errors.Is(err, tenancy.ErrNoDelivery):
		return errNoDelivery
	}
	return h.registryError(err)
}

var (
	errNoWebhook  = errorf(http.StatusNotFound, CodeNotFound, tenancy.ErrNoWebhook.Error())
	errNoDelivery = errorf(http.StatusNotFound, CodeNotFound, tenancy.ErrNoDelivery.Error())
)

// GET /v1/webhooks/{id}/deliveries?status=&event=&cursor=&limit=
func (h *handler) listDeliveries(w http.ResponseWriter, r *http.Request, tenant string) error {
	q, err := queryParams(r, "status", "event", "cursor", "limit")
	if err != nil {
		return err
	}
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	status := store.Status(q.Get("status"))
	if status != "" && !status.Valid() {
		return fieldError(http.StatusBadRequest, CodeInvalidParameter, "status",
			"status must be pending, success or failed, not "+quoteShort(string(status)))
	}
	event := q.Get("event")
	if event != "" && !validEventFilter(event) {
		return fieldError(http.StatusBadRequest, CodeInvalidParameter, "event",
			"event must be an event type such as workflow.completed, not "+quoteShort(event))
	}
	cursor := q.Get("cursor")
	if len(cursor) > 1024 {
		return errBadCursor
	}
	wh, err := h.tenantWebhook(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	ds, next, err := h.st.ListDeliveries(r.Context(), store.ListDeliveriesParams{
		Tenant: tenant, WebhookID: wh.ID, Status: status, EventType: event, Cursor: cursor, Limit: limit, WithoutBody: true,
	})
	if errors.Is(err, store.ErrInvalid) {
		return errBadCursor
	}
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	items := make([]deliveryItem, len(ds))
	for i, d := range ds {
		items[i] = newDeliveryItem(d)
	}
	h.page(w, r, items, next)
	return nil
}

var errBadCursor = fieldError(http.StatusBadRequest, CodeInvalidParameter, "cursor",
	"cursor must be the nextCursor of a previous page")

// validEventFilter reports whether s can be an event type: dot-separated
// lowercase words, at most 128 bytes.
func validEventFilter(s string) bool {
	if len(s) > 128 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return false
		}
		for _, c := range []byte(part) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// pageLimit parses ?limit.
func pageLimit(s string) (int, error) {
	if s == "" {
		return DefaultPageLimit, nil
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' || n > MaxPageLimit {
			n = -1
			break
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > MaxPageLimit {
		return 0, fieldError(http.StatusBadRequest, CodeInvalidParameter, "limit",
			fmt.Sprintf("limit must be an integer from 1 to %d", MaxPageLimit))
	}
	return n, nil
}

// queryParams parses the query string of a listing that reads the
// parameters names. A pair whose name or value does not unescape, and a
// parameter of names given more than once, are refused with 400, where
// url.Values would drop the one and keep the first of the other: a
// filter, page size or cursor is never silently ignored. Other names,
// such as a host's own parameters, are taken as they come once they
// unescape.
func queryParams(r *http.Request, names ...string) (url.Values, error) {
	q := url.Values{}
	for pair := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, CodeInvalidParameter,
				"the query string is malformed: the name "+quoteShort(rawName)+" is not escaped correctly")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, fieldError(http.StatusBadRequest, CodeInvalidParameter, shorten(name),
				"the value of "+quoteShort(name)+" is not escaped correctly")
		}
		if q.Has(name) && slices.Contains(names, name) {
			return nil, fieldError(http.StatusBadRequest, CodeInvalidParameter, name, name+" is given more than once")
		}
		q.Add(name, value)
	}
	return q, nil
}

// GET /v1/webhooks/{id}/deliveries/{deliveryId}
func (h *handler) getDelivery(w http.ResponseWriter, r *http.Request, tenant string) error {
	wh, d, err := h.tenantDelivery(r.Context(), tenant, r.PathValue("id"), r.PathValue("deliveryId"))
	if err != nil {
		return err
	}
	as, err := tenancy.Attempts(r.Context(), h.st, d)
	if err != nil {
		return h.lookupError(err)
	}
	h.ok(w, r, http.StatusOK, newDeliveryDetail(d, as, wh.URL))
	return nil
}

// POST /v1/webhooks/{id}/deliveries/{deliveryId}/retry
//
// A finished delivery is attempted again at once, with a fresh retry
// budget, and the answer holds that attempt. A pending one is refused with
// 409: it is already queued.
func (h *handler) retryDelivery(w http.ResponseWriter, r *http.Request, tenant string) error {
	if err := decodeBody(w, r, h.maxBody, &struct{}{}, true); err != nil {
		return err
	}
	wh, d, err := h.tenantDelivery(r.Context(), tenant, r.PathValue("id"), r.PathValue("deliveryId"))
	if err != nil {
		return err
	}
	if !d.Status.Finished() {
		return errorf(http.StatusConflict, CodeConflict,
			"the delivery is pending and already queued; its next attempt is due at "+d.NextAttemptAt.UTC().Format(time.RFC3339))
	}
	if !wh.Active {
		return errInactive
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.sendTimeout)
	defer cancel()
	sent, a, err := h.disp.SendNow(ctx, d.ID)
	if err != nil {
		return h.sendError(err)
	}
	if unsent(sent, a) {
		return errInactiveMeanwhile
	}
	return h.writeDelivery(w, r, http.StatusOK, d.ID, wh.URL)
}

var (
	errInactive = errorf(http.StatusConflict, CodeWebhookInactive,
		"the webhook is inactive; activate it with PUT {\"active\": true} first")
	errInactiveMeanwhile = errorf(http.StatusConflict, CodeWebhookInactive,
		"the webhook was made inactive meanwhile (paused, or disabled: see its disabledReason) and the delivery failed with it, unsent")
)

// unsent reports whether a SendTest or SendNow answered an attempt that
// was not sent: its webhook was inactive when the attempt's turn came (a
// PUT {"active": false} after the route read it active), so the dispatcher
// failed the delivery with that attempt, of class canceled, as its last.
// The route answers it as it answers a webhook found inactive before the
// send.
func unsent(d *store.Delivery, a *store.Attempt) bool {
	return d != nil && a != nil && d.Status == store.StatusFailed && d.Attempts == a.Number &&
		a.ErrorClass == store.ErrorCanceled && a.ResponseStatus == 0
}

// writeDelivery answers the detail of delivery id as stored now, or 404
// when it is gone (its webhook deleted since the attempt was recorded).
func (h *handler) writeDelivery(w http.ResponseWriter, r *http.Request, status int, id, webhookURL string) error {
	// The attempt is recorded; read it back even if the client has gone.
	ctx := context.WithoutCancel(r.Context())
	d, err := h.st.GetDelivery(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return errNoDelivery
	}
	if err != nil {
		return fmt.Errorf("get delivery: %w", err)
	}
	as, err := tenancy.Attempts(ctx, h.st, d)
	if err != nil {
		return h.lookupError(err)
	}
	h.ok(w, r, status, newDeliveryDetail(d, as, webhookURL))
	return nil
}

// sendError answers a failed SendNow or SendTest.
func (h *handler) sendError(err error) error {
	switch {
	case errors.Is(err, webhook.ErrNotRunning):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the delivery engine is not running; try again later")
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, CodeTimeout,
			"the attempt did not finish in time; it is still queued and will be logged in the webhook's deliveries")
	case errors.Is(err, context.Canceled):
		return errorf(499, "canceled", "the client went away")
	case errors.Is(err, webhook.ErrNoAttempt):
		return errInactiveMeanwhile
	case errors.Is(err, store.ErrNotFound):
		return errNoWebhook
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, CodeConflict, "the delivery is already queued")
	}
	return err
}
