package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// HandlerFunc processes one verified event. A non-nil error makes a
// synchronous Router answer 500 (400 for a *[DataError]), so the sender
// retries; a background Router retries the handler itself.
type HandlerFunc func(ctx context.Context, e *Event) error

// DataError reports event data that does not decode into the type a typed
// handler ([Handle]) expects. The Router answers it 400.
type DataError struct {
	// EventType is the type of the event whose data did not decode.
	EventType string
	// Err is the error of encoding/json.
	Err error
}

// Error describes the failure without the data itself.
func (e *DataError) Error() string {
	return fmt.Sprintf("receiver: decode data of %q: %v", e.EventType, e.Err)
}

// Unwrap returns the decoding error.
func (e *DataError) Unwrap() error { return e.Err }

// ErrRouterStopped is given to RouterOptions.OnFailure for events still
// queued when Stop's context ended, and answered 503 to deliveries that
// arrive after Stop.
var ErrRouterStopped = errors.New("receiver: router stopped")

// Defaults of [BackgroundOptions].
const (
	// DefaultBackgroundWorkers is the number of handler goroutines.
	DefaultBackgroundWorkers = 4
	// DefaultBackgroundQueueSize bounds the events waiting for a worker.
	DefaultBackgroundQueueSize = 1024
	// DefaultBackgroundMaxAttempts is how many times a failing handler runs.
	DefaultBackgroundMaxAttempts = 5
)

// BackgroundOptions turns on acknowledge-first processing (the guide's
// "Respond Quickly"): the Router answers 202 as soon as the event is queued
// and handlers run on its own workers, with retries. The workers run
// between [Router.Start] and [Router.Stop]; before Start, and after Stop,
// the Router answers 503 with Retry-After, so the sender tries again.
//
// In-process background processing is lost if the process crashes or is
// killed: the sender has been told 2xx and will not retry. For durability,
// keep the default synchronous mode (the sender retries until the handler
// succeeds), or make the handler only enqueue to the host's durable queue and
// answer after that.
type BackgroundOptions struct {
	// Workers run handlers concurrently. Defaults to 4.
	Workers int
	// QueueSize bounds the queued events; when full, the delivery is
	// answered 503 with Retry-After, so the sender retries later. Defaults
	// to 1024.
	QueueSize int
	// MaxAttempts is how many times a failing handler runs. Defaults to 5.
	// Data that does not decode (a *DataError) is not retried.
	MaxAttempts int
	// InitialInterval and MaxInterval shape the exponential backoff between
	// attempts (with jitter). Default to 1 second and 1 minute.
	InitialInterval, MaxInterval time.Duration
}

// RouterOptions configures [NewRouter]. The zero value is a synchronous
// router that logs nothing.
type RouterOptions struct {
	// Logger receives unknown event types, handler errors, handler panics
	// (with their stack) and background failures. Defaults to discarding.
	Logger *slog.Logger
	// Background, when set, acknowledges before processing; see
	// [BackgroundOptions]. Defaults to nil: handlers run before the answer.
	Background *BackgroundOptions
	// OnFailure is called once per event whose background processing failed
	// for good (after the last attempt, or when Stop gave up), after the
	// error is logged. Use it to park the event for later replay.
	OnFailure func(e *Event, err error)
}

// Router dispatches verified events to handlers by event type. Patterns are
// an exact type ("workflow.completed"), a prefix ("workflow.*", any type
// starting with "workflow.") or "*"; the exact match wins, then the longest
// prefix. Register handlers before serving. Events of a type without a
// handler are answered 200 and logged.
//
// A Router is an http.Handler meant to sit inside [Verify]; it can also be
// fed directly with [Router.Dispatch]. The zero value is a synchronous
// Router that logs nothing, the one NewRouter(RouterOptions{}) returns.
type Router struct {
	log       *slog.Logger
	onFailure func(*Event, error)

	mu       sync.RWMutex
	exact    map[string]HandlerFunc
	prefixes []prefixHandler // longest first

	bg *background
}

