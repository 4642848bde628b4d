package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/noa-server/webhook/store"
)

const deliveryCols = `id, webhook_id, event_id, event_type, tenant, body, status, attempts, round_attempts,
	next_attempt_at, lease_owner, lease_expires_at, last_status_code, last_error, created_at, updated_at`

// deliveryColsNoBody is deliveryCols with a NULL body, for a listing
// WithoutBody: the body is neither read from disk (a large one is TOASTed
// apart from the row) nor sent.
const deliveryColsNoBody = `id, webhook_id, event_id, event_type, tenant, NULL::bytea, status, attempts, round_attempts,
	next_attempt_at, lease_owner, lease_expires_at, last_status_code, last_error, created_at, updated_at`

func scanDelivery(row pgx.Row) (*store.Delivery, error) {
	var (
		d                      store.Delivery
		status                 string
		att, round, code       int32
		leaseExpires           *time.Time
		next, created, updated time.Time
	)
	err := row.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Tenant, &d.Body, &status, &att, &round,
		&next, &d.LeaseOwner, &leaseExpires, &code, &d.LastError, &created, &updated)
	if err != nil {
		return nil, err
	}
	d.Status = store.Status(status)
	d.Attempts, d.RoundAttempts, d.LastStatusCode = int(att), int(round), int(code)
	d.NextAttemptAt, d.LeaseExpiresAt = next.UTC(), fromNull(leaseExpires)
	d.CreatedAt, d.UpdatedAt = created.UTC(), updated.UTC()
	return &d, nil
}

func collectDeliveries(rows pgx.Rows) ([]*store.Delivery, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Delivery, error) { return scanDelivery(r) })
}

type dedupKey struct{ eventID, webhookID string }

// commitWait bounds how long Enqueue waits, whatever its context, for the
// answer to the COMMIT (or ROLLBACK) it sent.
const commitWait = time.Minute

