package receiver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	webhook "github.com/noa-server/webhook"
)

// standardHeaders returns the three Standard Webhooks headers.
func standardHeaders(id, ts, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", sig)
	return h
}

func TestVerifierKnownAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		id      string
		ts      int64
		body    string
		sig     string
		want    error
	}{
		{"vector 1", []string{secret1}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", nil},
		{"vector 1 secret without prefix", []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", nil},
		{"vector 2", []string{secret2}, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, `{"email":"test@example.com","username":"test_user"}`, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=", nil},
		{"vector 1 empty", []string{secret1}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,", webhook.ErrInvalidSignature},
		{"vector 1 garbage", []string{secret1}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,dawfeoifkpqwoekfpqoekf", webhook.ErrInvalidSignature},
		{"vector 1 last char", []string{secret1}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", webhook.ErrInvalidSignature},
		{"vector 1 other mac", []string{secret1}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", webhook.ErrInvalidSignature},
		{"guide body", []string{secret1}, guideID, guideTS, guideBody, "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08=", nil},
		{"guide body rotation, old secret", []string{secret2}, guideID, guideTS, guideBody, "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08= v1,6W5uECM6n0IAMW+KOCGD5ZspfURuoL1CaDgvK5l51Hk=", nil},
		{"guide body rotation, receiver holds both", []string{"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", secret2}, guideID, guideTS, guideBody, "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08= v1,6W5uECM6n0IAMW+KOCGD5ZspfURuoL1CaDgvK5l51Hk=", nil},
		{"unknown versions skipped", []string{secret1}, guideID, guideTS, guideBody, "v1a,AAAA v2,BBBB v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08=", nil},
		{"free-form secret", []string{"my-webhook-secret"}, guideID, guideTS, guideBody, "v1,zmwr7DqQfas+9DjZW1G72uQcwBFeg5Pk7FTG6HsyevI=", nil},
		{"wrong secret", []string{secret2}, guideID, guideTS, guideBody, "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08=", webhook.ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(VerifyOptions{Secrets: tt.secrets, Now: fixedClock(time.Unix(tt.ts, 0))})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify([]byte(tt.body), standardHeaders(tt.id, itoa(tt.ts), tt.sig))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifierLegacyKnownAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret, sig string
		want              error
	}{
		{"whsec secret", secret1, "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8", nil},
		{"uppercase hex", secret1, "sha256=F49B60D5910A9EC8F426BAE99C0E8C4970703A6F8C1691B2B5BC1916676B68D8", nil},
		{"free-form secret", "my-webhook-secret", "sha256=e6c73e73515eab7bdfca4e9cba2ee1c1adcc4d890bde912c5ff527563bef9238", nil},
		{"wrong secret", secret2, "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8", webhook.ErrInvalidSignature},
		{"no prefix", secret1, "f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8", webhook.ErrMalformedHeader},
		{"short", secret1, "sha256=f49b", webhook.ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			h.Set("X-Webhook-Signature", tt.sig)
			// Refused by default: downgrade protection.
			strict, err := NewVerifier(VerifyOptions{Secrets: []string{tt.secret}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := strict.Verify([]byte(guideBody), h); !errors.Is(err, webhook.ErrLegacyOnly) {
				t.Fatalf("default Verify = %v, want ErrLegacyOnly", err)
			}
			lax, err := NewVerifier(VerifyOptions{Secrets: []string{tt.secret}, AllowLegacy: true})
			if err != nil {
				t.Fatal(err)
			}
			ev, err := lax.Verify([]byte(guideBody), h)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("AllowLegacy Verify = %v, want %v", err, tt.want)
			}
			if err == nil && (ev.ID != guideID || ev.MessageID != "" || ev.idempotencyKey() != guideID) {
				t.Fatalf("event = %+v", ev)
			}
		})
	}
}

func TestVerifierLegacyDoesNotBypassStandard(t *testing.T) {
	t.Parallel()
	// A valid legacy header next to a bad Standard signature must fail even
	// when legacy is allowed: the Standard headers are the ones verified.
	v, err := NewVerifier(VerifyOptions{Secrets: []string{secret1}, AllowLegacy: true, Now: fixedClock(guideTime)})
	if err != nil {
		t.Fatal(err)
	}
	h := standardHeaders(guideID, itoa(guideTS), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	h.Set("X-Webhook-Signature", "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8")
	if _, err := v.Verify([]byte(guideBody), h); !errors.Is(err, webhook.ErrInvalidSignature) {
		t.Fatalf("Verify = %v, want ErrInvalidSignature", err)
	}
}

func TestVerifyMiddlewareAnswers(t *testing.T) {
	t.Parallel()
	now := guideTime
	good := func() *http.Request { return signedRequest(t, guideBody, guideID, now, secret1) }
	tests := []struct {
		name   string
		req    func() *http.Request
		opts   VerifyOptions
		status int
	}{
		{"valid", good, VerifyOptions{}, 200},
		{"within tolerance, old", func() *http.Request { return signedRequest(t, guideBody, guideID, now.Add(-299*time.Second), secret1) }, VerifyOptions{}, 200},
		{"within tolerance, ahead", func() *http.Request { return signedRequest(t, guideBody, guideID, now.Add(299*time.Second), secret1) }, VerifyOptions{}, 200},
		{"stale", func() *http.Request { return signedRequest(t, guideBody, guideID, now.Add(-301*time.Second), secret1) }, VerifyOptions{}, 401},
		{"future", func() *http.Request { return signedRequest(t, guideBody, guideID, now.Add(301*time.Second), secret1) }, VerifyOptions{}, 401},
		{"stale within custom tolerance", func() *http.Request { return signedRequest(t, guideBody, guideID, now.Add(-20*time.Minute), secret1) }, VerifyOptions{Tolerance: time.Hour}, 200},
		{"rotation: receiver holds the new and old", func() *http.Request { return signedRequest(t, guideBody, guideID, now, secret2) }, VerifyOptions{Secrets: []string{secret1, secret2}}, 200},
		{"rotation: sender signs with both", func() *http.Request { return signedRequest(t, guideBody, guideID, now, secret2, secret1) }, VerifyOptions{}, 200},
		{"wrong secret", func() *http.Request { return signedRequest(t, guideBody, guideID, now, secret2) }, VerifyOptions{}, 401},
		{"no signature", func() *http.Request {
			return httptest.NewRequest("POST", "/", strings.NewReader(guideBody))
		}, VerifyOptions{}, 401},
		{"legacy only refused", func() *http.Request {
			r := good()
			r.Header.Del("webhook-id")
			r.Header.Del("webhook-timestamp")
			r.Header.Del("webhook-signature")
			return r
		}, VerifyOptions{}, 401},
		{"legacy only allowed", func() *http.Request {
			r := good()
			r.Header.Del("webhook-id")
			r.Header.Del("webhook-timestamp")
			r.Header.Del("webhook-signature")
			return r
		}, VerifyOptions{AllowLegacy: true}, 200},
		{"signature stripped, id and timestamp kept", func() *http.Request {
			r := good()
			r.Header.Del("webhook-signature")
			r.Header.Del("X-Webhook-Signature")
			return r
		}, VerifyOptions{}, 400},
		{"id missing", func() *http.Request { r := good(); r.Header.Del("webhook-id"); return r }, VerifyOptions{}, 400},
		{"timestamp missing", func() *http.Request { r := good(); r.Header.Del("webhook-timestamp"); return r }, VerifyOptions{}, 400},
		{"millisecond timestamp", func() *http.Request { r := good(); r.Header.Set("webhook-timestamp", itoa(guideTS*1000)); return r }, VerifyOptions{}, 400},
		{"timestamp with sign", func() *http.Request { r := good(); r.Header.Set("webhook-timestamp", "+"+itoa(guideTS)); return r }, VerifyOptions{}, 400},
		{"negative timestamp", func() *http.Request { r := good(); r.Header.Set("webhook-timestamp", "-"+itoa(guideTS)); return r }, VerifyOptions{}, 400},
		{"timestamp with space", func() *http.Request { r := good(); r.Header.Set("webhook-timestamp", " "+itoa(guideTS)); return r }, VerifyOptions{}, 400},
		{"timestamp fraction", func() *http.Request { r := good(); r.Header.Set("webhook-timestamp", itoa(guideTS)+".5"); return r }, VerifyOptions{}, 400},
		{"signature entry without comma", func() *http.Request { r := good(); r.Header.Set("webhook-signature", "v1qhSD"); return r }, VerifyOptions{}, 401},
		{"good entry, then one without comma", func() *http.Request {
			r := good()
			r.Header.Set("webhook-signature", r.Header.Get("webhook-signature")+" v2")
			return r
		}, VerifyOptions{}, 200},
		{"legacy allowed, Standard signature stripped", func() *http.Request {
			r := good()
			r.Header.Del("webhook-signature")
			return r
		}, VerifyOptions{AllowLegacy: true}, 400},
		{"legacy allowed, forged webhook-id on a legacy request", func() *http.Request {
			r := good()
			r.Header.Del("webhook-signature")
			r.Header.Del("webhook-timestamp")
			r.Header.Set("webhook-id", "forged1")
			return r
		}, VerifyOptions{AllowLegacy: true}, 400},
		{"body too large", func() *http.Request {
			return signedRequest(t, `{"id":"x","data":"`+strings.Repeat("a", 2048)+`"}`, "x", now, secret1)
		}, VerifyOptions{MaxBodyBytes: 1024}, 413},
		{"body too large without length", func() *http.Request {
			r := signedRequest(t, `{"id":"x","data":"`+strings.Repeat("a", 2048)+`"}`, "x", now, secret1)
			r.ContentLength = -1
			r.Body = io.NopCloser(r.Body) // hide the length
			return r
		}, VerifyOptions{MaxBodyBytes: 1024}, 413},
		{"signed body not JSON", func() *http.Request { return signedRequest(t, "hello", "msg_1", now, secret1) }, VerifyOptions{}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			if opts.Secrets == nil {
				opts.Secrets = []string{secret1}
			}
			opts.Now = fixedClock(now)
			mw, err := VerifyWithOptions(opts)
			if err != nil {
				t.Fatal(err)
			}
			called := false
			h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.req())
			if rec.Code != tt.status {
				t.Fatalf("status = %d (%q), want %d", rec.Code, rec.Body.String(), tt.status)
			}
			if called != (tt.status == 200) {
				t.Fatalf("handler called = %v with status %d", called, rec.Code)
			}
			if strings.Contains(rec.Body.String(), secret1) || strings.Contains(rec.Body.String(), "whsec_") {
				t.Fatalf("answer leaks a secret: %q", rec.Body.String())
			}
		})
	}
}

func TestVerifyRefusesReencodedJSON(t *testing.T) {
	t.Parallel()
	body := `{"id":"evt_1","event":"order.created","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":{"price":"5€","a":1,"b":2},"metadata":{"apiVersion":"v1","requestId":"r"}}`
	variants := map[string]string{
		"spaces":        strings.ReplaceAll(body, `":`, `": `),
		"key order":     strings.Replace(body, `"a":1,"b":2`, `"b":2,"a":1`, 1),
		"escaped euro":  strings.Replace(body, "€", `\u20ac`, 1),
		"newline added": body + "\n",
	}
	mw := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler ran for re-encoded body") }))
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			r := signedRequest(t, body, "evt_1", guideTime, secret1)
			r.Body = io.NopCloser(strings.NewReader(v))
			r.ContentLength = int64(len(v))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", rec.Code)
			}
		})
	}
}

func VerifyWithOptionsMust(t *testing.T, o VerifyOptions) func(http.Handler) http.Handler {
	t.Helper()
	mw, err := VerifyWithOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func TestVerifyRestoresBody(t *testing.T) {
	t.Parallel()
	mw := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})
	var seen []byte
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		if r.ContentLength != int64(len(guideBody)) {
			t.Errorf("ContentLength = %d", r.ContentLength)
		}
		rc, err := r.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		again, _ := io.ReadAll(rc)
		raw, ok := RawBodyFromContext(r.Context())
		if !ok || !bytes.Equal(raw, b) || !bytes.Equal(again, b) {
			t.Errorf("raw %q / GetBody %q differ from body %q", raw, again, b)
		}
		ev, ok := EventFromContext(r.Context())
		if !ok || ev.ID != guideID || ev.Type != "order.created" || ev.WebhookID != "wh_123" ||
			ev.Metadata.RequestID != "req_abc123" || ev.MessageID != guideID ||
			string(ev.Data) != `{"orderId":"ord_42","amount":1999}` || !ev.Timestamp.Equal(time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)) {
			t.Errorf("event = %+v", ev)
		}
		seen = b
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signedRequest(t, guideBody, guideID, guideTime, secret1))
	if rec.Code != 200 || string(seen) != guideBody {
		t.Fatalf("status %d, handler saw %q", rec.Code, seen)
	}
}

