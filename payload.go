package webhook

import (
	"bytes"
	"encoding/json"
	"time"
)

// APIVersion is sent as metadata.apiVersion in every payload.
const APIVersion = "v1"

// CanonicalJSON returns data marshalled as the compact JSON text that
// JavaScript's JSON.stringify(JSON.parse(text)) would produce: no HTML
// escaping, U+2028 and U+2029 left raw, keys in their original order.
// A json.RawMessage (or []byte holding JSON) is validated and canonicalised.
// Nil becomes {}.
//
// TODO(foundation): full JS canonical form (number formatting, integer-like
// key order, string escapes of raw input).
func CanonicalJSON(data any) ([]byte, error) {
	if data == nil {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// appendBody appends the guide's envelope to dst, in the guide's key order:
// {"id","event","timestamp","webhookId","data","metadata":{"apiVersion","requestId"}}.
// data must already be canonical JSON (from CanonicalJSON).
func appendBody(dst []byte, eventID, eventType string, ts time.Time, webhookID string, data []byte, requestID string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, eventID)
	dst = append(dst, `,"event":`...)
	dst = appendJSONString(dst, eventType)
	dst = append(dst, `,"timestamp":"`...)
	dst = ts.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","webhookId":`...)
	dst = appendJSONString(dst, webhookID)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"metadata":{"apiVersion":"`+APIVersion+`","requestId":`...)
	dst = appendJSONString(dst, requestID)
	dst = append(dst, `}}`...)
	return dst
}

// appendJSONString appends s as a JSON string in JSON.stringify's form.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // TODO(foundation): JS escaping rules
	return append(dst, b...)
}