type prefixHandler struct {
	prefix string // "" for "*"
	h      HandlerFunc
}

// NewRouter returns a Router configured by opts. It fails on negative
// background settings.
func NewRouter(opts RouterOptions) (*Router, error) {
	r := &Router{log: loggerOr(opts.Logger), onFailure: opts.OnFailure, exact: make(map[string]HandlerFunc)}
	if opts.Background != nil {
		b := *opts.Background
		if b.Workers < 0 || b.QueueSize < 0 || b.MaxAttempts < 0 || b.InitialInterval < 0 || b.MaxInterval < 0 {
			return nil, errors.New("receiver: negative BackgroundOptions field")
		}
		if b.Workers == 0 {
			b.Workers = DefaultBackgroundWorkers
		}
		if b.QueueSize == 0 {
			b.QueueSize = DefaultBackgroundQueueSize
		}
		if b.MaxAttempts == 0 {
			b.MaxAttempts = DefaultBackgroundMaxAttempts
		}
		if b.InitialInterval == 0 {
			b.InitialInterval = time.Second
		}
		if b.MaxInterval == 0 {
			b.MaxInterval = time.Minute
		}
		r.bg = &background{opts: b, queue: make(chan job, b.QueueSize), abort: make(chan struct{})}
	}
	return r, nil
}

// On registers h for pattern. It panics on a nil h and on an invalid or
// already registered pattern, as http.ServeMux does.
func (r *Router) On(pattern string, h HandlerFunc) {
	if h == nil {
		panic("receiver: nil handler for " + pattern)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if pattern == "*" || strings.HasSuffix(pattern, ".*") {
		prefix := strings.TrimSuffix(pattern, "*")
		if strings.Contains(prefix, "*") || prefix == "." {
			panic(fmt.Sprintf("receiver: invalid pattern %q", pattern))
		}
		for _, p := range r.prefixes {
			if p.prefix == prefix {
				panic(fmt.Sprintf("receiver: pattern %q registered twice", pattern))
			}
		}
		r.prefixes = append(r.prefixes, prefixHandler{prefix: prefix, h: h})
		for i := len(r.prefixes) - 1; i > 0 && len(r.prefixes[i].prefix) > len(r.prefixes[i-1].prefix); i-- {
			r.prefixes[i], r.prefixes[i-1] = r.prefixes[i-1], r.prefixes[i]
		}
		return
	}
	if pattern == "" || strings.Contains(pattern, "*") {
		panic(fmt.Sprintf("receiver: invalid pattern %q", pattern))
	}
	if _, dup := r.exact[pattern]; dup {
		panic(fmt.Sprintf("receiver: pattern %q registered twice", pattern))
	}
	if r.exact == nil { // the zero Router
		r.exact = make(map[string]HandlerFunc)
	}
	r.exact[pattern] = h
}

// Handle registers for pattern a handler that receives the event's data
// decoded into T (for instance one of the catalog's data structs). Data that
// does not decode fails with a *[DataError] without calling fn. It panics,
// as [Router.On] does, on a nil fn and on an invalid or already registered
// pattern.
func Handle[T any](r *Router, pattern string, fn func(ctx context.Context, e *Event, data T) error) {
	if fn == nil {
		panic("receiver: nil handler for " + pattern)
	}
	r.On(pattern, func(ctx context.Context, e *Event) error {
		var data T
		if len(e.Data) > 0 {
			if err := json.Unmarshal(e.Data, &data); err != nil {
				return &DataError{EventType: e.Type, Err: err}
			}
		}
		return fn(ctx, e, data)
	})
}

// logger returns the Router's logger, or a discarding one for the zero
// Router.
func (r *Router) logger() *slog.Logger {
	if r.log == nil {
		return discard
	}
	return r.log
}

// discard is the logger of a zero Router.
var discard = slog.New(slog.DiscardHandler)

func (r *Router) lookup(eventType string) HandlerFunc {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if h, ok := r.exact[eventType]; ok {
		return h
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(eventType, p.prefix) {
			return p.h
		}
	}
	return nil
}

// Dispatch runs the handler registered for e.Type and returns its error; it
// returns nil, after logging, when no handler matches. It ignores the
// background setting.
func (r *Router) Dispatch(ctx context.Context, e *Event) error {
	h := r.lookup(e.Type)
	if h == nil {
		r.logger().LogAttrs(ctx, slog.LevelInfo, "receiver: unhandled event type",
			slog.String("event", e.Type), slog.String("event_id", e.ID))
		return nil
	}
	return h(ctx, e)
}

// ServeHTTP dispatches the verified event of the request's context. It
// answers 200 after the handler succeeds (or when no handler matches), 400
// for a *DataError, 500 for any other handler error or a handler panic
// (but http.ErrAbortHandler, which aborts the answer), and, in background
// mode, 202 once queued or 503 with Retry-After when the queue is full or
// the router is not running. Without a verified event (Router not mounted
// inside Verify) it answers 500.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	e, ok := EventFromContext(ctx)
	if !ok {
		r.logger().LogAttrs(ctx, slog.LevelError, "receiver: router reached without a verified event; mount it inside Verify")
		plain(w, http.StatusInternalServerError, "Receiver misconfigured")
		return
	}
	if r.bg != nil {
		r.enqueue(w, req, e)
		return
	}
	err := r.safeDispatch(ctx, e)
	var de *DataError
	switch {
	case err == nil:
		markOutcome(ctx, outcomeProcessed)
		plain(w, http.StatusOK, "OK")
	case errors.As(err, &de):
		markOutcome(ctx, outcomeFailed)
		r.logger().LogAttrs(ctx, slog.LevelWarn, "receiver: event data does not decode",
			slog.String("event", e.Type), slog.String("event_id", e.ID), slog.String("error", err.Error()))
		plain(w, http.StatusBadRequest, "Malformed event data")
	default:
		markOutcome(ctx, outcomeFailed)
		r.logger().LogAttrs(ctx, slog.LevelError, "receiver: handler failed",
			slog.String("event", e.Type), slog.String("event_id", e.ID), slog.String("error", err.Error()))
		plain(w, http.StatusInternalServerError, "Processing failed")
	}
}

