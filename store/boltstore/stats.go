package boltstore

import "time"

// Stats are counters of a Store's writes since Open, for telling whether
// the file's writer bounds the store's throughput. Compare two readings
// taken some time apart.
type Stats struct {
	// Commits is the number of transactions the group commit (Enqueue and
	// Complete, and a Claim's move of deliveries to due_held; a Claim
	// itself writes nothing) committed, a transaction that bbolt failed to
	// begin, write or sync not counted; Calls is the number of those
	// calls it ran, failed ones included. Calls / Commits is about how
	// many calls shared a commit and its fsyncs.
	Commits, Calls int64
	// Busy is the time the group commit spent in its transactions up to
	// the reading, the one in progress included: waiting for the file's
	// write lock while another method's transaction holds it, running the
	// calls, writing the pages and, without NoSync, waiting for the disk
	// to sync them. Busy's growth between two readings, divided by the time
	// between them, is the share of that time that Enqueue and Complete
	// had the file's writer; near 1, the writer bounds them.
	Busy time.Duration
	// PageWrites is the number of page writes of every write transaction
	// (the group commit's and the other methods'), as bbolt counts them:
	// one per node it wrote, however many pages the node spans (a record
	// larger than a page makes one write of several pages), and one for
	// the meta page of each commit. WriteTime is the time they took,
	// syncing to disk included (without NoSync).
	PageWrites int64
	WriteTime  time.Duration
}

// Stats returns the store's counters. It is safe to call at any time,
// after Close too.
func (s *Store) Stats() Stats {
	tx := s.db.Stats().TxStats
	g := &s.commits
	g.mu.Lock()
	busy := g.busy
	if !g.since.IsZero() {
		// The round in progress, up to now: two readings bound the
		// time between them.
		busy += time.Since(g.since)
	}
	g.mu.Unlock()
	return Stats{
		Commits:    g.commits.Load(),
		Calls:      g.calls.Load(),
		Busy:       busy,
		PageWrites: tx.GetWrite(),
		WriteTime:  tx.GetWriteTime(),
	}
}
