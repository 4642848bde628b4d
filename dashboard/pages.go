package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/redact"
	"github.com/noa-server/webhook/internal/tenancy"
	"github.com/noa-server/webhook/store"
)

// maxCursor bounds a cursor read from the query: stores write short ones.
const maxCursor = 1024

// notices are the messages an action leaves for the page it redirects to,
// by the code it puts in ?done=. Only these fixed texts are ever shown, so
// a crafted link cannot put words in the dashboard's mouth.
var notices = map[string]string{
	"test":          "Test event sent.",
	"test-pending":  "Test event queued; its attempt is still in progress.",
	"retried":       "Delivery attempted again.",
	"retry-pending": "Delivery queued again; its attempt is still in progress.",
	"enabled":       "Webhook enabled.",
	"disabled":      "Webhook disabled: it receives no deliveries until enabled.",
}

// webhookRow is one line of the webhooks page.
type webhookRow struct {
	ID             string
	URL            string
	Description    string
	Events         []string
	Active         bool
	DisabledReason string
	Counts         store.Counts
	// Rate is the success rate of finished deliveries, "" when none.
	Rate string
	// Last is the newest delivery, nil when there is none.
	Last *store.Delivery
}

// webhooksPage is the data of webhooks.html.
type webhooksPage struct {
	layout
	Webhooks []webhookRow
	// Next is the link of the next page, "" on the last one; First is set
	// when this is not the first page.
	Next  string
	First string
}

// GET {prefix}/
func (h *handler) webhooksPage(w http.ResponseWriter, r *http.Request, tenant string) error {
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > maxCursor {
		return errBadCursor
	}
	ws, next, err := h.reg.List(r.Context(), tenant, cursor, h.pageSize)
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, webhook.ErrValidation) {
		return errBadCursor
	}
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	p := webhooksPage{layout: h.layout("Webhooks", crumb{Label: "Webhooks"})}
	for _, wh := range ws {
		row, err := h.webhookRow(r.Context(), tenant, wh)
		if err != nil {
			return err
		}
		p.Webhooks = append(p.Webhooks, row)
	}
	if next != "" {
		p.Next = h.prefix + "/?" + url.Values{"cursor": {next}}.Encode()
	}
	if cursor != "" {
		p.First = h.prefix + "/"
	}
	h.render(w, r, http.StatusOK, "webhooks", p)
	return nil
}

// webhookRow reads the tallies and the newest delivery of wh: two indexed
// reads, whatever the number of deliveries.
func (h *handler) webhookRow(ctx context.Context, tenant string, wh *store.Webhook) (webhookRow, error) {
	row := webhookRow{
		ID: wh.ID, URL: wh.URL, Description: wh.Description, Events: wh.Events,
		Active: wh.Active, DisabledReason: wh.DisabledReason,
	}
	c, err := h.st.CountDeliveries(ctx, wh.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) { // deleted meanwhile
		return row, fmt.Errorf("count deliveries: %w", err)
	}
	row.Counts = c
	row.Rate = successRate(c)
	last, _, err := h.st.ListDeliveries(ctx, store.ListDeliveriesParams{Tenant: tenant, WebhookID: wh.ID, Limit: 1, WithoutBody: true})
	if err != nil {
		return row, fmt.Errorf("list deliveries: %w", err)
	}
	if len(last) > 0 {
		row.Last = last[0]
	}
	return row, nil
}

// successRate formats the share of finished deliveries that succeeded.
func successRate(c store.Counts) string {
	done := c.Success + c.Failed
	if done == 0 {
		return ""
	}
	pct := float64(c.Success) * 100 / float64(done)
	if c.Success != done && pct > 99.9 {
		pct = 99.9 // never round a failure away
	}
	if c.Success > 0 && pct < 0.1 {
		pct = 0.1 // nor a success
	}
	if pct == float64(int64(pct)) {
		return fmt.Sprintf("%d%%", int64(pct))
	}
	return fmt.Sprintf("%.1f%%", pct)
}

