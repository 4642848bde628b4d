package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/noa-server/webhook"
)

// emitRequest is the body of POST /v1/events.
type emitRequest struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	RequestID string          `json:"requestId"`
	ID        string          `json:"id"`
}

// emitResult is the answer of POST /v1/events: the deliveries are stored
// when it is sent.
type emitResult struct {
	EventID     string   `json:"eventId"`
	DeliveryIDs []string `json:"deliveryIds"`
	WebhookIDs  []string `json:"webhookIds"`
}

// POST /v1/events (only with Config.EnableEvents)
func (h *handler) emitEvent(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req emitRequest
	if err := decodeBody(w, r, h.maxBody, &req, false); err != nil {
		return err
	}
	if req.Event == "" {
		return fieldError(http.StatusBadRequest, CodeValidation, "event", "event is required, for example \"workflow.completed\"")
	}
	if len(req.RequestID) > 256 || !printable(req.RequestID) {
		return fieldError(http.StatusBadRequest, CodeValidation, "requestId", "requestId must be at most 256 printable characters")
	}
	var data any
	switch d := bytes.TrimLeft(req.Data, " \t\r\n"); {
	case len(d) == 0 || bytes.Equal(d, []byte("null")):
		// Sent as {}.
	case d[0] == '{':
		data = req.Data
	default:
		return fieldError(http.StatusBadRequest, CodeValidation, "data", "data must be a JSON object")
	}
	res, err := h.disp.Emit(r.Context(), webhook.Event{
		ID: req.ID, Type: req.Event, Tenant: tenant, Data: data, RequestID: req.RequestID,
	})
	switch {
	case err == nil:
	case errors.Is(err, webhook.ErrUnknownEventType):
		return fieldError(http.StatusBadRequest, CodeValidation, "event", "event "+quoteShort(req.Event)+" is not an event type this server emits")
	case errors.Is(err, webhook.ErrPayloadTooLarge):
		msg := "data is too large"
		if pe, ok := errors.AsType[*webhook.PayloadTooLargeError](err); ok {
			msg = "data is " + itoa(pe.Size) + " bytes; the limit is " + itoa(pe.Limit)
		}
		return fieldError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "data", msg)
	case errors.Is(err, webhook.ErrInvalidJSON):
		return unsendableData(err)
	case errors.Is(err, webhook.ErrInvalidEvent) && req.ID != "":
		return fieldError(http.StatusBadRequest, CodeValidation, "id", "id must be at most 128 letters, digits, '_', '-' or ':'")
	case errors.Is(err, webhook.ErrInvalidEvent):
		return errorf(http.StatusBadRequest, CodeValidation, "the event cannot be sent: "+err.Error())
	default:
		return err
	}
	out := emitResult{EventID: res.EventID, DeliveryIDs: res.DeliveryIDs, WebhookIDs: res.WebhookIDs}
	if out.DeliveryIDs == nil {
		out.DeliveryIDs = []string{}
	}
	if out.WebhookIDs == nil {
		out.WebhookIDs = []string{}
	}
	h.ok(w, r, http.StatusAccepted, out)
	return nil
}

// unsendableData answers data that the dispatcher refused to make a
// payload of (err matches webhook.ErrInvalidJSON): valid JSON for the
// request's decoder, but not for a receiver, such as a number beyond the
// range of a double.
func unsendableData(err error) *apiError {
	return fieldError(http.StatusBadRequest, CodeValidation, "data",
		"data cannot be sent: "+strings.TrimPrefix(err.Error(), "webhook: invalid event: data: "))
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == 0xfffd {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
