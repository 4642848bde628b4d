package redact_test

import (
	"maps"
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

func TestQueryIn(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text, url, want string
	}{
		{
			// The parse error of a server that echoes the request line.
			`malformed HTTP status code "/in?token=abc123&sig=x%2Fy"`,
			"https://hooks.example.com/in?token=abc123&sig=x%2Fy",
			`malformed HTTP status code "/in?[redacted]"`,
		},
		{
			`Post "https://h.example/in?key=k1": EOF; again: /in?key=k1`,
			"https://h.example/in?key=k1",
			`Post "https://h.example/in?[redacted]": EOF; again: /in?[redacted]`,
		},
		{
			// As %q quotes a query holding a quote and a backslash.
			`malformed HTTP status code "/in?q=\"a\\b\""`,
			`https://h.example/in?q="a\b"`,
			`malformed HTTP status code "/in?[redacted]"`,
		},
		{
			// Only where a "?" leads it: a short query is not hidden
			// inside other words.
			`malformed HTTP version "v1" at /in?v`,
			"https://h.example/in?v",
			`malformed HTTP version "v1" at /in?[redacted]`,
		},
		{"connection refused", "https://h.example/in?token=abc123", "connection refused"},
		{"HTTP 500 Internal Server Error", "https://h.example/in", "HTTP 500 Internal Server Error"},
		{"text ?x", "https://h.example/in?", "text ?x"},
		{"text ?x", "https://exa mple.com/?x", "text ?x"},
		{"", "https://h.example/in?token=abc123", ""},
	} {
		if got := redact.QueryIn(tt.text, tt.url); got != tt.want {
			t.Errorf("QueryIn(%q, %q) = %q, want %q", tt.text, tt.url, got, tt.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	in := map[string]string{"X-Api-Key": "k1", "authorization": "Bearer t", "X-Team": "payments"}
	got := redact.Headers(in)
	want := map[string]string{"X-Api-Key": redact.Placeholder, "authorization": redact.Placeholder, "X-Team": "payments"}
	if !maps.Equal(got, want) {
		t.Errorf("Headers(%v) = %v, want %v", in, got, want)
	}
	if in["X-Api-Key"] != "k1" {
		t.Errorf("Headers changed its argument: %v", in)
	}
	if redact.Headers(nil) != nil {
		t.Error("Headers(nil) is not nil")
	}
}

func TestLogged(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://h.example/in":                     "https://h.example/in",
		"https://h.example/in?token=abc123":        "https://h.example/in?[redacted]",
		"https://ops:p4ss@h.example/in?key=k1&a=b": "https://h.example/in?[redacted]",
		"https://ops:p4ss@exa mple.com/?k=v":       "[invalid URL]",
		"":                                         "",
	} {
		if got := redact.Logged(raw); got != want {
			t.Errorf("Logged(%q) = %q, want %q", raw, got, want)
		}
	}
}
