package api_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/store"
)

// The guide's "Register Webhook", then read, list, update and delete.
func TestWebhookLifecycle(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		target := "https://your-server.com/webhooks/noa-server"
		r := h.do("POST", "/v1/webhooks", tokenA, `{
			"url": "`+target+`",
			"events": ["workflow.completed", "workflow.failed", "agent.status.changed"],
			"description": "Production webhook for workflow monitoring",
			"active": true
		}`).must(t, http.StatusCreated)
		d := r.data(t)
		id, _ := d["id"].(string)
		secret, _ := d["secret"].(string)
		if !strings.HasPrefix(id, "wh_") || !strings.HasPrefix(secret, "whsec_") {
			t.Fatalf("id %q, secret %q: want wh_… and whsec_…", id, secret)
		}
		if got := r.header.Get("Location"); got != "/v1/webhooks/"+id {
			t.Errorf("Location %q", got)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("an answer holding a secret may be cached: Cache-Control %q", r.header.Get("Cache-Control"))
		}
		want := map[string]any{
			"id": id, "url": target, "secret": secret, "active": true,
			"events":      []any{"workflow.completed", "workflow.failed", "agent.status.changed"},
			"description": "Production webhook for workflow monitoring",
			"createdAt":   d["createdAt"], "updatedAt": d["updatedAt"],
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("create answer (-want +got):\n%s", diff)
		}
		if _, err := time.Parse(time.RFC3339, d["createdAt"].(string)); err != nil || !strings.HasSuffix(d["createdAt"].(string), "Z") {
			t.Errorf("createdAt %v is not an RFC 3339 UTC time", d["createdAt"])
		}

		// Read: the same webhook, without the secret.
		g := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK)
		delete(want, "secret")
		if diff := cmp.Diff(want, g.data(t)); diff != "" {
			t.Errorf("get answer (-want +got):\n%s", diff)
		}
		noSecret(t, "GET", g.raw, secret)

		// Update events and active; the description is left alone.
		u := h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"events": ["workflow.completed", "workflow.failed"], "active": false}`).must(t, http.StatusOK)
		ud := u.data(t)
		if diff := cmp.Diff([]any{"workflow.completed", "workflow.failed"}, ud["events"]); diff != "" {
			t.Errorf("events after update (-want +got):\n%s", diff)
		}
		if ud["active"] != false || ud["description"] != "Production webhook for workflow monitoring" || ud["url"] != target {
			t.Errorf("update changed what it was not asked to, or not what it was: %s", u.raw)
		}
		noSecret(t, "PUT", u.raw, secret)
		u = h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"url": "https://other.example/hook", "description": ""}`).must(t, http.StatusOK)
		if ud := u.data(t); ud["url"] != "https://other.example/hook" || ud["description"] != "" || ud["active"] != false {
			t.Errorf("second update: %s", u.raw)
		}

		// List: this tenant's webhook, without the secret.
		l := h.do("GET", "/v1/webhooks", tokenA, "").must(t, http.StatusOK)
		items := l.items(t)
		if len(items) != 1 || items[0]["id"] != id {
			t.Fatalf("list: %s", l.raw)
		}
		if p := l.body["pagination"].(map[string]any); p["hasMore"] != false || p["nextCursor"] != "" {
			t.Errorf("pagination of a single page: %v", p)
		}
		noSecret(t, "list", l.raw, secret)

		// Delete, then it is gone.
		del := h.do("DELETE", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK)
		if diff := cmp.Diff(map[string]any{"id": id, "deleted": true}, del.data(t)); diff != "" {
			t.Errorf("delete answer (-want +got):\n%s", diff)
		}
		if code, _ := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusNotFound).errCode(t); code != "not_found" {
			t.Errorf("code %q", code)
		}
		if code, _ := h.do("DELETE", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusNotFound).errCode(t); code != "not_found" {
			t.Errorf("code %q", code)
		}
		if n := len(h.do("GET", "/v1/webhooks", tokenA, "").must(t, http.StatusOK).items(t)); n != 0 {
			t.Errorf("%d webhooks listed after delete", n)
		}
	})
}

func TestListWebhooksPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		var ids []string
		for range 5 {
			id, _ := h.create(tokenA)
			ids = append(ids, id)
		}
		h.create(tokenB)
		slices.Reverse(ids) // newest first
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			r := h.do("GET", "/v1/webhooks?limit=2&cursor="+cursor, tokenA, "").must(t, http.StatusOK)
			items := r.items(t)
			if len(items) > 2 {
				t.Fatalf("%d items on a page of 2", len(items))
			}
			for _, it := range items {
				got = append(got, it["id"].(string))
			}
			p := r.body["pagination"].(map[string]any)
			if p["hasMore"] != (p["nextCursor"] != "") {
				t.Errorf("hasMore %v with nextCursor %q", p["hasMore"], p["nextCursor"])
			}
			if p["hasMore"] == false {
				break
			}
			cursor = p["nextCursor"].(string)
		}
		if diff := cmp.Diff(ids, got); diff != "" {
			t.Errorf("pages (-want +got):\n%s", diff)
		}
		for _, q := range []string{"limit=0", "limit=201", "limit=x", "limit=-1", "limit=99999999999999999999"} {
			r := h.do("GET", "/v1/webhooks?"+q, tokenA, "").must(t, http.StatusBadRequest)
			if code, field := r.errCode(t); code != "invalid_parameter" || field != "limit" {
				t.Errorf("%s: %s %s", q, code, field)
			}
		}
		r := h.do("GET", "/v1/webhooks?cursor=not-a-cursor", tokenA, "").must(t, http.StatusBadRequest)
		if code, field := r.errCode(t); code != "invalid_parameter" || field != "cursor" {
			t.Errorf("bad cursor: %s %s", code, field)
		}
	})
}

