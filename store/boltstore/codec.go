package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/http"
	"slices"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/internal/hdrcode"
)

// Records are stored in a compact binary format: a version byte, then the
// fields in a fixed order, each as a uvarint length + bytes (strings and byte
// slices), a varint (integers) or 8 fixed bytes (floats). A time is a varint
// of Unix seconds and a uvarint of nanoseconds; the zero time has its own
// one-byte form so it round-trips as the zero time. Decoding checks every
// length against what is left and reports a corrupt record as an error, never
// a panic; every string and slice it returns is a copy, never memory owned by
// bbolt (only the peek functions and readDeliveryRecord, which serve writes
// and filters inside a transaction, return slices of the record).

// Record format versions, the first byte of every record.
const (
	webhookV1  = 1
	deliveryV1 = 1
	attemptV1  = 1
	attemptV2  = 2 // headers with the common names and values coded
	attemptV3  = 3 // and the delivery's values (attemptRefs), without the delivery id
)

// errCorrupt reports a stored record the decoder cannot read.
var errCorrupt = errors.New("boltstore: corrupt record")

// newerFormat reports a record whose format version v is above the newest
// this build reads, newest: a later release of the library wrote it (the
// file was opened by an older build after an upgrade). The record is
// intact, so this is not errCorrupt: no reader decodes it and no writer
// changes it.
func newerFormat(v, newest byte) error {
	return fmt.Errorf("boltstore: record of format version %d, written by a newer release of the library (this build reads up to %d): upgrade to open this file", v, newest)
}

// enc appends fields to a buffer.
type enc struct{ b []byte }

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) float(f float64)  { e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(f)) }
func (e *enc) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.byte(0)
		return
	}
	e.byte(1)
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

func (e *enc) header(h http.Header) {
	e.uvarint(uint64(len(h)))
	var buf [16]string
	for _, k := range sortedKeys(h, buf[:0]) {
		e.str(k)
		vs := h[k]
		e.uvarint(uint64(len(vs)))
		for _, v := range vs {
			e.str(v)
		}
	}
}

// sortedKeys appends m's keys to buf and sorts them. A caller that passes
// a small array on its stack sorts a small map without allocating.
func sortedKeys[V any](m map[string]V, buf []string) []string {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// Encoders size their buffer exactly before writing, so a record is one
// allocation of its own length. These are the lengths of what enc writes.

// uvarintLen is the length of enc.uvarint(v).
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// varintLen is the length of enc.varint(v).
func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

// strLen is the length of enc.str or enc.bytes of n bytes.
func strLen(n int) int { return uvarintLen(uint64(n)) + n }

// timeLen is the length of enc.time(t).
func timeLen(t time.Time) int {
	if t.IsZero() {
		return 1
	}
	return 1 + varintLen(t.Unix()) + uvarintLen(uint64(t.Nanosecond()))
}

// dec reads fields from a buffer; after the first error every read returns
// a zero value and err stays set.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a varint that must fit an int.
func (d *dec) int() int {
	v := d.varint()
	if v > math.MaxInt || v < math.MinInt {
		d.fail()
		return 0
	}
	return int(v)
}

// raw returns the next length-prefixed field without copying it.
func (d *dec) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.raw()) }

// strs reads len(dst) (at most 8) consecutive length-prefixed strings into
// dst with one allocation, which they share.
func (d *dec) strs(dst ...*string) {
	var spans [8][2]int // offsets in from
	from := d.b
	for i := range dst {
		r := d.raw()
		end := len(from) - len(d.b)
		spans[i] = [2]int{end - len(r), end}
	}
	if d.err != nil {
		return
	}
	all := string(from[:len(from)-len(d.b)])
	for i, p := range dst {
		*p = all[spans[i][0]:spans[i][1]]
	}
}

// bytes returns a copy of the next length-prefixed field; nil when empty.
func (d *dec) bytes() []byte {
	r := d.raw()
	if len(r) == 0 {
		return nil
	}
	return slices.Clone(r)
}

func (d *dec) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) bool() bool { return d.byte() == 1 }

func (d *dec) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail()
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	default:
		d.fail()
		return time.Time{}
	}
}

