package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/noa-server/webhook/store"
)

// TestEmitDataNestingFitsReceivers: the payload holds the data one level
// below its envelope, and encoding/json, with which the receiver package
// (and every Go receiver) decodes a payload, reads at most 10,000 levels.
// Data that Emit accepts must leave a payload that decodes; deeper data is
// refused with ErrInvalidEvent rather than stored as a delivery every Go
// receiver answers 400 until it fails.
func TestEmitDataNestingFitsReceivers(t *testing.T) {
	t.Parallel()
	st := newMemStore(t)
	addWebhook(t, st, "a", "https://example.com/hook")
	d := mustNew(t, st, testConfig())
	for _, depth := range []int{9999, 10000, 10001} {
		data := json.RawMessage(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a", Data: data})
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) || !errors.Is(err, ErrInvalidJSON) {
				t.Errorf("data %d deep: Emit error = %v, want ErrInvalidEvent and ErrInvalidJSON", depth, err)
			}
			if depth < 10000 {
				t.Errorf("data %d deep refused: %v", depth, err)
			}
			continue
		}
		del, err := st.GetDelivery(context.Background(), res.DeliveryIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(del.Body, &ev); err != nil {
			t.Errorf("data %d deep accepted, but its payload does not decode: %v", depth, err)
		}
	}
}

// TestEmitSendsNilDataAsEmptyObject: the guide's payload holds an object
// as "data", and Event.Data documents nil as sent as {}. A nil map, slice
// or pointer (which encoding/json marshals to null) and JSON null are nil
// data too: sent as "data":null, they reach a receiver that reads
// event.data.someField as the guide's samples do with a TypeError.
func TestEmitSendsNilDataAsEmptyObject(t *testing.T) {
	t.Parallel()
	st := newMemStore(t)
	addWebhook(t, st, "a", "https://example.com/hook")
	d := mustNew(t, st, testConfig())
	for name, data := range map[string]any{
		"nil":         nil,
		"nil map":     map[string]any(nil),
		"nil slice":   []string(nil),
		"nil pointer": (*WorkflowCompletedData)(nil),
		"JSON null":   json.RawMessage(" null "),
		"nil raw":     json.RawMessage(nil),
	} {
		res, err := d.Emit(context.Background(), Event{Type: EventUserLogin, Tenant: "a", Data: data})
		if err != nil {
			t.Fatalf("%s: Emit: %v", name, err)
		}
		del, err := st.GetDelivery(context.Background(), res.DeliveryIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(del.Body), `,"data":{},"metadata":`) {
			t.Errorf("%s: body %s, want \"data\":{}", name, del.Body)
		}
	}
}

// TestTenantMustBeText: a tenant is stored with every webhook and
// delivery, and PostgreSQL text holds neither a NUL byte nor invalid
// UTF-8. The registry refuses such a tenant as it refuses such a
// description, on every store (memstore and boltstore stored it, pgstore
// failed with a store error), and Emit refuses it with ErrInvalidEvent
// rather than deliver on one store and fail with a database error on
// another.
func TestTenantMustBeText(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		r := NewRegistry(st, RegistryOptions{})
		d := mustNew(t, st, testConfig())
		ctx := context.Background()
		for _, tenant := range []string{"acme\x00", "\x00", "acme\xff", "\xc3"} {
			_, err := r.Create(ctx, tenant, WebhookInput{URL: "https://example.com/hook", Events: []string{"*"}})
			if ve, ok := errors.AsType[*ValidationError](err); !ok || ve.Field != "tenant" {
				t.Errorf("Create for tenant %q: err = %v, want a *ValidationError of field tenant", tenant, err)
			}
			if _, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: tenant}); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("Emit for tenant %q: err = %v, want ErrInvalidEvent", tenant, err)
			}
		}
		ws, _, err := st.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: "acme\x00", Limit: 10})
		if err == nil && len(ws) != 0 {
			t.Errorf("%d webhooks stored for a refused tenant", len(ws))
		}
	})
}

