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
