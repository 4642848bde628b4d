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
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/noa-server/webhook"
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

// apiDoc is the served OpenAPI document, to check the handler's answers
// against.
type apiDoc struct {
	root map[string]any
}

// loadDoc reads the OpenAPI document h serves.
func loadDoc(t *testing.T, h *harness) *apiDoc {
	t.Helper()
	r := h.do("GET", "/v1/webhooks/openapi.json", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET the OpenAPI document: status %d", r.status)
	}
	return &apiDoc{root: r.body}
}

// resolve follows a "#/…" $ref of s, if it has one.
func (d *apiDoc) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		var cur any = d.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		next, _ := cur.(map[string]any)
		if next == nil {
			return map[string]any{}
		}
		s = next
	}
}

// check fails t unless r, the answer to method on a path of the document's
// template tmpl, is one the document lists for that operation, with the
// fields and types of its schema; a method the path does not serve must be
// answered 405, which every operation of the path lists. HEAD is checked
// as GET, without a body.
func (d *apiDoc) check(t *testing.T, method, tmpl string, r *response) {
	t.Helper()
	paths, _ := d.root["paths"].(map[string]any)
	item, ok := paths[tmpl].(map[string]any)
	if !ok {
		t.Errorf("%s %s: the path is not documented", method, tmpl)
		return
	}
	if r.status >= 500 {
		t.Errorf("%s %s: a %d answers a client's request: %s", method, tmpl, r.status, r.raw)
	}
	lookup := method
	if method == http.MethodHead {
		lookup = http.MethodGet
	}
	op, isOp := item[strings.ToLower(lookup)].(map[string]any)
	if !isOp {
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: not an operation, answered %d, not 405", method, tmpl, r.status)
		}
		for m, o := range item {
			if o, ok := o.(map[string]any); ok && m != "parameters" {
				if res, _ := o["responses"].(map[string]any); res["405"] == nil {
					t.Errorf("%s %s answers 405 to %s, which its OpenAPI operation does not list", strings.ToUpper(m), tmpl, method)
				}
			}
		}
		op = map[string]any{"responses": map[string]any{"405": map[string]any{"$ref": "#/components/responses/MethodNotAllowed"}}}
	}
	responses, _ := op["responses"].(map[string]any)
	res, ok := responses[strconv.Itoa(r.status)].(map[string]any)
	if !ok {
		t.Errorf("%s %s answers %d, which the OpenAPI document does not list: %s", method, tmpl, r.status, r.raw)
		return
	}
	if method == http.MethodHead {
		if len(r.raw) != 0 {
			t.Errorf("HEAD %s: a body of %d bytes", tmpl, len(r.raw))
		}
		return
	}
	res = d.resolve(res)
	content, _ := res["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	schema, _ := media["schema"].(map[string]any)
	if schema == nil {
		t.Errorf("%s %s %d: no application/json schema", method, tmpl, r.status)
		return
	}
	var v any
	if err := json.Unmarshal(r.raw, &v); err != nil {
		t.Errorf("%s %s: the answer is not JSON: %v", method, tmpl, err)
		return
	}
	for _, problem := range d.validate("", v, schema) {
		t.Errorf("%s %s %d: %s: %s", method, tmpl, r.status, problem, r.raw)
	}
}

