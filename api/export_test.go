package api

import (
	"reflect"
	"strings"
)

// Routes returns "METHOD /path" of every route New serves with events on
// or off, for the OpenAPI test.
func Routes(events bool) []string {
	var out []string
	for _, r := range routes(events) {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

// BodyFields returns, by the name of its OpenAPI schema, the JSON field
// names of each request body type and of the webhook view.
func BodyFields() map[string][]string {
	out := map[string][]string{}
	for schema, v := range map[string]any{
		"CreateWebhook": createRequest{}, "UpdateWebhook": updateRequest{}, "TestWebhook": testRequest{},
		"RotateSecret": rotateRequest{}, "EmitEvent": emitRequest{}, "Webhook": webhookView{},
	} {
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
				out[schema] = append(out[schema], name)
			}
		}
	}
	return out
}

// MaxGracePeriod is the longest grace period rotate-secret takes.
const MaxGracePeriod = maxGracePeriod
