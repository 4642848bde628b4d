package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/testlog"
)

// The curl commands of the guide's "Register Webhook", "Test Webhook",
// "Managing Webhooks" and "Debug Webhook Deliveries" sections, verbatim.
const (
	guideRegister = `curl -X POST https://api.noa-server.io/v1/webhooks \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "url": "https://your-server.com/webhooks/noa-server",
    "events": [
      "workflow.completed",
      "workflow.failed",
      "agent.status.changed"
    ],
    "description": "Production webhook for workflow monitoring",
    "active": true
  }'`
	guideTest = `curl -X POST https://api.noa-server.io/v1/webhooks/{webhookId}/test \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN"`
	guideList = `curl -X GET https://api.noa-server.io/v1/webhooks \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN"`
	guideUpdate = `curl -X PUT https://api.noa-server.io/v1/webhooks/{webhookId} \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "events": ["workflow.completed", "workflow.failed"],
    "active": true
  }'`
	guideDelete = `curl -X DELETE https://api.noa-server.io/v1/webhooks/{webhookId} \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN"`
	guideDeliveries = `curl -X GET https://api.noa-server.io/v1/webhooks/{webhookId}/deliveries \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN"`
	guideDelivery = `curl -X GET https://api.noa-server.io/v1/webhooks/{webhookId}/deliveries/{deliveryId} \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN"`
)

const (
	tokenAcme  = "acme-dev-token"
	tokenOther = "globex-dev-token"
)

// sender is a running examples/sender.
type sender struct {
	base string
	stop func() error
}

// startSender runs the command in-process on a free port with args added
// to -addr and -db.
func startSender(t *testing.T, db string, args ...string) *sender {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"-addr", "127.0.0.1:0", "-db", db}, args...), pw)
		pw.CloseWithError(err)
		done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
		io.Copy(io.Discard, pr)
	}()
	var base string
	select {
	case base = <-addr:
	case err := <-done:
		cancel()
		t.Fatalf("sender exited: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("sender did not start")
	}
	var once sync.Once
	var stopErr error
	s := &sender{base: base, stop: func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = errors.New("sender did not stop")
			}
		})
		return stopErr
	}}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("sender: %v", err)
		}
	})
	return s
}

// guideReceiver is the guide's Express endpoint: POST /webhooks/noa-server,
// signature checked, 200 OK.
type guideReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    chan delivered
}

type delivered struct {
	header http.Header
	body   []byte
	err    error
}

func newGuideReceiver(t *testing.T) *guideReceiver {
	rc := &guideReceiver{got: make(chan delivered, 64)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/noa-server", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		rc.mu.Lock()
		secret := rc.secret
		rc.mu.Unlock()
		if err == nil {
			err = verify(secret, body, r.Header)
		}
		rc.got <- delivered{header: r.Header.Clone(), body: body, err: err}
		if err != nil {
			http.Error(w, "Invalid signature", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "OK")
	})
	rc.srv = httptest.NewServer(mux)
	t.Cleanup(rc.srv.Close)
	return rc
}

// verify checks both schemes: the guide's X-Webhook-Signature over the raw
// body, and the Standard Webhooks headers.
func verify(secret string, body []byte, h http.Header) error {
	if secret == "" {
		return errors.New("no secret yet")
	}
	if got := h.Get("X-Webhook-Signature"); got != webhook.SignLegacy(secret, body) {
		return fmt.Errorf("X-Webhook-Signature %q does not match", got)
	}
	v, err := webhook.NewVerifier([]string{secret}, webhook.VerifyOptions{})
	if err != nil {
		return err
	}
	return v.Verify(body, h)
}

func (rc *guideReceiver) url() string { return rc.srv.URL + "/webhooks/noa-server" }

func (rc *guideReceiver) next(t *testing.T) delivered {
	t.Helper()
	select {
	case d := <-rc.got:
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("the receiver got nothing in 20 s")
		return delivered{}
	}
}

// doer sends one curl command line and returns the status and body.
type doer func(t *testing.T, cmd string) (int, []byte)

// viaHTTP parses the curl command and sends it with net/http.
func viaHTTP(t *testing.T, cmd string) (int, []byte) {
	t.Helper()
	method, url, hdr, body := parseCurl(t, cmd)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, raw
}