// count reads a collection length; each element takes at least size bytes, so
// a length larger than what is left is corrupt.
func (d *dec) count(size int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/size) {
		d.fail()
		return 0
	}
	return int(n)
}

// maxPrealloc bounds the room a decoder makes ahead for a collection. A
// count is only a claim until its elements have been read: a corrupt record
// of n bytes (or a fuzzer's input) could claim n/2 map entries, and making
// room for them all would allocate some 50 times n before the first element
// fails to decode. Beyond this many elements, room grows as they are read.
const maxPrealloc = 1024

// hint is n capped at maxPrealloc, for a make of n elements.
func hint(n int) int { return min(n, maxPrealloc) }

func (d *dec) header() http.Header {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	h := make(http.Header, hint(n))
	for range n {
		k := d.str()
		m := d.count(1)
		vs := make([]string, 0, hint(m))
		for range m {
			if vs = append(vs, d.str()); d.err != nil {
				return nil
			}
		}
		if d.err != nil {
			return nil
		}
		h[k] = vs
	}
	return h
}

func (d *dec) version(want byte) {
	switch v := d.byte(); {
	case d.err != nil:
	case v > want:
		d.err, d.b = newerFormat(v, want), nil
	case v != want:
		d.err = fmt.Errorf("%w: format version %d, want %d", errCorrupt, v, want)
	}
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

func encodeWebhook(w *store.Webhook) []byte {
	e := enc{b: make([]byte, 0, 256)}
	e.byte(webhookV1)
	e.str(w.ID)
	e.str(w.Tenant)
	e.str(w.URL)
	e.uvarint(uint64(len(w.Events)))
	for _, ev := range w.Events {
		e.str(ev)
	}
	e.str(w.Description)
	e.bool(w.Active)
	e.str(w.DisabledReason)
	e.uvarint(uint64(len(w.Secrets)))
	for _, s := range w.Secrets {
		e.str(s.Value)
		e.time(s.ExpiresAt)
	}
	e.uvarint(uint64(len(w.Headers)))
	var buf [16]string
	for _, k := range sortedKeys(w.Headers, buf[:0]) {
		e.str(k)
		e.str(w.Headers[k])
	}
	e.varint(int64(w.MaxAttempts))
	e.float(w.RateLimit)
	e.time(w.CreatedAt)
	e.time(w.UpdatedAt)
	return e.b
}

// peekWebhookTenant reads a webhook record's tenant; it aliases b and is
// valid only while b is.
func peekWebhookTenant(b []byte) ([]byte, error) {
	d := dec{b: b}
	d.version(webhookV1)
	d.raw() // ID
	t := d.raw()
	return t, d.err
}

func decodeWebhook(b []byte) (*store.Webhook, error) {
	d := dec{b: b}
	d.version(webhookV1)
	w := &store.Webhook{ID: d.str(), Tenant: d.str(), URL: d.str()}
	if n := d.count(1); n > 0 {
		w.Events = make([]string, 0, hint(n))
		for range n {
			if w.Events = append(w.Events, d.str()); d.err != nil {
				break
			}
		}
	}
	w.Description = d.str()
	w.Active = d.bool()
	w.DisabledReason = d.str()
	if n := d.count(2); n > 0 {
		w.Secrets = make([]store.Secret, 0, hint(n))
		for range n {
			if w.Secrets = append(w.Secrets, store.Secret{Value: d.str(), ExpiresAt: d.time()}); d.err != nil {
				break
			}
		}
	}
	if n := d.count(2); n > 0 {
		w.Headers = make(map[string]string, hint(n))
		for range n {
			k := d.str()
			if w.Headers[k] = d.str(); d.err != nil {
				break
			}
		}
	}
	w.MaxAttempts = d.int()
	w.RateLimit = d.float()
	w.CreatedAt = d.time()
	w.UpdatedAt = d.time()
	if err := d.done(); err != nil {
		return nil, err
	}
	return w, nil
}

// Status codes in a delivery record.
const (
	codePending byte = 1
	codeSuccess byte = 2
	codeFailed  byte = 3
)

func statusCode(s store.Status) byte {
	switch s {
	case store.StatusSuccess:
		return codeSuccess
	case store.StatusFailed:
		return codeFailed
	default:
		return codePending
	}
}

func statusOf(c byte) (store.Status, bool) {
	switch c {
	case codePending:
		return store.StatusPending, true
	case codeSuccess:
		return store.StatusSuccess, true
	case codeFailed:
		return store.StatusFailed, true
	}
	return "", false
}

// encodeDelivery writes the fields a listing filters on (status, event type)
// first, so peekDelivery can filter without decoding the body.
func encodeDelivery(x *store.Delivery) []byte {
	return appendDelivery(make([]byte, 0, deliveryLen(x)), x)
}

// deliveryLen is the length of x's record.
func deliveryLen(x *store.Delivery) int {
	return 2 + strLen(len(x.EventType)) + strLen(len(x.ID)) + strLen(len(x.WebhookID)) +
		strLen(len(x.EventID)) + strLen(len(x.Tenant)) +
		varintLen(int64(x.Attempts)) + varintLen(int64(x.RoundAttempts)) + timeLen(x.NextAttemptAt) +
		strLen(len(x.LeaseOwner)) + timeLen(x.LeaseExpiresAt) +
		varintLen(int64(x.LastStatusCode)) + strLen(len(x.LastError)) +
		timeLen(x.CreatedAt) + timeLen(x.UpdatedAt) + strLen(len(x.Body))
}

// appendDelivery appends x's record to b.
func appendDelivery(b []byte, x *store.Delivery) []byte {
	e := enc{b: b}
	e.byte(deliveryV1)
	e.byte(statusCode(x.Status))
	e.str(x.EventType)
	e.str(x.ID)
	e.str(x.WebhookID)
	e.str(x.EventID)
	e.str(x.Tenant)
	e.varint(int64(x.Attempts))
	e.varint(int64(x.RoundAttempts))
	e.time(x.NextAttemptAt)
	e.str(x.LeaseOwner)
	e.time(x.LeaseExpiresAt)
	e.varint(int64(x.LastStatusCode))
	e.str(x.LastError)
	e.time(x.CreatedAt)
	e.time(x.UpdatedAt)
	e.bytes(x.Body)
	return e.b
}

// deliveryRecord is a delivery record read in place, for a write that
// changes a few fields of a stored delivery without decoding and
// re-encoding all of it: the fields that change after Enqueue are decoded,
// and the ones that never do (the event type, ids and tenant, CreatedAt and
// the body) stay the bytes the record holds, copied as they are into the
// new record. appendTo writes exactly what encodeDelivery writes for the
// delivery with the changed fields. Every byte slice aliases the record
// and is valid only while the record is (in bbolt, during the transaction).
type deliveryRecord struct {
	Status         store.Status
	EventType      []byte
	ID, WebhookID  []byte
	EventID        []byte
	Attempts       int
	RoundAttempts  int
	NextAttemptAt  time.Time
	LeaseOwner     []byte
	LeaseExpiresAt time.Time
	LastStatusCode int
	LastError      []byte
	UpdatedAt      time.Time

	names   []byte // EventType, ID, WebhookID, EventID and Tenant as encoded
	created []byte // CreatedAt as encoded
	body    []byte // Body as encoded, with its length
}

// readDeliveryRecord reads a delivery record in place, with the same checks
// as decodeDelivery.
func readDeliveryRecord(b []byte) (deliveryRecord, error) {
	var r deliveryRecord
	d := dec{b: b}
	d.version(deliveryV1)
	st, ok := statusOf(d.byte())
	if !ok {
		d.fail()
	}
	r.Status = st
	rest := d.b
	r.EventType = d.raw()
	r.ID = d.raw()
	r.WebhookID = d.raw()
	r.EventID = d.raw()
	d.raw() // Tenant
	r.names = rest[:len(rest)-len(d.b)]
	r.Attempts = d.int()
	r.RoundAttempts = d.int()
	r.NextAttemptAt = d.time()
	r.LeaseOwner = d.raw()
	r.LeaseExpiresAt = d.time()
	r.LastStatusCode = d.int()
	r.LastError = d.raw()
	rest = d.b
	d.time() // CreatedAt
	r.created = rest[:len(rest)-len(d.b)]
	r.UpdatedAt = d.time()
	rest = d.b
	d.raw() // Body
	r.body = rest[:len(rest)-len(d.b)]
	if err := d.done(); err != nil {
		return deliveryRecord{}, err
	}
	return r, nil
}

// len is the length of r's record.
func (r *deliveryRecord) len() int {
	return 2 + len(r.names) + varintLen(int64(r.Attempts)) + varintLen(int64(r.RoundAttempts)) +
		timeLen(r.NextAttemptAt) + strLen(len(r.LeaseOwner)) + timeLen(r.LeaseExpiresAt) +
		varintLen(int64(r.LastStatusCode)) + strLen(len(r.LastError)) +
		len(r.created) + timeLen(r.UpdatedAt) + len(r.body)
}

// appendTo appends r's record to b, in the order of appendDelivery.
func (r *deliveryRecord) appendTo(b []byte) []byte {
	e := enc{b: b}
	e.byte(deliveryV1)
	e.byte(statusCode(r.Status))
	e.b = append(e.b, r.names...)
	e.varint(int64(r.Attempts))
	e.varint(int64(r.RoundAttempts))
	e.time(r.NextAttemptAt)
	e.bytes(r.LeaseOwner)
	e.time(r.LeaseExpiresAt)
	e.varint(int64(r.LastStatusCode))
	e.bytes(r.LastError)
	e.b = append(e.b, r.created...)
	e.time(r.UpdatedAt)
	e.b = append(e.b, r.body...)
	return e.b
}

// peekDelivery reads a delivery record's status and event type; the event
// type aliases b and is valid only while b is.
func peekDelivery(b []byte) (store.Status, []byte, error) {
	d := dec{b: b}
	d.version(deliveryV1)
	st, ok := statusOf(d.byte())
	et := d.raw()
	if d.err == nil && !ok {
		d.fail()
	}
	return st, et, d.err
}

func decodeDelivery(b []byte) (*store.Delivery, error) {
	return decodeDeliveryBody(b, true)
}

// decodeDeliveryBody is decodeDelivery that copies the body only when
// body is true (it is last in the record, so it is merely passed over).
func decodeDeliveryBody(b []byte, body bool) (*store.Delivery, error) {
	d := dec{b: b}
	d.version(deliveryV1)
	st, ok := statusOf(d.byte())
	if !ok {
		d.fail()
	}
	x := &store.Delivery{Status: st}
	d.strs(&x.EventType, &x.ID, &x.WebhookID, &x.EventID, &x.Tenant)
	x.Attempts = d.int()
	x.RoundAttempts = d.int()
	x.NextAttemptAt = d.time()
	x.LeaseOwner = d.str()
	x.LeaseExpiresAt = d.time()
	x.LastStatusCode = d.int()
	x.LastError = d.str()
	x.CreatedAt = d.time()
	x.UpdatedAt = d.time()
	if body {
		x.Body = d.bytes()
	} else {
		d.raw()
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return x, nil
}

// Attempt headers (formats 2 and 3) are coded by package hdrcode, whose
// tables this file's records depend on. Format 2 codes them with one ref,
// the delivery id (X-Webhook-Delivery); format 3 with all of attemptRefs.

// attemptRefs are the values of its delivery that an attempt's request
// headers repeat (hdrcode.Refs, in its order): the delivery id, the event
// id, the event type and the webhook id. A record of format 3 codes a
// header value equal to one of them in a byte and leaves the delivery id to
// the record's key, so reading it takes the delivery's record too. An empty
// ref codes nothing.
type attemptRefs hdrcode.Refs

// guessAttemptRefs returns the refs an attempt's request headers carry when
// the dispatcher sent it, so that Complete can encode the attempt before its
// transaction reads the delivery; refs.matches tells whether the guess holds.
func guessAttemptRefs(deliveryID string, h http.Header) attemptRefs {
	return attemptRefs(hdrcode.Guess(deliveryID, h))
}

// refs returns copies of the refs of r's delivery.
func (r *deliveryRecord) refs() attemptRefs {
	return attemptRefs{string(r.ID), string(r.EventID), string(r.EventType), string(r.WebhookID)}
}

// matches reports whether every ref that refs codes is r's (hdrcode.Match):
// then an attempt encoded with refs reads back as written with r's refs.
func (refs attemptRefs) matches(r *deliveryRecord) bool {
	return hdrcode.Match(hdrcode.Refs(refs), r.ID, r.EventID, r.EventType, r.WebhookID)
}

// codedHeader appends h coded with refs (hdrcode.Append).
func (e *enc) codedHeader(h http.Header, refs []string) { e.b = hdrcode.Append(e.b, h, refs) }

// codedHeader reads a header written by enc.codedHeader with refs.
func (d *dec) codedHeader(refs []string) http.Header {
	if d.err != nil {
		return nil
	}
	h, rest, ok := hdrcode.Read(d.b, refs)
	if !ok {
		d.fail()
		return nil
	}
	d.b = rest
	return h
}

// attemptLen is the length of a's record coded with refs.
func attemptLen(a *store.Attempt, refs *attemptRefs) int {
	return 1 + varintLen(int64(a.Number)) + timeLen(a.StartedAt) +
		varintLen(int64(a.Duration)) + strLen(len(a.RequestURL)) +
		hdrcode.Len(a.RequestHeaders, refs[:]) + varintLen(int64(a.ResponseStatus)) +
		hdrcode.Len(a.ResponseHeaders, refs[:]) + strLen(len(a.ResponseBody)) +
		strLen(len(a.ErrorClass)) + strLen(len(a.Error))
}

// encodeAttempt returns a's record of format 3, its headers coded with refs,
// whose first is the id of a's delivery. The record leaves out a.DeliveryID:
// decodeAttempt takes it from refs.
func encodeAttempt(a *store.Attempt, refs attemptRefs) []byte {
	return appendAttempt(make([]byte, 0, attemptLen(a, &refs)), a, refs)
}

// appendAttempt appends encodeAttempt(a, refs) to b.
func appendAttempt(b []byte, a *store.Attempt, refs attemptRefs) []byte {
	e := enc{b: slices.Grow(b, attemptLen(a, &refs))}
	e.byte(attemptV3)
	e.varint(int64(a.Number))
	e.time(a.StartedAt)
	e.varint(int64(a.Duration))
	e.str(a.RequestURL)
	e.codedHeader(a.RequestHeaders, refs[:])
	e.varint(int64(a.ResponseStatus))
	e.codedHeader(a.ResponseHeaders, refs[:])
	e.bytes(a.ResponseBody)
	e.str(string(a.ErrorClass))
	e.str(a.Error)
	return e.b
}

// decodeAttempt reads an attempt of format 1, 2 or 3; refs are those of its
// delivery (formats 1 and 2 hold the delivery id themselves and need none).
func decodeAttempt(b []byte, refs attemptRefs) (*store.Attempt, error) {
	d := dec{b: b}
	v := d.byte()
	switch {
	case d.err != nil:
		return nil, d.err
	case v > attemptV3:
		return nil, newerFormat(v, attemptV3)
	case v < attemptV1:
		return nil, fmt.Errorf("%w: format version %d, want %d to %d", errCorrupt, v, attemptV1, attemptV3)
	}
	a := &store.Attempt{}
	var hrefs []string
	if v == attemptV3 {
		a.DeliveryID, hrefs = refs[0], refs[:]
	} else {
		a.DeliveryID = d.str()
		hrefs = []string{a.DeliveryID}
	}
	a.Number = d.int()
	a.StartedAt = d.time()
	a.Duration = time.Duration(d.varint())
	a.RequestURL = d.str()
	if v == attemptV1 {
		a.RequestHeaders = d.header()
	} else {
		a.RequestHeaders = d.codedHeader(hrefs)
	}
	a.ResponseStatus = d.int()
	if v == attemptV1 {
		a.ResponseHeaders = d.header()
	} else {
		a.ResponseHeaders = d.codedHeader(hrefs)
	}
	a.ResponseBody = d.bytes()
	a.ErrorClass = store.ErrorClass(d.str())
	a.Error = d.str()
	if err := d.done(); err != nil {
		return nil, err
	}
	return a, nil
}
