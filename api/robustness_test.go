package api_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// Bad input gets a precise 4xx in the envelope, never a 500, and changes
// nothing.
func TestBadInput(t *testing.T) {
	h := newHarness(t, stores[1].open, options{maxBody: 64 << 10, events: true})
	id, _ := h.create(tokenA, "workflow.completed")
	valid := `{"url":"https://a.example/hook","events":["workflow.completed"]}`
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code, field              string
	}{
		{"no body", "POST", "/v1/webhooks", "", nil, 400, "invalid_json", ""},
		{"blank body", "POST", "/v1/webhooks", "  \n ", nil, 400, "invalid_json", ""},
		{"null", "POST", "/v1/webhooks", "null", nil, 400, "invalid_json", ""},
		{"array", "POST", "/v1/webhooks", "[]", nil, 400, "invalid_json", ""},
		{"string", "POST", "/v1/webhooks", `"x"`, nil, 400, "invalid_json", ""},
		{"truncated", "POST", "/v1/webhooks", `{"url":"https://a.example"`, nil, 400, "invalid_json", ""},
		{"syntax", "POST", "/v1/webhooks", `{"url":}`, nil, 400, "invalid_json", ""},
		{"trailing value", "POST", "/v1/webhooks", valid + ` {}`, nil, 400, "invalid_json", ""},
		{"trailing garbage", "POST", "/v1/webhooks", valid + `x`, nil, 400, "invalid_json", ""},
		{"url not a string", "POST", "/v1/webhooks", `{"url":1,"events":["workflow.completed"]}`, nil, 400, "validation_error", "url"},
		{"events a string", "POST", "/v1/webhooks", `{"url":"https://a.example","events":"workflow.completed"}`, nil, 400, "validation_error", "events"},
		{"events of numbers", "POST", "/v1/webhooks", `{"url":"https://a.example","events":[1]}`, nil, 400, "validation_error", "events"},
		{"active a string", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"active":"yes"}`, nil, 400, "validation_error", "active"},
		{"headers not strings", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"headers":{"X-A":1}}`, nil, 400, "validation_error", "headers"},
		{"unknown field", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"secretz":"x"}`, nil, 400, "unknown_field", "secretz"},
		{"unknown field, long name", "POST", "/v1/webhooks", `{"` + strings.Repeat("k", 5000) + `":1}`, nil, 400, "unknown_field", strings.Repeat("k", 64) + "…"},
		{"case-different field", "POST", "/v1/webhooks", `{"URL":"https://a.example","events":["*"]}`, nil, 400, "unknown_field", "URL"},
		{"duplicate field", "POST", "/v1/webhooks", `{"url":"https://a.example","url":"https://b.example","events":["*"]}`, nil, 400, "validation_error", "url"},
		{"duplicate header", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"headers":{"X-A":"1","X-A":"2"}}`, nil, 400, "validation_error", "headers.X-A"},
		{"duplicate header, escaped", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"headers":{"X-B":"","X-A":"1","X\u002dA":"2"}}`, nil, 400, "validation_error", "headers.X-A"},
		{"missing url", "POST", "/v1/webhooks", `{"events":["workflow.completed"]}`, nil, 400, "validation_error", "url"},
		{"relative url", "POST", "/v1/webhooks", `{"url":"/hook","events":["workflow.completed"]}`, nil, 400, "validation_error", "url"},
		{"ftp url", "POST", "/v1/webhooks", `{"url":"ftp://a.example/x","events":["workflow.completed"]}`, nil, 400, "validation_error", "url"},
		{"port over 65535", "POST", "/v1/webhooks", `{"url":"https://a.example:99999/","events":["*"]}`, nil, 400, "validation_error", "url"},
		{"port 0", "POST", "/v1/webhooks", `{"url":"https://a.example:0/","events":["*"]}`, nil, 400, "validation_error", "url"},
		{"bare colon", "POST", "/v1/webhooks", `{"url":"https://a.example:/","events":["*"]}`, nil, 400, "validation_error", "url"},
		{"huge url", "POST", "/v1/webhooks", `{"url":"https://a.example/` + strings.Repeat("a", 5000) + `","events":["*"]}`, nil, 400, "validation_error", "url"},
		{"no events", "POST", "/v1/webhooks", `{"url":"https://a.example","events":[]}`, nil, 400, "validation_error", "events"},
		{"unknown event", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["workflow.completed","nope.nope"]}`, nil, 400, "validation_error", "events[1]"},
		{"invalid UTF-8", "POST", "/v1/webhooks", "{\"url\":\"https://a.example\",\"events\":[\"*\"],\"description\":\"\xff\xfe\"}", nil, 400, "invalid_json", ""},
		{"invalid UTF-8 in the url", "POST", "/v1/webhooks", "{\"url\":\"https://a.example/\xc3\",\"events\":[\"*\"]}", nil, 400, "invalid_json", ""},
		{"invalid UTF-8 in a key", "POST", "/v1/webhooks", "{\"url\xff\":\"https://a.example\",\"events\":[\"*\"]}", nil, 400, "invalid_json", ""},
		{"encoded surrogate", "POST", "/v1/webhooks", "{\"url\":\"https://a.example\",\"events\":[\"*\"],\"description\":\"\xed\xa0\x80\"}", nil, 400, "invalid_json", ""},
		{"update invalid UTF-8 description", "PUT", "/v1/webhooks/" + id, "{\"description\":\"caf\xe9\"}", nil, 400, "invalid_json", ""},
		{"update invalid UTF-8 url", "PUT", "/v1/webhooks/" + id, "{\"url\":\"https://a.example/\xff\"}", nil, 400, "invalid_json", ""},
		{"update invalid UTF-8 header", "PUT", "/v1/webhooks/" + id, "{\"headers\":{\"X-A\":\"\x80\"}}", nil, 400, "invalid_json", ""},
		{"event data invalid UTF-8", "POST", "/v1/events", "{\"event\":\"workflow.completed\",\"data\":{\"x\":\"\xff\"}}", nil, 400, "invalid_json", ""},
		{"NUL in description", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"description":"a\u0000b"}`, nil, 400, "validation_error", "description"},
		{"deep nesting", "POST", "/v1/webhooks", `{"url":` + deep + `}`, nil, 400, "", ""},
		{"body over the cap", "POST", "/v1/webhooks", `{"description":"` + strings.Repeat("d", 70<<10) + `"}`, nil, 413, "payload_too_large", ""},
		{"text/plain", "POST", "/v1/webhooks", valid, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", ""},
		{"form", "POST", "/v1/webhooks", valid, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", ""},
		{"no content type", "POST", "/v1/webhooks", valid, []string{"Content-Type", ""}, 415, "unsupported_media_type", ""},
		{"bad content type", "POST", "/v1/webhooks", valid, []string{"Content-Type", ";;;"}, 415, "unsupported_media_type", ""},
		{"json with charset", "POST", "/v1/webhooks", valid, []string{"Content-Type", "application/json; charset=utf-8"}, 201, "", ""},
		{"gzip", "POST", "/v1/webhooks", valid, []string{"Content-Encoding", "gzip"}, 415, "unsupported_media_type", ""},
		{"gzip update", "PUT", "/v1/webhooks/" + id, `{"active":false}`, []string{"Content-Encoding", "gzip"}, 415, "unsupported_media_type", ""},
		{"unknown encoding", "POST", "/v1/webhooks", valid, []string{"Content-Encoding", "x-nope"}, 415, "unsupported_media_type", ""},
		{"identity encoding", "POST", "/v1/webhooks", valid, []string{"Content-Encoding", "Identity"}, 201, "", ""},
		{"empty update", "PUT", "/v1/webhooks/" + id, `{}`, nil, 400, "validation_error", ""},
		{"null update", "PUT", "/v1/webhooks/" + id, `null`, nil, 400, "invalid_json", ""},
		{"update events null", "PUT", "/v1/webhooks/" + id, `{"events":null}`, nil, 400, "validation_error", ""},
		{"update NUL description", "PUT", "/v1/webhooks/" + id, `{"description":"\u0000"}`, nil, 400, "validation_error", "description"},
		{"update bad url", "PUT", "/v1/webhooks/" + id, `{"url":"nope"}`, nil, 400, "validation_error", "url"},
		{"update port over 65535", "PUT", "/v1/webhooks/" + id, `{"url":"https://a.example:65536/hook"}`, nil, 400, "validation_error", "url"},
		{"null header value", "POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"headers":{"X-A":"1","X-B":null}}`, nil, 400, "validation_error", "headers.X-B"},
		{"update null header value", "PUT", "/v1/webhooks/" + id, `{"headers":{"Authorization":null}}`, nil, 400, "validation_error", "headers.Authorization"},
		{"update duplicate header", "PUT", "/v1/webhooks/" + id, `{"headers":{"X-A":"1","X-A":"1"}}`, nil, 400, "validation_error", "headers.X-A"},
		{"update active wrong type", "PUT", "/v1/webhooks/" + id, `{"active":1}`, nil, 400, "validation_error", "active"},
		{"update unknown field", "PUT", "/v1/webhooks/" + id, `{"id":"wh_x"}`, nil, 400, "unknown_field", "id"},
		{"update secret refused", "PUT", "/v1/webhooks/" + id, `{"secret":"whsec_x"}`, nil, 400, "unknown_field", "secret"},
		{"short id", "GET", "/v1/webhooks/x", "", nil, 404, "not_found", ""},
		{"bare prefix", "GET", "/v1/webhooks/wh_", "", nil, 404, "not_found", ""},
		{"long id", "GET", "/v1/webhooks/wh_" + strings.Repeat("a", 4000), "", nil, 404, "not_found", ""},
		{"escaped id", "GET", "/v1/webhooks/wh_%00%ff", "", nil, 404, "not_found", ""},
		{"dotted id", "DELETE", "/v1/webhooks/wh_..", "", nil, 404, "not_found", ""},
		{"delivery id", "GET", "/v1/webhooks/" + id + "/deliveries/evt_1", "", nil, 404, "not_found", ""},
		{"trailing slash", "GET", "/v1/webhooks/", "", nil, 404, "not_found", ""},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, "not_found", ""},
		{"unknown subroute", "POST", "/v1/webhooks/" + id + "/pause", "", nil, 404, "not_found", ""},
		{"events body wrong type", "POST", "/v1/events", `{"event":["workflow.completed"]}`, nil, 400, "validation_error", "event"},
		{"event data number out of range", "POST", "/v1/events", `{"event":"workflow.completed","data":{"x":1e400}}`, nil, 400, "validation_error", "data"},
		{"event data number out of range, with an id", "POST", "/v1/events", `{"id":"evt_1","event":"workflow.completed","data":[-1e999]}`, nil, 400, "validation_error", "data"},
		{"test data number out of range", "POST", "/v1/webhooks/" + id + "/test", `{"data":{"x":1e400}}`, nil, 400, "validation_error", "data"},
		{"test data nested number out of range", "POST", "/v1/webhooks/" + id + "/test", `{"data":{"a":[{"b":-1e999}]}}`, nil, 400, "validation_error", "data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(c.method, c.path, tokenA, c.body, c.hdr...)
			if r.status >= 500 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if c.status == 0 {
				if r.status < 200 || r.status >= 500 {
					t.Fatalf("status %d", r.status)
				}
				return
			}
			r.must(t, c.status)
			if c.status >= 400 {
				code, field := r.errCode(t)
				if c.code != "" && code != c.code {
					t.Errorf("code %q, want %q: %s", code, c.code, r.raw)
				}
				if field != c.field {
					t.Errorf("field %q, want %q: %s", field, c.field, r.raw)
				}
				if len(r.raw) > 2048 {
					t.Errorf("a %d-byte error answer echoes the input", len(r.raw))
				}
			}
		})
	}
	// The failed calls changed nothing of the webhook.
	d := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t)
	if d["url"] != h.recv.url() || d["active"] != true {
		t.Errorf("the webhook changed: %v", d)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	id, _ := h.create(tokenA)
	cases := []struct{ method, path, allow string }{
		{"DELETE", "/v1/webhooks", "POST, GET, HEAD"},
		{"PATCH", "/v1/webhooks/" + id, "GET, HEAD, PUT, DELETE"},
		{"POST", "/v1/webhooks/" + id, "GET, HEAD, PUT, DELETE"},
		{"GET", "/v1/webhooks/" + id + "/test", "POST"},
		{"PUT", "/v1/webhooks/" + id + "/deliveries", "GET, HEAD"},
		{"DELETE", "/v1/webhooks/" + id + "/deliveries/del_1", "GET, HEAD"},
		{"GET", "/v1/webhooks/" + id + "/deliveries/del_1/retry", "POST"},
		{"GET", "/v1/webhooks/" + id + "/rotate-secret", "POST"},
		{"PUT", "/v1/webhooks/openapi.json", "GET, HEAD"},
		{"DELETE", "/v1/webhooks/openapi.json", "GET, HEAD"},
		{"OPTIONS", "/v1/webhooks", "POST, GET, HEAD"},
		{"TRACE", "/v1/webhooks/" + id, "GET, HEAD, PUT, DELETE"},
		// Any token is a method; a long one is not echoed whole.
		{strings.Repeat("M", 8000), "/v1/webhooks", "POST, GET, HEAD"},
		{"get", "/v1/webhooks", "POST, GET, HEAD"},
	}
	for _, c := range cases {
		r := h.do(c.method, c.path, tokenA, "")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, %q: %s", shortQ(c.method), c.path, r.status, r.header.Get("Allow"), c.allow, r.raw)
			continue
		}
		if code, _ := r.errCode(t); code != "method_not_allowed" {
			t.Errorf("%s %s: code %q", shortQ(c.method), c.path, code)
		}
		if len(r.raw) > 512 {
			t.Errorf("%s %s: a %d-byte answer echoes the method", shortQ(c.method), c.path, len(r.raw))
		}
	}
	// HEAD works where GET does, without a body.
	r := h.do("HEAD", "/v1/webhooks/"+id, tokenA, "")
	if r.status != http.StatusOK || len(r.raw) != 0 {
		t.Errorf("HEAD: %d %q", r.status, r.raw)
	}
}

