package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// openAPISpec is the OpenAPI 3.1 document of every route, POST /v1/events
// included.
//
//go:embed openapi.json
var openAPISpec []byte

// eventsPath is left out of the served document unless the host enables it.
const eventsPath = "/v1/events"

// openAPIDocument returns the document served by GET
// /v1/webhooks/openapi.json: exactly the routes this handler serves.
func openAPIDocument(events bool) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		return nil, fmt.Errorf("api: embedded OpenAPI document: %w", err)
	}
	if !events {
		if paths, ok := doc["paths"].(map[string]any); ok {
			delete(paths, eventsPath)
		}
	}
	return json.Marshal(doc)
}

// GET /v1/webhooks/openapi.json
func (h *handler) serveOpenAPI(w http.ResponseWriter, r *http.Request, _ string) error {
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(h.openapi)))
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(h.openapi)
	}
	return nil
}
