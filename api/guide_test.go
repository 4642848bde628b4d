package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/noa-server/webhook/store"
)

// The guide's requests, as its curl examples send them (Register, Test,
// List, Update, View Deliveries, Debug Webhook Deliveries, Delete), in
// order, against the handler: every answer has the fields of the guide's
// examples and is one the OpenAPI document describes, and only the
// registration shows the secret.
func TestGuideRequests(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		doc := loadDoc(t, h)
		var secret string
		// send is one curl of the guide: -H "Authorization: Bearer …", and
		// with -d, -H "Content-Type: application/json".
		send := func(method, path, tmpl, body string, status int) *response {
			t.Helper()
			r := h.do(method, path, tokenA, body).must(t, status)
			doc.check(t, method, tmpl, r)
			if method != "POST" || path != "/v1/webhooks" {
				noSecret(t, method+" "+tmpl, r.raw, secret)
			}
			return r
		}

		// Register Webhook.
		events := []any{"workflow.completed", "workflow.failed", "agent.status.changed"}
		reg := send("POST", "/v1/webhooks", "/v1/webhooks", `{
    "url": "`+h.recv.url()+`",
    "events": [
      "workflow.completed",
      "workflow.failed",
      "agent.status.changed"
    ],
    "description": "Production webhook for workflow monitoring",
    "active": true
  }`, http.StatusCreated)
		d := reg.data(t)
		id, _ := d["id"].(string)
		secret, _ = d["secret"].(string)
		h.recv.addSecret(secret)
		if !strings.HasPrefix(id, "wh_") || secret == "" || d["url"] != h.recv.url() || d["active"] != true ||
			!cmp.Equal(d["events"], events) || d["createdAt"] == nil {
			t.Fatalf("the registration is not the guide's: %s", reg.raw)
		}

		// Test Webhook: no body, no Content-Type.
		tst := send("POST", "/v1/webhooks/"+id+"/test", "/v1/webhooks/{id}/test", "", http.StatusOK).data(t)
		deliveryID, _ := tst["id"].(string)
		if got := h.recv.next(); got.err != nil {
			t.Errorf("the test event does not verify with the registered secret: %v", got.err)
		}

		// List Webhooks.
		l := send("GET", "/v1/webhooks", "/v1/webhooks", "", http.StatusOK)
		if items := l.items(t); len(items) != 1 || items[0]["id"] != id {
			t.Errorf("list: %s", l.raw)
		}

		// Update Webhook.
		u := send("PUT", "/v1/webhooks/"+id, "/v1/webhooks/{id}", `{
    "events": ["workflow.completed", "workflow.failed"],
    "active": true
  }`, http.StatusOK).data(t)
		if !cmp.Equal(u["events"], []any{"workflow.completed", "workflow.failed"}) || u["active"] != true ||
			u["description"] != "Production webhook for workflow monitoring" {
			t.Errorf("update: %v", u)
		}

		// View Webhook Deliveries.
		ds := send("GET", "/v1/webhooks/"+id+"/deliveries", "/v1/webhooks/{id}/deliveries", "", http.StatusOK).items(t)
		if len(ds) != 1 || ds[0]["id"] != deliveryID {
			t.Errorf("deliveries: %v", ds)
		}

		// Debug Webhook Deliveries: the guide's fields, with its values
		// where they are fixed.
		dd := send("GET", "/v1/webhooks/"+id+"/deliveries/"+deliveryID, "/v1/webhooks/{id}/deliveries/{deliveryId}", "", http.StatusOK).data(t)
		req, _ := dd["request"].(map[string]any)
		res, _ := dd["response"].(map[string]any)
		body, _ := req["body"].(map[string]any)
		meta, _ := body["metadata"].(map[string]any)
		for what, ok := range map[string]bool{
			"id":                         strings.HasPrefix(str(dd["id"]), "del_"),
			"webhookId":                  dd["webhookId"] == id,
			"eventId":                    strings.HasPrefix(str(dd["eventId"]), "evt_"),
			"status":                     dd["status"] == "success",
			"attempts":                   dd["attempts"] == 1.0,
			"request.url":                req["url"] == h.recv.url(),
			"request.method":             req["method"] == "POST",
			"request.headers":            req["headers"] != nil,
			"request.body (the payload)": body["id"] == dd["eventId"] && body["event"] == "webhook.test" && body["webhookId"] == id && body["timestamp"] != nil && body["data"] != nil && meta["apiVersion"] == "v1",
			"response.statusCode":        res["statusCode"] == 200.0,
			"response.body":              res["body"] == "OK",
			"response.duration":          res["duration"] != nil,
			"timestamp":                  dd["timestamp"] != nil,
		} {
			if !ok {
				t.Errorf("delivery detail: %s is not the guide's: %v", what, dd)
			}
		}

		// Delete Webhook, and it is gone.
		send("DELETE", "/v1/webhooks/"+id, "/v1/webhooks/{id}", "", http.StatusOK)
		send("GET", "/v1/webhooks/"+id, "/v1/webhooks/{id}", "", http.StatusNotFound)
	})
}

func str(v any) string { s, _ := v.(string); return s }
