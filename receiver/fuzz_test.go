package receiver

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	webhook "github.com/noa-server/webhook"
)

// FuzzVerify feeds arbitrary signature headers and bodies to the verify
// path: it must never panic, must answer with one of the documented errors,
// and must never accept what the secret did not sign.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(guideBody), guideID, itoa(guideTS), "v1,qhSDVvxneeSi+mAGWdLqCbI0fypGxL9bZk5Q9lCwu08=", "")
	f.Add([]byte(guideBody), "", "", "", "sha256=f49b60d5910a9ec8f426bae99c0e8c4970703a6f8c1691b2b5bc1916676b68d8")
	f.Add([]byte(`{"test": 2432232314}`), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1a,xx v2", "")
	f.Add([]byte(`[]`), "x", "+1705314600", "v1,,,", "sha256=zz")
	f.Add([]byte(``), "x", "1705314600000", "v1", "SHA256=00")
	v, err := NewVerifier(VerifyOptions{Secrets: []string{secret1, "my-webhook-secret"}, AllowLegacy: true, Now: fixedClock(guideTime)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, id, ts, sig, legacy string) {
		h := http.Header{}
		for k, val := range map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig, "X-Webhook-Signature": legacy} {
			if val != "" {
				h.Set(k, val)
			}
		}
		ev, err := v.Verify(body, h)
		if err != nil {
			known := []error{webhook.ErrMissingSignature, webhook.ErrMalformedHeader, webhook.ErrInvalidSignature,
				webhook.ErrTimestampTooOld, webhook.ErrTimestampTooNew, webhook.ErrLegacyOnly, ErrMalformedPayload}
			for _, k := range known {
				if errors.Is(err, k) {
					code, _ := statusOf(err)
					if code != 400 && code != 401 {
						t.Fatalf("status %d for %v", code, err)
					}
					return
				}
			}
			t.Fatalf("undocumented error %v", err)
		}
		if ev == nil {
			t.Fatal("nil event without error")
		}
		// Accepted: one of the signatures must really be the sender's.
		want := map[string]bool{}
		if n, err := webhook.ParseTimestamp(ts); err == nil && id != "" {
			for _, s := range []string{secret1, "my-webhook-secret"} {
				want[webhook.SignStandard(s, id, n, body)] = true
			}
		}
		ok := false
		for _, e := range strings.Fields(sig) {
			// Compare MAC bytes: base64 has equivalent spellings.
			if mac, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e, "v1,")); err == nil {
				ok = ok || want["v1,"+base64.StdEncoding.EncodeToString(mac)]
			}
		}
		if sig == "" {
			for _, s := range []string{secret1, "my-webhook-secret"} {
				ok = ok || strings.EqualFold(legacy, webhook.SignLegacy(s, body))
			}
		}
		if !ok {
			t.Fatalf("accepted a forged request: id=%q ts=%q sig=%q legacy=%q", id, ts, sig, legacy)
		}
	})
}

// FuzzVerifySigned checks that any body the sender signs verifies, and
// that changing one byte of it makes verification fail.
func FuzzVerifySigned(f *testing.F) {
	f.Add([]byte(guideBody), guideID, uint8(3))
	f.Add([]byte(`{"id":"evt_1","data":{"€":"\u20ac"}}`), "evt_1", uint8(0))
	f.Add([]byte(`{}`), "m", uint8(1))
	v, err := NewVerifier(VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})
	if err != nil {
		f.Fatal(err)
	}
	signer, err := webhook.NewSigner(secret1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, id string, flip uint8) {
		if id == "" || strings.ContainsAny(id, "\r\n\x00") {
			return
		}
		h := http.Header{}
		signer.Sign(h, id, guideTime, body)
		if _, err := v.Verify(body, h); err != nil && !errors.Is(err, ErrMalformedPayload) {
			t.Fatalf("signed body refused: %v", err)
		}
		if len(body) == 0 {
			return
		}
		tampered := append([]byte(nil), body...)
		tampered[int(flip)%len(tampered)] ^= 0x01
		if _, err := v.Verify(tampered, h); !errors.Is(err, webhook.ErrInvalidSignature) {
			t.Fatalf("tampered body: %v", err)
		}
	})
}

// FuzzClientIP feeds arbitrary peers and forwarded-for headers to the
// client address parser: it must never panic, and must never let an
// untrusted peer choose its address through the header.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:80", "203.0.113.5, 10.0.0.2")
	f.Add("192.0.2.1:80", "203.0.113.5")
	f.Add("[::ffff:10.0.0.1]:80", "[2001:db8::1]:443,::ffff:1.2.3.4")
	f.Add("[fe80::1%eth0]:80", "garbage,,")
	f.Add("nonsense", "")
	trusted, err := parsePrefixes([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		ip, ok := clientIP(remote, []string{xff}, trusted)
		if !ok {
			return
		}
		if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
			t.Fatalf("client %v not normalized", ip)
		}
		peer, pok := parseHostAddr(remote)
		if !pok {
			t.Fatal("accepted an unparsable peer")
		}
		if !contains(trusted, peer) && ip != peer {
			t.Fatalf("untrusted peer %v became %v through the header", peer, ip)
		}
	})
}

// FuzzDecodeEvent checks the envelope decoder never panics on signed bytes.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(guideBody))
	f.Add([]byte(`{"timestamp":"not a time"}`))
	f.Add([]byte(` {"data":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := decodeEvent(body)
		if (ev == nil) == (err == nil) {
			t.Fatalf("event %v, error %v", ev, err)
		}
	})
}