func TestVerifyConstruction(t *testing.T) {
	t.Parallel()
	bad := []VerifyOptions{
		{},
		{Secrets: []string{""}},
		{Secrets: []string{secret1, ""}},
		{Secrets: []string{"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}},
		{Secrets: []string{secret1 + "\n"}},
		{Secrets: []string{secret1}, MaxBodyBytes: -1},
		{Secrets: []string{secret1}, Tolerance: -time.Second},
	}
	for i, o := range bad {
		_, err := VerifyWithOptions(o)
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		for _, s := range o.Secrets {
			if s != "" && strings.Contains(err.Error(), strings.TrimSpace(s)) {
				t.Errorf("case %d: error leaks the secret: %v", i, err)
			}
		}
	}
	if _, err := NewVerifier(VerifyOptions{}); !errors.Is(err, webhook.ErrNoSecrets) || !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("no secrets: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Verify() without secrets did not panic")
		}
	}()
	Verify()
}

// sendRaw posts body to srv with the header lines of h exactly as given
// (keys are not canonicalized, so case variants and repeated lines reach
// the server as written) and returns the answer's status.
func sendRaw(t *testing.T, srv *httptest.Server, body string, h http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/noa-server", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = append([]string(nil), vs...)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestVerifyKnownAnswersOverHTTP sends every known answer of SIGNATURES.md
// §2, the negative ones included, to the Verify middleware on a real
// server, with the exact bytes and header values of the table.
func TestVerifyKnownAnswersOverHTTP(t *testing.T) {
	t.Parallel()
	const (
		v1ID   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		v1TS   = 1614265330
		v1Body = `{"test": 2432232314}`
		v1Sig  = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
		v2ID   = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"
		v2TS   = 1649367553
		v2Body = `{"email":"test@example.com","username":"test_user"}`
		v2Sig  = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
		rotSig = "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08= v1,6W5uECM6n0IAMW+KOCGD5ZspfURuoL1CaDgvK5l51Hk="
	)
	std := func(id string, ts int64, sig string) http.Header {
		return http.Header{"webhook-id": {id}, "webhook-timestamp": {itoa(ts)}, "webhook-signature": {sig}}
	}
	legacy := func(sig string) http.Header { return http.Header{"X-Webhook-Signature": {sig}} }
	tests := []struct {
		name        string
		secrets     []string
		allowLegacy bool
		ts          int64
		body        string
		h           http.Header
		want        int
	}{
		{"vector 1", []string{secret1}, false, v1TS, v1Body, std(v1ID, v1TS, v1Sig), 200},
		{"vector 1, secret without prefix", []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, false, v1TS, v1Body, std(v1ID, v1TS, v1Sig), 200},
		{"vector 2", []string{secret2}, false, v2TS, v2Body, std(v2ID, v2TS, v2Sig), 200},
		{"vector 1, empty signature", []string{secret1}, false, v1TS, v1Body, std(v1ID, v1TS, "v1,"), 401},
		{"vector 1, garbage", []string{secret1}, false, v1TS, v1Body, std(v1ID, v1TS, "v1,dawfeoifkpqwoekfpqoekf"), 401},
		{"vector 1, last character changed", []string{secret1}, false, v1TS, v1Body, std(v1ID, v1TS, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="), 401},
		{"vector 1, another MAC", []string{secret1}, false, v1TS, v1Body, std(v1ID, v1TS, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="), 401},
		{"vector 1, other secret", []string{secret2}, false, v1TS, v1Body, std(v1ID, v1TS, v1Sig), 401},
		{"vector 1, other id", []string{secret1}, false, v1TS, v1Body, std(v2ID, v1TS, v1Sig), 401},
		{"guide body, Standard", []string{secret1}, false, guideTS, guideBody, std(guideID, guideTS, "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08="), 200},
		{"guide body, rotation, receiver on the previous secret", []string{secret2}, false, guideTS, guideBody, std(guideID, guideTS, rotSig), 200},
		{"guide body, rotation, receiver holds both", []string{secret2, secret1}, false, guideTS, guideBody, std(guideID, guideTS, rotSig), 200},
		{"guide body, rotation, receiver on neither", []string{"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, false, guideTS, guideBody, std(guideID, guideTS, rotSig), 401},
		{"guide body, free-form secret, Standard", []string{"my-webhook-secret"}, false, guideTS, guideBody, std(guideID, guideTS, "v1,zmwr7DqQfas+9DjZW1G72uQcwBFeg5Pk7FTG6HsyevI="), 200},
		{"guide body, legacy allowed", []string{secret1}, true, guideTS, guideBody, legacy("sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8"), 200},
		{"guide body, legacy uppercase hex", []string{secret1}, true, guideTS, guideBody, legacy("sha256=F49B60D5910A9EC8F426BAE99C0E8C4970703A6F8C1691B2B5BC1916676B68D8"), 200},
		{"guide body, legacy refused by default", []string{secret1}, false, guideTS, guideBody, legacy("sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8"), 401},
		{"guide body, free-form secret, legacy", []string{"my-webhook-secret"}, true, guideTS, guideBody, legacy("sha256=e6c73e73515eab7bdfca4e9cba2ee1c1adcc4d890bde912c5ff527563bef9238"), 200},
		{"guide body, legacy of another secret", []string{"my-webhook-secret"}, true, guideTS, guideBody, legacy("sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8"), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			read := make(chan []byte, 1)
			mw := VerifyWithOptionsMust(t, VerifyOptions{Secrets: tt.secrets, AllowLegacy: tt.allowLegacy, Now: fixedClock(time.Unix(tt.ts, 0))})
			srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				read <- b
			})))
			defer srv.Close()
			if code := sendRaw(t, srv, tt.body, tt.h); code != tt.want {
				t.Fatalf("status %d, want %d", code, tt.want)
			}
			if tt.want != 200 {
				return
			}
			if got := <-read; string(got) != tt.body {
				t.Fatalf("handler read %q, sender signed %q", got, tt.body)
			}
		})
	}
}

// TestVerifyReplayWindowOverHTTP checks the tolerance in both directions,
// to the second, and the spellings of webhook-timestamp an attacker could
// try, on a real server. The clock is fixed at guideTime.
func TestVerifyReplayWindowOverHTTP(t *testing.T) {
	t.Parallel()
	mw := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})
	srv := httptest.NewServer(mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	t.Cleanup(srv.Close) // after the parallel subtests
	mwMinute := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime), Tolerance: time.Minute})
	srvMinute := httptest.NewServer(mwMinute(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	t.Cleanup(srvMinute.Close)

	signedAt := func(offset time.Duration) http.Header {
		return signedRequest(t, guideBody, guideID, guideTime.Add(offset), secret1).Header
	}
	// withTimestamp keeps the signature of guideTime and rewrites the
	// header's spelling only.
	withTimestamp := func(ts ...string) http.Header {
		h := signedAt(0)
		h["Webhook-Timestamp"] = ts
		return h
	}
	tests := []struct {
		name string
		srv  *httptest.Server
		h    http.Header
		want int
	}{
		{"now", srv, signedAt(0), 200},
		{"exactly the tolerance old", srv, signedAt(-5 * time.Minute), 200},
		{"a second too old", srv, signedAt(-5*time.Minute - time.Second), 401},
		{"exactly the tolerance ahead", srv, signedAt(5 * time.Minute), 200},
		{"a second too far ahead", srv, signedAt(5*time.Minute + time.Second), 401},
		{"a day old", srv, signedAt(-24 * time.Hour), 401},
		{"a day ahead", srv, signedAt(24 * time.Hour), 401},
		{"custom tolerance, inside", srvMinute, signedAt(-time.Minute), 200},
		{"custom tolerance, a second out, old", srvMinute, signedAt(-time.Minute - time.Second), 401},
		{"custom tolerance, a second out, ahead", srvMinute, signedAt(time.Minute + time.Second), 401},

		// The MAC covers the number, so a leading zero names the instant
		// the sender signed (as the Standard Webhooks libraries read it).
		{"leading zero", srv, withTimestamp("0" + itoa(guideTS)), 200},
		{"plus sign", srv, withTimestamp("+" + itoa(guideTS)), 400},
		{"minus sign", srv, withTimestamp("-" + itoa(guideTS)), 400},
		{"unicode minus", srv, withTimestamp("\u2212" + itoa(guideTS)), 400},
		{"inner space", srv, withTimestamp("17053 14600"), 400},
		{"fraction", srv, withTimestamp(itoa(guideTS) + ".0"), 400},
		{"exponent", srv, withTimestamp("1.7053146e9"), 400},
		{"hex", srv, withTimestamp("0x65a50a28"), 400},
		{"fullwidth digits", srv, withTimestamp("\uff11\uff17\uff10\uff15\uff13\uff11\uff14\uff16\uff10\uff10"), 400},
		{"arabic-indic digits", srv, withTimestamp("\u0661\u0667\u0660\u0665\u0663\u0661\u0664\u0666\u0660\u0660"), 400},
		{"milliseconds", srv, withTimestamp(itoa(guideTS * 1000)), 400},
		{"twelve nines", srv, withTimestamp("999999999999"), 401},
		{"beyond int64", srv, withTimestamp("99999999999999999999"), 400},
		{"zero", srv, withTimestamp("0"), 401},
		{"empty", srv, withTimestamp(""), 400},

		// A stale capture cannot be refreshed by adding a current
		// timestamp line, before or after the signed one.
		{"stale, current line appended", srv, func() http.Header {
			h := signedAt(-time.Hour)
			h["Webhook-Timestamp"] = append(h["Webhook-Timestamp"], itoa(guideTS))
			return h
		}(), 401},
		{"stale, current line prepended", srv, func() http.Header {
			h := signedAt(-time.Hour)
			h["Webhook-Timestamp"] = append([]string{itoa(guideTS)}, h["Webhook-Timestamp"]...)
			return h
		}(), 401},
		{"stale, current line in another case", srv, func() http.Header {
			h := signedAt(-time.Hour)
			h["WEBHOOK-TIMESTAMP"] = []string{itoa(guideTS)}
			return h
		}(), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if code := sendRaw(t, tt.srv, guideBody, tt.h); code != tt.want {
				t.Fatalf("status %d, want %d", code, tt.want)
			}
		})
	}
}