// viaCurl runs the command with the curl binary.
func viaCurl(t *testing.T, cmd string) (int, []byte) {
	t.Helper()
	args := shellWords(t, strings.ReplaceAll(cmd, "\\\n", " "))
	if args[0] != "curl" {
		t.Fatalf("not a curl command: %s", cmd)
	}
	args = append([]string{"-sS", "--noproxy", "*", "--max-time", "60", "-w", "\n%{http_code}"}, args[1:]...)
	out, err := exec.Command("curl", args...).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	i := bytes.LastIndexByte(out, '\n')
	status, err := strconv.Atoi(string(out[i+1:]))
	if err != nil {
		t.Fatalf("curl output %q", out)
	}
	return status, out[:i]
}

// parseCurl reads the -X, -H and -d options and the URL of a curl command.
func parseCurl(t *testing.T, cmd string) (method, url string, hdr http.Header, body string) {
	t.Helper()
	words := shellWords(t, strings.ReplaceAll(cmd, "\\\n", " "))
	if len(words) == 0 || words[0] != "curl" {
		t.Fatalf("not a curl command: %s", cmd)
	}
	hdr = http.Header{}
	method = ""
	for i := 1; i < len(words); i++ {
		switch w := words[i]; w {
		case "-X", "-H", "-d":
			if i+1 >= len(words) {
				t.Fatalf("%s without a value", w)
			}
			i++
			switch w {
			case "-X":
				method = words[i]
			case "-H":
				k, v, _ := strings.Cut(words[i], ":")
				hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			case "-d":
				body = words[i]
			}
		default:
			if strings.HasPrefix(w, "-") {
				t.Fatalf("option %s is not handled", w)
			}
			url = w
		}
	}
	if method == "" {
		method = http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
	}
	return method, url, hdr, body
}

