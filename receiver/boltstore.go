package receiver

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/internal/boltfile"
)

var (
	boltKeys   = []byte("idempotency_keys")   // key → record
	boltExpiry = []byte("idempotency_expiry") // be64(expiry ns) + key → nil
)

// BoltStoreOptions configures [OpenBoltStore].
type BoltStoreOptions struct {
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// OpenTimeout bounds the wait for the file lock when another process
	// holds the file. Defaults to 1 second.
	OpenTimeout time.Duration
}

// BoltStore is an [IdempotencyStore] in its own bbolt file, so processed
// event ids survive restarts. Expired keys are removed a few at a time on
// every Reserve. It is safe for concurrent use; one process at a time may
// open the file.
type BoltStore struct {
	db  *bolt.DB
	now func() time.Time
}

var _ IdempotencyStore = (*BoltStore)(nil)

// OpenBoltStore opens (creating if needed) the bbolt file at path.
func OpenBoltStore(path string, opts BoltStoreOptions) (*BoltStore, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = time.Second
	}
	if err := boltfile.CheckSize(path); err != nil {
		return nil, fmt.Errorf("receiver: open idempotency store %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("receiver: open idempotency store: %w", boltfile.Locked(err, opts.OpenTimeout))
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(boltKeys); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(boltExpiry)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("receiver: open idempotency store: %w", err)
	}
	return &BoltStore{db: db, now: opts.Now}, nil
}

// Close closes the file. It is safe to call twice.
func (s *BoltStore) Close() error { return s.db.Close() }

// record layout: 1 byte state (0 in flight, 1 done), 8 bytes expiry (Unix
// ns, big-endian), then the token.
type boltRecord struct {
	done    bool
	expires int64
	token   string
}

func (r boltRecord) encode() []byte {
	b := make([]byte, 9+len(r.token))
	if r.done {
		b[0] = 1
	}
	binary.BigEndian.PutUint64(b[1:9], uint64(r.expires))
	copy(b[9:], r.token)
	return b
}

var errCorrupt = errors.New("receiver: corrupt idempotency record")

func decodeBoltRecord(b []byte) (boltRecord, error) {
	if len(b) < 9 || b[0] > 1 {
		return boltRecord{}, errCorrupt
	}
	return boltRecord{done: b[0] == 1, expires: int64(binary.BigEndian.Uint64(b[1:9])), token: string(b[9:])}, nil
}

// expiresAt is now plus d, in Unix nanoseconds, held at the largest
// instant instead of overflowing into the past.
func expiresAt(now int64, d time.Duration) int64 {
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}

// maxLiteralKey is the longest key stored as is: the expiry index prefixes
// 8 bytes, and bbolt refuses keys longer than MaxKeySize.
const maxLiteralKey = bolt.MaxKeySize - 8

// fileKey is the key stored for key: key itself, or, when it is too long for
// bbolt, its SHA-256 digest.
func fileKey(key string) string {
	if len(key) <= maxLiteralKey {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256\x00" + string(sum[:])
}

func expiryKey(expires int64, key string) []byte {
	b := make([]byte, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(expires))
	copy(b[8:], key)
	return b
}

// put writes rec for key and keeps the expiry index in step.
func put(keys, exp *bolt.Bucket, key string, old *boltRecord, rec boltRecord) error {
	if old != nil {
		if err := exp.Delete(expiryKey(old.expires, key)); err != nil {
			return err
		}
	}
	if err := exp.Put(expiryKey(rec.expires, key), nil); err != nil {
		return err
	}
	return keys.Put([]byte(key), rec.encode())
}

func del(keys, exp *bolt.Bucket, key string, old boltRecord) error {
	if err := exp.Delete(expiryKey(old.expires, key)); err != nil {
		return err
	}
	return keys.Delete([]byte(key))
}

// Reserve implements [IdempotencyStore].
func (s *BoltStore) Reserve(ctx context.Context, p ReserveParams) (Reservation, error) {
	if err := ctx.Err(); err != nil {
		return Reservation{}, err
	}
	if p.Key == "" {
		return Reservation{}, errors.New("receiver: empty idempotency key")
	}
	key := fileKey(p.Key)
	var res Reservation
	now := s.now().UnixNano()
	err := s.db.Update(func(tx *bolt.Tx) error {
		keys, exp := tx.Bucket(boltKeys), tx.Bucket(boltExpiry)
		if err := s.sweep(keys, exp, now, 16); err != nil {
			return err
		}
		var old *boltRecord
		if v := keys.Get([]byte(key)); v != nil {
			rec, err := decodeBoltRecord(v)
			if err != nil {
				return err
			}
			if now < rec.expires {
				if rec.done {
					res = Reservation{State: Done}
				} else {
					res = Reservation{State: InFlight, RetryAfter: time.Duration(rec.expires - now)}
				}
				return nil
			}
			old = &rec
		}
		res = Reservation{State: Reserved}
		return put(keys, exp, key, old, boltRecord{token: p.Token, expires: expiresAt(now, p.Lease)})
	})
	if err != nil {
		return Reservation{}, fmt.Errorf("receiver: reserve: %w", err)
	}
	return res, nil
}

// sweep deletes up to n keys whose expiry has passed.
func (s *BoltStore) sweep(keys, exp *bolt.Bucket, now int64, n int) error {
	c := exp.Cursor()
	var stale [][]byte
	for k, _ := c.First(); k != nil && len(stale) < n; k, _ = c.Next() {
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k[:8])) > now {
			break
		}
		stale = append(stale, append([]byte(nil), k...))
	}
	for _, k := range stale {
		if err := exp.Delete(k); err != nil {
			return err
		}
		key := k[8:]
		if v := keys.Get(key); v != nil {
			if rec, err := decodeBoltRecord(v); err == nil && rec.expires > now {
				continue // re-reserved since; its own index entry remains
			}
			if err := keys.Delete(key); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish applies Complete, or Release when release is set, for the holder of
// the reservation.
func (s *BoltStore) finish(ctx context.Context, key, token string, ttl time.Duration, release bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key = fileKey(key)
	return s.db.Update(func(tx *bolt.Tx) error {
		keys, exp := tx.Bucket(boltKeys), tx.Bucket(boltExpiry)
		v := keys.Get([]byte(key))
		if v == nil {
			return ErrNotReserved
		}
		rec, err := decodeBoltRecord(v)
		if err != nil {
			return err
		}
		if rec.done || rec.token != token {
			return ErrNotReserved
		}
		if release {
			return del(keys, exp, key, rec)
		}
		return put(keys, exp, key, &rec, boltRecord{done: true, expires: expiresAt(s.now().UnixNano(), ttl)})
	})
}

// Complete implements [IdempotencyStore].
func (s *BoltStore) Complete(ctx context.Context, p CompleteParams) error {
	return s.finish(ctx, p.Key, p.Token, p.TTL, false)
}

// Release implements [IdempotencyStore].
func (s *BoltStore) Release(ctx context.Context, p ReleaseParams) error {
	return s.finish(ctx, p.Key, p.Token, 0, true)
}
