package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
)

// Error codes of the failure envelope. Clients match on them; messages are
// for people and may change.
const (
	CodeInvalidJSON          = "invalid_json"           // 400: the body is not one JSON object
	CodeUnknownField         = "unknown_field"          // 400: the body has a field this route does not take
	CodeValidation           = "validation_error"       // 400: a field's value is refused; error.field names it
	CodeInvalidParameter     = "invalid_parameter"      // 400: a query parameter is refused; error.field names it
	CodeUnauthorized         = "unauthorized"           // 401: the host's tenant function refused the request
	CodeNotFound             = "not_found"              // 404: no such route, or no such record for this tenant
	CodeMethodNotAllowed     = "method_not_allowed"     // 405: the route exists with other methods (see Allow)
	CodeConflict             = "conflict"               // 409: the record's state forbids the operation
	CodeWebhookInactive      = "webhook_inactive"       // 409: the webhook is inactive
	CodeTooManySecrets       = "too_many_secrets"       // 409: a rotation would exceed the previous secrets in their grace period
	CodeTooManyWebhooks      = "too_many_webhooks"      // 409: the tenant has the most webhooks allowed
	CodePayloadTooLarge      = "payload_too_large"      // 413: the body or the event data is over its cap
	CodeUnsupportedMediaType = "unsupported_media_type" // 415: a body that is not application/json, or is content-coded
	CodeInternal             = "internal_error"         // 500: a fault of the server; details are in its log
	CodeUnavailable          = "unavailable"            // 503: the delivery engine is not running
	CodeTimeout              = "timeout"                // 504: the attempt did not finish in time
)

// apiError is a failure answered to the client.
type apiError struct {
	status  int
	code    string
	message string
	field   string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

func fieldError(status int, code, field, message string) *apiError {
	return &apiError{status: status, code: code, message: message, field: field}
}

// success is the envelope of every 2xx answer.
type success struct {
	Success    bool        `json:"success"` // always true
	Data       any         `json:"data"`
	Pagination *pagination `json:"pagination,omitempty"`
}

// failure is the envelope of every 4xx and 5xx answer.
type failure struct {
	Success bool      `json:"success"` // always false
	Error   errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

type pagination struct {
	// NextCursor is "" on the last page.
	NextCursor string `json:"nextCursor"`
	HasMore    bool   `json:"hasMore"`
}

// writeJSON writes v with status. Responses may carry secrets (create,
// rotate), so none is cached.
func (h *handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Every value written is built by this package from plain types.
		h.log.LogAttrs(r.Context(), slog.LevelError, "webhook api: encode response", slog.String("error", err.Error()))
		buf.Reset()
		buf.WriteString(`{"success":false,"error":{"code":"internal_error","message":"the response could not be encoded"}}` + "\n")
		status = http.StatusInternalServerError
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(buf.Len()))
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// ok answers a success.
func (h *handler) ok(w http.ResponseWriter, r *http.Request, status int, data any) {
	h.writeJSON(w, r, status, success{Success: true, Data: data})
}

// page answers one page of a listing.
func (h *handler) page(w http.ResponseWriter, r *http.Request, data any, next string) {
	h.writeJSON(w, r, http.StatusOK, success{Success: true, Data: data, Pagination: &pagination{NextCursor: next, HasMore: next != ""}})
}

// fail answers err: an *apiError as it says, anything else as a 500 whose
// cause is logged, never shown; but when the request's context has ended,
// its client left and there is neither fault nor reader.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := err.(*apiError)
	if !ok && r.Context().Err() != nil {
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "webhook api: request ended by its client",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		return
	}
	if !ok {
		h.log.LogAttrs(r.Context(), slog.LevelError, "webhook api: internal error",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		ae = errorf(http.StatusInternalServerError, CodeInternal, "internal error; the server's log has the details")
	}
	h.writeJSON(w, r, ae.status, failure{Error: errorBody{Code: ae.code, Message: ae.message, Field: ae.field}})
}
