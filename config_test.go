package webhook

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/noa-server/webhook/store/memstore"
)

func TestConfigValidate(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	for _, c := range []*Config{
		{Workers: -1},
		{PerWebhookConcurrency: -2},
		{Timeout: time.Minute, Lease: 30 * time.Second},
		{ClaimBatch: 5000},
		{Retry: RetryPolicy{Multiplier: 0.5}},
		{Retry: RetryPolicy{Multiplier: math.NaN()}},
		{Retry: RetryPolicy{Jitter: math.NaN()}},
		{AllowedPorts: []int{70000}},
	} {
		if _, err := New(st, c); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", c)
		}
	}
	if _, err := New(st, &Config{Workers: MaxWorkers}); err != nil {
		t.Errorf("New with Workers = MaxWorkers: %v", err)
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil store) succeeded")
	}
	if _, err := New(st, nil); err != nil {
		t.Errorf("New with the defaults: %v", err)
	}
}

// TestConfigDefaults checks the defaults the README's Configuration tables
// and the guide's retry policy ("5 attempts", "30 seconds per attempt")
// state, as figures rather than through the constants, so that a changed
// constant fails here until the documents follow it.
func TestConfigDefaults(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	d, err := New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := d.cfg
	r := c.Retry
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"Workers", c.Workers, 64},
		{"PerWebhookConcurrency", c.PerWebhookConcurrency, 16},
		{"ClaimBatch", c.ClaimBatch, 64},
		{"PollInterval", c.PollInterval, time.Second},
		{"Timeout", c.Timeout, 30 * time.Second},
		{"Lease", c.Lease, 30*time.Second + time.Minute},
		{"Owner prefix", c.Owner[:len("dispatcher_")], "dispatcher_"},
		{"MaxPayloadBytes", c.MaxPayloadBytes, 256 << 10},
		{"MaxResponseBytes", c.MaxResponseBytes, 4 << 10},
		{"UserAgent", c.UserAgent, "noa-webhook/1"},
		{"WebhookCacheTTL", c.WebhookCacheTTL, time.Second},
		{"Retention", c.Retention, 30 * 24 * time.Hour},
		{"PurgeInterval", c.PurgeInterval, time.Hour},
		{"Retry.MaxAttempts", r.MaxAttempts, 5},
		{"Retry.InitialInterval", r.InitialInterval, 30 * time.Second},
		{"Retry.Multiplier", r.Multiplier, 4.0},
		{"Retry.MaxInterval", r.MaxInterval, 2 * time.Hour},
		{"Retry.Jitter", r.Jitter, 0.2},
		{"Retry.MinRetryAfter", r.MinRetryAfter, time.Second},
		{"Retry.MaxRetryAfter", r.MaxRetryAfter, time.Hour},
		{"DefaultAllowedPorts", DefaultAllowedPorts(), []int{80, 443}},
	} {
		if !cmp.Equal(tc.got, tc.want) {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	// The derived defaults follow Workers as the README says.
	for _, tc := range []struct{ workers, perWebhook, batch int }{
		{8, 2, 8},
		{2, 1, 2},
		{5000, 16, 1000},
	} {
		c := (&Config{Workers: tc.workers}).withDefaults()
		if c.PerWebhookConcurrency != tc.perWebhook || c.ClaimBatch != tc.batch {
			t.Errorf("Workers %d: PerWebhookConcurrency %d, ClaimBatch %d; want %d, %d",
				tc.workers, c.PerWebhookConcurrency, c.ClaimBatch, tc.perWebhook, tc.batch)
		}
	}
}

// TestConfigExtremes: a setting too large to work is refused by New with
// an error, rather than crash Start or an attempt. Start used to panic on
// a Workers near math.MaxInt (it makes 4 × Workers worker goroutines, and
// the product overflowed to a negative channel size), and to try
// allocating terabytes for Workers = 1<<40.
func TestConfigExtremes(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	for _, c := range []*Config{
		{Workers: math.MaxInt},
		{Workers: 1 << 61},
		{Workers: MaxWorkers + 1},
	} {
		t.Run(fmt.Sprintf("Workers=%d", c.Workers), func(t *testing.T) {
			d, err := New(st, c)
			if err != nil {
				return
			}
			t.Errorf("New accepted Workers = %d", c.Workers)
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Start panicked: %v", r)
				}
			}()
			if err := d.Start(context.Background()); err == nil {
				d.Stop(context.Background())
			}
		})
	}
}

