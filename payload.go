package webhook

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// APIVersion is sent as metadata.apiVersion in every payload.
const APIVersion = "v1"

// ErrInvalidJSON reports event data given as JSON text (a json.RawMessage)
// that is not valid JSON.
var ErrInvalidJSON = errors.New("webhook: invalid JSON")

// maxJSONDepth bounds the nesting of canonicalised JSON: one level below
// encoding/json's bound of 10,000, because the payload nests the data in
// its envelope, and a payload encoding/json cannot decode would be refused
// by every Go receiver.
const maxJSONDepth = 10000 - 1

// CanonicalJSON returns data marshalled with encoding/json and rewritten to
// the exact bytes JavaScript's JSON.stringify(JSON.parse(text)) produces, so
// a receiver that re-serialises the parsed body (as the guide's sample does)
// computes the same signature:
//
//   - compact, with no HTML escaping of <, > and &, and U+2028 and U+2029 raw;
//   - strings escape only '"', '\\' and control characters below U+0020
//     (\b \f \n \r \t, else \u00xx in lowercase hex); a lone surrogate
//     escape such as \ud800 in JSON input is kept as a lowercase escape;
//   - numbers in JavaScript's Number-to-string form: 1.0 is 1, 1e21 is
//     1e+21, 1e-7 stays 1e-7, -0 is 0, and a number beyond the float64 range
//     is null. Integers above 2^53 lose precision exactly as in JavaScript,
//     so hosts should send large ids as strings;
//   - object keys in JavaScript's property order: integer-like keys ("0",
//     "10": canonical array indices below 2^32-1) first in ascending numeric
//     order, then the other keys in their original order. A duplicate key
//     keeps its last value at the position of its first occurrence.
//
// A json.RawMessage or a []byte is taken as JSON text: it is validated and
// canonicalised, never base64-encoded. Invalid UTF-8 becomes U+FFFD, one per
// invalid byte, as encoding/json does (a JavaScript decoder may merge a
// truncated sequence into one U+FFFD). Nil becomes {}. Data encoding/json
// cannot marshal returns its error (such as *json.UnsupportedValueError),
// wrapped; invalid JSON text, and JSON nested deeper than 9,999 levels (so
// that the payload around it stays within what encoding/json decodes),
// return an error matching ErrInvalidJSON.
func CanonicalJSON(data any) ([]byte, error) {
	var src []byte
	switch v := data.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		if v == nil {
			return []byte("{}"), nil
		}
		src = v
	case []byte:
		if v == nil {
			return []byte("{}"), nil
		}
		src = v
	default:
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("webhook: marshal data: %w", err)
		}
		src = b
	}
	ms := memberStacks.Get().(*[]member)
	c := canonicalizer{src: src, out: make([]byte, 0, len(src)), members: (*ms)[:0]}
	err := c.document()
	if cap(c.members) <= maxPooledMembers {
		*ms = c.members[:0]
		memberStacks.Put(ms)
	}
	if err != nil {
		return nil, err
	}
	return c.out, nil
}

// memberStacks holds the canonicalizers' member stacks. A stack array
// local to CanonicalJSON would move to the heap on every call (the
// canonicalizer's output escapes, and with it, to the compiler, every
// slice the canonicalizer holds): 640 bytes per event.
var memberStacks = sync.Pool{New: func() any { s := make([]member, 0, 16); return &s }}

// maxPooledMembers bounds the stacks kept for reuse, so one event with
// huge objects does not pin a huge stack.
const maxPooledMembers = 1024

// member is one object member in the output: its encoded key (quotes
// included) and its value, as offsets into canonicalizer.out.
type member struct {
	keyStart, keyEnd   int
	valStart, valEnd   int
	index              uint32 // value of an integer-like key
	intKey, superseded bool
}

// canonicalizer re-encodes JSON text in a single pass over src.
type canonicalizer struct {
	src     []byte
	pos     int
	out     []byte
	members []member // a stack shared by the open objects
	scratch []byte
	depth   int
}

func (c *canonicalizer) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrInvalidJSON, fmt.Sprintf(format, args...), c.pos)
}

