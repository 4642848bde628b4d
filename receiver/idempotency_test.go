package receiver

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/noa-server/webhook/internal/boltfile/boltfiletest"
)

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type storeCtor func(t *testing.T, now func() time.Time) IdempotencyStore

var stores = map[string]storeCtor{
	"memory": func(t *testing.T, now func() time.Time) IdempotencyStore {
		return NewMemoryStore(MemoryStoreOptions{Now: now})
	},
	"bolt": func(t *testing.T, now func() time.Time) IdempotencyStore {
		s, err := OpenBoltStore(filepath.Join(t.TempDir(), "idem.db"), BoltStoreOptions{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	},
}

func TestIdempotencyStoreContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, ctor := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{t: guideTime}
			s := ctor(t, clk.Now)
			res, err := s.Reserve(ctx, ReserveParams{Key: "k", Token: "a", Lease: time.Minute})
			if err != nil || res.State != Reserved {
				t.Fatalf("first Reserve = %+v, %v", res, err)
			}
			res, err = s.Reserve(ctx, ReserveParams{Key: "k", Token: "b", Lease: time.Minute})
			if err != nil || res.State != InFlight || res.RetryAfter != time.Minute {
				t.Fatalf("second Reserve = %+v, %v", res, err)
			}
			if err := s.Complete(ctx, CompleteParams{Key: "k", Token: "b", TTL: time.Hour}); !errors.Is(err, ErrNotReserved) {
				t.Fatalf("Complete by non-holder = %v", err)
			}
			if err := s.Release(ctx, ReleaseParams{Key: "k", Token: "b"}); !errors.Is(err, ErrNotReserved) {
				t.Fatalf("Release by non-holder = %v", err)
			}
			// Release lets the next caller in.
			if err := s.Release(ctx, ReleaseParams{Key: "k", Token: "a"}); err != nil {
				t.Fatal(err)
			}
			if res, _ = s.Reserve(ctx, ReserveParams{Key: "k", Token: "c", Lease: time.Minute}); res.State != Reserved {
				t.Fatalf("Reserve after Release = %+v", res)
			}
			if err := s.Complete(ctx, CompleteParams{Key: "k", Token: "c", TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if res, _ = s.Reserve(ctx, ReserveParams{Key: "k", Token: "d", Lease: time.Minute}); res.State != Done {
				t.Fatalf("Reserve after Complete = %+v", res)
			}
			if err := s.Release(ctx, ReleaseParams{Key: "k", Token: "c"}); !errors.Is(err, ErrNotReserved) {
				t.Fatalf("Release after Complete = %v", err)
			}
			// TTL: done keys expire.
			clk.Add(time.Hour)
			if res, _ = s.Reserve(ctx, ReserveParams{Key: "k", Token: "e", Lease: time.Minute}); res.State != Reserved {
				t.Fatalf("Reserve after TTL = %+v", res)
			}
			// Lease: an abandoned reservation expires; the late holder has lost it.
			clk.Add(time.Minute)
			if res, _ = s.Reserve(ctx, ReserveParams{Key: "k", Token: "f", Lease: time.Minute}); res.State != Reserved {
				t.Fatalf("Reserve after lease = %+v", res)
			}
			if err := s.Complete(ctx, CompleteParams{Key: "k", Token: "e", TTL: time.Hour}); !errors.Is(err, ErrNotReserved) {
				t.Fatalf("Complete after lost lease = %v", err)
			}
		})
	}
}

// TestIdempotencyStoreHugeDurations: a TTL or lease as long as a Duration
// goes (a "forever") holds the key; it must not overflow into the past.
func TestIdempotencyStoreHugeDurations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, ctor := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := ctor(t, time.Now)
			if _, err := s.Reserve(ctx, ReserveParams{Key: "done", Token: "a", Lease: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if err := s.Complete(ctx, CompleteParams{Key: "done", Token: "a", TTL: math.MaxInt64}); err != nil {
				t.Fatal(err)
			}
			if res, err := s.Reserve(ctx, ReserveParams{Key: "done", Token: "b", Lease: time.Minute}); err != nil || res.State != Done {
				t.Errorf("Reserve after Complete with TTL MaxInt64 = %+v, %v; want Done", res, err)
			}
			if _, err := s.Reserve(ctx, ReserveParams{Key: "held", Token: "a", Lease: math.MaxInt64}); err != nil {
				t.Fatal(err)
			}
			if res, err := s.Reserve(ctx, ReserveParams{Key: "held", Token: "b", Lease: time.Minute}); err != nil || res.State != InFlight {
				t.Errorf("Reserve during a lease of MaxInt64 = %+v, %v; want InFlight", res, err)
			}
		})
	}
}

func TestMemoryStoreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: guideTime}
	s := NewMemoryStore(MemoryStoreOptions{MaxKeys: 10, Now: clk.Now})
	for i := range 1000 {
		k := strconv.Itoa(i)
		if _, err := s.Reserve(ctx, ReserveParams{Key: k, Token: "t", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, CompleteParams{Key: k, Token: "t", TTL: DefaultIdempotencyTTL}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n != 10 {
		t.Fatalf("Len = %d, want 10", n)
	}
	// The newest are remembered, the oldest were evicted.
	if res, _ := s.Reserve(ctx, ReserveParams{Key: "999", Token: "x", Lease: time.Minute}); res.State != Done {
		t.Fatalf("newest key state = %v", res.State)
	}
	// In-flight keys are never evicted: a full store of them refuses.
	full := NewMemoryStore(MemoryStoreOptions{MaxKeys: 2, Now: clk.Now})
	for _, k := range []string{"a", "b"} {
		if _, err := full.Reserve(ctx, ReserveParams{Key: k, Token: "t", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := full.Reserve(ctx, ReserveParams{Key: "c", Token: "t", Lease: time.Minute}); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("Reserve on full store = %v", err)
	}
	clk.Add(2 * time.Minute) // leases expire: room again
	if res, err := full.Reserve(ctx, ReserveParams{Key: "c", Token: "t", Lease: time.Minute}); err != nil || res.State != Reserved {
		t.Fatalf("Reserve after expiry = %+v, %v", res, err)
	}
	if n := full.Len(); n > 2 {
		t.Fatalf("Len = %d", n)
	}
}

// TestMemoryStoreEvictsExpiredFirst: at MaxKeys, an expired key makes room
// before a finished one that is still remembered, wherever it is in the
// store (keys of a shorter TTL, as from another endpoint sharing the store,
// expire before older keys of a longer one).
func TestMemoryStoreEvictsExpiredFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &fakeClock{t: guideTime}
	s := NewMemoryStore(MemoryStoreOptions{MaxKeys: 40, Now: clk.Now})
	add := func(k string, ttl time.Duration) {
		t.Helper()
		if _, err := s.Reserve(ctx, ReserveParams{Key: k, Token: "t", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, CompleteParams{Key: k, Token: "t", TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		add("long"+strconv.Itoa(i), DefaultIdempotencyTTL)
	}
	for i := range 10 {
		add("short"+strconv.Itoa(i), time.Hour)
	}
	clk.Add(2 * time.Hour) // the short keys expire
	for i := range 10 {
		if res, err := s.Reserve(ctx, ReserveParams{Key: "new" + strconv.Itoa(i), Token: "t", Lease: time.Minute}); err != nil || res.State != Reserved {
			t.Fatalf("Reserve new%d = %+v, %v", i, res, err)
		}
	}
	for i := range 30 {
		if res, _ := s.Reserve(ctx, ReserveParams{Key: "long" + strconv.Itoa(i), Token: "x", Lease: time.Minute}); res.State != Done {
			t.Fatalf("long%d was evicted while expired keys were held", i)
		}
	}
}

func TestBoltStoreSurvivesRestartAndSweeps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idem.db")
	clk := &fakeClock{t: guideTime}
	s, err := OpenBoltStore(path, BoltStoreOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		k := strconv.Itoa(i)
		if _, err := s.Reserve(ctx, ReserveParams{Key: k, Token: "t", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, CompleteParams{Key: k, Token: "t", TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s, err = OpenBoltStore(path, BoltStoreOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if res, _ := s.Reserve(ctx, ReserveParams{Key: "7", Token: "x", Lease: time.Minute}); res.State != Done {
		t.Fatalf("after restart: %+v", res)
	}
	clk.Add(2 * time.Hour)
	for range 4 { // each Reserve sweeps up to 16 expired keys
		if _, err := s.Reserve(ctx, ReserveParams{Key: "new", Token: "x", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(boltKeys).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("keys after sweep = %d, want 1", n)
	}
}

// idemChain is Verify → Idempotency → h.
func idemChain(t *testing.T, store IdempotencyStore, h http.Handler) http.Handler {
	t.Helper()
	idem, err := IdempotencyWithOptions(IdempotencyOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	v := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, Now: fixedClock(guideTime)})
	return v(idem(h))
}

func TestIdempotencyConcurrentDuplicatesRunOnce(t *testing.T) {
	t.Parallel()
	for name, ctor := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const n = 50
			var calls atomic.Int32
			release := make(chan struct{})
			h := idemChain(t, ctor(t, time.Now), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				// Hold the reservation until every duplicate has answered (the
				// deadline only keeps a broken store from hanging the test).
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()

			codes := make(chan int, n)
			var wg sync.WaitGroup
			var answered atomic.Int32
			for range n {
				wg.Go(func() {
					req := signedRequest(t, guideBody, guideID, guideTime, secret1)
					req.RequestURI = ""
					req.URL, _ = req.URL.Parse(srv.URL + "/webhooks/noa-server")
					resp, err := srv.Client().Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusConflict && resp.Header.Get("Retry-After") == "" {
						t.Error("409 without Retry-After")
					}
					codes <- resp.StatusCode
					if answered.Add(1) == n-1 {
						close(release)
					}
				})
			}
			wg.Wait()
			close(codes)
			count := map[int]int{}
			for c := range codes {
				count[c]++
			}
			if calls.Load() != 1 || count[200] != 1 || count[409] != n-1 {
				t.Fatalf("handler calls = %d, answers = %v; want 1 call, 1×200, %d×409", calls.Load(), count, n-1)
			}
			// A finished duplicate: 2xx, handler not run.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, signedRequest(t, guideBody, guideID, guideTime, secret1))
			if rec.Code != 200 || calls.Load() != 1 {
				t.Fatalf("late duplicate: %d, calls %d", rec.Code, calls.Load())
			}
		})
	}
}

// The handler clock of idemChain is guideTime; sign at guideTime.
func TestIdempotencyFailureReleases(t *testing.T) {
	t.Parallel()
	for name, ctor := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			h := idemChain(t, ctor(t, time.Now), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch calls.Add(1) {
				case 1:
					http.Error(w, "boom", 500)
				case 2:
					panic("handler bug")
				}
			}))
			send := func() int {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, signedRequest(t, guideBody, guideID, guideTime, secret1))
				return rec.Code
			}
			if c := send(); c != 500 {
				t.Fatalf("first = %d", c)
			}
			func() {
				defer func() {
					if recover() == nil {
						t.Error("panic swallowed")
					}
				}()
				send()
			}()
			if c := send(); c != 200 {
				t.Fatalf("retry after failure = %d", c)
			}
			if c := send(); c != 200 || calls.Load() != 3 {
				t.Fatalf("duplicate = %d, calls = %d, want 3", c, calls.Load())
			}
		})
	}
}

// TestIdempotencyInformationalThenSuccess: a handler that sends a 1xx
// (103 Early Hints) before its 200 succeeded; the key is kept and Health
// counts it processed.
func TestIdempotencyInformationalThenSuccess(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	health := NewHealth(nil)
	srv := httptest.NewServer(health.Middleware(idemChain(t, NewMemoryStore(MemoryStoreOptions{}), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
	}))))
	defer srv.Close()
	for range 2 {
		if code := postTo(t, srv, signedRequest(t, guideBody, guideID, guideTime, secret1)); code != http.StatusOK {
			t.Fatalf("status %d, want 200", code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if s := health.Stats(); s.Processed != 1 || s.Duplicates != 1 || s.Failed != 0 {
		t.Errorf("stats %+v, want 1 processed, 1 duplicate", s)
	}
}

// TestIdempotencyKeyIsWebhookIDWithEmptySignatureLine: a delivery whose
// webhook-id differs from its payload id is deduplicated by webhook-id even
// when a copy carries an extra, empty webhook-signature line before the
// real one (the Standard headers still verify).
func TestIdempotencyKeyIsWebhookIDWithEmptySignatureLine(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	h := idemChain(t, NewMemoryStore(MemoryStoreOptions{}), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	body := eventBody("evt_payload", "order.created", `{}`)
	first := signedRequest(t, body, "msg_1", guideTime, secret1)
	replay := signedRequest(t, body, "msg_1", guideTime, secret1)
	replay.Header["Webhook-Signature"] = append([]string{""}, replay.Header.Values("webhook-signature")...)
	for _, r := range []*http.Request{first, replay} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", rec.Code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// TestIdempotencyLongEventID: a signed event id longer than bbolt's key
// limit (32 KiB) is deduplicated like any other, by every store.
func TestIdempotencyLongEventID(t *testing.T) {
	t.Parallel()
	for name, ctor := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			h := idemChain(t, ctor(t, time.Now), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
			for _, id := range []string{strings.Repeat("a", 40000), strings.Repeat("a", 40000) + "b"} {
				for range 2 {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, signedRequest(t, eventBody("evt_1", "order.created", `{}`), id, guideTime, secret1))
					if rec.Code != http.StatusOK {
						t.Fatalf("status %d, want 200", rec.Code)
					}
				}
			}
			if n := calls.Load(); n != 2 {
				t.Errorf("handler ran %d times, want 2 (once per id)", n)
			}
		})
	}
}

func TestIdempotencyScopedPerEndpoint(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	h := idemChain(t, NewMemoryStore(MemoryStoreOptions{}), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	for _, path := range []string{"/a", "/b", "/a"} {
		r := signedRequest(t, guideBody, guideID, guideTime, secret1)
		r.URL.Path = path
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if calls.Load() != 2 {
		t.Fatalf("calls = %d, want 2 (one per endpoint)", calls.Load())
	}
}

func TestIdempotencyRequiresVerifiedEvent(t *testing.T) {
	t.Parallel()
	store := NewMemoryStore(MemoryStoreOptions{})
	h := Idempotency(store)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler ran") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signedRequest(t, guideBody, guideID, guideTime, secret1))
	if rec.Code != 500 || store.Len() != 0 {
		t.Fatalf("status %d, store len %d", rec.Code, store.Len())
	}
	// Unverified (bad signature) requests never reach the store.
	h2 := idemChain(t, store, http.NotFoundHandler())
	h2.ServeHTTP(httptest.NewRecorder(), signedRequest(t, guideBody, guideID, guideTime, secret2))
	if store.Len() != 0 {
		t.Fatal("unverified request wrote to the store")
	}
	if _, err := IdempotencyWithOptions(IdempotencyOptions{}); err == nil {
		t.Fatal("nil store accepted")
	}
}

type failingStore struct{ IdempotencyStore }

func (failingStore) Reserve(context.Context, ReserveParams) (Reservation, error) {
	return Reservation{}, errors.New("down")
}

func TestIdempotencyStoreError(t *testing.T) {
	t.Parallel()
	h := idemChain(t, failingStore{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler ran") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signedRequest(t, guideBody, guideID, guideTime, secret1))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestBoltStoreFileLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "idem.db")
	s, err := OpenBoltStore(path, BoltStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := OpenBoltStore(path, BoltStoreOptions{OpenTimeout: 50 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second open of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another process") || !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("error %q does not say the file is in use", err)
	}
}

// The zero MemoryStore is an empty store with the default bound and the
// real clock, ready for Idempotency.
func TestMemoryStoreZeroValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var s MemoryStore
	if res, err := s.Reserve(ctx, ReserveParams{Key: "k", Token: "a", Lease: time.Minute}); err != nil || res.State != Reserved {
		t.Fatalf("first Reserve = %+v, %v", res, err)
	}
	if res, err := s.Reserve(ctx, ReserveParams{Key: "k", Token: "b", Lease: time.Minute}); err != nil || res.State != InFlight {
		t.Fatalf("second Reserve = %+v, %v", res, err)
	}
	if err := s.Complete(ctx, CompleteParams{Key: "k", Token: "a", TTL: time.Hour}); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	if res, err := s.Reserve(ctx, ReserveParams{Key: "k", Token: "c", Lease: time.Minute}); err != nil || res.State != Done {
		t.Fatalf("Reserve after Complete = %+v, %v", res, err)
	}
	for _, k := range []string{"x", "y"} {
		if err := new(MemoryStore).Complete(ctx, CompleteParams{Key: k, Token: "a", TTL: time.Hour}); !errors.Is(err, ErrNotReserved) {
			t.Errorf("Complete on an empty zero store = %v", err)
		}
		if err := new(MemoryStore).Release(ctx, ReleaseParams{Key: k, Token: "a"}); !errors.Is(err, ErrNotReserved) {
			t.Errorf("Release on an empty zero store = %v", err)
		}
	}
	if n := new(MemoryStore).Len(); n != 0 {
		t.Errorf("Len of a zero store = %d", n)
	}

	// Behind Idempotency, a duplicate delivery is answered without running
	// the handler again.
	var calls atomic.Int32
	srv := httptest.NewServer(idemChain(t, new(MemoryStore), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) })))
	defer srv.Close()
	for range 2 {
		if code := postTo(t, srv, signedRequest(t, guideBody, guideID, guideTime, secret1)); code != http.StatusOK {
			t.Errorf("status %d, want 200", code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// TestBoltStoreTruncatedFile: an idempotency file cut short is an error
// from OpenBoltStore; bbolt alone would crash the process reading it.
func TestBoltStoreTruncatedFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idem.db")
	s, err := OpenBoltStore(path, BoltStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if _, err := s.Reserve(ctx, ReserveParams{Key: "evt_" + strconv.Itoa(i) + strings.Repeat("k", 100), Token: "t", Lease: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	boltfiletest.Truncated(t, path, []int{16384}, func(path string) error {
		s, err := OpenBoltStore(path, BoltStoreOptions{})
		if err == nil {
			s.Close()
		}
		return err
	})
}

// TestIdempotencyKeyIsTheSignedWebhookID: over a real server, a processed
// delivery replayed with an extra webhook-id line after the signed one (in
// any case: the server merges the lines into one header) is still the same
// event, and a replay whose first webhook-id line is not the signed one
// does not verify. The handler runs once, with the signed id.
func TestIdempotencyKeyIsTheSignedWebhookID(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 10)
	srv := httptest.NewServer(idemChain(t, NewMemoryStore(MemoryStoreOptions{}), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := EventFromContext(r.Context())
		seen <- ev.MessageID
	})))
	defer srv.Close()
	original := signedRequest(t, guideBody, guideID, guideTime, secret1).Header
	with := func(edit func(h http.Header)) http.Header {
		h := original.Clone()
		edit(h)
		return h
	}
	steps := []struct {
		name string
		h    http.Header
		want int
	}{
		{"original", original, 200},
		{"second webhook-id line appended", with(func(h http.Header) { h["Webhook-Id"] = append(h["Webhook-Id"], "evt_other") }), 200},
		// The client writes header keys sorted: "webhook-id" after
		// "Webhook-Id", "WEBHOOK-ID" before it.
		{"webhook-id line in lower case after", with(func(h http.Header) { h["webhook-id"] = []string{"evt_other"} }), 200},
		{"other webhook-id line first", with(func(h http.Header) { h["Webhook-Id"] = append([]string{"evt_other"}, h["Webhook-Id"]...) }), 401},
		{"webhook-id line in upper case before", with(func(h http.Header) { h["WEBHOOK-ID"] = []string{"evt_other"} }), 401},
		{"webhook-id replaced", with(func(h http.Header) { h["Webhook-Id"] = []string{"evt_other"} }), 401},
	}
	for _, s := range steps {
		if code := sendRaw(t, srv, guideBody, s.h); code != s.want {
			t.Fatalf("%s: status %d, want %d", s.name, code, s.want)
		}
	}
	close(seen)
	var ids []string
	for id := range seen {
		ids = append(ids, id)
	}
	if len(ids) != 1 || ids[0] != guideID {
		t.Fatalf("handler ran for ids %q, want once for %q", ids, guideID)
	}
}

// TestMemoryStoreMemoryBoundedWhateverTheIDs: MaxKeys bounds the memory of
// a MemoryStore only if a key costs the same whatever its length. A sender
// holding the secret (or anyone who stole it) signs webhook-ids as long as
// the server's header limit (1 MiB by default); 100 000 of those must not
// be held as 100 GB. Not parallel: it reads the heap.
func TestMemoryStoreMemoryBoundedWhateverTheIDs(t *testing.T) {
	store := NewMemoryStore(MemoryStoreOptions{})
	var calls atomic.Int32
	srv := httptest.NewServer(idemChain(t, store, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) })))
	defer srv.Close()
	const n, idLen = 64, 512 << 10 // 32 MiB of ids
	long := func(prefix string) string { return prefix + strings.Repeat("x", idLen) }
	deliver := func(id string) {
		t.Helper()
		if code := postTo(t, srv, signedRequest(t, eventBody("evt_1", "order.created", `{}`), id, guideTime, secret1)); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		deliver(long(strconv.Itoa(i)))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if store.Len() != n {
		t.Fatalf("%d keys, want %d", store.Len(), n)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Fatalf("the heap grew by %d MiB for %d keys: the store holds the ids themselves", grown>>20, n)
	}
	// Long ids are still told apart: a duplicate is known, an id that
	// differs in its last byte is not.
	deliver(long("0"))
	deliver(long("0") + "y")
	if c := calls.Load(); c != n+1 {
		t.Fatalf("handler ran %d times, want %d", c, n+1)
	}
}

// TestIdempotencyScopeIsTheRoute: the default scope is the ServeMux
// pattern that routed the delivery, not the path the client asked for. A
// signature does not cover the path, so with a pattern that matches
// several paths (a subtree, as "/webhooks/" or "/webhooks/noa-server/"
// are, or a wildcard) a delivery replayed to another of them inside the
// tolerance must still be a duplicate; two patterns sharing a store are
// still two endpoints.
func TestIdempotencyScopeIsTheRoute(t *testing.T) {
	t.Parallel()
	store := NewMemoryStore(MemoryStoreOptions{})
	var subtree, wildcard, exact atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/", idemChain(t, store, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { subtree.Add(1) })))
	mux.Handle("POST /hooks/{source}", idemChain(t, store, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { wildcard.Add(1) })))
	mux.Handle("POST /exact", idemChain(t, store, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { exact.Add(1) })))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, path := range []string{
		"/webhooks/noa-server", "/webhooks/noa-server/", "/webhooks/other", "/webhooks/a/b",
		"/hooks/noa-server", "/hooks/other", "/hooks/x%2Fy",
		"/exact",
	} {
		req := signedRequest(t, guideBody, guideID, guideTime, secret1)
		req.RequestURI = ""
		req.URL, _ = req.URL.Parse(srv.URL + path)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	if s, w, e := subtree.Load(), wildcard.Load(), exact.Load(); s != 1 || w != 1 || e != 1 {
		t.Fatalf("handlers ran %d (subtree), %d (wildcard), %d (exact) times; want once each", s, w, e)
	}
}

func TestRouteScope(t *testing.T) {
	t.Parallel()
	for pattern, want := range map[string]string{
		"POST /webhooks/noa-server":        "/webhooks/noa-server",
		"/webhooks/":                       "/webhooks/",
		"POST hooks.example.com/in/{src}/": "/in/{src}/",
		"POST   /spaced":                   "/spaced",
		"":                                 "/the/url/path",
	} {
		r := httptest.NewRequest(http.MethodPost, "/the/url/path", nil)
		r.Pattern = pattern
		if got := routeScope(r); got != want {
			t.Errorf("pattern %q: scope %q, want %q", pattern, got, want)
		}
	}
}

// TestAllowLegacyReplayIsBoundedByIdempotency pins what AllowLegacy costs,
// as the docs say: a captured delivery stripped of its three Standard
// headers verifies by the legacy header, which has no timestamp, long after
// the tolerance. Only the idempotency store, keyed then by the payload id,
// stops the replay, and only while it keeps the id.
func TestAllowLegacyReplayIsBoundedByIdempotency(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: guideTime}
	var calls atomic.Int32
	verify := VerifyWithOptionsMust(t, VerifyOptions{Secrets: []string{secret1}, AllowLegacy: true, Now: clk.Now})
	idem, err := IdempotencyWithOptions(IdempotencyOptions{Store: NewMemoryStore(MemoryStoreOptions{Now: clk.Now}), TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(verify(idem(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))))
	defer srv.Close()
	captured := signedRequest(t, guideBody, guideID, guideTime, secret1).Header
	stripped := captured.Clone()
	for _, k := range []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
		delete(stripped, k)
	}
	steps := []struct {
		name    string
		advance time.Duration
		h       http.Header
		want    int
		calls   int32
	}{
		{"delivery", 0, captured, 200, 1},
		{"replay an hour later", time.Hour, captured, 401, 1},
		{"replay stripped, an hour later", 0, stripped, 200, 1},
		{"replay stripped, after the TTL", 24 * time.Hour, stripped, 200, 2},
	}
	for _, s := range steps {
		clk.Add(s.advance)
		if code := sendRaw(t, srv, guideBody, s.h); code != s.want || calls.Load() != s.calls {
			t.Fatalf("%s: status %d, handler ran %d times; want %d, %d", s.name, code, calls.Load(), s.want, s.calls)
		}
	}
}

// TestIdempotencyHandlerOutcomesOverHTTP runs Verify → Idempotency → Router
// on a real server, with each store, for every way the consumer's first run
// of an event can end. A run that did not succeed releases the key, so the
// sender's retry runs the handler again (else the event is lost); a run
// that succeeded keeps it, so the retry is acknowledged without a second
// run.
func TestIdempotencyHandlerOutcomesOverHTTP(t *testing.T) {
	t.Parallel()
	outcomes := []struct {
		name string
		// first is the handler's first run; started is closed when it runs.
		first func(ctx context.Context, started chan<- struct{}) error
		// cancel, when set, makes the client give up once the handler runs.
		cancel bool
		// wrap is applied to the router (a timeout, for instance).
		wrap      func(http.Handler) http.Handler
		wantFirst int // 0: no answer reaches the client
		wantRuns  int // after the retry
	}{
		{name: "success", first: func(context.Context, chan<- struct{}) error { return nil }, wantFirst: 200, wantRuns: 1},
		{name: "error", first: func(context.Context, chan<- struct{}) error { return errors.New("db down") }, wantFirst: 500, wantRuns: 2},
		{name: "panic", first: func(context.Context, chan<- struct{}) error { panic("handler bug") }, wantFirst: 500, wantRuns: 2},
		{name: "client gone", cancel: true, first: func(ctx context.Context, started chan<- struct{}) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}, wantRuns: 2},
		{name: "timeout", wrap: func(h http.Handler) http.Handler { return http.TimeoutHandler(h, 20*time.Millisecond, "timeout") },
			first: func(ctx context.Context, _ chan<- struct{}) error {
				<-ctx.Done()
				return ctx.Err()
			}, wantFirst: 503, wantRuns: 2},
		{name: "goexit", first: func(context.Context, chan<- struct{}) error { runtime.Goexit(); return nil }, wantRuns: 2},
	}
	for _, o := range outcomes {
		for name, ctor := range stores {
			t.Run(o.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				r := newRouter(t, RouterOptions{})
				var runs atomic.Int32
				started := make(chan struct{})
				r.On("order.created", func(ctx context.Context, e *Event) error {
					if runs.Add(1) == 1 {
						return o.first(ctx, started)
					}
					return nil
				})
				var h http.Handler = r
				if o.wrap != nil {
					h = o.wrap(h)
				}
				srv := httptest.NewServer(idemChain(t, ctor(t, time.Now), h))
				defer srv.Close()

				req := signedRequest(t, guideBody, guideID, guideTime, secret1)
				req.RequestURI = ""
				req.URL, _ = req.URL.Parse(srv.URL + "/webhooks/noa-server")
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if o.cancel {
					go func() { <-started; cancel() }()
				}
				code := 0
				if resp, err := srv.Client().Do(req.WithContext(ctx)); err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				if code != o.wantFirst {
					t.Fatalf("first delivery: status %d, want %d", code, o.wantFirst)
				}
				// The sender retries; while the first run is still ending,
				// it is told 409 and retries again.
				deadline := time.Now().Add(5 * time.Second)
				for {
					code = postTo(t, srv, signedRequest(t, guideBody, guideID, guideTime, secret1))
					if code != http.StatusConflict || time.Now().After(deadline) {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				if code != http.StatusOK {
					t.Fatalf("retry: status %d, want 200", code)
				}
				if n := runs.Load(); int(n) != o.wantRuns {
					t.Errorf("handler ran %d times, want %d", n, o.wantRuns)
				}
			})
		}
	}
}
