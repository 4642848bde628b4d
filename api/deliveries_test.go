package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/store"
)

// emit sends one event through POST /v1/events and returns its delivery ids.
func (h *harness) emit(token, event, data string) []string {
	h.t.Helper()
	r := h.do("POST", "/v1/events", token, `{"event":"`+event+`","data":`+data+`}`).must(h.t, http.StatusAccepted)
	var ids []string
	for _, v := range r.data(h.t)["deliveryIds"].([]any) {
		ids = append(ids, v.(string))
	}
	return ids
}

// waitStatus waits until the delivery has the status.
func (h *harness) waitStatus(webhookID, deliveryID, status string) map[string]any {
	h.t.Helper()
	var d map[string]any
	eventually(h.t, deliveryID+" to be "+status, func() bool {
		d = h.do("GET", "/v1/webhooks/"+webhookID+"/deliveries/"+deliveryID, tokenA, "").must(h.t, http.StatusOK).data(h.t)
		return d["status"] == status
	})
	return d
}

func TestDeliveriesListAndFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{events: true, maxAttempts: 1})
		id, secret := h.create(tokenA, "workflow.*")
		var okIDs, failedIDs []string
		for range 3 {
			okIDs = append(okIDs, h.emit(tokenA, "workflow.completed", `{"n":1}`)...)
		}
		for _, d := range okIDs {
			h.waitStatus(id, d, "success")
		}
		h.recv.status.Store(http.StatusServiceUnavailable)
		for range 2 {
			failedIDs = append(failedIDs, h.emit(tokenA, "workflow.failed", `{"n":2}`)...)
		}
		for _, d := range failedIDs {
			h.waitStatus(id, d, "failed")
		}
		all := append(append([]string(nil), okIDs...), failedIDs...)
		slices.Reverse(all) // newest first

		list := func(q string) (ids []string, items []map[string]any) {
			r := h.do("GET", "/v1/webhooks/"+id+"/deliveries"+q, tokenA, "").must(t, http.StatusOK)
			noSecret(t, "deliveries", r.raw, secret)
			for _, it := range r.items(t) {
				ids = append(ids, it["id"].(string))
			}
			return ids, r.items(t)
		}
		got, items := list("")
		if diff := cmp.Diff(all, got); diff != "" {
			t.Errorf("all deliveries, newest first (-want +got):\n%s", diff)
		}
		first := items[len(items)-1]
		want := map[string]any{
			"id": okIDs[0], "webhookId": id, "eventId": first["eventId"], "event": "workflow.completed",
			"status": "success", "attempts": 1.0, "lastStatusCode": 200.0,
			"createdAt": first["createdAt"], "updatedAt": first["updatedAt"],
		}
		if diff := cmp.Diff(want, first); diff != "" {
			t.Errorf("list item (-want +got):\n%s", diff)
		}
		if !strings.HasPrefix(first["eventId"].(string), "evt_") {
			t.Errorf("eventId %v", first["eventId"])
		}
		if got, _ := list("?status=failed"); !cmp.Equal(got, []string{failedIDs[1], failedIDs[0]}) {
			t.Errorf("status=failed: %v", got)
		}
		if got, _ := list("?status=success&event=workflow.completed"); len(got) != 3 {
			t.Errorf("status=success&event=workflow.completed: %v", got)
		}
		if got, _ := list("?event=workflow.failed&status=success"); len(got) != 0 {
			t.Errorf("no delivery is both: %v", got)
		}
		if got, _ := list("?status=pending"); len(got) != 0 {
			t.Errorf("pending: %v", got)
		}
		// Pages of two walk every delivery once.
		var paged []string
		cursor := ""
		for range 10 {
			r := h.do("GET", "/v1/webhooks/"+id+"/deliveries?limit=2&cursor="+cursor, tokenA, "").must(t, http.StatusOK)
			for _, it := range r.items(t) {
				paged = append(paged, it["id"].(string))
			}
			p := r.body["pagination"].(map[string]any)
			if p["hasMore"] == false {
				break
			}
			cursor = p["nextCursor"].(string)
		}
		if diff := cmp.Diff(all, paged); diff != "" {
			t.Errorf("paged (-want +got):\n%s", diff)
		}
		for q, field := range map[string]string{
			"?status=done": "status", "?status=SUCCESS": "status", "?event=Workflow": "event",
			"?event=a..b": "event", "?limit=0": "limit", "?limit=1001": "limit", "?cursor=%00garbage": "cursor",
			"?event=" + strings.Repeat("a", 200): "event", "?cursor=" + strings.Repeat("c", 2000): "cursor",
		} {
			r := h.do("GET", "/v1/webhooks/"+id+"/deliveries"+q, tokenA, "").must(t, http.StatusBadRequest)
			if code, f := r.errCode(t); code != "invalid_parameter" || f != field {
				t.Errorf("%s: code %q field %q, want invalid_parameter %q", shortQ(q), code, f, field)
			}
		}
	})
}

