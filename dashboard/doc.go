// Package dashboard serves a web dashboard of a tenant's webhooks and their
// deliveries as an http.Handler, for hosts to mount next to the management
// API.
//
// # Pages
//
//	GET  {Prefix}/                                            the tenant's webhooks: URL, events, state, success rate, last delivery
//	GET  {Prefix}/webhooks/{id}?status=&cursor=               one webhook: its deliveries, newest first, and a chart of outcomes over time
//	GET  {Prefix}/webhooks/{id}/deliveries/{deliveryId}       one delivery with every attempt
//	POST {Prefix}/webhooks/{id}/test                          send a webhook.test event now
//	POST {Prefix}/webhooks/{id}/enable                        re-activate the webhook
//	POST {Prefix}/webhooks/{id}/disable                       deactivate the webhook
//	POST {Prefix}/webhooks/{id}/rotate-secret                 new signing secret, shown once in the answer
//	POST {Prefix}/webhooks/{id}/deliveries/{deliveryId}/retry attempt a finished delivery again, now
//	GET  {Prefix}/static/…                                    the embedded style sheet
//
// A host mounts it with mux.Handle("/dashboard/", h) after New with
// Config.Prefix "/dashboard" (no http.StripPrefix: the dashboard writes its
// own links).
//
// # Security
//
// Every page is rendered by html/template from files embedded in the binary:
// no build step, no CDN, no script at all, so it works offline and under a
// strict Content-Security-Policy (default-src 'none'; style-src 'self'). Every
// action is a POST form checked by http.CrossOriginProtection, so another site
// cannot make a signed-in browser act. Config.Tenant scopes every request
// exactly as the management API does: another tenant's webhook or delivery is
// answered 404, like one that does not exist. A signing secret appears only in
// the answer of a rotation, which is never cached; credential-like header
// values and the user information (a password) of a URL are never shown.
// The rotation form carries the version of the webhook its page showed, so
// the same form sent again (a reload of the secret's page) rotates nothing:
// the secret just shown stays the one that signs.
//
// A panic while a request is served (in a page, or in the host's Tenant or
// Store) is answered with the error page and logged with its stack through
// Config.Logger, rather than dropping the connection.
//
// # Scale
//
// Pages read one page of records through the store's indexes (ListWebhooks,
// ListDeliveries with a cursor, CountDeliveries), never a whole history: the
// chart samples at most Config.ChartSample of the newest deliveries.
package dashboard