// background is the bounded queue and workers of acknowledge-first mode.
type background struct {
	opts BackgroundOptions

	mu      sync.Mutex
	started bool
	stopped bool
	queue   chan job
	wg      sync.WaitGroup
	abort   chan struct{} // closed when Stop gives up waiting
	base    context.Context
	cancel  context.CancelFunc
}

type job struct {
	ctx    context.Context
	e      *Event
	report func(ok bool)
}

// Start starts the background workers. It is a no-op for a synchronous
// router, when already started, and after Stop: a stopped Router stays
// stopped and keeps answering 503. Handlers run with a context derived from
// ctx's values that is canceled when Stop gives up.
func (r *Router) Start(ctx context.Context) error {
	b := r.bg
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.stopped {
		return nil
	}
	b.started = true
	b.base, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range b.opts.Workers {
		b.wg.Add(1)
		go r.work()
	}
	return nil
}

// Stop stops accepting events (later deliveries get 503), lets the workers
// finish the queued ones, retries included, and waits for them. If ctx ends
// first, handlers' contexts are canceled, every event not processed is given
// to OnFailure with ErrRouterStopped, and Stop returns ctx.Err() once the
// workers have exited. It is safe before Start and safe twice.
func (r *Router) Stop(ctx context.Context) error {
	b := r.bg
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		b.wg.Wait()
		return nil
	}
	b.stopped = true
	started := b.started
	close(b.queue)
	b.mu.Unlock()
	if !started {
		return nil
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		b.cancel()
		return nil
	case <-ctx.Done():
		close(b.abort)
		b.cancel()
		<-done
		return ctx.Err()
	}
}

