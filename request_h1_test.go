package webhook

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// dispatcherHeader returns a header like those send sets: the library's
// own names and values, two signature schemes among them.
func dispatcherHeader() http.Header {
	return http.Header{
		"Content-Type":        contentTypeJSON,
		"User-Agent":          {"noa-webhook/1.0"},
		"X-Webhook-Id":        {"wh_01JEXAMPLE0000000000000000"},
		"X-Webhook-Event":     {"workflow.completed"},
		"X-Webhook-Delivery":  {"del_01JEXAMPLE0000000000000000"},
		"X-Webhook-Attempt":   {"1"},
		"X-Webhook-Timestamp": {"1733390000"},
		"X-Webhook-Signature": {"sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		"Webhook-Id":          {"evt_01JEXAMPLE0000000000000000"},
		"Webhook-Timestamp":   {"1733390000"},
		"Webhook-Signature":   {"v1,ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8="},
	}
}

// testRequest is a request as send makes it for the h1 transport.
func testRequest(u *url.URL, h http.Header, body []byte) *http.Request {
	return &http.Request{
		Method: http.MethodPost, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: newPayload(body), ContentLength: int64(len(body)), Host: u.Host,
	}
}

// sameAsNetHTTP writes req with writeRequest, and a copy of it whose body
// is the same bytes with net/http's Request.Write, and fails t unless both
// fail or both write the same bytes.
func sameAsNetHTTP(t testing.TB, req *http.Request) {
	t.Helper()
	p := req.Body.(*payload)
	twin := *req
	twin.Body = newBody(bytes.Clone(p.b[len(p.b)-p.Len():])) // what is left to read
	var ours, theirs bytes.Buffer
	w := bufio.NewWriter(&ours)
	errOurs := writeRequest(w, req)
	w.Flush()
	errTheirs := twin.Write(&theirs)
	if (errOurs != nil) != (errTheirs != nil) {
		t.Fatalf("writeRequest: %v; Request.Write: %v", errOurs, errTheirs)
	}
	if errTheirs == nil && !bytes.Equal(ours.Bytes(), theirs.Bytes()) {
		t.Fatalf("writeRequest wrote\n%q\nRequest.Write wrote\n%q", ours.Bytes(), theirs.Bytes())
	}
}

// TestWriteRequestAsNetHTTP checks that writeRequest writes what
// Request.Write writes, byte for byte, and that it writes the dispatcher's
// requests itself: a test that only ever took the fallback would pass the
// comparison and measure nothing.
func TestWriteRequestAsNetHTTP(t *testing.T) {
	body := []byte(`{"id":"evt_1","event":"workflow.completed"}`)
	base := func() (*url.URL, http.Header) {
		return &url.URL{Scheme: "http", Host: "hooks.example.com", Path: "/in"}, dispatcherHeader()
	}
	cases := []struct {
		name   string
		change func(u *url.URL, h http.Header, r *http.Request)
		plain  bool // written by writeRequest itself
	}{
		{"the dispatcher's request", nil, true},
		{"a port", func(u *url.URL, _ http.Header, r *http.Request) { r.Host = "hooks.example.com:8443" }, true},
		{"an IPv4 address", func(u *url.URL, _ http.Header, r *http.Request) { r.Host = "127.0.0.1:9000" }, true},
		{"an IPv6 address", func(u *url.URL, _ http.Header, r *http.Request) { r.Host = "[::1]:9000" }, true},
		{"the URL's host", func(u *url.URL, _ http.Header, r *http.Request) { u.Host, r.Host = "other.example", "" }, true},
		{"an IPv6 zone", func(u *url.URL, _ http.Header, r *http.Request) { r.Host = "[fe80::1%eth0]:80" }, false},
		{"a host not in ASCII", func(u *url.URL, _ http.Header, r *http.Request) { r.Host = "bücher.example" }, false},
		{"a host net/http blanks", func(u *url.URL, _ http.Header, r *http.Request) { r.Host = "a b" }, false},
		{"a query", func(u *url.URL, _ http.Header, _ *http.Request) { u.RawQuery = "a=1&b=%20c" }, true},
		{"an escaped path", func(u *url.URL, _ http.Header, _ *http.Request) { u.Path = "/a b/ü" }, true},
		{"a control character in the query", func(u *url.URL, _ http.Header, _ *http.Request) { u.RawQuery = "a=\x01" }, false},
		{"no User-Agent", func(_ *url.URL, h http.Header, _ *http.Request) { delete(h, "User-Agent") }, true},
		{"an empty User-Agent", func(_ *url.URL, h http.Header, _ *http.Request) { h["User-Agent"] = []string{""} }, true},
		{"a User-Agent without values", func(_ *url.URL, h http.Header, _ *http.Request) { h["User-Agent"] = nil }, true},
		{"two User-Agents", func(_ *url.URL, h http.Header, _ *http.Request) { h["User-Agent"] = []string{"a", "b"} }, true},
		{"a User-Agent with a line break", func(_ *url.URL, h http.Header, _ *http.Request) { h["User-Agent"] = []string{"a\r\nX: y"} }, false},
		{"a value with a line break", func(_ *url.URL, h http.Header, _ *http.Request) { h["X-Custom"] = []string{"a\nb"} }, false},
		{"a value with a space at an end", func(_ *url.URL, h http.Header, _ *http.Request) { h["X-Custom"] = []string{"a "} }, false},
		{"a value with a tab inside", func(_ *url.URL, h http.Header, _ *http.Request) { h["X-Custom"] = []string{"a\tb"} }, true},
		{"a value not in ASCII", func(_ *url.URL, h http.Header, _ *http.Request) { h["X-Custom"] = []string{"grüße"} }, true},
		{"an empty value", func(_ *url.URL, h http.Header, _ *http.Request) { h["X-Custom"] = []string{""} }, true},
		{"several values", func(_ *url.URL, h http.Header, _ *http.Request) { h["X-Custom"] = []string{"b", "a"} }, true},
		{"a name without values", func(_ *url.URL, h http.Header, _ *http.Request) { h["X-Custom"] = []string{} }, true},
		{"a name that is no token", func(_ *url.URL, h http.Header, _ *http.Request) { h["X Custom"] = []string{"a"} }, false},
		{"a lower-case name", func(_ *url.URL, h http.Header, _ *http.Request) { h["x-custom"] = []string{"a"} }, true},
		{"Host in the header", func(_ *url.URL, h http.Header, _ *http.Request) { h["Host"] = []string{"evil.example"} }, true},
		{"host in the header", func(_ *url.URL, h http.Header, _ *http.Request) { h["host"] = []string{"evil.example"} }, true},
		{"Content-Length in the header", func(_ *url.URL, h http.Header, _ *http.Request) { h["Content-Length"] = []string{"1"} }, true},
		{"Close", func(_ *url.URL, _ http.Header, r *http.Request) { r.Close = true }, false},
		{"another method", func(_ *url.URL, _ http.Header, r *http.Request) { r.Method = http.MethodPut }, false},
		{"an empty body", func(_ *url.URL, _ http.Header, r *http.Request) { r.Body, r.ContentLength = newPayload(nil), 0 }, false},
		{"a body of another length", func(_ *url.URL, _ http.Header, r *http.Request) { r.ContentLength-- }, false},
		{"a body read from", func(_ *url.URL, _ http.Header, r *http.Request) { r.Body.Read(make([]byte, 2)) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, h := base()
			req := testRequest(u, h, body)
			if tc.change != nil {
				tc.change(u, h, req)
			}
			var fields [24]headerField
			_, _, _, _, plain := plainHead(req, fields[:0])
			if plain != tc.plain {
				t.Errorf("written directly = %v, want %v", plain, tc.plain)
			}
			sameAsNetHTTP(t, req)
			if plain && req.Body.(*payload).Len() != 0 {
				t.Error("the payload is unread after writeRequest")
			}
		})
	}
}

// TestWriteRequestAllocations checks that the direct way allocates nothing
// for the dispatcher's request.
func TestWriteRequestAllocations(t *testing.T) {
	u := &url.URL{Scheme: "http", Host: "hooks.example.com:8080", Path: "/in"}
	h := http.Header{"Content-Type": contentTypeJSON, "User-Agent": {"noa-webhook/1.0"}, "X-Webhook-Id": {"wh_1"}}
	body := []byte(`{"id":"evt_1"}`)
	w := bufio.NewWriterSize(io.Discard, 4096)
	reqs := make([]*http.Request, 0, 200)
	for range 200 {
		reqs = append(reqs, testRequest(u, h, body))
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		if err := writeRequest(w, reqs[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("writeRequest allocates %v times per request, want 0", allocs)
	}
}

// FuzzWriteRequest compares writeRequest with Request.Write on arbitrary
// hosts, paths, queries, headers and bodies.
func FuzzWriteRequest(f *testing.F) {
	f.Add("hooks.example.com", "/in", "", "X-Custom", "v", "ua", true, []byte(`{}`))
	f.Add("[::1]:80", "/a b", "q=1", "x custom", "a\r\nb", "", false, []byte("x"))
	f.Add("[fe80::1%eth0]:80", "", "\x7f", "Host", " v ", "a\nb", true, []byte{})
	f.Add("bücher.example", "/ü", "a=%zz", "User-Agent", "grüße", " ", true, []byte("body"))
	f.Fuzz(func(t *testing.T, host, path, query, key, value, ua string, setUA bool, body []byte) {
		u := &url.URL{Scheme: "http", Host: host, Path: path, RawQuery: query}
		h := http.Header{"Content-Type": contentTypeJSON, key: {value}}
		if setUA {
			h["User-Agent"] = []string{ua}
		}
		req := testRequest(u, h, body)
		sameAsNetHTTP(t, req)
	})
}

// FuzzWriteRequestMore compares writeRequest with Request.Write along the
// dimensions FuzzWriteRequest keeps fixed: a Host apart from the URL's,
// RawPath, ForceQuery and Opaque, several header names and values, the
// method, Close, a ContentLength off the body's and a body read from.
func FuzzWriteRequestMore(f *testing.F) {
	f.Add("hooks.example.com", "other.example", "/a%2Fb", "/a/b", "", false, "X-A", "1", "x-a", "2", "3", "POST", false, 0, 0, []byte(`{}`))
	f.Add("[::1]:80", "", "", "/p", "", true, "User-Agent", "ua", "Content-Length", "9", "", "POST", false, 0, 0, []byte("x"))
	f.Add("h", "h:1", "", "", "//x", false, "Host", "e", "Trailer", "t", "", "PUT", true, -1, 1, []byte("xy"))
	f.Fuzz(func(t *testing.T, urlHost, reqHost, rawPath, path, opaque string, forceQuery bool,
		k1, v1, k2, v2, v3, method string, close bool, lenDelta, read int, body []byte) {
		u := &url.URL{Scheme: "http", Host: urlHost, Path: path, RawPath: rawPath, Opaque: opaque, ForceQuery: forceQuery}
		h := http.Header{"Content-Type": contentTypeJSON, k1: {v1}, k2: {v2, v3}}
		req := testRequest(u, h, body)
		req.Host = reqHost
		req.Method = method
		req.Close = close
		req.ContentLength += int64(lenDelta % 3)
		if read > 0 && len(body) > 0 {
			req.Body.Read(make([]byte, read%len(body)+1))
		}
		sameAsNetHTTP(t, req)
	})
}

// BenchmarkWriteRequest compares writeRequest with net/http's
// Request.Write on a request with the dispatcher's headers.
func BenchmarkWriteRequest(b *testing.B) {
	u := &url.URL{Scheme: "http", Host: "127.0.0.1:8080", Path: "/ok/mem"}
	h := dispatcherHeader()
	body := bytes.Repeat([]byte("x"), 450)
	w := bufio.NewWriterSize(io.Discard, 4096)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := writeRequest(w, testRequest(u, h, body)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net/http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := testRequest(u, h, body)
			req.Body = newBody(body)
			if err := req.Write(w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestWriteRequestResendsPayload: a payload request that meets a stale
// pooled connection goes again, whole, on a new one: the resend takes
// GetBody's fresh payload, as the first write left its own read.
func TestWriteRequestResendsPayload(t *testing.T) {
	got := make(chan string, 4)
	srv := rawServer(t, func(c net.Conn, n int) {
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 1; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(req.Body)
			got <- string(b)
			if n == 1 && i == 2 {
				return // the pooled connection closes on the second request
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := newTestH1(t)
	u, err := url.Parse(srv + "/in")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_1"}`)
	for range 2 {
		req := testRequest(u, http.Header{"Content-Type": contentTypeJSON}, body)
		req.GetBody = func() (io.ReadCloser, error) { return newPayload(body), nil }
		resp, err := tr.roundTripUntil(req, time.Now().Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for i := range 3 {
		if b := <-got; b != string(body) {
			t.Errorf("request %d carried %q, want %q", i+1, b, body)
		}
	}
}
