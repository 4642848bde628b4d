package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
)

// Enqueue stores the deliveries in one transaction: all or none. A delivery
// whose (EventID, WebhookID) is already stored, or earlier in ds, is not
// stored again; its slot in the result holds the stored delivery's id.
func (s *Store) Enqueue(ctx context.Context, ds []*store.Delivery) ([]string, error) {
	if err := store.ValidateEnqueue(ds); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	if len(ds) == 0 {
		if err := s.begin(ctx); err != nil {
			return nil, err
		}
		s.mu.RUnlock()
		return []string{}, nil
	}
	now := s.now()
	// What each delivery writes is encoded before the transaction, which
	// holds the file's writer for every call it shares, into one pooled
	// buffer: bbolt keeps a Put's value until the transaction ends and
	// copies its key, so the buffer is free again once write returns.
	buf := getWriteBuf()
	defer putWriteBuf(buf)
	kvs := make([]enqueueWrites, len(ds))
	for i, in := range ds {
		d := newStored(in, now)
		kvs[i], *buf = appendEnqueueWrites(*buf, &d)
	}
	// The function may run again (see write): it sets every slot each time.
	ids := make([]string, len(ds))
	// The leases of the deliveries stored leased are granted before the
	// commit that makes them claimable, and taken back if it fails: those
	// of every run of the function, since a run can fail where an earlier
	// one did not (another writer may commit between two runs).
	var granted []int // indexes in ds
	err := s.write(ctx, func(w *wtx) error {
		tx := w.Tx
		deliveries, dedup := tx.Bucket(bDeliveries), tx.Bucket(bDedup)
		for i, in := range ds {
			// Keys that are only looked up live on the stack (a Seek keeps
			// no key); what Put keeps is carved from one allocation.
			var kb [128]byte
			// Only the webhook's tenant is read, not the whole record.
			v := w.get(bWebhooks, append(kb[:0], in.WebhookID...))
			if v == nil {
				return notFound("webhook", in.WebhookID)
			}
			tenant, err := peekWebhookTenant(v)
			if err != nil {
				return fmt.Errorf("boltstore: webhook %q: %w", in.WebhookID, err)
			}
			if string(tenant) != in.Tenant {
				return invalid("delivery %q: webhook %q belongs to another tenant", in.ID, in.WebhookID)
			}
			if v := w.get(bDedup, append(appendPrefix(kb[:0], in.EventID), in.WebhookID...)); v != nil {
				ids[i] = string(v)
				continue
			}
			if w.get(bDeliveries, append(kb[:0], in.ID...)) != nil {
				return fmt.Errorf("boltstore: delivery %q: %w", in.ID, store.ErrConflict)
			}
			kv := &kvs[i]
			if err := deliveries.Put(kv.id, kv.record); err != nil {
				return err
			}
			if err := dedup.Put(kv.dedupKey, kv.id); err != nil {
				return err
			}
			if err := tx.Bucket(bDelTenant).Put(kv.tenantKey, nil); err != nil {
				return err
			}
			if err := tx.Bucket(bDelWebhook).Put(kv.webhookKey, nil); err != nil {
				return err
			}
			if err := putDue(tx, kv.indexKey, kv.indexValue); err != nil {
				return err
			}
			if in.LeaseOwner != "" {
				s.leases.mu.Lock()
				s.leases.grant(in.ID, in.LeaseOwner, in.LeaseExpiresAt)
				s.leases.mu.Unlock()
				granted = append(granted, i)
			}
			w.cnt.add(in.WebhookID, store.StatusPending, 1)
			ids[i] = in.ID
		}
		return nil
	})
	for _, i := range granted {
		// Not stored by the run that committed (failed, or stored already).
		if err != nil || ids[i] != ds[i].ID {
			s.leases.release(ds[i].LeaseOwner, []string{ds[i].ID})
		}
	}
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// newStored returns the delivery Enqueue stores for in: pending, its
// unset times defaulted (CreatedAt to now, the others to CreatedAt).
func newStored(in *store.Delivery, now time.Time) store.Delivery {
	d := store.Delivery{
		ID: in.ID, WebhookID: in.WebhookID, EventID: in.EventID, EventType: in.EventType,
		Tenant: in.Tenant, Body: in.Body, Status: store.StatusPending,
		NextAttemptAt: in.NextAttemptAt, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now
	}
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = d.CreatedAt
	}
	if d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = d.CreatedAt
	}
	return d
}

