package receiver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	webhook "github.com/noa-server/webhook"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Known answers of SIGNATURES.md §2.
const (
	secret1   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secret2   = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	guideBody = `{"id":"evt_01HZX3K9Q2W8V7T6R5M4N3B2A1","event":"order.created","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_123","data":{"orderId":"ord_42","amount":1999},"metadata":{"apiVersion":"2024-01-01","requestId":"req_abc123"}}`
	guideID   = "evt_01HZX3K9Q2W8V7T6R5M4N3B2A1"
	guideTS   = 1705314600
)

var guideTime = time.Unix(guideTS, 0)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// signedRequest builds a POST of body signed by the sender side with secrets
// at ts, with the given event id.
func signedRequest(t testing.TB, body string, id string, ts time.Time, secrets ...string) *http.Request {
	t.Helper()
	s, err := webhook.NewSigner(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/webhooks/noa-server", bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/json")
	s.Sign(r.Header, id, ts, []byte(body))
	return r
}

// postTo sends req, a request built for a handler, to the test server srv
// at /webhooks/noa-server, and returns the answer's status.
func postTo(t testing.TB, srv *httptest.Server, req *http.Request) int {
	t.Helper()
	req.RequestURI = ""
	req.URL, _ = req.URL.Parse(srv.URL + "/webhooks/noa-server")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// eventBody returns a guide-shaped body for id and type with data.
func eventBody(id, typ, data string) string {
	return `{"id":"` + id + `","event":"` + typ + `","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":` + data + `,"metadata":{"apiVersion":"v1","requestId":"req_1"}}`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
