// Package boltstore is the embedded default [store.Store]: one bbolt file,
// durable on every commit, for a single process.
//
// # Layout
//
// Every record lives in one bucket keyed by its id; indexes are separate
// buckets whose keys carry what the query walks, so each query seeks to its
// place in O(log n) and reads only the k items it returns:
//
//	webhooks               id -> webhook
//	webhooks_by_tenant     p(tenant) + id -> ""            ListWebhooks, MatchWebhooks
//	deliveries             id -> delivery (without attempts)
//	deliveries_by_tenant   p(tenant) + id -> ""            ListDeliveries, newest first
//	deliveries_by_webhook  p(webhookID) + id -> ""         ListDeliveries(WebhookID), DeleteWebhook, disable
//	dedup                  p(eventID) + webhookID -> id    Enqueue's (EventID, WebhookID) uniqueness
//	due                    t(NextAttemptAt) + id -> webhookID   claimable pending deliveries
//	due_held               p(webhookID) + t(NextAttemptAt) + id -> ""  the same, of webhooks a claim held apart
//	leased                 (empty: where an earlier release kept leases; emptied on Open)
//	finished               t(UpdatedAt) + id -> ""         success/failed deliveries, for Purge
//	attempts               p(deliveryID) + uint32 number -> attempt
//	counts                 webhookID -> 3 x uint64         CountDeliveries
//
// p(s) is s prefixed with its uvarint length, so one tenant's (or webhook's)
// keys never mix with another's whatever bytes the ids hold. t(x) is a
// 12-byte big-endian encoding of a time whose byte order is time order.
// Ids are UUIDv7 strings, so id order is creation order: listings walk an
// index backwards from the cursor.
//
// # Leases
//
// Only one process can open a bbolt file (bbolt locks it), so a lease can
// never outlive the Store that granted it: the Store keeps its leases in
// memory, not in the file. A Claim is one read transaction, which waits
// for no commit (no fsync) and writes nothing, and a Release writes
// nothing at all. Closing the file ends every lease: after
// a crash, the deliveries that were in flight are due again as soon as
// the file is opened, with no lease to wait out (at least once, as before).
// Opening a file whose leased index an earlier release filled moves those
// deliveries back to due.
//
// Every pending delivery is in exactly one of due and due_held (below),
// leased or not, until a Complete takes it out. Claim walks due from its
// start: every entry up to Now that is not under a live lease is
// claimable, in exactly the order the contract asks for, ascending
// (NextAttemptAt, ID). It steps over the leased ones with a map lookup
// each (at most the deliveries this process has in flight) and over the
// deliveries of SkipWebhooks (their webhook id is the index value, so
// stepping over one decodes nothing): it reads O(log n + k) keys plus
// those, however many deliveries are pending or not yet due. A lease that
// has expired is claimable again; its former owner may still complete the
// delivery until someone else claims it.
//
// A claim's snapshot may predate the commit of a call that took a delivery
// out of due: a Complete (which also ends the lease once it commits), a
// webhook's disabling or deletion. Such a call marks the delivery with its
// transaction's id before committing, and a claim steps over a delivery
// marked after its snapshot; a call whose error rolls the transaction back
// takes its marks back. A mark is dropped once every snapshot open, and
// every one opened later, includes its commit. The commit ends the lease it
// took, and no lease granted after it; within the transaction, the calls
// after the one that took it see it ended already.
//
// A webhook the dispatcher skips is one at its concurrency limit, and one
// that hangs stays there while its deliveries pile up in due, ahead of
// everyone else's: every claim would step over all of them. So a claim
// that steps over more than a few dozen such deliveries moves them to
// due_held (in a write of its own, through the group commit), keyed by
// webhook first, and while a webhook has deliveries there its new due ones
// go there too. A claim takes the held deliveries of the webhooks it does
// not skip, merged in due order with what it takes from due, and passes
// over a skipped webhook's held ones with one seek; once a webhook has none
// held, its deliveries go to due again. A claim that meets only skipped
// webhooks' deliveries first reads the webhooks' pending counters: when no
// other webhook has any, it stops there and holds nothing (a healthy
// webhook at its limit, draining a backlog, keeps it in due).
//
// # Transactions
//
// Each method is one bbolt transaction: Enqueue of a batch, Complete and
// the rest are one Update each, and Claim and the reads are one View each
// (a Claim that moves deliveries to due_held writes that in an Update of
// its own). Concurrent Enqueue and Complete calls share transactions and
// fsyncs (group commit, without a timer: a lone
// caller never waits for company, though it yields the processor once so
// that writers already runnable can join it), each still succeeding or
// failing alone. The calls of a shared transaction update a webhook's
// counters once, at its end. Records are encoded in a compact binary format
// and copied out of the transaction: nothing a Store returns aliases
// bbolt's memory. [Store.Stats] counts the commits, the calls they held and
// the time the writer spent in them.
//
// # Unreadable records
//
// A record the store cannot decode (its bytes are damaged, or a newer
// release of the library wrote it in a format this build does not read)
// stalls nothing but itself. Claim steps over such a delivery and claims
// the ones behind it; Purge steps over it and removes the other finished
// deliveries; a Complete that disables a webhook fails its other pending
// deliveries; MatchWebhooks steps over such a webhook, so that an event
// still reaches the tenant's other webhooks (and is not enqueued for the
// unreadable one, whose deliveries a dispatcher could not send anyway: it
// reads the webhook first). Each reports the record, with its bucket and
// key, once per record and Store, on Options.Logger at level ERROR. The
// record itself is never deleted nor rewritten: it waits for an operator,
// or for the newer release. The calls that name it (GetWebhook,
// ListWebhooks, GetDelivery, ListDeliveries, ListAttempts, UpdateWebhook,
// Complete or Redeliver of it, and DeleteWebhook of its webhook) return an
// error that names it and change nothing.
//
// # Costs
//
// MatchWebhooks reads the tenant's webhooks once, then answers from memory
// until a webhook changes (only this process writes the file, and every
// write to a webhook empties that cache). CountDeliveries reads one counter;
// Purge reads only what it removes. Complete decodes only the fields of the
// delivery's record it checks or changes and copies the rest (the body among
// them) into the new record as stored; one that schedules a retry also reads
// the webhook, to fail the delivery instead when the webhook is inactive. An
// attempt's record codes in a byte each the header names and values every
// attempt repeats, its delivery's ids and event type among them: the
// dispatcher's attempt that a 200 answers takes about 260 bytes, nearly half
// of it the signatures. ListDeliveries walks the tenant's (or webhook's)
// index newest first and reads each delivery's status and event type before
// decoding it, so a Status or EventType filter costs the deliveries it steps
// over. Disabling a webhook (Complete with DisableWebhook) and DeleteWebhook
// visit each of the webhook's deliveries.
//
// Enqueue and Complete encode what they write in buffers they reuse once
// their transaction has ended, and a Claim reads its deliveries through one
// cursor and decodes each in two allocations (the delivery and its ids)
// and a copy of its body: the garbage a delivery leaves, and so how often
// the collector runs, bounds a busy store on a small machine as much as its
// disk does (webhookbench's bolt scenario, GOGC=400 against the default:
// about 30% more deliveries a second).
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/noa-server/webhook/internal/boltfile"
	"github.com/noa-server/webhook/store"
)

