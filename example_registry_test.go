package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store/memstore"
)

// A tenant registers a webhook, a second tenant cannot see it, and a secret
// rotation keeps the previous secret signing for a grace period.
func ExampleRegistry() {
	ctx := context.Background()
	st := memstore.New()
	defer st.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{Now: func() time.Time { return now }})

	w, err := reg.Create(ctx, "acme", webhook.WebhookInput{
		URL:         "https://hooks.example.com/noa",
		Events:      []string{"workflow.completed", "agent.*"},
		Description: "Production webhook",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(w.ID, "wh_"), strings.HasPrefix(w.Secrets[0].Value, "whsec_"), w.Events)

	_, err = reg.Get(ctx, "globex", w.ID)
	fmt.Println(errors.Is(err, webhook.ErrNotFound))

	_, err = reg.Create(ctx, "acme", webhook.WebhookInput{URL: "http://hooks.example.com/", Events: []string{"*"}})
	var ve *webhook.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Field, "refused:", ve.Message)
	}

	w, _ = reg.RotateSecret(ctx, "acme", w.ID, time.Hour)
	fmt.Println(len(webhook.ActiveSecrets(w, now)), len(webhook.ActiveSecrets(w, now.Add(2*time.Hour))))
	// Output:
	// true true [workflow.completed agent.*]
	// true
	// url refused: scheme must be https
	// 2 1
}

// CanonicalJSON gives the bytes JSON.stringify(JSON.parse(body)) would.
func ExampleCanonicalJSON() {
	b, _ := webhook.CanonicalJSON(map[string]any{"b": "<ok>", "10": 1.0, "2": 1e21, "a": 0.000001})
	fmt.Println(string(b))
	// Output:
	// {"2":1e+21,"10":1,"a":0.000001,"b":"<ok>"}
}
