package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	webhook "github.com/noa-server/webhook"
	"github.com/noa-server/webhook/internal/testlog"
	"github.com/noa-server/webhook/receiver"
)

// TestMain fails the package when a goroutine outlives its test. With
// RECEIVER_MAIN=1 the test binary is the program instead, for the tests
// that need a process of their own.
func TestMain(m *testing.M) {
	if os.Getenv("RECEIVER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func start(t *testing.T, args []string, env map[string]string) (string, *testlog.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logs := &testlog.Buffer{}
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] }, logs, ready)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run returned %v", err)
		}
	})
	select {
	case addr := <-ready:
		return "http://" + addr, logs
	case err := <-done:
		t.Fatalf("run failed: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server not ready")
	}
	return "", nil
}

func TestReceiverEndToEnd(t *testing.T) {
	for _, background := range []bool{false, true} {
		name := "sync"
		if background {
			name = "background"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"-addr", "127.0.0.1:0", "-allow", "127.0.0.0/8,::1", "-idempotency-db", filepath.Join(t.TempDir(), "idem.db")}
			if background {
				args = append(args, "-background")
			}
			base, logs := start(t, args, map[string]string{"WEBHOOK_SECRET": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD " + secret})
			signer, err := webhook.NewSigner(secret)
			if err != nil {
				t.Fatal(err)
			}
			body := `{"id":"evt_1","event":"workflow.completed","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":{"workflowId":"wf_42","status":"succeeded","duration":1200},"metadata":{"apiVersion":"v1","requestId":"req_1"}}`
			post := func(sign bool) int {
				req, _ := http.NewRequest("POST", base+"/webhooks/noa-server", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if sign {
					signer.Sign(req.Header, "evt_1", time.Now(), []byte(body))
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			want := 200
			if background {
				want = 202
			}
			if c := post(true); c != want {
				t.Fatalf("signed: %d", c)
			}
			if c := post(true); c != 200 {
				t.Fatalf("duplicate: %d", c)
			}
			if c := post(false); c != 401 {
				t.Fatalf("unsigned: %d", c)
			}
			logs.WaitFor(t, "workflow_id=wf_42") // the handler logged the event
			resp, err := http.Get(base + "/webhooks/metrics")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m map[string]float64
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("metrics %q: %v", raw, err)
			}
			if m["received"] != 3 || m["processed"] != 1 || m["duplicates"] != 1 || m["rejected"] != 1 {
				t.Fatalf("metrics = %s", raw)
			}
			if _, ok := m["successRate"]; !ok {
				t.Fatalf("metrics without successRate: %s", raw)
			}
			if strings.Contains(logs.String(), secret) {
				t.Fatal("a secret reached the log")
			}
		})
	}
}

// The program's error line names it once, whether the error is its own
// or the receiver package's.
func TestErrorLine(t *testing.T) {
	_, err := receiver.NewVerifier(receiver.VerifyOptions{})
	if err == nil {
		t.Fatal("a verifier without secrets")
	}
	for _, err := range []error{err, errors.New("WEBHOOK_SECRET is not set")} {
		if line := errorLine(err); !strings.HasPrefix(line, "receiver: ") || strings.Count(line, "receiver:") != 1 {
			t.Errorf("error line %q", line)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{}, "WEBHOOK_SECRET"},
		{[]string{"-allow", "nope"}, map[string]string{"WEBHOOK_SECRET": secret}, "invalid address"},
		{[]string{"-tolerance", "soon"}, map[string]string{"WEBHOOK_SECRET": secret}, "tolerance"},
		{nil, map[string]string{"WEBHOOK_SECRET": " \n "}, "WEBHOOK_SECRET"},
		{nil, map[string]string{"WEBHOOK_SECRET": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, "invalid secret"},
		{[]string{"extra"}, map[string]string{"WEBHOOK_SECRET": secret}, "unexpected"},
		{[]string{"-path", "webhooks"}, map[string]string{"WEBHOOK_SECRET": secret}, `-path "webhooks": does not start with /`},
		{[]string{"-path", "example.com/hooks"}, map[string]string{"WEBHOOK_SECRET": secret}, "-path"},
		{nil, map[string]string{"WEBHOOK_SECRET": secret, "WEBHOOK_METRICS_PATH": "/metrics/{"}, `-metrics-path "/metrics/{"`},
		{nil, map[string]string{"WEBHOOK_SECRET": secret, "WEBHOOK_BACKGROUND": "yes"}, `WEBHOOK_BACKGROUND: invalid boolean "yes"`},
		{nil, map[string]string{"WEBHOOK_SECRET": secret, "WEBHOOK_ALLOW_LEGACY": "on"}, `WEBHOOK_ALLOW_LEGACY: invalid boolean "on"`},
	}
	// A canceled context: a configuration wrongly accepted makes run return
	// nil at once instead of serving forever.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range cases {
		err := run(ctx, append(c.args, "-addr", "127.0.0.1:0"), func(k string) string { return c.env[k] }, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err = %v, want %q", c.args, c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

// -h names the one setting without a flag, the secret, which the program
// cannot start without.
func TestHelpNamesSecret(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"WEBHOOK_SECRET", "-addr", "-allow-legacy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %s:\n%s", want, out.String())
		}
	}
}

// Every flag the README lists changes what the program does, not only
// what it accepts.
func TestFlagsTakeEffect(t *testing.T) {
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_f","event":"user.login","timestamp":"2024-01-15T10:30:00Z","webhookId":"wh_1","data":{},"metadata":{"apiVersion":"v1","requestId":"req_1"}}`)
	// post sends body to base+path, signed at ts (both signatures), with
	// only the legacy header when legacy, and X-Forwarded-For when xff.
	post := func(base, path string, ts time.Time, legacy bool, xff string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		signer.Sign(req.Header, "evt_f", ts, body)
		if legacy {
			for _, h := range []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
				req.Header.Del(h)
			}
		}
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	env := map[string]string{"WEBHOOK_SECRET": secret}
	const path = "/webhooks/noa-server"
	local := []string{"-addr", "127.0.0.1:0", "-allow", "127.0.0.0/8,::1"}
	now, stale := time.Now(), time.Now().Add(-10*time.Minute)

	base, _ := start(t, local, env)
	for name, c := range map[string]struct{ got, want int }{
		"defaults: signed now":           {post(base, path, now, false, ""), 200},
		"defaults: 10 minutes old":       {post(base, path, stale, false, ""), 401},
		"defaults: legacy header only":   {post(base, path, now, true, ""), 401},
		"defaults: X-Forwarded-For only": {post(base, path, now, false, "198.51.100.7"), 200},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", name, c.got, c.want)
		}
	}

	base, _ = start(t, append(local, "-tolerance", "1h", "-allow-legacy", "-path", "/in", "-metrics-path", "/stats"), env)
	if got := post(base, "/in", stale, false, ""); got != 200 {
		t.Errorf("-tolerance 1h: 10 minutes old: %d, want 200", got)
	}
	if got := post(base, "/in", now, true, ""); got != 200 {
		t.Errorf("-allow-legacy: legacy header only: %d, want 200", got)
	}
	if got := post(base, path, now, false, ""); got != 404 && got != 405 {
		t.Errorf("-path /in: the default path answers %d", got)
	}
	if got := get(base + "/stats"); got != 200 {
		t.Errorf("-metrics-path /stats: %d", got)
	}

	base, _ = start(t, []string{"-addr", "127.0.0.1:0", "-allow", "198.51.100.0/24"}, env)
	if got := post(base, path, now, false, ""); got != 403 {
		t.Errorf("-allow 198.51.100.0/24: loopback client: %d, want 403", got)
	}
	base, _ = start(t, []string{"-addr", "127.0.0.1:0", "-allow", "198.51.100.0/24", "-trusted-proxies", "127.0.0.0/8,::1"}, env)
	if got := post(base, path, now, false, "198.51.100.7"); got != 200 {
		t.Errorf("-trusted-proxies loopback: X-Forwarded-For 198.51.100.7: %d, want 200", got)
	}
}

// A first signal stops the server gracefully, saying so, which waits for
// the requests in flight (up to 30 s); a second one ends the process at
// once instead of being swallowed.
func TestMainSecondSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "RECEIVER_MAIN=1", "WEBHOOK_SECRET="+secret, "WEBHOOK_ADDR=127.0.0.1:0")
	logs := &testlog.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logs.WaitFor(t, "webhook server running")
	_, addr, _ := strings.Cut(logs.String(), "addr=")
	addr, _, _ = strings.Cut(addr, " ")

	// A request whose body never ends holds the graceful shutdown.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /webhooks/noa-server HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server read the headers

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	logs.WaitFor(t, "shutting down")
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
		t.Fatalf("a second signal did not end the process:\n%s", logs)
	}
}