// TestVerifyBodyRereadOverHTTP: a plain handler behind Verify and
// Idempotency on a real server reads the exact signed bytes from Body,
// again from GetBody and from the context, with ContentLength set even
// when the sender streamed the body without a length.
func TestVerifyBodyRereadOverHTTP(t *testing.T) {
	t.Parallel()
	type seen struct {
		body, again, raw []byte
		length           int64
		chunked          bool
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(idemChain(t, NewMemoryStore(MemoryStoreOptions{}), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		s.body, _ = io.ReadAll(r.Body)
		if rest, _ := io.ReadAll(r.Body); len(rest) != 0 {
			t.Errorf("Body read twice gave %q more", rest)
		}
		if rc, err := r.GetBody(); err == nil {
			s.again, _ = io.ReadAll(rc)
		}
		s.raw, _ = RawBodyFromContext(r.Context())
		s.length, s.chunked = r.ContentLength, len(r.TransferEncoding) > 0
		got <- s
	})))
	defer srv.Close()
	for _, chunked := range []bool{false, true} {
		id := "evt_" + strconv.FormatBool(chunked)
		body := eventBody(id, "order.created", `{"note":"caf\u00e9 \u20ac","n":1.50}`)
		req := signedRequest(t, body, id, guideTime, secret1)
		if chunked {
			req.Body = io.NopCloser(strings.NewReader(body))
			req.ContentLength = -1
		}
		if code := postTo(t, srv, req); code != 200 {
			t.Fatalf("chunked %v: status %d", chunked, code)
		}
		s := <-got
		if string(s.body) != body || string(s.again) != body || string(s.raw) != body {
			t.Fatalf("chunked %v: handler read %q, %q from GetBody, %q from the context; sender signed %q", chunked, s.body, s.again, s.raw, body)
		}
		if s.length != int64(len(body)) || s.chunked {
			t.Fatalf("chunked %v: ContentLength %d, chunked %v; want %d, false", chunked, s.length, s.chunked, len(body))
		}
	}
}

