package boltstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
)

// CreateWebhook stores a copy of w. It sets CreatedAt (when zero) to now and
// UpdatedAt (when zero) to CreatedAt, and writes both back into w.
// ErrConflict when the id is in use, ErrInvalid without an id or tenant.
func (s *Store) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	return s.CreateWebhookCapped(ctx, w, 0)
}

// CreateWebhookCapped is CreateWebhook, unless w.Tenant has limit webhooks or
// more already (store.ErrLimit). See store.CappedCreator.
func (s *Store) CreateWebhookCapped(ctx context.Context, w *store.Webhook, limit int) error {
	switch {
	case w == nil:
		return invalid("nil webhook")
	case w.ID == "":
		return invalid("webhook without id")
	case w.Tenant == "":
		return invalid("webhook without tenant")
	}
	defer s.hooks.drop()
	c := *w
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bWebhooks)
		if b.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("boltstore: webhook %q: %w", c.ID, store.ErrConflict)
		}
		if limit > 0 && countPrefix(tx.Bucket(bWebhookTenant), pairKey(c.Tenant, ""), limit) >= limit {
			return fmt.Errorf("boltstore: tenant has %d webhooks, the most allowed: %w", limit, store.ErrLimit)
		}
		if err := b.Put([]byte(c.ID), encodeWebhook(&c)); err != nil {
			return err
		}
		if err := tx.Bucket(bWebhookTenant).Put(pairKey(c.Tenant, c.ID), nil); err != nil {
			return err
		}
		return tx.Bucket(bCounts).Put([]byte(c.ID), encodeCounts(store.Counts{}))
	})
	if err != nil {
		return err
	}
	w.CreatedAt, w.UpdatedAt = c.CreatedAt, c.UpdatedAt
	return nil
}

// countPrefix counts the keys of b that start with pfx, up to most.
func countPrefix(b *bolt.Bucket, pfx []byte, most int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx) && n < most; k, _ = c.Next() {
		n++
	}
	return n
}

// getWebhook reads a webhook in tx; ErrNotFound when absent.
func getWebhook(tx *bolt.Tx, id string) (*store.Webhook, error) {
	v := tx.Bucket(bWebhooks).Get([]byte(id))
	if v == nil {
		return nil, notFound("webhook", id)
	}
	w, err := decodeWebhook(v)
	if err != nil {
		return nil, fmt.Errorf("boltstore: webhook %q: %w", id, err)
	}
	return w, nil
}

// GetWebhook returns a copy of the webhook with the given id, of any tenant.
func (s *Store) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	if id == "" {
		return nil, invalid("empty webhook id")
	}
	var w *store.Webhook
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		w, err = getWebhook(tx, id)
		return err
	})
	return w, err
}

