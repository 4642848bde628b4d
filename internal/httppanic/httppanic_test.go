package httppanic

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLog: a panic is logged with the request and the stack; a deliberate
// abort is not logged but panics again, for net/http.
func TestLog(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r := httptest.NewRequest("POST", "/dashboard/webhooks/wh_1/test", nil)

	Log(log, r, "dashboard: panic", "a bug")
	for _, want := range []string{"level=ERROR", `msg="dashboard: panic"`, "method=POST", "path=/dashboard/webhooks/wh_1/test", `panic="a bug"`, "httppanic.TestLog"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}

	logs.Reset()
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("Log of http.ErrAbortHandler panicked with %v, want it again", p)
			}
		}()
		Log(log, r, "dashboard: panic", http.ErrAbortHandler)
	}()
	if logs.Len() != 0 {
		t.Errorf("an abort was logged: %q", logs.String())
	}
}
