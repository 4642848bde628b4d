package receiver

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
)

// Health counts what happens to the deliveries passing through its
// middleware and serves the counts as JSON, as the guide's "Monitor Webhook
// Health" does. It is safe for concurrent use; its zero value is not usable,
// call [NewHealth].
type Health struct {
	received, processed, failed, duplicates, rejected atomic.Int64
	log                                               *slog.Logger
}

// HealthStats is a snapshot of a [Health]'s counters.
type HealthStats struct {
	// Received counts every request that reached the middleware.
	Received int64 `json:"received"`
	// Processed counts requests answered 2xx by the handler (for a Router in
	// background mode: events whose background processing succeeded).
	Processed int64 `json:"processed"`
	// Failed counts handler errors, panics and non-2xx answers not counted
	// elsewhere (for a background Router: events given up after the last
	// try).
	Failed int64 `json:"failed"`
	// Duplicates counts deliveries the idempotency middleware answered
	// without running the handler (finished or concurrent duplicates).
	Duplicates int64 `json:"duplicates"`
	// Rejected counts requests refused before the handler: bad or missing
	// signatures, stale timestamps, malformed headers, oversized bodies.
	Rejected int64 `json:"rejected"`
	// SuccessRate is Processed / Received, as in the guide; 0 when nothing
	// was received.
	SuccessRate float64 `json:"successRate"`
}

// NewHealth returns a Health with all counters at zero. logger receives one
// debug record per request with its outcome; nil discards.
func NewHealth(logger *slog.Logger) *Health {
	return &Health{log: loggerOr(logger)}
}

// Stats returns the current counters.
func (h *Health) Stats() HealthStats {
	s := HealthStats{
		Received:   h.received.Load(),
		Processed:  h.processed.Load(),
		Failed:     h.failed.Load(),
		Duplicates: h.duplicates.Load(),
		Rejected:   h.rejected.Load(),
	}
	if s.Received > 0 {
		s.SuccessRate = float64(s.Processed) / float64(s.Received)
	}
	return s
}

// Handler serves [Health.Stats] as a JSON object:
// {"received","processed","failed","duplicates","rejected","successRate"}.
func (h *Health) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(h.Stats())
	})
}

// Middleware counts the requests passing to next. Mount it outside Verify so
// refused requests are counted (IP allowlist → Health → Verify →
// Idempotency → Router). A panic in next is counted as failed and
// re-panicked; a runtime.Goexit in next is counted as failed.
func (h *Health) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.received.Add(1)
		o := &outcome{h: h}
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), outcomeKey, o))
		// returned stays false when next panics or calls runtime.Goexit;
		// either way no answer is sent.
		returned := false
		defer func() {
			p := recover()
			if !returned {
				o.set(outcomeFailed)
			}
			o.finish(r.Context(), sw.code())
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(sw, r)
		returned = true
	})
}

type outcomeKind int32

const (
	outcomeNone outcomeKind = iota
	outcomeProcessed
	outcomeFailed
	outcomeDuplicate
	outcomeRejected
	outcomeDeferred // a background Router reports later
)

// outcome is what the inner middlewares tell Health about one request. The
// first mark wins.
type outcome struct {
	h    *Health
	kind atomic.Int32
}

func (o *outcome) set(k outcomeKind) bool {
	return o.kind.CompareAndSwap(int32(outcomeNone), int32(k))
}

func (o *outcome) finish(ctx context.Context, status int) {
	k := outcomeKind(o.kind.Load())
	if k == outcomeNone {
		switch {
		case status >= 200 && status < 300:
			k = outcomeProcessed
		case status == http.StatusConflict:
			k = outcomeDuplicate
		case status == http.StatusBadRequest, status == http.StatusUnauthorized,
			status == http.StatusForbidden, status == http.StatusRequestEntityTooLarge:
			k = outcomeRejected
		default:
			k = outcomeFailed
		}
		o.kind.Store(int32(k))
	}
	o.h.count(k)
	o.h.log.LogAttrs(ctx, slog.LevelDebug, "receiver: webhook handled",
		slog.Int("status", status), slog.String("outcome", k.String()))
}

func (h *Health) count(k outcomeKind) {
	switch k {
	case outcomeProcessed:
		h.processed.Add(1)
	case outcomeFailed:
		h.failed.Add(1)
	case outcomeDuplicate:
		h.duplicates.Add(1)
	case outcomeRejected:
		h.rejected.Add(1)
	}
}

func (k outcomeKind) String() string {
	switch k {
	case outcomeProcessed:
		return "processed"
	case outcomeFailed:
		return "failed"
	case outcomeDuplicate:
		return "duplicate"
	case outcomeRejected:
		return "rejected"
	case outcomeDeferred:
		return "queued"
	}
	return "none"
}

// markOutcome records k for the request of ctx when a Health counts it.
func markOutcome(ctx context.Context, k outcomeKind) {
	if o, ok := ctx.Value(outcomeKey).(*outcome); ok {
		o.set(k)
	}
}

// deferOutcome marks the request of ctx as reported later and returns the
// function that reports it (true: processed, false: failed). Without a Health
// it returns a no-op.
func deferOutcome(ctx context.Context) func(ok bool) {
	o, isO := ctx.Value(outcomeKey).(*outcome)
	if !isO || !o.set(outcomeDeferred) {
		return func(bool) {}
	}
	return func(ok bool) {
		if ok {
			o.h.count(outcomeProcessed)
		} else {
			o.h.count(outcomeFailed)
		}
	}
}