// Every filter, alone and combined, paged with any page size, walks
// exactly the deliveries one page of 200 lists for it, newest first, with
// no empty page after hasMore, on every store.
func TestDeliveryFiltersPaged(t *testing.T) {
	concurrencyStores(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{events: true})
		doc := loadDoc(t, h)
		id, _ := h.create(tokenA, "*")
		h.emitN(id, 5) // workflow.completed, success
		h.recv.status.Store(http.StatusServiceUnavailable)
		for range 3 { // webhook.test, pending (retried in an hour)
			h.do("POST", "/v1/webhooks/"+id+"/test", tokenA, "").must(t, http.StatusOK)
		}
		path := "/v1/webhooks/" + id + "/deliveries"
		for q, n := range map[string]int{
			"": 8, "status=success": 5, "status=pending": 3, "status=failed": 0,
			"event=workflow.completed": 5, "event=webhook.test": 3, "event=user.login": 0,
			"status=pending&event=webhook.test": 3, "status=success&event=webhook.test": 0,
			"event=workflow.completed&status=success": 5,
		} {
			all := h.do("GET", path+"?limit=200&"+q, tokenA, "")
			doc.check(t, "GET", "/v1/webhooks/{id}/deliveries", all)
			var want []string
			for _, it := range all.must(t, http.StatusOK).items(t) {
				want = append(want, it["id"].(string))
			}
			if len(want) != n {
				t.Errorf("%s: %d deliveries, want %d", q, len(want), n)
			}
			if !slices.IsSortedFunc(want, func(a, b string) int { return strings.Compare(b, a) }) {
				t.Errorf("%s: not newest first: %v", q, want)
			}
			for _, limit := range []int{1, 2, 3, 5} {
				var got []string
				cursor := ""
				for page := 0; ; page++ {
					u := path + "?limit=" + strconv.Itoa(limit) + "&" + q
					if cursor != "" {
						u += "&cursor=" + cursor
					}
					r := h.do("GET", u, tokenA, "").must(t, http.StatusOK)
					items := r.items(t)
					if len(items) == 0 && page > 0 {
						t.Errorf("%s, limit %d: page %d is empty after hasMore", q, limit, page)
					}
					for _, it := range items {
						got = append(got, it["id"].(string))
					}
					p := r.body["pagination"].(map[string]any)
					if cursor, _ = p["nextCursor"].(string); cursor == "" {
						break
					}
				}
				if !slices.Equal(want, got) {
					t.Errorf("%s, limit %d: paged %v, want %v", q, limit, got, want)
				}
			}
		}
	})
}

func shortQ(q string) string {
	if len(q) > 40 {
		return q[:40] + "…"
	}
	return q
}

