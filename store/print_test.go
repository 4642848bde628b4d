package store_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// TestPrintedWebhookHidesSecrets prints and logs a webhook the ways a host
// might (fmt's verbs, slog's text and JSON handlers) and checks that none
// shows a signing secret, current or previous, a credential header's
// value or the URL's query, while the rest still identifies the webhook.
func TestPrintedWebhookHidesSecrets(t *testing.T) {
	t.Parallel()
	const (
		current  = "whsec_Q3VycmVudFNlY3JldEN1cnJlbnRTZWNyZXQ="
		previous = "whsec_UHJldmlvdXNTZWNyZXRQcmV2aW91c1NlY3I="
		apiKey   = "k3y-v4lue-0f-the-endpoint"
		query    = "t0ken-in-the-query"
	)
	w := &store.Webhook{
		ID:     "wh_0193b0c1-7d1e-7000-8000-000000000001",
		Tenant: "acme",
		URL:    "https://hooks.example.com/in?token=" + query,
		Events: []string{"workflow.completed"},
		Active: true,
		Secrets: []store.Secret{
			{Value: current},
			{Value: previous, ExpiresAt: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)},
		},
		Headers: map[string]string{"X-Api-Key": apiKey, "X-Team": "payments"},
	}
	secrets := []string{current, previous, apiKey, query}
	outputs := map[string]string{
		"%v webhook":   fmt.Sprintf("%v", *w),
		"%+v webhook":  fmt.Sprintf("%+v", *w),
		"%#v webhook":  fmt.Sprintf("%#v", *w),
		"%v pointer":   fmt.Sprintf("%v", w),
		"%+v pointer":  fmt.Sprintf("%+v", w),
		"%+v secret":   fmt.Sprintf("%+v", w.Secrets[0]),
		"%#v secrets":  fmt.Sprintf("%#v", w.Secrets),
		"%q secret":    fmt.Sprintf("%q", w.Secrets[1]),
		"Sprint":       fmt.Sprint(w.Secrets[0], *w),
		"Println":      fmt.Sprintln(w),
		"slog text":    logged(false, w),
		"slog json":    logged(true, w),
		"slog secret":  logged(true, w.Secrets[1]),
		"slog secrets": logged(false, w.Secrets),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows %q:\n%s", name, s, out)
			}
		}
	}
	for _, name := range []string{"%+v webhook", "%+v pointer", "slog text", "slog json"} {
		for _, want := range []string{w.ID, "acme", "https://hooks.example.com/in", "X-Team", "payments", "X-Api-Key", "2026-12-06"} {
			if !strings.Contains(outputs[name], want) {
				t.Errorf("%s lacks %q:\n%s", name, want, outputs[name])
			}
		}
	}
}

// logged returns the record of v logged by slog's JSON or text handler.
func logged(json bool, v any) string {
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if json {
		h = slog.NewJSONHandler(&buf, nil)
	}
	slog.New(h).Info("webhook", slog.Any("webhook", v))
	return buf.String()
}