// Enqueue stores the deliveries in one statement: all or none. A delivery
// whose (EventID, WebhookID) is stored already, or appears earlier in ds,
// is not stored again; its slot in the result holds the stored id. It
// wakes every WakeUps subscriber, on every replica, when it stored any
// delivery that is not leased. When ctx ends first, Enqueue returns its
// error and has stored nothing; once the deliveries are committed, it
// returns their ids even if ctx ends meanwhile (it waits at most a minute
// for the commit's answer).
func (s *Store) Enqueue(ctx context.Context, ds []*store.Delivery) (_ []string, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, nil
	}
	// Validate, and fold duplicates within the batch onto their first. A
	// duplicate's id is not looked at: the one of a stored delivery is
	// checked by the table's primary key, which refuses a batch that
	// stores two deliveries under one id with a unique violation.
	first := make(map[dedupKey]int, len(ds)) // key -> index into the input arrays
	slot := make([]int, len(ds))             // input i -> index into the input arrays
	var (
		n                                     int
		ids, webhooks, events, types, tenants []string
		bodies                                [][]byte
		nexts, createds, updateds             []time.Time
		owners                                []string
		expires                               []*time.Time // nil: not leased
	)
	if err := store.ValidateEnqueue(ds); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	stamp := now()
	for i, d := range ds {
		switch {
		case !textOK(d.ID) || !textOK(d.WebhookID) || !textOK(d.EventID) || !textOK(d.EventType) || !textOK(d.Tenant):
			return nil, invalid("delivery %d holds a string that is not valid UTF-8 or has a NUL byte", i)
		}
		key := dedupKey{d.EventID, d.WebhookID}
		if j, ok := first[key]; ok {
			slot[i] = j
			continue
		}
		created := ts(d.CreatedAt)
		if created.IsZero() {
			created = stamp
		}
		updated, next := ts(d.UpdatedAt), ts(d.NextAttemptAt)
		if updated.IsZero() {
			updated = created
		}
		if next.IsZero() {
			next = created
		}
		first[key], slot[i] = n, n
		n++
		ids, webhooks, events = append(ids, d.ID), append(webhooks, d.WebhookID), append(events, d.EventID)
		types, tenants, bodies = append(types, d.EventType), append(tenants, d.Tenant), append(bodies, nonNil(d.Body))
		nexts, createds, updateds = append(nexts, next), append(createds, created), append(updateds, updated)
		var exp *time.Time
		if d.LeaseOwner != "" {
			e := ts(d.LeaseExpiresAt)
			exp = &e
		}
		owners, expires = append(owners, d.LeaseOwner), append(expires, exp)
	}

	var (
		stored   []string // input array index -> stored id
		badErr   error
		inserted []bool // input array index -> inserted by the statement
	)
	err = retry(ctx, func() error {
		stored, badErr, inserted = make([]string, n), nil, make([]bool, n)
		// The statement runs in a transaction committed only while ctx
		// lives, and the commit's answer is awaited whatever ctx does: a
		// statement left running when ctx ended (waiting on a lock, or for
		// the disk) must not commit after Enqueue has returned ctx's
		// error, or the caller, told nothing was stored, emits again what
		// is delivered already.
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(s.q.enqueue, ids, webhooks, events, types, tenants, bodies,
			nexts, createds, updateds, owners, expires, s.channel)
		err = func() error {
			br := conn.SendBatch(ctx, b)
			defer br.Close()
			if _, err := br.Exec(); err != nil {
				return err
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var (
					kind, val string
					ord       int64
				)
				if err := rows.Scan(&kind, &ord, &val); err != nil {
					return err
				}
				switch kind {
				case "bad":
					i := int(ord - 1)
					if val == "missing" {
						badErr = errors.Join(badErr, notFound("webhook", webhooks[i]))
					} else {
						badErr = errors.Join(badErr, invalid("delivery %q names tenant %q, its webhook belongs to another", ids[i], tenants[i]))
					}
				case "old":
					stored[ord-1] = val
				case "new":
					inserted[ord-1] = true
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			return br.Close()
		}()
		if err == nil && badErr == nil {
			err = ctx.Err()
		}
		end := "COMMIT"
		if err != nil || badErr != nil {
			end = "ROLLBACK"
		}
		if conn.Conn().IsClosed() {
			// ctx ended under way: pgx closed the connection, and the
			// server rolls the transaction back.
			return err
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitWait)
		defer cancel()
		if _, cerr := conn.Exec(wctx, end); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return nil, s.enqueueError(err)
	}
	if badErr != nil {
		return nil, badErr
	}
	var missing []int
	for i := range n {
		// An input inserted is the stored delivery even when the
		// statement's snapshot showed another one for its event: that one
		// was deleted (purged) by a transaction that committed meanwhile,
		// or the insert would have conflicted.
		if inserted[i] {
			stored[i] = ids[i]
		}
		if stored[i] == "" {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		// Stored by a transaction that committed after the statement's
		// snapshot: ON CONFLICT saw it, the join did not. Read whatever
		// ctx does, as the deliveries are committed.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitWait)
		defer cancel()
		if err := s.lookupStored(lctx, missing, events, webhooks, stored); err != nil {
			return nil, err
		}
	}
	out := make([]string, len(ds))
	for i := range ds {
		out[i] = stored[slot[i]]
	}
	return out, nil
}

func (s *Store) lookupStored(ctx context.Context, missing []int, events, webhooks []string, stored []string) error {
	evs, whs := make([]string, len(missing)), make([]string, len(missing))
	for j, i := range missing {
		evs[j], whs[j] = events[i], webhooks[i]
	}
	rows, err := s.pool.Query(ctx, s.q.enqueueLookup, evs, whs)
	if err != nil {
		return wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ord int64
			id  string
		)
		if err := rows.Scan(&ord, &id); err != nil {
			return wrap(err)
		}
		stored[missing[ord-1]] = id
	}
	if err := rows.Err(); err != nil {
		return wrap(err)
	}
	for _, i := range missing {
		if stored[i] == "" {
			// Deleted (with its webhook) in between.
			return notFound("webhook", webhooks[i])
		}
	}
	return nil
}

func (s *Store) enqueueError(err error) error {
	switch pgCode(err) {
	case codeUniqueViolation:
		return fmt.Errorf("pgstore: a delivery id is in use for another event: %w", store.ErrConflict)
	case codeForeignKeyViolation:
		return fmt.Errorf("pgstore: a delivery's webhook was deleted: %w", store.ErrNotFound)
	}
	return wrap(err)
}

// Claim leases up to p.Limit due deliveries that hold no live lease, oldest
// NextAttemptAt first (ties by id), and returns them in that order. Claims
// running at once, in this process or another, never return the same
// delivery while its lease is live, and never wait on each other's rows.
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) (_ []*store.Delivery, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	skip := p.SkipWebhooks
	if skip == nil {
		skip = []string{}
	} else if !textOKs(skip...) {
		// No delivery has such a webhook id to skip.
		skip = slices.DeleteFunc(slices.Clone(skip), func(id string) bool { return !textOK(id) })
	}
	var ds []*store.Delivery
	err = retry(ctx, func() error {
		rows, err := s.pool.Query(ctx, s.q.claim, ts(p.Now), skip, p.Limit, p.Owner, ts(p.Now.Add(p.Lease)))
		if err != nil {
			return err
		}
		ds, err = collectDeliveries(rows)
		return err
	})
	if err != nil {
		return nil, wrap(err)
	}
	slices.SortFunc(ds, func(a, b *store.Delivery) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ds, nil
}

// Complete records p.Attempt and moves the delivery to p.Status (failed
// instead of pending when its webhook is inactive), releasing the lease, in
// one transaction. ErrLeaseLost when the delivery is not pending or p.Owner
// does not hold its lease; ErrConflict when the attempt number is not the
// next one. With p.DisableWebhook it also deactivates the webhook and fails
// its other pending deliveries that are not leased, atomically.
func (s *Store) Complete(ctx context.Context, p store.CompleteParams) (err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if !textOKs(p.DeliveryID, p.Owner) {
		return s.completeUnknown(ctx, p)
	}
	a := p.Attempt
	reqH, err := json.Marshal(cleanHeader(a.RequestHeaders))
	if err != nil {
		return invalid("attempt request headers: %v", err)
	}
	respH, err := json.Marshal(cleanHeader(a.ResponseHeaders))
	if err != nil {
		return invalid("attempt response headers: %v", err)
	}
	// The webhook's state is read by the query (a retry of an inactive
	// webhook's delivery fails there, and so does its round count).
	status, _ := p.Outcome(true)
	args := []any{
		p.DeliveryID, p.Owner, a.Number, ts(a.StartedAt), int64(a.Duration), cleanText(a.RequestURL), string(reqH),
		a.ResponseStatus, string(respH), nonNil(a.ResponseBody), cleanText(string(a.ErrorClass)), cleanText(a.Error),
		string(status), ts(p.NextAttemptAt), ts(p.Now), p.KeepRoundAttempts,
	}
	if p.DisableWebhook == "" {
		return retry(ctx, func() error { return s.complete(ctx, s.pool, p, args) })
	}
	return wrapTx(retry(ctx, func() error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			var webhookID string
			err := tx.QueryRow(ctx, s.q.lockWebhookOf, p.DeliveryID).Scan(&webhookID)
			if errors.Is(err, pgx.ErrNoRows) {
				return notFound("delivery", p.DeliveryID)
			}
			if err != nil {
				return err
			}
			if err := s.complete(ctx, tx, p, args); err != nil {
				return err
			}
			reason := cleanText(p.DisableWebhook)
			if _, err := tx.Exec(ctx, s.q.disableWebhook, webhookID, reason, ts(p.Now)); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, s.q.failOthers, webhookID, p.DeliveryID, reason, ts(p.Now))
			return err
		})
	}))
}