// TestVerifyStrippedSignatureWithEmptyLines: a request that carries a
// webhook-id or webhook-timestamp line is a Standard Webhooks request, even
// when that line (or the first of them) is empty: with its webhook-signature
// stripped, it is refused although the legacy header alone would verify.
func TestVerifyStrippedSignatureWithEmptyLines(t *testing.T) {
	t.Parallel()
	mw := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, AllowLegacy: true, Now: fixedClock(guideTime)})
	srv := httptest.NewServer(mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	stripped := func(id, ts []string) http.Header {
		h := signedRequest(t, guideBody, guideID, guideTime, secret1).Header
		delete(h, "Webhook-Signature")
		delete(h, "Webhook-Id")
		delete(h, "Webhook-Timestamp")
		if id != nil {
			h["Webhook-Id"] = id
		}
		if ts != nil {
			h["Webhook-Timestamp"] = ts
		}
		return h
	}
	tests := []struct {
		name   string
		id, ts []string
		want   int
	}{
		{"legacy only", nil, nil, 200},
		{"id and timestamp kept", []string{guideID}, []string{itoa(guideTS)}, 400},
		{"empty id line first", []string{"", guideID}, nil, 400},
		{"empty timestamp line first", nil, []string{"", itoa(guideTS)}, 400},
		{"empty id line", []string{""}, nil, 400},
		{"empty timestamp line", nil, []string{""}, 400},
	}
	for _, tt := range tests {
		if code := sendRaw(t, srv, guideBody, stripped(tt.id, tt.ts)); code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, code, tt.want)
		}
	}
}

