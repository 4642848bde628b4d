package receiver

import (
	"container/heap"
	"container/list"
	"context"
	"sync"
	"time"
)

// DefaultMemoryStoreMaxKeys bounds a [MemoryStore] by default.
const DefaultMemoryStoreMaxKeys = 100_000

// MemoryStoreOptions configures [NewMemoryStore].
type MemoryStoreOptions struct {
	// MaxKeys bounds the number of remembered keys. When it is reached,
	// expired keys go first, then the oldest finished ones (whose
	// duplicates would then be processed again); in-flight keys are never
	// evicted, and when they alone fill the store Reserve fails with
	// ErrStoreFull. Defaults to DefaultMemoryStoreMaxKeys.
	MaxKeys int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// MemoryStore is an [IdempotencyStore] in process memory, bounded by TTL and
// by MaxKeys. Its keys are lost when the process exits; use [BoltStore] to
// keep them across restarts. It is safe for concurrent use. The zero value
// is an empty store with the defaults of [MemoryStoreOptions], as
// NewMemoryStore(MemoryStoreOptions{}) returns.
type MemoryStore struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	keys  map[string]*list.Element
	order *list.List // of *memEntry, least recently changed first
	byExp expiryHeap // the same entries, soonest expiry first
}

type memEntry struct {
	key     string
	token   string
	done    bool
	expires time.Time
	index   int // in byExp
}

// expiryHeap is a container/heap of entries by expiry.
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

var _ IdempotencyStore = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts MemoryStoreOptions) *MemoryStore {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMemoryStoreMaxKeys
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &MemoryStore{max: opts.MaxKeys, now: opts.Now, keys: make(map[string]*list.Element), order: list.New()}
}

// Len returns the number of keys held, expired ones not yet swept included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// Reserve implements [IdempotencyStore].
func (s *MemoryStore) Reserve(_ context.Context, p ReserveParams) (Reservation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil { // the zero MemoryStore
		s.max, s.now = DefaultMemoryStoreMaxKeys, time.Now
		s.keys, s.order = make(map[string]*list.Element), list.New()
	}
	now := s.now()
	s.sweep(now, 16)
	if el, ok := s.keys[p.Key]; ok {
		e := el.Value.(*memEntry)
		if now.Before(e.expires) {
			if e.done {
				return Reservation{State: Done}, nil
			}
			return Reservation{State: InFlight, RetryAfter: e.expires.Sub(now)}, nil
		}
		s.remove(el)
	}
	if len(s.keys) >= s.max && !s.evict(now) {
		return Reservation{}, ErrStoreFull
	}
	e := &memEntry{key: p.Key, token: p.Token, expires: now.Add(p.Lease)}
	s.keys[p.Key] = s.order.PushBack(e)
	heap.Push(&s.byExp, e)
	return Reservation{State: Reserved}, nil
}

// Complete implements [IdempotencyStore].
func (s *MemoryStore) Complete(_ context.Context, p CompleteParams) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.keys[p.Key]
	if !ok {
		return ErrNotReserved
	}
	e := el.Value.(*memEntry)
	if e.done || e.token != p.Token {
		return ErrNotReserved
	}
	e.done = true
	e.expires = s.now().Add(p.TTL)
	heap.Fix(&s.byExp, e.index)
	s.order.MoveToBack(el)
	return nil
}

// Release implements [IdempotencyStore].
func (s *MemoryStore) Release(_ context.Context, p ReleaseParams) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.keys[p.Key]
	if !ok {
		return ErrNotReserved
	}
	e := el.Value.(*memEntry)
	if e.done || e.token != p.Token {
		return ErrNotReserved
	}
	s.remove(el)
	return nil
}

func (s *MemoryStore) remove(el *list.Element) {
	e := el.Value.(*memEntry)
	delete(s.keys, e.key)
	s.order.Remove(el)
	heap.Remove(&s.byExp, e.index)
}

// expired reports whether the key soonest to expire has expired.
func (s *MemoryStore) expired(now time.Time) bool {
	return len(s.byExp) > 0 && !now.Before(s.byExp[0].expires)
}

// sweep drops up to n expired keys, soonest expired first.
func (s *MemoryStore) sweep(now time.Time, n int) {
	for ; n > 0 && s.expired(now); n-- {
		s.remove(s.keys[s.byExp[0].key])
	}
}

// evict makes room for one key: an expired key, else the least recently
// changed finished one. In-flight keys are skipped.
func (s *MemoryStore) evict(now time.Time) bool {
	if s.expired(now) {
		s.remove(s.keys[s.byExp[0].key])
		return true
	}
	for el := s.order.Front(); el != nil; el = el.Next() {
		if el.Value.(*memEntry).done {
			s.remove(el)
			return true
		}
	}
	return false
}
