package memstore

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

func TestAttemptCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for name, a := range map[string]*store.Attempt{
		"zero": {DeliveryID: "d"},
		"full": {
			DeliveryID: "d", Number: 3, StartedAt: at, Duration: 1500 * time.Millisecond,
			RequestURL:      "https://example.com/hook?x=1",
			RequestHeaders:  http.Header{"A": {"1", "2"}, "Empty": {}, "Nil": nil},
			ResponseStatus:  503,
			ResponseHeaders: http.Header{},
			ResponseBody:    []byte("busy"),
			ErrorClass:      store.ErrorHTTPStatus, Error: "HTTP 503 Service Unavailable",
		},
		"empty body": {DeliveryID: "d", Number: 1, ResponseBody: []byte{}},
	} {
		got := decodeAttempt("d", encodeAttempt(a))
		if !reflect.DeepEqual(got, a) {
			t.Errorf("%s: round trip = %#v, want %#v", name, got, a)
		}
	}
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	got := decodeAttempt("d", encodeAttempt(&store.Attempt{StartedAt: local}))
	if !got.StartedAt.Equal(local) {
		t.Errorf("StartedAt = %v, want the instant %v", got.StartedAt, local)
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
	attempts := [][]byte{encodeAttempt(&store.Attempt{Number: 1}), {}, encodeAttempt(&store.Attempt{Number: 3, ResponseBody: []byte("x")})}
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
