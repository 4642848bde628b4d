// Package receiver accepts webhooks safely with net/http: it verifies
// signatures, drops duplicates, restricts client addresses, routes events to
// typed handlers and counts what happened.
//
// # Quick start
//
// Chain the middlewares in this order (each is a func(http.Handler)
// http.Handler):
//
//	health := receiver.NewHealth(logger)
//	router, _ := receiver.NewRouter(receiver.RouterOptions{Logger: logger})
//	receiver.Handle(router, "workflow.completed",
//		func(ctx context.Context, e *receiver.Event, d MyWorkflowData) error { … })
//
//	h := receiver.IPAllowlist("203.0.113.0/24")( // 1. who may call (403)
//		health.Middleware(                        // 2. counts
//			receiver.Verify(secret)(              // 3. body cap, signature, timestamp
//				receiver.Idempotency(store)(      // 4. once per event id
//					router))))                    // 5. handlers
//	mux.Handle("POST /webhooks/noa-server", h)
//	mux.Handle("GET /webhooks/metrics", health.Handler())
//
// The runnable program in examples/receiver does exactly this.
//
// # Verifying
//
// [Verify] and [VerifyWithOptions] read the body once (at most 1 MiB by
// default, else 413), verify the Standard Webhooks headers (webhook-id,
// webhook-timestamp, webhook-signature) against every configured secret,
// refuse timestamps more than 5 minutes away from the clock, then restore the
// body so the next handler reads the identical bytes. The raw bytes and the
// decoded [Event] are in the request context ([RawBodyFromContext],
// [EventFromContext]). Answers: 401 for a missing or wrong signature or a
// stale timestamp, 400 for a malformed header, 413 for an oversized body.
//
// The signature covers bytes, not a JSON value: never decode and re-encode
// the body before verifying (a framework's JSON body parser breaks every
// signature). Paste the secret ("whsec_…"), not a signature ("v1,…").
//
// The guide's X-Webhook-Signature binds no timestamp, so a captured request
// could be replayed forever. A request carrying only that header is refused
// unless [VerifyOptions].AllowLegacy is set, which is for senders that send
// nothing else. For other stacks than net/http, [Verifier.Verify] takes the
// body and headers.
//
// # Idempotency
//
// Senders deliver at least once. [Idempotency] keys each delivery by its
// event id, scoped per endpoint (the http.ServeMux pattern that routed it;
// with another router, set [IdempotencyOptions].Scope), and reserves it
// atomically: a duplicate of a processed event gets 200 without running
// the handler, a duplicate that arrives while the first is still running
// gets 409 with Retry-After, and a handler that fails (non-2xx or panic)
// releases the key so the sender's retry is processed. Processed ids are
// kept 7 days by default. Stores: [MemoryStore] (bounded by TTL and size)
// and [BoltStore] (a bbolt file, survives restarts); implement
// [IdempotencyStore] for Redis or SQL.
//
// # Client addresses
//
// [IPAllowlist] answers 403 to clients outside the configured ranges. The
// X-Forwarded-For header is read only when the TCP peer is one of
// [IPAllowlistOptions].TrustedProxies, walking right to left; otherwise
// anyone could claim any address.
//
// # Routing
//
// A [Router] calls the handler registered for the event type (exact,
// "prefix.*" or "*"); [Handle] decodes the event's data into the handler's
// type. Data that does not decode answers 400; any other handler error
// answers 500 so the sender retries; events without a handler answer 200 and
// are logged.
//
// With [RouterOptions].Background the router answers 202 as soon as the
// event is queued and processes it on its own workers, retrying with
// backoff and calling OnFailure after the last try. Such events are lost if
// the process crashes: for durability keep the default synchronous mode, or
// answer only after enqueueing to a durable queue of your own.
//
// # Health
//
// [Health] counts received, processed, failed, duplicate and rejected
// deliveries and serves them as JSON with successRate, as the guide's
// "Monitor Webhook Health" does.
package receiver
