package webhook

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/noa-server/webhook/store"
)

// Defaults of RetryPolicy. With them a delivery is attempted at most five
// times, on this schedule (each delay varies by ±20% so that retries of many
// deliveries do not arrive together):
//
//	attempt 1  at once, when the event is emitted
//	attempt 2  about 30 seconds after attempt 1 failed
//	attempt 3  about 2 minutes after attempt 2 failed
//	attempt 4  about 8 minutes after attempt 3 failed
//	attempt 5  about 32 minutes after attempt 4 failed
//
// After the fifth failed attempt the delivery is failed, about 43 minutes
// (plus the attempts' own durations) after it was emitted. A Retry-After
// header on 429, 502, 503 and 504 replaces the computed delay, clamped to
// [DefaultMinRetryAfter, DefaultMaxRetryAfter] and lengthened by up to
// DefaultJitter.
const (
	// DefaultMaxAttempts is the number of attempts of a delivery, the
	// first included, before it fails.
	DefaultMaxAttempts = 5
	// DefaultInitialInterval is the delay before the first retry.
	DefaultInitialInterval = 30 * time.Second
	// DefaultMultiplier is the factor by which each delay grows.
	DefaultMultiplier = 4.0
	// DefaultMaxInterval is the longest delay between two attempts.
	DefaultMaxInterval = 2 * time.Hour
	// DefaultJitter is the share by which a delay varies either way.
	DefaultJitter = 0.2
	// DefaultMinRetryAfter is the shortest delay a Retry-After header
	// can set.
	DefaultMinRetryAfter = time.Second
	// DefaultMaxRetryAfter is the longest delay a Retry-After header can
	// set.
	DefaultMaxRetryAfter = time.Hour
)

// RetryPolicy decides whether a failed attempt is retried, and when. Its zero
// value is the default schedule written out at DefaultMaxAttempts. It is
// computed with github.com/cenkalti/backoff/v4's exponential backoff. A
// MaxAttempts or a duration that is zero or negative means its default.
type RetryPolicy struct {
	// MaxAttempts is the retry budget: the most attempts of one delivery per
	// round (a Redeliver starts a new round). Attempts cancelled by
	// [Dispatcher.Stop] are logged but not counted. Defaults to
	// DefaultMaxAttempts. A webhook's own positive MaxAttempts overrides it.
	MaxAttempts int
	// InitialInterval is the delay after the first failed attempt (at
	// most MaxInterval). Defaults to DefaultInitialInterval.
	InitialInterval time.Duration
	// Multiplier grows the delay after each further failed attempt.
	// Defaults to DefaultMultiplier; values below 1 are refused by New.
	Multiplier float64
	// MaxInterval caps every computed delay. Defaults to DefaultMaxInterval.
	// At most about 73 years: a longer one is read as that.
	MaxInterval time.Duration
	// Jitter is the fraction by which each delay is randomised, both ways
	// (0.2 gives ±20%; a delay at MaxInterval varies below it only). A
	// delay from Retry-After varies upwards only (0.2 gives +0 to 20%), up
	// to MaxRetryAfter.
	// Defaults to DefaultJitter; a negative value means no jitter (exact
	// delays, as tests want); 1 or more is refused by New.
	Jitter float64
	// MinRetryAfter and MaxRetryAfter bound the delay a receiver asks for
	// with Retry-After. Default to DefaultMinRetryAfter and
	// DefaultMaxRetryAfter.
	MinRetryAfter time.Duration
	MaxRetryAfter time.Duration
}