// A listing without ?limit holds api.DefaultPageLimit webhooks, newest
// first, and pages of any size walk every webhook once, the last page
// full or not without hasMore, on every store.
func TestListWebhooksPageSizes(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		doc := loadDoc(t, h)
		var ids []string
		for range api.DefaultPageLimit + 2 {
			id, _ := h.create(tokenA)
			ids = append(ids, id)
		}
		slices.Reverse(ids)
		r := h.do("GET", "/v1/webhooks", tokenA, "")
		doc.check(t, "GET", "/v1/webhooks", r)
		var first []string
		for _, it := range r.must(t, http.StatusOK).items(t) {
			first = append(first, it["id"].(string))
		}
		if diff := cmp.Diff(ids[:api.DefaultPageLimit], first); diff != "" {
			t.Errorf("the first page without ?limit (-want +got):\n%s", diff)
		}
		for _, limit := range []int{1, 13, 26, api.DefaultPageLimit + 1, api.DefaultPageLimit + 2, api.MaxPageLimit} {
			pages := 1
			got := h.pageAll("/v1/webhooks", limit, func(int, string) { pages++ })
			if want := (len(ids) + limit - 1) / limit; pages != want {
				t.Errorf("limit %d: %d pages, want %d", limit, pages, want)
			}
			if diff := cmp.Diff(ids, got); diff != "" {
				t.Errorf("limit %d (-want +got):\n%s", limit, diff)
			}
		}
	})
}

// A tenant sees only its own webhooks; another tenant's id answers exactly
// like an id that does not exist, on every route.
func TestTenantIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{events: true})
		idA, secretA := h.create(tokenA, "workflow.completed")
		// One delivery of A's, to probe the delivery routes with.
		ev := h.do("POST", "/v1/events", tokenA, `{"event":"workflow.completed","data":{"workflowId":"wf_1"}}`).must(t, http.StatusAccepted)
		delA := ev.data(t)["deliveryIds"].([]any)[0].(string)
		eventually(t, "A's delivery to finish", func() bool {
			return h.do("GET", "/v1/webhooks/"+idA+"/deliveries/"+delA, tokenA, "").must(t, http.StatusOK).data(t)["status"] == "success"
		})
		// B's event reaches none of A's webhooks.
		evB := h.do("POST", "/v1/events", tokenB, `{"event":"workflow.completed","data":{}}`).must(t, http.StatusAccepted)
		if n := len(evB.data(t)["deliveryIds"].([]any)); n != 0 {
			t.Errorf("B's event made %d deliveries to A's webhooks", n)
		}

		missing := "wh_0190b6a0-0000-7000-8000-000000000000"
		missingDel := "del_0190b6a0-0000-7000-8000-000000000000"
		probes := []struct{ method, path, body string }{
			{"GET", "/v1/webhooks/%s", ""},
			{"PUT", "/v1/webhooks/%s", `{"active": false}`},
			{"DELETE", "/v1/webhooks/%s", ""},
			{"POST", "/v1/webhooks/%s/test", ""},
			{"POST", "/v1/webhooks/%s/rotate-secret", ""},
			{"GET", "/v1/webhooks/%s/deliveries", ""},
			{"GET", "/v1/webhooks/%s/deliveries/" + delA, ""},
			{"POST", "/v1/webhooks/%s/deliveries/" + delA + "/retry", ""},
		}
		for _, p := range probes {
			other := h.do(p.method, strings.Replace(p.path, "%s", idA, 1), tokenB, p.body)
			absent := h.do(p.method, strings.Replace(p.path, "%s", missing, 1), tokenB, p.body)
			if other.status != http.StatusNotFound || string(other.raw) != string(absent.raw) {
				t.Errorf("%s %s by another tenant: %d %s; a missing id: %d %s", p.method, p.path, other.status, other.raw, absent.status, absent.raw)
			}
			noSecret(t, p.path, other.raw, secretA)
		}
		// A's own webhook with a delivery id that is not its own.
		idA2, _ := h.create(tokenA)
		for _, path := range []string{"/v1/webhooks/" + idA2 + "/deliveries/" + delA, "/v1/webhooks/" + idA + "/deliveries/" + missingDel} {
			if code, _ := h.do("GET", path, tokenA, "").must(t, http.StatusNotFound).errCode(t); code != "not_found" {
				t.Errorf("%s: %s", path, code)
			}
		}
		if n := len(h.do("GET", "/v1/webhooks", tokenB, "").must(t, http.StatusOK).items(t)); n != 0 {
			t.Errorf("B lists %d webhooks of A's", n)
		}
		// Nothing B did changed A's webhook.
		if d := h.do("GET", "/v1/webhooks/"+idA, tokenA, "").must(t, http.StatusOK).data(t); d["active"] != true {
			t.Errorf("A's webhook changed by B: %v", d)
		}
	})
}

