package boltstore

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Bucket names. See the package documentation for what each holds.
var (
	bWebhooks      = []byte("webhooks")
	bWebhookTenant = []byte("webhooks_by_tenant")
	bDeliveries    = []byte("deliveries")
	bDelTenant     = []byte("deliveries_by_tenant")
	bDelWebhook    = []byte("deliveries_by_webhook")
	bDedup         = []byte("dedup")
	bDue           = []byte("due")
	bHeld          = []byte("due_held")
	bLeased        = []byte("leased")
	bFinished      = []byte("finished")
	bAttempts      = []byte("attempts")
	bCounts        = []byte("counts")

	allBuckets = [][]byte{bWebhooks, bWebhookTenant, bDeliveries, bDelTenant, bDelWebhook,
		bDedup, bDue, bHeld, bLeased, bFinished, bAttempts, bCounts}
)

// timeKeyLen is the length of an encoded time in an index key.
const timeKeyLen = 12

// appendTime appends t so that byte order is time order for every
// representable time: the Unix seconds as a big-endian int64 with the sign
// bit flipped, then the nanoseconds as a big-endian uint32. (Unix nanoseconds
// in 8 bytes would overflow outside the years 1678-2262, which bad input can
// reach.)
func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// timeKey is appendTime(t) followed by id: a key of the due, leased and
// finished indexes.
func timeKey(t time.Time, id string) []byte {
	return appendTimeKey(make([]byte, 0, timeKeyLen+len(id)), t, id)
}

// appendTimeKey appends timeKey(t, id) to b.
func appendTimeKey[S ~string | ~[]byte](b []byte, t time.Time, id S) []byte {
	return append(appendTime(b, t), id...)
}

// prefix is a length-prefixed string: no prefix(a) is a prefix of
// prefix(b)+anything unless a == b, whatever bytes a and b hold.
func prefix(s string) []byte {
	return appendPrefix(make([]byte, 0, binary.MaxVarintLen64+len(s)+40), s)
}

// appendPrefix appends prefix(s) to b.
func appendPrefix[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// prefixLen is the length of prefix(s) for an s of n bytes.
func prefixLen(n int) int { return uvarintLen(uint64(n)) + n }

// pairKey is prefix(a) followed by b.
func pairKey(a, b string) []byte { return append(prefix(a), b...) }

// attemptKey is prefix(deliveryID) followed by the big-endian attempt number,
// so a delivery's attempts are adjacent and in order.
func attemptKey(deliveryID string, n int) []byte {
	return appendAttemptKey(make([]byte, 0, prefixLen(len(deliveryID))+4), deliveryID, n)
}

// appendAttemptKey appends attemptKey(deliveryID, n) to b.
func appendAttemptKey(b []byte, deliveryID string, n int) []byte {
	return binary.BigEndian.AppendUint32(appendPrefix(b, deliveryID), uint32(n))
}

// carve returns b[from:] capped at its length: a key or value appended to
// one buffer that holds several, none of which an append can reach past.
func carve(b []byte, from int) []byte { return b[from:len(b):len(b)] }

// successor returns the smallest key greater than every key that starts with
// p, or nil when there is none (p is all 0xff).
func successor(p []byte) []byte {
	s := bytes.Clone(p)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}