// completeUnknown answers a Complete by a delivery id or owner that no
// record can hold: ErrNotFound for the id, ErrLeaseLost for an owner of a
// delivery that exists (no lease can be held by it).
func (s *Store) completeUnknown(ctx context.Context, p store.CompleteParams) error {
	ok := false
	if textOK(p.DeliveryID) {
		if err := s.pool.QueryRow(ctx, s.q.existsDelivery, p.DeliveryID).Scan(&ok); err != nil {
			return wrap(err)
		}
	}
	if !ok {
		return notFound("delivery", p.DeliveryID)
	}
	return fmt.Errorf("pgstore: delivery %q is not leased by %q: %w", p.DeliveryID, p.Owner, store.ErrLeaseLost)
}

// querier is what Complete needs of a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) complete(ctx context.Context, q querier, p store.CompleteParams, args []any) error {
	var (
		status, owner string
		attempts      int32
		done          int64
	)
	err := q.QueryRow(ctx, s.q.complete, args...).Scan(&status, &owner, &attempts, &done)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return notFound("delivery", p.DeliveryID)
	case err != nil:
		return wrap(err)
	case done == 1:
		return nil
	case status != string(store.StatusPending) || owner != p.Owner:
		return fmt.Errorf("pgstore: delivery %q is not leased by %q: %w", p.DeliveryID, p.Owner, store.ErrLeaseLost)
	default:
		return fmt.Errorf("pgstore: attempt %d of delivery %q, which has %d: %w", p.Attempt.Number, p.DeliveryID, attempts, store.ErrConflict)
	}
}

