package webhook

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// h1Transport is the dispatcher's default transport: HTTP/1.1 through the
// guarded dialer, with keep-alive connections pooled per destination, to
// every server but those that choose HTTP/2 over TLS, which the dispatcher
// sends to through net/http's Transport instead (see errOffersH2).
//
// It writes each request and reads its answer on the calling goroutine.
// net/http's Transport runs a reading and a writing goroutine per
// connection and hands every request and answer between them: on
// loopback, POSTs alone took 52 µs of processor time each through it
// against 41 this way, server included. Parsing the answer is net/http's
// own (ReadResponse), and so is writing any request but the dispatcher's
// plain POSTs, which writeRequest writes as Request.Write would; what is
// here is the connection pool, the deadlines and TLS setup.
//
// It speaks HTTP/1.1 alone. Over TLS it offers HTTP/2 too (ALPN h2,
// http/1.1): a server that picks HTTP/2 is remembered, its connection
// closed, and its requests refused with errOffersH2 from then on.
type h1Transport struct {
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	// tls is copied for every TLS connection; nil: crypto/tls's defaults
	// (the system's roots).
	tls              *tls.Config
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	maxIdlePerHost   int
	maxIdle          int

	// stopped ends the dials and TLS handshakes of roundTripUntil when
	// Abort is called.
	stopped context.Context
	abort   context.CancelFunc

	mu      sync.Mutex
	idle    map[connKey][]*h1Conn // most recently used last
	nidle   int
	busy    map[*h1Conn]struct{} // in an exchange
	aborted bool
	// h2 holds the TLS destinations that chose HTTP/2, at most maxH2.
	h2 map[connKey]struct{}
}

// errOffersH2 refuses a request to a server that speaks HTTP/2 over TLS:
// the dispatcher sends it through net/http's Transport, which does.
var errOffersH2 = errors.New("the server speaks HTTP/2")

// maxH2 bounds the destinations remembered as speaking HTTP/2; the set
// starts afresh when full, at the cost of one handshake per destination.
const maxH2 = 4096

// maxResponseHeaderBytes caps a response's status line and headers (and
// those of each 1xx answer before it).
const maxResponseHeaderBytes = 64 << 10

// max1xx is how many informational answers (100 Continue, 103 Early
// Hints) may come before the response.
const max1xx = 5

var (
	errHeaderTooLarge = fmt.Errorf("response headers larger than %d bytes", maxResponseHeaderBytes)
	errTooMany1xx     = fmt.Errorf("more than %d informational (1xx) responses", max1xx)
	// aLongTimeAgo is a deadline that ends every blocked read and write.
	aLongTimeAgo = time.Unix(1, 0)
)

// timeoutError is a net.Error that timed out: classify records it as a
// timeout.
type timeoutError struct{ msg string }

func (e timeoutError) Error() string { return e.msg }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// h1Conn is one connection of the pool.
type h1Conn struct {
	key    connKey
	conn   net.Conn // the *tls.Conn over TLS
	lim    limitReader
	br     *bufio.Reader // reads through lim
	bw     *bufio.Writer
	idleAt time.Time
	// deadline is the one begin set last (zero: none).
	deadline time.Time

	// raw and peek look at the socket under conn for what arrived while
	// it was idle (see waiting); nil where they cannot.
	raw     syscall.RawConn
	peek    func(fd uintptr) bool
	peekSaw bool // peek's answer

	// broken marks a connection whose exchange failed: close sends no
	// TLS close_notify on it (see close).
	broken bool
}

// close closes pc. A broken TLS connection is closed under its TLS layer:
// its failed write may have stopped inside a record, and a peer that
// stopped reading leaves no room for the alert, whose write crypto/tls
// lets wait 5 s.
func (pc *h1Conn) close() {
	if tc, ok := pc.conn.(*tls.Conn); ok && pc.broken {
		tc.NetConn().Close()
		return
	}
	pc.conn.Close()
}

// waiting reports whether anything arrived on pc while it was idle: bytes
// (a 408 a server sends before it closes an idle connection, or the late
// end of an answer that was longer than it said) or the end of the
// stream. None of it answers the next request, which would read it as its
// own answer: net/http's Transport, which reads every idle connection,
// closes such a connection, and so must the pool. The check costs one
// system call and leaves the bytes unread.
func (pc *h1Conn) waiting() bool {
	if pc.peek == nil {
		return false
	}
	if !pc.deadline.IsZero() && !time.Now().Before(pc.deadline) {
		// The last exchange's deadline has passed: the socket would not
		// be read at all.
		pc.conn.SetReadDeadline(time.Time{})
		pc.deadline = time.Time{}
	}
	if err := pc.raw.Read(pc.peek); err != nil {
		return true
	}
	return pc.peekSaw
}

