// Package redact holds the rules by which every view of a delivery (the
// dispatcher's attempt logs, the management API, the dashboard) hides what
// may carry credentials, so that all of them hide the same: header values
// (Credential), a URL's user information (URL) and a URL's query in the
// text of a failure (QueryIn). The records a host may print or log (a
// webhook, its secrets, the input that creates one) hide them by the same
// rules (Headers, Logged).
package redact

import (
	"net/url"
	"strconv"
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

// QueryIn returns text with the query of the URL rawURL hidden wherever
// text quotes it: every "?" followed by the whole query, as rawURL holds
// it (the form of a request line and of a URL's String) or as Go's %q
// quotes it, becomes "?" + Placeholder. A query is where webhook URLs
// carry credentials (?token=…), and an error's text may quote it: a
// server that echoes the request line makes net/http's parse error quote
// it. Text is returned as it is when rawURL has no query or does not
// parse; a value of the query that text holds on its own, without the
// rest of the query, is not found.
func QueryIn(text, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.RawQuery == "" {
		return text
	}
	q := "?" + u.RawQuery
	hidden := "?" + Placeholder
	text = strings.ReplaceAll(text, q, hidden)
	if quoted := strconv.Quote(q); quoted[1:len(quoted)-1] != q {
		text = strings.ReplaceAll(text, quoted[1:len(quoted)-1], hidden)
	}
	return text
}

// Headers returns a copy of h with the value of every credential header
// (Credential) replaced by Placeholder; nil stays nil.
func Headers(h map[string]string) map[string]string {
	if h == nil {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if Credential(k) {
			v = Placeholder
		}
		out[k] = v
	}
	return out
}

// Logged returns raw as a log may show it: without its user information
// (URL) and with its query, where webhook URLs carry credentials, hidden
// as "?" + Placeholder (QueryIn).
func Logged(raw string) string {
	return QueryIn(URL(raw), raw)
}