// wrapTx wraps a transaction's error unless it already is one of ours.
func wrapTx(err error) error {
	if err == nil || strings.HasPrefix(err.Error(), "pgstore: ") {
		return err
	}
	return wrap(err)
}

// Release gives up p.Owner's leases on p.IDs, so the deliveries are
// claimable at once, and wakes WakeUps subscribers when it released any.
func (s *Store) Release(ctx context.Context, p store.ReleaseParams) (err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return err
	}
	if p.Owner == "" {
		return invalid("release without owner")
	}
	if slices.Contains(p.IDs, "") {
		return invalid("release of an empty id")
	}
	ids := p.IDs
	if !textOK(p.Owner) {
		return nil // it holds no lease
	}
	if !textOKs(ids...) {
		ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !textOK(id) })
	}
	if len(ids) == 0 {
		return nil
	}
	return wrap(retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, s.q.release, ids, p.Owner, s.channel)
		return err
	}))
}

// GetDelivery returns one delivery.
func (s *Store) GetDelivery(ctx context.Context, id string) (_ *store.Delivery, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, invalid("empty delivery id")
	}
	if !textOK(id) {
		return nil, notFound("delivery", id)
	}
	d, err := scanDelivery(s.pool.QueryRow(ctx, s.q.getDelivery, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("delivery", id)
	}
	return d, wrap(err)
}

// ListDeliveries returns a page of the tenant's deliveries, newest (highest
// id) first, filtered by exact WebhookID, Status and EventType when set,
// and the cursor of the next page ("" on the last).
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) (_ []*store.Delivery, _ string, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, "", err
	}
	if p.Tenant == "" {
		return nil, "", invalid("listing deliveries without tenant")
	}
	if p.Status != "" && !p.Status.Valid() {
		return nil, "", invalid("unknown status %q", p.Status)
	}
	if err := checkLimit(p.Limit); err != nil {
		return nil, "", err
	}
	after, err := decodeCursor('d', p.Cursor)
	if err != nil {
		return nil, "", err
	}
	if !textOKs(p.Tenant, p.WebhookID, p.EventType) {
		return nil, "", nil
	}
	var b strings.Builder
	args := []any{p.Tenant, p.Limit + 1}
	cols := deliveryCols
	if p.WithoutBody {
		cols = deliveryColsNoBody
	}
	b.WriteString(`SELECT ` + cols + ` FROM ` + s.q.schema + `.deliveries WHERE tenant = $1`)
	add := func(cond string, v any) {
		args = append(args, v)
		b.WriteString(" AND " + cond + " $" + strconv.Itoa(len(args)))
	}
	if p.WebhookID != "" {
		add("webhook_id =", p.WebhookID)
	}
	if p.Status != "" {
		add("status =", string(p.Status))
	}
	if p.EventType != "" {
		add("event_type =", p.EventType)
	}
	if after != "" {
		add("id <", after)
	}
	b.WriteString(" ORDER BY id DESC LIMIT $2")
	rows, err := s.pool.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, "", wrap(err)
	}
	ds, err := collectDeliveries(rows)
	if err != nil {
		return nil, "", wrap(err)
	}
	next := ""
	if len(ds) > p.Limit {
		ds = ds[:p.Limit]
		next = encodeCursor('d', ds[len(ds)-1].ID)
	}
	return ds, next, nil
}

