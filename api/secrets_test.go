package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/noa-server/webhook/internal/testlog"
	"github.com/noa-server/webhook/store"
)

// A webhook's signing secret appears in the answers of create and
// rotate-secret only, each showing its own new secret alone; credential
// headers are sent to the endpoint but shown as "[redacted]" by every
// answer and recorded so in every attempt; and the logs of the API and of
// the dispatcher hold none of them, through tests, rotations, events,
// failures, retries and refused requests.
func TestSecretsOnlyInCreateAndRotate(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) store.Store) {
		var logs testlog.Buffer
		h := newHarness(t, open, options{events: true, maxAttempts: 1,
			logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		creds := map[string]string{
			"Authorization":    "Bearer auth-s3cr3t",
			"X-Api-Key":        "api-k3y-s3cr3t",
			"X-Upstream-Token": "up-tok3n-s3cr3t",
		}
		var secrets []string
		// shown collects every answer but those of create and rotate.
		var shown []*response
		do := func(method, path, body string, status int) *response {
			t.Helper()
			r := h.do(method, path, tokenA, body).must(t, status)
			shown = append(shown, r)
			return r
		}
		// withSecret checks an answer of create or rotate-secret: it shows
		// a new secret, and no earlier one.
		withSecret := func(r *response) string {
			t.Helper()
			s, _ := r.data(t)["secret"].(string)
			if !strings.HasPrefix(s, "whsec_") {
				t.Fatalf("no secret in %s", r.raw)
			}
			noSecret(t, "create or rotate answer", r.raw, secrets...)
			for _, v := range creds {
				noSecret(t, "create or rotate answer", r.raw, v)
			}
			secrets = append(secrets, s)
			h.recv.addSecret(s)
			return s
		}

		c := h.do("POST", "/v1/webhooks", tokenA, `{"url":"`+h.recv.url()+`","events":["workflow.*"],"headers":{`+
			`"Authorization":"`+creds["Authorization"]+`","X-Api-Key":"`+creds["X-Api-Key"]+`",`+
			`"X-Upstream-Token":"`+creds["X-Upstream-Token"]+`","X-Team":"core"}}`).must(t, http.StatusCreated)
		withSecret(c)
		id := c.data(t)["id"].(string)

		do("GET", "/v1/webhooks/"+id, "", http.StatusOK)
		do("GET", "/v1/webhooks", "", http.StatusOK)
		do("POST", "/v1/webhooks/"+id+"/test", "", http.StatusOK)
		if got := h.recv.next(); got.err != nil || got.header.Get("X-Api-Key") != creds["X-Api-Key"] {
			t.Fatalf("the test event: %v, headers %v", got.err, got.header)
		}
		withSecret(h.do("POST", "/v1/webhooks/"+id+"/rotate-secret", tokenA, `{"gracePeriodSeconds":3600}`).must(t, http.StatusOK))
		do("POST", "/v1/webhooks/"+id+"/test", "", http.StatusOK)
		h.recv.next()
		withSecret(h.do("POST", "/v1/webhooks/"+id+"/rotate-secret", tokenA, `{"gracePeriodSeconds":0}`).must(t, http.StatusOK))

		ok := h.emit(tokenA, "workflow.completed", `{"n":1}`)[0]
		h.waitStatus(id, ok, "success")
		h.recv.status.Store(http.StatusInternalServerError)
		failed := h.emit(tokenA, "workflow.failed", `{"n":2}`)[0]
		h.waitStatus(id, failed, "failed")
		h.recv.status.Store(http.StatusOK)
		do("POST", "/v1/webhooks/"+id+"/deliveries/"+failed+"/retry", "", http.StatusOK)
		ds := do("GET", "/v1/webhooks/"+id+"/deliveries", "", http.StatusOK).items(t)
		for _, d := range ds {
			do("GET", "/v1/webhooks/"+id+"/deliveries/"+d["id"].(string), "", http.StatusOK)
		}
		// Sent back as a read shows them, the credentials are kept.
		do("PUT", "/v1/webhooks/"+id, `{"headers":{"Authorization":"[redacted]","X-Api-Key":"[redacted]","X-Upstream-Token":"[redacted]","X-Team":"ops"}}`, http.StatusOK)
		do("POST", "/v1/webhooks/"+id+"/test", "", http.StatusOK)
		if got := h.recv.next(); got.header.Get("Authorization") != creds["Authorization"] {
			t.Errorf("the kept credential is not sent: %v", got.header)
		}
		// Refused requests.
		do("POST", "/v1/webhooks", `{"url":"`+h.recv.url()+`","events":["*"],"headers":{"Authorization":"[redacted]"}}`, http.StatusBadRequest)
		do("PUT", "/v1/webhooks/"+id, `{"headers":{"X-Api-Key":"`+creds["X-Api-Key"]+`\u0001"}}`, http.StatusBadRequest)
		do("PUT", "/v1/webhooks/"+id, `{"headers":{"X-Api-Key":"`+creds["X-Api-Key"]+`"},"secret":"`+secrets[0]+`"}`, http.StatusBadRequest)
		do("GET", "/v1/webhooks/"+id+"/deliveries?cursor="+secrets[0], "", http.StatusBadRequest)

		for _, r := range shown {
			noSecret(t, "answer", r.raw, secrets...)
			for _, v := range creds {
				noSecret(t, "answer", r.raw, v)
			}
		}
		// The attempts as stored: the dispatcher records credential headers
		// as "[redacted]", whatever view reads them.
		attempts := 0
		for _, d := range ds {
			as, err := h.st.ListAttempts(context.Background(), d["id"].(string))
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range as {
				attempts++
				for name, v := range creds {
					if got := a.RequestHeaders.Get(name); got != "[redacted]" {
						t.Errorf("attempt %d of %s records %s as %q", a.Number, d["id"], name, got)
					}
					for _, vals := range a.RequestHeaders {
						noSecret(t, "a stored attempt's headers", []byte(strings.Join(vals, "\n")), v)
					}
				}
			}
		}
		if attempts < 4 {
			t.Errorf("%d attempts stored; the test made more", attempts)
		}
		if logs.String() == "" {
			t.Fatal("nothing was logged: the check of the logs would prove nothing")
		}
		noSecret(t, "the logs", []byte(logs.String()), secrets...)
		for _, v := range creds {
			noSecret(t, "the logs", []byte(logs.String()), v)
		}
	})
}