// Tenants whose names are prefixes of each other, or differ only in case,
// a trailing space or Unicode normalisation, are as apart as any two, on
// every store: each lists and reaches only its own webhooks and
// deliveries, its events reach only its own webhooks, and each other's
// webhook and delivery ids are answered exactly (status, headers, body)
// like missing ones.
func TestTenantsThatLookAlike(t *testing.T) {
	tenants := map[string]string{
		"Bearer plain": "acme", "Bearer longer": "acme2", "Bearer upper": "Acme",
		"Bearer space": "acme ", "Bearer nfc": "caf\u00e9", "Bearer nfd": "cafe\u0301",
	}
	concurrencyStores(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{events: true, tenant: func(r *http.Request) (string, error) {
			if tenant, ok := tenants[r.Header.Get("Authorization")]; ok {
				return tenant, nil
			}
			return "", errNoToken
		}})
		doc := loadDoc(t, h)
		ids, dels := map[string]string{}, map[string]string{}
		for auth := range tenants {
			token := strings.TrimPrefix(auth, "Bearer ")
			ids[token], _ = h.create(token)
			dels[token] = h.emit(token, "workflow.completed", `{}`)[0]
		}
		missing := "wh_0190b6a0-0000-7000-8000-000000000000"
		missingDel := "del_0190b6a0-0000-7000-8000-000000000000"
		probes := []struct{ method, tmpl, body string }{
			{"GET", "/v1/webhooks/{id}", ""},
			{"HEAD", "/v1/webhooks/{id}", ""},
			{"PUT", "/v1/webhooks/{id}", `{"headers":{"Authorization":"[redacted]"}}`},
			{"DELETE", "/v1/webhooks/{id}", ""},
			{"POST", "/v1/webhooks/{id}/test", ""},
			{"POST", "/v1/webhooks/{id}/rotate-secret", `{"gracePeriodSeconds":0}`},
			{"GET", "/v1/webhooks/{id}/deliveries", "?status=pending&limit=1"},
			{"GET", "/v1/webhooks/{id}/deliveries/{deliveryId}", ""},
			{"POST", "/v1/webhooks/{id}/deliveries/{deliveryId}/retry", ""},
		}
		for caller := range ids {
			for owner := range ids {
				if owner == caller {
					continue
				}
				for _, p := range probes {
					body, query := p.body, ""
					if p.method == "GET" {
						body, query = "", p.body
					}
					path := func(id, del string) string {
						return strings.NewReplacer("{id}", id, "{deliveryId}", del).Replace(p.tmpl) + query
					}
					other := h.do(p.method, path(ids[owner], dels[owner]), caller, body)
					absent := h.do(p.method, path(missing, missingDel), caller, body)
					doc.check(t, p.method, p.tmpl, other)
					other.header.Del("Date")
					absent.header.Del("Date")
					if other.status != http.StatusNotFound || string(other.raw) != string(absent.raw) || !cmp.Equal(other.header, absent.header) {
						t.Errorf("%s %s of %q by %q: %d %v %s; a missing id: %d %v %s", p.method, p.tmpl, owner, caller,
							other.status, other.header, other.raw, absent.status, absent.header, absent.raw)
					}
				}
				// The caller's own webhook with the other's delivery id.
				own := h.do("GET", "/v1/webhooks/"+ids[caller]+"/deliveries/"+dels[owner], caller, "")
				gone := h.do("GET", "/v1/webhooks/"+ids[caller]+"/deliveries/"+missingDel, caller, "")
				if own.status != http.StatusNotFound || string(own.raw) != string(gone.raw) {
					t.Errorf("%q's delivery under %q's webhook: %d %s; a missing one: %s", owner, caller, own.status, own.raw, gone.raw)
				}
			}
			list := h.do("GET", "/v1/webhooks", caller, "").must(t, http.StatusOK).items(t)
			if len(list) != 1 || list[0]["id"] != ids[caller] {
				t.Errorf("%q lists %v", caller, list)
			}
			got := h.do("GET", "/v1/webhooks/"+ids[caller]+"/deliveries", caller, "").must(t, http.StatusOK).items(t)
			if len(got) != 1 || got[0]["id"] != dels[caller] {
				t.Errorf("%q lists deliveries %v", caller, got)
			}
			if d := h.do("GET", "/v1/webhooks/"+ids[caller], caller, "").must(t, http.StatusOK).data(t); d["active"] != true {
				t.Errorf("%q's webhook was changed by another: %v", caller, d)
			}
		}
	})
}

func TestUnauthorized(t *testing.T) {
	h := newHarness(t, stores[0].open, options{events: true})
	id, _ := h.create(tokenA)
	for _, p := range []struct{ method, path string }{
		{"GET", "/v1/webhooks"}, {"POST", "/v1/webhooks"}, {"GET", "/v1/webhooks/" + id},
		{"PUT", "/v1/webhooks/" + id}, {"DELETE", "/v1/webhooks/" + id}, {"POST", "/v1/webhooks/" + id + "/test"},
		{"GET", "/v1/webhooks/" + id + "/deliveries"}, {"POST", "/v1/events"},
	} {
		for _, token := range []string{"", "wrong"} {
			r := h.do(p.method, p.path, token, `{"url":"https://x.example"}`).must(t, http.StatusUnauthorized)
			if code, _ := r.errCode(t); code != "unauthorized" {
				t.Errorf("%s %s: code %q", p.method, p.path, code)
			}
			if r.header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("%s %s: WWW-Authenticate %q", p.method, p.path, r.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(r.raw), errNoToken.Error()) {
				t.Errorf("the tenant function's error is shown: %s", r.raw)
			}
		}
	}
	// Nothing was deleted or changed by the refused calls.
	h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK)
}