// shellWords splits a command line the way sh does for plain words,
// single-quoted and double-quoted strings (no expansions).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated ' in %s", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				t.Fatalf("unterminated \" in %s", s)
			}
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// envelope is the API's answer.
type envelope struct {
	Success    bool            `json:"success"`
	Data       json.RawMessage `json:"data"`
	Pagination *struct {
		NextCursor string `json:"nextCursor"`
		HasMore    bool   `json:"hasMore"`
	} `json:"pagination"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func decode(t *testing.T, status, want int, raw []byte, data any) envelope {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, raw)
	}
	if status != want || env.Success != (want < 300) {
		t.Fatalf("status %d (want %d): %s", status, want, raw)
	}
	if data != nil {
		if err := json.Unmarshal(env.Data, data); err != nil {
			t.Fatalf("data: %v: %s", err, env.Data)
		}
	}
	return env
}

// guide substitutes this deployment into a command of the guide.
type guide struct {
	base, token, receiver, webhookID, deliveryID string
}

func (g guide) cmd(c string) string {
	return strings.NewReplacer(
		"https://api.noa-server.io", g.base,
		"YOUR_ACCESS_TOKEN", g.token,
		"https://your-server.com/webhooks/noa-server", g.receiver,
		"{webhookId}", g.webhookID,
		"{deliveryId}", g.deliveryID,
	).Replace(c)
}

type webhookJSON struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
	Secret      string   `json:"secret"`
	Active      bool     `json:"active"`
	CreatedAt   string   `json:"createdAt"`
}

type deliveryJSON struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhookId"`
	EventID   string `json:"eventId"`
	Event     string `json:"event"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	Request   struct {
		URL     string            `json:"url"`
		Method  string            `json:"method"`
		Headers map[string]string `json:"headers"`
		Body    map[string]any    `json:"body"`
	} `json:"request"`
	Response struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
		Duration   *int   `json:"duration"`
	} `json:"response"`
	Timestamp  string `json:"timestamp"`
	AttemptLog []any  `json:"attemptLog"`
}

// replayGuide runs every curl of the guide against a sender, in the order a
// user meets them, and checks each answer and what the receiver got.
func replayGuide(t *testing.T, do doer, base string, rc *guideReceiver) {
	g := guide{base: base, token: tokenAcme, receiver: rc.url()}

	// 2. Register Webhook.
	var wh webhookJSON
	status, raw := do(t, g.cmd(guideRegister))
	decode(t, status, http.StatusCreated, raw, &wh)
	if !strings.HasPrefix(wh.ID, "wh_") || !strings.HasPrefix(wh.Secret, "whsec_") || !wh.Active || wh.URL != rc.url() ||
		strings.Join(wh.Events, ",") != "workflow.completed,workflow.failed,agent.status.changed" || wh.CreatedAt == "" {
		t.Fatalf("register answer: %s", raw)
	}
	rc.mu.Lock()
	rc.secret = wh.Secret
	rc.mu.Unlock()
	g.webhookID = wh.ID

	// 3. Test Webhook: the receiver gets a signed webhook.test now.
	var test deliveryJSON
	status, raw = do(t, g.cmd(guideTest))
	decode(t, status, http.StatusOK, raw, &test)
	got := rc.next(t)
	if got.err != nil {
		t.Fatalf("the test event does not verify: %v", got.err)
	}
	if test.Status != "success" || test.Event != "webhook.test" || test.Response.StatusCode != 200 || test.Response.Body != "OK" {
		t.Errorf("test answer: %s", raw)
	}
	if bytes.Contains(raw, []byte(wh.Secret)) {
		t.Error("the test answer shows the secret")
	}
	g.deliveryID = test.ID

	// Managing Webhooks: list.
	var list []webhookJSON
	status, raw = do(t, g.cmd(guideList))
	env := decode(t, status, http.StatusOK, raw, &list)
	if len(list) != 1 || list[0].ID != wh.ID || list[0].Secret != "" || env.Pagination == nil {
		t.Errorf("list: %s", raw)
	}
	// Another tenant sees nothing.
	status, raw = do(t, guide{base: base, token: tokenOther}.cmd(guideList))
	if decode(t, status, http.StatusOK, raw, &list); len(list) != 0 {
		t.Errorf("another tenant lists: %s", raw)
	}
	// And gets 404 for this webhook.
	status, raw = do(t, guide{base: base, token: tokenOther, webhookID: wh.ID, deliveryID: test.ID}.cmd(guideDelivery))
	decode(t, status, http.StatusNotFound, raw, nil)

	// Update: the events change, the description stays.
	var up webhookJSON
	status, raw = do(t, g.cmd(guideUpdate))
	decode(t, status, http.StatusOK, raw, &up)
	if strings.Join(up.Events, ",") != "workflow.completed,workflow.failed" || !up.Active ||
		up.Description != "Production webhook for workflow monitoring" || up.Secret != "" {
		t.Errorf("update: %s", raw)
	}

	// View Webhook Deliveries.
	var ds []deliveryJSON
	status, raw = do(t, g.cmd(guideDeliveries))
	decode(t, status, http.StatusOK, raw, &ds)
	if len(ds) != 1 || ds[0].ID != test.ID || ds[0].Status != "success" || ds[0].Attempts != 1 {
		t.Errorf("deliveries: %s", raw)
	}

	// Debug Webhook Deliveries: the guide's fields.
	var d deliveryJSON
	status, raw = do(t, g.cmd(guideDelivery))
	decode(t, status, http.StatusOK, raw, &d)
	if d.ID != test.ID || d.WebhookID != wh.ID || d.EventID != got.header.Get("Webhook-Id") || d.Status != "success" || d.Attempts != 1 ||
		d.Request.URL != rc.url() || d.Request.Method != "POST" || d.Request.Headers["X-Webhook-Signature"] != got.header.Get("X-Webhook-Signature") ||
		d.Request.Body["event"] != "webhook.test" || d.Request.Body["webhookId"] != wh.ID ||
		d.Response.StatusCode != 200 || d.Response.Body != "OK" || d.Response.Duration == nil || d.Timestamp == "" || len(d.AttemptLog) != 1 {
		t.Errorf("delivery detail: %s", raw)
	}
	if bytes.Contains(raw, []byte(wh.Secret)) {
		t.Error("the delivery detail shows the secret")
	}

	// An event of the host (POST /v1/events) reaches the receiver in the
	// guide's payload shape.
	emit := `curl -X POST https://api.noa-server.io/v1/events -H "Authorization: Bearer YOUR_ACCESS_TOKEN" -H "Content-Type: application/json" ` +
		`-d '{"event":"workflow.completed","requestId":"req_12345","data":{"workflowId":"wf_789","executionId":"exec_abc","name":"Data Processing Pipeline","status":"success","duration":45000}}'`
	status, raw = do(t, g.cmd(emit))
	var er struct {
		EventID     string   `json:"eventId"`
		DeliveryIDs []string `json:"deliveryIds"`
	}
	decode(t, status, http.StatusAccepted, raw, &er)
	got = rc.next(t)
	if got.err != nil {
		t.Fatalf("the event does not verify: %v", got.err)
	}
	want := `{"id":"` + er.EventID + `","event":"workflow.completed","timestamp":"`
	tail := `","webhookId":"` + wh.ID + `","data":{"workflowId":"wf_789","executionId":"exec_abc","name":"Data Processing Pipeline","status":"success","duration":45000},"metadata":{"apiVersion":"v1","requestId":"req_12345"}}`
	if len(er.DeliveryIDs) != 1 || !strings.HasPrefix(string(got.body), want) || !strings.HasSuffix(string(got.body), tail) {
		t.Errorf("event payload: %s (answer %s)", got.body, raw)
	}

	// Delete Webhook; then it is gone.
	status, raw = do(t, g.cmd(guideDelete))
	decode(t, status, http.StatusOK, raw, nil)
	status, raw = do(t, g.cmd(guideDeliveries))
	decode(t, status, http.StatusNotFound, raw, nil)
}

