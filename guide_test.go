package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/noa-server/webhook/store/boltstore"
)

// TestCatalogIsTheGuides checks the catalog against the guide's "Available
// Events" tables, name for name and description for description, so that
// a type renamed or dropped by mistake cannot hide behind a count.
func TestCatalogIsTheGuides(t *testing.T) {
	t.Parallel()
	// The guide's five tables, in its order, as "event: description".
	guide := []string{
		"workflow.created: New workflow created",
		"workflow.updated: Workflow modified",
		"workflow.deleted: Workflow deleted",
		"workflow.executed: Workflow execution started",
		"workflow.completed: Workflow execution finished",
		"workflow.failed: Workflow execution failed",
		"agent.spawned: New agent created",
		"agent.status.changed: Agent status updated",
		"agent.task.assigned: Task assigned to agent",
		"agent.task.completed: Agent completed task",
		"agent.terminated: Agent shut down",
		"swarm.created: New swarm created",
		"swarm.coordination.started: Coordination began",
		"swarm.coordination.completed: Coordination finished",
		"swarm.terminated: Swarm shut down",
		"user.registered: New user account",
		"user.login: User logged in",
		"user.logout: User logged out",
		"user.updated: User profile updated",
		"user.deleted: User account deleted",
		"system.alert: System alert triggered",
		"system.maintenance: Maintenance scheduled",
	}
	var got []string
	for _, et := range NewCatalog().Types() {
		if et.Name == EventWebhookTest {
			continue // the library's own, for the API's test route
		}
		got = append(got, et.Name+": "+et.Description)
	}
	want := append([]string(nil), guide...)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("catalog differs from the guide's tables (-guide +catalog):\n%s", diff)
	}
}

// The guide's two JavaScript verifiers, verbatim: Setting Up Webhooks step
// 1's verifySignature and the Security section's verifyWebhookSignature.
// Each is handed the parsed body, as express.json() hands it req.body.
const guideVerifiersJS = `
const crypto = require('crypto');

function verifySignature(payload, signature) {
  const secret = process.env.WEBHOOK_SECRET;
  const hmac = crypto.createHmac('sha256', secret);
  const digest = hmac.update(JSON.stringify(payload)).digest('hex');
  return signature === digest;
}

function verifyWebhookSignature(payload, signature, secret) {
  const hmac = crypto.createHmac('sha256', secret);
  const digest = 'sha256=' + hmac.update(JSON.stringify(payload)).digest('hex');

  // Use timing-safe comparison
  return crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(digest));
}

const fs = require('fs');
const body = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
const signature = process.env.SIGNATURE;
process.stdout.write(JSON.stringify({
  setup: verifySignature(body, signature),
  security: verifyWebhookSignature(body, signature, process.env.WEBHOOK_SECRET),
}));
`

// TestGuideJavaScriptVerifiers sends a real delivery from a Dispatcher on
// boltstore to an httptest receiver and runs the guide's own JavaScript
// verifiers on what arrived, under node. The Security section's
// verifyWebhookSignature, which re-encodes the parsed body with
// JSON.stringify, accepts X-Webhook-Signature even for data Go would
// encode differently; the first sample's verifySignature, which compares
// the bare hex digest, never does, as the README warns.
func TestGuideJavaScriptVerifiers(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found in PATH: skipping the guide's JavaScript verifiers")
	}
	type received struct {
		body []byte
		sig  string
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		select {
		case got <- received{body, r.Header.Get(HeaderSignature)}:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	st, err := boltstore.Open(filepath.Join(t.TempDir(), "webhooks.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	reg := NewRegistry(st, RegistryOptions{AllowHTTP: true})
	wh, err := reg.Create(ctx, "acme", WebhookInput{URL: srv.URL, Events: []string{EventWorkflowCompleted}})
	if err != nil {
		t.Fatal(err)
	}
	d := startDispatcher(t, st, testConfig())
	// The guide's workflow.completed data, with a result that Go's
	// encoding/json would write otherwise than JSON.stringify does
	// (escaped '<', '>' and '&', a float's exponent, a non-ASCII rune).
	if _, err := d.Emit(ctx, Event{
		Type:   EventWorkflowCompleted,
		Tenant: "acme",
		Data: WorkflowCompletedData{
			WorkflowID: "wf_789", ExecutionID: "exec_abc", Name: "Data <Processing> & Pipeline",
			Status: "success", Duration: 45000,
			StartedAt:   time.Date(2025, 10, 22, 9, 59, 15, 0, time.UTC),
			CompletedAt: time.Date(2025, 10, 22, 10, 0, 0, 0, time.UTC),
			Result:      json.RawMessage(`{"recordsProcessed": 1000, "outputFile": "/data/output.json", "ratio": 1.0E-7, "unit": "\u20ac"}`),
		},
	}); err != nil {
		t.Fatal(err)
	}
	var r received
	select {
	case r = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery arrived")
	}

	path := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", guideVerifiersJS, path)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+wh.Secrets[0].Value, "SIGNATURE="+r.sig)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var res struct{ Setup, Security bool }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if !res.Security {
		t.Errorf("the guide's verifyWebhookSignature refuses a delivery:\n body %s\n %s: %s", r.body, HeaderSignature, r.sig)
	}
	if res.Setup {
		t.Errorf("the guide's first verifySignature accepts %s: %s; the README says it never matches", HeaderSignature, r.sig)
	}
}