// enqueueWrites are the keys and values Enqueue writes for a delivery.
type enqueueWrites struct {
	record, id            []byte // deliveries
	dedupKey              []byte // dedup, whose value is id
	tenantKey, webhookKey []byte // deliveries_by_tenant and _by_webhook
	indexKey, indexValue  []byte // due
}

// appendEnqueueWrites appends d's writes to b, and returns them carved
// from it with the extended b.
func appendEnqueueWrites(b []byte, d *store.Delivery) (enqueueWrites, []byte) {
	id, wid := len(d.ID), len(d.WebhookID)
	b = slices.Grow(b, deliveryLen(d)+id+prefixLen(len(d.EventID))+wid+prefixLen(len(d.Tenant))+id+
		prefixLen(wid)+id+timeKeyLen+id+wid)
	var kv enqueueWrites
	m := len(b)
	b = appendDelivery(b, d)
	kv.record = carve(b, m)
	m = len(b)
	b = append(b, d.ID...)
	kv.id = carve(b, m)
	m = len(b)
	b = append(appendPrefix(b, d.EventID), d.WebhookID...)
	kv.dedupKey = carve(b, m)
	m = len(b)
	b = append(appendPrefix(b, d.Tenant), d.ID...)
	kv.tenantKey = carve(b, m)
	m = len(b)
	b = append(appendPrefix(b, d.WebhookID), d.ID...)
	kv.webhookKey = carve(b, m)
	m = len(b)
	b = appendTimeKey(b, d.NextAttemptAt, d.ID)
	kv.indexKey = carve(b, m)
	m = len(b)
	b = append(b, d.WebhookID...)
	kv.indexValue = carve(b, m)
	return kv, b
}

// getDelivery reads a delivery in tx; ErrNotFound when absent.
func getDelivery(tx *bolt.Tx, id string) (*store.Delivery, error) {
	return seekDelivery(tx.Bucket(bDeliveries).Cursor(), []byte(id))
}

// seekDelivery reads a delivery with c, a cursor of deliveries;
// ErrNotFound when absent.
func seekDelivery(c *bolt.Cursor, id []byte) (*store.Delivery, error) {
	k, v := c.Seek(id)
	if !bytes.Equal(k, id) {
		return nil, notFound("delivery", string(id))
	}
	d, err := decodeDelivery(v)
	if err != nil {
		return nil, fmt.Errorf("boltstore: delivery %q: %w", id, err)
	}
	return d, nil
}

func putDelivery(tx *bolt.Tx, d *store.Delivery) error {
	return tx.Bucket(bDeliveries).Put([]byte(d.ID), encodeDelivery(d))
}

// unindexPending removes a pending delivery from due (or due_held).
func unindexPending(tx *bolt.Tx, d *store.Delivery) error {
	return deleteDue(tx, timeKey(d.NextAttemptAt, d.ID), []byte(d.WebhookID))
}

// putDue indexes the due entry key (t(NextAttemptAt) + id) of a delivery of
// webhookID: in due_held when the webhook has deliveries held there (see
// Claim), in due otherwise.
func putDue(tx *bolt.Tx, key, webhookID []byte) error {
	var pb [heldKeyBuf]byte
	if !held(tx, appendPrefix(pb[:0], webhookID)) {
		return tx.Bucket(bDue).Put(key, webhookID)
	}
	return tx.Bucket(bHeld).Put(appendHeldKey(nil, webhookID, key), nil)
}

// deleteDue removes the due entry key of a delivery of webhookID from due,
// or from due_held; an absent entry is no error.
func deleteDue(tx *bolt.Tx, key, webhookID []byte) error {
	c := tx.Bucket(bDue).Cursor()
	if k, _ := c.Seek(key); bytes.Equal(k, key) {
		return c.Delete()
	}
	var kb [heldKeyBuf]byte
	return tx.Bucket(bHeld).Delete(appendHeldKey(kb[:0], webhookID, key))
}

// heldKeyBuf is the size of the stack buffers due_held keys are built in:
// room for p(webhookID) + t + id with the library's "wh_"/"del_" UUID ids
// (a longer key is built on the heap).
const heldKeyBuf = 160

// appendHeldKey appends the due_held key of the due entry key of a delivery
// of webhookID: p(webhookID) + key.
func appendHeldKey(b, webhookID, key []byte) []byte {
	return append(appendPrefix(b, webhookID), key...)
}