func TestGuideReplay(t *testing.T) {
	rc := newGuideReceiver(t)
	s := startSender(t, filepath.Join(t.TempDir(), "webhooks.db"),
		"-tokens", tokenAcme+":acme,"+tokenOther+":globex", "-allow-insecure", "-retry-initial", "100ms", "-events-api")
	t.Run("net/http", func(t *testing.T) { replayGuide(t, viaHTTP, s.base, rc) })
	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("no curl on this machine")
		}
		replayGuide(t, viaCurl, s.base, rc)
	})
	t.Run("replay-guide.sh", func(t *testing.T) {
		for _, tool := range []string{"bash", "curl", "jq"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skip("no " + tool + " on this machine")
			}
		}
		// The script cannot hand its secret to this receiver, so it gets one
		// that answers 200 without verifying; the subtests above verify.
		var hits atomic.Int32
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			io.WriteString(w, "OK")
		}))
		defer plain.Close()
		cmd := exec.Command("bash", "replay-guide.sh")
		cmd.Env = append(cmd.Environ(), "NO_PROXY=*", "no_proxy=*", "API="+s.base, "TOKEN="+tokenAcme, "RECEIVER_URL="+plain.URL+"/webhooks/noa-server")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("replay-guide.sh: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "all guide requests answered as documented") || hits.Load() != 1 {
			t.Errorf("replay-guide.sh (receiver hit %d times):\n%s", hits.Load(), out.String())
		}
	})
}

// Without -allow-insecure the SSRF guard stands: http:// URLs are refused
// at registration and loopback destinations at dial time.
func TestSecureByDefault(t *testing.T) {
	rc := newGuideReceiver(t)
	s := startSender(t, filepath.Join(t.TempDir(), "webhooks.db"), "-tokens", tokenAcme+":acme")
	g := guide{base: s.base, token: tokenAcme, receiver: rc.url()}
	status, raw := viaHTTP(t, g.cmd(guideRegister))
	env := decode(t, status, http.StatusBadRequest, raw, nil)
	if env.Error.Field != "url" {
		t.Errorf("http URL: %s", raw)
	}
	// An https URL to loopback registers, but the dialer refuses it.
	g.receiver = strings.Replace(rc.url(), "http://", "https://", 1)
	var wh webhookJSON
	status, raw = viaHTTP(t, g.cmd(guideRegister))
	decode(t, status, http.StatusCreated, raw, &wh)
	g.webhookID = wh.ID
	var d struct {
		Status   string `json:"status"`
		Response struct {
			ErrorClass string `json:"errorClass"`
		} `json:"response"`
	}
	status, raw = viaHTTP(t, g.cmd(guideTest))
	decode(t, status, http.StatusOK, raw, &d)
	if d.Response.ErrorClass != "blocked_destination" {
		t.Errorf("a loopback destination was not blocked: %s", raw)
	}
	select {
	case got := <-rc.got:
		t.Errorf("the receiver on loopback got a request: %s", got.body)
	default:
	}
	// /v1/events is off.
	status, raw = viaHTTP(t, g.cmd(`curl -X POST https://api.noa-server.io/v1/events -H "Authorization: Bearer YOUR_ACCESS_TOKEN" -H "Content-Type: application/json" -d '{"event":"workflow.completed"}'`))
	decode(t, status, http.StatusNotFound, raw, nil)
	// A wrong token is refused.
	status, raw = viaHTTP(t, guide{base: s.base, token: "nope"}.cmd(guideList))
	decode(t, status, http.StatusUnauthorized, raw, nil)
}

// Webhooks and deliveries survive a restart: they are in the bbolt file.
func TestPersistsAcrossRestart(t *testing.T) {
	rc := newGuideReceiver(t)
	db := filepath.Join(t.TempDir(), "webhooks.db")
	args := []string{"-tokens", tokenAcme + ":acme", "-allow-insecure"}
	s := startSender(t, db, args...)
	g := guide{base: s.base, token: tokenAcme, receiver: rc.url()}
	var wh webhookJSON
	status, raw := viaHTTP(t, g.cmd(guideRegister))
	decode(t, status, http.StatusCreated, raw, &wh)
	rc.mu.Lock()
	rc.secret = wh.Secret
	rc.mu.Unlock()
	g.webhookID = wh.ID
	status, raw = viaHTTP(t, g.cmd(guideTest))
	decode(t, status, http.StatusOK, raw, nil)
	rc.next(t)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	s = startSender(t, db, args...)
	g.base = s.base
	var ds []deliveryJSON
	status, raw = viaHTTP(t, g.cmd(guideDeliveries))
	decode(t, status, http.StatusOK, raw, &ds)
	if len(ds) != 1 || ds[0].Status != "success" {
		t.Errorf("after restart: %s", raw)
	}
}

