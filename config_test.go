package webhook

import (
	"math"
	"testing"
	"time"

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
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil store) succeeded")
	}
	if _, err := New(st, nil); err != nil {
		t.Errorf("New with the defaults: %v", err)
	}
}