// TestVerifierReadsCanonicalKeys pins what Verifier.Verify's doc says to
// callers on other stacks: a header map with lower-case keys assigned
// directly finds no signature (refused, never accepted); the same values
// added with Add verify.
func TestVerifierReadsCanonicalKeys(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(VerifyOptions{Secrets: []string{secret1}, AllowLegacy: true, Now: fixedClock(guideTime)})
	if err != nil {
		t.Fatal(err)
	}
	signed := signedRequest(t, guideBody, guideID, guideTime, secret1).Header
	raw, added := http.Header{}, http.Header{}
	for k, vs := range signed {
		raw[strings.ToLower(k)] = vs
		for _, val := range vs {
			added.Add(strings.ToLower(k), val)
		}
	}
	if _, err := v.Verify([]byte(guideBody), raw); !errors.Is(err, webhook.ErrMissingSignature) {
		t.Errorf("lower-case keys: %v, want ErrMissingSignature", err)
	}
	if _, err := v.Verify([]byte(guideBody), added); err != nil {
		t.Errorf("keys added with Add: %v", err)
	}
}

// TestVerifyDefaultBodyCap checks the README's default: Verify reads a
// body of at most 1 MiB, and answers 413 to a larger one, without
// MaxBodyBytes set.
func TestVerifyDefaultBodyCap(t *testing.T) {
	t.Parallel()
	mw, err := VerifyWithOptions(VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	// bodyOf returns a signed JSON body of exactly n bytes.
	bodyOf := func(n int) string {
		const frame = `{"id":"x","data":""}`
		return `{"id":"x","data":"` + strings.Repeat("a", n-len(frame)) + `"}`
	}
	for _, tc := range []struct {
		size int
		want int
	}{
		{1 << 20, http.StatusOK},
		{1<<20 + 1, http.StatusRequestEntityTooLarge},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, signedRequest(t, bodyOf(tc.size), "x", guideTime, secret1))
		if rec.Code != tc.want {
			t.Errorf("a %d-byte body: status %d, want %d", tc.size, rec.Code, tc.want)
		}
	}
}