// The guide's "Debug Webhook Deliveries" shape, with every attempt, and a
// retry by hand of a failed delivery.
func TestDeliveryDetailAndRetry(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{events: true, maxAttempts: 1})
		id, secret := h.create(tokenA, "workflow.completed")
		h.recv.status.Store(http.StatusInternalServerError)
		del := h.emit(tokenA, "workflow.completed", `{"workflowId":"wf_789","status":"success"}`)[0]
		sent := h.recv.next()
		d := h.waitStatus(id, del, "failed")
		if d["attempts"] != 1.0 || d["response"].(map[string]any)["statusCode"] != 500.0 || d["response"].(map[string]any)["body"] != "Processing failed" {
			t.Errorf("failed delivery: %v", d)
		}
		if _, ok := d["nextAttemptAt"]; ok {
			t.Errorf("a failed delivery shows nextAttemptAt: %v", d)
		}

		// The route takes no fields (the OpenAPI document says so): one
		// is refused before anything is sent.
		r := h.do("POST", "/v1/webhooks/"+id+"/deliveries/"+del+"/retry", tokenA, `{"force":true}`).must(t, http.StatusBadRequest)
		if code, _ := r.errCode(t); code != "unknown_field" {
			t.Errorf("retry with a field: %s", r.raw)
		}

		// Retry by hand (with the empty object the document allows): the
		// endpoint is fixed, the new attempt succeeds.
		h.recv.status.Store(http.StatusOK)
		r = h.do("POST", "/v1/webhooks/"+id+"/deliveries/"+del+"/retry", tokenA, `{}`).must(t, http.StatusOK)
		again := h.recv.next()
		if string(again.body) != string(sent.body) {
			t.Errorf("the retry sent other bytes:\n%s\n%s", sent.body, again.body)
		}
		if again.err != nil || again.header.Get("X-Webhook-Attempt") != "2" {
			t.Errorf("retry attempt: verify %v, X-Webhook-Attempt %q", again.err, again.header.Get("X-Webhook-Attempt"))
		}
		d = r.data(t)
		var payload map[string]any
		if err := json.Unmarshal(sent.body, &payload); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]any{"id": del, "webhookId": id, "eventId": payload["id"], "status": "success", "attempts": 2.0, "event": "workflow.completed"} {
			if d[k] != v {
				t.Errorf("%s = %v, want %v", k, d[k], v)
			}
		}
		req := d["request"].(map[string]any)
		if diff := cmp.Diff(payload, req["body"]); diff != "" {
			t.Errorf("request.body (-sent +shown):\n%s", diff)
		}
		hdr := req["headers"].(map[string]any)
		if hdr["X-Webhook-Signature"] == nil || hdr["Webhook-Signature"] == nil || hdr["X-Webhook-Attempt"] != "2" || hdr["Content-Type"] != "application/json" {
			t.Errorf("request.headers: %v", hdr)
		}
		resp := d["response"].(map[string]any)
		if resp["statusCode"] != 200.0 || resp["body"] != "OK" {
			t.Errorf("response: %v", resp)
		}
		if _, ok := resp["duration"].(float64); !ok {
			t.Errorf("response.duration is not a number of milliseconds: %v", resp["duration"])
		}
		ts, err := time.Parse(time.RFC3339, d["timestamp"].(string))
		if err != nil || time.Since(ts) > time.Minute {
			t.Errorf("timestamp %v", d["timestamp"])
		}
		log := d["attemptLog"].([]any)
		if len(log) != 2 {
			t.Fatalf("attemptLog has %d attempts, want 2", len(log))
		}
		a1, a2 := log[0].(map[string]any), log[1].(map[string]any)
		if a1["number"] != 1.0 || a1["response"].(map[string]any)["statusCode"] != 500.0 || a1["response"].(map[string]any)["errorClass"] != "http_status" {
			t.Errorf("attempt 1: %v", a1)
		}
		if a2["number"] != 2.0 || a2["response"].(map[string]any)["statusCode"] != 200.0 {
			t.Errorf("attempt 2: %v", a2)
		}
		noSecret(t, "delivery detail", r.raw, secret)
		// GET shows the same.
		g := h.do("GET", "/v1/webhooks/"+id+"/deliveries/"+del, tokenA, "").must(t, http.StatusOK)
		if diff := cmp.Diff(d, g.data(t)); diff != "" {
			t.Errorf("GET after retry differs from the retry's answer (-retry +get):\n%s", diff)
		}

		// A pending delivery is not retried by hand: it is queued already.
		h.recv.status.Store(http.StatusInternalServerError)
		h2 := newHarness(t, open, options{events: true, maxAttempts: 5})
		id2, _ := h2.create(tokenA, "workflow.completed")
		h2.recv.status.Store(http.StatusInternalServerError)
		del2 := h2.emit(tokenA, "workflow.completed", `{}`)[0]
		h2.recv.next()
		eventually(t, "the first attempt to be recorded", func() bool {
			d := h2.do("GET", "/v1/webhooks/"+id2+"/deliveries/"+del2, tokenA, "").must(t, http.StatusOK).data(t)
			return d["attempts"] == 1.0
		})
		r = h2.do("POST", "/v1/webhooks/"+id2+"/deliveries/"+del2+"/retry", tokenA, "").must(t, http.StatusConflict)
		if code, _ := r.errCode(t); code != "conflict" {
			t.Errorf("retry of a pending delivery: %s", r.raw)
		}
	})
}