// ListAttempts returns a delivery's attempts in order.
func (s *Store) ListAttempts(ctx context.Context, deliveryID string) (_ []*store.Attempt, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if deliveryID == "" {
		return nil, invalid("empty delivery id")
	}
	if !textOK(deliveryID) {
		return nil, notFound("delivery", deliveryID)
	}
	rows, err := s.pool.Query(ctx, s.q.listAttempts, deliveryID)
	if err != nil {
		return nil, wrap(err)
	}
	as, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Attempt, error) {
		var (
			a           store.Attempt
			num, status int32
			dur         int64
			reqH, respH []byte
			class       string
		)
		if err := r.Scan(&a.DeliveryID, &num, &a.StartedAt, &dur, &a.RequestURL, &reqH, &status, &respH,
			&a.ResponseBody, &class, &a.Error); err != nil {
			return nil, err
		}
		a.Number, a.ResponseStatus, a.Duration = int(num), int(status), time.Duration(dur)
		a.StartedAt, a.ErrorClass = a.StartedAt.UTC(), store.ErrorClass(class)
		if err := json.Unmarshal(reqH, &a.RequestHeaders); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(respH, &a.ResponseHeaders); err != nil {
			return nil, err
		}
		return &a, nil
	})
	if err != nil {
		return nil, wrap(err)
	}
	if len(as) == 0 {
		var ok bool
		if err := s.pool.QueryRow(ctx, s.q.existsDelivery, deliveryID).Scan(&ok); err != nil {
			return nil, wrap(err)
		}
		if !ok {
			return nil, notFound("delivery", deliveryID)
		}
	}
	return as, nil
}

// Redeliver makes a finished delivery pending and due at p.Now with a
// fresh retry budget, and wakes WakeUps subscribers. ErrConflict when the
// delivery is pending.
func (s *Store) Redeliver(ctx context.Context, p store.RedeliverParams) (_ *store.Delivery, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if p.ID == "" {
		return nil, invalid("empty delivery id")
	}
	if p.Now.IsZero() {
		return nil, invalid("redeliver without Now")
	}
	if !textOK(p.ID) {
		return nil, notFound("delivery", p.ID)
	}
	var d *store.Delivery
	err = retry(ctx, func() (err error) {
		d, err = scanDelivery(s.pool.QueryRow(ctx, s.q.redeliver, p.ID, ts(p.Now), s.channel))
		return err
	})
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap(err)
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, s.q.existsDelivery, p.ID).Scan(&ok); err != nil {
		return nil, wrap(err)
	}
	if !ok {
		return nil, notFound("delivery", p.ID)
	}
	return nil, fmt.Errorf("pgstore: delivery %q is pending: %w", p.ID, store.ErrConflict)
}

// Purge removes finished deliveries last updated before p.Before, with
// their attempts, oldest first when p.Limit bounds them, and returns how
// many. Deliveries another transaction holds locked are left for later.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (_ int, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	if p.Before.IsZero() {
		return 0, invalid("purge without Before")
	}
	if p.Limit < 0 {
		return 0, invalid("purge limit %d", p.Limit)
	}
	var tag pgconn.CommandTag
	err = retry(ctx, func() (err error) {
		if p.Limit == 0 {
			tag, err = s.pool.Exec(ctx, s.q.purge, ceilMicro(p.Before))
		} else {
			tag, err = s.pool.Exec(ctx, s.q.purgeLimit, ceilMicro(p.Before), p.Limit)
		}
		return err
	})
	if err != nil {
		return 0, wrap(err)
	}
	return int(tag.RowsAffected()), nil
}

// CountDeliveries tallies one webhook's deliveries by status.
func (s *Store) CountDeliveries(ctx context.Context, webhookID string) (_ store.Counts, err error) {
	defer s.closing(&err)
	if err := s.check(ctx); err != nil {
		return store.Counts{}, err
	}
	if webhookID == "" {
		return store.Counts{}, invalid("empty webhook id")
	}
	if !textOK(webhookID) {
		return store.Counts{}, notFound("webhook", webhookID)
	}
	var (
		c  store.Counts
		ok bool
	)
	if err := s.pool.QueryRow(ctx, s.q.countDeliveries, webhookID).Scan(&ok, &c.Pending, &c.Success, &c.Failed); err != nil {
		return store.Counts{}, wrap(err)
	}
	if !ok {
		return store.Counts{}, notFound("webhook", webhookID)
	}
	return c, nil
}