// validate returns how v departs from schema: a missing required field, a
// field the schema does not declare (where it declares properties), a
// value of another JSON type, outside an enum or unequal to a const, or a
// date-time that is not RFC 3339. It knows the parts of JSON Schema the
// document uses.
func (d *apiDoc) validate(at string, v any, schema map[string]any) []string {
	s := d.resolve(schema)
	var out []string
	if branches, ok := s["oneOf"].([]any); ok {
		matched := 0
		for _, b := range branches {
			if len(d.validate(at, v, b.(map[string]any))) == 0 {
				matched++
			}
		}
		if matched != 1 {
			out = append(out, fmt.Sprintf("%s matches %d branches of oneOf", at, matched))
		}
	}
	// allOf: the value holds every part, and the parts' properties
	// together are the ones it may have.
	props := map[string]any{}
	var required []any
	declared := false
	parts := []map[string]any{s}
	allOf, _ := s["allOf"].([]any)
	for _, p := range allOf {
		parts = append(parts, d.resolve(p.(map[string]any)))
	}
	for _, p := range parts {
		if ps, ok := p["properties"].(map[string]any); ok {
			declared = true
			for k, ps := range ps {
				props[k] = ps
			}
		}
		if req, ok := p["required"].([]any); ok {
			required = append(required, req...)
		}
		if _, ok := p["additionalProperties"].(map[string]any); ok {
			declared = false // a map: any name
		}
	}
	if c, ok := s["const"]; ok && !cmp.Equal(c, v) {
		out = append(out, fmt.Sprintf("%s is %v, not the const %v", at, v, c))
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return cmp.Equal(e, v) }) {
		out = append(out, fmt.Sprintf("%s is %v, outside the enum", at, v))
	}
	if typ, ok := s["type"]; ok {
		var types []any
		if one, ok := typ.(string); ok {
			types = []any{one}
		} else {
			types, _ = typ.([]any)
		}
		if !slices.ContainsFunc(types, func(ty any) bool { return jsonTypeIs(v, ty.(string)) }) {
			out = append(out, fmt.Sprintf("%s is %T, not of type %v", at, v, typ))
		}
	}
	if f, _ := s["format"].(string); f == "date-time" {
		if str, ok := v.(string); ok {
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				out = append(out, fmt.Sprintf("%s is %q, not an RFC 3339 time", at, str))
			}
		}
	}
	switch v := v.(type) {
	case map[string]any:
		for _, k := range required {
			if _, ok := v[k.(string)]; !ok {
				out = append(out, fmt.Sprintf("%s lacks the required %s", at, k))
			}
		}
		for k, fv := range v {
			if ps, ok := props[k].(map[string]any); ok {
				out = append(out, d.validate(at+"."+k, fv, ps)...)
			} else if declared {
				out = append(out, fmt.Sprintf("%s has the undocumented field %s", at, k))
			}
		}
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			for k, fv := range v {
				if _, named := props[k]; !named {
					out = append(out, d.validate(at+"."+k, fv, ap)...)
				}
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, iv := range v {
				out = append(out, d.validate(fmt.Sprintf("%s[%d]", at, i), iv, items)...)
			}
		}
	}
	return out
}

// jsonTypeIs reports whether v, as encoding/json decodes into any, is of
// the JSON Schema type ty.
func jsonTypeIs(v any, ty string) bool {
	switch v := v.(type) {
	case nil:
		return ty == "null"
	case bool:
		return ty == "boolean"
	case string:
		return ty == "string"
	case float64:
		return ty == "number" || ty == "integer" && v == float64(int64(v))
	case []any:
		return ty == "array"
	case map[string]any:
		return ty == "object"
	}
	return false
}

