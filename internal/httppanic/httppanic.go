// Package httppanic logs the panics that the module's HTTP handlers (the
// management API, the dashboard) recover while serving a request.
package httppanic

import (
	"log/slog"
	"net/http"
	"runtime/debug"
)

// Log handles v, a panic recovered while r was served: a deliberate abort
// (http.ErrAbortHandler) panics again, for net/http to end the request
// quietly; any other is logged as msg at Error, with r's method and path
// and the stack, and the caller answers 500.
func Log(log *slog.Logger, r *http.Request, msg string, v any) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	log.LogAttrs(r.Context(), slog.LevelError, msg,
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
}