// AttemptResult is what the retry policy learns from one failed attempt.
type AttemptResult struct {
	// StatusCode is the response status, 0 when no response arrived.
	StatusCode int
	// RetryAfter is the delay the receiver asked for with a Retry-After
	// header, 0 when it sent none (or sent one that did not parse). A
	// request to retry at once ("0", or a date already past) is 1ns, which
	// Next raises to MinRetryAfter like any short delay.
	RetryAfter time.Duration
	// ErrorClass classifies the failure.
	ErrorClass store.ErrorClass
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	p.MaxInterval = min(p.MaxInterval, maxRetryInterval)
	if p.Jitter == 0 {
		p.Jitter = DefaultJitter
	}
	if p.MinRetryAfter <= 0 {
		p.MinRetryAfter = DefaultMinRetryAfter
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
	return p
}

// Next reports whether a delivery whose attempt number attempt (1 for the
// first attempt of the round) failed with res is tried again, and after what
// delay. It never retries once attempt reaches MaxAttempts. Retry-After is
// honoured on 429, 502, 503 and 504, clamped to [MinRetryAfter,
// MaxRetryAfter], then lengthened by up to Jitter (never shortened, nor
// past MaxRetryAfter); otherwise the delay is InitialInterval * Multiplier^(attempt-1)
// with jitter, capped at MaxInterval (a jittered delay that would exceed
// the cap is drawn below it instead, so retries at the cap stay spread).
func (p RetryPolicy) Next(attempt int, res AttemptResult) (time.Duration, bool) {
	p = p.withDefaults()
	if attempt >= p.MaxAttempts {
		return 0, false
	}
	if attempt < 1 {
		attempt = 1
	}
	if res.RetryAfter > 0 && honoursRetryAfter(res.StatusCode) {
		d := min(max(res.RetryAfter, p.MinRetryAfter), p.MaxRetryAfter)
		// Only ever later: the receiver asked not to be called sooner.
		// Spread out, the deliveries it turned away together do not all
		// come back at the same instant.
		if p.Jitter > 0 {
			d = min(d+rand.N(time.Duration(float64(d)*p.Jitter)+1), p.MaxRetryAfter)
		}
		return d, true
	}
	jitter := max(p.Jitter, 0)
	b := &backoff.ExponentialBackOff{
		// The backoff caps the intervals after the first only: a first
		// one above MaxInterval would come out of the reflection below
		// short, or negative (a retry at once).
		InitialInterval:     min(p.InitialInterval, p.MaxInterval),
		RandomizationFactor: jitter,
		Multiplier:          max(p.Multiplier, 1),
		MaxInterval:         p.MaxInterval,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	var d time.Duration
	for range attempt {
		d = b.NextBackOff()
	}
	// The backoff caps the interval before its jitter, so at the cap half
	// the jittered delays land above MaxInterval. Clipping them would send
	// every one of those retries exactly MaxInterval after its failure: no
	// jitter left for the deliveries of a long outage, which all retry at
	// the cap. Reflected below the cap instead, they stay spread over
	// [interval×(1-Jitter), MaxInterval].
	if d > p.MaxInterval {
		d = max(2*p.MaxInterval-d, 0)
	}
	return d, true
}

// maxRetryInterval is the longest MaxInterval, about 73 years: the
// backoff's jittered interval (up to twice MaxInterval) and Next's
// reflection below the cap (2 × MaxInterval) must not overflow a Duration,
// which would make the longest wait a retry at once.
const maxRetryInterval = math.MaxInt64 / 4

// retryAfterNow is AttemptResult.RetryAfter for a receiver that asked to be
// retried at once: the smallest delay that is not "none".
const retryAfterNow = time.Nanosecond

// maxRetryAfterHeader caps what parseRetryAfter reads; Next clamps further.
const maxRetryAfterHeader = 365 * 24 * time.Hour

func honoursRetryAfter(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (relative to now). It returns 0 when the header is absent or malformed,
// retryAfterNow for "0" or a date in the past, and at most a year.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" { // delay-seconds, a non-negative integer
		n, err := strconv.ParseUint(v, 10, 64)
		switch {
		case err != nil || n > uint64(maxRetryAfterHeader/time.Second): // too large to parse, or just large
			return maxRetryAfterHeader
		case n == 0:
			return retryAfterNow
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), retryAfterNow), maxRetryAfterHeader)
}