var _ store.Store = (*Store)(nil)

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Options tunes a Store. A nil *Options means the defaults.
type Options struct {
	// Timeout is how long Open waits for another process to release the
	// file lock before it fails. Defaults to DefaultTimeout; negative waits
	// forever.
	Timeout time.Duration
	// NoSync skips fsync on commit: faster, but a machine crash (not a
	// process crash) can lose or corrupt recent writes. For benchmarks and
	// tests only. Defaults to false.
	NoSync bool
	// InitialMmapSize is the initial size of bbolt's memory map in bytes;
	// readers never block the writer while the file fits in it. Defaults to
	// 0 (bbolt's default).
	InitialMmapSize int
	// Mode is the permission of a newly created file. Defaults to 0600.
	Mode os.FileMode
	// Clock returns the current time for the timestamps the store sets
	// itself (a zero CreatedAt or UpdatedAt), which it stores in UTC and
	// truncated to microseconds, as the other stores do. Defaults to
	// time.Now.
	Clock func() time.Time
	// Logger receives a report of each stored record a call steps over
	// because it cannot read it (see Unreadable records in the package
	// documentation), once per record and Store, at level ERROR. Silent
	// when nil, as every Logger of the library; set it in production, as
	// the calls that step over such a record return no error.
	Logger *slog.Logger
}

// Store is a store.Store on a bbolt file. It is safe for concurrent use by
// many goroutines; only one process can open a file at a time.
type Store struct {
	db    *bolt.DB
	clock func() time.Time
	log   *slog.Logger
	bad   unreadableLog // the unreadable records reported

	commits committer // group commit of Enqueue, Claim and Complete
	hold    holding   // when a Claim moves deliveries to due_held
	hooks   hookCache // MatchWebhooks' webhooks
	leases  leaseTable

	mu     sync.RWMutex // guards closed against Close
	closed bool
}