// A retry by hand whose delivery is failed with its webhook before its
// attempt (another delivery met 410 Gone meanwhile) is answered at once
// with 409 webhook_inactive, not held until the send timeout.
func TestRetryWhenTheWebhookIsDisabledMeanwhile(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{maxAttempts: 1, perWebhook: 1, sendTimeout: 15 * time.Second})
		var n atomic.Int32
		inFlight, gone := make(chan struct{}), make(chan struct{})
		release := sync.OnceFunc(func() { close(gone) })
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			close(inFlight)
			select {
			case <-gone:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusGone)
		}))
		defer srv.Close()
		defer release()
		id := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+srv.URL+`","events":["workflow.completed"]}`).must(t, http.StatusCreated).data(t)["id"].(string)
		ctx := context.Background()
		emit := func() string {
			res, err := h.disp.Emit(ctx, webhook.Event{Type: "workflow.completed", Tenant: tenantA})
			if err != nil || len(res.DeliveryIDs) != 1 {
				t.Fatalf("Emit = %+v, %v", res, err)
			}
			return res.DeliveryIDs[0]
		}
		del := emit()
		h.waitStatus(id, del, "failed")
		// Another delivery holds the webhook's only slot until it meets
		// 410 Gone, once the retry has put the first back in the queue.
		emit()
		<-inFlight
		go func() {
			defer release()
			for {
				d, err := h.st.GetDelivery(ctx, del)
				if err != nil || d.Status == store.StatusPending {
					return
				}
				select {
				case <-t.Context().Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		r := h.do("POST", "/v1/webhooks/"+id+"/deliveries/"+del+"/retry", tokenA, "").must(t, http.StatusConflict)
		if code, _ := r.errCode(t); code != "webhook_inactive" {
			t.Errorf("retry of a delivery failed with its webhook: %s", r.raw)
		}
		if n := n.Load(); n != 2 {
			t.Errorf("receiver got %d requests, want 2", n)
		}
	})
}