func (c *canonicalizer) document() error {
	c.skipSpace()
	if err := c.value(); err != nil {
		return err
	}
	c.skipSpace()
	if c.pos != len(c.src) {
		return c.errorf("data after top-level value")
	}
	return nil
}

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.src) {
		switch c.src[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) literal(lit string) error {
	if !bytes.HasPrefix(c.src[c.pos:], []byte(lit)) {
		return c.errorf("invalid literal")
	}
	c.out = append(c.out, lit...)
	c.pos += len(lit)
	return nil
}

func (c *canonicalizer) value() error {
	if c.pos >= len(c.src) {
		return c.errorf("unexpected end of input")
	}
	switch b := c.src[c.pos]; {
	case b == '{':
		return c.object()
	case b == '[':
		return c.array()
	case b == '"':
		return c.str()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || b >= '0' && b <= '9':
		return c.number()
	default:
		return c.errorf("invalid character %q", b)
	}
}

func (c *canonicalizer) enter() error {
	c.depth++
	if c.depth > maxJSONDepth {
		return c.errorf("nesting deeper than %d", maxJSONDepth)
	}
	return nil
}

func (c *canonicalizer) array() error {
	if err := c.enter(); err != nil {
		return err
	}
	c.pos++ // [
	c.out = append(c.out, '[')
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		c.depth--
		return nil
	}
	for {
		c.skipSpace()
		if err := c.value(); err != nil {
			return err
		}
		c.skipSpace()
		if c.pos >= len(c.src) {
			return c.errorf("unexpected end of input in array")
		}
		switch c.src[c.pos] {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			c.depth--
			return nil
		default:
			return c.errorf("invalid character %q in array", c.src[c.pos])
		}
	}
}

func (c *canonicalizer) object() error {
	if err := c.enter(); err != nil {
		return err
	}
	c.pos++ // {
	c.out = append(c.out, '{')
	start := len(c.out) // first byte after '{'
	base := len(c.members)
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		c.depth--
		return nil
	}
	reorder := false
	var seen map[string]struct{} // keys, once the object is large
	for {
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != '"' {
			return c.errorf("object key must be a string")
		}
		if len(c.members) > base {
			c.out = append(c.out, ',')
		}
		m := member{keyStart: len(c.out)}
		if err := c.str(); err != nil {
			return err
		}
		m.keyEnd = len(c.out)
		m.index, m.intKey = arrayIndex(c.out[m.keyStart+1 : m.keyEnd-1])
		if m.intKey {
			reorder = true
		}
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != ':' {
			return c.errorf("missing ':' after object key")
		}
		c.pos++
		c.out = append(c.out, ':')
		c.skipSpace()
		if err := c.value(); err != nil {
			return err
		}
		m.valStart, m.valEnd = m.keyEnd+1, len(c.out)
		if !reorder {
			if n := len(c.members) - base; n < 32 {
				reorder = c.duplicate(base, m)
			} else {
				if seen == nil {
					seen = make(map[string]struct{}, 2*n)
					for _, p := range c.members[base:] {
						seen[string(c.out[p.keyStart:p.keyEnd])] = struct{}{}
					}
				}
				k := string(c.out[m.keyStart:m.keyEnd])
				_, reorder = seen[k]
				seen[k] = struct{}{}
			}
		}
		c.members = append(c.members, m)
		c.skipSpace()
		if c.pos >= len(c.src) {
			return c.errorf("unexpected end of input in object")
		}
		if c.src[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.src[c.pos] != '}' {
			return c.errorf("invalid character %q in object", c.src[c.pos])
		}
		c.pos++
		break
	}
	if reorder {
		c.reorder(start, base)
	}
	c.members = c.members[:base]
	c.out = append(c.out, '}')
	c.depth--
	return nil
}

// duplicate reports whether m's key equals an earlier key of the object.
// Keys are compared in their canonical encoding, which is one-to-one.
func (c *canonicalizer) duplicate(base int, m member) bool {
	key := c.out[m.keyStart:m.keyEnd]
	for _, p := range c.members[base:] {
		if bytes.Equal(c.out[p.keyStart:p.keyEnd], key) {
			return true
		}
	}
	return false
}