// A tenant no store can hold (not UTF-8, or with a NUL byte), which a
// host's Tenant function may derive from a token or claim, refuses the
// request with 401 on every route, as an empty tenant does: not a 400
// about a field named "tenant" that the client never sent, which the
// OpenAPI document does not list for most routes.
func TestUnusableTenantIsUnauthorized(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(*testing.T) store.Store) {
		unusable := map[string]string{"Bearer nul": "acme\x00", "Bearer latin1": "acm\xe9"}
		h := newHarness(t, open, options{events: true, tenant: func(r *http.Request) (string, error) {
			if tenant, ok := unusable[r.Header.Get("Authorization")]; ok {
				return tenant, nil
			}
			return bearerTenant(r)
		}})
		doc := loadDoc(t, h)
		id, _ := h.create(tokenA)
		del := h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK).data(t)["id"].(string)
		for _, token := range []string{"nul", "latin1"} {
			for _, c := range []struct{ method, tmpl, body string }{
				{"POST", "/v1/webhooks", `{"url":"https://a.example/hook","events":["*"]}`},
				{"GET", "/v1/webhooks", ""},
				{"GET", "/v1/webhooks/{id}", ""},
				{"PUT", "/v1/webhooks/{id}", `{"active":false}`},
				{"DELETE", "/v1/webhooks/{id}", ""},
				{"POST", "/v1/webhooks/{id}/test", ""},
				{"POST", "/v1/webhooks/{id}/rotate-secret", ""},
				{"GET", "/v1/webhooks/{id}/deliveries", ""},
				{"GET", "/v1/webhooks/{id}/deliveries/{deliveryId}", ""},
				{"POST", "/v1/webhooks/{id}/deliveries/{deliveryId}/retry", ""},
				{"POST", "/v1/events", `{"event":"workflow.completed","data":{}}`},
			} {
				path := strings.NewReplacer("{id}", id, "{deliveryId}", del).Replace(c.tmpl)
				r := h.do(c.method, path, token, c.body)
				doc.check(t, c.method, c.tmpl, r)
				if r.status != http.StatusUnauthorized {
					t.Errorf("%s %s as %s: %d %s, want 401", c.method, c.tmpl, token, r.status, r.raw)
					continue
				}
				if code, _ := r.errCode(t); code != "unauthorized" || r.header.Get("WWW-Authenticate") != "Bearer" {
					t.Errorf("%s %s as %s: code %q, WWW-Authenticate %q", c.method, c.tmpl, token, code, r.header.Get("WWW-Authenticate"))
				}
			}
		}
	})
}

