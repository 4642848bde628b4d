package redact_test

import (
	"testing"

	"github.com/noa-server/webhook/internal/redact"
)

func TestCredential(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"Authorization":       true,
		"Proxy-Authorization": true,
		"Cookie":              true,
		"Set-Cookie":          true,
		"set-cookie":          true,
		"X-Api-Key":           true,
		"X-Auth-Token":        true,
		"X-Client-Secret":     true,
		"X-Password":          true,
		"X-Session-Id":        true,
		"X-Credentials":       true,
		"X-Webhook-Signature": false,
		"Webhook-Signature":   false,
		"Webhook-Id":          false,
		"Content-Type":        false,
		"X-Request-Id":        false,
		"":                    false,
	} {
		if got := redact.Credential(name); got != want {
			t.Errorf("Credential(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://example.com/hook?a=1":       "https://example.com/hook?a=1",
		"HTTPS://example.com/a%2fb":          "HTTPS://example.com/a%2fb", // as it is, not re-encoded
		"https://ops:p4ss@example.com/hook":  "https://example.com/hook",
		"https://ops@example.com:8443/hook":  "https://example.com:8443/hook",
		"http://ops:p4ss@127.0.0.1:1/hook#x": "http://127.0.0.1:1/hook#x",
		"https://ops:p4ss@exa mple.com/%zz":  "[invalid URL]",
		"":                                   "",
	} {
		if got := redact.URL(raw); got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
	}
}
