-- Held deliveries. A webhook the dispatcher skips (at its concurrency
-- limit, where a hung endpoint stays) keeps its due deliveries at the front
-- of deliveries_claimable, and every claim would step over all of them. A
-- claim that steps over many marks them held: they leave
-- deliveries_claimable for deliveries_held, keyed by webhook first, where a
-- claim passes over a skipped webhook's held deliveries with one seek, and
-- takes them, in due order with the rest, once it no longer skips the
-- webhook. A claim clears held on the deliveries it leases.
ALTER TABLE {{schema}}.deliveries ADD COLUMN held boolean NOT NULL DEFAULT false;

DROP INDEX {{schema}}.deliveries_claimable;
CREATE INDEX deliveries_claimable ON {{schema}}.deliveries (next_attempt_at, id)
	WHERE status = 'pending' AND lease_owner = '' AND NOT held;
CREATE INDEX deliveries_held ON {{schema}}.deliveries (webhook_id, next_attempt_at, id)
	WHERE status = 'pending' AND lease_owner = '' AND held;
-- deliveries_claimable by webhook: a claim finds the skipped webhooks'
-- deliveries it stepped over here, not by walking deliveries_claimable again.
CREATE INDEX deliveries_claimable_webhook ON {{schema}}.deliveries (webhook_id, next_attempt_at, id)
	WHERE status = 'pending' AND lease_owner = '' AND NOT held;
