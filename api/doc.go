// Package api serves the management REST API of the webhooks guide as an
// http.Handler: register, list, read, update and delete webhooks, send a
// test event, browse a webhook's deliveries with every attempt, retry a
// delivery, rotate a signing secret, and (when the host enables it) emit an
// event.
//
// # Routes
//
//	POST   /v1/webhooks                                    create (the response holds the secret)
//	GET    /v1/webhooks                                    list, newest first
//	GET    /v1/webhooks/{id}                               read
//	PUT    /v1/webhooks/{id}                               update url, events, description, active, headers, maxAttempts, rateLimit
//	DELETE /v1/webhooks/{id}                               delete, with its deliveries
//	POST   /v1/webhooks/{id}/test                          send a webhook.test event now
//	POST   /v1/webhooks/{id}/rotate-secret                 new secret; the old one signs webhook-signature during a grace period
//	GET    /v1/webhooks/{id}/deliveries                    list deliveries (?status=&event=&cursor=&limit=)
//	GET    /v1/webhooks/{id}/deliveries/{deliveryId}       delivery detail with every attempt
//	POST   /v1/webhooks/{id}/deliveries/{deliveryId}/retry attempt a finished delivery again, now
//	POST   /v1/events                                      emit an event (only with Config.EnableEvents)
//	GET    /v1/webhooks/openapi.json                       the OpenAPI 3.1 document of these routes
//
// # Envelope
//
// Every success is {"success": true, "data": …}; listings add
// "pagination": {"nextCursor": "…", "hasMore": true}, and the next page is
// asked for with ?cursor=<nextCursor>. Every failure is
// {"success": false, "error": {"code": "…", "message": "…", "field": "…"}}
// with field set when one input is at fault. Field names are camelCase, as
// in the guide; times are RFC 3339 in UTC with milliseconds.
//
// # Choices beyond the guide
//
// The test route sends to the webhook whatever events it subscribes to, and
// answers once the attempt is recorded, with the delivery as GET
// …/deliveries/{deliveryId} shows it (a failed attempt is a successful call
// whose delivery shows the failure). An inactive webhook is refused with
// 409 webhook_inactive: the dispatcher never sends to inactive webhooks.
// The retry route attempts a finished (success or failed) delivery again at
// once with a fresh retry budget and answers the same way; a pending one is
// refused with 409, since it is queued already. Either route answers 409
// webhook_inactive at once, too, when the webhook is made inactive before
// the attempt (paused by an update, or disabled when another delivery met
// 410 Gone): the delivery failed with it, unsent. The delivery detail adds
// "event", "nextAttemptAt", "createdAt", "updatedAt" and "attemptLog"
// (every attempt, oldest first) to the guide's fields; its top-level
// request and response are the latest attempt's.
// Request bodies must be application/json objects in UTF-8, sent without
// a content coding, whose field names match exactly (case included), once
// each; the names inside headers are given once each too, each with a
// string (not null).
// A listing refuses, with 400 invalid_parameter, a query string that does
// not unescape and a parameter it reads given twice.
// The OpenAPI document is served without authentication.
//
// A webhook may carry its own retry budget, maxAttempts (attempts in all,
// 1 to 100), and a rate limit, rateLimit (deliveries per second, 1/3600 to
// 100000); 0 means the dispatcher's budget and no limit, and a webhook shows
// them only when set.
//
// Reads show the values of credential-like custom headers as "[redacted]".
// An update that sends a header back with that value keeps the value
// stored for it, so a webhook read and sent back keeps its credentials;
// the placeholder for a header the webhook does not store, or in a
// create, is refused with 400.
//
// # Tenancy
//
// Config.Tenant maps each request to the tenant that owns it (for example
// from its bearer token); a refusal, or a tenant that is empty, not UTF-8
// or holds a NUL byte, is answered 401. Every route sees only
// that tenant's webhooks and deliveries: another tenant's id is answered
// exactly like an id that does not exist (404). A tenant has at most
// webhook.RegistryOptions.MaxWebhooks webhooks (100 by default), since each
// gets its own copy of every event it subscribes to: a create beyond is
// refused with 409 too_many_webhooks.
//
// # Secrets
//
// A webhook's secret appears only in the responses of create and
// rotate-secret; never in reads, listings, delivery logs or errors.
//
// Every previous secret in its grace period signs every delivery, so
// rotate-secret with a grace period is refused with 409 too_many_secrets
// while the webhook has the Registry's most previous secrets in their grace
// period (webhook.RegistryOptions.MaxPreviousSecrets, 5 by default); the
// message says when the first of them expires, from which time a rotation
// is accepted again. A grace period is never cut short to make room. A
// rotation with gracePeriodSeconds 0 revokes every previous secret and is
// always accepted.
package api
