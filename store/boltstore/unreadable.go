package boltstore

import (
	"context"
	"log/slog"
	"sync"
)

// maxReported bounds the unreadable records a Store reports (and
// remembers having reported): a file that a newer release wrote all of
// would otherwise log every record, and keep every key in memory.
const maxReported = 1000

// unreadableLog remembers the unreadable records a Store has reported.
type unreadableLog struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// first reports whether key is reported for the first time, and whether it
// is the last one reported (the bound is reached).
func (l *unreadableLog) first(key string) (first, last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[key]; ok || len(l.seen) >= maxReported {
		return false, false
	}
	if l.seen == nil {
		l.seen = make(map[string]struct{})
	}
	l.seen[key] = struct{}{}
	return true, len(l.seen) == maxReported
}

// stepOver reports, once per record, a record of bucket at key that op
// (Claim, Purge, Complete) cannot read, err saying why, and steps over:
// it leaves the record as it is, neither deleted nor rewritten, for an
// operator (or a newer release) to deal with, and goes on with the others.
func (s *Store) stepOver(ctx context.Context, op string, bucket, key []byte, err error) {
	first, last := s.bad.first(string(bucket) + "\x00" + string(key))
	if !first {
		return
	}
	s.log.LogAttrs(ctx, slog.LevelError, "boltstore: a stored record cannot be read: it is left as it is, and "+op+" goes on without it",
		slog.String("bucket", string(bucket)), slog.String("key", string(key)), slog.String("error", err.Error()))
	if last {
		s.log.LogAttrs(ctx, slog.LevelError, "boltstore: further unreadable records are not reported",
			slog.Int("reported", maxReported))
	}
}
