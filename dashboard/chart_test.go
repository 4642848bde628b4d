package dashboard

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/noa-server/webhook/store"
)

func TestChartCountsFinishedDeliveriesPerBucket(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 30, 0, time.UTC)
	at := func(s string, st store.Status) *store.Delivery {
		tm, err := time.Parse("15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		return &store.Delivery{Status: st, CreatedAt: time.Date(2026, 11, 29, tm.Hour(), tm.Minute(), tm.Second(), 0, time.UTC)}
	}
	sample := []*store.Delivery{ // newest first
		at("12:00:20", store.StatusPending), // not finished: not drawn
		at("12:00:10", store.StatusSuccess),
		at("11:58:30", store.StatusSuccess),
		at("11:58:00", store.StatusFailed),
	}
	c := newChart(sample, now, false)
	// The times are UTC, and the axis and the bars say so: a reader in
	// another zone would take them for local times.
	if c.Bucket != "1m" || c.From != "11:37" || c.To != "12:01 UTC" {
		t.Errorf("bucket %q from %q to %q, want 1m from 11:37 to 12:01 UTC", c.Bucket, c.From, c.To)
	}
	if len(c.Bars) != chartBuckets || c.Max != 2 || c.Success != 2 || c.Failed != 1 || c.Sampled != 4 {
		t.Fatalf("chart %d bars, max %d, %d success, %d failed, %d sampled; want 24, 2, 2, 1, 4",
			len(c.Bars), c.Max, c.Success, c.Failed, c.Sampled)
	}
	type counts struct{ S, F int }
	got := map[int]counts{}
	for i, b := range c.Bars {
		if b.Success+b.Failed > 0 {
			got[i] = counts{b.Success, b.Failed}
		}
	}
	if diff := cmp.Diff(map[int]counts{21: {1, 1}, 23: {1, 0}}, got); diff != "" {
		t.Errorf("bars (-want +got):\n%s", diff)
	}
	// The tallest bar fills the height; parts stack from the bottom.
	b := c.Bars[21]
	if b.SuccHt != 50 || b.SuccessY != 50 || b.FailHt != 50 || b.FailedY != 0 {
		t.Errorf("bar 21 geometry %+v, want success 50..100 and failed 0..50", b)
	}
	if b := c.Bars[23]; b.SuccHt != 50 || b.FailHt != 0 {
		t.Errorf("bar 23 geometry %+v", b)
	}
	if want := "11:58–11:59 UTC: 1 succeeded, 1 failed"; c.Bars[21].Title != want {
		t.Errorf("title %q, want %q", c.Bars[21].Title, want)
	}
}

func TestChartPicksABucketThatSpansTheSample(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		age  time.Duration
		want string
	}{
		{0, "1m"},
		{20 * time.Minute, "1m"},
		{30 * time.Minute, "2m"},
		{3 * time.Hour, "10m"},
		{24 * time.Hour, "2h"},
		{72 * time.Hour, "6h"},
		{30 * 24 * time.Hour, "2d"},
		{365 * 24 * time.Hour, "7d"},
	}
	for _, tt := range tests {
		sample := []*store.Delivery{
			{Status: store.StatusSuccess, CreatedAt: now.Add(-time.Second)},
			{Status: store.StatusFailed, CreatedAt: now.Add(-tt.age)},
		}
		c := newChart(sample, now, true)
		if c.Bucket != tt.want {
			t.Errorf("sample %v old: bucket %q, want %q", tt.age, c.Bucket, tt.want)
		}
		// Both are drawn unless older than 24 weeks.
		wantFailed := 1
		if tt.age > 24*7*24*time.Hour {
			wantFailed = 0
		}
		if c.Success != 1 || c.Failed != wantFailed {
			t.Errorf("sample %v old: %d success, %d failed drawn", tt.age, c.Success, c.Failed)
		}
	}
	if c := newChart(nil, now, false); c.Max != 0 || len(c.Bars) != chartBuckets || c.Bars[0].SuccHt != 0 {
		t.Errorf("empty chart: %+v", c)
	}
}

func TestSuccessRate(t *testing.T) {
	tests := []struct {
		c    store.Counts
		want string
	}{
		{store.Counts{}, ""},
		{store.Counts{Pending: 5}, ""},
		{store.Counts{Success: 3}, "100%"},
		{store.Counts{Success: 2, Failed: 1}, "66.7%"},
		{store.Counts{Success: 99999, Failed: 1}, "99.9%"},
		{store.Counts{Failed: 4}, "0%"},
		{store.Counts{Success: 1, Failed: 2000}, "0.1%"},
	}
	for _, tt := range tests {
		if got := successRate(tt.c); got != tt.want {
			t.Errorf("successRate(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}