// reorder rewrites the members of the object starting at out[start] in
// JavaScript property order, resolving duplicate keys.
func (c *canonicalizer) reorder(start, base int) {
	ms := c.members[base:]
	c.scratch = append(c.scratch[:0], c.out[start:]...)
	c.out = c.out[:start]
	sc := c.scratch
	key := func(m *member) []byte { return sc[m.keyStart-start : m.keyEnd-start] }

	// A duplicate key: the first occurrence takes the last value.
	first := make(map[string]int, len(ms))
	for i := range ms {
		k := string(key(&ms[i]))
		if f, ok := first[k]; ok {
			ms[f].valStart, ms[f].valEnd = ms[i].valStart, ms[i].valEnd
			ms[i].superseded = true
			continue
		}
		first[k] = i
	}

	// Integer-like keys in ascending order, then the others in order.
	order := make([]int, 0, len(ms))
	for i := range ms {
		if ms[i].intKey && !ms[i].superseded {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(ms[a].index, ms[b].index) })
	for i := range ms {
		if !ms[i].intKey && !ms[i].superseded {
			order = append(order, i)
		}
	}
	for n, i := range order {
		if n > 0 {
			c.out = append(c.out, ',')
		}
		m := &ms[i]
		c.out = append(c.out, key(m)...)
		c.out = append(c.out, ':')
		c.out = append(c.out, sc[m.valStart-start:m.valEnd-start]...)
	}
}