// held reports whether due_held holds entries under pfx, a p(webhookID).
func held(tx *bolt.Tx, pfx []byte) bool {
	k, _ := tx.Bucket(bHeld).Cursor().Seek(pfx)
	return k != nil && bytes.HasPrefix(k, pfx)
}

// indexState puts a delivery in the index of its state: due when pending
// (it must hold no live lease), finished otherwise.
func indexState(tx *bolt.Tx, d *store.Delivery) error {
	if d.Status == store.StatusPending {
		return putDue(tx, timeKey(d.NextAttemptAt, d.ID), []byte(d.WebhookID))
	}
	return tx.Bucket(bFinished).Put(timeKey(d.UpdatedAt, d.ID), nil)
}

// unindexState removes a delivery from the index of its state.
func unindexState(tx *bolt.Tx, d *store.Delivery) error {
	if d.Status == store.StatusPending {
		return unindexPending(tx, d)
	}
	return tx.Bucket(bFinished).Delete(timeKey(d.UpdatedAt, d.ID))
}

// deleteDelivery removes a delivery, its index entries and its attempts;
// cnt (when not nil) records the change of counts.
func deleteDelivery(tx *bolt.Tx, lt *leaseTable, id string, cnt counts) error {
	d, err := getDelivery(tx, id)
	if err != nil {
		return err
	}
	return deleteRecord(tx, lt, d, cnt)
}

// deleteRecord is deleteDelivery of the stored delivery d.
func deleteRecord(tx *bolt.Tx, lt *leaseTable, d *store.Delivery, cnt counts) error {
	id := d.ID
	if err := unindexState(tx, d); err != nil {
		return err
	}
	if d.Status == store.StatusPending {
		lt.markMoved(tx, id)
	}
	for _, del := range []struct {
		bucket []byte
		key    []byte
	}{
		{bDeliveries, []byte(id)},
		{bDelTenant, pairKey(d.Tenant, id)},
		{bDelWebhook, pairKey(d.WebhookID, id)},
	} {
		if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return err
		}
	}
	// The dedup entry names this delivery unless a corrupt file says otherwise.
	dk := pairKey(d.EventID, d.WebhookID)
	if v := tx.Bucket(bDedup).Get(dk); string(v) == id {
		if err := tx.Bucket(bDedup).Delete(dk); err != nil {
			return err
		}
	}
	ab := tx.Bucket(bAttempts)
	pfx := prefix(id)
	var keys [][]byte
	c := ab.Cursor()
	for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := ab.Delete(k); err != nil {
			return err
		}
	}
	if cnt != nil {
		cnt.add(d.WebhookID, d.Status, -1)
	}
	return nil
}

