package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
)

// leaseTable holds a Store's leases. Only one process can open a bbolt
// file (bbolt locks it), so no lease can outlive the Store that granted it,
// and the leases need not be in the file at all: a Claim is then a read
// transaction that waits for no commit and writes nothing, and a Release
// writes nothing either. See Leases in the package documentation.
//
// A Claim reads a snapshot, which may predate a commit that has since taken
// a delivery out of due (completed it, scheduled it later, failed or
// deleted it). Such a commit marks the delivery as moved at its
// transaction id, before it commits; a Claim steps over a delivery marked
// at a later transaction than its snapshot's. A mark is dropped once every
// snapshot a Claim reads, and every one it may read later, includes its
// commit.
type leaseTable struct {
	mu     sync.Mutex
	leases map[string]lease
	// moved holds the marks: delivery id -> id of the transaction that
	// took the delivery out of due.
	moved map[string]int
	// starting counts the Claims that are opening their snapshot; snaps
	// counts the open ones by transaction id. committed is the id of the
	// latest commit known (one that marked, or a snapshot's): every
	// snapshot opened from now on includes it.
	starting  int
	snaps     map[int]int
	committed int
	// prune is the number of marks at which the next mark drops those no
	// snapshot needs any more.
	prune int
	// grants counts the leases granted, to tell a lease from a later one
	// of the same delivery.
	grants uint64
	// undo holds the marks that the latest write transaction to mark made
	// and what they replaced, until it commits: abort takes them back if
	// it does not.
	undo []undoMark
}

// undoMark is a mark of the write transaction tx and the mark it replaced
// (had: whether there was one).
type undoMark struct {
	tx   *bolt.Tx
	id   string
	prev int
	had  bool
}

type lease struct {
	owner   string
	expires time.Time
	// n is the lease's grant (leaseTable.grants): a commit ends the
	// lease it took, not one granted after it.
	n uint64
	// by is the write transaction that has taken the delivery (and ends
	// the lease when it commits): for the calls after it in the same
	// transaction, the lease has ended already.
	by *bolt.Tx
}

// minPrune is the fewest marks that make a mark prune the others.
const minPrune = 256

func newLeaseTable() leaseTable {
	return leaseTable{
		leases: make(map[string]lease),
		moved:  make(map[string]int),
		snaps:  make(map[int]int),
		prune:  minPrune,
	}
}

// overlay sets d's lease fields from the table: the records in the file
// hold none (or, written by an earlier release of the library, one that a
// reopening voided). Only a pending delivery has a lease: the table still
// holds the lease of a delivery that a commit has just finished until the
// commit's handlers have run, and a read in between must not show it.
func (t *leaseTable) overlay(d *store.Delivery) {
	var l lease
	if d.Status == store.StatusPending {
		t.mu.Lock()
		l = t.leases[d.ID]
		t.mu.Unlock()
	}
	d.LeaseOwner, d.LeaseExpiresAt = l.owner, l.expires
}

// claimable reports whether a Claim that reads the snapshot snap and runs
// at now may lease delivery id, which snap holds in due. t.mu is held.
func (t *leaseTable) claimable(id []byte, snap int, now time.Time) bool {
	// Looked up as m[string(id)], which converts nothing: under a lease
	// that has not expired, not claimable.
	if l, ok := t.leases[string(id)]; ok && l.expires.After(now) {
		return false
	}
	tx, ok := t.moved[string(id)]
	return !ok || tx <= snap
}

// grant leases delivery id to owner until expires. t.mu is held. The
// lease reads back as a stored time does: in UTC, without a monotonic
// reading.
func (t *leaseTable) grant(id, owner string, expires time.Time) {
	t.grants++
	t.leases[id] = lease{owner: owner, expires: expires.Round(0).UTC(), n: t.grants}
}

// markMoved marks delivery id as taken out of due by the write transaction
// tx, before it commits, and ends its lease once it has: a lease ends with
// the commit that records the attempt, so that a commit that fails leaves
// the lease to the call's next try.
func (t *leaseTable) markMoved(tx *bolt.Tx, id string) {
	t.mu.Lock()
	t.markLocked(tx, id)
	t.mu.Unlock()
}

// take is markMoved of a delivery that owner must hold a lease of, live or
// expired (the owner of an expired lease may still complete the delivery
// until another claim takes it), and that tx has not taken already: it
// reports whether owner does, and marks only then. The check and the mark
// are one step, so no claim takes the delivery over in between.
func (t *leaseTable) take(tx *bolt.Tx, id, owner string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.leases[id]; !ok || l.owner != owner || l.by == tx {
		return false
	}
	t.markLocked(tx, id)
	return true
}

// takeUnleased is markMoved of a delivery that must be under no live lease
// at now: it reports whether it is not, and marks only then, in one step.
// A lease that tx has taken already (a Complete before, in the same
// commit) has ended for it.
func (t *leaseTable) takeUnleased(tx *bolt.Tx, id string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.leases[id]; ok && l.by != tx && l.expires.After(now) {
		return false
	}
	t.markLocked(tx, id)
	return true
}