// TestConfigIntervalFloor: a PollInterval or PurgeInterval of a nanosecond
// used to be accepted, and its loop then spun, polling the store (or
// purging it) without pause; a Timeout of a nanosecond failed every attempt
// before it could dial. New refuses each below MinInterval, and accepts it
// at MinInterval.
func TestConfigIntervalFloor(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	for _, tc := range []struct {
		field string
		set   func(c *Config, v time.Duration)
	}{
		{"PollInterval", func(c *Config, v time.Duration) { c.PollInterval = v }},
		{"PurgeInterval", func(c *Config, v time.Duration) { c.PurgeInterval = v }},
		{"Timeout", func(c *Config, v time.Duration) { c.Timeout = v; c.Lease = time.Minute }},
	} {
		for _, v := range []time.Duration{time.Nanosecond, MinInterval - 1, -time.Second} {
			var c Config
			tc.set(&c, v)
			_, err := New(st, &c)
			if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "want at least 1ms") {
				t.Errorf("New with %s = %v: %v; want an error naming %s and its floor", tc.field, v, err, tc.field)
			}
		}
		var c Config
		tc.set(&c, MinInterval)
		if _, err := New(st, &c); err != nil {
			t.Errorf("New with %s = %v: %v", tc.field, MinInterval, err)
		}
	}
}

// TestConfigLeaseFloor: a Lease just above Timeout used to be accepted, and
// then nothing was ever delivered: each claimed delivery had less than
// Timeout of lease left when its attempt was due, was given back and
// claimed again at once, in a silent loop. New refuses a Lease below
// Timeout plus a third (the dispatcher sends only with Timeout of lease
// left, after a wait of up to a quarter of the lease), naming the minimum,
// and its default meets it whatever the Timeout.
func TestConfigLeaseFloor(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	for _, c := range []*Config{
		{Timeout: time.Second, Lease: time.Second + time.Microsecond},
		{Timeout: 30 * time.Second, Lease: 39 * time.Second},
		{Timeout: time.Hour, Lease: time.Hour + time.Minute},
		{Timeout: math.MaxInt64 - 1}, // no Lease is long enough
	} {
		_, err := New(st, c)
		if want := "want at least " + minLease(c.Timeout).String(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with Timeout %v, Lease %v: %v; want an error with %q", c.Timeout, c.Lease, err, want)
		}
	}
	for timeout := time.Duration(1); timeout < 100; timeout++ {
		least := minLease(timeout)
		if least-least/4 < timeout || least-2-(least-2)/4 >= timeout {
			t.Errorf("minLease(%d) = %d: want (within rounding) the least lease that has timeout left after a quarter of it", timeout, least)
		}
	}
	for _, c := range []*Config{
		{Timeout: time.Second, Lease: minLease(time.Second)},
		{Timeout: time.Second, Lease: 1500 * time.Millisecond}, // the pgstore replica tests'
		{Timeout: time.Hour},         // default Lease: 1h20m
		{Timeout: math.MaxInt64 / 2}, // default Lease: Timeout plus a third
		{Timeout: time.Minute},       // default Lease: 2m
	} {
		d, err := New(st, c)
		if err != nil {
			t.Errorf("New with Timeout %v, Lease %v: %v", c.Timeout, c.Lease, err)
			continue
		}
		if l := d.cfg.Lease; l-l/4 < d.cfg.Timeout {
			t.Errorf("Timeout %v: Lease %v leaves less than Timeout after a quarter of it", d.cfg.Timeout, l)
		}
	}
}

// TestConfigTransportAndGuardSettings: AllowedRanges, AllowedPorts and
// AllowAnyPort configure the default transport's guard, and used to be
// ignored without a word when a Transport was set (a host that allowed a
// private range on its custom transport's Config saw it refused, or
// believed a port limit applied that did not). New refuses the mix; and its
// message for a bad port says "webhook: config:" once, not followed by a
// second "webhook:".
func TestConfigTransportAndGuardSettings(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	tr, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Config{
		{Transport: tr, AllowedRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Transport: tr, AllowedPorts: []int{8443}},
		{Transport: tr, AllowAnyPort: true},
	} {
		_, err := New(st, c)
		if err == nil || !strings.HasPrefix(err.Error(), "webhook: config: ") || !strings.Contains(err.Error(), "NewTransport") {
			t.Errorf("New with a Transport and ranges %v, ports %v, any port %v: %v; want a config error pointing at NewTransport", c.AllowedRanges, c.AllowedPorts, c.AllowAnyPort, err)
		}
	}
	if _, err := New(st, &Config{Transport: tr}); err != nil {
		t.Errorf("New with a Transport alone: %v", err)
	}
	_, err = New(st, &Config{AllowedPorts: []int{70000}})
	if want := "webhook: config: allowed port 70000 is outside 1-65535"; err == nil || err.Error() != want {
		t.Errorf("New with port 70000: %v; want %q", err, want)
	}
	_, err = NewTransport(TransportOptions{AllowedPorts: []int{70000}})
	if want := "webhook: allowed port 70000 is outside 1-65535"; err == nil || err.Error() != want {
		t.Errorf("NewTransport with port 70000: %v; want %q", err, want)
	}
}