// Every answer to well-formed and hostile requests alike is one the
// OpenAPI document lists for its operation, in its schema (the error
// envelope with a documented code, for the failures), short whatever the
// input, and never a 5xx.
func TestAnswersMatchOpenAPI(t *testing.T) {
	h := newHarness(t, stores[1].open, options{events: true, maxBody: 8 << 10})
	doc := loadDoc(t, h)
	id, _ := h.create(tokenA, "workflow.*")
	inactive, _ := h.create(tokenA)
	h.do("PUT", "/v1/webhooks/"+inactive, tokenA, `{"active":false}`).must(t, http.StatusOK)
	del := h.emit(tokenA, "workflow.completed", `{"n":1}`)[0]
	h.waitStatus(id, del, "success")
	missing := "wh_0190b6a0-0000-7000-8000-000000000000"

	const (
		hooks    = "/v1/webhooks"
		hook     = "/v1/webhooks/{id}"
		test     = "/v1/webhooks/{id}/test"
		rotate   = "/v1/webhooks/{id}/rotate-secret"
		list     = "/v1/webhooks/{id}/deliveries"
		delivery = "/v1/webhooks/{id}/deliveries/{deliveryId}"
		retry    = "/v1/webhooks/{id}/deliveries/{deliveryId}/retry"
		events   = "/v1/events"
		openapi  = "/v1/webhooks/openapi.json"
	)
	path := func(tmpl, webhookID string) string {
		return strings.NewReplacer("{id}", webhookID, "{deliveryId}", del).Replace(tmpl)
	}
	long := strings.Repeat("x", 6000)
	cases := []struct {
		method, tmpl, id, query, token, body string
		hdr                                  []string
	}{
		{"POST", hooks, "", "", tokenA, `{"url":"https://a.example/hook","events":["*"],"headers":{"X-Api-Key":"k"},"maxAttempts":3,"rateLimit":2.5}`, nil},
		{"POST", hooks, "", "", tokenA, `{"url":"https://a.example/hook","events":["*"],"extra":1}`, nil},
		{"POST", hooks, "", "", tokenA, `{"url":"https://a.example/hook","events":["*"]}`, []string{"Content-Type", "text/plain"}},
		{"POST", hooks, "", "", tokenA, `{"description":"` + strings.Repeat("d", 9000) + `"}`, nil},
		{"POST", hooks, "", "", tokenA, `{"url":"` + long + `"}`, nil},
		{"POST", hooks, "", "", "", `{}`, nil},
		{"GET", hooks, "", "?limit=2", tokenA, "", nil},
		{"GET", hooks, "", "?cursor=" + long[:1000], tokenA, "", nil},
		{"HEAD", hooks, "", "", tokenA, "", nil},
		{"OPTIONS", hooks, "", "", tokenA, "", nil},
		{"PATCH", hooks, "", "", tokenA, `{}`, nil},
		{long, hooks, "", "", tokenA, "", nil},
		{"GET", hook, id, "", tokenA, "", nil},
		{"GET", hook, missing, "", tokenA, "", nil},
		{"GET", hook, "wh_" + long, "", tokenA, "", nil},
		{"HEAD", hook, id, "", tokenA, "", nil},
		{"PUT", hook, id, "", tokenA, `{"description":"d","headers":{"Authorization":"Bearer x"}}`, nil},
		{"PUT", hook, id, "", tokenA, `{"description":"d"} {}`, nil},
		{"PUT", hook, id, "", tokenA, `{}`, nil},
		{"PUT", hook, missing, "", tokenA, `{"active":true}`, nil},
		{"POST", hook, id, "", tokenA, "", nil},
		{"DELETE", hook, missing, "", tokenA, "", nil},
		{"POST", test, id, "", tokenA, "", nil},
		{"POST", test, id, "", tokenA, `{"data":{"x":1e400}}`, nil},
		{"POST", test, id, "", tokenA, `{"data":[]}`, nil},
		{"POST", test, inactive, "", tokenA, "", nil},
		{"GET", test, id, "", tokenA, "", nil},
		{"POST", rotate, id, "", tokenA, `{"gracePeriodSeconds":0}`, nil},
		{"POST", rotate, id, "", tokenA, `{"gracePeriodSeconds":-1}`, nil},
		{"POST", rotate, missing, "", tokenA, "", nil},
		{"GET", list, id, "?status=success&event=workflow.completed&limit=1", tokenA, "", nil},
		{"GET", list, id, "?status=nope", tokenA, "", nil},
		{"GET", list, missing, "", tokenA, "", nil},
		{"GET", delivery, id, "", tokenA, "", nil},
		{"GET", delivery, inactive, "", tokenA, "", nil},
		{"DELETE", delivery, id, "", tokenA, "", nil},
		{"POST", retry, id, "", tokenA, "", nil},
		{"POST", retry, id, "", tokenA, `[]`, nil},
		{"POST", events, "", "", tokenA, `{"event":"workflow.failed","data":{"n":2},"requestId":"req_1"}`, nil},
		{"POST", events, "", "", tokenA, `{"event":"nope.nope"}`, nil},
		{"POST", events, "", "", tokenB, `{"event":"workflow.failed","data":"x"}`, nil},
		{"GET", events, "", "", tokenA, "", nil},
		{"GET", openapi, "", "", "", "", nil},
		{"HEAD", openapi, "", "", "", "", nil},
		{"PUT", openapi, "", "", tokenA, `{}`, nil},
		{"OPTIONS", openapi, "", "", "", "", nil},
		{"DELETE", hook, id, "", tokenA, "", nil},
	}
	for _, c := range cases {
		r := h.do(c.method, path(c.tmpl, c.id)+c.query, c.token, c.body, c.hdr...)
		doc.check(t, shortQ(c.method), c.tmpl, r)
		if r.status >= 400 && len(r.raw) > 2048 {
			t.Errorf("%s %s: a %d-byte error answer echoes the input", shortQ(c.method), c.tmpl, len(r.raw))
		}
	}
}