// markLocked is markMoved with t.mu held. The commit ends the lease the
// delivery has now, if any, and no later one: bbolt runs the commit
// handlers after it has let other transactions in, and a claim that read
// the committed file meanwhile may have leased the delivery again (its
// lease expired, and due again at once), which its commit must not end.
func (t *leaseTable) markLocked(tx *bolt.Tx, id string) {
	txid := tx.ID()
	if len(t.undo) > 0 && t.undo[0].tx != tx {
		t.endUndo() // writers are serial: the one before has ended
	}
	prev, had := t.moved[id]
	t.undo = append(t.undo, undoMark{tx, id, prev, had})
	t.moved[id] = txid
	if len(t.moved) >= t.prune {
		t.pruneLocked()
	}
	l, leased := t.leases[id]
	if leased {
		t.leases[id] = lease{l.owner, l.expires, l.n, tx}
	}
	tx.OnCommit(func() {
		t.mu.Lock()
		if cur, ok := t.leases[id]; leased && ok && cur.n == l.n {
			delete(t.leases, id)
		}
		t.committed = max(t.committed, txid)
		if len(t.undo) > 0 && t.undo[0].tx == tx {
			t.endUndo()
		}
		t.mu.Unlock()
	})
}

// abort takes back the marks of the write transaction tx, which a call's
// error rolls back: a claim would otherwise step over those deliveries,
// still due, until some later commit reused tx's id. It is called in tx,
// before the rollback. (A transaction whose Commit fails keeps its marks:
// bbolt may have written its meta page before failing to sync it, so
// that readers see it, and a later commit ends the wait anyway.)
func (t *leaseTable) abort(tx *bolt.Tx) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.undo) == 0 || t.undo[0].tx != tx {
		return
	}
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.had {
			t.moved[u.id] = u.prev
		} else {
			delete(t.moved, u.id)
		}
		if l, ok := t.leases[u.id]; ok && l.by == tx {
			l.by = nil // not taken after all (and tx is not kept)
			t.leases[u.id] = l
		}
	}
	t.endUndo()
}

// endUndo empties t.undo, keeping no transaction or id. t.mu is held.
func (t *leaseTable) endUndo() {
	clear(t.undo)
	t.undo = t.undo[:0]
}

// pruneLocked drops the marks every snapshot includes. t.mu is held.
func (t *leaseTable) pruneLocked() {
	if t.starting == 0 {
		floor := t.committed
		for s := range t.snaps {
			floor = min(floor, s)
		}
		for id, tx := range t.moved {
			if tx <= floor {
				delete(t.moved, id)
			}
		}
	}
	t.prune = max(minPrune, 2*len(t.moved))
}

// release ends owner's leases of the ids (others' are left alone).
func (t *leaseTable) release(owner string, ids []string) {
	t.mu.Lock()
	for _, id := range ids {
		if l, ok := t.leases[id]; ok && l.owner == owner {
			delete(t.leases, id)
		}
	}
	t.mu.Unlock()
}

// snapshot opens a read transaction for a Claim and registers it; done
// unregisters it and rolls it back.
func (t *leaseTable) snapshot(db *bolt.DB) (tx *bolt.Tx, done func(), err error) {
	// A snapshot being opened holds the marks: its id is not known yet.
	// bbolt is not called with t.mu held: opening a transaction can wait
	// for a commit that remaps the file, and a commit's calls take t.mu.
	t.mu.Lock()
	t.starting++
	t.mu.Unlock()
	tx, err = db.Begin(false)
	t.mu.Lock()
	t.starting--
	if err != nil {
		t.mu.Unlock()
		return nil, nil, err
	}
	id := tx.ID()
	t.snaps[id]++
	t.committed = max(t.committed, id)
	t.mu.Unlock()
	return tx, func() {
		t.mu.Lock()
		if t.snaps[id]--; t.snaps[id] == 0 {
			delete(t.snaps, id)
		}
		t.mu.Unlock()
		tx.Rollback()
	}, nil
}

// voidLeases moves the deliveries that the leased index of a file written by
// an earlier release holds back to due: the process that leased them has
// closed the file. An entry too short to name its delivery is left where it
// is, and reported.
func voidLeases(tx *bolt.Tx, log *slog.Logger) error {
	leased := tx.Bucket(bLeased)
	var void [][2][]byte
	c := leased.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) <= timeKeyLen || len(v) < timeKeyLen {
			log.LogAttrs(context.Background(), slog.LevelError, "boltstore: leased index entry unreadable, left in place",
				slog.String("key", fmt.Sprintf("%x", k)))
			continue
		}
		void = append(void, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
	}
	for _, e := range void {
		k, v := e[0], e[1]
		if err := putDue(tx, append(bytes.Clone(v[:timeKeyLen]), k[timeKeyLen:]...), v[timeKeyLen:]); err != nil {
			return err
		}
		if err := leased.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