func TestFlags(t *testing.T) {
	t.Setenv(tokensEnv, "")
	db := filepath.Join(t.TempDir(), "webhooks.db")
	for _, args := range [][]string{
		{},
		{"-tokens", ""},
		{"-tokens", "justatoken"},
		{"-tokens", "tok:acme justatoken:globex"},
		{"-tokens", "justatoken:acme,justatoken:globex"},
		{"-tokens", "tok:"},
		{"-tokens", ":tenant"},
		{"-tokens", "tok:acme", "-retry-initial", "0s"},
		{"-tokens", "tok:acme", "extra"},
		{"-nope"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0", "-db", db}, args...), &out)
		if err == nil {
			t.Errorf("%q: no error", args)
		}
		if strings.Contains(err.Error(), "justatoken") {
			t.Errorf("%q: the error shows the token: %v", args, err)
		}
	}
}

// SENDER_TOKENS stands in for -tokens, which keeps the tokens out of ps;
// -tokens, when given, wins.
func TestTokensFromEnvironment(t *testing.T) {
	t.Setenv(tokensEnv, tokenAcme+":acme")
	s := startSender(t, filepath.Join(t.TempDir(), "webhooks.db"))
	status, raw := viaHTTP(t, guide{base: s.base, token: tokenAcme}.cmd(guideList))
	decode(t, status, http.StatusOK, raw, nil)

	s = startSender(t, filepath.Join(t.TempDir(), "webhooks.db"), "-tokens", tokenOther+":globex")
	status, raw = viaHTTP(t, guide{base: s.base, token: tokenAcme}.cmd(guideList))
	decode(t, status, http.StatusUnauthorized, raw, nil)

	t.Setenv(tokensEnv, "justatoken")
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "webhooks.db")}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "$"+tokensEnv) || strings.Contains(err.Error(), "justatoken") {
		t.Errorf("a bad %s: %v", tokensEnv, err)
	}
}

func TestTokenTable(t *testing.T) {
	tt, err := parseTokens(" a1:acme , b2:globex,", "-tokens")
	if err != nil {
		t.Fatal(err)
	}
	for hdr, want := range map[string]string{
		"Bearer a1": "acme", "bearer b2": "globex", "Bearer a2": "", "Basic a1": "", "": "", "Bearer ": "", "a1": "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", hdr)
		got, err := tt.tenant(r)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("%q: %q, %v; want %q", hdr, got, err, want)
		}
	}
}

// A signal says at once that the sender is shutting down, before it
// waits (up to an attempt's timeout) for the requests and attempts in
// flight, and how to stop waiting.
func TestShutdownSaysSo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testlog.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "webhooks.db"), "-tokens", tokenAcme + ":acme"}, out)
	}()
	for !strings.Contains(out.String(), "listening on ") {
		select {
		case err := <-done:
			t.Fatalf("sender exited: %v\n%s", err, out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	logs := out.String()
	i, j := strings.Index(logs, "shutting down"), strings.Index(logs, "webhook dispatcher stopped")
	if i < 0 || j < i {
		t.Errorf("no shutdown message before the dispatcher stopped:\n%s", logs)
	}
	if !strings.Contains(logs, "second signal") {
		t.Errorf("the shutdown message does not say how to stop waiting:\n%s", logs)
	}
}

// A first signal shuts the sender down gracefully, which waits for the
// requests in flight; a second one ends the process at once.
func TestMainSecondSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "webhooks.db"))
	cmd.Env = append(os.Environ(), "SENDER_MAIN=1", tokensEnv+"="+tokenAcme+":acme")
	out := &testlog.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	out.WaitFor(t, "listening on http://")
	_, addr, _ := strings.Cut(out.String(), "listening on http://")
	addr, _, _ = strings.Cut(addr, "\n")

	// A request whose body never ends holds the graceful shutdown.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokenAcme + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server read the headers

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	out.WaitFor(t, "shutting down")
	select {
	case err := <-exited:
		t.Fatalf("exited (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("a second signal did not end the process:\n%s", out)
	}
}
