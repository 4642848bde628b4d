package store

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/noa-server/webhook/internal/redact"
)

// Secret and Webhook print and log without what a host's logs must not
// hold: fmt's verbs and slog show a secret's Value as "[redacted]", a
// credential header's value (by the rule of the management API) as
// "[redacted]" and a URL's query as "?[redacted]". Everything else shows
// as fmt and slog would show it; encoding/json is left alone, as a store
// may encode the records with it.

// plainSecret and plainWebhook have the fields of Secret and Webhook and
// none of their methods, for fmt to print field by field.
type (
	plainSecret  Secret
	plainWebhook Webhook
)

// Format prints s as fmt prints a struct, with its Value hidden.
func (s Secret) Format(f fmt.State, verb rune) {
	s.Value = redact.Placeholder
	printPlain(f, verb, "Secret", plainSecret(s))
}

// LogValue logs s with its Value hidden.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("Value", redact.Placeholder), slog.Time("ExpiresAt", s.ExpiresAt))
}

// Format prints w as fmt prints a struct, without its secrets, the values
// of its credential headers or its URL's query.
func (w Webhook) Format(f fmt.State, verb rune) {
	printPlain(f, verb, "Webhook", plainWebhook(w.hidden()))
}

// LogValue logs w without its secrets, the values of its credential
// headers or its URL's query.
func (w Webhook) LogValue() slog.Value {
	h := w.hidden()
	return slog.GroupValue(
		slog.String("ID", h.ID),
		slog.String("Tenant", h.Tenant),
		slog.String("URL", h.URL),
		slog.Any("Events", h.Events),
		slog.String("Description", h.Description),
		slog.Bool("Active", h.Active),
		slog.String("DisabledReason", h.DisabledReason),
		slog.Any("Secrets", h.Secrets),
		slog.Any("Headers", h.Headers),
		slog.Int("MaxAttempts", h.MaxAttempts),
		slog.Float64("RateLimit", h.RateLimit),
		slog.Time("CreatedAt", h.CreatedAt),
		slog.Time("UpdatedAt", h.UpdatedAt),
	)
}

// hidden returns a copy of w with every secret's Value, every credential
// header's value and the URL's user information and query hidden.
func (w Webhook) hidden() Webhook {
	w.URL = redact.Logged(w.URL)
	if w.Secrets != nil {
		s := make([]Secret, len(w.Secrets))
		for i, sec := range w.Secrets {
			s[i] = Secret{Value: redact.Placeholder, ExpiresAt: sec.ExpiresAt}
		}
		w.Secrets = s
	}
	w.Headers = redact.Headers(w.Headers)
	return w
}

// printPlain prints v, a plain copy of a value of the type named name, with
// the verb and flags of f; %#v names the type rather than the copy's.
func printPlain(f fmt.State, verb rune, name string, v any) {
	out := fmt.Sprintf(fmt.FormatString(f, verb), v)
	if verb == 'v' && f.Flag('#') {
		out = strings.Replace(out, "store.plain"+name, "store."+name, 1)
	}
	fmt.Fprint(f, out)
}