// The guide's "Test Webhook": a signed webhook.test event reaches the
// endpoint now, and the answer is the delivery with its attempt.
func TestTestWebhook(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		id, secret := h.create(tokenA, "workflow.completed")
		r := h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "", "Content-Type", "").must(t, http.StatusOK)
		got := h.recv.next()
		if got.err != nil {
			t.Fatalf("the test event does not verify: %v", got.err)
		}
		if sig := got.header.Get("X-Webhook-Signature"); sig != webhook.SignLegacy(secret, got.body) {
			t.Errorf("X-Webhook-Signature %q is not the guide's sha256=hex(HMAC(secret, body))", sig)
		}
		var payload map[string]any
		if err := json.Unmarshal(got.body, &payload); err != nil {
			t.Fatal(err)
		}
		if payload["event"] != "webhook.test" || payload["webhookId"] != id {
			t.Errorf("payload: %s", got.body)
		}
		d := r.data(t)
		if d["status"] != "success" || d["attempts"] != 1.0 || d["webhookId"] != id || d["eventId"] != payload["id"] || d["event"] != "webhook.test" {
			t.Errorf("test answer: %s", r.raw)
		}
		req := d["request"].(map[string]any)
		if req["method"] != "POST" || req["url"] != h.recv.url() {
			t.Errorf("request: %v", req)
		}
		if diff := cmp.Diff(payload, req["body"]); diff != "" {
			t.Errorf("request.body is not the payload sent (-sent +shown):\n%s", diff)
		}
		resp := d["response"].(map[string]any)
		if resp["statusCode"] != 200.0 || resp["body"] != "OK" {
			t.Errorf("response: %v", resp)
		}
		if log := d["attemptLog"].([]any); len(log) != 1 {
			t.Errorf("attemptLog: %v", log)
		}
		noSecret(t, "test answer", r.raw, secret)

		// A body with data of the caller's.
		h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, `{"data":{"hello":"world"}}`).must(t, http.StatusOK)
		got = h.recv.next()
		if !strings.Contains(string(got.body), `"data":{"hello":"world"}`) {
			t.Errorf("test data not sent: %s", got.body)
		}
		for _, body := range []string{`{"data":[1]}`, `{"data":"x"}`, `{"message":"x"}`} {
			r := h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, body).must(t, http.StatusBadRequest)
			if _, field := r.errCode(t); field == "" {
				t.Errorf("%s: no field named: %s", body, r.raw)
			}
		}

		// An endpoint that fails: the call succeeds and shows the failure.
		h.recv.status.Store(http.StatusInternalServerError)
		r = h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK)
		h.recv.next()
		d = r.data(t)
		if d["status"] != "pending" || d["response"].(map[string]any)["statusCode"] != 500.0 || d["nextAttemptAt"] == nil {
			t.Errorf("failed test: %s", r.raw)
		}

		// An inactive webhook is refused, and nothing is sent.
		h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"active": false}`).must(t, http.StatusOK)
		r = h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusConflict)
		if code, _ := r.errCode(t); code != "webhook_inactive" {
			t.Errorf("inactive: %s", r.raw)
		}
	})
}

func TestTestWebhookNeedsRunningDispatcher(t *testing.T) {
	h := newHarness(t, stores[0].open, options{noStart: true})
	id, _ := h.create(tokenA)
	r := h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusServiceUnavailable)
	if code, _ := r.errCode(t); code != "unavailable" {
		t.Errorf("code %q", code)
	}
}

// Rotation: the answer shows the new secret once; deliveries carry a
// signature for the new and the previous secret during the grace period.
func TestRotateSecret(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		id, old := h.create(tokenA)
		r := h.do("POST", "/v1/webhooks/"+id+"/rotate-secret", tokenA, `{"gracePeriodSeconds": 3600}`).must(t, http.StatusOK)
		d := r.data(t)
		fresh, _ := d["secret"].(string)
		if !strings.HasPrefix(fresh, "whsec_") || fresh == old {
			t.Fatalf("rotated secret %q (old %q)", fresh, old)
		}
		exp, err := time.Parse(time.RFC3339, d["previousSecretExpiresAt"].(string))
		if err != nil || exp.Before(time.Now().Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
			t.Errorf("previousSecretExpiresAt %v, want an hour from now", d["previousSecretExpiresAt"])
		}
		noSecret(t, "rotate answer", r.raw, old)
		// Receivers on either secret verify.
		for _, s := range []string{old, fresh} {
			h.recv.setSecrets(s)
			h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK)
			if got := h.recv.next(); got.err != nil {
				t.Errorf("a receiver on one secret does not verify during the grace period: %v", got.err)
			}
		}
		// Reads never show either.
		for _, path := range []string{"/v1/webhooks/" + id, "/v1/webhooks", "/v1/webhooks/" + id + "/deliveries"} {
			noSecret(t, path, h.do("GET", path, tokenA, "").must(t, http.StatusOK).raw, old, fresh)
		}
		// Grace 0 drops the previous secret at once; no body means the default.
		r = h.do("POST", "/v1/webhooks/"+id+"/rotate-secret", tokenA, `{"gracePeriodSeconds": 0}`).must(t, http.StatusOK)
		third := r.data(t)["secret"].(string)
		h.recv.setSecrets(fresh)
		h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK)
		if got := h.recv.next(); got.err == nil {
			t.Error("the secret rotated out with no grace period still verifies")
		}
		h.recv.setSecrets(third)
		h.do("POST", "/v1/webhooks/"+id+"/rotate-secret", tokenA, "", "Content-Type", "").must(t, http.StatusOK)
		for _, body := range []string{`{"gracePeriodSeconds": -1}`, `{"gracePeriodSeconds": 99999999999}`, `{"gracePeriodSeconds": "1h"}`, `{"grace": 1}`} {
			r := h.do("POST", "/v1/webhooks/"+id+"/rotate-secret", tokenA, body).must(t, http.StatusBadRequest)
			if _, field := r.errCode(t); field == "" {
				t.Errorf("%s: %s", body, r.raw)
			}
		}
	})
}

// previousSecretExpiresAt is when the last previous secret stops signing:
// after one rotation its expiry, after rotations in the grace period of
// earlier ones the latest expiry, even when a later rotation gave a
// shorter grace; left out once a revocation leaves none.
func TestRotateSecretPreviousExpiry(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		clock := newRegClock()
		h := newHarness(t, open, options{regNow: clock.Now, noStart: true})
		id, _ := h.create(tokenA)
		path := "/v1/webhooks/" + id + "/rotate-secret"
		stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
		start := clock.Now()
		longest := start.Add(30 * 24 * time.Hour)
		for _, c := range []struct {
			what, body string
			want       string
		}{
			{"one rotation", `{"gracePeriodSeconds": 2592000}`, stamp(longest)},
			{"a shorter grace in the first's", `{"gracePeriodSeconds": 3600}`, stamp(longest)},
			{"the default grace in both", "", stamp(longest)},
			{"a revocation", `{"gracePeriodSeconds": 0}`, ""},
		} {
			d := h.do("POST", path, tokenA, c.body).must(t, http.StatusOK).data(t)
			got, _ := d["previousSecretExpiresAt"].(string)
			if got != c.want {
				t.Errorf("%s: previousSecretExpiresAt %q, want %q", c.what, got, c.want)
			}
			clock.Advance(time.Minute)
		}
		// Once the longest grace is the only one left, it is still shown.
		h.do("POST", path, tokenA, `{"gracePeriodSeconds": 7200}`).must(t, http.StatusOK)
		clock.Advance(time.Hour)
		d := h.do("POST", path, tokenA, `{"gracePeriodSeconds": 60}`).must(t, http.StatusOK).data(t)
		if got, want := d["previousSecretExpiresAt"], stamp(clock.Now().Add(-time.Hour).Add(7200*time.Second)); got != want {
			t.Errorf("a shorter grace after a longer one: previousSecretExpiresAt %v, want %s", got, want)
		}
	})
}

// Rotations with a grace period stop at the Registry's limit of previous
// secrets in their grace period: the next is answered 409
// too_many_secrets, documented, saying when the first expires, and changes
// nothing; from that expiry on a rotation is accepted again, and a
// revocation always is.
func TestRotateSecretLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		clock := newRegClock()
		h := newHarness(t, open, options{regNow: clock.Now, noStart: true})
		id, first := h.create(tokenA)
		path := "/v1/webhooks/" + id + "/rotate-secret"
		secrets := []string{first}
		firstExpiry := clock.Now().Add(time.Hour)
		for range webhook.DefaultMaxPreviousSecrets {
			r := h.do("POST", path, tokenA, `{"gracePeriodSeconds": 3600}`).must(t, http.StatusOK)
			secrets = append(secrets, r.data(t)["secret"].(string))
			clock.Advance(time.Minute)
		}
		before, err := h.st.GetWebhook(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{`{"gracePeriodSeconds": 3600}`, ""} {
			r := h.do("POST", path, tokenA, body).must(t, http.StatusConflict)
			code, field := r.errCode(t)
			msg := r.body["error"].(map[string]any)["message"].(string)
			if code != api.CodeTooManySecrets || field != "" {
				t.Errorf("%q at the limit: code %q, field %q, want %q and no field", body, code, field, api.CodeTooManySecrets)
			}
			if stamp := firstExpiry.UTC().Format("2006-01-02T15:04:05.000Z"); !strings.Contains(msg, stamp) || !strings.Contains(msg, "gracePeriodSeconds 0") {
				t.Errorf("%q at the limit: message %q names neither the first expiry %s nor gracePeriodSeconds 0", body, msg, stamp)
			}
			noSecret(t, "the refusal", r.raw, secrets...)
		}
		after, err := h.st.GetWebhook(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("a refused rotation changed the webhook (-before +after):\n%s", diff)
		}
		checkDocumented(t, h, "POST", "/v1/webhooks/{id}/rotate-secret", http.StatusConflict, api.CodeTooManySecrets)

		clock.Advance(firstExpiry.Sub(clock.Now()))
		h.do("POST", path, tokenA, `{"gracePeriodSeconds": 3600}`).must(t, http.StatusOK)
		h.do("POST", path, tokenA, `{"gracePeriodSeconds": 0}`).must(t, http.StatusOK)
	})
}

// A tenant stops at the Registry's cap on webhooks: the next create is
// answered 409 too_many_webhooks, documented, naming the cap, and stores
// nothing. Another tenant is not held back, and a delete frees a place.
func TestWebhookLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{maxWebhooks: 3, noStart: true})
		var ids []string
		for range 3 {
			id, _ := h.create(tokenA)
			ids = append(ids, id)
		}
		r := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+h.recv.url()+`","events":["*"]}`).must(t, http.StatusConflict)
		code, field := r.errCode(t)
		msg := r.body["error"].(map[string]any)["message"].(string)
		if code != api.CodeTooManyWebhooks || field != "" || !strings.Contains(msg, "3 webhooks") {
			t.Errorf("a create at the cap: code %q, field %q, message %q; want %q, no field, and the cap", code, field, msg, api.CodeTooManyWebhooks)
		}
		if items := h.do("GET", "/v1/webhooks", tokenA, "").must(t, http.StatusOK).items(t); len(items) != 3 {
			t.Errorf("after a refused create the tenant has %d webhooks, want 3", len(items))
		}
		checkDocumented(t, h, "POST", "/v1/webhooks", http.StatusConflict, api.CodeTooManyWebhooks)

		h.create(tokenB)
		h.do("DELETE", "/v1/webhooks/"+ids[0], tokenA, "").must(t, http.StatusOK)
		h.create(tokenA)
	})
}