// limitReader reads from r until n bytes have been read, then fails with
// errHeaderTooLarge. exchange sets n for the headers and lifts it for the
// body, which the dispatcher caps itself.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func newH1Transport(dial func(ctx context.Context, network, address string) (net.Conn, error), maxIdlePerHost int) *h1Transport {
	t := &h1Transport{
		dial:             dial,
		handshakeTimeout: 10 * time.Second,
		idleTimeout:      90 * time.Second,
		maxIdlePerHost:   maxIdlePerHost,
		maxIdle:          4 * maxIdlePerHost,
		idle:             make(map[connKey][]*h1Conn),
		busy:             make(map[*h1Conn]struct{}),
		h2:               make(map[connKey]struct{}),
	}
	t.stopped, t.abort = context.WithCancel(context.Background())
	return t
}

// Abort ends every exchange in flight, as if each request's context had
// been cancelled, and makes every later one fail with context.Canceled.
// The dispatcher calls it when Stop cancels the attempts in flight.
func (t *h1Transport) Abort() {
	t.abort()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.aborted = true
	for pc := range t.busy {
		pc.conn.SetDeadline(aLongTimeAgo)
	}
}

// RoundTrip sends req and returns its answer, whose body must be closed.
// The connection goes back to the pool when the body was read to its end
// and closed, and neither side asked to close it.
//
// A connection taken from the pool may have been closed by the server
// while it waited (an idle timeout, a restart). One seen closed, or with
// bytes waiting, before the request is written is not used (see waiting);
// the server may still close it as the request goes. When sending on it
// fails, or it ends before any byte of an answer, the request is sent once
// more on a new connection, as a browser does.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, req.Context(), time.Time{})
}

// roundTripUntil is RoundTrip for the dispatcher's attempts, without a
// context of their own: the exchange, the reading of the body included,
// ends at deadline (context.DeadlineExceeded) or when Abort is called
// (context.Canceled). It spares each attempt a context with its timer, and
// the registration of the context and of the connection's cancellation
// with their parents.
func (t *h1Transport) roundTripUntil(req *http.Request, deadline time.Time) (*http.Response, error) {
	return t.roundTrip(req, context.Background(), deadline)
}

