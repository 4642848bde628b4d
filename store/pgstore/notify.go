package pgstore

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// subscriber is one WakeUps channel.
type subscriber struct {
	once sync.Once
	ch   chan struct{}
}

func (sub *subscriber) close() { sub.once.Do(func() { close(sub.ch) }) }

// wake sends without blocking: a pending wake-up already covers this one.
func (sub *subscriber) wake() {
	select {
	case sub.ch <- struct{}{}:
	default:
	}
}

// WakeUps returns a channel that receives a value soon after any replica
// sharing this schema commits an Enqueue that stored a delivery not leased
// already, a Redeliver, or a Release that freed a lease, so a dispatcher can claim at
// once instead of waiting for its next poll. Wake-ups coalesce (the channel
// has a buffer of one) and carry no data; one may also arrive with no work
// to do, for instance after the listener reconnects, since notifications
// sent while it was disconnected are lost. Deliveries that become due by
// the passing of time (retries, expired leases) send no wake-up, so a
// dispatcher still polls, only less often.
//
// The first call starts a listener on a dedicated connection taken from
// the pool (LISTEN/NOTIFY), which reconnects with backoff when the
// connection fails and stops on Close. The channel is closed when ctx is
// done or the store is closed; every call returns a new channel.
func (s *Store) WakeUps(ctx context.Context) <-chan struct{} {
	sub := &subscriber{ch: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		sub.close()
		return sub.ch
	}
	s.subs[sub] = struct{}{}
	if !s.listenOn {
		s.listenOn = true
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.listen(s.stopCtx)
		}()
	}
	// Unsubscribe when ctx ends; Close ends stopCtx.
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.stopCtx.Done():
		}
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		sub.close()
	}()
	return sub.ch
}

func (s *Store) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		sub.wake()
	}
}

// Reconnect backoff of the listener.
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// listen holds a LISTEN connection until ctx ends, reconnecting on failure.
func (s *Store) listen(ctx context.Context) {
	backoff := listenMinBackoff
	for ctx.Err() == nil {
		healthy := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			backoff = listenMinBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listenOnce connects, listens and forwards notifications until the
// connection fails or ctx ends. It reports whether it got as far as
// listening.
func (s *Store) listenOnce(ctx context.Context) (healthy bool) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "pgstore: wake-up listener cannot connect", slog.String("error", err.Error()))
		}
		return false
	}
	// The connection leaves the pool: it is ours until we close it.
	conn := pc.Hijack()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "pgstore: wake-up listener cannot LISTEN", slog.String("error", err.Error()))
		}
		return false
	}
	// Notifications sent while no listener was up are lost: wake everyone.
	s.broadcast()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "pgstore: wake-up listener lost its connection", slog.String("error", err.Error()))
			}
			return true
		}
		s.broadcast()
	}
}