// Custom headers are stored and sent, but credential-like values are never
// shown back.
func TestHeadersRedacted(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	r := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+h.recv.url()+`","events":["*"],"headers":{"X-Team":"core","Authorization":"Bearer s3cr3t-value"}}`).must(t, http.StatusCreated)
	d := r.data(t)
	h.recv.addSecret(d["secret"].(string))
	want := map[string]any{"X-Team": "core", "Authorization": "[redacted]"}
	if diff := cmp.Diff(want, d["headers"]); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	id := d["id"].(string)
	tr := h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK)
	if got := h.recv.next(); got.header.Get("Authorization") != "Bearer s3cr3t-value" || got.header.Get("X-Team") != "core" {
		t.Errorf("custom headers not sent: %v", got.header)
	}
	for _, raw := range [][]byte{r.raw, tr.raw, h.do("GET", "/v1/webhooks/"+id, tokenA, "").raw, h.do("GET", "/v1/webhooks", tokenA, "").raw} {
		noSecret(t, "answer", raw, "s3cr3t-value")
	}
	u := h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"headers":{}}`).must(t, http.StatusOK)
	if _, ok := u.data(t)["headers"]; ok {
		t.Errorf("headers {} did not remove them: %s", u.raw)
	}

	// A receiver's cookies are not shown in the delivery log either.
	cookie := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=c00kie-value")
		w.Header().Set("X-Request-Id", "rq-1")
	}))
	defer cookie.Close()
	h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"url":"`+cookie.URL+`"}`).must(t, http.StatusOK)
	tr = h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK)
	rh := tr.data(t)["response"].(map[string]any)["headers"].(map[string]any)
	if rh["Set-Cookie"] != "[redacted]" || rh["X-Request-Id"] != "rq-1" {
		t.Errorf("response headers: %v", rh)
	}
	noSecret(t, "delivery log", tr.raw, "c00kie-value")
}

// A password in a stored webhook URL (the Registry refuses one; an older
// store may hold it) is not shown by a read or a list, as the delivery log
// does not show it.
func TestURLPasswordNotShown(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	id := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+h.recv.url()+`","events":["*"]}`).must(t, http.StatusCreated).data(t)["id"].(string)
	withUser := strings.Replace(h.recv.url(), "://", "://ops:URLPASSWORD@", 1)
	if _, err := h.st.UpdateWebhook(context.Background(), id, func(w *store.Webhook) error {
		w.URL = withUser
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK)
	if u := got.data(t)["url"]; u != h.recv.url() {
		t.Errorf("url = %v, want %s", u, h.recv.url())
	}
	noSecret(t, "read", got.raw, "URLPASSWORD")
	noSecret(t, "list", h.do("GET", "/v1/webhooks", tokenA, "").must(t, http.StatusOK).raw, "URLPASSWORD")
}