// rawExchange writes req to the API's server as it is, on a connection of
// its own that t closes, and returns the first answer that comes back
// (which may be a 100 Continue).
func (h *harness) rawExchange(t *testing.T, req string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.api.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A guard against a hung test, not a measure of anything.
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return res
}

// The body cap holds however the body is framed: with a Content-Length
// over the cap the request is refused before its body is asked for, and a
// chunked body or one that outruns a small Content-Length is cut off.
// Nothing is stored from any of them.
func TestBodyCap(t *testing.T) {
	h := newHarness(t, stores[1].open, options{maxBody: 1 << 10})
	id, _ := h.create(tokenA)
	big := `{"description":"` + strings.Repeat("d", 3000) + `"}`
	head := "PUT /v1/webhooks/" + id + " HTTP/1.1\r\nHost: api.example\r\n" +
		"Authorization: Bearer " + tokenA + "\r\nContent-Type: application/json\r\n"
	for _, c := range []struct {
		name, req string
		status    int
		code      string
	}{
		// A client that waits for 100 Continue is told 413 at once.
		{"expect 100-continue", head + "Expect: 100-continue\r\nContent-Length: 1073741824\r\n\r\n", 413, "payload_too_large"},
		{"content length over the cap", head + "Content-Length: 3000000\r\n\r\n" + big, 413, "payload_too_large"},
		{"chunked", head + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big), 413, "payload_too_large"},
		{"content length under the body", head + "Content-Length: 16\r\n\r\n" + big, 400, "invalid_json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := h.rawExchange(t, c.req)
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, raw)
			}
			var env struct {
				Success bool `json:"success"`
				Error   struct{ Code string }
			}
			if err := json.Unmarshal(raw, &env); err != nil || env.Success || env.Error.Code != c.code {
				t.Errorf("answer %s, want code %q", raw, c.code)
			}
		})
	}
	d := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t)
	if d["description"] != "" {
		t.Errorf("a refused body was stored: %v", d)
	}
}