func TestEmitEvent(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		h := newHarness(t, open, options{events: true})
		idA, _ := h.create(tokenA, "workflow.completed")
		h.create(tokenA, "agent.*") // not subscribed
		idB, _ := h.create(tokenB, "workflow.completed")
		data := `{"workflowId":"wf_789","executionId":"exec_abc","name":"Data Processing Pipeline","status":"success","duration":45000,"result":{"recordsProcessed":1000,"outputFile":"/data/output.json"}}`
		r := h.do("POST", "/v1/events", tokenA, `{"event":"workflow.completed","data":`+data+`,"requestId":"req_12345","id":"evt_123"}`).must(t, http.StatusAccepted)
		d := r.data(t)
		if d["eventId"] != "evt_123" || len(d["deliveryIds"].([]any)) != 1 || d["webhookIds"].([]any)[0] != idA {
			t.Fatalf("emit answer: %s", r.raw)
		}
		got := h.recv.next()
		if got.err != nil {
			t.Fatalf("verify: %v", got.err)
		}
		want := `{"id":"evt_123","event":"workflow.completed","timestamp":"` // then the time
		if !strings.HasPrefix(string(got.body), want) ||
			!strings.HasSuffix(string(got.body), `,"webhookId":"`+idA+`","data":`+data+`,"metadata":{"apiVersion":"v1","requestId":"req_12345"}}`) {
			t.Errorf("payload is not the guide's: %s", got.body)
		}
		// The deliveries are stored when the answer comes.
		del := d["deliveryIds"].([]any)[0].(string)
		h.do("GET", "/v1/webhooks/"+idA+"/deliveries/"+del, tokenA, "").must(t, http.StatusOK)
		// Emitting the same id again delivers nothing new.
		r = h.do("POST", "/v1/events", tokenA, `{"event":"workflow.completed","data":`+data+`,"id":"evt_123"}`).must(t, http.StatusAccepted)
		if r.data(t)["deliveryIds"].([]any)[0] != del {
			t.Errorf("a repeated event id made a new delivery: %s", r.raw)
		}
		// B's webhook got nothing of A's.
		if n := len(h.do("GET", "/v1/webhooks/"+idB+"/deliveries", tokenB, "").must(t, http.StatusOK).items(t)); n != 0 {
			t.Errorf("tenant B's webhook got %d deliveries of A's event", n)
		}
		// No match: no deliveries, an empty array.
		r = h.do("POST", "/v1/events", tokenA, `{"event":"system.alert"}`).must(t, http.StatusAccepted)
		if !strings.Contains(string(r.raw), `"deliveryIds":[]`) {
			t.Errorf("no match: %s", r.raw)
		}
		for body, field := range map[string]string{
			`{"event":"no.such.event"}`:                                                     "event",
			`{"data":{}}`:                                                                   "event",
			`{"event":"workflow.completed","data":[1,2]}`:                                   "data",
			`{"event":"workflow.completed","data":"x"}`:                                     "data",
			`{"event":"workflow.completed","id":"a b"}`:                                     "id",
			`{"event":"workflow.completed","requestId":1}`:                                  "requestId",
			`{"event":"workflow.completed","extra":1}`:                                      "extra",
			`{"event":"workflow.completed","requestId":"` + strings.Repeat("r", 300) + `"}`: "requestId",
		} {
			r := h.do("POST", "/v1/events", tokenA, body).must(t, http.StatusBadRequest)
			if _, f := r.errCode(t); f != field {
				t.Errorf("%.60s: field %q, want %q (%s)", body, f, field, r.raw)
			}
		}
		big := `{"event":"workflow.completed","data":{"x":"` + strings.Repeat("x", webhook.DefaultMaxPayloadBytes) + `"}}`
		r = h.do("POST", "/v1/events", tokenA, big).must(t, http.StatusRequestEntityTooLarge)
		if code, f := r.errCode(t); code != "payload_too_large" || f != "data" {
			t.Errorf("data over the event cap: %s %s", code, f)
		}
	})
}

func TestEventsOffByDefault(t *testing.T) {
	h := newHarness(t, stores[0].open, options{})
	r := h.do("POST", "/v1/events", tokenA, `{"event":"workflow.completed"}`).must(t, http.StatusNotFound)
	if code, _ := r.errCode(t); code != "not_found" {
		t.Errorf("code %q", code)
	}
}
