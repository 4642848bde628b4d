package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"runtime"
	"strings"
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
	// sampleRefs are sampleDelivery's values for sampleAttempt's headers.
	sampleRefs = attemptRefs{"del_1", "evt_1", "a.b", "wh_1"}
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
	a, err := decodeAttempt(encodeAttempt(sampleAttempt, sampleRefs), sampleRefs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleAttempt, a, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("attempt (-want +got):\n%s", diff)
	}
	// Every strict prefix of a record is corrupt, never a panic.
	for _, b := range [][]byte{encodeWebhook(sampleWebhook), encodeDelivery(sampleDelivery), encodeAttempt(sampleAttempt, sampleRefs)} {
		for n := range len(b) {
			_, e1 := decodeWebhook(b[:n])
			_, e2 := decodeDelivery(b[:n])
			_, e3 := decodeAttempt(b[:n], sampleRefs)
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
	f.Add(encodeAttempt(sampleAttempt, sampleRefs))
	f.Add(encodeAttempt(codedAttempt(), codedRefs))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, err := decodeWebhook(b); err == nil {
			if _, err := decodeWebhook(encodeWebhook(w)); err != nil {
				t.Errorf("re-encoded webhook: %v", err)
			}
		}
		d, err := decodeDelivery(b)
		if err == nil {
			if _, err := decodeDelivery(encodeDelivery(d)); err != nil {
				t.Errorf("re-encoded delivery: %v", err)
			}
		}
		if r, rerr := readDeliveryRecord(b); (rerr == nil) != (err == nil) {
			t.Errorf("decodeDelivery: %v, readDeliveryRecord: %v", err, rerr)
		} else if rerr == nil {
			// The raw fields are copied as they are, so a record not in
			// canonical form (an overlong varint) stays so: compare what it
			// decodes to.
			if d2, err := decodeDelivery(r.appendTo(nil)); err != nil || !cmp.Equal(d, d2) {
				t.Errorf("delivery read in place re-encodes to %+v, %v; want %+v", d2, err, d)
			}
		}
		if a, err := decodeAttempt(b, codedRefs); err == nil {
			refs := codedRefs
			refs[0] = a.DeliveryID // a record of format 1 or 2 holds its own
			if a2, err := decodeAttempt(encodeAttempt(a, refs), refs); err != nil || !cmp.Equal(a, a2, cmpopts.EquateEmpty()) {
				t.Errorf("attempt re-encodes to %+v, %v; want %+v", a2, err, a)
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

// codedRefs are the delivery values codedAttempt's headers repeat.
var codedRefs = attemptRefs{
	"0190a5e2-7b9c-7def-8abc-0123456789ab", "0190a5e2-7b9c-7def-8abc-0123456789ad",
	"workflow.completed", "0190a5e2-7b9c-7def-8abc-0123456789ac",
}

// codedAttempt is an attempt whose common header names and values, and
// delivery's values (codedRefs), the encoding codes.
func codedAttempt() *store.Attempt {
	id := codedRefs[0]
	return &store.Attempt{
		DeliveryID: id, Number: 1, StartedAt: t0, RequestURL: "https://x.example/",
		RequestHeaders: http.Header{
			"Content-Type": {"application/json"}, "X-Webhook-Delivery": {id},
			"X-Webhook-Attempt": {"1"}, "X-Custom": {id + "x", ""}, "Webhook-Signature": {"v1,abc"},
			"Webhook-Id": {codedRefs[1]}, "X-Webhook-Event": {codedRefs[2]}, "X-Webhook-Id": {codedRefs[3]},
			"User-Agent": {"noa-webhook/1"},
		},
		ResponseStatus:  200,
		ResponseHeaders: http.Header{"Date": {"Mon, 02 Jan 2006 15:04:05 GMT"}, "Content-Length": {"0"}},
	}
}

// TestAttemptCodedHeaders checks that the common header names and values,
// and the delivery's values, are coded (the record is smaller than the
// names and values alone) and read back as written, and that records of
// formats 1 and 2 still read.
func TestAttemptCodedHeaders(t *testing.T) {
	a := codedAttempt()
	b := encodeAttempt(a, codedRefs)
	got, err := decodeAttempt(b, codedRefs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("attempt (-want +got):\n%s", diff)
	}

	// Formats 1 and 2, as earlier versions wrote them.
	older := func(version byte) []byte {
		e := enc{}
		e.byte(version)
		e.str(a.DeliveryID)
		e.varint(int64(a.Number))
		e.time(a.StartedAt)
		e.varint(int64(a.Duration))
		e.str(a.RequestURL)
		if version == attemptV1 {
			e.header(a.RequestHeaders)
		} else {
			e.codedHeader(a.RequestHeaders, []string{a.DeliveryID})
		}
		e.varint(int64(a.ResponseStatus))
		if version == attemptV1 {
			e.header(a.ResponseHeaders)
		} else {
			e.codedHeader(a.ResponseHeaders, []string{a.DeliveryID})
		}
		e.bytes(a.ResponseBody)
		e.str(string(a.ErrorClass))
		e.str(a.Error)
		return e.b
	}
	v1, v2 := older(attemptV1), older(attemptV2)
	// Format 2 codes the names (132 bytes), and the delivery id and the
	// common values (application/json, 1, 0) in a byte each.
	if len(v2) > len(v1)-150 {
		t.Errorf("format 2 attempt is %d bytes, format 1 %d: want at least 150 fewer", len(v2), len(v1))
	}
	// Format 3 also codes the other delivery values (the event id, event
	// type and webhook id, 90 bytes) and the user agent, and leaves out the
	// delivery id (37 bytes).
	if len(b) > len(v2)-130 {
		t.Errorf("format 3 attempt is %d bytes, format 2 %d: want at least 130 fewer", len(b), len(v2))
	}
	for _, old := range [][]byte{v1, v2} {
		// A record of an earlier format holds its delivery id; refs of
		// another delivery change nothing.
		got, err = decodeAttempt(old, sampleRefs)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, got); diff != "" {
			t.Errorf("format %d attempt (-want +got):\n%s", old[0], diff)
		}
	}
	if _, err := decodeAttempt(append([]byte{9}, b[1:]...), codedRefs); err == nil || !strings.Contains(err.Error(), "newer release") {
		t.Errorf("an attempt of a newer format: %v, want an error saying a newer release wrote it", err)
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
		{"attempt v3 request headers", record(attemptV3, 0, 0, 0, 0), func(b []byte) error { _, err := decodeAttempt(b, codedRefs); return err }},
		{"attempt v2 request headers", record(attemptV2, 0, 0, 0, 0, 0), func(b []byte) error { _, err := decodeAttempt(b, codedRefs); return err }},
		{"attempt v1 request headers", record(attemptV1, 0, 0, 0, 0, 0), func(b []byte) error { _, err := decodeAttempt(b, codedRefs); return err }},
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

// TestCodecGolden checks that records are encoded byte for byte as the
// files already written hold them, and that the records of earlier formats
// still decode to what they were written from.
func TestCodecGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"webhook", encodeWebhook(sampleWebhook), "010477685f3101741268747470733a2f2f782e6578616d706c652f0203612e2a0162056420e29c93010172020777687365635f61000777687365635f6201cc9aa2fd0ca3c8c4ff010103582d41013105400400000000000001ffdb8ff9ce03010180c097ffdf0e00"},
		{"delivery", encodeDelivery(sampleDelivery), "010303612e620564656c5f310477685f31056576745f310174060201cc9aa2fd0ca3c8c4ff01016f01ce9aa2fd0ca3c8c4ff01ee07016501cc9aa2fd0ca3c8c4ff0101cc9aa2fd0ca3c8c4ff01047b7d00ff"},
		{"attempt", encodeAttempt(sampleAttempt, sampleRefs), "030401cc9aa2fd0ca3c8c4ff01ffa7d6b90701750200014102090a00014200b40601000143010b04676f6e650b687474705f73746174757304676f6e65"},
		{"coded attempt", encodeAttempt(codedAttempt(), codedRefs), "030201cc9aa2fd0ca3c8c4ff01001268747470733a2f2f782e6578616d706c652f0901010502010e0801020a01000676312c6162630008582d437573746f6d02002530313930613565322d376239632d376465662d386162632d3031323334353637383961627800000601090501010401030301049003020c01080b01001d4d6f6e2c203032204a616e20323030362031353a30343a303520474d54000000"},
	} {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s record:\n got %s\nwant %s", c.name, got, c.want)
		}
	}

	// Attempts of format 2, as the previous version wrote them: codedAttempt
	// without the headers that version did not code.
	coded := codedAttempt()
	for _, k := range []string{"Webhook-Id", "X-Webhook-Event", "X-Webhook-Id", "User-Agent"} {
		delete(coded.RequestHeaders, k)
	}
	for _, c := range []struct {
		name   string
		record string
		want   *store.Attempt
	}{
		{"attempt", "020564656c5f310401cc9aa2fd0ca3c8c4ff01ffa7d6b90701750200014102060700014200b40601000143010804676f6e650b687474705f73746174757304676f6e65", sampleAttempt},
		{"coded attempt", "022430313930613565322d376239632d376465662d386162632d3031323334353637383961620201cc9aa2fd0ca3c8c4ff01001268747470733a2f2f782e6578616d706c652f050101020a01000676312c6162630008582d437573746f6d02002530313930613565322d376239632d376465662d386162632d3031323334353637383961627800000601060501019003020c01050b01001d4d6f6e2c203032204a616e20323030362031353a30343a303520474d54000000", coded},
	} {
		b, err := hex.DecodeString(c.record)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAttempt(b, sampleRefs)
		if err != nil {
			t.Fatalf("format 2 %s: %v", c.name, err)
		}
		if diff := cmp.Diff(c.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("format 2 %s (-want +got):\n%s", c.name, diff)
		}
	}
}

// codecDeliveries are deliveries whose fields take every length their
// encodings have: empty and long strings, zero, negative and multi-byte
// numbers, zero times and times before 1970.
func codecDeliveries() []*store.Delivery {
	long := strings.Repeat("x", 300)
	pending := &store.Delivery{
		ID: "0190a5e2-7b9c-7def-8abc-0123456789ab", WebhookID: "0190a5e2-7b9c-7def-8abc-0123456789ac",
		EventID: "evt", EventType: "workflow.completed", Tenant: "tenant", Body: []byte(`{"a":1}`),
		Status: store.StatusPending, NextAttemptAt: t0, CreatedAt: t0, UpdatedAt: t0,
	}
	leased := *pending
	leased.LeaseOwner, leased.LeaseExpiresAt = "worker-1", t0.Add(time.Minute)
	failing := leased
	failing.Attempts, failing.RoundAttempts, failing.LastStatusCode, failing.LastError = 63, 64, 503, long
	failing.Body = []byte(long + long)
	return []*store.Delivery{
		{}, sampleDelivery, pending, &leased, &failing,
		{
			ID: long, WebhookID: long, EventID: long, EventType: long, Tenant: long, LeaseOwner: long,
			Status: store.StatusSuccess, Attempts: -1 << 40, RoundAttempts: 1 << 40, LastStatusCode: -65,
			NextAttemptAt:  time.Date(1600, 1, 1, 0, 0, 0, 1, time.UTC),
			LeaseExpiresAt: time.Unix(-1, 999999999), CreatedAt: time.Unix(0, 0), UpdatedAt: time.Unix(1<<40, 0),
		},
	}
}

// TestEncodeExactSize checks that encoders size their buffer exactly: one
// allocation of the record's length, never grown.
func TestEncodeExactSize(t *testing.T) {
	for i, x := range codecDeliveries() {
		if b := encodeDelivery(x); len(b) != cap(b) {
			t.Errorf("delivery %d: %d bytes in a buffer of %d", i, len(b), cap(b))
		}
	}
	long := strings.Repeat("y", 200)
	for i, a := range []*store.Attempt{
		{}, sampleAttempt,
		{
			DeliveryID: long, Number: 1 << 30, Duration: time.Hour, RequestURL: long,
			RequestHeaders:  http.Header{"Content-Type": {"application/json", long, long}, long: {"keep-alive", ""}, "X-Webhook-Delivery": {long}},
			ResponseHeaders: http.Header{"A": nil, "Server": {"x"}}, ResponseBody: []byte(long),
			ErrorClass: store.ErrorTimeout, Error: long,
		},
	} {
		if b := encodeAttempt(a, codedRefs); len(b) != cap(b) {
			t.Errorf("attempt %d: %d bytes in a buffer of %d", i, len(b), cap(b))
		}
	}
}

// TestDeliveryRecord checks that a record read in place and changed the
// way Complete, Claim and Release change a delivery re-encodes to exactly
// the bytes encodeDelivery writes for the changed delivery, and that
// reading it in place sees what decodeDelivery sees.
func TestDeliveryRecord(t *testing.T) {
	for i, x := range codecDeliveries() {
		b := encodeDelivery(x)
		r, err := readDeliveryRecord(b)
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		got := deliveryRecord{
			Status: r.Status, ID: r.ID, WebhookID: r.WebhookID, Attempts: r.Attempts, RoundAttempts: r.RoundAttempts,
			NextAttemptAt: r.NextAttemptAt, LeaseOwner: r.LeaseOwner, LeaseExpiresAt: r.LeaseExpiresAt,
			LastStatusCode: r.LastStatusCode, LastError: r.LastError, UpdatedAt: r.UpdatedAt,
		}
		want := deliveryRecord{
			Status: x.Status, ID: []byte(x.ID), WebhookID: []byte(x.WebhookID), Attempts: x.Attempts, RoundAttempts: x.RoundAttempts,
			NextAttemptAt: x.NextAttemptAt, LeaseOwner: []byte(x.LeaseOwner), LeaseExpiresAt: x.LeaseExpiresAt,
			LastStatusCode: x.LastStatusCode, LastError: []byte(x.LastError), UpdatedAt: x.UpdatedAt,
		}
		if x.Status == "" {
			want.Status = store.StatusPending // the zero status is stored as pending
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(deliveryRecord{}), cmpopts.EquateEmpty(),
			cmpopts.IgnoreFields(deliveryRecord{}, "names", "created", "body")); diff != "" {
			t.Errorf("delivery %d read in place (-want +got):\n%s", i, diff)
		}
		if got := r.appendTo(nil); !bytes.Equal(got, b) {
			t.Errorf("delivery %d unchanged: re-encoded\n%x\nwant\n%x", i, got, b)
		}

		for _, change := range []struct {
			name string
			do   func(d *store.Delivery, r *deliveryRecord)
		}{
			{"complete success", func(d *store.Delivery, r *deliveryRecord) {
				d.Status, r.Status = store.StatusSuccess, store.StatusSuccess
				d.Attempts++
				r.Attempts++
				d.RoundAttempts++
				r.RoundAttempts++
				d.LastStatusCode, r.LastStatusCode = 200, 200
				d.LastError, r.LastError = "", nil
				d.LeaseOwner, d.LeaseExpiresAt, r.LeaseOwner, r.LeaseExpiresAt = "", time.Time{}, nil, time.Time{}
				d.UpdatedAt, r.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Hour)
			}},
			{"complete retry", func(d *store.Delivery, r *deliveryRecord) {
				d.Attempts += 200
				r.Attempts += 200
				d.LastStatusCode, r.LastStatusCode = 0, 0
				d.LastError, r.LastError = "connection refused", []byte("connection refused")
				d.NextAttemptAt, r.NextAttemptAt = time.Time{}, time.Time{}
				d.LeaseOwner, d.LeaseExpiresAt, r.LeaseOwner, r.LeaseExpiresAt = "", time.Time{}, nil, time.Time{}
				d.UpdatedAt, r.UpdatedAt = time.Time{}, time.Time{}
			}},
			{"claim", func(d *store.Delivery, r *deliveryRecord) {
				d.LeaseOwner, r.LeaseOwner = "another-worker", []byte("another-worker")
				d.LeaseExpiresAt, r.LeaseExpiresAt = t0.Add(-time.Hour), t0.Add(-time.Hour)
			}},
			{"fail", func(d *store.Delivery, r *deliveryRecord) {
				d.Status, r.Status = store.StatusFailed, store.StatusFailed
				d.LastError, r.LastError = strings.Repeat("e", 130), []byte(strings.Repeat("e", 130))
			}},
		} {
			d := *x
			if d.Status == "" {
				d.Status = store.StatusPending
			}
			r, err := readDeliveryRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			change.do(&d, &r)
			want := encodeDelivery(&d)
			got := r.appendTo(make([]byte, 0, r.len()))
			if !bytes.Equal(got, want) {
				t.Errorf("delivery %d, %s: record\n%x\nwant\n%x", i, change.name, got, want)
			}
			if len(got) != cap(got) {
				t.Errorf("delivery %d, %s: len() = %d, record is %d bytes", i, change.name, cap(got), len(got))
			}
		}
	}
	// A record that decodeDelivery rejects is rejected in place too.
	b := encodeDelivery(sampleDelivery)
	for n := range len(b) {
		if _, err := readDeliveryRecord(b[:n]); err == nil {
			t.Errorf("a %d-byte prefix read without error", n)
		}
	}
	for _, bad := range [][]byte{append(b, 0), append([]byte{1, 9}, b[2:]...), append([]byte{2}, b[1:]...)} {
		if _, err := readDeliveryRecord(bad); err == nil {
			t.Errorf("corrupt record %x read without error", bad)
		}
	}
}

