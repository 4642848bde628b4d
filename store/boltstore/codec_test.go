package boltstore

import (
	"encoding/binary"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/noa-server/webhook/store"
)

var (
	t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897123, time.UTC)

	sampleWebhook = &store.Webhook{
		ID: "wh_1", Tenant: "t", URL: "https://x.example/", Events: []string{"a.*", "b"},
		Description: "d ✓", Active: true, DisabledReason: "r",
		Secrets: []store.Secret{{Value: "whsec_a"}, {Value: "whsec_b", ExpiresAt: t0}},
		Headers: map[string]string{"X-A": "1"}, MaxAttempts: -3, RateLimit: 2.5,
		CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), UpdatedAt: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	}
	sampleDelivery = &store.Delivery{
		ID: "del_1", WebhookID: "wh_1", EventID: "evt_1", EventType: "a.b", Tenant: "t",
		Body: []byte("{}\x00\xff"), Status: store.StatusFailed, Attempts: 3, RoundAttempts: 1,
		NextAttemptAt: t0, LeaseOwner: "o", LeaseExpiresAt: t0.Add(time.Second),
		LastStatusCode: 503, LastError: "e", CreatedAt: t0, UpdatedAt: t0,
	}
	sampleAttempt = &store.Attempt{
		DeliveryID: "del_1", Number: 2, StartedAt: t0, Duration: -time.Second, RequestURL: "u",
		RequestHeaders: http.Header{"A": {"1", "2"}, "B": {}}, ResponseStatus: 410,
		ResponseHeaders: http.Header{"C": {"3"}}, ResponseBody: []byte("gone"),
		ErrorClass: store.ErrorHTTPStatus, Error: "gone",
	}
)

func TestCodecRoundTrip(t *testing.T) {
	w, err := decodeWebhook(encodeWebhook(sampleWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sampleWebhook, w); d != "" {
		t.Errorf("webhook (-want +got):\n%s", d)
	}
	d, err := decodeDelivery(encodeDelivery(sampleDelivery))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleDelivery, d); diff != "" {
		t.Errorf("delivery (-want +got):\n%s", diff)
	}
	a, err := decodeAttempt(encodeAttempt(sampleAttempt))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleAttempt, a, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("attempt (-want +got):\n%s", diff)
	}
	// Every strict prefix of a record is corrupt, never a panic.
	for _, b := range [][]byte{encodeWebhook(sampleWebhook), encodeDelivery(sampleDelivery), encodeAttempt(sampleAttempt)} {
		for n := range len(b) {
			_, e1 := decodeWebhook(b[:n])
			_, e2 := decodeDelivery(b[:n])
			_, e3 := decodeAttempt(b[:n])
			if e1 == nil && e2 == nil && e3 == nil {
				t.Errorf("a %d-byte prefix decoded without error", n)
			}
		}
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		{}, time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(-1, 999999999),
		time.Unix(0, 0), time.Unix(0, 1), t0, t0.Add(time.Nanosecond), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := string(appendTime(nil, times[i-1])), string(appendTime(nil, times[i]))
		if a >= b {
			t.Errorf("key of %v >= key of %v", times[i-1], times[i])
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder and cursor parser: they
// return an error or a value, never panic, and what decodes re-encodes to a
// record that decodes again.
func FuzzDecode(f *testing.F) {
	f.Add(encodeWebhook(sampleWebhook))
	f.Add(encodeDelivery(sampleDelivery))
	f.Add(encodeAttempt(sampleAttempt))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, err := decodeWebhook(b); err == nil {
			if _, err := decodeWebhook(encodeWebhook(w)); err != nil {
				t.Errorf("re-encoded webhook: %v", err)
			}
		}
		if d, err := decodeDelivery(b); err == nil {
			if _, err := decodeDelivery(encodeDelivery(d)); err != nil {
				t.Errorf("re-encoded delivery: %v", err)
			}
		}
		if a, err := decodeAttempt(b); err == nil {
			if _, err := decodeAttempt(encodeAttempt(a)); err != nil {
				t.Errorf("re-encoded attempt: %v", err)
			}
		}
		peekDelivery(b)
		if tenant, err := peekWebhookTenant(b); err == nil {
			if w, err := decodeWebhook(b); err == nil && w.Tenant != string(tenant) {
				t.Errorf("peeked tenant %q, decoded %q", tenant, w.Tenant)
			}
		}
		if id, err := decodeCursor(string(b)); err == nil && id != "" && encodeCursor(id) != string(b) {
			t.Errorf("cursor %q decodes to %q, which encodes differently", b, id)
		}
	})
}

