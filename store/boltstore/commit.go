package boltstore

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit. bbolt serialises writers and each commit pays an fsync, so
// concurrent writers queue behind each other's fsyncs. Enqueue and Complete
// (and a Claim's rare move to due_held) go through a committer instead: the
// first writer to arrive becomes the leader and commits at once; writers
// that arrive while it commits queue up, and the next leader (the oldest of
// them) runs them all in one transaction, one fsync. A lone writer waits
// for nobody; under load, transactions grow with the load. Unlike bbolt's
// DB.Batch there is no timer.
//
// A leader that finds itself alone first yields the processor once
// (runtime.Gosched), so that writers already runnable can join it. Without
// this, the leader that has just delivered a commit's results is the first
// to call again, finds the queue empty, and commits alone while the writers
// it woke wait to be scheduled: under a CPU-bound load most commits then
// held one call, and each paid a whole commit (with 64 writers on 2 cores,
// 70-90% of commits held one call and a delivery cost twice the CPU). When
// nothing else is runnable, the yield returns at once.
//
// Under load (the previous commit held more than one call) a leader yields
// even when others have queued, and twice: the writers that the previous
// commit woke are runnable, and most of them are about to call again. A
// yield puts the leader behind what is runnable at that moment, and the
// work those writers do on their way back (a worker's next request, an
// emitter's next event) readies others in turn. End to end (webhookbench
// -scenarios bolt, 5 alternating runs) one yield grew commits from 34 to 40
// calls and a delivery took 6% less CPU; BenchmarkHotPath, 7-10% less. The
// second yield raised bolt from 0.459 to 0.484 of raw (the means of 18
// alternating runs of webhookbench -scenarios raw,bolt -duration 4s, higher
// in 15 of them); a third gained nothing more.
//
// Every call still succeeds or fails on its own: when a call's function
// returns an error, the shared transaction is rolled back, that call gets
// its error, and the others run again without it (in the same order, so
// each sees the state the calls before it left). A call returns only after
// the commit that holds its writes.

type committer struct {
	mu      sync.Mutex
	queue   []*commitCall
	running bool // a leader is committing
	last    int  // calls in the latest commit

	// For Stats: the transactions committed and the calls they held;
	// under mu, the time spent in the finished rounds and when the
	// round in progress began (zero when none is).
	commits, calls atomic.Int64
	busy           time.Duration
	since          time.Time

	// free holds calls that have returned, for reuse with their channel:
	// once a call has received its result nothing sends to it again.
	free sync.Pool
}

type commitCall struct {
	fn func(w *wtx) error
	// ch receives either the call's result or, at most once before that,
	// the order to lead the next round.
	ch chan commitMsg
}

type commitMsg struct {
	lead bool
	err  error
}

