package webhook

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// The guide's example payloads, verbatim.
var guidePayloads = []struct {
	name string
	body string
	data func() any
}{
	{"workflow.completed", `{
  "id": "evt_123",
  "event": "workflow.completed",
  "timestamp": "2025-10-22T10:00:00Z",
  "webhookId": "wh_456",
  "data": {
    "workflowId": "wf_789",
    "executionId": "exec_abc",
    "name": "Data Processing Pipeline",
    "status": "success",
    "duration": 45000,
    "startedAt": "2025-10-22T09:59:15Z",
    "completedAt": "2025-10-22T10:00:00Z",
    "result": {
      "recordsProcessed": 1000,
      "outputFile": "/data/output.json"
    }
  }
}`, func() any { return new(WorkflowCompletedData) }},
	{"agent.status.changed", `{
  "id": "evt_124",
  "event": "agent.status.changed",
  "timestamp": "2025-10-22T10:00:00Z",
  "webhookId": "wh_456",
  "data": {
    "agentId": "ag_xyz",
    "name": "Backend Developer",
    "previousStatus": "idle",
    "currentStatus": "busy",
    "taskId": "task_123",
    "swarmId": "swarm_789"
  }
}`, func() any { return new(AgentStatusChangedData) }},
	{"agent.task.completed", `{
  "id": "evt_125",
  "event": "agent.task.completed",
  "timestamp": "2025-10-22T10:00:00Z",
  "webhookId": "wh_456",
  "data": {
    "agentId": "ag_xyz",
    "taskId": "task_123",
    "type": "code_generation",
    "status": "completed",
    "duration": 30000,
    "result": {
      "filesCreated": ["/src/api/users.ts", "/src/api/auth.ts"],
      "linesOfCode": 450
    }
  }
}`, func() any { return new(AgentTaskCompletedData) }},
}

func TestGuidePayloadsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range guidePayloads {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			var env struct {
				ID        string          `json:"id"`
				Event     string          `json:"event"`
				Timestamp time.Time       `json:"timestamp"`
				WebhookID string          `json:"webhookId"`
				Data      json.RawMessage `json:"data"`
			}
			dec := json.NewDecoder(strings.NewReader(p.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&env); err != nil {
				t.Fatal(err)
			}
			if !NewCatalog().Known(env.Event) {
				t.Errorf("event %q not in the catalog", env.Event)
			}
			data := p.data()
			dec = json.NewDecoder(strings.NewReader(string(env.Data)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(data); err != nil {
				t.Fatalf("data into %T: %v", data, err)
			}
			want, err := CanonicalJSON(env.Data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := CanonicalJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("re-marshalled data:\n %s\nwant\n %s", got, want)
			}
			// The whole envelope, rebuilt, equals the guide's (minus its
			// metadata, absent from the examples).
			body := appendBody(nil, env.ID, env.Event, env.Timestamp, env.WebhookID, got, "req_1")
			wantEnv, _ := CanonicalJSON(json.RawMessage(p.body))
			if !strings.HasPrefix(string(body), strings.TrimSuffix(string(wantEnv), "}")) {
				t.Errorf("envelope:\n %s\nwant prefix\n %s", body, wantEnv)
			}
		})
	}
}

func TestWorkflowCompletedDataTypes(t *testing.T) {
	t.Parallel()
	var d WorkflowCompletedData
	if err := json.Unmarshal([]byte(`{"duration":45000,"startedAt":"2025-10-22T09:59:15Z"}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Duration != 45000 || !d.StartedAt.Equal(time.Date(2025, 10, 22, 9, 59, 15, 0, time.UTC)) {
		t.Errorf("got %+v", d)
	}
}

// TestWorkflowCompletedDataTimes: the data's times are sent as the guide
// shows them, in UTC to the second, whatever the host's location, and a
// time the host left unset is not sent as year 1.
func TestWorkflowCompletedDataTimes(t *testing.T) {
	t.Parallel()
	plus2 := time.FixedZone("UTC+2", 2*60*60)
	d := WorkflowCompletedData{
		WorkflowID: "wf_789", Status: "success", Duration: 45000,
		StartedAt:   time.Date(2025, 10, 22, 11, 59, 15, 123456789, plus2),
		CompletedAt: time.Date(2025, 10, 22, 10, 0, 0, 0, time.UTC),
		Result:      json.RawMessage(`{"ok":true}`),
	}
	got, err := CanonicalJSON(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"workflowId":"wf_789","executionId":"","name":"","status":"success","duration":45000,` +
		`"startedAt":"2025-10-22T09:59:15Z","completedAt":"2025-10-22T10:00:00Z","result":{"ok":true}}`
	if string(got) != want {
		t.Errorf("data\n got %s\nwant %s", got, want)
	}

	got, err = CanonicalJSON(&WorkflowCompletedData{WorkflowID: "wf_1", Status: "completed"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"workflowId":"wf_1","executionId":"","name":"","status":"completed","duration":0}`; string(got) != want {
		t.Errorf("data without times\n got %s\nwant %s", got, want)
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	c := NewCatalog()
	if len(c.Types()) != 23 {
		t.Errorf("NewCatalog has %d types, want the guide's 22 + webhook.test", len(c.Types()))
	}
	if !c.Known(EventAgentStatusChanged) || c.Known("billing.invoice.paid") {
		t.Error("Known before Register")
	}
	if err := c.Register("billing.invoice.paid", "Invoice paid"); err != nil {
		t.Fatal(err)
	}
	if !c.Known("billing.invoice.paid") {
		t.Error("registered type not known")
	}
	for _, bad := range []string{"", "Billing.x", "a..b", ".a", "a.", "a b", "a.*", strings.Repeat("a", 129)} {
		if err := c.Register(bad, ""); !errors.Is(err, ErrUnknownEventType) {
			t.Errorf("Register(%q) = %v, want ErrUnknownEventType", bad, err)
		}
	}
	for p, ok := range map[string]bool{
		"*":                    true,
		"workflow.completed":   true,
		"agent.*":              true,
		"agent.task.*":         true,
		"billing.*":            true,
		"billing.invoice.*":    true,
		"swarm.coordination.*": true,
		"nope.*":               false,
		"agent*":               false,
		"agent.":               false,
		"*.completed":          false,
		"workflow.complete":    false,
		"":                     false,
		"agent.task":           false,
	} {
		err := c.CheckPattern(p)
		if ok && err != nil {
			t.Errorf("CheckPattern(%q) = %v, want nil", p, err)
		}
		if !ok && !errors.Is(err, ErrUnknownEventType) {
			t.Errorf("CheckPattern(%q) = %v, want ErrUnknownEventType", p, err)
		}
	}
	types := c.Types()
	for i := 1; i < len(types); i++ {
		if types[i-1].Name >= types[i].Name {
			t.Fatalf("Types not sorted: %q before %q", types[i-1].Name, types[i].Name)
		}
	}
}
