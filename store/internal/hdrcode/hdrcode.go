// Package hdrcode codes the HTTP headers of a delivery attempt compactly.
// The header names and values that every attempt repeats take a byte each,
// and so do the values of its delivery that the request headers carry (its
// ids and event type, the refs). boltstore keeps attempts coded this way in
// its file, so the tables and the order of the refs are part of its format:
// they may only grow at the end. memstore keeps them so in memory.
//
// A coded header is the number of names, then for each name (in sorted
// order, or any with AppendAnyOrder) its code and the number of its
// values, then each value's code. A name's code is 0 followed by the name
// as a uvarint length and bytes, or i >= 1 for Names[i-1]. A value's code
// is 0 followed by the value, i in 1..len(refs) for refs[i-1], or
// i > len(refs) for Values[i-1-len(refs)]. An empty ref codes nothing.
package hdrcode

import (
	"encoding/binary"
	"math/bits"
	"net/http"
	"slices"
)

// The tables of common header names and values.
var (
	Names = []string{
		"Content-Type", "User-Agent", "X-Webhook-Id", "X-Webhook-Event",
		"X-Webhook-Delivery", "X-Webhook-Attempt", "X-Webhook-Signature",
		"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature",
		"Date", "Content-Length", "Server", "Connection", "Cache-Control",
		"Retry-After", "Content-Encoding", "Vary",
	}
	Values = []string{"application/json", "application/json; charset=utf-8",
		"text/plain; charset=utf-8", "0", "1", "2", "3", "close", "keep-alive",
		"noa-webhook/1"}

	nameCode  = newTable(Names)
	valueCode = newTable(Values)
)

// table finds a string's code (1 + its index) among the few of its length,
// faster than a map, which hashes the whole string first.
type table [][]tableEntry // by length

type tableEntry struct {
	s    string
	code uint64
}

func newTable(ss []string) table {
	var t table
	for i, s := range ss {
		for len(t) <= len(s) {
			t = append(t, nil)
		}
		t[len(s)] = append(t[len(s)], tableEntry{s, uint64(1 + i)})
	}
	return t
}

// code returns s's code, 0 when s is not in the table.
func (t table) code(s string) uint64 {
	if len(s) >= len(t) {
		return 0
	}
	for _, e := range t[len(s)] {
		if e.s == s {
			return e.code
		}
	}
	return 0
}

// Refs are the values of its delivery that an attempt's request headers
// repeat, in the order they are coded: the delivery id (X-Webhook-Delivery),
// the event id (Webhook-Id), the event type (X-Webhook-Event) and the
// webhook id (X-Webhook-Id).
type Refs [4]string

// Guess returns the refs that an attempt of delivery deliveryID carries in
// its request headers h when the dispatcher sent it: a store can code the
// attempt before it reads the delivery, then check the guess against it
// (Match).
func Guess(deliveryID string, h http.Header) Refs {
	first := func(name string) string {
		if vs := h[name]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	return Refs{deliveryID, first("Webhook-Id"), first("X-Webhook-Event"), first("X-Webhook-Id")}
}

// Match reports whether every ref that refs codes (every one not empty) is
// the delivery's: then a header coded with refs reads back as written with
// the delivery's refs. The delivery's values may be strings or the bytes
// of a record read in place, compared without a copy.
func Match[S ~string | ~[]byte](refs Refs, deliveryID, eventID, eventType, webhookID S) bool {
	return (refs[0] == "" || refs[0] == string(deliveryID)) &&
		(refs[1] == "" || refs[1] == string(eventID)) &&
		(refs[2] == "" || refs[2] == string(eventType)) &&
		(refs[3] == "" || refs[3] == string(webhookID))
}

// code returns v's code with refs, 0 when v is written out.
func code(v string, refs []string) uint64 {
	if c := valueCode.code(v); c != 0 {
		return c + uint64(len(refs))
	}
	for i, r := range refs {
		if v == r && r != "" {
			return uint64(i + 1)
		}
	}
	return 0
}

// Len is the length of Append(nil, h, refs).
func Len(h http.Header, refs []string) int {
	n := uvarintLen(uint64(len(h)))
	for k, vs := range h {
		if c := nameCode.code(k); c != 0 {
			n += uvarintLen(c)
		} else {
			n += 1 + strLen(len(k))
		}
		n += uvarintLen(uint64(len(vs)))
		for _, v := range vs {
			if c := code(v, refs); c != 0 {
				n += uvarintLen(c)
			} else {
				n += 1 + strLen(len(v))
			}
		}
	}
	return n
}

// Append appends h coded with refs to b, its names in sorted order: the
// same header always codes to the same bytes.
func Append(b []byte, h http.Header, refs []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	var buf [16]string // a small header's names sort without allocating
	keys := buf[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendName(b, k, h[k], refs)
	}
	return b
}

// AppendAnyOrder is Append with the names in the order a range over h
// gives them: faster, where the bytes are only read back.
func AppendAnyOrder(b []byte, h http.Header, refs []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	for k, vs := range h {
		b = appendName(b, k, vs, refs)
	}
	return b
}

// appendName appends a name of a header and its values, coded with refs.
func appendName(b []byte, k string, vs []string, refs []string) []byte {
	if c := nameCode.code(k); c != 0 {
		b = binary.AppendUvarint(b, c)
	} else {
		b = appendStr(append(b, 0), k)
	}
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		c := code(v, refs)
		b = binary.AppendUvarint(b, c)
		if c == 0 {
			b = appendStr(b, v)
		}
	}
	return b
}

// maxPrealloc bounds the room Read makes ahead for names and values: a
// count is only a claim until its elements have been read, and a damaged
// header of n bytes could claim n/2 names.
const maxPrealloc = 1024

// Read reads a header that Append wrote with refs from the start of b and
// returns it with the rest of b. A header without names reads as nil, a
// name without values with an empty list. ok is false when b does not
// start with such a header (it is damaged, or coded with more refs).
func Read(b []byte, refs []string) (h http.Header, rest []byte, ok bool) {
	r := reader{b: b}
	n := r.count(2)
	if n > 0 {
		h = make(http.Header, min(n, maxPrealloc))
	}
	for range n {
		var k string
		switch c := r.uvarint(); {
		case c == 0:
			k = r.str()
		case c <= uint64(len(Names)):
			k = Names[c-1]
		default:
			r.bad = true
		}
		m := r.count(1)
		vs := make([]string, 0, min(m, maxPrealloc))
		for range m {
			switch c := r.uvarint(); {
			case r.bad:
			case c == 0:
				vs = append(vs, r.str())
			case c <= uint64(len(refs)):
				vs = append(vs, refs[c-1])
			case c-1-uint64(len(refs)) < uint64(len(Values)):
				vs = append(vs, Values[c-1-uint64(len(refs))])
			default:
				r.bad = true
			}
			if r.bad {
				return nil, nil, false
			}
		}
		if r.bad {
			return nil, nil, false
		}
		h[k] = vs
	}
	if r.bad {
		return nil, nil, false
	}
	return h, r.b, true
}

// reader reads from b; once bad, every read returns a zero value.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of elements that take at least size bytes each.
func (r *reader) count(size int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/size) {
		r.bad, r.b = true, nil
		return 0
	}
	return int(n)
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func strLen(n int) int { return uvarintLen(uint64(n)) + n }
