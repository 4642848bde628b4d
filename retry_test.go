package webhook

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

// TestRetryAfterJitter: with the default jitter, a delay from Retry-After
// is lengthened by up to 20%, never shortened: the deliveries an endpoint
// turned away together come back spread, none before it asked. At
// MaxRetryAfter it stays there.
func TestRetryAfterJitter(t *testing.T) {
	for _, tt := range []struct {
		name      string
		asked     time.Duration
		least     time.Duration
		most      time.Duration
		spreadMin time.Duration
	}{
		{"100s", 100 * time.Second, 100 * time.Second, 120 * time.Second, 10 * time.Second},
		{"raised to the floor", time.Millisecond, DefaultMinRetryAfter, DefaultMinRetryAfter * 6 / 5, 100 * time.Millisecond},
		{"capped", 48 * time.Hour, DefaultMaxRetryAfter, DefaultMaxRetryAfter, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			for range 200 {
				got, retry := RetryPolicy{}.Next(1, AttemptResult{StatusCode: http.StatusTooManyRequests, RetryAfter: tt.asked})
				if !retry || got < tt.least || got > tt.most {
					t.Fatalf("Retry-After %v: delay %v, %v; want %v to %v", tt.asked, got, retry, tt.least, tt.most)
				}
				lo, hi = min(lo, got), max(hi, got)
			}
			if hi-lo < tt.spreadMin {
				t.Errorf("Retry-After %v: 200 delays within %v to %v, want them spread over %v at least", tt.asked, lo, hi, tt.spreadMin)
			}
		})
	}
}

func TestRetryPolicyNext(t *testing.T) {
	p := RetryPolicy{Jitter: -1}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		attempt int
		res     AttemptResult
		want    time.Duration
		retry   bool
	}{
		{"first failure", 1, AttemptResult{StatusCode: 500}, 30 * time.Second, true},
		{"fourth failure", 4, AttemptResult{ErrorClass: store.ErrorTimeout}, 32 * time.Minute, true},
		{"budget spent", 5, AttemptResult{StatusCode: 500}, 0, false},
		{"429 retry-after", 1, AttemptResult{StatusCode: 429, RetryAfter: 2 * time.Minute}, 2 * time.Minute, true},
		{"503 retry-after capped", 1, AttemptResult{StatusCode: 503, RetryAfter: 48 * time.Hour}, DefaultMaxRetryAfter, true},
		{"retry-after raised to the floor", 2, AttemptResult{StatusCode: 429, RetryAfter: time.Millisecond}, DefaultMinRetryAfter, true},
		{"retry-after ignored on 500", 1, AttemptResult{StatusCode: 500, RetryAfter: time.Hour}, 30 * time.Second, true},
		{"retry-after does not extend the budget", 5, AttemptResult{StatusCode: 429, RetryAfter: time.Minute}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, retry := p.Next(tt.attempt, tt.res)
			if got != tt.want || retry != tt.retry {
				t.Errorf("Next(%d) = %v, %v; want %v, %v", tt.attempt, got, retry, tt.want, tt.retry)
			}
		})
	}
	// "Retry at once" is raised to the floor, not ignored.
	if got, _ := p.Next(1, AttemptResult{StatusCode: 429, RetryAfter: parseRetryAfter("0", now)}); got != DefaultMinRetryAfter {
		t.Errorf("Retry-After: 0 gives %v, want the floor %v", got, DefaultMinRetryAfter)
	}
	// MaxInterval caps the jittered delay too.
	for range 100 {
		if got, _ := (RetryPolicy{MaxInterval: time.Minute, MaxAttempts: 10}).Next(7, AttemptResult{StatusCode: 500}); got > time.Minute {
			t.Fatalf("delay %v above MaxInterval 1m", got)
		}
	}
	// Default jitter stays within ±20%.
	for range 100 {
		got, _ := RetryPolicy{}.Next(2, AttemptResult{StatusCode: 500})
		if got < 96*time.Second || got > 144*time.Second+time.Nanosecond {
			t.Fatalf("jittered delay %v outside 2m±20%%", got)
		}
	}
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"120", 2 * time.Minute},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), retryAfterNow},
		{"0", retryAfterNow},
		{"99999999", 365 * 24 * time.Hour},
		{"99999999999999999999", 365 * 24 * time.Hour},
		{now.AddDate(3, 0, 0).Format(http.TimeFormat), 365 * 24 * time.Hour},
		{"-5", 0},
		{"+5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"", 0},
	} {
		if got := parseRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// TestRetryJitterAtTheCap: once the backoff reaches MaxInterval (attempt 7
// onwards of the default schedule, which a webhook's MaxAttempts of up to
// 100 reaches), the delays still vary by the jitter, below the cap. They
// used to be clipped to it, so half of them were exactly MaxInterval and
// the deliveries that failed together in an outage retried together.
func TestRetryJitterAtTheCap(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 100}
	const n = 200
	atCap, low := 0, DefaultMaxInterval
	for range n {
		got, ok := p.Next(10, AttemptResult{ErrorClass: store.ErrorTimeout})
		if !ok {
			t.Fatal("attempt 10 of 100 not retried")
		}
		if got > DefaultMaxInterval || got < 96*time.Minute {
			t.Fatalf("delay %v outside [96m, 2h]: 2h less at most 20%%", got)
		}
		if got == DefaultMaxInterval {
			atCap++
		}
		low = min(low, got)
	}
	if atCap > 0 {
		t.Errorf("%d of %d delays exactly MaxInterval: no jitter at the cap", atCap, n)
	}
	if low > 108*time.Minute {
		t.Errorf("shortest of %d delays %v: jitter not spread below the cap", n, low)
	}
}