// TestPrintedVerifyOptionsHideSecrets prints and logs the options of a
// receiver, as a host logging its configuration at start might, and checks
// that its secrets do not appear while its other settings do.
func TestPrintedVerifyOptionsHideSecrets(t *testing.T) {
	t.Parallel()
	const current, previous = "whsec_UmVjZWl2ZXJTZWNyZXRSZWNlaXZlclNlY3I=", "a-free-form-previous-secret-0123456789"
	opts := VerifyOptions{Secrets: []string{current, previous}, Tolerance: 90 * time.Second, AllowLegacy: true}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", slog.Any("opts", opts))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", slog.Any("opts", &opts))
	for _, out := range []string{
		fmt.Sprintf("%v", opts), fmt.Sprintf("%+v", opts), fmt.Sprintf("%#v", opts), fmt.Sprintf("%+v", &opts),
		fmt.Sprint(opts), text.String(), js.String(),
	} {
		for _, s := range []string{current, previous} {
			if strings.Contains(out, s) {
				t.Errorf("printed options show %q:\n%s", s, out)
			}
		}
		if !strings.Contains(out, "1m30s") && !strings.Contains(out, "90000000000") || !strings.Contains(out, "true") {
			t.Errorf("printed options lack the tolerance or AllowLegacy:\n%s", out)
		}
	}
}