// write runs fn in a write transaction that may be shared with other
// concurrent write calls. fn may run more than once (after another call's
// failure), so it must set its results only from what it reads in tx.
func (s *Store) write(ctx context.Context, fn func(w *wtx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	g := &s.commits
	c, _ := g.free.Get().(*commitCall)
	if c == nil {
		c = &commitCall{ch: make(chan commitMsg, 1)}
	}
	c.fn = fn
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	for {
		if lead {
			s.lead()
		}
		m := <-c.ch
		if !m.lead {
			c.fn = nil
			g.free.Put(c)
			return mapErr(m.err)
		}
		lead = true
	}
}

// lead commits the queued calls, then hands leadership to the oldest call
// that arrived meanwhile, or ends it.
func (s *Store) lead() {
	g := &s.commits
	g.mu.Lock()
	if loaded := g.last > 1; loaded || len(g.queue) == 1 {
		g.mu.Unlock()
		runtime.Gosched()
		if loaded {
			runtime.Gosched()
		}
		g.mu.Lock()
	}
	batch := g.queue
	g.last = len(batch)
	g.queue = nil
	g.since = time.Now()
	g.mu.Unlock()

	s.commitBatch(batch)

	g.mu.Lock()
	g.busy += time.Since(g.since)
	g.since = time.Time{}
	g.calls.Add(int64(len(batch)))
	if len(g.queue) == 0 {
		g.running = false
		g.mu.Unlock()
		return
	}
	next := g.queue[0]
	g.mu.Unlock()
	next.ch <- commitMsg{lead: true}
}

// commitBatch runs the calls in one transaction and delivers each result.
func (s *Store) commitBatch(batch []*commitCall) {
	for len(batch) > 0 {
		failed, ferr := -1, error(nil)
		err := s.db.Update(func(tx *bolt.Tx) (err error) {
			defer func() {
				if err != nil {
					s.leases.abort(tx) // rolled back: its marks will not commit
				}
			}()
			packAppendBuckets(tx)
			w := newWtx(tx)
			for i, c := range batch {
				if err := c.fn(w); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return w.cnt.flush(tx)
		})
		if failed >= 0 {
			batch[failed].ch <- commitMsg{err: ferr}
			batch = slices.Delete(batch, failed, failed+1)
			continue
		}
		if err == nil {
			// Only a transaction that committed: one that bbolt failed
			// (to begin, to write or to sync) ran no commit.
			s.commits.commits.Add(1)
		}
		for _, c := range batch {
			c.ch <- commitMsg{err: err}
		}
		return
	}
}

// writeBufs holds the buffers that Enqueue and Complete encode their writes
// in. bbolt keeps a Put's value until the transaction ends (and copies its
// key), and write returns only once the call's function will not run again,
// so a call's buffer is free again when its write returns, whether the
// transaction committed or not. Reused, they spare the collector a
// record's bytes (a body, mostly) at every Enqueue and Complete.
var writeBufs sync.Pool // of *[]byte

// maxPooledBuf is the largest buffer writeBufs keeps: one that a large
// body grew goes to the collector.
const maxPooledBuf = 64 << 10

// getWriteBuf returns an empty buffer from writeBufs.
func getWriteBuf() *[]byte {
	if p, ok := writeBufs.Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	return new([]byte)
}

// putWriteBuf gives p back to writeBufs once nothing uses its bytes.
func putWriteBuf(p *[]byte) {
	if cap(*p) <= maxPooledBuf {
		writeBufs.Put(p)
	}
}

// wtx is the write transaction that the calls of a group commit share,
// with the count deltas they make: the counters of a webhook are read and
// written once per transaction, not once per call. A transaction that is
// rolled back and run again gets a new wtx, so a failed call's deltas are
// dropped with its writes.
type wtx struct {
	*bolt.Tx
	cnt counts

	// cursors are the transaction's cursors of the buckets its calls look
	// keys up in. bbolt's Get makes a new cursor, and grows its stack, on
	// every call; a kept cursor reuses both, and a Seek places it afresh
	// whatever the calls before it wrote.
	cursors []bucketCursor
	buf     [4]bucketCursor // cursors' first array
}

func newWtx(tx *bolt.Tx) *wtx {
	w := &wtx{Tx: tx, cnt: make(counts, 1)}
	w.cursors = w.buf[:0]
	return w
}

type bucketCursor struct {
	bucket []byte
	c      *bolt.Cursor
}

// cursor returns the transaction's cursor of the bucket name.
func (w *wtx) cursor(name []byte) *bolt.Cursor {
	for _, bc := range w.cursors {
		if bytes.Equal(bc.bucket, name) {
			return bc.c
		}
	}
	c := w.Bucket(name).Cursor()
	w.cursors = append(w.cursors, bucketCursor{name, c})
	return c
}

// get is w.Bucket(name).Get(key) through the transaction's cursor of the
// bucket.
func (w *wtx) get(name, key []byte) []byte {
	k, v := w.cursor(name).Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// appendFill is the fill percent of the buckets whose keys mostly grow (ids
// are UUIDv7, index keys start with a time or a tenant/webhook prefix
// followed by such an id). bbolt splits pages half full by default, which for
// append-mostly keys leaves every page about half empty for good: the file,
// and the memory its map pins, would be twice the size of the data.
const appendFill = 0.95

// appendBuckets are the buckets packed to appendFill.
var appendBuckets = [][]byte{bDeliveries, bDelTenant, bDelWebhook, bDedup, bDue, bLeased, bFinished, bAttempts}

// packAppendBuckets sets appendFill on the append-mostly buckets of the write
// transaction tx (a bucket handle is cached per transaction, so the setting
// holds for every later tx.Bucket call in tx).
func packAppendBuckets(tx *bolt.Tx) {
	for _, name := range appendBuckets {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = appendFill
		}
	}
}