// arrayIndex reports whether the key (decoded, here equal to its encoding
// since it holds only digits) is a canonical array index: "0" or a decimal
// without leading zero below 2^32-1.
func arrayIndex(k []byte) (uint32, bool) {
	if len(k) == 0 || len(k) > 10 || len(k) > 1 && k[0] == '0' {
		return 0, false
	}
	var n uint64
	for _, b := range k {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + uint64(b-'0')
	}
	if n >= 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// str re-encodes the JSON string at src[pos] in JSON.stringify's form.
func (c *canonicalizer) str() error {
	c.pos++ // opening quote
	c.out = append(c.out, '"')
	for {
		// Copy the run of bytes that need no work.
		i := c.pos
		for i < len(c.src) {
			b := c.src[i]
			if b < 0x20 || b == '"' || b == '\\' || b >= utf8.RuneSelf {
				break
			}
			i++
		}
		c.out = append(c.out, c.src[c.pos:i]...)
		c.pos = i
		if c.pos >= len(c.src) {
			return c.errorf("unterminated string")
		}
		b := c.src[c.pos]
		switch {
		case b == '"':
			c.pos++
			c.out = append(c.out, '"')
			return nil
		case b < 0x20:
			return c.errorf("control character in string")
		case b >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(c.src[c.pos:])
			if r == utf8.RuneError && size == 1 {
				c.out = append(c.out, "\ufffd"...)
			} else {
				c.out = append(c.out, c.src[c.pos:c.pos+size]...)
			}
			c.pos += size
		default: // backslash
			if err := c.escape(); err != nil {
				return err
			}
		}
	}
}

// escape decodes the escape sequence at src[pos] and appends its character.
func (c *canonicalizer) escape() error {
	if c.pos+1 >= len(c.src) {
		return c.errorf("unterminated escape")
	}
	e := c.src[c.pos+1]
	c.pos += 2
	switch e {
	case '"', '\\':
		c.out = append(c.out, '\\', e)
	case '/':
		c.out = append(c.out, '/')
	case 'b', 'f', 'n', 'r', 't':
		c.out = append(c.out, '\\', e)
	case 'u':
		r, ok := hex4(c.src[c.pos:])
		if !ok {
			return c.errorf("invalid \\u escape")
		}
		c.pos += 4
		if r >= 0xD800 && r < 0xDC00 && c.pos+1 < len(c.src) && c.src[c.pos] == '\\' && c.src[c.pos+1] == 'u' {
			if lo, ok := hex4(c.src[c.pos+2:]); ok && lo >= 0xDC00 && lo < 0xE000 {
				c.pos += 6
				c.out = utf8.AppendRune(c.out, (r-0xD800)<<10+(lo-0xDC00)+0x10000)
				return nil
			}
		}
		c.out = appendRuneJS(c.out, r)
	default:
		return c.errorf("invalid escape %q", e)
	}
	return nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, h := range b[:4] {
		switch {
		case h >= '0' && h <= '9':
			h -= '0'
		case h >= 'a' && h <= 'f':
			h -= 'a' - 10
		case h >= 'A' && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendRuneJS appends r as JSON.stringify writes it inside a string. r may
// be a lone surrogate (from a \u escape), which is written escaped.
func appendRuneJS(dst []byte, r rune) []byte {
	switch {
	case r == '"' || r == '\\':
		return append(dst, '\\', byte(r))
	case r < 0x20:
		return appendControl(dst, byte(r))
	case r >= 0xD800 && r < 0xE000:
		return append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
	case r < utf8.RuneSelf:
		return append(dst, byte(r))
	default:
		return utf8.AppendRune(dst, r)
	}
}

func appendControl(dst []byte, b byte) []byte {
	switch b {
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
}

// number re-encodes the JSON number at src[pos] in JavaScript's form.
func (c *canonicalizer) number() error {
	start := c.pos
	i := c.pos
	if c.src[i] == '-' {
		i++
	}
	digits := i
	if i < len(c.src) && c.src[i] == '0' {
		i++
	} else {
		for i < len(c.src) && c.src[i] >= '0' && c.src[i] <= '9' {
			i++
		}
	}
	if i == digits {
		return c.errorf("invalid number")
	}
	integer := true
	if i < len(c.src) && c.src[i] == '.' {
		integer = false
		i++
		d := i
		for i < len(c.src) && c.src[i] >= '0' && c.src[i] <= '9' {
			i++
		}
		if i == d {
			return c.errorf("invalid number")
		}
	}
	if i < len(c.src) && (c.src[i] == 'e' || c.src[i] == 'E') {
		integer = false
		i++
		if i < len(c.src) && (c.src[i] == '+' || c.src[i] == '-') {
			i++
		}
		d := i
		for i < len(c.src) && c.src[i] >= '0' && c.src[i] <= '9' {
			i++
		}
		if i == d {
			return c.errorf("invalid number")
		}
	}
	c.pos = i
	lit := c.src[start:i]
	// Integers of at most 15 digits are exact in a float64 and print as
	// written; only -0 changes.
	if integer && i-digits <= 15 {
		if len(lit) == 2 && lit[0] == '-' && lit[1] == '0' {
			c.out = append(c.out, '0')
		} else {
			c.out = append(c.out, lit...)
		}
		return nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	switch {
	case math.IsInf(f, 0):
		// JSON.parse makes it Infinity and JSON.stringify null: the
		// receiver could not get the number sent, so it is refused, as
		// json.Marshal refuses an infinite float64. (An underflow to 0,
		// the other ErrRange, is what JavaScript does too.)
		return c.errorf("number %.20s beyond the range of a double", lit)
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return c.errorf("invalid number")
	}
	c.out = appendNumberJS(c.out, f)
	return nil
}

// appendNumberJS appends f as JavaScript's Number::toString writes it, and
// null for infinities and NaN, as JSON.stringify does.
func appendNumberJS(dst []byte, f float64) []byte {
	if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0')
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Shortest round-trip digits, as "d.ddde±x".
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	mant, exp, _ := bytes.Cut(e, []byte("e"))
	var digs [24]byte
	ds := append(digs[:0], mant[0])
	if len(mant) > 2 {
		ds = append(ds, mant[2:]...)
	}
	x, _ := strconv.Atoi(string(exp))
	k, n := len(ds), x+1 // value = 0.ds × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, ds...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, ds[:n]...)
		dst = append(dst, '.')
		dst = append(dst, ds[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, ds...)
	default:
		dst = append(dst, ds[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, ds[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// bodySize is the size of appendBody's output for these arguments when no
// string needs escaping (a little room is added for some that do), so a
// buffer of that capacity is rarely grown.
func bodySize(eventID, eventType, webhookID string, data []byte, requestID string) int {
	const fixed = len(`{"id":"","event":"","timestamp":"","webhookId":"","data":,"metadata":{"apiVersion":"`+APIVersion+`","requestId":""}}`) +
		len(time.RFC3339) // at least the timestamp's length
	return fixed + len(eventID) + len(eventType) + len(webhookID) + len(data) + len(requestID) + 16
}

// appendBody appends the guide's envelope to dst, in the guide's key order:
// {"id","event","timestamp","webhookId","data","metadata":{"apiVersion","requestId"}}.
// data must already be canonical JSON (from CanonicalJSON).
func appendBody(dst []byte, eventID, eventType string, ts time.Time, webhookID string, data []byte, requestID string) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, eventID)
	dst = append(dst, `,"event":`...)
	dst = appendJSONString(dst, eventType)
	dst = append(dst, `,"timestamp":"`...)
	dst = ts.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","webhookId":`...)
	dst = appendJSONString(dst, webhookID)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"metadata":{"apiVersion":"`+APIVersion+`","requestId":`...)
	dst = appendJSONString(dst, requestID)
	dst = append(dst, `}}`...)
	return dst
}

// appendJSONString appends s as a JSON string in JSON.stringify's form,
// without allocating beyond dst's growth. Invalid UTF-8 bytes are written as
// U+FFFD, one per byte, as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendRuneJS(dst, rune(b))
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
