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