// BenchmarkCodec measures the encoders of the hot path: a delivery of
// about 1 KiB, its first attempt (with the dispatcher's headers), and the
// change of the delivery's record that Complete makes.
func BenchmarkCodec(b *testing.B) {
	id := "0190a5e2-7b9c-7def-8abc-0123456789ab"
	d := &store.Delivery{
		ID: id, WebhookID: "0190a5e2-7b9c-7def-8abc-0123456789ac", EventID: "0190a5e2-7b9c-7def-8abc-0123456789ad",
		EventType: "workflow.completed", Tenant: "tenant-bench", Body: bytes.Repeat([]byte("x"), 1024),
		Status: store.StatusPending, NextAttemptAt: t0, LeaseOwner: "bench-owner", LeaseExpiresAt: t0.Add(time.Minute),
		CreatedAt: t0, UpdatedAt: t0,
	}
	a := &store.Attempt{
		DeliveryID: id, Number: 1, StartedAt: t0, Duration: 3 * time.Millisecond, RequestURL: "https://x.example/hook",
		RequestHeaders: http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"noa-webhook/1.0"},
			"X-Webhook-Id": {d.WebhookID}, "X-Webhook-Event": {d.EventType}, "X-Webhook-Delivery": {id},
			"X-Webhook-Attempt": {"1"}, "Webhook-Id": {d.EventID}, "Webhook-Timestamp": {"1741964966"},
			"Webhook-Signature":   {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
			"X-Webhook-Signature": {"sha256=2b9a197f337de59f5456ed44b1f4267d53508679d9da98fda3d34337f1ffa48e"},
			"X-Webhook-Timestamp": {"1741964966"},
		},
		ResponseStatus: 200, ResponseHeaders: http.Header{"Date": {"Fri, 14 Mar 2025 15:09:26 GMT"}, "Content-Length": {"2"}},
		ResponseBody: []byte("ok"),
	}
	b.Run("delivery", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeDelivery(d)
		}
	})
	b.Run("attempt", func(b *testing.B) {
		refs := attemptRefs{d.ID, d.EventID, d.EventType, d.WebhookID}
		b.ReportAllocs()
		for b.Loop() {
			encodeAttempt(a, refs)
		}
	})
	b.Run("complete", func(b *testing.B) {
		rec := encodeDelivery(d)
		b.ReportAllocs()
		for b.Loop() {
			r, err := readDeliveryRecord(rec)
			if err != nil {
				b.Fatal(err)
			}
			r.Status, r.Attempts, r.RoundAttempts, r.LastStatusCode = store.StatusSuccess, 1, 1, 200
			r.LeaseOwner, r.LeaseExpiresAt, r.UpdatedAt = nil, time.Time{}, t0.Add(time.Second)
			r.appendTo(make([]byte, 0, r.len()))
		}
	})
}
