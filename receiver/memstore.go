package receiver

import (
	"container/heap"
	"container/list"
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultMemoryStoreMaxKeys bounds a [MemoryStore] by default.
const DefaultMemoryStoreMaxKeys = 100_000

// MemoryStoreOptions configures [NewMemoryStore].
type MemoryStoreOptions struct {
	// MaxKeys bounds the number of remembered keys, and so the store's
	// memory: each key costs the same whatever the length of the event id
	// it holds. When it is reached, expired keys go first, then the oldest
	// finished ones (whose duplicates would then be processed again);
	// in-flight keys are never evicted, and when they alone fill the store
	// Reserve fails with ErrStoreFull. Defaults to
	// DefaultMemoryStoreMaxKeys.
	MaxKeys int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// MemoryStore is an [IdempotencyStore] in process memory, bounded by TTL and
// by MaxKeys. It holds a SHA-256 digest of each key, not the key, so every
// key costs a few hundred bytes however long the signed event id is (a
// webhook-id may be as long as the server's header limit, 1 MiB by
// default). Its keys are lost when the process exits; use [BoltStore] to
// keep them across restarts. It is safe for concurrent use. The zero value
// is an empty store with the defaults of [MemoryStoreOptions], as
// NewMemoryStore(MemoryStoreOptions{}) returns.
type MemoryStore struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	keys  map[memKey]*list.Element
	order *list.List // of *memEntry, least recently changed first
	byExp expiryHeap // the same entries, soonest expiry first
}

// memKey is the SHA-256 digest of a key: the same size for every key.
type memKey [sha256.Size]byte

func memKeyOf(key string) memKey { return sha256.Sum256([]byte(key)) }

type memEntry struct {
	key     memKey
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
	return &MemoryStore{max: opts.MaxKeys, now: opts.Now, keys: make(map[memKey]*list.Element), order: list.New()}
}

// Len returns the number of keys held, expired ones not yet swept included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// Reserve implements [IdempotencyStore].
func (s *MemoryStore) Reserve(_ context.Context, p ReserveParams) (Reservation, error) {
	key := memKeyOf(p.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil { // the zero MemoryStore
		s.max, s.now = DefaultMemoryStoreMaxKeys, time.Now
		s.keys, s.order = make(map[memKey]*list.Element), list.New()
	}
	now := s.now()
	s.sweep(now, 16)
	if el, ok := s.keys[key]; ok {
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
	e := &memEntry{key: key, token: p.Token, expires: now.Add(p.Lease)}
	s.keys[key] = s.order.PushBack(e)
	heap.Push(&s.byExp, e)
	return Reservation{State: Reserved}, nil
}

// Complete implements [IdempotencyStore].
func (s *MemoryStore) Complete(_ context.Context, p CompleteParams) error {
	key := memKeyOf(p.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.keys[key]
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
	key := memKeyOf(p.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.keys[key]
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
