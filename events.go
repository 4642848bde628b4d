package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// The event types of the guide.
const (
	// EventWorkflowCreated is the "workflow.created" event: new workflow
	// created.
	EventWorkflowCreated = "workflow.created"
	// EventWorkflowUpdated is the "workflow.updated" event: workflow modified.
	EventWorkflowUpdated = "workflow.updated"
	// EventWorkflowDeleted is the "workflow.deleted" event: workflow deleted.
	EventWorkflowDeleted = "workflow.deleted"
	// EventWorkflowExecuted is the "workflow.executed" event: workflow
	// execution started.
	EventWorkflowExecuted = "workflow.executed"
	// EventWorkflowCompleted is the "workflow.completed" event: workflow
	// execution finished.
	EventWorkflowCompleted = "workflow.completed"
	// EventWorkflowFailed is the "workflow.failed" event: workflow execution
	// failed.
	EventWorkflowFailed = "workflow.failed"

	// EventAgentSpawned is the "agent.spawned" event: new agent created.
	EventAgentSpawned = "agent.spawned"
	// EventAgentStatusChanged is the "agent.status.changed" event: agent status
	// updated.
	EventAgentStatusChanged = "agent.status.changed"
	// EventAgentTaskAssigned is the "agent.task.assigned" event: task assigned
	// to agent.
	EventAgentTaskAssigned = "agent.task.assigned"
	// EventAgentTaskCompleted is the "agent.task.completed" event: agent
	// completed task.
	EventAgentTaskCompleted = "agent.task.completed"
	// EventAgentTerminated is the "agent.terminated" event: agent shut down.
	EventAgentTerminated = "agent.terminated"

	// EventSwarmCreated is the "swarm.created" event: new swarm created.
	EventSwarmCreated = "swarm.created"
	// EventSwarmCoordinationStarted is the "swarm.coordination.started" event:
	// coordination began.
	EventSwarmCoordinationStarted = "swarm.coordination.started"
	// EventSwarmCoordinationCompleted is the "swarm.coordination.completed"
	// event: coordination finished.
	EventSwarmCoordinationCompleted = "swarm.coordination.completed"
	// EventSwarmTerminated is the "swarm.terminated" event: swarm shut down.
	EventSwarmTerminated = "swarm.terminated"

	// EventUserRegistered is the "user.registered" event: new user account.
	EventUserRegistered = "user.registered"
	// EventUserLogin is the "user.login" event: user logged in.
	EventUserLogin = "user.login"
	// EventUserLogout is the "user.logout" event: user logged out.
	EventUserLogout = "user.logout"
	// EventUserUpdated is the "user.updated" event: user profile updated.
	EventUserUpdated = "user.updated"
	// EventUserDeleted is the "user.deleted" event: user account deleted.
	EventUserDeleted = "user.deleted"

	// EventSystemAlert is the "system.alert" event: system alert triggered.
	EventSystemAlert = "system.alert"
	// EventSystemMaintenance is the "system.maintenance" event: maintenance
	// scheduled.
	EventSystemMaintenance = "system.maintenance"

	// EventWebhookTest is sent by the test endpoint of the management API.
	EventWebhookTest = "webhook.test"
)

// ErrUnknownEventType reports an event type, or a subscription pattern, that
// the catalog does not know.
var ErrUnknownEventType = errors.New("webhook: unknown event type")

// EventType describes one event type of a Catalog.
type EventType struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Catalog is the set of event types a host emits. It is safe for concurrent
// use.
type Catalog struct {
	mu    sync.RWMutex
	types map[string]EventType
}

// NewCatalog returns a catalog holding the guide's event types and
// webhook.test.
func NewCatalog() *Catalog {
	c := &Catalog{types: make(map[string]EventType, len(guideEvents))}
	for _, t := range guideEvents {
		c.types[t.Name] = t
	}
	return c
}

var guideEvents = []EventType{
	{EventWorkflowCreated, "New workflow created"},
	{EventWorkflowUpdated, "Workflow modified"},
	{EventWorkflowDeleted, "Workflow deleted"},
	{EventWorkflowExecuted, "Workflow execution started"},
	{EventWorkflowCompleted, "Workflow execution finished"},
	{EventWorkflowFailed, "Workflow execution failed"},
	{EventAgentSpawned, "New agent created"},
	{EventAgentStatusChanged, "Agent status updated"},
	{EventAgentTaskAssigned, "Task assigned to agent"},
	{EventAgentTaskCompleted, "Agent completed task"},
	{EventAgentTerminated, "Agent shut down"},
	{EventSwarmCreated, "New swarm created"},
	{EventSwarmCoordinationStarted, "Coordination began"},
	{EventSwarmCoordinationCompleted, "Coordination finished"},
	{EventSwarmTerminated, "Swarm shut down"},
	{EventUserRegistered, "New user account"},
	{EventUserLogin, "User logged in"},
	{EventUserLogout, "User logged out"},
	{EventUserUpdated, "User profile updated"},
	{EventUserDeleted, "User account deleted"},
	{EventSystemAlert, "System alert triggered"},
	{EventSystemMaintenance, "Maintenance scheduled"},
	{EventWebhookTest, "Test event sent on request"},
}

