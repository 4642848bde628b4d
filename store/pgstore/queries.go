package pgstore

import (
	"strconv"
	"strings"
)

// A claim that steps over holdAfter or more due deliveries of the webhooks
// it skips marks them held, at most holdMost at a time (see migration
// 0002 and the claim statement). Stepping over fewer costs a claim a
// fraction of a millisecond.
const (
	holdAfter = 1000
	holdMost  = 5000
)

// queries holds every statement with the quoted schema name filled in.
type queries struct {
	schema string // quoted

	insertWebhook, countTenantWebhooks, getWebhook, lockWebhook, listWebhooks, listWebhooksAfter, updateWebhook, deleteWebhook, matchWebhooks string

	enqueue, enqueueLookup, claim, complete, lockWebhookOf, disableWebhook, failOthers                string
	release, getDelivery, redeliver, existsDelivery, listAttempts, purge, purgeLimit, countDeliveries string
}

func buildQueries(quoted string) queries {
	q := queries{schema: quoted}
	f := q.sql
	q.insertWebhook = f(`INSERT INTO {{schema}}.webhooks (` + webhookCols + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`)
	q.countTenantWebhooks = f(`SELECT count(*) FROM (SELECT 1 FROM {{schema}}.webhooks WHERE tenant = $1 LIMIT $2) t`)
	q.getWebhook = f(`SELECT ` + webhookCols + ` FROM {{schema}}.webhooks WHERE id = $1`)
	q.lockWebhook = f(`SELECT ` + webhookCols + ` FROM {{schema}}.webhooks WHERE id = $1 FOR UPDATE`)
	q.listWebhooks = f(`SELECT ` + webhookCols + ` FROM {{schema}}.webhooks
		WHERE tenant = $1 ORDER BY id DESC LIMIT $2`)
	q.listWebhooksAfter = f(`SELECT ` + webhookCols + ` FROM {{schema}}.webhooks
		WHERE tenant = $1 AND id < $3 ORDER BY id DESC LIMIT $2`)
	q.updateWebhook = f(`UPDATE {{schema}}.webhooks SET url = $3, events = $4, description = $5, active = $6,
		disabled_reason = $7, secrets = $8, headers = $9, max_attempts = $10, rate_limit = $11, updated_at = $12
		WHERE id = $1 AND tenant = $2`)
	q.deleteWebhook = f(`DELETE FROM {{schema}}.webhooks WHERE id = $1`)
	// The same rule as store.MatchEvent: "*", the exact type, or a
	// "prefix.*" pattern whose prefix (with the dot) starts the type.
	q.matchWebhooks = f(`SELECT ` + webhookCols + ` FROM {{schema}}.webhooks
		WHERE tenant = $1 AND active AND EXISTS (
			SELECT 1 FROM unnest(events) AS p
			WHERE p = '*' OR p = $2::text OR (right(p, 2) = '.*' AND starts_with($2::text, left(p, -1))))
		ORDER BY id`)

	// Enqueue in one statement. bad lists the inputs whose webhook is missing
	// or has another tenant; when there is any, nothing is inserted and the
	// caller reports it. old finds the inputs stored before (the statement's
	// snapshot does not see ins). new names the inputs inserted by their
	// (event_id, webhook_id), which is unique in the input, not by their id,
	// which a duplicate may share with one inserted. woke notifies listeners
	// when anything claimable was inserted (a leased delivery is not);
	// PostgreSQL delivers it at commit.
	q.enqueue = f(`WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],
				$7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::timestamptz[])
				WITH ORDINALITY AS i(id, webhook_id, event_id, event_type, tenant, body, next_attempt_at, created_at, updated_at,
					lease_owner, lease_expires_at, ord)
		), bad AS (
			SELECT i.ord, w.id IS NULL AS missing
			FROM input i LEFT JOIN {{schema}}.webhooks w ON w.id = i.webhook_id
			WHERE w.id IS NULL OR w.tenant <> i.tenant
		), ins AS (
			INSERT INTO {{schema}}.deliveries (id, webhook_id, event_id, event_type, tenant, body, status,
				next_attempt_at, created_at, updated_at, lease_owner, lease_expires_at)
			SELECT id, webhook_id, event_id, event_type, tenant, body, 'pending', next_attempt_at, created_at, updated_at,
				lease_owner, lease_expires_at
			FROM input WHERE NOT EXISTS (SELECT 1 FROM bad)
			ORDER BY webhook_id, event_id
			ON CONFLICT (event_id, webhook_id) DO NOTHING
			RETURNING id, event_id, webhook_id, lease_owner
		), woke AS (
			SELECT pg_notify($12, '') FROM (SELECT 1 FROM ins WHERE lease_owner = '' LIMIT 1) x
		)
		SELECT 'bad', b.ord, CASE WHEN b.missing THEN 'missing' ELSE 'tenant' END FROM bad b
		UNION ALL
		SELECT 'old', i.ord, d.id FROM input i
			JOIN {{schema}}.deliveries d ON d.event_id = i.event_id AND d.webhook_id = i.webhook_id
		UNION ALL
		SELECT 'new', i.ord, ins.id FROM ins
			JOIN input i ON i.event_id = ins.event_id AND i.webhook_id = ins.webhook_id
		UNION ALL
		SELECT 'woke', 0, '' FROM woke`)
	// Ids of inputs stored by a transaction that committed after the
	// enqueue statement's snapshot was taken.
	q.enqueueLookup = f(`SELECT i.ord, d.id
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(event_id, webhook_id, ord)
		JOIN {{schema}}.deliveries d ON d.event_id = i.event_id AND d.webhook_id = i.webhook_id`)

	// Claim in one statement, merging in (next_attempt_at, id) order, with
	// SKIP LOCKED so concurrent claimers never wait on or share a row:
	//   free:     the oldest due unleased deliveries, walking
	//             deliveries_claimable from the oldest;
	//   heldfree: the held deliveries of the webhooks not skipped: hooks
	//             finds the webhooks that have any, one index seek each
	//             (a loose scan of deliveries_held), and each gives its
	//             oldest due ones;
	//   expired:  the deliveries whose lease expired (walking
	//             deliveries_leased, which holds only the ones in flight).
	// stepped finds, through deliveries_claimable_webhook, the skipped
	// webhooks' deliveries that free stepped over (due no later than the
	// last it took), locked as free's are; when there are holdAfter or
	// more, hold marks them held, at most holdMost, so no claim steps over
	// them again. A claim that took nothing holds nothing: stepping over
	// only skipped webhooks' deliveries delays nobody.
	q.claim = f(`WITH RECURSIVE free AS (
			SELECT id, next_attempt_at FROM {{schema}}.deliveries
			WHERE status = 'pending' AND lease_owner = '' AND NOT held AND next_attempt_at <= $1
				AND webhook_id <> ALL ($2::text[])
			ORDER BY next_attempt_at, id
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		), stepped AS (
			SELECT id FROM {{schema}}.deliveries
			WHERE status = 'pending' AND lease_owner = '' AND NOT held
				AND next_attempt_at <= (SELECT max(next_attempt_at) FROM free)
				AND webhook_id = ANY ($2::text[])
			ORDER BY next_attempt_at, id
			LIMIT ` + strconv.Itoa(holdMost) + `
			FOR UPDATE SKIP LOCKED
		), hold AS (
			UPDATE {{schema}}.deliveries SET held = true
			WHERE id = ANY (ARRAY(SELECT id FROM stepped))
				AND (SELECT count(*) FROM stepped) >= ` + strconv.Itoa(holdAfter) + `
		), hooks AS (
			(SELECT webhook_id FROM {{schema}}.deliveries
				WHERE status = 'pending' AND lease_owner = '' AND held
				ORDER BY webhook_id LIMIT 1)
			UNION ALL
			SELECT (SELECT d.webhook_id FROM {{schema}}.deliveries d
				WHERE d.status = 'pending' AND d.lease_owner = '' AND d.held AND d.webhook_id > h.webhook_id
				ORDER BY d.webhook_id LIMIT 1)
			FROM hooks h WHERE h.webhook_id IS NOT NULL
		), heldfree AS (
			SELECT f.id, f.next_attempt_at FROM hooks h CROSS JOIN LATERAL (
				SELECT d.id, d.next_attempt_at FROM {{schema}}.deliveries d
				WHERE d.webhook_id = h.webhook_id AND d.status = 'pending' AND d.lease_owner = '' AND d.held
					AND d.next_attempt_at <= $1
				ORDER BY d.next_attempt_at, d.id
				LIMIT $3
				FOR UPDATE SKIP LOCKED) f
			WHERE h.webhook_id IS NOT NULL AND h.webhook_id <> ALL ($2::text[])
		), expired AS (
			SELECT id, next_attempt_at FROM {{schema}}.deliveries
			WHERE status = 'pending' AND lease_owner <> '' AND lease_expires_at <= $1 AND next_attempt_at <= $1
				AND webhook_id <> ALL ($2::text[])
			ORDER BY next_attempt_at, id
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		), pick AS (
			SELECT id FROM (SELECT * FROM free UNION ALL SELECT * FROM heldfree UNION ALL SELECT * FROM expired) c
			ORDER BY next_attempt_at, id
			LIMIT $3
		)
		UPDATE {{schema}}.deliveries d SET lease_owner = $4, lease_expires_at = $5, held = false
		FROM pick WHERE d.id = pick.id
		RETURNING ` + prefixed("d.", deliveryCols))

	// Complete in one statement: lock the delivery, and only when the owner
	// holds it and the attempt number is the next one, log the attempt and
	// move the delivery on. The caller reads cur to tell why not. A retry
	// (pending) first takes a share lock on the delivery's webhook, before
	// the delivery (the InitPlan in cur runs first), in the order of the
	// disable path: a disable committed meanwhile is seen, and one that
	// comes after sees this delivery released, so it is failed either way.
	q.complete = f(`WITH hook AS (
			SELECT w.active FROM {{schema}}.webhooks w JOIN {{schema}}.deliveries d ON d.webhook_id = w.id
			WHERE d.id = $1 AND $13::text = 'pending' FOR SHARE OF w
		), cur AS (
			SELECT id, status, lease_owner, attempts FROM {{schema}}.deliveries
			WHERE id = $1 AND (SELECT count(*) FROM hook) >= 0 FOR UPDATE
		), ok AS (
			SELECT id, CASE WHEN EXISTS (SELECT 1 FROM hook WHERE NOT active) THEN 'failed' ELSE $13::text END AS status
			FROM cur WHERE status = 'pending' AND lease_owner = $2 AND attempts + 1 = $3
		), att AS (
			INSERT INTO {{schema}}.attempts (delivery_id, number, started_at, duration_ns, request_url,
				request_headers, response_status, response_headers, response_body, error_class, error)
			SELECT id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM ok
		), upd AS (
			UPDATE {{schema}}.deliveries d SET attempts = d.attempts + 1,
				round_attempts = d.round_attempts + CASE WHEN $16::boolean AND ok.status = 'pending' THEN 0 ELSE 1 END,
				last_status_code = $8, last_error = $12, status = ok.status,
				next_attempt_at = CASE WHEN ok.status = 'pending' THEN $14::timestamptz ELSE d.next_attempt_at END,
				lease_owner = '', lease_expires_at = NULL, updated_at = $15
			FROM ok WHERE d.id = ok.id
			RETURNING d.id
		)
		SELECT status, lease_owner, attempts, (SELECT count(*) FROM upd) FROM cur`)
	// The disable path locks the webhook first, so two 410s of one webhook
	// completing at once serialize instead of deadlocking.
	q.lockWebhookOf = f(`SELECT w.id FROM {{schema}}.webhooks w
		JOIN {{schema}}.deliveries d ON d.webhook_id = w.id WHERE d.id = $1 FOR NO KEY UPDATE OF w`)
	q.disableWebhook = f(`UPDATE {{schema}}.webhooks SET active = false, disabled_reason = $2, updated_at = $3 WHERE id = $1`)
	// A delivery under a live lease is left to its owner, whose attempt is
	// in flight: its Complete records it.
	q.failOthers = f(`UPDATE {{schema}}.deliveries SET status = 'failed', last_error = $3, lease_owner = '',
		lease_expires_at = NULL, held = false, updated_at = $4
		WHERE webhook_id = $1 AND status = 'pending' AND id <> $2
			AND (lease_owner = '' OR lease_expires_at IS NULL OR lease_expires_at <= $4)`)

	q.release = f(`WITH r AS (
			UPDATE {{schema}}.deliveries SET lease_owner = '', lease_expires_at = NULL
			WHERE id = ANY ($1::text[]) AND lease_owner = $2 AND status = 'pending'
			RETURNING 1
		)
		SELECT pg_notify($3, '') FROM (SELECT 1 FROM r LIMIT 1) x`)
	q.getDelivery = f(`SELECT ` + deliveryCols + ` FROM {{schema}}.deliveries WHERE id = $1`)
	q.redeliver = f(`WITH u AS (
			UPDATE {{schema}}.deliveries SET status = 'pending', next_attempt_at = $2, round_attempts = 0,
				lease_owner = '', lease_expires_at = NULL, held = false, updated_at = $2
			WHERE id = $1 AND status <> 'pending'
			RETURNING ` + deliveryCols + `
		)
		SELECT u.* FROM u LEFT JOIN LATERAL (SELECT pg_notify($3, '')) n ON true`)
	q.existsDelivery = f(`SELECT EXISTS (SELECT 1 FROM {{schema}}.deliveries WHERE id = $1)`)
	q.listAttempts = f(`SELECT delivery_id, number, started_at, duration_ns, request_url, request_headers,
		response_status, response_headers, response_body, error_class, error
		FROM {{schema}}.attempts WHERE delivery_id = $1 ORDER BY number`)
	q.purge = f(`DELETE FROM {{schema}}.deliveries WHERE id IN (
			SELECT id FROM {{schema}}.deliveries WHERE status <> 'pending' AND updated_at < $1
			FOR UPDATE SKIP LOCKED)`)
	q.purgeLimit = f(`DELETE FROM {{schema}}.deliveries WHERE id IN (
			SELECT id FROM {{schema}}.deliveries WHERE status <> 'pending' AND updated_at < $1
			ORDER BY updated_at LIMIT $2
			FOR UPDATE SKIP LOCKED)`)
	q.countDeliveries = f(`SELECT EXISTS (SELECT 1 FROM {{schema}}.webhooks WHERE id = $1),
			count(*) FILTER (WHERE status = 'pending'),
			count(*) FILTER (WHERE status = 'success'),
			count(*) FILTER (WHERE status = 'failed')
		FROM {{schema}}.deliveries WHERE webhook_id = $1`)
	return q
}

// sql replaces {{schema}} in text with the quoted schema name.
func (q queries) sql(text string) string { return strings.ReplaceAll(text, "{{schema}}", q.schema) }

// prefixed qualifies every column of a comma-separated list.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