// filter is one link of the status filter bar.
type filter struct {
	Label   string
	Href    string
	Current bool
}

// webhookPage is the data of webhook.html.
type webhookPage struct {
	layout
	Notice  string
	Webhook webhookRow
	// HeaderNames are the custom headers' names; their values may be
	// credentials and are never shown.
	HeaderNames []string
	Filters     []filter
	Status      store.Status
	Deliveries  []*store.Delivery
	Next        string
	First       string
	Chart       chart
	// Version is the webhook as this page shows it (see webhookVersion):
	// the rotation form sends it back.
	Version string
}

// webhookVersion tells two states of w apart: every change sets its
// UpdatedAt.
func webhookVersion(w *store.Webhook) string {
	return w.UpdatedAt.UTC().Format(time.RFC3339Nano)
}

// GET {prefix}/webhooks/{id}?status=&cursor=
func (h *handler) webhookPage(w http.ResponseWriter, r *http.Request, tenant string) error {
	wh, err := h.tenantWebhook(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	q := r.URL.Query()
	status := store.Status(q.Get("status"))
	if status != "" && !status.Valid() {
		return errBadStatus
	}
	cursor := q.Get("cursor")
	if len(cursor) > maxCursor {
		return errBadCursor
	}
	ds, next, err := h.st.ListDeliveries(r.Context(), store.ListDeliveriesParams{
		Tenant: tenant, WebhookID: wh.ID, Status: status, Cursor: cursor, Limit: h.pageSize, WithoutBody: true,
	})
	if errors.Is(err, store.ErrInvalid) {
		return errBadCursor
	}
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	row, err := h.webhookRow(r.Context(), tenant, wh)
	if err != nil {
		return err
	}
	sample, more, err := h.st.ListDeliveries(r.Context(), store.ListDeliveriesParams{
		Tenant: tenant, WebhookID: wh.ID, Limit: h.chartSample, WithoutBody: true,
	})
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}

	self := h.prefix + "/webhooks/" + wh.ID
	p := webhookPage{
		layout:     h.layout(hostOf(wh.URL), crumb{Href: h.prefix + "/", Label: "Webhooks"}, crumb{Label: wh.ID}),
		Notice:     notices[q.Get("done")],
		Webhook:    row,
		Status:     status,
		Deliveries: ds,
		Chart:      newChart(sample, h.now(), more != ""),
		Version:    webhookVersion(wh),
	}
	for name := range wh.Headers {
		p.HeaderNames = append(p.HeaderNames, name)
	}
	slices.Sort(p.HeaderNames)
	for _, s := range []store.Status{"", store.StatusPending, store.StatusSuccess, store.StatusFailed} {
		f := filter{Label: "All", Href: self, Current: s == status}
		if s != "" {
			f.Label = string(s)
			f.Href = self + "?" + url.Values{"status": {string(s)}}.Encode()
		}
		p.Filters = append(p.Filters, f)
	}
	if next != "" {
		v := url.Values{"cursor": {next}}
		if status != "" {
			v.Set("status", string(status))
		}
		p.Next = self + "?" + v.Encode()
	}
	if cursor != "" {
		p.First = self
		if status != "" {
			p.First += "?" + url.Values{"status": {string(status)}}.Encode()
		}
	}
	h.render(w, r, http.StatusOK, "webhook", p)
	return nil
}

// attemptView is one attempt as the delivery page shows it.
type attemptView struct {
	*store.Attempt
	RequestHeaders  []header
	ResponseHeaders []header
	Body            string
}

type header struct {
	Name  string
	Value string
}

// deliveryPage is the data of delivery.html.
type deliveryPage struct {
	layout
	Notice   string
	Webhook  *store.Webhook
	Delivery *store.Delivery
	// Payload is the body as sent, indented when it is JSON.
	Payload  string
	Attempts []attemptView
}