// roundTrip sends req until ctx ends or deadline (when not zero) passes.
func (t *h1Transport) roundTrip(req *http.Request, ctx context.Context, deadline time.Time) (*http.Response, error) {
	u := req.URL
	if u == nil {
		closeBody(req)
		return nil, errors.New("request without a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		closeBody(req)
		return nil, fmt.Errorf("%w: scheme %q", ErrBlockedDestination, u.Scheme)
	}
	key := connKey{tls: u.Scheme == "https", host: u.Host}
	if key.tls && t.speaksH2(key) {
		closeBody(req)
		return nil, errOffersH2
	}
	for fresh := false; ; fresh = true {
		var pc *h1Conn
		if !fresh {
			pc = t.take(key)
			for pc != nil && pc.waiting() {
				t.release(pc, false)
				pc = t.take(key)
			}
		}
		reused := pc != nil
		if !reused {
			var err error
			if pc, err = t.connect(ctx, deadline, key); err != nil {
				closeBody(req)
				return nil, t.cause(ctx, deadline, err)
			}
		}
		resp, err := t.exchange(ctx, deadline, pc, req)
		if err == nil {
			return resp, nil
		}
		pc.broken = true
		t.release(pc, false)
		if !reused || !errors.Is(err, errStale) || req.GetBody == nil {
			return nil, err
		}
		if req.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
}

// errStale marks a failure before any byte of an answer arrived: the
// request may be sent again on a new connection when the one that failed
// came from the pool.
var errStale = errors.New("connection closed before any answer")

// staleError is an error of a pooled connection that the server had
// probably closed.
type staleError struct{ err error }

func (e staleError) Error() string   { return e.err.Error() }
func (e staleError) Unwrap() []error { return []error{e.err, errStale} }

// gone reports whether err says the peer closed or reset the connection.
func gone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// cause returns the error an exchange that failed with err reports: the
// context's error, context.Canceled after Abort, or
// context.DeadlineExceeded once deadline has passed, rather than the
// connection's.
func (t *h1Transport) cause(ctx context.Context, deadline time.Time, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	t.mu.Lock()
	aborted := t.aborted
	t.mu.Unlock()
	if aborted {
		return context.Canceled
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return err
}

// noStop stands for context.AfterFunc's stop where nothing was registered.
func noStop() bool { return true }

// exchange writes req on pc and reads the answer's headers. On error the
// caller releases pc.
func (t *h1Transport) exchange(ctx context.Context, deadline time.Time, pc *h1Conn, req *http.Request) (*http.Response, error) {
	if err := t.begin(pc, deadline); err != nil {
		closeBody(req)
		return nil, err
	}
	// The deadline, the cancellation of ctx and Abort all end blocked
	// reads and writes through the connection's deadline.
	stop := noStop
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { pc.conn.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		stop()
		return nil, t.cause(ctx, deadline, err)
	}
	if err := writeRequest(pc.bw, req); err != nil {
		return fail(staleIf(gone(err), err))
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(staleIf(gone(err), err))
	}
	pc.lim.n = maxResponseHeaderBytes
	if _, err := pc.br.Peek(1); err != nil {
		return fail(staleIf(gone(err), err))
	}
	var resp *http.Response
	for n := 0; ; n++ {
		var err error
		if resp, err = http.ReadResponse(pc.br, req); err != nil {
			return fail(err)
		}
		// A status under 100 is no informational answer: it is the
		// answer, as net/http's Transport has it (a strange one, whose
		// connection is not reused).
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 100 Continue or 103 Early Hints: the answer follows.
		if n == max1xx {
			return fail(errTooMany1xx)
		}
		pc.lim.n = maxResponseHeaderBytes
	}
	pc.lim.n = math.MaxInt64
	b := &h1Body{t: t, pc: pc, ctx: ctx, deadline: deadline, rc: resp.Body, stop: stop,
		// After a 101 the connection speaks another protocol.
		keep: resp.StatusCode >= 200 && !resp.Close && !req.Close}
	b.eof = resp.Body == http.NoBody
	resp.Body = b
	return resp, nil
}

func staleIf(stale bool, err error) error {
	if stale {
		return staleError{err}
	}
	return err
}

// closeBody closes req's body, as a RoundTripper must even when it fails.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// h1Body is an answer's body. Closing it returns the connection to the pool
// when the body was read to its end, else closes the connection: what is
// left unread may be endless.
type h1Body struct {
	t        *h1Transport
	pc       *h1Conn
	ctx      context.Context
	deadline time.Time
	rc       io.ReadCloser
	stop     func() bool
	keep     bool // the connection may be reused once the body is read
	eof      bool
	closed   bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read on a closed response body")
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		err = b.t.cause(b.ctx, b.deadline, err)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// stop reports false when the context ended and the connection's
	// deadline has passed (or is being set): it cannot be reused.
	b.t.release(b.pc, b.stop() && b.eof && b.keep)
	return nil
}

// begin marks pc busy, where Abort reaches it, with deadline as its
// deadline (none when zero). It fails once Abort was called.
func (t *h1Transport) begin(pc *h1Conn, deadline time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted {
		return context.Canceled
	}
	t.busy[pc] = struct{}{}
	// Under t.mu: Abort's deadline cannot come before it and be lost.
	pc.conn.SetDeadline(deadline)
	pc.deadline = deadline
	return nil
}

// take returns an idle connection to key, or nil.
func (t *h1Transport) take(key connKey) *h1Conn {
	now := time.Now()
	var stale []*h1Conn
	defer closeAll(&stale)
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.idle[key]
	for len(s) > 0 {
		pc := s[len(s)-1]
		s[len(s)-1] = nil
		s = s[:len(s)-1]
		t.nidle--
		// Bytes waiting on an idle connection are no answer of ours: a
		// server closing it (a TLS close_notify) or a broken one. Those
		// still in the socket are for the caller to see (waiting), out
		// of the lock.
		if now.Sub(pc.idleAt) < t.idleTimeout && pc.br.Buffered() == 0 {
			t.setIdle(key, s)
			return pc
		}
		stale = append(stale, pc)
	}
	t.setIdle(key, s)
	return nil
}

// setIdle stores the idle connections of key; t.mu must be held.
func (t *h1Transport) setIdle(key connKey, s []*h1Conn) {
	if len(s) == 0 {
		delete(t.idle, key)
		return
	}
	t.idle[key] = s
}

// release ends pc's exchange: pc goes back to the pool when reuse is set
// and the pool has room, else it is closed.
func (t *h1Transport) release(pc *h1Conn, reuse bool) {
	now := time.Now()
	pc.idleAt = now
	var stale []*h1Conn
	defer closeAll(&stale)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.busy, pc)
	if !reuse || t.aborted {
		stale = append(stale, pc)
		return
	}
	if t.nidle >= t.maxIdle {
		stale = append(stale, t.expiredLocked(now)...)
	} else {
		stale = append(stale, t.expiredOfLocked(pc.key, now)...)
	}
	s := t.idle[pc.key]
	if len(s) >= t.maxIdlePerHost || t.nidle >= t.maxIdle {
		stale = append(stale, pc)
		return
	}
	t.idle[pc.key] = append(s, pc)
	t.nidle++
}

// expiredLocked takes the connections of every destination unused for
// idleTimeout out of the pool; t.mu must be held.
func (t *h1Transport) expiredLocked(now time.Time) []*h1Conn {
	var out []*h1Conn
	for key := range t.idle {
		out = append(out, t.expiredOfLocked(key, now)...)
	}
	return out
}

// expiredOfLocked takes key's connections unused for idleTimeout out of the
// pool (the oldest come first); t.mu must be held.
func (t *h1Transport) expiredOfLocked(key connKey, now time.Time) []*h1Conn {
	s := t.idle[key]
	i := 0
	for i < len(s) && now.Sub(s[i].idleAt) >= t.idleTimeout {
		i++
	}
	if i == 0 {
		return nil
	}
	out := slices.Clone(s[:i])
	t.nidle -= i
	t.setIdle(key, slices.Delete(s, 0, i))
	return out
}

// CloseIdleConnections closes every idle connection. The dispatcher calls
// it when it stops.
func (t *h1Transport) CloseIdleConnections() {
	var all []*h1Conn
	defer closeAll(&all)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.idle {
		all = append(all, s...)
	}
	clear(t.idle)
	t.nidle = 0
}

// closeAll closes the connections of *s: deferred before the pool's lock
// is taken, it runs once the lock is released (a TLS close writes).
func closeAll(s *[]*h1Conn) {
	for _, pc := range *s {
		pc.close()
	}
}

// speaksH2 reports whether key's server chose HTTP/2 on a connection.
func (t *h1Transport) speaksH2(key connKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.h2[key]
	return ok
}

// markH2 remembers that key's server chose HTTP/2.
func (t *h1Transport) markH2(key connKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.h2) >= maxH2 {
		clear(t.h2)
	}
	t.h2[key] = struct{}{}
}

// connKey names the destination of a connection: a URL's scheme and host.
// It is made without allocating, which its dial address is not.
type connKey struct {
	tls  bool
	host string // the URL's host, with its port if it names one
}

// connect dials key's destination and, over TLS, makes the handshake, until
// ctx ends or deadline (when not zero) passes, or Abort is called.
func (t *h1Transport) connect(ctx context.Context, deadline time.Time, key connKey) (*h1Conn, error) {
	host, port := key.host, "80"
	if key.tls {
		port = "443"
	}
	if h, p, err := net.SplitHostPort(key.host); err == nil {
		host = h
		if p != "" {
			port = p
		}
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	addr := net.JoinHostPort(host, port)
	switch {
	case ctx.Done() != nil:
	case deadline.IsZero():
		ctx = t.stopped
	default:
		// roundTripUntil: new connections are rare enough to afford a
		// context.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(t.stopped, deadline)
		defer cancel()
	}
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	raw := conn // the socket, which TLS wraps
	if key.tls {
		var cfg *tls.Config
		if t.tls != nil {
			cfg = t.tls.Clone()
		} else {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"h2", "http/1.1"}
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, t.handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		expired := ctx.Err() == nil && hctx.Err() != nil
		cancel()
		if err != nil {
			conn.Close()
			if expired {
				return nil, timeoutError{"TLS handshake timeout"}
			}
			return nil, err
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			tc.Close()
			t.markH2(key)
			return nil, errOffersH2
		}
		conn = tc
	}
	pc := &h1Conn{key: key, conn: conn, lim: limitReader{r: conn, n: math.MaxInt64}}
	if sc, ok := raw.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			pc.raw = rc
			pc.peek = newIdlePeek(&pc.peekSaw)
		}
	}
	pc.br = bufio.NewReaderSize(&pc.lim, 4<<10)
	pc.bw = bufio.NewWriterSize(conn, 4<<10)
	return pc, nil
}
