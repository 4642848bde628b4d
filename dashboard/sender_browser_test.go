package dashboard_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// senderProcess is a running examples/sender binary.
type senderProcess struct {
	base string
	mu   sync.Mutex
	log  bytes.Buffer
}

// startSenderProcess builds examples/sender and runs it on a free loopback
// port with a fresh bbolt file, alice's and bob's tokens, loopback
// destinations allowed and fast retries. It is stopped with an interrupt
// when the test ends.
func startSenderProcess(t *testing.T) *senderProcess {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build examples/sender: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sender")
	build := exec.Command(goTool, "build", "-o", bin, "github.com/noa-server/webhook/examples/sender")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/sender: %v\n%s", err, out)
	}
	cmd := exec.Command(bin,
		"-addr", "127.0.0.1:0",
		"-db", filepath.Join(dir, "webhooks.db"),
		"-tokens", "alice-token:"+alice+",bob-token:"+bob,
		"-allow-insecure",
		"-retry-initial", "20ms",
		"-events-api",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start examples/sender: %v", err)
	}
	p := &senderProcess{}
	addr := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "listening on "); ok {
				select {
				case addr <- a:
				default:
				}
			}
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
		}
		io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() {
		<-drained
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("examples/sender exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("examples/sender did not stop within 30s of an interrupt")
		}
		if t.Failed() {
			t.Logf("examples/sender output:\n%s", p.output())
		}
	})
	select {
	case p.base = <-addr:
	case err := <-exited:
		t.Fatalf("examples/sender exited: %v\n%s", err, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("examples/sender did not start\n%s", p.output())
	}
	return p
}

func (p *senderProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// call sends a management API request with token and decodes data.
func (p *senderProcess) call(t *testing.T, token, method, path string, body any, data any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if data != nil && resp.StatusCode < 300 {
		env := struct{ Data any }{Data: data}
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// TestBrowserAgainstSender drives the dashboard of the examples/sender
// program, with webhooks registered through its management API and a
// receiver that verifies every signature.
func TestBrowserAgainstSender(t *testing.T) {
	ctx := newBrowser(t)
	p := startSenderProcess(t)
	if code := p.call(t, "alice-token", http.MethodGet, "/dashboard/", nil, nil); code != http.StatusOK {
		if os.Getenv("WEBHOOK_REQUIRE_BROWSER") != "" {
			t.Fatalf("examples/sender answers GET /dashboard/ with %d: it does not mount the dashboard", code)
		}
		t.Skipf("DASHBOARD BROWSER TEST SKIPPED: examples/sender answers GET /dashboard/ with %d; it does not mount the dashboard yet", code)
	}
	dir := filepath.Join(artifactsDir(t), "sender")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	rc := newReceiver(t, "")
	var created struct {
		ID     string `json:"id"`
		URL    string `json:"url"`
		Secret string `json:"secret"`
	}
	if code := p.call(t, "alice-token", http.MethodPost, "/v1/webhooks", map[string]any{
		"url": rc.srv.URL + "/webhooks/noa-server", "events": []string{"workflow.completed", "workflow.failed"},
		"description": "orders service",
	}, &created); code != http.StatusCreated || created.Secret == "" {
		t.Fatalf("POST /v1/webhooks = %d, %+v", code, created)
	}
	rc.setSecret(t, created.Secret)
	if code := p.call(t, "bob-token", http.MethodPost, "/v1/webhooks", map[string]any{
		"url": rc.srv.URL + "/bob-endpoint", "events": []string{"*"},
	}, nil); code != http.StatusCreated {
		t.Fatalf("POST /v1/webhooks as bob = %d", code)
	}
	// Some history for the chart.
	for range 5 {
		if code := p.call(t, "alice-token", http.MethodPost, "/v1/events", map[string]any{
			"event": "workflow.completed", "data": map[string]any{"workflowId": "wf_1", "status": "completed"},
		}, nil); code >= 300 {
			t.Fatalf("POST /v1/events = %d", code)
		}
	}

	driveDashboard(t, ctx, site{
		dashboard: p.base + "/dashboard/", token: "alice-token",
		webhookID: created.ID, webhookURL: created.URL, rc: rc, foreign: "/bob-endpoint",
	}, dir)
	if !t.Failed() {
		t.Log(browserRanMarker + " (examples/sender): screenshots in " + dir)
	}
}