// A listing's query string is read exactly or refused: a parameter that
// does not unescape, or one given twice, is a 400 naming it, never a
// filter, a page size or a cursor silently dropped. Other names, well
// escaped, are left alone.
func TestListQueryRefused(t *testing.T) {
	h := newHarness(t, stores[1].open, options{events: true})
	id, _ := h.create(tokenA)
	h.emit(tokenA, "workflow.completed", `{}`)
	deliveries := "/v1/webhooks/" + id + "/deliveries"
	for _, c := range []struct{ path, field string }{
		{deliveries + "?status=%zz", "status"},
		{deliveries + "?status=failed;x", "status"},
		{deliveries + "?event=workflow.failed%", "event"},
		{deliveries + "?limit=%zz", "limit"},
		{deliveries + "?cursor=%zz", "cursor"},
		{deliveries + "?status=failed&status=success", "status"},
		{deliveries + "?event=workflow.failed&event=workflow.completed", "event"},
		{deliveries + "?limit=1&limit=x", "limit"},
		{deliveries + "?other=%zz", "other"},
		{"/v1/webhooks?limit=%zz", "limit"},
		{"/v1/webhooks?limit=1;", "limit"},
		{"/v1/webhooks?limit=1&limit=2", "limit"},
		{"/v1/webhooks?cursor=%zz", "cursor"},
		{"/v1/webhooks?cursor=&cursor=", "cursor"},
	} {
		r := h.do("GET", c.path, tokenA, "").must(t, http.StatusBadRequest)
		if code, field := r.errCode(t); code != "invalid_parameter" || field != c.field {
			t.Errorf("%s: code %q, field %q; want invalid_parameter, %q: %s", c.path, code, field, c.field, r.raw)
		}
	}
	for _, path := range []string{
		deliveries + "?status=success&other=1&other=2",
		deliveries + "?event=workflow%2Ecompleted&&limit=5&",
		"/v1/webhooks?access_token=x",
	} {
		h.do("GET", path, tokenA, "").must(t, http.StatusOK)
	}
}