// A webhook read and sent back keeps its credentials: a header whose value
// is the "[redacted]" a read shows keeps the stored value, matched by
// canonical name; the placeholder for a header the webhook does not store,
// or in a create, is refused.
func TestHeadersRedactedRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		r := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+h.recv.url()+`","events":["*"],"headers":{"X-Api-Key":"k3y-value","X-Env":"prod"}}`).must(t, http.StatusCreated)
		id := r.data(t)["id"].(string)
		h.recv.addSecret(r.data(t)["secret"].(string))
		stored := func() map[string]string {
			t.Helper()
			w, err := h.st.GetWebhook(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			return w.Headers
		}

		// GET, change X-Env, PUT the headers back.
		g := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t)
		headers := g["headers"].(map[string]any)
		if headers["X-Api-Key"] != "[redacted]" {
			t.Fatalf("read shows %v", headers)
		}
		headers["X-Env"] = "staging"
		body, _ := json.Marshal(map[string]any{"headers": headers})
		u := h.do("PUT", "/v1/webhooks/"+id, tokenA, string(body)).must(t, http.StatusOK)
		if diff := cmp.Diff(map[string]any{"X-Api-Key": "[redacted]", "X-Env": "staging"}, u.data(t)["headers"]); diff != "" {
			t.Errorf("update answer headers (-want +got):\n%s", diff)
		}
		noSecret(t, "update answer", u.raw, "k3y-value")
		if diff := cmp.Diff(map[string]string{"X-Api-Key": "k3y-value", "X-Env": "staging"}, stored()); diff != "" {
			t.Errorf("stored headers after the round trip (-want +got):\n%s", diff)
		}
		h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK)
		if got := h.recv.next(); got.header.Get("X-Api-Key") != "k3y-value" || got.header.Get("X-Env") != "staging" {
			t.Errorf("delivery sent X-Api-Key %q, X-Env %q", got.header.Get("X-Api-Key"), got.header.Get("X-Env"))
		}

		// The name matches in any case; headers left out are still removed.
		h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"headers":{"x-api-key":"[redacted]"}}`).must(t, http.StatusOK)
		if diff := cmp.Diff(map[string]string{"X-Api-Key": "k3y-value"}, stored()); diff != "" {
			t.Errorf("stored headers after a lowercase placeholder (-want +got):\n%s", diff)
		}

		// The placeholder with nothing stored behind it is refused, and
		// changes nothing.
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/v1/webhooks/" + id, `{"headers":{"X-Api-Key":"[redacted]","X-Token":"[redacted]"}}`},
			{"PUT", "/v1/webhooks/" + id, `{"description":"x","headers":{"Authorization":"[redacted]"}}`},
			{"POST", "/v1/webhooks", `{"url":"https://a.example","events":["*"],"headers":{"X-Api-Key":"[redacted]"}}`},
		} {
			res := h.do(c.method, c.path, tokenA, c.body).must(t, http.StatusBadRequest)
			if code, field := res.errCode(t); code != "validation_error" || field != "headers" {
				t.Errorf("%s %s: code %q field %q, want validation_error headers", c.method, c.body, code, field)
			}
		}
		if diff := cmp.Diff(map[string]string{"X-Api-Key": "k3y-value"}, stored()); diff != "" {
			t.Errorf("a refused update changed the headers (-want +got):\n%s", diff)
		}
		if n := len(h.do("GET", "/v1/webhooks", tokenA, "").must(t, http.StatusOK).items(t)); n != 1 {
			t.Errorf("%d webhooks after a refused create, want 1", n)
		}

		// Another tenant's webhook, placeholder or not, is not found; a real
		// value replaces the stored one.
		h.do("PUT", "/v1/webhooks/"+id, tokenB, `{"headers":{"X-Api-Key":"[redacted]"}}`).must(t, http.StatusNotFound)
		h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"headers":{"X-Api-Key":"n3w-value"}}`).must(t, http.StatusOK)
		if got := stored()["X-Api-Key"]; got != "n3w-value" {
			t.Errorf("a real value did not replace the stored one: %q", got)
		}
	})
}

// An update of any one field changes that field alone, as read back
// after it, on every store, and its answer is the webhook as a read then
// shows it.
func TestUpdateOneFieldLeavesTheRest(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		doc := loadDoc(t, h)
		u := h.recv.url()
		r := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+u+`","events":["workflow.completed","agent.*"],"description":"d",
			"headers":{"X-Env":"prod","Authorization":"Bearer s"},"maxAttempts":3,"rateLimit":2.5}`).must(t, http.StatusCreated)
		id := r.data(t)["id"].(string)
		cur := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t)
		for _, c := range []struct {
			body, field string
			want        any // nil: left out of the answer
		}{
			{`{"url":"` + u + `?v=2"}`, "url", u + "?v=2"},
			{`{"events":["user.login"]}`, "events", []any{"user.login"}},
			{`{"description":"other"}`, "description", "other"},
			{`{"active":false}`, "active", false},
			{`{"headers":{"X-Env":"dev","Authorization":"[redacted]"}}`, "headers", map[string]any{"X-Env": "dev", "Authorization": "[redacted]"}},
			{`{"maxAttempts":7}`, "maxAttempts", 7.0},
			{`{"rateLimit":9}`, "rateLimit", 9.0},
			{`{"active":true}`, "active", true},
			{`{"maxAttempts":0}`, "maxAttempts", nil},
			{`{"rateLimit":0}`, "rateLimit", nil},
			{`{"description":""}`, "description", ""},
			{`{"headers":{}}`, "headers", nil},
		} {
			r := h.do("PUT", "/v1/webhooks/"+id, tokenA, c.body)
			doc.check(t, "PUT", "/v1/webhooks/{id}", r)
			got := r.must(t, http.StatusOK).data(t)
			want := maps.Clone(cur)
			want[c.field] = c.want
			if c.want == nil {
				delete(want, c.field)
			}
			want["updatedAt"] = got["updatedAt"]
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("PUT %s (-want +got):\n%s", c.body, diff)
			}
			if diff := cmp.Diff(got, h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t)); diff != "" {
				t.Errorf("PUT %s, then GET (-put +get):\n%s", c.body, diff)
			}
			cur = got
		}
		if w, err := h.st.GetWebhook(t.Context(), id); err != nil || len(w.Headers) != 0 {
			t.Errorf("stored headers after {\"headers\":{}}: %v, %v", w, err)
		}
	})
}

