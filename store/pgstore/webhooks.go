package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/noa-server/webhook/store"
)

const webhookCols = `id, tenant, url, events, description, active, disabled_reason, secrets, headers,
	max_attempts, rate_limit, created_at, updated_at`

// secretJSON is how a store.Secret is kept in the secrets jsonb array.
type secretJSON struct {
	Value     string     `json:"value"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// webhookArgs returns the column values of w in webhookCols order.
func webhookArgs(w *store.Webhook) ([]any, error) {
	secrets := make([]secretJSON, len(w.Secrets))
	for i, sec := range w.Secrets {
		secrets[i] = secretJSON{Value: sec.Value, ExpiresAt: nullTime(sec.ExpiresAt)}
	}
	sj, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	headers := w.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	hj, err := json.Marshal(headers)
	if err != nil {
		return nil, err
	}
	events := w.Events
	if events == nil {
		events = []string{}
	}
	return []any{
		w.ID, w.Tenant, w.URL, events, w.Description, w.Active, w.DisabledReason, string(sj), string(hj),
		w.MaxAttempts, w.RateLimit, ts(w.CreatedAt), ts(w.UpdatedAt),
	}, nil
}

func scanWebhook(row pgx.Row) (*store.Webhook, error) {
	var (
		w      store.Webhook
		sj, hj []byte
		maxAtt int32
	)
	err := row.Scan(&w.ID, &w.Tenant, &w.URL, &w.Events, &w.Description, &w.Active, &w.DisabledReason,
		&sj, &hj, &maxAtt, &w.RateLimit, &w.CreatedAt, &w.UpdatedAt)
	if err != nil {
		return nil, err
	}
	w.MaxAttempts = int(maxAtt)
	var secrets []secretJSON
	if err := json.Unmarshal(sj, &secrets); err != nil {
		return nil, fmt.Errorf("secrets of webhook %q: %w", w.ID, err)
	}
	if len(secrets) > 0 {
		w.Secrets = make([]store.Secret, len(secrets))
		for i, sec := range secrets {
			w.Secrets[i] = store.Secret{Value: sec.Value, ExpiresAt: fromNull(sec.ExpiresAt)}
		}
	}
	if err := json.Unmarshal(hj, &w.Headers); err != nil {
		return nil, fmt.Errorf("headers of webhook %q: %w", w.ID, err)
	}
	if len(w.Headers) == 0 {
		w.Headers = nil
	}
	if len(w.Events) == 0 {
		w.Events = nil
	}
	w.CreatedAt, w.UpdatedAt = w.CreatedAt.UTC(), w.UpdatedAt.UTC()
	return &w, nil
}

func collectWebhooks(rows pgx.Rows) ([]*store.Webhook, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Webhook, error) { return scanWebhook(r) })
}

func validateWebhook(w *store.Webhook) error {
	switch {
	case w == nil:
		return invalid("nil webhook")
	case w.ID == "":
		return invalid("webhook without id")
	case w.Tenant == "":
		return invalid("webhook %q without tenant", w.ID)
	}
	ok := textOK(w.ID) && textOK(w.Tenant) && textOK(w.URL) && textOK(w.Description) && textOK(w.DisabledReason)
	for _, e := range w.Events {
		ok = ok && textOK(e)
	}
	for _, sec := range w.Secrets {
		ok = ok && textOK(sec.Value)
	}
	for k, v := range w.Headers {
		ok = ok && textOK(k) && textOK(v)
	}
	if !ok {
		return invalid("webhook %q holds a string that is not valid UTF-8 or has a NUL byte", w.ID)
	}
	return nil
}

// CreateWebhook stores w. It sets CreatedAt to now when zero and UpdatedAt
// to CreatedAt when zero, writing both back into w. ErrConflict when the
// id is taken.
func (s *Store) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	return s.CreateWebhookCapped(ctx, w, 0)
}

// CreateWebhookCapped is CreateWebhook, unless w.Tenant has limit webhooks or
// more already (store.ErrLimit). See store.CappedCreator. The creates of
// one tenant's webhooks under a cap take turns, across replicas, on a
// transaction-scoped advisory lock of the tenant, so each counts what the
// ones before it stored.
func (s *Store) CreateWebhookCapped(ctx context.Context, w *store.Webhook, limit int) (err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := validateWebhook(w); err != nil {
		return err
	}
	c := *w
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now()
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	args, err := webhookArgs(&c)
	if err != nil {
		return invalid("webhook %q: %v", w.ID, err)
	}
	err = retry(ctx, func() error {
		if limit <= 0 {
			_, err := s.pool.Exec(ctx, s.q.insertWebhook, args...)
			return err
		}
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", tenantLockKey(s.schema, c.Tenant)); err != nil {
				return err
			}
			// Inserted first, so that an id in use is a conflict whatever
			// the count; counted after, in a statement whose snapshot
			// follows the lock, and rolled back when over the cap.
			if _, err := tx.Exec(ctx, s.q.insertWebhook, args...); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, s.q.countTenantWebhooks, c.Tenant, limit+1).Scan(&n); err != nil {
				return err
			}
			if n > limit {
				return fmt.Errorf("pgstore: tenant has %d webhooks, the most allowed: %w", limit, store.ErrLimit)
			}
			return nil
		})
	})
	if errors.Is(err, store.ErrLimit) {
		return err
	}
	if pgCode(err) == codeUniqueViolation {
		return fmt.Errorf("pgstore: webhook %q exists: %w", w.ID, store.ErrConflict)
	}
	if err != nil {
		return wrap(err)
	}
	w.CreatedAt, w.UpdatedAt = ts(c.CreatedAt), ts(c.UpdatedAt)
	return nil
}

// tenantLockKey is the advisory lock that serializes the capped creates of
// one tenant's webhooks in schema (see Store.CreateWebhookCapped): a
// lockKey no schema's migrations use, as no schema name holds a colon. Two
// tenants whose keys collide only take turns.
func tenantLockKey(schema, tenant string) int64 {
	return lockKey("tenant:" + schema + "\x00" + tenant)
}

// GetWebhook returns the webhook with the given id, of any tenant.
func (s *Store) GetWebhook(ctx context.Context, id string) (_ *store.Webhook, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, invalid("empty webhook id")
	}
	if !textOK(id) {
		return nil, notFound("webhook", id)
	}
	w, err := scanWebhook(s.pool.QueryRow(ctx, s.q.getWebhook, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("webhook", id)
	}
	return w, wrap(err)
}

// ListWebhooks returns a page of the tenant's webhooks, newest (highest id)
// first, and the cursor of the next page ("" on the last).
func (s *Store) ListWebhooks(ctx context.Context, p store.ListWebhooksParams) (_ []*store.Webhook, _ string, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, "", err
	}
	if p.Tenant == "" {
		return nil, "", invalid("listing webhooks without tenant")
	}
	if err := checkLimit(p.Limit); err != nil {
		return nil, "", err
	}
	after, err := decodeCursor('w', p.Cursor)
	if err != nil {
		return nil, "", err
	}
	if !textOK(p.Tenant) {
		return nil, "", nil
	}
	var rows pgx.Rows
	if after == "" {
		rows, err = s.pool.Query(ctx, s.q.listWebhooks, p.Tenant, p.Limit+1)
	} else {
		rows, err = s.pool.Query(ctx, s.q.listWebhooksAfter, p.Tenant, p.Limit+1, after)
	}
	if err != nil {
		return nil, "", wrap(err)
	}
	ws, err := collectWebhooks(rows)
	if err != nil {
		return nil, "", wrap(err)
	}
	next := ""
	if len(ws) > p.Limit {
		ws = ws[:p.Limit]
		next = encodeCursor('w', ws[len(ws)-1].ID)
	}
	return ws, next, nil
}

// UpdateWebhook changes the webhook id in one transaction that holds its
// row lock from the read to the write, so updates from several replicas
// queue rather than undo each other. See store.Store.
func (s *Store) UpdateWebhook(ctx context.Context, id string, change func(w *store.Webhook) error) (_ *store.Webhook, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, invalid("empty webhook id")
	}
	if !textOK(id) {
		return nil, notFound("webhook", id)
	}
	var out *store.Webhook
	var changeErr error
	// A transaction retried runs change again, on a fresh copy, as the
	// store.Store contract allows.
	err = retry(ctx, func() error {
		changeErr = nil
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			w, err := scanWebhook(tx.QueryRow(ctx, s.q.lockWebhook, id))
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound("webhook", id)
			}
			if err != nil {
				return err
			}
			tenant, created := w.Tenant, w.CreatedAt
			if changeErr = change(w); changeErr != nil {
				return changeErr
			}
			w.ID, w.Tenant, w.CreatedAt = id, tenant, created
			if err := validateWebhook(w); err != nil {
				return err
			}
			if w.UpdatedAt.IsZero() {
				w.UpdatedAt = now()
			}
			w.UpdatedAt = ts(w.UpdatedAt)
			args, err := webhookArgs(w)
			if err != nil {
				return invalid("webhook %q: %v", id, err)
			}
			args = append(args[:11], args[12]) // all but created_at
			if _, err := tx.Exec(ctx, s.q.updateWebhook, args...); err != nil {
				return err
			}
			// What is stored is returned: expiries truncated (which also
			// drops their monotonic readings), in a slice change never saw.
			w.Secrets = slices.Clone(w.Secrets)
			for i := range w.Secrets {
				w.Secrets[i].ExpiresAt = fromNull(nullTime(w.Secrets[i].ExpiresAt))
			}
			out = w
			return nil
		})
	})
	if changeErr != nil {
		return nil, changeErr
	}
	if err != nil {
		return nil, wrapTx(err)
	}
	return out, nil
}

// DeleteWebhook removes the webhook with its deliveries and their attempts.
func (s *Store) DeleteWebhook(ctx context.Context, id string) (err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return err
	}
	if id == "" {
		return invalid("empty webhook id")
	}
	if !textOK(id) {
		return notFound("webhook", id)
	}
	var tag pgconn.CommandTag
	err = retry(ctx, func() (err error) {
		tag, err = s.pool.Exec(ctx, s.q.deleteWebhook, id)
		return err
	})
	if err != nil {
		return wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("webhook", id)
	}
	return nil
}

// MatchWebhooks returns the tenant's active webhooks subscribed to
// eventType, oldest (lowest id) first.
func (s *Store) MatchWebhooks(ctx context.Context, tenant, eventType string) (_ []*store.Webhook, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if tenant == "" || eventType == "" {
		return nil, invalid("matching webhooks needs a tenant and an event type")
	}
	if !textOK(tenant) {
		return nil, nil
	}
	// An event type text cannot hold is matched as its cleaned form, which
	// starts with every prefix (text itself) the raw one starts with: a
	// superset, which MatchAny below narrows.
	rows, err := s.pool.Query(ctx, s.q.matchWebhooks, tenant, cleanText(eventType))
	if err != nil {
		return nil, wrap(err)
	}
	ws, err := collectWebhooks(rows)
	if err != nil {
		return nil, wrap(err)
	}
	// The SQL filter mirrors store.MatchEvent; MatchAny stays the
	// definition.
	return slices.DeleteFunc(ws, func(w *store.Webhook) bool { return !store.MatchAny(w.Events, eventType) }), nil
}
