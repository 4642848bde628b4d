// Package redact holds the rule by which the dispatcher's attempt logs, the
// management API and the dashboard hide header values that likely carry
// credentials, so every view of a delivery hides the same headers, and the
// rule by which the dashboard hides the credentials of a URL.
package redact

import (
	"net/url"
	"strings"
)

// Placeholder replaces the value of a header that is not shown.
const Placeholder = "[redacted]"

// credentialWords are the fragments of a header name, lowercase, that mark
// its value as a credential.
var credentialWords = []string{"auth", "cookie", "token", "secret", "key", "password", "session", "credential"}

// Credential reports whether the value of the header name (in any case)
// likely carries a credential: Authorization, Cookie, Set-Cookie, X-Api-Key
// and any other name containing auth, cookie, token, secret, key, password,
// session or credential. Signature headers are not credentials: they reveal
// nothing of the secret.
func Credential(name string) bool {
	k := strings.ToLower(name)
	for _, s := range credentialWords {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// URL returns raw without its user information (a password the dispatcher
// sends as HTTP basic auth), or "[invalid URL]" when raw does not parse, so
// it can be shown wherever the header it becomes is hidden. A URL without
// user information is returned as it is.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[invalid URL]"
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
