package main

import (
	"bytes"
	"io"
	"math/bits"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// hungPath is the receiver path that never answers.
const hungPath = "/hung"

// receiver is the loopback endpoint of every scenario: an HTTP server on
// 127.0.0.1 that reads each request's body, answers 200 at once, counts the
// receipt and, while measuring, records the latency from the emit time
// carried in the body.
type receiver struct {
	srv   *httptest.Server
	clock *clock

	measuring atomic.Bool
	received  atomic.Int64 // every healthy receipt
	measured  atomic.Int64 // healthy receipts while measuring
	hungHits  atomic.Int64 // requests to hungPath
	badBodies atomic.Int64 // bodies without a readable emit time
	// floor, when set, is the earliest emit time latencies are measured
	// from (the backlog's bodies were written before the drain started).
	floor atomic.Int64
	// target closes reached once received reaches it (0: never).
	target  atomic.Int64
	reached chan struct{}
	once    sync.Once

	hist histogram
	// window, when not nil, holds one token per delivery in flight; every
	// healthy receipt frees one.
	window    chan struct{}
	acquiring sync.Mutex
	// closing releases the hung handlers.
	closing chan struct{}
	bufs    sync.Pool
}

// clock turns times into nanoseconds since a base, which the bodies carry as
// their emit time (monotonic, and small enough for any JSON number reader).
type clock struct{ base time.Time }

func (c *clock) now() int64 { return int64(time.Since(c.base)) }

func newReceiver(c *clock, window int) *receiver {
	rc := &receiver{clock: c, reached: make(chan struct{}), closing: make(chan struct{})}
	rc.bufs.New = func() any { return new(bytes.Buffer) }
	if window > 0 {
		rc.window = make(chan struct{}, window)
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serveHTTP))
	return rc
}

// url returns the absolute URL of path on the receiver.
func (rc *receiver) url(path string) string { return rc.srv.URL + path }

// close releases the hung requests and shuts the server down.
func (rc *receiver) close() {
	close(rc.closing)
	rc.srv.CloseClientConnections()
	rc.srv.Close()
}

func (rc *receiver) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == hungPath {
		rc.hungHits.Add(1)
		select {
		case <-r.Context().Done():
		case <-rc.closing:
		}
		return
	}
	buf := rc.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := io.Copy(buf, r.Body)
	at := rc.clock.now()
	if err != nil {
		rc.bufs.Put(buf)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	emitted, ok := emitTime(buf.Bytes())
	rc.bufs.Put(buf)
	if !ok {
		rc.badBodies.Add(1)
	}
	w.WriteHeader(http.StatusOK)

	n := rc.received.Add(1)
	if rc.measuring.Load() {
		rc.measured.Add(1)
		if ok {
			rc.hist.record(at - max(emitted, rc.floor.Load()))
		}
	}
	if rc.window != nil {
		select {
		case <-rc.window:
		default:
		}
	}
	if t := rc.target.Load(); t > 0 && n >= t {
		rc.once.Do(func() { close(rc.reached) })
	}
}

// acquire takes n window tokens, blocking while the window is full; false
// when done closed first. One caller at a time takes its tokens, so callers
// each holding part of what they need cannot fill the window between them.
// An n above the window's size takes the whole window (one event of fanout
// is then emitted at a time): waiting for more would wait for ever.
func (rc *receiver) acquire(n int, done <-chan struct{}) bool {
	if rc.window == nil {
		return true
	}
	rc.acquiring.Lock()
	defer rc.acquiring.Unlock()
	for range min(n, cap(rc.window)) {
		select {
		case rc.window <- struct{}{}:
		case <-done:
			return false
		}
	}
	return true
}

// emitField precedes the emit time in every body the bench sends.
const emitField = `"emittedAt":"`

// emitTime reads the emit time (nanoseconds since the clock's base) from a
// body.
func emitTime(body []byte) (int64, bool) {
	i := bytes.Index(body, []byte(emitField))
	if i < 0 {
		return 0, false
	}
	var v int64
	digits := 0
	for _, c := range body[i+len(emitField):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
		digits++
	}
	return v, digits > 0 && digits < 19
}

// eventData appends the data of one event to dst: about size bytes of JSON
// that carry the emit time at, in the shape of the guide's workflow.completed.
// The size is the data's own, whatever dst already holds (raw appends the
// data to its envelope).
func eventData(dst []byte, at int64, seq int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"workflowId":"wf_bench","executionId":"exec_`...)
	dst = appendInt(dst, seq)
	dst = append(dst, `","status":"completed","duration":1234,`...)
	dst = append(dst, emitField...)
	dst = appendInt(dst, at)
	dst = append(dst, `","output":"`...)
	if pad := size - (len(dst) - start) - 2; pad > 0 {
		dst = append(dst, strings.Repeat("x", pad)...)
	}
	dst = append(dst, `"}`...)
	return dst
}

func appendInt(dst []byte, v int64) []byte {
	var b [20]byte
	i := len(b)
	if v == 0 {
		i--
		b[i] = '0'
	}
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[i:]...)
}

// histogram is a log-linear latency histogram in nanoseconds: values below
// 2^subBits are exact, larger ones fall in buckets 1/2^subBits wide relative
// to their magnitude (about 3%). It is safe for concurrent use.
type histogram struct {
	counts [64 << subBits]atomic.Uint64
}

const subBits = 5

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// bucketMid returns the middle of bucket i.
func bucketMid(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	shift := i>>subBits - 1
	mant := int64(i&(1<<subBits-1) + 1<<subBits)
	return mant<<shift + (int64(1)<<shift)/2
}

func (h *histogram) record(ns int64) { h.counts[bucketOf(ns)].Add(1) }

// quantile returns the q-quantile (0 < q <= 1), 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(bucketMid(i))
		}
	}
	return 0
}