func (r *Router) enqueue(w http.ResponseWriter, req *http.Request, e *Event) {
	b := r.bg
	ctx := req.Context()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started || b.stopped {
		retryAfter(w, 30*time.Second)
		plain(w, http.StatusServiceUnavailable, "Not accepting events")
		return
	}
	// The job keeps the request's values (event, raw body) but not its
	// cancellation, which fires when the answer is sent.
	j := job{ctx: context.WithoutCancel(ctx), e: e, report: deferOutcome(ctx)}
	select {
	case b.queue <- j:
	default:
		j.report(false)
		r.logger().LogAttrs(ctx, slog.LevelWarn, "receiver: background queue full",
			slog.String("event", e.Type), slog.String("event_id", e.ID))
		retryAfter(w, 10*time.Second)
		plain(w, http.StatusServiceUnavailable, "Queue full")
		return
	}
	plain(w, http.StatusAccepted, "Accepted")
}

func (r *Router) work() {
	b := r.bg
	var cur *job // the job being processed
	attempts := 0
	defer b.wg.Done()
	defer func() {
		if cur != nil {
			// The handler ended this goroutine with runtime.Goexit, which
			// recover does not see: replace the worker (before Done, so
			// that Stop keeps waiting) and fail the event.
			b.wg.Add(1)
			go r.work()
			r.fail(cur.ctx, *cur, errHandlerGoexit, attempts)
		}
	}()
	for j := range b.queue {
		cur = &j
		r.process(j, &attempts)
		cur = nil
	}
}

// errHandlerGoexit is the failure of an event whose handler called
// runtime.Goexit.
var errHandlerGoexit = errors.New("receiver: handler exited its goroutine (runtime.Goexit)")

// process runs one job with retries and reports its end. It counts the
// handler's runs in *attempts.
func (r *Router) process(j job, attempts *int) {
	b := r.bg
	ctx, cancel := context.WithCancel(j.ctx)
	stop := context.AfterFunc(b.base, cancel)
	defer func() { stop(); cancel() }()

	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = b.opts.InitialInterval
	bo.MaxInterval = b.opts.MaxInterval
	bo.MaxElapsedTime = 0
	bo.Reset()

	var err error
	for attempt := 1; ; attempt++ {
		select {
		case <-b.abort:
			if err == nil {
				err = ErrRouterStopped
			} else {
				err = fmt.Errorf("%w (last error: %w)", ErrRouterStopped, err)
			}
			r.fail(ctx, j, err, attempt-1)
			return
		default:
		}
		*attempts = attempt
		err = r.safeDispatch(ctx, j.e)
		if err == nil {
			j.report(true)
			return
		}
		var de *DataError
		if attempt >= b.opts.MaxAttempts || errors.As(err, &de) {
			r.fail(ctx, j, err, attempt)
			return
		}
		r.logger().LogAttrs(ctx, slog.LevelWarn, "receiver: background handler failed; will retry",
			slog.String("event", j.e.Type), slog.String("event_id", j.e.ID),
			slog.Int("attempt", attempt), slog.String("error", err.Error()))
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-t.C:
		case <-b.abort:
			t.Stop()
		}
	}
}

func (r *Router) fail(ctx context.Context, j job, err error, attempts int) {
	r.logger().LogAttrs(ctx, slog.LevelError, "receiver: background processing failed; event not processed",
		slog.String("event", j.e.Type), slog.String("event_id", j.e.ID),
		slog.Int("attempts", attempts), slog.String("error", err.Error()))
	j.report(false)
	if r.onFailure != nil {
		r.onFailure(j.e, err)
	}
}

// safeDispatch turns a handler panic into an error, so one bad event cannot
// kill a worker or drop the sender's connection, and logs the panic with its
// stack, as net/http would have. A synchronous Router lets
// http.ErrAbortHandler through: it is net/http's way to abort an answer.
func (r *Router) safeDispatch(ctx context.Context, e *Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler && r.bg == nil {
				panic(p)
			}
			r.logger().LogAttrs(ctx, slog.LevelError, "receiver: handler panicked",
				slog.String("event", e.Type), slog.String("event_id", e.ID),
				slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("receiver: handler panic: %v", p)
		}
	}()
	return r.Dispatch(ctx, e)
}