// TestRetryMaxIntervalBelowInitialInterval: MaxInterval caps every delay,
// the first one included. A MaxInterval set below InitialInterval (10 s
// with the default 30 s) used to give a delay of 2×MaxInterval −
// InitialInterval, negative here: the first retry came at once.
func TestRetryMaxIntervalBelowInitialInterval(t *testing.T) {
	for _, tt := range []struct {
		name     string
		p        RetryPolicy
		low, max time.Duration
	}{
		{"no jitter, MaxInterval 10s", RetryPolicy{MaxInterval: 10 * time.Second, Jitter: -1}, 10 * time.Second, 10 * time.Second},
		{"no jitter, InitialInterval 5h", RetryPolicy{InitialInterval: 5 * time.Hour, Jitter: -1}, DefaultMaxInterval, DefaultMaxInterval},
		{"jitter, MaxInterval 10s", RetryPolicy{MaxInterval: 10 * time.Second}, 8 * time.Second, 10 * time.Second},
		{"jitter, InitialInterval 3h", RetryPolicy{InitialInterval: 3 * time.Hour}, 96 * time.Minute, DefaultMaxInterval},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for attempt := 1; attempt < DefaultMaxAttempts; attempt++ {
				for range 50 {
					got, ok := tt.p.Next(attempt, AttemptResult{StatusCode: 500})
					if !ok || got < tt.low || got > tt.max {
						t.Fatalf("Next(%d) = %v, %v; want a retry after %v to %v", attempt, got, ok, tt.low, tt.max)
					}
				}
			}
		})
	}
}

// TestRetryHugeMaxInterval: a MaxInterval above about 146 years used to
// make the jitter's reflection below the cap (2 × MaxInterval) overflow, or
// the jittered interval itself overflow, to a delay of zero or less: a
// retry at once where the policy asked for the longest wait. Every delay
// of such a policy is long.
func TestRetryHugeMaxInterval(t *testing.T) {
	const year = 365 * 24 * time.Hour
	for _, p := range []RetryPolicy{
		{InitialInterval: math.MaxInt64, MaxInterval: math.MaxInt64, MaxAttempts: 10},
		{InitialInterval: 200 * year, MaxInterval: 200 * year, MaxAttempts: 10},
		{InitialInterval: 280 * year, MaxInterval: 280 * year, MaxAttempts: 10, Jitter: 0.9},
		{InitialInterval: 150 * year, MaxInterval: math.MaxInt64, MaxAttempts: 10, Jitter: -1},
		{InitialInterval: time.Hour, Multiplier: 1e9, MaxInterval: math.MaxInt64, MaxAttempts: 10},
	} {
		for attempt := 2; attempt < 10; attempt++ {
			for range 100 {
				d, ok := p.Next(attempt, AttemptResult{StatusCode: http.StatusInternalServerError})
				if !ok || d < year {
					t.Fatalf("%+v: attempt %d: retry after %v (%v), want at least a year", p, attempt, d, ok)
				}
			}
		}
	}
}