// A webhook's retry budget and rate limit are set at creation, shown when
// set, changed or reset by an update, and refused out of bounds.
func TestWebhookRetriesAndRateLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{})
		r := h.do("POST", "/v1/webhooks", tokenA, `{
			"url": "https://example.com/hook", "events": ["workflow.completed"],
			"maxAttempts": 3, "rateLimit": 2.5
		}`).must(t, http.StatusCreated)
		d := r.data(t)
		id, _ := d["id"].(string)
		if d["maxAttempts"] != 3.0 || d["rateLimit"] != 2.5 {
			t.Errorf("create answer: maxAttempts %v, rateLimit %v; want 3 and 2.5", d["maxAttempts"], d["rateLimit"])
		}
		stored, err := h.st.GetWebhook(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if stored.MaxAttempts != 3 || stored.RateLimit != 2.5 {
			t.Errorf("stored: maxAttempts %d, rateLimit %g", stored.MaxAttempts, stored.RateLimit)
		}
		if g := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t); g["maxAttempts"] != 3.0 || g["rateLimit"] != 2.5 {
			t.Errorf("read: %v", g)
		}

		// 0 goes back to the defaults, which are not shown; what is left
		// out stays.
		u := h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"maxAttempts": 0}`).must(t, http.StatusOK).data(t)
		if _, ok := u["maxAttempts"]; ok || u["rateLimit"] != 2.5 {
			t.Errorf("after maxAttempts 0: %v", u)
		}
		u = h.do("PUT", "/v1/webhooks/"+id, tokenA, `{"rateLimit": 0, "maxAttempts": 10}`).must(t, http.StatusOK).data(t)
		if _, ok := u["rateLimit"]; ok || u["maxAttempts"] != 10.0 {
			t.Errorf("after rateLimit 0: %v", u)
		}

		for _, c := range []struct{ method, path, body, code, field string }{
			{"POST", "/v1/webhooks", `{"url": "https://example.com/a", "events": ["*"], "maxAttempts": 101}`, "validation_error", "maxAttempts"},
			{"POST", "/v1/webhooks", `{"url": "https://example.com/a", "events": ["*"], "maxAttempts": -1}`, "validation_error", "maxAttempts"},
			{"POST", "/v1/webhooks", `{"url": "https://example.com/a", "events": ["*"], "rateLimit": 1e-9}`, "validation_error", "rateLimit"},
			{"POST", "/v1/webhooks", `{"url": "https://example.com/a", "events": ["*"], "rateLimit": -2}`, "validation_error", "rateLimit"},
			{"PUT", "/v1/webhooks/" + id, `{"rateLimit": 1e9}`, "validation_error", "rateLimit"},
			{"PUT", "/v1/webhooks/" + id, `{"maxAttempts": 2.5}`, "validation_error", "maxAttempts"},
			{"PUT", "/v1/webhooks/" + id, `{"maxAttempts": "3"}`, "validation_error", "maxAttempts"},
		} {
			res := h.do(c.method, c.path, tokenA, c.body).must(t, http.StatusBadRequest)
			if code, field := res.errCode(t); code != c.code || field != c.field {
				t.Errorf("%s %s: code %q field %q, want %q %q", c.method, c.body, code, field, c.code, c.field)
			}
		}
		if g := h.do("GET", "/v1/webhooks/"+id, tokenA, "").must(t, http.StatusOK).data(t); g["maxAttempts"] != 10.0 {
			t.Errorf("a refused update changed the webhook: %v", g)
		}
	})
}

// A password in the request URL of an attempt logged by another writer
// (an older version, a migration) is not shown by the delivery log, as
// the dashboard's delivery page does not show it.
func TestAttemptURLPasswordNotShown(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	id := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+h.recv.url()+`","events":["*"]}`).must(t, http.StatusCreated).data(t)["id"].(string)
	ctx := context.Background()
	wh, err := h.st.GetWebhook(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d := &store.Delivery{
		ID: "del_urlpassword", WebhookID: id, EventID: "evt_urlpassword", EventType: "workflow.completed",
		Tenant: wh.Tenant, Body: []byte(`{}`), NextAttemptAt: now,
	}
	if _, err := h.st.Enqueue(ctx, []*store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.Claim(ctx, store.ClaimParams{Now: now, Limit: 1, Lease: time.Minute, Owner: "older"}); err != nil {
		t.Fatal(err)
	}
	withUser := strings.Replace(h.recv.url(), "://", "://ops:URLPASSWORD@", 1)
	if err := h.st.Complete(ctx, store.CompleteParams{DeliveryID: d.ID, Owner: "older", Status: store.StatusSuccess, Now: now,
		Attempt: &store.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: now, RequestURL: withUser, ResponseStatus: 200}}); err != nil {
		t.Fatal(err)
	}
	got := h.do("GET", "/v1/webhooks/"+id+"/deliveries/"+d.ID, tokenA, "").must(t, http.StatusOK)
	noSecret(t, "delivery log", got.raw, "URLPASSWORD")
}
