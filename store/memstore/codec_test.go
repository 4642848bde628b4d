package memstore

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/internal/hdrcode"
)

func TestAttemptCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	refs := hdrcode.Refs{"d", "evt_1", "a.b", "wh_1"}
	for name, a := range map[string]*store.Attempt{
		"zero": {DeliveryID: "d"},
		"full": {
			DeliveryID: "d", Number: 3, StartedAt: at, Duration: 1500 * time.Millisecond,
			RequestURL: "https://example.com/hook?x=1",
			RequestHeaders: http.Header{"A": {"1", "2"}, "Empty": {}, "X-Webhook-Delivery": {"d"},
				"Webhook-Id": {"evt_1"}, "X-Echo": {"wh_1", "a.b", "evt_2"}},
			ResponseStatus:  503,
			ResponseHeaders: http.Header{},
			ResponseBody:    []byte("busy"),
			ErrorClass:      store.ErrorHTTPStatus, Error: "HTTP 503 Service Unavailable",
		},
		"empty body": {DeliveryID: "d", Number: 1, ResponseBody: []byte{}},
	} {
		got := decodeAttempt(refs, encodeAttempt(a, refs))
		if !reflect.DeepEqual(got, a) {
			t.Errorf("%s: round trip = %#v, want %#v", name, got, a)
		}
	}
	// A name with a nil list reads back with an empty one, as in the other
	// stores.
	got := decodeAttempt(refs, encodeAttempt(&store.Attempt{DeliveryID: "d", RequestHeaders: http.Header{"Nil": nil}}, refs))
	if vs, ok := got.RequestHeaders["Nil"]; !ok || vs == nil || len(vs) != 0 {
		t.Errorf("a nil list of values read back as %#v", got.RequestHeaders)
	}
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	got = decodeAttempt(refs, encodeAttempt(&store.Attempt{StartedAt: local}, refs))
	if !got.StartedAt.Equal(local) {
		t.Errorf("StartedAt = %v, want the instant %v", got.StartedAt, local)
	}
}

// sentAttempt returns a delivery and an attempt of it as the dispatcher
// makes one that a 200 answers.
func sentAttempt() (store.Delivery, *store.Attempt) {
	d := store.Delivery{ID: "del_0190a5e2-7b9c-7def-8abc-0123456789ab", EventID: "evt_0190a5e2-7b9c-7def-8abc-0123456789ac",
		EventType: "workflow.completed", WebhookID: "wh_0190a5e2-7b9c-7def-8abc-0123456789ad"}
	return d, &store.Attempt{
		DeliveryID: d.ID, Number: 1, StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Duration: time.Millisecond,
		RequestURL: "https://example.com/hook",
		RequestHeaders: http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"noa-webhook/1"},
			"X-Webhook-Id": {d.WebhookID}, "X-Webhook-Event": {d.EventType}, "X-Webhook-Delivery": {d.ID},
			"X-Webhook-Attempt": {"1"}, "Webhook-Id": {d.EventID}, "Webhook-Timestamp": {"1767323045"},
			"X-Webhook-Signature": {"t=1767323045,v1=" + strings.Repeat("a", 64)},
			"Webhook-Signature":   {"v1," + strings.Repeat("b", 44)},
		},
		ResponseStatus:  200,
		ResponseHeaders: http.Header{"Date": {"Fri, 02 Jan 2026 03:04:05 GMT"}, "Content-Length": {"0"}},
	}
}

// TestAttemptCoded checks that an attempt as the dispatcher sends it is
// kept small: its headers' common names and values, and its delivery's
// ids and event type, take a byte each.
func TestAttemptCoded(t *testing.T) {
	d, a := sentAttempt()
	// Written out, as before this encoding, it took 578 bytes; what the
	// encoding cannot code (the URL, the timestamp, both signatures, the
	// date) takes 205 with the lengths, and each header a few more.
	b := encodeAttempt(a, refsOf(&d))
	if len(b) > 260 {
		t.Errorf("attempt encoded in %d bytes, want at most 260", len(b))
	}
	if got := decodeAttempt(refsOf(&d), b); !reflect.DeepEqual(got, a) {
		t.Errorf("round trip = %#v, want %#v", got, a)
	}
}

func TestPackRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	full := store.Delivery{
		ID: "del_1", WebhookID: "wh_1", EventID: "evt_1", EventType: "workflow.completed", Tenant: "acme",
		Body: []byte(`{"a":1}`), Status: store.StatusFailed, Attempts: 7, RoundAttempts: 2,
		NextAttemptAt: at.Add(time.Hour), LeaseOwner: "p", LeaseExpiresAt: at.Add(time.Minute),
		LastStatusCode: 410, LastError: "HTTP 410 Gone", CreatedAt: at, UpdatedAt: at.Add(2 * time.Hour),
	}
	attempts := [][]byte{encodeAttempt(&store.Attempt{Number: 1}, hdrcode.Refs{}), {}, encodeAttempt(&store.Attempt{Number: 3, ResponseBody: []byte("x")}, hdrcode.Refs{})}
	for name, c := range map[string]struct {
		d        store.Delivery
		attempts [][]byte
	}{
		"zero":       {store.Delivery{}, [][]byte{}},
		"full":       {full, attempts},
		"empty body": {store.Delivery{ID: "del_2", Body: []byte{}, Status: store.StatusSuccess}, [][]byte{}},
		"far times": {store.Delivery{ID: "del_3", Status: store.StatusFailed, Attempts: 1 << 40,
			CreatedAt: time.Date(1900, 1, 1, 0, 0, 0, 999_999_999, time.UTC), UpdatedAt: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}, [][]byte{}},
	} {
		b := appendPacked(nil, &c.d, c.attempts)
		if n := packedLen(&c.d, c.attempts); n != len(b) {
			t.Errorf("%s: packedLen = %d, want %d", name, n, len(b))
		}
		d, as := unpackDelivery(b)
		if !reflect.DeepEqual(d, c.d) || !reflect.DeepEqual(as, c.attempts) {
			t.Errorf("%s: round trip = %#v, %q; want %#v, %q", name, d, as, c.d, c.attempts)
		}
		h := readHead(&dec{b: b})
		if !h.updatedAt.Equal(c.d.UpdatedAt) || string(h.status) != string(c.d.Status) || string(h.tenant) != c.d.Tenant ||
			string(h.webhookID) != c.d.WebhookID || string(h.eventID) != c.d.EventID || string(h.kind) != c.d.EventType {
			t.Errorf("%s: head %+v does not match %+v", name, h, c.d)
		}
	}
}

func BenchmarkEncodeAttempt(b *testing.B) {
	d, a := sentAttempt()
	b.ReportAllocs()
	for b.Loop() {
		encodeAttempt(a, hdrcode.Guess(d.ID, a.RequestHeaders))
	}
}