// Open opens (creating it when absent) the bbolt file at path and returns a
// Store on it. The file holds everything the store persists; reopening it
// later finds every record a completed call stored.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	} else if o.Timeout < 0 {
		o.Timeout = 0
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := boltfile.CheckSize(path); err != nil {
		return nil, fmt.Errorf("boltstore: open %w", err)
	}
	db, err := bolt.Open(path, o.Mode, &bolt.Options{
		Timeout:         o.Timeout,
		NoSync:          o.NoSync,
		InitialMmapSize: o.InitialMmapSize,
		FreelistType:    bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, boltfile.Locked(err, o.Timeout))
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return voidLeases(tx, o.Logger)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: init %s: %w", path, err)
	}
	return &Store{db: db, clock: o.Clock, log: o.Logger, hold: holding{after: maxSkipScan, most: maxHeldMove}, leases: newLeaseTable()}, nil
}

// Close closes the file after the transactions in progress end. Calls after
// Close return store.ErrClosed; a second Close returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.hooks.drop()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// now is the time the store stamps on records whose caller left it zero:
// the clock's, in UTC, truncated to microseconds (which also drops its
// monotonic reading), like memstore's and pgstore's.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// Ping reports whether the store is open and its file readable.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bWebhooks) == nil {
			return fmt.Errorf("boltstore: missing bucket %s", bWebhooks)
		}
		return nil
	})
}

// begin checks ctx and the closed flag; on success the caller holds s.mu's
// read lock until it calls s.mu.RUnlock.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	return mapErr(s.db.View(fn))
}

// update runs fn in a write transaction.
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		packAppendBuckets(tx)
		if err := fn(tx); err != nil {
			s.leases.abort(tx) // rolled back: its marks will not commit
			return err
		}
		return nil
	})
	return mapErr(err)
}

// mapErr turns the bbolt errors that have a store meaning into the store's
// sentinels. A key or value too large for bbolt comes from the caller's
// input (an id, tenant or event id longer than a key can hold, a body of
// gigabytes), so it is ErrInvalid, as other input the store refuses.
func mapErr(err error) error {
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return store.ErrClosed
	case errors.Is(err, berrors.ErrKeyTooLarge):
		return fmt.Errorf("boltstore: an id, tenant or event id longer than a key holds (%d bytes with its prefix): %w: %w",
			bolt.MaxKeySize, err, store.ErrInvalid)
	case errors.Is(err, berrors.ErrValueTooLarge):
		return fmt.Errorf("boltstore: a record longer than a value holds (%d bytes): %w: %w",
			bolt.MaxValueSize, err, store.ErrInvalid)
	}
	return err
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("boltstore: %s: %w", fmt.Sprintf(format, args...), store.ErrInvalid)
}

func notFound(what, id string) error {
	return fmt.Errorf("boltstore: %s %q: %w", what, id, store.ErrNotFound)
}

// counts keeps per-webhook status deltas during a transaction and writes
// each webhook's counters once.
type counts map[string]*store.Counts

func (c counts) add(webhookID string, st store.Status, delta int64) {
	x := c[webhookID]
	if x == nil {
		x = new(store.Counts)
		c[webhookID] = x
	}
	addCount(x, st, delta)
}

func addCount(x *store.Counts, st store.Status, delta int64) {
	switch st {
	case store.StatusPending:
		x.Pending += delta
	case store.StatusSuccess:
		x.Success += delta
	case store.StatusFailed:
		x.Failed += delta
	}
}

func (c counts) move(webhookID string, from, to store.Status) {
	if from != to {
		c.add(webhookID, from, -1)
		c.add(webhookID, to, 1)
	}
}

// moveRaw is move for a webhook id read in place from a record: it makes a
// string of the id only for a webhook the transaction has not counted yet.
func (c counts) moveRaw(webhookID []byte, from, to store.Status) {
	if from == to {
		return
	}
	x := c[string(webhookID)]
	if x == nil {
		x = new(store.Counts)
		c[string(webhookID)] = x
	}
	addCount(x, from, -1)
	addCount(x, to, 1)
}

// flush adds the deltas to the stored counters of webhooks that still exist.
func (c counts) flush(tx *bolt.Tx) error {
	b := tx.Bucket(bCounts)
	for id, d := range c {
		if *d == (store.Counts{}) {
			continue
		}
		v := b.Get([]byte(id))
		if v == nil {
			continue
		}
		cur := readCounts(v)
		cur.Pending += d.Pending
		cur.Success += d.Success
		cur.Failed += d.Failed
		if err := b.Put([]byte(id), encodeCounts(cur)); err != nil {
			return err
		}
	}
	return nil
}

func readCounts(v []byte) store.Counts {
	if len(v) != 24 {
		return store.Counts{}
	}
	return store.Counts{
		Pending: int64(binary.BigEndian.Uint64(v)),
		Success: int64(binary.BigEndian.Uint64(v[8:])),
		Failed:  int64(binary.BigEndian.Uint64(v[16:])),
	}
}

func encodeCounts(c store.Counts) []byte {
	b := make([]byte, 0, 24)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Pending))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Success))
	return binary.BigEndian.AppendUint64(b, uint64(c.Failed))
}