// TestAttemptCodedHeaders checks that the common header names and values,
// and the delivery id, are coded (the record is smaller than the names
// alone) and read back as written, and that records of format 1 still read.
func TestAttemptCodedHeaders(t *testing.T) {
	id := "0190a5e2-7b9c-7def-8abc-0123456789ab"
	a := &store.Attempt{
		DeliveryID: id, Number: 1, StartedAt: t0, RequestURL: "https://x.example/",
		RequestHeaders: http.Header{
			"Content-Type": {"application/json"}, "X-Webhook-Delivery": {id},
			"X-Webhook-Attempt": {"1"}, "X-Custom": {id + "x", ""}, "Webhook-Signature": {"v1,abc"},
		},
		ResponseStatus:  200,
		ResponseHeaders: http.Header{"Date": {"Mon, 02 Jan 2006 15:04:05 GMT"}, "Content-Length": {"0"}},
	}
	b := encodeAttempt(a)
	got, err := decodeAttempt(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("attempt (-want +got):\n%s", diff)
	}

	// Format 1, as the previous version wrote it.
	e := enc{}
	e.byte(attemptV1)
	e.str(a.DeliveryID)
	e.varint(int64(a.Number))
	e.time(a.StartedAt)
	e.varint(int64(a.Duration))
	e.str(a.RequestURL)
	e.header(a.RequestHeaders)
	e.varint(int64(a.ResponseStatus))
	e.header(a.ResponseHeaders)
	e.bytes(a.ResponseBody)
	e.str(string(a.ErrorClass))
	e.str(a.Error)
	// The coded names (82 bytes) and values (application/json and the id,
	// 52 bytes) take a byte each.
	if len(b) > len(e.b)-120 {
		t.Errorf("coded attempt is %d bytes, format 1 %d: want at least 120 fewer", len(b), len(e.b))
	}
	got, err = decodeAttempt(e.b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("format 1 attempt (-want +got):\n%s", diff)
	}
	if _, err := decodeAttempt(append([]byte{9}, b[1:]...)); err == nil {
		t.Error("unknown format version decoded without error")
	}
}

// TestDecodeClaimedCounts checks that a record claiming a huge collection
// that is not there (a corrupt record, or a fuzzer's input) fails without
// allocating room for the claim: decoding allocates about what it reads.
func TestDecodeClaimedCounts(t *testing.T) {
	const size = 256 << 10
	record := func(head ...byte) []byte {
		b := binary.AppendUvarint(head, size/2-16) // the claimed count
		b = append(b, 0, 0)                        // then one entry, perhaps
		for len(b) < size {
			b = append(b, 0xff) // and no valid varint
		}
		return b
	}
	for _, c := range []struct {
		name   string
		b      []byte
		decode func([]byte) error
	}{
		{"attempt v2 request headers", record(attemptV2, 0, 0, 0, 0, 0), func(b []byte) error { _, err := decodeAttempt(b); return err }},
		{"attempt v1 request headers", record(attemptV1, 0, 0, 0, 0, 0), func(b []byte) error { _, err := decodeAttempt(b); return err }},
		{"webhook events", record(webhookV1, 0, 0, 0), func(b []byte) error { _, err := decodeWebhook(b); return err }},
		{"webhook secrets", record(webhookV1, 0, 0, 0, 0, 0, 0, 0), func(b []byte) error { _, err := decodeWebhook(b); return err }},
		{"webhook headers", record(webhookV1, 0, 0, 0, 0, 0, 0, 0, 0), func(b []byte) error { _, err := decodeWebhook(b); return err }},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := c.decode(c.b)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: a record claiming %d elements decoded", c.name, size/2-16)
		}
		// Room for the claim would be 16 to 50 times size.
		if n := after.TotalAlloc - before.TotalAlloc; n > size {
			t.Errorf("%s: decoding a %d-byte record allocated %d bytes", c.name, size, n)
		}
	}
}
