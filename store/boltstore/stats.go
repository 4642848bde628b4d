package boltstore

import "time"

// Stats are counters of a Store's writes since Open, for telling whether
// the file's writer bounds the store's throughput. Compare two readings
// taken some time apart.
type Stats struct {
	// Commits is the number of transactions the group commit (Enqueue,
	// Claim and Complete) committed (one bbolt failed counts not), and
	// Calls the number of those calls it ran, whether they succeeded or
	// failed: Calls / Commits is about how many calls shared a commit and
	// its fsyncs.
	Commits, Calls int64
	// Busy is the time the group commit spent in its transactions, up to
	// the reading (the one in progress included): running the calls,
	// writing the pages and, without NoSync, waiting for the disk to sync
	// them. Busy's growth over a period, divided by
	// the period, is the share of the time that Enqueue, Claim and
	// Complete had the file's writer; near 1, the writer bounds them.
	Busy time.Duration
	// PagesWritten is the number of page writes of every write
	// transaction (the group commit's and the other methods'), as bbolt
	// counts them: one per node it wrote, however many pages the node
	// spans (a record larger than a page makes one write of several
	// pages), and one for the meta page of each commit. WriteTime is the
	// time they spent writing them and, without NoSync, syncing them to
	// disk.
	PagesWritten int64
	WriteTime    time.Duration
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
		Commits:      g.commits.Load(),
		Calls:        g.calls.Load(),
		Busy:         busy,
		PagesWritten: tx.GetWrite(),
		WriteTime:    tx.GetWriteTime(),
	}
}