// TestEmitRefusesDataTimesRFC3339CannotWrite: WorkflowCompletedData writes
// its times as RFC 3339, which has four digits of year. A time outside
// the years 0 to 9999 was written as "10000-01-01T00:00:00Z", which the
// receiver package's typed handler (encoding/json into time.Time) cannot
// decode: Emit refuses it, as it refuses such an Event.Time.
func TestEmitRefusesDataTimesRFC3339CannotWrite(t *testing.T) {
	t.Parallel()
	st := newMemStore(t)
	addWebhook(t, st, "a", "https://example.com/hook")
	d := mustNew(t, st, testConfig())
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), // year -1 in UTC
	} {
		for _, data := range []WorkflowCompletedData{{WorkflowID: "wf_1", StartedAt: tm}, {WorkflowID: "wf_1", CompletedAt: tm}} {
			_, err := d.Emit(context.Background(), Event{Type: EventWorkflowCompleted, Tenant: "a", Data: data})
			if !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("data with a time in the year %d (UTC): Emit error = %v, want ErrInvalidEvent", tm.UTC().Year(), err)
			}
		}
	}
	// The years RFC 3339 writes are sent, and decode.
	for _, tm := range []time.Time{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)} {
		res, err := d.Emit(context.Background(), Event{Type: EventWorkflowCompleted, Tenant: "a", Data: WorkflowCompletedData{StartedAt: tm}})
		if err != nil {
			t.Fatalf("year %d: Emit: %v", tm.Year(), err)
		}
		del, err := st.GetDelivery(context.Background(), res.DeliveryIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Data WorkflowCompletedData `json:"data"`
		}
		if err := json.Unmarshal(del.Body, &ev); err != nil || !ev.Data.StartedAt.Equal(tm) {
			t.Errorf("year %d: payload decodes to %v, %v", tm.Year(), ev.Data.StartedAt, err)
		}
	}
}

// TestEmitRetriedDeliversOnce pins "Emit is safe to retry" on every store:
// retries of one event id running at once (each may hand its deliveries
// straight to the workers) and a retry after the first deliveries have
// finished all return the first deliveries, and each webhook receives
// the event once.
func TestEmitRetriedDeliversOnce(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		var mu sync.Mutex
		got := map[string]int{} // webhook id + event id -> requests
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
			mu.Lock()
			got[r.Header.Get("X-Webhook-Id")+" "+r.Header.Get("Webhook-Id")]++
			mu.Unlock()
		})
		for range 3 {
			addWebhook(t, st, "a", rc.URL)
		}
		d := startDispatcher(t, st, testConfig())
		ctx := context.Background()
		const events, retries = 5, 6
		for e := range events {
			ev := Event{ID: "evt_retried_" + strconv.Itoa(e), Type: EventUserLogin, Tenant: "a"}
			res := make([]EmitResult, retries)
			var wg sync.WaitGroup
			for i := range retries {
				wg.Go(func() {
					var err error
					if res[i], err = d.Emit(ctx, ev); err != nil {
						t.Errorf("Emit: %v", err)
					}
				})
			}
			wg.Wait()
			for i := range res {
				if diff := cmp.Diff(res[0], res[i]); diff != "" {
					t.Fatalf("%s: concurrent Emits differ (-first +other):\n%s", ev.ID, diff)
				}
			}
			for _, id := range res[0].DeliveryIDs {
				waitStatus(t, st, id, store.StatusSuccess, 1)
			}
			again, err := d.Emit(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(res[0], again); diff != "" {
				t.Errorf("%s: Emit after delivery differs (-first +again):\n%s", ev.ID, diff)
			}
		}
		waitFor(t, "every delivery to finish", func() bool { return d.Stats().InFlight == 0 })
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 3*events {
			t.Errorf("%d (webhook, event) pairs received, want %d", len(got), 3*events)
		}
		for k, n := range got {
			if n != 1 {
				t.Errorf("%s received %d times, want once", k, n)
			}
		}
	})
}

// TestEmitAcrossTheLifecycle pins Emit outside a running Dispatcher, on
// every store: before Start it stores the deliveries, which Start then
// delivers; after Stop it stores them due and unleased, for the next
// process (nothing emitted is lost by a stop); on a closed store it
// returns an error matching store.ErrClosed.
func TestEmitAcrossTheLifecycle(t *testing.T) {
	eachStoreWithPostgres(t, func(t *testing.T, newStore func(t *testing.T) store.Store) {
		st := newStore(t)
		rc := newReceiver(t, nil)
		addWebhook(t, st, "a", rc.URL)
		ctx := context.Background()
		d := mustNew(t, st, testConfig())
		before, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil || len(before.DeliveryIDs) != 1 {
			t.Fatalf("Emit before Start = %+v, %v; want one delivery", before, err)
		}
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, st, before.DeliveryIDs[0], store.StatusSuccess, 1)
		if err := d.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		after, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"})
		if err != nil || len(after.DeliveryIDs) != 1 {
			t.Fatalf("Emit after Stop = %+v, %v; want one delivery", after, err)
		}
		del, err := st.GetDelivery(ctx, after.DeliveryIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		if del.Status != store.StatusPending || del.LeaseOwner != "" || del.Attempts != 0 {
			t.Errorf("delivery emitted after Stop: status %s, lease %q, %d attempts; want pending, unleased, unsent",
				del.Status, del.LeaseOwner, del.Attempts)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if res, err := d.Emit(ctx, Event{Type: EventUserLogin, Tenant: "a"}); !errors.Is(err, store.ErrClosed) || len(res.DeliveryIDs) != 0 {
			t.Errorf("Emit on a closed store = %+v, %v; want store.ErrClosed", res, err)
		}
	})
}
