package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// newTestH1 returns the default transport of a dispatcher that may dial
// loopback on any port.
func newTestH1(t *testing.T) *h1Transport {
	t.Helper()
	o := TransportOptions{AllowedRanges: loopback, AllowAnyPort: true, MaxIdleConnsPerHost: 4}
	g, err := newGuard(o)
	if err != nil {
		t.Fatal(err)
	}
	tr := newH1Transport(guardedDialer(g, o).DialContext, maxIdlePerHost(o))
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// connCounter counts the connections a test server accepts and closes.
type connCounter struct{ opened, closed atomic.Int64 }

func (c *connCounter) track(srv *httptest.Server) {
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			c.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.closed.Add(1)
		}
	}
}

// post sends one delivery-like request through rt and returns its status
// and body.
func post(ctx context.Context, rt http.RoundTripper, url string) (int, string, error) {
	body := []byte(`{"n":1}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.GetBody = func() (io.ReadCloser, error) { return newBody(body), nil }
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func mustPost(t *testing.T, rt http.RoundTripper, url string) string {
	t.Helper()
	status, body, err := post(context.Background(), rt, url)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	if status != http.StatusOK {
		t.Fatalf("status %d, want 200", status)
	}
	return body
}

func TestDefaultTransportReusesConnections(t *testing.T) {
	st := newMemStore(t)
	var conns connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	addWebhook(t, st, "acme", srv.URL+"/hook", EventWorkflowCompleted)
	d := startDispatcher(t, st, testConfig())
	for i := range 10 {
		deliverOne(t, d, st, i)
	}
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("10 deliveries one after another opened %d connections, want 1", n)
	}
	// They went through the dispatcher's own client, whose pool holds the
	// connection now.
	d.h1.mu.Lock()
	defer d.h1.mu.Unlock()
	if d.h1.nidle != 1 {
		t.Errorf("the client holds %d idle connections, want 1", d.h1.nidle)
	}
}

// TestDefaultTransportHTTPS: a server that offers HTTP/2 over TLS gets it,
// through net/http's Transport, after one handshake of the dispatcher's
// own client, which learns it there; one that does not gets HTTP/1.1
// through that client. Either way the connection is reused.
func TestDefaultTransportHTTPS(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2 offered %v", h2), func(t *testing.T) { testHTTPS(t, h2) })
	}
}

func testHTTPS(t *testing.T, h2 bool) {
	var conns connCounter
	protos := make(chan string, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
	}))
	srv.EnableHTTP2 = h2
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	conns.track(srv)
	srv.StartTLS()
	defer srv.Close()

	st := newMemStore(t)
	d := startTrusting(t, st, srv)
	want, wantConns, wantIdle := "HTTP/1.1", int64(1), 1
	if h2 {
		want, wantConns, wantIdle = "HTTP/2.0", 2, 0
	}
	for i := range 3 {
		deliverOne(t, d, st, i)
		if proto := <-protos; proto != want {
			t.Errorf("delivery %d went as %s, want %s", i, proto, want)
		}
	}
	if n := conns.opened.Load(); n != wantConns {
		t.Errorf("3 deliveries opened %d TLS connections, want %d", n, wantConns)
	}
	d.h1.mu.Lock()
	defer d.h1.mu.Unlock()
	if d.h1.nidle != wantIdle {
		t.Errorf("the dispatcher's own client holds %d idle connections, want %d", d.h1.nidle, wantIdle)
	}
}

// deliverOne emits workflow.completed number n for tenant acme, waits for
// its one delivery to succeed at the first attempt, and returns its id.
func deliverOne(t *testing.T, d *Dispatcher, st store.Store, n int) string {
	t.Helper()
	res, err := d.Emit(context.Background(), Event{Type: EventWorkflowCompleted, Tenant: "acme", Data: map[string]int{"n": n}})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, st, res.DeliveryIDs[0], store.StatusSuccess, 1)
	return res.DeliveryIDs[0]
}

// startTrusting adds a webhook of tenant acme for workflow.completed to
// srv's /hook in st, and starts a dispatcher on the default transport
// whose two clients trust srv's certificate.
func startTrusting(t *testing.T, st store.Store, srv *httptest.Server) *Dispatcher {
	t.Helper()
	addWebhook(t, st, "acme", srv.URL+"/hook", EventWorkflowCompleted)
	d := mustNew(t, st, testConfig())
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	d.h1.tls = &tls.Config{RootCAs: roots}
	d.rt.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
	return startNew(t, d)
}

// TestDefaultTransportSameOverHTTP2: an attempt over HTTP/2 (net/http's
// Transport) is the one sent over HTTP/1.1 (the dispatcher's own client):
// no Accept-Encoding asked for, and the answer logged as it came, not
// decompressed, its Content-Encoding kept.
func TestDefaultTransportSameOverHTTP2(t *testing.T) {
	gzipped := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0} // ""
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2 offered %v", h2), func(t *testing.T) {
			got := make(chan string, 1)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.Header.Get("Accept-Encoding")
				w.Header().Set("Content-Encoding", "gzip")
				w.Write(gzipped)
			}))
			srv.EnableHTTP2 = h2
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			defer srv.Close()

			st := newMemStore(t)
			d := startTrusting(t, st, srv)
			id := deliverOne(t, d, st, 0)
			if ae := <-got; ae != "" {
				t.Errorf("the request asked for Accept-Encoding %q, want none", ae)
			}
			a := attempts(t, st, id)[0]
			if ce := a.ResponseHeaders.Get("Content-Encoding"); ce != "gzip" || !bytes.Equal(a.ResponseBody, gzipped) {
				t.Errorf("attempt logged Content-Encoding %q, body %q; want gzip, %q", ce, a.ResponseBody, gzipped)
			}
		})
	}
}

// TestDefaultTransportSurvivesServerClosingIdleConnections: a receiver
// that closes keep-alive connections after a short idle time (Node.js
// does after 5 s) must not cost a failed attempt.
func TestDefaultTransportSurvivesServerClosingIdleConnections(t *testing.T) {
	st := newMemStore(t)
	rc := newReceiver(t, nil)
	addWebhook(t, st, "acme", rc.URL+"/hook", EventWorkflowCompleted)
	d := startDispatcher(t, st, testConfig())
	for i := range 3 {
		deliverOne(t, d, st, i)
		// The delivery's connection is idle in the pool: the server
		// closes it.
		rc.CloseClientConnections()
		time.Sleep(20 * time.Millisecond) // the FIN arrives
	}
	if n := rc.count(); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
}

func TestH1ResendsOnceOnAStaleConnection(t *testing.T) {
	// The first connection answers two requests, and closes when it has
	// read the third (a server going down as the request arrives); every
	// later one reads a request and closes without a word.
	var accepted, requests atomic.Int64
	url := rawServer(t, func(c net.Conn, n int) {
		accepted.Add(1)
		eachRequest(c, func(i int) bool {
			requests.Add(1)
			if n > 1 || i == 3 {
				return false
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
	})
	tr := newTestH1(t)
	mustPost(t, tr, url)
	mustPost(t, tr, url) // on the pooled connection
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections for two requests on a live connection, want 1", n)
	}
	// The pooled connection closes without an answer: the request goes
	// once more, on a new connection, which fails too. No third try.
	_, _, err := post(context.Background(), tr, url)
	if err == nil {
		t.Fatal("POST succeeded against a server that never answers")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want the connection's EOF", err)
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	// 2 answered + 1 on the pooled connection + 1 on the new one.
	if n := requests.Load(); n != 4 {
		t.Errorf("the server read %d requests, want 4", n)
	}
}

// eachRequest reads the requests arriving on c, discarding their bodies,
// and calls handle with each one's number from 1, until handle returns
// false or c ends.
func eachRequest(c net.Conn, handle func(i int) bool) {
	br := bufio.NewReader(c)
	for i := 1; ; i++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if !handle(i) {
			return
		}
	}
}

// rawServer serves each accepted connection with handle (n counts the
// connections from 1) and returns its URL.
func rawServer(t *testing.T, handle func(c net.Conn, n int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c, n)
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/hook"
}

func TestH1NoResendOnAFreshConnection(t *testing.T) {
	var requests atomic.Int64
	url := rawServer(t, func(c net.Conn, _ int) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			requests.Add(1)
		}
	})
	if _, _, err := post(context.Background(), newTestH1(t), url); err == nil {
		t.Fatal("POST succeeded against a server that never answers")
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the server read %d requests, want 1: a new connection's failure is the attempt's", n)
	}
}

// TestH1TLS: HTTP/1.1 over TLS on one connection; a server that chooses
// HTTP/2 is refused with errOffersH2, at once from then on.
func TestH1TLS(t *testing.T) {
	newServer := func(h2 bool, conns *connCounter) *httptest.Server {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		}))
		srv.EnableHTTP2 = h2
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		conns.track(srv)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	var conns, h2Conns connCounter
	srv, h2 := newServer(false, &conns), newServer(true, &h2Conns)

	tr := newTestH1(t)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	roots.AddCert(h2.Certificate())
	tr.tls = &tls.Config{RootCAs: roots}
	for range 3 {
		if proto := mustPost(t, tr, srv.URL+"/hook"); proto != "HTTP/1.1" {
			t.Errorf("request went as %s, want HTTP/1.1", proto)
		}
		if _, _, err := post(context.Background(), tr, h2.URL+"/hook"); err != errOffersH2 {
			t.Errorf("to a server choosing HTTP/2: %v, want %v", err, errOffersH2)
		}
	}
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("3 requests opened %d TLS connections, want 1", n)
	}
	if n := h2Conns.opened.Load(); n != 1 {
		t.Errorf("3 requests to the HTTP/2 server opened %d connections, want 1 (the first)", n)
	}
	waitFor(t, "the HTTP/2 server's connection to be closed", func() bool { return h2Conns.closed.Load() == 1 })

	// Without the test root the certificate is not trusted.
	untrusting := newTestH1(t)
	_, _, err := post(context.Background(), untrusting, srv.URL+"/hook")
	var certErr *tls.CertificateVerificationError
	if !errors.As(err, &certErr) {
		t.Errorf("error %v, want a certificate verification error", err)
	}
	if class, _ := classify(err, false, time.Second); class != store.ErrorTLS {
		t.Errorf("class %q, want tls", class)
	}
}

func TestH1TLSHandshakeTimeout(t *testing.T) {
	// Accepts and says nothing: the handshake never ends.
	url := rawServer(t, func(c net.Conn, _ int) { io.Copy(io.Discard, c) })
	tr := newTestH1(t)
	tr.handshakeTimeout = 50 * time.Millisecond
	_, _, err := post(context.Background(), tr, strings.Replace(url, "http:", "https:", 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || err.Error() != "TLS handshake timeout" {
		t.Errorf("error %v, want a TLS handshake timeout", err)
	}
	if class, _ := classify(err, false, time.Second); class != store.ErrorTimeout {
		t.Errorf("class %q, want timeout", class)
	}
}

func TestH1ResponseHeaderLimit(t *testing.T) {
	for _, tt := range []struct {
		size int
		ok   bool
	}{{maxResponseHeaderBytes - 1024, true}, {maxResponseHeaderBytes + 1024, false}} {
		url := rawServer(t, func(c net.Conn, _ int) {
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Length: 2\r\n\r\nok", strings.Repeat("a", tt.size))
		})
		_, _, err := post(context.Background(), newTestH1(t), url)
		if tt.ok && err != nil {
			t.Errorf("%d bytes of headers: %v", tt.size, err)
		}
		if !tt.ok && !errors.Is(err, errHeaderTooLarge) {
			t.Errorf("%d bytes of headers: error %v, want %v", tt.size, err, errHeaderTooLarge)
		}
	}
}

func TestH1InformationalResponses(t *testing.T) {
	for _, tt := range []struct {
		n  int
		ok bool
	}{{1, true}, {max1xx, true}, {max1xx + 1, false}} {
		url := rawServer(t, func(c net.Conn, _ int) {
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			for range tt.n {
				io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		})
		status, body, err := post(context.Background(), newTestH1(t), url)
		if tt.ok && (err != nil || status != 200 || body != "ok") {
			t.Errorf("%d × 103 then 200: %d %q %v, want 200 \"ok\"", tt.n, status, body, err)
		}
		if !tt.ok && !errors.Is(err, errTooMany1xx) {
			t.Errorf("%d × 103: error %v, want %v", tt.n, err, errTooMany1xx)
		}
	}
}

func TestH1ConnectionReuseRules(t *testing.T) {
	var conns connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 1<<20))
			return
		}
		io.WriteString(w, "ok")
	}))
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	tr := newTestH1(t)

	mustPost(t, tr, srv.URL+"/ok")
	mustPost(t, tr, srv.URL+"/ok")
	if n := conns.opened.Load(); n != 1 {
		t.Fatalf("%d connections for two requests, want 1", n)
	}

	// An answer saying Connection: close ends its connection.
	mustPost(t, tr, srv.URL+"/close")
	mustPost(t, tr, srv.URL+"/ok")
	if n := conns.opened.Load(); n != 2 {
		t.Errorf("%d connections after a Connection: close answer, want 2", n)
	}

	// A body closed before its end closes the connection: what is left
	// may be endless, and is not read.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/big", strings.NewReader("{}"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustPost(t, tr, srv.URL+"/ok")
	if n := conns.opened.Load(); n != 3 {
		t.Errorf("%d connections after a body left unread, want 3", n)
	}
	waitFor(t, "the server to see 2 connections closed", func() bool { return conns.closed.Load() == 2 })
}

func TestH1UnsolicitedBytesRetireAConnection(t *testing.T) {
	var accepted atomic.Int64
	url := rawServer(t, func(c net.Conn, _ int) {
		accepted.Add(1)
		eachRequest(c, func(int) bool {
			// The answer, then bytes nobody asked for.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK")
			return true
		})
	})
	tr := newTestH1(t)
	mustPost(t, tr, url)
	mustPost(t, tr, url)
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: one with bytes waiting is not reused", n)
	}
}

// newStallingServer returns a server that never finishes an answer: on
// /body it sends the headers and 7 of 100 bytes of body, elsewhere
// nothing. arrived counts its requests.
func newStallingServer(t *testing.T) (srv *httptest.Server, arrived *atomic.Int64) {
	hang, release := newGate()
	arrived = new(atomic.Int64)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release) // runs before srv.Close
	return srv, arrived
}

func TestH1ContextEndsTheExchange(t *testing.T) {
	srv, _ := newStallingServer(t)
	tr := newTestH1(t)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := post(ctx, tr, srv.URL+"/headers"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung before the headers: %v, want %v", err, context.DeadlineExceeded)
	}

	ctx, cancel = context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/body", strings.NewReader("{}"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("hung in the body: %v, want %v", err, context.Canceled)
	}
	resp.Body.Close()
	if tr.nidle != 0 {
		t.Errorf("%d connections pooled after cancelled exchanges, want 0", tr.nidle)
	}
}

// TestH1RemembersBoundedH2Servers: the servers remembered as speaking
// HTTP/2 are at most maxH2; the set starts afresh when full.
func TestH1RemembersBoundedH2Servers(t *testing.T) {
	tr := newTestH1(t)
	for i := range maxH2 + 1 {
		tr.markH2(connKey{tls: true, host: fmt.Sprintf("h%d.example.com", i)})
	}
	last := connKey{tls: true, host: fmt.Sprintf("h%d.example.com", maxH2)}
	if n := len(tr.h2); n != 1 || !tr.speaksH2(last) {
		t.Errorf("%d servers remembered, the last one %v; want it alone", n, tr.speaksH2(last))
	}
}

func TestH1Pool(t *testing.T) {
	var conns connCounter
	gate, open := newGate()
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			arrived.Done()
			<-gate
		}
	}))
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	tr := newTestH1(t) // 4 idle per host

	// Six at once need six connections; four stay, two are closed.
	arrived.Add(6)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if _, _, err := post(context.Background(), tr, srv.URL+"/wait"); err != nil {
				t.Error(err)
			}
		})
	}
	arrived.Wait()
	open()
	wg.Wait()
	if tr.nidle != 4 {
		t.Errorf("%d idle connections, want the cap of 4", tr.nidle)
	}
	waitFor(t, "the server to see 2 connections closed", func() bool { return conns.closed.Load() == 2 })

	// Connections unused for the idle timeout are closed, not reused.
	tr.idleTimeout = 10 * time.Millisecond
	time.Sleep(20 * time.Millisecond)
	mustPost(t, tr, srv.URL+"/ok")
	if n := conns.opened.Load(); n != 7 {
		t.Errorf("%d connections opened, want 7: none of the expired ones reused", n)
	}
	waitFor(t, "the server to see 6 connections closed", func() bool { return conns.closed.Load() == 6 })

	tr.CloseIdleConnections()
	waitFor(t, "the server to see every connection closed", func() bool { return conns.closed.Load() == 7 })
	if tr.nidle != 0 || len(tr.idle) != 0 {
		t.Errorf("%d idle connections in %d lists after CloseIdleConnections", tr.nidle, len(tr.idle))
	}
}

func TestH1RefusesOtherSchemes(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "ftp://example.com/x", strings.NewReader("{}"))
	if _, err := newTestH1(t).RoundTrip(req); !errors.Is(err, ErrBlockedDestination) {
		t.Errorf("ftp: %v, want %v", err, ErrBlockedDestination)
	}
}

func TestH1DeadlineAndAbort(t *testing.T) {
	srv, arrived := newStallingServer(t)
	tr := newTestH1(t)
	until := func(path string, deadline time.Time) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("{}"))
		return tr.roundTripUntil(req, deadline)
	}

	// The deadline ends an exchange waiting for headers, and one in the
	// body.
	if _, err := until("/headers", time.Now().Add(50*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung before the headers: %v, want %v", err, context.DeadlineExceeded)
	}
	resp, err := until("/body", time.Now().Add(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung in the body: %v, want %v", err, context.DeadlineExceeded)
	}
	resp.Body.Close()

	// Abort ends exchanges whatever their deadline: one waiting for
	// headers, one in its body.
	far := time.Now().Add(time.Hour)
	resp, err = until("/body", far)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := until("/headers", far)
		errc <- err
	}()
	waitFor(t, "both requests to arrive", func() bool { return arrived.Load() == 4 })
	start := time.Now()
	tr.Abort()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("hung before the headers, aborted: %v, want %v", err, context.Canceled)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("hung in the body, aborted: %v, want %v", err, context.Canceled)
	}
	resp.Body.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Abort took %v to end the exchanges", d)
	}
	// And none starts after it.
	if _, err := until("/headers", far); !errors.Is(err, context.Canceled) {
		t.Errorf("after Abort: %v, want %v", err, context.Canceled)
	}
	if n := arrived.Load(); n != 4 {
		t.Errorf("%d requests reached the server, want 4: none after Abort", n)
	}
	if tr.nidle != 0 || len(tr.busy) != 0 {
		t.Errorf("%d idle and %d busy connections left after Abort", tr.nidle, len(tr.busy))
	}
}

func TestH1DialAddress(t *testing.T) {
	for _, tt := range []struct{ url, addr string }{
		{"http://example.com/x", "example.com:80"},
		{"https://example.com/x", "example.com:443"},
		{"http://example.com:/x", "example.com:80"},
		{"https://example.com:8443/x", "example.com:8443"},
		{"http://[2001:db8::1]/x", "[2001:db8::1]:80"},
		{"https://[2001:db8::1]:8443/x", "[2001:db8::1]:8443"},
	} {
		var dialled string
		tr := newTestH1(t)
		tr.dial = func(_ context.Context, _, addr string) (net.Conn, error) {
			dialled = addr
			return nil, errors.New("no dial in this test")
		}
		req, _ := http.NewRequest(http.MethodPost, tt.url, strings.NewReader("{}"))
		tr.RoundTrip(req)
		if dialled != tt.addr {
			t.Errorf("%s dialled %q, want %q", tt.url, dialled, tt.addr)
		}
	}
}

func TestH1FullPoolMakesRoomFromExpired(t *testing.T) {
	var connsA connCounter
	a := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	connsA.track(a)
	a.Start()
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer b.Close()
	tr := newTestH1(t)
	tr.maxIdlePerHost, tr.maxIdle = 1, 1

	mustPost(t, tr, a.URL+"/hook") // the pool is full with a's connection
	tr.idleTimeout = 10 * time.Millisecond
	time.Sleep(20 * time.Millisecond)
	mustPost(t, tr, b.URL+"/hook")
	// b's connection takes the place of a's, expired.
	waitFor(t, "a's connection to be closed", func() bool { return connsA.closed.Load() == 1 })
	tr.mu.Lock()
	defer tr.mu.Unlock()
	bKey := connKey{host: strings.TrimPrefix(b.URL, "http://")}
	if tr.nidle != 1 || len(tr.idle) != 1 || len(tr.idle[bKey]) != 1 {
		t.Errorf("pool holds %d connections in %v, want b's alone", tr.nidle, tr.idle)
	}
}

// tlsRawServer is rawServer over TLS, with the certificate of an httptest
// server; it returns the URL and a transport that trusts it.
func tlsRawServer(t *testing.T, handle func(c *tls.Conn, n int)) (string, *h1Transport) {
	t.Helper()
	cert := httptest.NewUnstartedServer(http.NotFoundHandler())
	cert.StartTLS()
	cert.Close()
	cfg := &tls.Config{Certificates: cert.TLS.Certificates}
	url := rawServer(t, func(c net.Conn, n int) {
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		handle(tc, n)
	})
	tr := newTestH1(t)
	roots := x509.NewCertPool()
	roots.AddCert(cert.Certificate())
	tr.tls = &tls.Config{RootCAs: roots}
	return strings.Replace(url, "http:", "https:", 1), tr
}

// TestH1DeadlineEndsAnExchangeWithAPeerThatDoesNotRead: an endpoint that
// completes the TLS handshake and then reads nothing holds the request's
// write, not a read: the deadline ends it too, and closing the connection
// after it (a TLS close writes an alert) does not hold the attempt longer.
func TestH1DeadlineEndsAnExchangeWithAPeerThatDoesNotRead(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	url, tr := tlsRawServer(t, func(*tls.Conn, int) { <-done })
	postPastDeadline(t, tr, url)
}

// postPastDeadline posts more than the sockets hold to url through tr,
// with a deadline of 300 ms, and checks that the exchange ends with the
// deadline, within 2 s.
func postPastDeadline(t *testing.T, tr *h1Transport, url string) {
	t.Helper()
	body := bytes.Repeat([]byte("x"), 16<<20)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	start := time.Now()
	_, err := tr.roundTripUntil(req, start.Add(300*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the exchange ended %v after it began, with a deadline of 300ms", d)
	}
}

// TestH1ClosingABrokenTLSConnectionWritesNothing: a connection whose
// exchange failed is closed under its TLS layer, without the close_notify
// alert, whose write would wait up to 5 s (crypto/tls's limit) behind a
// request the peer stopped reading. The connections here model a send
// buffer that a write which timed out left full: every write after it
// waits out its deadline.
func TestH1ClosingABrokenTLSConnectionWritesNothing(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	url, tr := tlsRawServer(t, func(*tls.Conn, int) { <-done })
	dial := tr.dial
	var late atomic.Int64
	tr.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &fullAfterFailure{Conn: c, late: &late}, nil
	}
	postPastDeadline(t, tr, url)
	if n := late.Load(); n != 0 {
		t.Errorf("%d writes after the one that failed, want none", n)
	}
}

// fullAfterFailure is a connection whose writes, once one has failed,
// wait for the write deadline and fail: a send buffer that never drains.
// late counts them.
type fullAfterFailure struct {
	net.Conn
	late *atomic.Int64

	mu       sync.Mutex
	full     bool
	deadline time.Time
}

func (c *fullAfterFailure) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *fullAfterFailure) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *fullAfterFailure) Write(b []byte) (int, error) {
	c.mu.Lock()
	full, deadline := c.full, c.deadline
	c.mu.Unlock()
	if full {
		c.late.Add(1)
		time.Sleep(time.Until(deadline))
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.mu.Lock()
		c.full = true
		c.mu.Unlock()
	}
	return n, err
}

// TestH1BytesArrivingOnAnIdleConnectionRetireIt: bytes a server sends on
// a connection after its answer ended, while it waits in the pool, are no
// answer to the next request. Servers send a 408 on keep-alive connections
// they close for idleness; a broken one sends more than the answer it
// announced, late. Either must not be read as the next request's answer
// (net/http's Transport closes such a connection too).
func TestH1BytesArrivingOnAnIdleConnectionRetireIt(t *testing.T) {
	if newIdlePeek(new(bool)) == nil {
		t.Skip("idle sockets cannot be peeked at on " + runtime.GOOS)
	}
	for _, late := range []string{
		"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n",
	} {
		var accepted, requests atomic.Int64
		url := rawServer(t, func(c net.Conn, n int) {
			accepted.Add(1)
			eachRequest(c, func(int) bool {
				requests.Add(1)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				if n == 1 {
					// The first connection sends more, once the
					// answer was read; then it waits for the next
					// request, which it would take for its own.
					time.Sleep(20 * time.Millisecond)
					io.WriteString(c, late)
				}
				return true
			})
		})
		tr := newTestH1(t)
		mustPost(t, tr, url)
		time.Sleep(200 * time.Millisecond) // the late bytes arrive
		if status, _, err := post(context.Background(), tr, url); err != nil || status != http.StatusOK {
			t.Errorf("after %q on the idle connection: %d, %v, want 200", late, status, err)
		}
		if n := accepted.Load(); n != 2 {
			t.Errorf("after %q on the idle connection: %d connections, want 2", late, n)
		}
		if n := requests.Load(); n != 2 {
			t.Errorf("after %q on the idle connection: the server read %d requests, want 2", late, n)
		}
	}
}

// TestH1StatusBelow100IsTheAnswer: a status under 100 is no informational
// answer (those are 1xx): it is the answer, as net/http's Transport
// returns it, not skipped to wait for another one the server never sends.
func TestH1StatusBelow100IsTheAnswer(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	url := rawServer(t, func(c net.Conn, _ int) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n")
		<-done
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if status, _, err := post(ctx, newTestH1(t), url); err != nil || status != 99 {
		t.Errorf("answer 099: %d, %v, want 99", status, err)
	}
}

// TestH1DeadlineAndAbortEndConnecting: the deadline and Abort end a dial
// and a TLS handshake that never finish, as they end the exchange.
func TestH1DeadlineAndAbortEndConnecting(t *testing.T) {
	// Accepts and says nothing: the handshake never ends.
	silent := strings.Replace(rawServer(t, func(c net.Conn, _ int) { io.Copy(io.Discard, c) }), "http:", "https:", 1)
	for _, tt := range []struct {
		name  string
		url   string
		dial  bool // a dial that ends only with its context
		abort bool
		want  error
	}{
		{"handshake, deadline", silent, false, false, context.DeadlineExceeded},
		{"handshake, Abort", silent, false, true, context.Canceled},
		{"dial, deadline", "http://example.com/hook", true, false, context.DeadlineExceeded},
		{"dial, Abort", "http://example.com/hook", true, true, context.Canceled},
	} {
		tr := newTestH1(t)
		if tt.dial {
			tr.dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
				<-ctx.Done()
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
			}
		}
		deadline := time.Now().Add(time.Hour)
		if !tt.abort {
			deadline = time.Now().Add(100 * time.Millisecond)
		} else {
			time.AfterFunc(100*time.Millisecond, tr.Abort)
		}
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, tt.url, strings.NewReader("{}"))
		_, err := tr.roundTripUntil(req, deadline)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", tt.name, d)
		}
	}
}

// TestH1ReusesAConnectionIdleBeyondItsLastDeadline: a pooled connection
// keeps the deadline of its last exchange, which passes while it waits; it
// is still reused, not taken for broken.
func TestH1ReusesAConnectionIdleBeyondItsLastDeadline(t *testing.T) {
	var conns connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	conns.track(srv)
	srv.Start()
	defer srv.Close()
	tr := newTestH1(t)
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook", strings.NewReader("{}"))
		resp, err := tr.roundTripUntil(req, time.Now().Add(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(150 * time.Millisecond)
	}
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the idle one was not reused", n)
	}
}