// Claim leases up to p.Limit due deliveries not under a live lease, oldest
// NextAttemptAt first (ties by id). It reads one snapshot and writes
// nothing: the leases are the Store's, in memory (see Leases in the package
// documentation), granted under one lock, so two claimers never receive
// the same delivery while its lease is live. It reads O(log n + k) index
// entries; see the package documentation.
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Delivery, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	var skip map[string]bool
	if len(p.SkipWebhooks) > 0 {
		skip = make(map[string]bool, len(p.SkipWebhooks))
		for _, id := range p.SkipWebhooks {
			skip[id] = true
		}
	}
	out, stepped, err := s.claim(ctx, p, skip)
	if err != nil {
		return nil, err
	}
	// A claim that stepped over many deliveries of the webhooks it skips
	// moves them to due_held, where no claim steps over them again: a
	// webhook at its limit with a backlog (a hung endpoint's) would
	// otherwise cost every claim a step per delivery it holds. The move
	// spares later claims work and changes no answer, so a failed one is
	// left to the next claim that steps over them.
	if len(stepped) > s.hold.after {
		_ = s.write(ctx, func(w *wtx) error {
			due, heldIdx := w.Bucket(bDue), w.Bucket(bHeld)
			c := due.Cursor()
			for _, e := range stepped {
				if k, _ := c.Seek(e[0]); !bytes.Equal(k, e[0]) {
					continue // claimed, completed or moved since the snapshot
				}
				if err := c.Delete(); err != nil {
					return err
				}
				var kb [heldKeyBuf]byte
				if err := heldIdx.Put(appendHeldKey(kb[:0], e[1], e[0]), nil); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return out, nil
}

// claim takes Claim's deliveries from one snapshot, and returns them with
// the due entries of the skipped webhooks it stepped over (key, webhook id;
// at most s.hold.most of them).
func (s *Store) claim(ctx context.Context, p store.ClaimParams, skip map[string]bool) (out []*store.Delivery, stepped [][2][]byte, err error) {
	if err := s.begin(ctx); err != nil {
		return nil, nil, err
	}
	defer s.mu.RUnlock()
	tx, done, err := s.leases.snapshot(s.db)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	defer done()
	return s.claimIn(ctx, tx, p, skip)
}

// claimIn is claim in the snapshot tx, which s.leases.snapshot opened.
func (s *Store) claimIn(ctx context.Context, tx *bolt.Tx, p store.ClaimParams, skip map[string]bool) (out []*store.Delivery, stepped [][2][]byte, err error) {
	snap := tx.ID()
	nowKey := appendTime(nil, p.Now)
	expires := p.Now.Add(p.Lease).Round(0) // returned as stored: no monotonic reading
	c := claimer{s: s, ctx: ctx, tx: tx, snap: snap, now: p.Now}

	// The deliveries are picked and leased under the lease table's lock,
	// which no bbolt call waits under (see leaseTable.snapshot).
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	// 1. The first Limit due deliveries: from due, and from due_held for
	// the held webhooks not skipped.
	var picks []pick
	cur := tx.Bucket(bDue).Cursor()
	for k, v := cur.First(); k != nil && len(picks) < p.Limit; k, v = cur.Next() {
		if len(k) < timeKeyLen {
			return nil, nil, fmt.Errorf("boltstore: due index: %w", errCorrupt)
		}
		if bytes.Compare(k[:timeKeyLen], nowKey) > 0 {
			break
		}
		if skip[string(v)] {
			if len(stepped) == s.hold.after && !othersPending(tx, skip) {
				break // only skipped webhooks have deliveries to claim
			}
			if len(stepped) < s.hold.most {
				stepped = append(stepped, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			}
			continue
		}
		if d := c.claimable(k); d != nil {
			picks = append(picks, pick{key: k, d: d})
		}
	}
	held, err := c.pickHeld(nowKey, skip, p.Limit)
	if err != nil {
		return nil, nil, err
	}
	if len(held) > 0 {
		picks = append(picks, held...)
		slices.SortFunc(picks, func(a, b pick) int { return bytes.Compare(a.key, b.key) })
		picks = picks[:min(len(picks), p.Limit)]
	}
	// 2. Lease them.
	out = make([]*store.Delivery, len(picks))
	for i, pk := range picks {
		d := pk.d
		d.LeaseOwner, d.LeaseExpiresAt = p.Owner, expires
		s.leases.grant(d.ID, p.Owner, expires)
		out[i] = d
	}
	return out, stepped, nil
}

// A claim that steps over more than maxSkipScan deliveries of the webhooks
// it skips moves them (at most maxHeldMove at a time) from due to
// due_held.
const (
	maxSkipScan = 64
	maxHeldMove = 10_000
	// maxWebhookScan bounds the webhooks whose counters a claim reads to
	// tell whether only skipped ones have deliveries pending.
	maxWebhookScan = 256
)

// othersPending reports whether a webhook not in skip has pending
// deliveries, or whether there are too many webhooks to tell: whether a
// claim that has met only skipped webhooks' deliveries may find another's
// further on.
func othersPending(tx *bolt.Tx, skip map[string]bool) bool {
	c := tx.Bucket(bCounts).Cursor()
	n := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n++; n > maxWebhookScan {
			return true
		}
		if !skip[string(k)] && readCounts(v).Pending > 0 {
			return true
		}
	}
	return false
}

// holding is when claims hold deliveries apart: see maxSkipScan. A Store's
// are the defaults; tests lower them to hold at every chance.
type holding struct{ after, most int }

// pick is a due delivery a claim takes, with its due key (t + id, in the
// claim's snapshot).
type pick struct {
	key []byte
	d   *store.Delivery
}

// claimer is what a claim's steps share. s.leases.mu is held.
type claimer struct {
	s       *Store
	ctx     context.Context
	tx      *bolt.Tx
	snap    int
	now     time.Time
	records *bolt.Cursor // of deliveries, once the claim reads one
}

// claimable reads the delivery of the due key k, or nil when the claim may
// not take it: under a live lease, out of due since the snapshot (see
// leaseTable), or with a record that cannot be read, which is reported and
// stepped over, so that it holds back no delivery behind it.
func (c *claimer) claimable(k []byte) *store.Delivery {
	id := k[timeKeyLen:]
	if !c.s.leases.claimable(id, c.snap, c.now) {
		return nil
	}
	// One cursor for every record the claim reads: bbolt's Get makes a
	// new one, and grows its stack, on every call.
	if c.records == nil {
		c.records = c.tx.Bucket(bDeliveries).Cursor()
	}
	d, err := seekDelivery(c.records, id)
	if err != nil {
		c.s.stepOver(c.ctx, "Claim", bDeliveries, id, err)
		return nil
	}
	return d
}

// pickHeld returns up to limit of the due_held deliveries due by nowKey and
// claimable of each held webhook not in skip, in no set order.
func (c *claimer) pickHeld(nowKey []byte, skip map[string]bool, limit int) ([]pick, error) {
	var picks []pick
	cur := c.tx.Bucket(bHeld).Cursor()
	for k, _ := cur.First(); k != nil; {
		n, m := binary.Uvarint(k)
		if m <= 0 || n > uint64(len(k)-m) {
			return nil, errHeldIndex
		}
		pfx := k[:m+int(n)]
		next := successor(pfx)
		if !skip[string(pfx[m:])] {
			got := 0
			for hk := k; hk != nil && got < limit && bytes.HasPrefix(hk, pfx); hk, _ = cur.Next() {
				dk := hk[len(pfx):]
				if len(dk) < timeKeyLen {
					return nil, errHeldIndex
				}
				if bytes.Compare(dk[:timeKeyLen], nowKey) > 0 {
					break
				}
				if d := c.claimable(dk); d != nil {
					picks = append(picks, pick{key: dk, d: d})
					got++
				}
			}
		}
		if next == nil {
			break
		}
		k, _ = cur.Seek(next)
	}
	return picks, nil
}

var errHeldIndex = fmt.Errorf("boltstore: due_held index: %w", errCorrupt)

// Complete appends p.Attempt to the delivery's log and moves it to
// p.Status (failed instead of pending when its webhook is inactive),
// releasing the lease, in one transaction. With DisableWebhook it also
// deactivates the webhook and fails its other pending deliveries that are
// not leased.
func (s *Store) Complete(ctx context.Context, p store.CompleteParams) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	// The attempt is encoded before the transaction, with the delivery's
	// values its headers carry when the dispatcher sent it (and again
	// inside only when the record holds others), first in a pooled buffer
	// (see Enqueue) that then holds what the transaction writes after it.
	refs := guessAttemptRefs(p.DeliveryID, p.Attempt.RequestHeaders)
	buf := getWriteBuf()
	defer putWriteBuf(buf)
	*buf = appendAttempt(*buf, p.Attempt, refs)
	attempt := carve(*buf, 0)
	number, code, lastError := p.Attempt.Number, p.Attempt.ResponseStatus, p.Attempt.Error
	if p.DisableWebhook != "" {
		defer s.hooks.drop() // the webhook is written too
	}
	return s.write(ctx, func(w *wtx) error {
		tx := w.Tx
		deliveries := tx.Bucket(bDeliveries)
		// The record is read in place and only the fields Complete changes
		// are re-encoded: the body is copied as it is.
		var kb [64]byte // a Seek keeps no key
		v := w.get(bDeliveries, append(kb[:0], p.DeliveryID...))
		if v == nil {
			return notFound("delivery", p.DeliveryID)
		}
		r, err := readDeliveryRecord(v)
		if err != nil {
			return fmt.Errorf("boltstore: delivery %q: %w", p.DeliveryID, err)
		}
		// The check of the lease marks the delivery taken, in one step (see
		// leaseTable.take); an error below rolls the transaction back, and
		// the mark with it (see leaseTable.abort).
		if r.Status != store.StatusPending || !s.leases.take(tx, p.DeliveryID, p.Owner) {
			return fmt.Errorf("boltstore: delivery %q: %w", p.DeliveryID, store.ErrLeaseLost)
		}
		if number != r.Attempts+1 {
			return fmt.Errorf("boltstore: delivery %q: attempt %d after %d: %w", p.DeliveryID, number, r.Attempts, store.ErrConflict)
		}
		att := attempt // encoded with the guessed refs
		if !refs.matches(&r) {
			att = encodeAttempt(p.Attempt, r.refs())
		}
		active := true // read only when it matters: for a retry
		if p.Status == store.StatusPending {
			off, err := inactive(tx, r.WebhookID)
			if err != nil {
				return err
			}
			active = !off
		}
		status, countsRound := p.Outcome(active)
		if err := deleteDue(tx, timeKey(r.NextAttemptAt, p.DeliveryID), r.WebhookID); err != nil {
			return err
		}
		w.cnt.moveRaw(r.WebhookID, r.Status, status)
		r.Attempts++
		if countsRound {
			r.RoundAttempts++
		}
		r.LastStatusCode, r.LastError = code, []byte(lastError)
		r.Status = status
		if status == store.StatusPending {
			r.NextAttemptAt = p.NextAttemptAt
		}
		r.LeaseOwner, r.LeaseExpiresAt = nil, time.Time{}
		r.UpdatedAt = p.Now

		// The attempt's key, the record and its index entry, in the pooled
		// buffer after the attempt: the index is due (valued with the
		// webhook id) when pending, finished otherwise.
		idxTime, idxValue := r.UpdatedAt, 0
		if r.Status == store.StatusPending {
			idxTime, idxValue = r.NextAttemptAt, len(r.WebhookID)
		}
		// Grown, the buffer's new array holds a copy of the attempt, which
		// keeps its own; a run after a rolled-back one writes over that
		// run's bytes only.
		b := slices.Grow((*buf)[:len(attempt)], prefixLen(len(p.DeliveryID))+4+r.len()+timeKeyLen+len(p.DeliveryID)+idxValue)
		*buf = b // grown for the next user
		m := len(b)
		b = appendAttemptKey(b, p.DeliveryID, number)
		attemptKey := carve(b, m)
		m = len(b)
		b = r.appendTo(b)
		record := carve(b, m)
		m = len(b)
		b = appendTimeKey(b, idxTime, p.DeliveryID)
		idxKey := carve(b, m)
		var idxVal []byte
		if idxValue > 0 {
			m = len(b)
			b = append(b, r.WebhookID...)
			idxVal = carve(b, m)
		}
		if err := tx.Bucket(bAttempts).Put(attemptKey, att); err != nil {
			return err
		}
		// The index key ends with the id: it is the record's key too.
		if err := deliveries.Put(idxKey[timeKeyLen:], record); err != nil {
			return err
		}
		if r.Status == store.StatusPending {
			err = putDue(tx, idxKey, idxVal)
		} else {
			err = tx.Bucket(bFinished).Put(idxKey, nil)
		}
		if err != nil {
			return err
		}
		if p.DisableWebhook != "" {
			if err := s.disableWebhook(ctx, tx, string(r.WebhookID), p.DeliveryID, p.DisableWebhook, p.Now, w.cnt); err != nil {
				return err
			}
		}
		return nil
	})
}

// inactive reports whether the webhook id is stored inactive.
func inactive(tx *bolt.Tx, id []byte) (bool, error) {
	v := tx.Bucket(bWebhooks).Get(id)
	if v == nil {
		return false, nil
	}
	w, err := decodeWebhook(v)
	if err != nil {
		return false, fmt.Errorf("boltstore: webhook %q: %w", id, err)
	}
	return !w.Active, nil
}

// disableWebhook deactivates a webhook and fails its pending deliveries
// other than except, but for those under a live lease: an attempt in
// flight, which its owner records. A delivery whose record cannot be read
// is reported and left as it is.
func (s *Store) disableWebhook(ctx context.Context, tx *bolt.Tx, webhookID, except, reason string, now time.Time, cnt counts) error {
	w, err := getWebhook(tx, webhookID)
	if err != nil {
		return err
	}
	w.Active, w.DisabledReason, w.UpdatedAt = false, reason, now
	if err := tx.Bucket(bWebhooks).Put([]byte(w.ID), encodeWebhook(w)); err != nil {
		return err
	}
	deliveries := tx.Bucket(bDeliveries)
	pfx := prefix(webhookID)
	var pending []string
	c := tx.Bucket(bDelWebhook).Cursor()
	for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
		id := k[len(pfx):]
		if string(id) == except {
			continue
		}
		st, _, err := peekDelivery(deliveries.Get(id))
		if err != nil {
			s.stepOver(ctx, "Complete", bDeliveries, id, fmt.Errorf("boltstore: delivery %q: %w", id, err))
			continue
		}
		if st == store.StatusPending {
			pending = append(pending, string(id))
		}
	}
	for _, id := range pending {
		d, err := getDelivery(tx, id)
		if err != nil {
			s.stepOver(ctx, "Complete", bDeliveries, []byte(id), err)
			continue
		}
		if !s.leases.takeUnleased(tx, id, now) {
			continue // an attempt in flight, which its owner records
		}
		if err := unindexPending(tx, d); err != nil {
			return err
		}
		cnt.move(d.WebhookID, d.Status, store.StatusFailed)
		d.Status, d.LastError = store.StatusFailed, reason
		d.LeaseOwner, d.LeaseExpiresAt = "", time.Time{}
		d.UpdatedAt = now
		if err := putDelivery(tx, d); err != nil {
			return err
		}
		if err := indexState(tx, d); err != nil {
			return err
		}
	}
	return nil
}

// Release clears p.Owner's leases on the given deliveries, which stay due
// at their NextAttemptAt; other ids are ignored.
func (s *Store) Release(ctx context.Context, p store.ReleaseParams) error {
	if p.Owner == "" {
		return invalid("release without owner")
	}
	for _, id := range p.IDs {
		if id == "" {
			return invalid("release of an empty id")
		}
	}
	// The leases are in memory only: nothing to write. The store is
	// checked open all the same, as every call does.
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	s.leases.release(p.Owner, p.IDs)
	return nil
}

// GetDelivery returns a copy of one delivery.
func (s *Store) GetDelivery(ctx context.Context, id string) (*store.Delivery, error) {
	if id == "" {
		return nil, invalid("empty delivery id")
	}
	var d *store.Delivery
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		d, err = getDelivery(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.leases.overlay(d)
	return d, nil
}

// ListDeliveries returns up to p.Limit of the tenant's deliveries matching
// the filters, newest first, and the cursor of the next page ("" when this
// page holds the last one). It walks the tenant's (or, with WebhookID, the
// webhook's) index backwards from the cursor; Status and EventType filter
// what it walks.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]*store.Delivery, string, error) {
	switch {
	case p.Tenant == "":
		return nil, "", invalid("listing without tenant")
	case p.Limit < 1 || p.Limit > store.MaxPageLimit:
		return nil, "", invalid("limit %d outside 1..%d", p.Limit, store.MaxPageLimit)
	case p.Status != "" && !p.Status.Valid():
		return nil, "", invalid("unknown status %q", p.Status)
	}
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	var (
		page []*store.Delivery
		next string
	)
	err = s.view(ctx, func(tx *bolt.Tx) error {
		page, next = nil, ""
		idx, pfx := tx.Bucket(bDelTenant), prefix(p.Tenant)
		if p.WebhookID != "" {
			v := tx.Bucket(bWebhooks).Get([]byte(p.WebhookID))
			if v == nil {
				return nil
			}
			w, err := decodeWebhook(v)
			if err != nil {
				return fmt.Errorf("boltstore: webhook %q: %w", p.WebhookID, err)
			}
			if w.Tenant != p.Tenant {
				return nil
			}
			idx, pfx = tx.Bucket(bDelWebhook), prefix(p.WebhookID)
		}
		deliveries := tx.Bucket(bDeliveries)
		steps := 0
		return walkBack(idx.Cursor(), pfx, after, func(id, _ []byte) (bool, error) {
			if steps++; steps%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return false, fmt.Errorf("boltstore: %w", err)
				}
			}
			v := deliveries.Get(id)
			if v == nil {
				return true, nil
			}
			st, et, err := peekDelivery(v)
			if err != nil {
				return false, fmt.Errorf("boltstore: delivery %q: %w", id, err)
			}
			if (p.Status != "" && st != p.Status) || (p.EventType != "" && string(et) != p.EventType) {
				return true, nil
			}
			if len(page) == p.Limit {
				next = encodeCursor(page[len(page)-1].ID)
				return false, nil
			}
			d, err := decodeDeliveryBody(v, !p.WithoutBody)
			if err != nil {
				return false, fmt.Errorf("boltstore: delivery %q: %w", id, err)
			}
			page = append(page, d)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	for _, d := range page {
		s.leases.overlay(d)
	}
	return page, next, nil
}

// ListAttempts returns copies of a delivery's attempts in order.
func (s *Store) ListAttempts(ctx context.Context, deliveryID string) ([]*store.Attempt, error) {
	if deliveryID == "" {
		return nil, invalid("empty delivery id")
	}
	var out []*store.Attempt
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		v := tx.Bucket(bDeliveries).Get([]byte(deliveryID))
		if v == nil {
			return notFound("delivery", deliveryID)
		}
		r, err := readDeliveryRecord(v)
		if err != nil {
			return fmt.Errorf("boltstore: delivery %q: %w", deliveryID, err)
		}
		refs := r.refs()
		pfx := prefix(deliveryID)
		c := tx.Bucket(bAttempts).Cursor()
		for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
			a, err := decodeAttempt(v, refs)
			if err != nil {
				return fmt.Errorf("boltstore: attempt of %q: %w", deliveryID, err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// Redeliver makes a finished delivery pending, due at p.Now, with a fresh
// retry budget, and returns it. ErrConflict when it is pending.
func (s *Store) Redeliver(ctx context.Context, p store.RedeliverParams) (*store.Delivery, error) {
	if p.ID == "" {
		return nil, invalid("empty delivery id")
	}
	if p.Now.IsZero() {
		return nil, invalid("redeliver without Now")
	}
	var out *store.Delivery
	err := s.update(ctx, func(tx *bolt.Tx) error {
		d, err := getDelivery(tx, p.ID)
		if err != nil {
			return err
		}
		if d.Status == store.StatusPending {
			return fmt.Errorf("boltstore: delivery %q is pending: %w", d.ID, store.ErrConflict)
		}
		if err := unindexState(tx, d); err != nil {
			return err
		}
		cnt := make(counts, 1)
		cnt.move(d.WebhookID, d.Status, store.StatusPending)
		now := p.Now.Round(0) // returned as stored: no monotonic reading
		d.Status, d.NextAttemptAt, d.RoundAttempts = store.StatusPending, now, 0
		d.LeaseOwner, d.LeaseExpiresAt = "", time.Time{}
		d.UpdatedAt = now
		if err := putDelivery(tx, d); err != nil {
			return err
		}
		if err := indexState(tx, d); err != nil {
			return err
		}
		out = d
		return cnt.flush(tx)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Purge removes up to p.Limit (0: all) finished deliveries last updated
// before p.Before, with their attempts, oldest first, and returns how many.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if p.Before.IsZero() {
		return 0, invalid("purge without Before")
	}
	if p.Limit < 0 {
		return 0, invalid("purge limit %d is negative", p.Limit)
	}
	before := appendTime(nil, p.Before)
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		// A record that cannot be read is stepped over, not counted in
		// the limit: it would otherwise fail every Purge, or fill every
		// batch, and finished deliveries would pile up for good.
		var ds []*store.Delivery
		c := tx.Bucket(bFinished).Cursor()
		for k, _ := c.First(); k != nil && (p.Limit == 0 || len(ds) < p.Limit); k, _ = c.Next() {
			if len(k) < timeKeyLen {
				return fmt.Errorf("boltstore: finished index: %w", errCorrupt)
			}
			if bytes.Compare(k[:timeKeyLen], before) >= 0 {
				break
			}
			d, err := getDelivery(tx, string(k[timeKeyLen:]))
			if err != nil {
				s.stepOver(ctx, "Purge", bDeliveries, k[timeKeyLen:], err)
				continue
			}
			ds = append(ds, d)
		}
		cnt := make(counts)
		for i, d := range ds {
			if i%256 == 255 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("boltstore: %w", err)
				}
			}
			if err := deleteRecord(tx, &s.leases, d, cnt); err != nil {
				return err
			}
		}
		n = len(ds)
		return cnt.flush(tx)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// CountDeliveries tallies one webhook's deliveries by status from counters
// kept up to date by every write, without reading the deliveries.
func (s *Store) CountDeliveries(ctx context.Context, webhookID string) (store.Counts, error) {
	if webhookID == "" {
		return store.Counts{}, invalid("empty webhook id")
	}
	var c store.Counts
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bWebhooks).Get([]byte(webhookID)) == nil {
			return notFound("webhook", webhookID)
		}
		c = readCounts(tx.Bucket(bCounts).Get([]byte(webhookID)))
		return nil
	})
	return c, err
}
