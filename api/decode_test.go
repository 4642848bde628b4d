package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store/memstore"
)

var decodeSeeds = []string{
	`{"url":"https://your-server.com/webhooks/noa-server","events":["workflow.completed","workflow.failed","agent.status.changed"],"description":"Production webhook for workflow monitoring","active":true}`,
	`{"events":["workflow.completed","workflow.failed"],"active":true}`,
	`{"gracePeriodSeconds":3600}`,
	`{"event":"workflow.completed","data":{"workflowId":"wf_789"},"requestId":"req_12345","id":"evt_1"}`,
	`{"data":{"a":[1,2,{"b":null}]}}`,
	`{"url":1}`, `{"events":"x"}`, `{"headers":{"X":1}}`, `{"URL":"x"}`, `{"url":"a","url":"b"}`, `{"headers":{"X":"1","X":"2"}}`,
	`{} {}`, `{`, `[]`, `null`, ``, "\xff", `{"a":` + strings.Repeat("[", 100),
	`{"active":tru}`, `{"gracePeriodSeconds":1e400}`, `{"gracePeriodSeconds":-0.5}`,
	"{\"description\":\"caf\xe9\"}", "{\"url\":\"https://a.example/\xed\xa0\x80\"}",
	`{"data":{"x":1e400}}`, `{"data":{"a":[-1e999]}}`, `{"data":{"x":"\ud800"}}`,
}

// FuzzDecodeJSON: whatever the bytes, the decoder of every request body
// returns nil or a 4xx *apiError, never panics, and accepts only valid
// JSON in UTF-8.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dst := range []any{&createRequest{}, &updateRequest{}, &rotateRequest{}, &emitRequest{}, &testRequest{}} {
			err := decodeJSON(data, dst)
			if err == nil {
				if !json.Valid(data) || !utf8.Valid(data) {
					t.Fatalf("%T accepted invalid JSON %q", dst, data)
				}
				continue
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 || ae.code == "" || ae.message == "" {
				t.Fatalf("%T: %q: error %#v is not a 4xx apiError", dst, data, err)
			}
			if len(ae.message) > 300 || len(ae.field) > 80 {
				t.Fatalf("%T: %q: message of %d bytes, field of %d", dst, data, len(ae.message), len(ae.field))
			}
		}
	})
}

// FuzzCreateWebhook drives whole requests through the handler: any body,
// any Content-Type, is answered 201 or a 4xx in the envelope. The test
// route of a real webhook is driven too: its dispatcher is not running, so
// a body it accepts is answered 503, after the event's data has been made
// a payload.
func FuzzCreateWebhook(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(decodeSeeds[0]), "text/plain")
	f.Add([]byte(decodeSeeds[0]), "application/merge-patch+json; charset=utf-8")
	st := memstore.New()
	f.Cleanup(func() { st.Close() })
	disp, err := webhook.New(st, nil)
	if err != nil {
		f.Fatal(err)
	}
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{})
	h, err := New(Config{
		Registry: reg, Dispatcher: disp, Store: st,
		Tenant:       func(*http.Request) (string, error) { return "t", nil },
		MaxBodyBytes: 4 << 10,
	})
	if err != nil {
		f.Fatal(err)
	}
	wh, err := reg.Create(f.Context(), "t", webhook.WebhookInput{URL: "https://example.com/hook", Events: []string{"*"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		for _, target := range []struct {
			method, path string
			unavailable  bool // 503 is the answer to a body the route takes
		}{
			{"POST", "/v1/webhooks", false},
			{"PUT", "/v1/webhooks/wh_missing", false},
			{"POST", "/v1/webhooks/wh_missing/rotate-secret", false},
			{"POST", "/v1/webhooks/" + wh.ID + "/test", true},
		} {
			req := httptest.NewRequest(target.method, target.path, bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			unavailable := target.unavailable && rec.Code == http.StatusServiceUnavailable
			if !unavailable && (rec.Code >= 500 || (rec.Code != http.StatusCreated && rec.Code < 400)) {
				t.Fatalf("%s %s %q (%q): %d %s", target.method, target.path, body, ct, rec.Code, rec.Body)
			}
			var env map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("answer is not JSON: %s", rec.Body)
			}
			if (rec.Code == http.StatusCreated) != (env["success"] == true) {
				t.Fatalf("envelope does not match status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

func TestQuoteShortCutsOnRuneBoundary(t *testing.T) {
	s := strings.Repeat("é", 40) // 80 bytes
	got := shorten(s)
	if !strings.HasSuffix(got, "…") || len(got) > 64+len("…") || !json.Valid([]byte(`"`+got+`"`)) {
		t.Errorf("shorten: %q", got)
	}
	if shorten("short") != "short" {
		t.Error("shorten changed a short string")
	}
}