// ListWebhooks returns up to p.Limit of the tenant's webhooks, newest first,
// and the cursor of the next page ("" when this page holds the last one).
func (s *Store) ListWebhooks(ctx context.Context, p store.ListWebhooksParams) ([]*store.Webhook, string, error) {
	if p.Tenant == "" {
		return nil, "", invalid("listing without tenant")
	}
	if p.Limit < 1 || p.Limit > store.MaxPageLimit {
		return nil, "", invalid("limit %d outside 1..%d", p.Limit, store.MaxPageLimit)
	}
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	var (
		page []*store.Webhook
		next string
	)
	err = s.view(ctx, func(tx *bolt.Tx) error {
		page, next = nil, ""
		wb := tx.Bucket(bWebhooks)
		return walkBack(tx.Bucket(bWebhookTenant).Cursor(), prefix(p.Tenant), after, func(id, _ []byte) (bool, error) {
			if len(page) == p.Limit {
				next = encodeCursor(page[len(page)-1].ID)
				return false, nil
			}
			v := wb.Get(id)
			if v == nil {
				return true, nil
			}
			w, err := decodeWebhook(v)
			if err != nil {
				return false, fmt.Errorf("boltstore: webhook %q: %w", id, err)
			}
			page = append(page, w)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	return page, next, nil
}

// UpdateWebhook changes the webhook id in one write transaction. See
// store.Store.
func (s *Store) UpdateWebhook(ctx context.Context, id string, change func(w *store.Webhook) error) (*store.Webhook, error) {
	if id == "" {
		return nil, invalid("empty webhook id")
	}
	defer s.hooks.drop()
	var out *store.Webhook
	err := s.update(ctx, func(tx *bolt.Tx) error {
		w, err := getWebhook(tx, id) // decoded afresh: change may modify it
		if err != nil {
			return err
		}
		tenant, created := w.Tenant, w.CreatedAt
		if err := change(w); err != nil {
			return err
		}
		w.ID, w.Tenant, w.CreatedAt = id, tenant, created
		if w.UpdatedAt.IsZero() {
			w.UpdatedAt = s.now()
		}
		v := encodeWebhook(w)
		// What is stored is returned: times without monotonic readings.
		if out, err = decodeWebhook(v); err != nil {
			return err
		}
		return tx.Bucket(bWebhooks).Put([]byte(id), v)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteWebhook removes the webhook with all its deliveries and their
// attempts, in one transaction.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	if id == "" {
		return invalid("empty webhook id")
	}
	defer s.hooks.drop()
	return s.update(ctx, func(tx *bolt.Tx) error {
		w, err := getWebhook(tx, id)
		if err != nil {
			return err
		}
		var ids [][]byte
		pfx := prefix(id)
		c := tx.Bucket(bDelWebhook).Cursor()
		for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
			ids = append(ids, bytes.Clone(k[len(pfx):]))
		}
		for i, did := range ids {
			if i%256 == 255 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("boltstore: %w", err)
				}
			}
			if err := deleteDelivery(tx, &s.leases, string(did), nil); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bWebhooks).Delete([]byte(id)); err != nil {
			return err
		}
		if err := tx.Bucket(bWebhookTenant).Delete(pairKey(w.Tenant, id)); err != nil {
			return err
		}
		return tx.Bucket(bCounts).Delete([]byte(id))
	})
}

// MatchWebhooks returns copies of the tenant's active webhooks subscribed to
// eventType, oldest first. It reads the tenant's webhooks from the file once
// and then from memory until a webhook changes (see Costs in the package
// documentation). A webhook whose record cannot be read is reported and
// stepped over (see Unreadable records).
func (s *Store) MatchWebhooks(ctx context.Context, tenant, eventType string) ([]*store.Webhook, error) {
	if tenant == "" {
		return nil, invalid("match without tenant")
	}
	if eventType == "" {
		return nil, invalid("match without event type")
	}
	ws, gen, ok := s.hooks.get(tenant)
	if ok {
		if err := s.begin(ctx); err != nil {
			return nil, err
		}
		s.mu.RUnlock()
	} else {
		err := s.view(ctx, func(tx *bolt.Tx) error {
			ws = nil
			wb := tx.Bucket(bWebhooks)
			pfx := prefix(tenant)
			c := tx.Bucket(bWebhookTenant).Cursor()
			for k, _ := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, _ = c.Next() {
				v := wb.Get(k[len(pfx):])
				if v == nil {
					continue
				}
				w, err := decodeWebhook(v)
				if err != nil {
					// Stepped over: the tenant's other webhooks still get
					// its events (see Unreadable records).
					id := k[len(pfx):]
					s.stepOver(ctx, "MatchWebhooks", bWebhooks, id, fmt.Errorf("boltstore: webhook %q: %w", id, err))
					continue
				}
				ws = append(ws, w)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.hooks.fill(tenant, gen, ws)
	}
	var out []*store.Webhook
	for _, w := range ws {
		if w.Active && store.MatchAny(w.Events, eventType) {
			out = append(out, w.Clone())
		}
	}
	return out, nil
}

// hookCache holds the webhooks of the tenants MatchWebhooks has read, as
// decoded records that nothing outside it sees (MatchWebhooks returns
// clones), so that Emit, which matches on every call, neither opens a
// transaction nor decodes. Only this Store writes the file (bbolt locks it
// against other processes), and every method that writes a webhook drops
// the whole cache once its transaction has committed; a read that began
// before a drop does not fill the cache after it. Webhooks change rarely:
// one generation counter for every tenant is enough.
type hookCache struct {
	mu      sync.Mutex
	gen     uint64                      // drops so far
	tenants map[string][]*store.Webhook // every webhook of the tenant (active or not), ascending id
}

// maxCachedTenants bounds the tenants hookCache holds: past it, the cache
// starts over. An entry of a tenant without webhooks costs its key.
const maxCachedTenants = 16384

// get returns the tenant's cached webhooks, and the generation to fill the
// cache with when they are not there (ok false).
func (c *hookCache) get(tenant string) (ws []*store.Webhook, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws, ok = c.tenants[tenant]
	return ws, c.gen, ok
}

// fill caches the tenant's webhooks read after get returned gen, unless a
// webhook has changed since.
func (c *hookCache) fill(tenant string, gen uint64, ws []*store.Webhook) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.tenants == nil || len(c.tenants) >= maxCachedTenants {
		c.tenants = make(map[string][]*store.Webhook)
	}
	c.tenants[tenant] = ws
}

// drop empties the cache; a write to a webhook calls it after committing.
func (c *hookCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.tenants = nil
}

// walkBack calls fn with the id suffix and value of each key of c that
// starts with pfx, in descending order, starting strictly below pfx+after
// (or at the last such key when after is ""), until fn returns false.
func walkBack(c *bolt.Cursor, pfx []byte, after string, fn func(id, v []byte) (bool, error)) error {
	var k, v []byte
	var seek []byte
	if after == "" {
		seek = successor(pfx)
	} else {
		seek = append(bytes.Clone(pfx), after...)
	}
	if seek == nil {
		k, v = c.Last()
	} else if k, _ = c.Seek(seek); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, pfx); k, v = c.Prev() {
		more, err := fn(k[len(pfx):], v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// cursorVersion is the first byte of a decoded cursor.
const cursorVersion = 1

// encodeCursor makes the opaque cursor of a page that ends at id.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorVersion}, id...))
}

// decodeCursor returns the id a cursor names ("" for the empty cursor);
// ErrInvalid when it is not one encodeCursor made.
func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	// The decoder skips \r and \n, even Strict: a cursor with them in is
	// not one encodeCursor made.
	if err != nil || len(b) < 2 || b[0] != cursorVersion || strings.ContainsAny(c, "\r\n") {
		return "", invalid("malformed cursor")
	}
	return string(b[1:]), nil
}
