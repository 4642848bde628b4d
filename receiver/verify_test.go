package receiver

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