// Register adds an event type of the host's own. Names are dot-separated
// lowercase words (letters, digits, '_' and '-'), at most 128 bytes; an
// invalid name returns an error matching ErrUnknownEventType. Registering a
// name again replaces its description.
func (c *Catalog) Register(name, description string) error {
	if err := validEventName(name); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types[name] = EventType{Name: name, Description: description}
	return nil
}

// Known reports whether eventType is in the catalog.
func (c *Catalog) Known(eventType string) bool {
	c.mu.RLock()
	_, ok := c.types[eventType]
	c.mu.RUnlock()
	return ok
}

// Types returns the catalog's event types sorted by name.
func (c *Catalog) Types() []EventType {
	c.mu.RLock()
	out := make([]EventType, 0, len(c.types))
	for _, t := range c.types {
		out = append(out, t)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CheckPattern reports whether p is a valid subscription: a known event type,
// "*", or "prefix.*" where some known type starts with "prefix.".
func (c *Catalog) CheckPattern(p string) error {
	if p == "*" || c.Known(p) {
		return nil
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasSuffix(prefix, ".") {
		c.mu.RLock()
		defer c.mu.RUnlock()
		for name := range c.types {
			if strings.HasPrefix(name, prefix) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %q", ErrUnknownEventType, p)
}

func validEventName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: %q: must be 1 to 128 bytes", ErrUnknownEventType, name)
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return fmt.Errorf("%w: %q: empty segment", ErrUnknownEventType, name)
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return fmt.Errorf("%w: %q: only lowercase letters, digits, '_' and '-' between dots", ErrUnknownEventType, name)
			}
		}
	}
	return nil
}

// WorkflowCompletedData is the data of a workflow.completed event, with the
// guide's field names.
type WorkflowCompletedData struct {
	WorkflowID  string `json:"workflowId"`
	ExecutionID string `json:"executionId"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	// Duration is the run time in milliseconds.
	Duration    int64     `json:"duration"`
	StartedAt   time.Time `json:"startedAt"`
	CompletedAt time.Time `json:"completedAt"`
	// Result is the workflow's output as JSON text, sent as is (after
	// canonicalisation).
	Result json.RawMessage `json:"result,omitempty"`
}

// MarshalJSON writes d with the guide's field names in the guide's order.
// StartedAt and CompletedAt are written as the payload's timestamp is, RFC
// 3339 in UTC to the second ("2025-10-22T09:59:15Z"), whatever their
// location, and are left out when zero. A time outside the years 0 to
// 9999 in UTC, which RFC 3339 cannot write, is an error.
func (d WorkflowCompletedData) MarshalJSON() ([]byte, error) {
	for _, t := range []time.Time{d.StartedAt, d.CompletedAt} {
		if y := t.UTC().Year(); !t.IsZero() && (y < 0 || y > 9999) {
			return nil, fmt.Errorf("webhook: workflow time in the year %d, outside 0 to 9999", y)
		}
	}
	return json.Marshal(struct {
		WorkflowID  string          `json:"workflowId"`
		ExecutionID string          `json:"executionId"`
		Name        string          `json:"name"`
		Status      string          `json:"status"`
		Duration    int64           `json:"duration"`
		StartedAt   string          `json:"startedAt,omitempty"`
		CompletedAt string          `json:"completedAt,omitempty"`
		Result      json.RawMessage `json:"result,omitempty"`
	}{d.WorkflowID, d.ExecutionID, d.Name, d.Status, d.Duration, utcStamp(d.StartedAt), utcStamp(d.CompletedAt), d.Result})
}

// utcStamp formats t as RFC 3339 in UTC to the second; "" for the zero time.
func utcStamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// AgentStatusChangedData is the data of an agent.status.changed event, with
// the guide's field names.
type AgentStatusChangedData struct {
	AgentID        string `json:"agentId"`
	Name           string `json:"name"`
	PreviousStatus string `json:"previousStatus"`
	CurrentStatus  string `json:"currentStatus"`
	TaskID         string `json:"taskId,omitempty"`
	SwarmID        string `json:"swarmId,omitempty"`
}

// AgentTaskCompletedData is the data of an agent.task.completed event, with
// the guide's field names.
type AgentTaskCompletedData struct {
	AgentID string `json:"agentId"`
	TaskID  string `json:"taskId"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	// Duration is the task's run time in milliseconds.
	Duration int64 `json:"duration"`
	// Result is the task's output as JSON text, sent as is (after
	// canonicalisation).
	Result json.RawMessage `json:"result,omitempty"`
}