// GET {prefix}/webhooks/{id}/deliveries/{deliveryId}
func (h *handler) deliveryPage(w http.ResponseWriter, r *http.Request, tenant string) error {
	wh, d, err := h.tenantDelivery(r.Context(), tenant, r.PathValue("id"), r.PathValue("deliveryId"))
	if err != nil {
		return err
	}
	as, err := tenancy.Attempts(r.Context(), h.st, d)
	if err != nil {
		return lookupError(err)
	}
	p := deliveryPage{
		layout: h.layout(d.EventType,
			crumb{Href: h.prefix + "/", Label: "Webhooks"},
			crumb{Href: h.prefix + "/webhooks/" + wh.ID, Label: wh.ID},
			crumb{Label: d.ID}),
		Notice:   notices[r.URL.Query().Get("done")],
		Webhook:  wh,
		Delivery: d,
		Payload:  showBody(d.Body, true),
	}
	// Newest attempt first: the one a user came to see.
	for _, a := range slices.Backward(as) {
		p.Attempts = append(p.Attempts, attemptView{
			Attempt:         a,
			RequestHeaders:  headers(a.RequestHeaders),
			ResponseHeaders: headers(a.ResponseHeaders),
			Body:            showBody(a.ResponseBody, false),
		})
	}
	h.render(w, r, http.StatusOK, "delivery", p)
	return nil
}

// headers sorts h for display, one line per value. A credential-like
// header (Authorization, Cookie, Set-Cookie, …) shows one line with
// [redact.Placeholder] instead of its values, as in the management API,
// whatever the store kept.
func headers(h http.Header) []header {
	var out []header
	for name, vs := range h {
		if redact.Credential(name) {
			out = append(out, header{Name: name, Value: redact.Placeholder})
			continue
		}
		for _, v := range vs {
			out = append(out, header{Name: name, Value: v})
		}
	}
	slices.SortStableFunc(out, func(a, b header) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// showBody returns b as text: indented when it is JSON and indent is set,
// with invalid UTF-8 replaced. html/template escapes it when shown.
func showBody(b []byte, indent bool) string {
	if indent && json.Valid(b) {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			return buf.String()
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// hostOf returns the host of a webhook URL for titles, or the URL itself
// without credentials.
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return redact.URL(raw)
}

// tenantWebhook returns the tenant's webhook id, or a 404 that does not
// tell a missing webhook from another tenant's.
func (h *handler) tenantWebhook(ctx context.Context, tenant, id string) (*store.Webhook, error) {
	wh, err := tenancy.Webhook(ctx, h.reg, tenant, id)
	if err != nil {
		return nil, lookupError(err)
	}
	return wh, nil
}

// tenantDelivery returns the delivery deliveryId of the tenant's webhook
// id, or a 404.
func (h *handler) tenantDelivery(ctx context.Context, tenant, id, deliveryID string) (*store.Webhook, *store.Delivery, error) {
	wh, d, err := tenancy.Delivery(ctx, h.reg, h.st, tenant, id, deliveryID)
	if err != nil {
		return nil, nil, lookupError(err)
	}
	return wh, d, nil
}

// lookupError answers a tenancy lookup's error.
func lookupError(err error) error {
	switch {
	case errors.Is(err, tenancy.ErrNoWebhook):
		return errNoWebhook
	case errors.Is(err, tenancy.ErrNoDelivery):
		return errNoDelivery
	}
	return fmt.Errorf("look up: %w", err)
}

// funcs are the template helpers.
var funcs = map[string]any{
	"ago":      ago,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"duration": showDuration,
	"statusText": func(code int) string {
		return http.StatusText(code)
	},
	// redactURL drops the credentials of a URL shown on a page.
	"redactURL": redact.URL,
}

// ago says how long before now t was, coarsely.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return ""
	case d < 0:
		return "in " + roughly(-d)
	case d < time.Second:
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// showDuration rounds an attempt's duration for reading.
func showDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
