package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/store"
)

// The served OpenAPI document lists exactly the routes the handler serves:
// every documented operation is routed, every other common method on a
// documented path is answered 405, and the route table matches the paths.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	for _, events := range []bool{false, true} {
		t.Run(map[bool]string{false: "events off", true: "events on"}[events], func(t *testing.T) {
			h := newHarness(t, stores[0].open, options{events: events})
			r := h.do("GET", "/v1/webhooks/openapi.json", "", "")
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			var doc struct {
				OpenAPI string                                `json:"openapi"`
				Paths   map[string]map[string]json.RawMessage `json:"paths"`
			}
			if err := json.Unmarshal(r.raw, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.OpenAPI != "3.1.0" {
				t.Errorf("openapi %q", doc.OpenAPI)
			}
			checkRefs(t, r.raw)

			var documented []string
			for path, item := range doc.Paths {
				for method := range item {
					if method == "parameters" {
						continue
					}
					documented = append(documented, strings.ToUpper(method)+" "+path)
				}
			}
			served := api.Routes(events)
			slices.Sort(documented)
			slices.Sort(served)
			if diff := cmp.Diff(served, documented); diff != "" {
				t.Errorf("routes served (-) and documented (+):\n%s", diff)
			}

			// Ask the handler itself: documented operations are routed, other
			// methods on those paths are not.
			concrete := strings.NewReplacer("{id}", "wh_0190b6a0-0000-7000-8000-000000000000", "{deliveryId}", "del_0190b6a0-0000-7000-8000-000000000000")
			for path, item := range doc.Paths {
				for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
					_, isDoc := item[strings.ToLower(m)]
					res := h.do(m, concrete.Replace(path), tokenA, "")
					if res.status == http.StatusMethodNotAllowed == isDoc {
						t.Errorf("%s %s: documented %v, answered %d %s", m, path, isDoc, res.status, res.raw)
					}
					if isDoc && res.status == http.StatusNotFound && strings.Contains(string(res.raw), "no such route") {
						t.Errorf("%s %s is documented but not routed", m, path)
					}
				}
			}
		})
	}
}

// checkRefs fails on a $ref that does not resolve within the document.
func checkRefs(t *testing.T, raw []byte) {
	t.Helper()
	var root any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				var cur any = root
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if cur == nil {
					t.Errorf("$ref %s does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(root)
}

// The document's request bodies and webhook view have exactly the fields
// the handler reads and writes.
func TestOpenAPIMatchesBodies(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	r := h.do("GET", "/v1/webhooks/openapi.json", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	type schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
		AllOf      []schema                   `json:"allOf"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.raw, &doc); err != nil {
		t.Fatal(err)
	}
	var names func(s schema) []string
	names = func(s schema) []string {
		var out []string
		for name := range s.Properties {
			out = append(out, name)
		}
		for _, part := range s.AllOf {
			out = append(out, names(part)...)
		}
		return out
	}
	for name, fields := range api.BodyFields() {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		documented := names(s)
		if name == "Webhook" {
			// The view's secret fields are documented in WebhookWithSecret,
			// which holds Webhook's by reference.
			documented = append(documented, names(doc.Components.Schemas["WebhookWithSecret"])...)
		}
		slices.Sort(fields)
		slices.Sort(documented)
		if diff := cmp.Diff(fields, documented); diff != "" {
			t.Errorf("%s: fields served (-) and documented (+):\n%s", name, diff)
		}
	}
}

// checkDocumented fails unless the served OpenAPI document lists status
// among the answers of the operation method path (as the document writes
// it, "{id}" included) and code among the error codes.
func checkDocumented(t *testing.T, h *harness, method, path string, status int, code string) {
	t.Helper()
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `json:"enum"`
								} `json:"code"`
							} `json:"properties"`
						} `json:"error"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	r := h.do("GET", "/v1/webhooks/openapi.json", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET the OpenAPI document: status %d", r.status)
	}
	if err := json.Unmarshal(r.raw, &doc); err != nil {
		t.Fatal(err)
	}
	var op struct {
		Responses map[string]json.RawMessage `json:"responses"`
	}
	if err := json.Unmarshal(doc.Paths[path][strings.ToLower(method)], &op); err != nil {
		t.Fatalf("%s %s is not documented: %v", method, path, err)
	}
	if _, ok := op.Responses[strconv.Itoa(status)]; !ok {
		t.Errorf("%s %s answers %d, which the OpenAPI document does not list", method, path, status)
	}
	if !slices.Contains(doc.Components.Schemas.Error.Properties.Error.Properties.Code.Enum, code) {
		t.Errorf("%s %s answers code %q, which the OpenAPI document does not list", method, path, code)
	}
}

// conflictStore is a store that refuses every webhook write with
// store.ErrConflict once conflict is set, as a store of the host's may
// for concurrent writes.
type conflictStore struct {
	store.Store
	conflict *atomic.Bool
}

func (s *conflictStore) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	if s.conflict.Load() {
		return fmt.Errorf("conflictStore: %w", store.ErrConflict)
	}
	return s.Store.CreateWebhook(ctx, w)
}

func (s *conflictStore) UpdateWebhook(ctx context.Context, id string, change func(*store.Webhook) error) (*store.Webhook, error) {
	if s.conflict.Load() {
		return nil, fmt.Errorf("conflictStore: %w", store.ErrConflict)
	}
	return s.Store.UpdateWebhook(ctx, id, change)
}

// A store's ErrConflict on a webhook write is answered 409 conflict by
// create, update and rotate-secret, and the OpenAPI document lists that
// answer for each.
func TestOpenAPIDocumentsStoreConflicts(t *testing.T) {
	var conflict atomic.Bool
	h := newHarness(t, func(t *testing.T) store.Store {
		return &conflictStore{Store: stores[0].open(t), conflict: &conflict}
	}, options{noStart: true})
	id, _ := h.create(tokenA)
	conflict.Store(true)
	for _, c := range []struct{ method, path, doc, body string }{
		{"POST", "/v1/webhooks", "/v1/webhooks", `{"url":"https://example.com/hook","events":["*"]}`},
		{"PUT", "/v1/webhooks/" + id, "/v1/webhooks/{id}", `{"description":"d"}`},
		{"POST", "/v1/webhooks/" + id + "/rotate-secret", "/v1/webhooks/{id}/rotate-secret", ""},
	} {
		r := h.do(c.method, c.path, tokenA, c.body).must(t, http.StatusConflict)
		if code, _ := r.errCode(t); code != api.CodeConflict {
			t.Errorf("%s %s: code %q, want %q", c.method, c.doc, code, api.CodeConflict)
		}
		checkDocumented(t, h, c.method, c.doc, http.StatusConflict, api.CodeConflict)
	}
}