// Every request body the handler takes is one its operation's OpenAPI
// schema allows, so a client that validates against the document can send
// it: nulls read as left-out fields included.
func TestOpenAPIAllowsTheBodiesTaken(t *testing.T) {
	h := newHarness(t, stores[1].open, options{events: true})
	doc := loadDoc(t, h)
	id, _ := h.create(tokenA)
	u := h.recv.url()
	cases := []struct{ method, tmpl, body string }{
		{"POST", "/v1/webhooks", `{"url":"` + u + `","events":["*"],"description":"d","active":true,"headers":{"X-A":"1"},"maxAttempts":3,"rateLimit":1}`},
		{"POST", "/v1/webhooks", `{"url":"` + u + `","events":["*"],"description":null,"active":null,"headers":null,"maxAttempts":null,"rateLimit":null}`},
		{"PUT", "/v1/webhooks/{id}", `{"url":"` + u + `","events":["*"],"description":"d","active":true,"headers":{"X-A":"1"},"maxAttempts":3,"rateLimit":1}`},
		{"PUT", "/v1/webhooks/{id}", `{"url":null,"active":true}`},
		{"PUT", "/v1/webhooks/{id}", `{"events":null,"active":true}`},
		{"PUT", "/v1/webhooks/{id}", `{"description":null,"active":true}`},
		{"PUT", "/v1/webhooks/{id}", `{"headers":null,"active":true}`},
		{"PUT", "/v1/webhooks/{id}", `{"maxAttempts":null,"active":true}`},
		{"PUT", "/v1/webhooks/{id}", `{"rateLimit":null,"active":true}`},
		{"PUT", "/v1/webhooks/{id}", `{"active":null,"description":"d"}`},
		{"POST", "/v1/webhooks/{id}/rotate-secret", `{"gracePeriodSeconds":60}`},
		{"POST", "/v1/webhooks/{id}/rotate-secret", `{"gracePeriodSeconds":null}`},
		{"POST", "/v1/webhooks/{id}/test", `{"data":{"a":1}}`},
		{"POST", "/v1/webhooks/{id}/test", `{"data":null}`},
		{"POST", "/v1/events", `{"event":"workflow.completed","data":{"a":1},"requestId":"req_1","id":"evt_a"}`},
		{"POST", "/v1/events", `{"event":"workflow.completed","data":null,"requestId":null,"id":null}`},
	}
	for _, c := range cases {
		r := h.do(c.method, strings.Replace(c.tmpl, "{id}", id, 1), tokenA, c.body)
		if r.status >= 300 {
			t.Errorf("%s %s %s: the handler refused it: %d %s", c.method, c.tmpl, c.body, r.status, r.raw)
			continue
		}
		if c.tmpl == "/v1/webhooks/{id}/rotate-secret" {
			h.recv.addSecret(r.data(t)["secret"].(string))
		}
		paths, _ := doc.root["paths"].(map[string]any)
		op, _ := paths[c.tmpl].(map[string]any)[strings.ToLower(c.method)].(map[string]any)
		rb, _ := op["requestBody"].(map[string]any)
		content, _ := doc.resolve(rb)["content"].(map[string]any)
		media, _ := content["application/json"].(map[string]any)
		schema, _ := media["schema"].(map[string]any)
		if schema == nil {
			t.Errorf("%s %s: no request body schema", c.method, c.tmpl)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(c.body), &v); err != nil {
			t.Fatal(err)
		}
		for _, problem := range doc.validate("", v, schema) {
			t.Errorf("%s %s takes %s, which its schema refuses: %s", c.method, c.tmpl, c.body, problem)
		}
	}
}

// TestOpenAPILimitsMatchCode: every limit the OpenAPI document states for a
// request field is the one the code enforces, and the fields the code
// caps say so. The webhook url schemas used to state no maxLength,
// though the Registry refuses a URL above webhook.MaxURLLength bytes.
func TestOpenAPILimitsMatchCode(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	doc := loadDoc(t, h)
	schemas, _ := doc.root["components"].(map[string]any)["schemas"].(map[string]any)
	for _, tc := range []struct {
		schema, field, keyword string
		want                   float64
	}{
		{"CreateWebhook", "url", "maxLength", webhook.MaxURLLength},
		{"UpdateWebhook", "url", "maxLength", webhook.MaxURLLength},
		{"CreateWebhook", "description", "maxLength", webhook.DefaultMaxDescription},
		{"UpdateWebhook", "description", "maxLength", webhook.DefaultMaxDescription},
		{"CreateWebhook", "maxAttempts", "maximum", webhook.MaxWebhookAttempts},
		{"UpdateWebhook", "maxAttempts", "maximum", webhook.MaxWebhookAttempts},
		{"CreateWebhook", "rateLimit", "maximum", webhook.MaxRateLimit},
		{"UpdateWebhook", "rateLimit", "maximum", webhook.MaxRateLimit},
		{"RotateSecret", "gracePeriodSeconds", "maximum", api.MaxGracePeriod.Seconds()},
	} {
		s, _ := schemas[tc.schema].(map[string]any)
		props, _ := s["properties"].(map[string]any)
		field, _ := props[tc.field].(map[string]any)
		if got, ok := field[tc.keyword].(float64); !ok || got != tc.want {
			t.Errorf("%s.%s: %s is %v, want %v", tc.schema, tc.field, tc.keyword, field[tc.keyword], tc.want)
		}
	}
}
