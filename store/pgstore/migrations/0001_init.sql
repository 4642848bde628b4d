-- Initial schema of pgstore. {{schema}} is replaced by the quoted schema name.
-- Ids and tenants use the "C" collation so they compare as byte strings,
-- which is the order the Store contract defines.

CREATE TABLE {{schema}}.webhooks (
	id              text COLLATE "C" PRIMARY KEY,
	tenant          text COLLATE "C" NOT NULL,
	url             text NOT NULL,
	events          text[] NOT NULL,
	description     text NOT NULL,
	active          boolean NOT NULL,
	disabled_reason text NOT NULL,
	secrets         jsonb NOT NULL,
	headers         jsonb NOT NULL,
	max_attempts    integer NOT NULL,
	rate_limit      double precision NOT NULL,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	UNIQUE (id, tenant)
);

-- Listings (newest first, scanned backwards) and MatchWebhooks (oldest first).
CREATE INDEX webhooks_tenant_id ON {{schema}}.webhooks (tenant, id);

CREATE TABLE {{schema}}.deliveries (
	id               text COLLATE "C" PRIMARY KEY,
	webhook_id       text COLLATE "C" NOT NULL,
	event_id         text COLLATE "C" NOT NULL,
	event_type       text NOT NULL,
	tenant           text COLLATE "C" NOT NULL,
	body             bytea NOT NULL,
	status           text NOT NULL CHECK (status IN ('pending', 'success', 'failed')),
	attempts         integer NOT NULL DEFAULT 0,
	round_attempts   integer NOT NULL DEFAULT 0,
	next_attempt_at  timestamptz NOT NULL,
	-- lease_owner is '' and lease_expires_at NULL when the delivery is not leased.
	lease_owner      text NOT NULL DEFAULT '',
	lease_expires_at timestamptz,
	last_status_code integer NOT NULL DEFAULT 0,
	last_error       text NOT NULL DEFAULT '',
	created_at       timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL,
	-- A delivery's tenant is its webhook's (a webhook never changes tenant).
	FOREIGN KEY (webhook_id, tenant) REFERENCES {{schema}}.webhooks (id, tenant) ON DELETE CASCADE,
	CHECK ((lease_owner = '') = (lease_expires_at IS NULL)),
	CHECK (status = 'pending' OR lease_owner = '')
);

-- Enqueue's deduplication.
CREATE UNIQUE INDEX deliveries_event_webhook ON {{schema}}.deliveries (event_id, webhook_id);
-- Claim, part 1: unleased pending deliveries in due order. A claim walks it
-- from the oldest due delivery and stops after its limit.
CREATE INDEX deliveries_claimable ON {{schema}}.deliveries (next_attempt_at, id)
	WHERE status = 'pending' AND lease_owner = '';
-- Claim, part 2: leased pending deliveries (the ones in flight), by expiry,
-- so expired leases are found without walking live ones.
CREATE INDEX deliveries_leased ON {{schema}}.deliveries (lease_expires_at)
	WHERE status = 'pending' AND lease_owner <> '';
-- Listings, newest first, per tenant and per webhook; CountDeliveries.
CREATE INDEX deliveries_tenant_id ON {{schema}}.deliveries (tenant, id);
CREATE INDEX deliveries_webhook_id ON {{schema}}.deliveries (webhook_id, id);
-- Purge: finished deliveries by age.
CREATE INDEX deliveries_finished_updated ON {{schema}}.deliveries (updated_at)
	WHERE status <> 'pending';

CREATE TABLE {{schema}}.attempts (
	delivery_id      text COLLATE "C" NOT NULL REFERENCES {{schema}}.deliveries (id) ON DELETE CASCADE,
	number           integer NOT NULL,
	started_at       timestamptz NOT NULL,
	duration_ns      bigint NOT NULL,
	request_url      text NOT NULL,
	request_headers  jsonb NOT NULL,
	response_status  integer NOT NULL,
	response_headers jsonb NOT NULL,
	response_body    bytea NOT NULL,
	error_class      text NOT NULL,
	error            text NOT NULL,
	PRIMARY KEY (delivery_id, number)
);