// A cursor is only ever a position in the caller's own listing: one of
// another tenant's pages, one of another webhook's deliveries, and cursors
// forged to name another tenant's records or bytes that are not text (in
// the encoding of any store) answer 200 with the caller's records or 400,
// never a 500 and never another tenant's or webhook's record.
func TestForeignCursors(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{events: true})
		var mine, theirs []string
		for range 3 {
			a, _ := h.create(tokenA, "workflow.completed")
			b, _ := h.create(tokenB, "workflow.completed")
			mine, theirs = append(mine, a), append(theirs, b)
		}
		h.emit(tokenA, "workflow.completed", `{}`)
		h.emit(tokenA, "workflow.completed", `{}`)
		h.emit(tokenB, "workflow.completed", `{}`)
		theirDeliveries := h.do("GET", "/v1/webhooks/"+theirs[0]+"/deliveries", tokenB, "").must(t, http.StatusOK).items(t)
		if len(theirDeliveries) != 1 {
			t.Fatalf("%d deliveries of B's", len(theirDeliveries))
		}

		next := func(token, path string) string {
			t.Helper()
			r := h.do("GET", path+"?limit=1", token, "").must(t, http.StatusOK)
			c, _ := r.body["pagination"].(map[string]any)["nextCursor"].(string)
			if c == "" {
				t.Fatalf("%s: no next page", path)
			}
			return c
		}
		var cursors []string
		cursors = append(cursors, next(tokenB, "/v1/webhooks"), next(tokenA, "/v1/webhooks/"+mine[1]+"/deliveries"))
		for _, id := range []string{theirs[0], theirs[2], theirDeliveries[0]["id"].(string), "\xff\xff\xff\xff", "\x00"} {
			cursors = append(cursors,
				base64.RawURLEncoding.EncodeToString(append([]byte{1}, id...)),
				base64.RawURLEncoding.EncodeToString([]byte("m1:"+id)),
				base64.RawURLEncoding.EncodeToString([]byte("w:"+id)),
				base64.RawURLEncoding.EncodeToString([]byte("d:"+id)))
		}

		for _, c := range cursors {
			for _, path := range []string{"/v1/webhooks", "/v1/webhooks/" + mine[0] + "/deliveries"} {
				r := h.do("GET", path+"?cursor="+c, tokenA, "")
				if r.status == http.StatusBadRequest {
					if code, field := r.errCode(t); code != "invalid_parameter" || field != "cursor" {
						t.Errorf("%s with cursor %s: %s", path, c, r.raw)
					}
					continue
				}
				r.must(t, http.StatusOK)
				for _, it := range r.items(t) {
					if it["id"] != nil && slices.Contains(theirs, it["id"].(string)) ||
						it["webhookId"] != nil && it["webhookId"] != mine[0] {
						t.Errorf("%s with cursor %s lists another's record: %v", path, c, it)
					}
				}
			}
		}
	})
}
