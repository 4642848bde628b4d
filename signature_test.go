package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Known answers of SIGNATURES.md §2.
const (
	vecSecret1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecSecret2 = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	guideBody  = `{"id":"evt_01HZX3K9Q2W8V7T6R5M4N3B2A1","event":"order.created","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_123","data":{"orderId":"ord_42","amount":1999},"metadata":{"apiVersion":"2024-01-01","requestId":"req_abc123"}}`
	guideID    = "evt_01HZX3K9Q2W8V7T6R5M4N3B2A1"
	guideTS    = 1705314600
)

func TestSignStandardVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		secret, id string
		ts         int64
		body, want string
	}{
		{vecSecret1, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		{vecSecret2, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, `{"email":"test@example.com","username":"test_user"}`, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
		{vecSecret1, guideID, guideTS, guideBody, "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08="},
		{vecSecret2, guideID, guideTS, guideBody, "v1,6W5uECM6n0IAMW+KOCGD5ZspfURuoL1CaDgvK5l51Hk="},
		{"my-webhook-secret", guideID, guideTS, guideBody, "v1,zmwr7DqQfas+9DjZW1G72uQcwBFeg5Pk7FTG6HsyevI="},
	}
	for _, tc := range tests {
		if got := SignStandard(tc.secret, tc.id, tc.ts, []byte(tc.body)); got != tc.want {
			t.Errorf("SignStandard(%.12s…, %s) = %s, want %s", tc.secret, tc.id, got, tc.want)
		}
		v, err := NewVerifier([]string{tc.secret}, VerifyOptions{Now: func() time.Time { return time.Unix(tc.ts, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		h := standardHeaders(tc.id, tc.ts, tc.want)
		if err := v.Verify([]byte(tc.body), h); err != nil {
			t.Errorf("Verify(%s): %v", tc.want, err)
		}
	}
}

func TestSignLegacyVectors(t *testing.T) {
	t.Parallel()
	for secret, want := range map[string]string{
		vecSecret1:          "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8",
		"my-webhook-secret": "sha256=e6c73e73515eab7bdfca4e9cba2ee1c1adcc4d890bde912c5ff527563bef9238",
	} {
		if got := SignLegacy(secret, []byte(guideBody)); got != want {
			t.Errorf("SignLegacy = %s, want %s", got, want)
		}
	}
}

func TestSignerRotationVector(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(vecSecret1, vecSecret2)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	s.Sign(h, guideID, time.Unix(guideTS, 0), []byte(guideBody))
	want := map[string]string{
		HeaderSignature:         "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8",
		HeaderStandardID:        guideID,
		HeaderStandardTimestamp: "1705314600",
		HeaderStandardSignature: "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08= v1,6W5uECM6n0IAMW+KOCGD5ZspfURuoL1CaDgvK5l51Hk=",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// A receiver still on the previous secret verifies.
	v, _ := NewVerifier([]string{vecSecret2}, VerifyOptions{Now: func() time.Time { return time.Unix(guideTS, 0) }})
	if err := v.Verify([]byte(guideBody), h); err != nil {
		t.Errorf("previous secret: %v", err)
	}
	if _, err := NewSigner(); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("NewSigner(): %v", err)
	}
	if _, err := NewSigner(vecSecret1, ""); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("NewSigner with empty secret: %v", err)
	}
	if _, err := NewVerifier(nil, VerifyOptions{}); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("NewVerifier(nil): %v", err)
	}
}

func standardHeaders(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderStandardID, id)
	h.Set(HeaderStandardTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderStandardSignature, sig)
	return h
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	const id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`
	const good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	at := func(d time.Duration) func() time.Time { return func() time.Time { return time.Unix(ts, 0).Add(d) } }
	verify := func(secrets []string, opts VerifyOptions, body string, h http.Header) error {
		t.Helper()
		if opts.Now == nil {
			opts.Now = at(0)
		}
		v, err := NewVerifier(secrets, opts)
		if err != nil {
			t.Fatal(err)
		}
		return v.Verify([]byte(body), h)
	}
	one := []string{vecSecret1}
	for _, sig := range []string{"v1,", "v1,dawfeoifkpqwoekfpqoekf", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v2," + good[3:], "v1a," + good[3:]} {
		if err := verify(one, VerifyOptions{}, body, standardHeaders(id, ts, sig)); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("signature %q: err = %v, want ErrInvalidSignature", sig, err)
		}
	}
	tests := []struct {
		name    string
		secrets []string
		opts    VerifyOptions
		body    string
		h       http.Header
		want    error // nil: must verify
	}{
		{"good", one, VerifyOptions{}, body, standardHeaders(id, ts, good), nil},
		{"unknown versions skipped", one, VerifyOptions{}, body, standardHeaders(id, ts, "v2,abc v1a,xyz "+good), nil},
		{"second secret matches", []string{vecSecret2, vecSecret1}, VerifyOptions{}, body, standardHeaders(id, ts, good), nil},
		{"wrong secret", []string{vecSecret2}, VerifyOptions{}, body, standardHeaders(id, ts, good), ErrInvalidSignature},
		{"re-encoded body", one, VerifyOptions{}, `{"test":2432232314}`, standardHeaders(id, ts, good), ErrInvalidSignature},
		{"other id", one, VerifyOptions{}, body, standardHeaders("msg_other", ts, good), ErrInvalidSignature},
		{"inside tolerance past", one, VerifyOptions{Now: at(5 * time.Minute)}, body, standardHeaders(id, ts, good), nil},
		{"inside tolerance future", one, VerifyOptions{Now: at(-5 * time.Minute)}, body, standardHeaders(id, ts, good), nil},
		{"too old", one, VerifyOptions{Now: at(5*time.Minute + time.Second)}, body, standardHeaders(id, ts, good), ErrTimestampTooOld},
		{"too new", one, VerifyOptions{Now: at(-5*time.Minute - time.Second)}, body, standardHeaders(id, ts, good), ErrTimestampTooNew},
		{"custom tolerance", one, VerifyOptions{Now: at(2 * time.Minute), Tolerance: time.Minute}, body, standardHeaders(id, ts, good), ErrTimestampTooOld},
		{"millisecond timestamp", one, VerifyOptions{}, body, withTS(standardHeaders(id, ts, good), "1614265330000"), ErrMalformedHeader},
		{"plus sign", one, VerifyOptions{}, body, withTS(standardHeaders(id, ts, good), "+1614265330"), ErrMalformedHeader},
		{"minus sign", one, VerifyOptions{}, body, withTS(standardHeaders(id, ts, good), "-1614265330"), ErrMalformedHeader},
		{"space", one, VerifyOptions{}, body, withTS(standardHeaders(id, ts, good), " 1614265330"), ErrMalformedHeader},
		{"fraction", one, VerifyOptions{}, body, withTS(standardHeaders(id, ts, good), "1614265330.5"), ErrMalformedHeader},
		{"no id", one, VerifyOptions{}, body, del(standardHeaders(id, ts, good), HeaderStandardID), ErrMalformedHeader},
		{"no timestamp", one, VerifyOptions{}, body, del(standardHeaders(id, ts, good), HeaderStandardTimestamp), ErrMalformedHeader},
		{"entry without comma", one, VerifyOptions{}, body, standardHeaders(id, ts, "v1"), ErrInvalidSignature},
		{"good entry, then one without comma", one, VerifyOptions{}, body, standardHeaders(id, ts, good+" v2"), nil},
		{"nothing", one, VerifyOptions{}, body, http.Header{}, ErrMissingSignature},
		{"id without signature", one, VerifyOptions{}, body, del(standardHeaders(id, ts, good), HeaderStandardSignature), ErrMalformedHeader},
	}
	for _, tc := range tests {
		err := verify(tc.secrets, tc.opts, tc.body, tc.h)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func withTS(h http.Header, ts string) http.Header {
	h.Set(HeaderStandardTimestamp, ts)
	return h
}

func del(h http.Header, k string) http.Header {
	h.Del(k)
	return h
}

func TestVerifyLegacy(t *testing.T) {
	t.Parallel()
	const sig = "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8"
	legacy := func(v string) http.Header { h := http.Header{}; h.Set(HeaderSignature, v); return h }
	strict, _ := NewVerifier([]string{vecSecret1}, VerifyOptions{})
	lax, _ := NewVerifier([]string{vecSecret2, vecSecret1}, VerifyOptions{AllowLegacy: true})
	if err := strict.Verify([]byte(guideBody), legacy(sig)); !errors.Is(err, ErrLegacyOnly) {
		t.Errorf("legacy-only without AllowLegacy: %v, want ErrLegacyOnly", err)
	}
	for name, tc := range map[string]struct {
		h    http.Header
		body string
		want error
	}{
		"lowercase":   {legacy(sig), guideBody, nil},
		"uppercase":   {legacy("sha256=" + strings.ToUpper(sig[7:])), guideBody, nil},
		"re-encoded":  {legacy(sig), strings.Replace(guideBody, `"amount":1999`, `"amount": 1999`, 1), ErrInvalidSignature},
		"euro escape": {legacy(SignLegacy(vecSecret1, []byte(`{"p":"€"}`))), `{"p":"\u20ac"}`, ErrInvalidSignature},
		"no prefix":   {legacy(sig[7:]), guideBody, ErrMalformedHeader},
		"short":       {legacy("sha256=abcd"), guideBody, ErrMalformedHeader},
		"not hex":     {legacy("sha256=" + strings.Repeat("z", 64)), guideBody, ErrMalformedHeader},
	} {
		err := lax.Verify([]byte(tc.body), tc.h)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	// Downgrade: with the Standard headers present, a valid legacy header
	// does not rescue a bad Standard signature.
	h := standardHeaders(guideID, guideTS, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
	h.Set(HeaderSignature, sig)
	lax2, _ := NewVerifier([]string{vecSecret1}, VerifyOptions{AllowLegacy: true, Now: func() time.Time { return time.Unix(guideTS, 0) }})
	if err := lax2.Verify([]byte(guideBody), h); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("standard headers bad, legacy good: %v, want ErrInvalidSignature", err)
	}
	// Nor can the Standard signature be stripped to fall back on the legacy
	// header, which has no timestamp and so replays for ever.
	for _, keep := range []string{HeaderStandardID, HeaderStandardTimestamp} {
		h := standardHeaders(guideID, guideTS, "v1,unused")
		h.Del(HeaderStandardSignature)
		for _, k := range []string{HeaderStandardID, HeaderStandardTimestamp} {
			if k != keep {
				h.Del(k)
			}
		}
		h.Set(HeaderSignature, sig)
		if err := lax2.Verify([]byte(guideBody), h); !errors.Is(err, ErrMalformedHeader) {
			t.Errorf("valid legacy header with %s and no webhook-signature: %v, want ErrMalformedHeader", keep, err)
		}
		// An empty line first, which Header.Get reads as absent, is still
		// a line.
		h[keep] = append([]string{""}, h[keep]...)
		if err := lax2.Verify([]byte(guideBody), h); !errors.Is(err, ErrMalformedHeader) {
			t.Errorf("valid legacy header with an empty %s line first and no webhook-signature: %v, want ErrMalformedHeader", keep, err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s, _ := NewSigner(vecSecret1)
	body := []byte(guideBody)
	ts := time.Unix(guideTS, 0)
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(h, guideID, ts, body)
	}
}

func BenchmarkVerify(b *testing.B) {
	s, _ := NewSigner(vecSecret1)
	body := []byte(guideBody)
	h := http.Header{}
	s.Sign(h, guideID, time.Unix(guideTS, 0), body)
	v, _ := NewVerifier([]string{vecSecret1}, VerifyOptions{Now: func() time.Time { return time.Unix(guideTS, 0) }})
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(body, h); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(guideID, "1705314600", "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08= v1,6W5uECM6n0IAMW+KOCGD5ZspfURuoL1CaDgvK5l51Hk=", "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8", []byte(guideBody))
	f.Add("", "", "", "sha256=", []byte{})
	f.Add("x", "99999999999999999999", "v1,,, v2", "", []byte("{}"))
	v, _ := NewVerifier([]string{vecSecret1, "my-webhook-secret"}, VerifyOptions{AllowLegacy: true, Now: func() time.Time { return time.Unix(guideTS, 0) }})
	f.Fuzz(func(t *testing.T, id, ts, sig, legacy string, body []byte) {
		h := http.Header{}
		for k, val := range map[string]string{HeaderStandardID: id, HeaderStandardTimestamp: ts, HeaderStandardSignature: sig, HeaderSignature: legacy} {
			if val != "" {
				h.Set(k, val)
			}
		}
		err := v.Verify(body, h)
		if err == nil {
			// Accepted: it must be a genuine signature of this body.
			ok := false
			if sig != "" {
				n, perr := ParseTimestamp(ts)
				ok = perr == nil && (strings.Contains(sig, SignStandard(vecSecret1, id, n, body)[3:]) || strings.Contains(sig, SignStandard("my-webhook-secret", id, n, body)[3:]))
			} else {
				ok = strings.EqualFold(legacy, SignLegacy(vecSecret1, body)) || strings.EqualFold(legacy, SignLegacy("my-webhook-secret", body))
			}
			if !ok {
				t.Fatalf("accepted a forged request: id=%q ts=%q sig=%q legacy=%q", id, ts, sig, legacy)
			}
		}
	})
}

// TestSignerReuse signs many times, concurrently, with one Signer (whose
// HMACs are pooled and reused) and checks every result against the
// one-shot SignLegacy and SignStandard.
func TestSignerReuse(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(vecSecret1, vecSecret2)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 200 {
				id := "msg_" + strconv.Itoa(g*1000+i)
				ts := time.Unix(guideTS+int64(i), 0)
				body := []byte(strings.Repeat("x", i))
				h := http.Header{}
				s.Sign(h, id, ts, body)
				wantStd := SignStandard(vecSecret1, id, ts.Unix(), body) + " " + SignStandard(vecSecret2, id, ts.Unix(), body)
				if got, want := h.Get(HeaderSignature), SignLegacy(vecSecret1, body); got != want {
					errs <- errors.New("legacy " + got + ", want " + want)
					return
				}
				if got := h.Get(HeaderStandardSignature); got != wantStd {
					errs <- errors.New("standard " + got + ", want " + wantStd)
					return
				}
				if h.Get(HeaderStandardID) != id || h.Get(HeaderStandardTimestamp) != strconv.FormatInt(ts.Unix(), 10) {
					errs <- errors.New("id or timestamp header wrong: " + h.Get(HeaderStandardID) + " " + h.Get(HeaderStandardTimestamp))
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A Verifier not made by NewVerifier has no secret: it refuses every
// request with ErrNoSecrets instead of panicking.
func TestVerifierZeroValue(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(vecSecret1)
	if err != nil {
		t.Fatal(err)
	}
	signed := http.Header{}
	s.Sign(signed, guideID, time.Now(), []byte(guideBody))
	for name, v := range map[string]*Verifier{"zero": {}, "nil": nil} {
		for _, h := range []http.Header{signed, {HeaderSignature: {SignLegacy(vecSecret1, []byte(guideBody))}}, {}} {
			if err := v.Verify([]byte(guideBody), h); !errors.Is(err, ErrNoSecrets) {
				t.Errorf("%s Verifier: Verify(%v) = %v, want ErrNoSecrets", name, h, err)
			}
		}
	}
}

// A Signer not made by NewSigner has no secret: Sign leaves the request
// unsigned, dropping any signature already there, so receivers refuse it.
func TestSignerZeroValue(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier([]string{vecSecret1}, VerifyOptions{AllowLegacy: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Signer{"zero": {}, "nil": nil} {
		h := http.Header{"Content-Type": {"application/json"}}
		// A signature of an earlier body does not survive.
		mustSigner(t, vecSecret1).Sign(h, "msg_old", time.Now(), []byte("old"))
		s.Sign(h, guideID, time.Now(), []byte(guideBody))
		for _, k := range []string{HeaderSignature, HeaderStandardID, HeaderStandardTimestamp, HeaderStandardSignature} {
			if got := h.Values(k); len(got) != 0 {
				t.Errorf("%s Signer: header %s = %q, want none", name, k, got)
			}
		}
		if h.Get("Content-Type") != "application/json" {
			t.Errorf("%s Signer: other headers changed: %v", name, h)
		}
		if err := v.Verify([]byte(guideBody), h); !errors.Is(err, ErrMissingSignature) {
			t.Errorf("%s Signer: Verify = %v, want ErrMissingSignature", name, err)
		}
	}
}

func mustSigner(t *testing.T, secrets ...string) *Signer {
	t.Helper()
	s, err := NewSigner(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPrintedSignerHidesSecrets prints and logs a Signer and a Verifier the
// ways a host might and checks that none shows a secret, as a string or as
// the bytes of its key, while each still says what it is.
func TestPrintedSignerHidesSecrets(t *testing.T) {
	t.Parallel()
	const (
		current  = "whsec_Q3VycmVudFNlY3JldEN1cnJlbnRTZWNyZXQ="
		previous = "a-free-form-previous-secret-0123456789"
	)
	signer, err := NewSigner(current, previous)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := NewVerifier([]string{current, previous}, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(current, "whsec_"))
	var shown []string // every form a printed secret could take
	for _, b := range [][]byte{key, []byte(previous)} {
		shown = append(shown,
			strings.Trim(fmt.Sprint(b[:8]), "[]"),
			strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", b[:8]), "[]byte{"), "}"),
			fmt.Sprintf("%x", b[:8]))
	}
	shown = append(shown, current, previous)
	for name, v := range map[string]any{"Signer": signer, "Verifier": verifier} {
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("x", slog.Any("v", v))
		slog.New(slog.NewJSONHandler(&js, nil)).Info("x", slog.Any("v", v))
		for _, out := range []string{
			fmt.Sprintf("%v", v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), fmt.Sprintf("%x", v),
			fmt.Sprint(v), text.String(), js.String(),
		} {
			for _, s := range shown {
				if strings.Contains(out, s) {
					t.Errorf("%s printed shows %q:\n%s", name, s, out)
				}
			}
			if !strings.Contains(out, name) {
				t.Errorf("%s printed does not say what it is:\n%s", name, out)
			}
		}
	}
	// A nil Signer or Verifier (one without secrets) logs as one with
	// none, as slog calls LogValue on it.
	for _, v := range []slog.LogValuer{(*Signer)(nil), (*Verifier)(nil)} {
		var text bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("x", slog.Any("v", v))
		if !strings.Contains(text.String(), "v.secrets=0") {
			t.Errorf("a nil %T logged: %s", v, text.String())
		}
	}
}
