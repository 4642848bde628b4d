package dashboard_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/dashboard"
	"github.com/noa-server/webhook/store"
)

// countingStore counts the deliveries the dashboard reads and the largest
// page it asks for.
type countingStore struct {
	store.Store
	mu       sync.Mutex
	rows     int
	maxLimit int
}

func (s *countingStore) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) ([]*store.Delivery, string, error) {
	ds, next, err := s.Store.ListDeliveries(ctx, p)
	s.mu.Lock()
	s.rows += len(ds)
	s.maxLimit = max(s.maxLimit, p.Limit)
	s.mu.Unlock()
	return ds, next, err
}

func (s *countingStore) GetDelivery(ctx context.Context, id string) (*store.Delivery, error) {
	d, err := s.Store.GetDelivery(ctx, id)
	s.mu.Lock()
	s.rows++
	s.mu.Unlock()
	return d, err
}

// take returns and resets the counters.
func (s *countingStore) take() (rows, maxLimit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, maxLimit = s.rows, s.maxLimit
	s.rows, s.maxLimit = 0, 0
	return rows, maxLimit
}

// TestPagesReadOnlyWhatTheyShow checks that with 100k deliveries every page
// reads a bounded number of them through the store's paginated listing
// (one page, the newest for the last delivery, the chart's sample), and
// that cursor pagination walks on from where the previous page ended.
func TestPagesReadOnlyWhatTheyShow(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100k deliveries")
	}
	const total, finished, pageSize = 100_000, 30_000, 50
	var cs *countingStore
	e := newEnv(t, envOptions{noStart: true, pageSize: pageSize, wrap: func(st store.Store) store.Store {
		cs = &countingStore{Store: st}
		return cs
	}})
	wh := e.addWebhook(t, alice, "http://127.0.0.1:1/hook", newSecret())
	start := time.Now()
	seedDeliveries(t, e.st, wh, total, finished)
	t.Logf("seeded %d deliveries (%d finished) in %v", total, finished, time.Since(start).Round(time.Millisecond))
	c := e.client(t, "alice-token")
	self := "/dashboard/webhooks/" + wh.ID

	// The most a page may read: a page, the newest delivery, the chart.
	bound := pageSize + 1 + dashboard.DefaultChartSample + 1
	next := regexp.MustCompile(`<a rel="next" href="([^"]+)"`)
	row := regexp.MustCompile(`data-delivery="(del_[^"]+)"`)
	seen := map[string]bool{}
	paths := []string{"/dashboard/", self, self + "?status=failed", self + "?status=success"}
	url := self
	for range 3 { // the first three pages, by cursor
		code, body := c.get(url)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", url, code)
		}
		ids := row.FindAllStringSubmatch(body, -1)
		if len(ids) != pageSize {
			t.Fatalf("GET %s lists %d deliveries, want %d", url, len(ids), pageSize)
		}
		for _, m := range ids {
			if seen[m[1]] {
				t.Fatalf("delivery %s listed on two pages", m[1])
			}
			seen[m[1]] = true
		}
		m := next.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("GET %s has no next-page link", url)
		}
		url = strings.ReplaceAll(m[1], "&amp;", "&")
		paths = append(paths, url)
	}
	d, _, err := e.st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: alice, WebhookID: wh.ID, Status: store.StatusFailed, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, self+"/deliveries/"+d[0].ID)

	cs.take()
	for _, p := range paths {
		start := time.Now()
		code, body := c.get(p)
		took := time.Since(start)
		rows, maxLimit := cs.take()
		t.Logf("GET %s: %d, %d bytes, %d deliveries read, in %v", p, code, len(body), rows, took.Round(time.Microsecond))
		if code != http.StatusOK {
			t.Errorf("GET %s = %d", p, code)
		}
		if rows > bound || maxLimit > dashboard.DefaultChartSample {
			t.Errorf("GET %s read %d deliveries (largest page %d) of %d; want at most %d", p, rows, maxLimit, total, bound)
		}
	}
	// The webhook's tallies are the store's counts, not the page's.
	_, body := c.get(self)
	for _, want := range []string{"<dd>20000</dd>", "<dd>10000</dd>", "<dd>70000</dd>", "66.7%"} {
		if !strings.Contains(body, want) {
			t.Errorf("webhook page lacks %q", want)
		}
	}
}
