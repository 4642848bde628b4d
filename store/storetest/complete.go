package storetest

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

var completeTests = []subtest{
	{"Lifecycle", testCompleteLifecycle},
	{"Refused", testCompleteRefused},
	{"AttemptHeaders", testCompleteAttemptHeaders},
	{"KeepRoundAttempts", testCompleteKeepRoundAttempts},
	{"DisableWebhook", testCompleteDisableWebhook},
	{"InactiveWebhook", testCompleteInactiveWebhook},
	{"Redeliver", testRedeliver},
}

func testCompleteLifecycle(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d := h.delivery(t, w, Base)
	want := h.getDelivery(t, d.ID)

	// Attempt 1: 503, retry in 10 s.
	h.claim(t, Base, 1, "w1")
	a1 := NewAttempt("", 1, 503) // an empty DeliveryID is filled in
	t1 := Base.Add(2 * time.Second)
	err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "w1", Attempt: a1, Status: store.StatusPending,
		NextAttemptAt: t1.Add(10 * time.Second), Now: t1,
	})
	if err != nil {
		t.Fatalf("Complete #1: %v", err)
	}
	a1.ResponseBody[0] = 'X' // the store kept its own copy
	want.Attempts, want.RoundAttempts = 1, 1
	want.LastStatusCode, want.LastError = 503, "unexpected status 503"
	want.NextAttemptAt, want.UpdatedAt = t1.Add(10*time.Second), t1
	if dd := diff(want, h.getDelivery(t, d.ID)); dd != "" {
		t.Errorf("after a retryable attempt (-want +got):\n%s", dd)
	}
	if got := h.claim(t, t1.Add(10*time.Second-time.Microsecond), 1, "w2"); len(got) != 0 {
		t.Errorf("delivery claimed before its NextAttemptAt")
	}

	// Attempt 2: timeout, retry.
	h.claim(t, t1.Add(10*time.Second), 1, "w2")
	t2 := t1.Add(11 * time.Second)
	if err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "w2", Attempt: NewAttempt(d.ID, 2, 0), Status: store.StatusPending,
		NextAttemptAt: t2, Now: t2,
	}); err != nil {
		t.Fatalf("Complete #2: %v", err)
	}
	// Attempt 3: success.
	h.claim(t, t2, 1, "w3")
	t3 := t2.Add(time.Second)
	if err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "w3", Attempt: NewAttempt(d.ID, 3, 204), Status: store.StatusSuccess,
		NextAttemptAt: t3.Add(time.Hour), // ignored when finished
		Now:           t3,
	}); err != nil {
		t.Fatalf("Complete #3: %v", err)
	}
	want.Attempts, want.RoundAttempts = 3, 3
	want.LastStatusCode, want.LastError = 204, ""
	want.Status = store.StatusSuccess
	want.NextAttemptAt, want.UpdatedAt = t2, t3
	if dd := diff(want, h.getDelivery(t, d.ID)); dd != "" {
		t.Errorf("after success (-want +got):\n%s", dd)
	}
	as, err := h.s.ListAttempts(h.ctx, d.ID)
	if err != nil {
		t.Fatalf("ListAttempts: %v", err)
	}
	wantAs := []*store.Attempt{NewAttempt(d.ID, 1, 503), NewAttempt(d.ID, 2, 0), NewAttempt(d.ID, 3, 204)}
	if dd := diff(wantAs, as); dd != "" {
		t.Errorf("ListAttempts (-want +got):\n%s", dd)
	}
	if got := h.claim(t, t3.Add(24*time.Hour), 10, "w4"); len(got) != 0 {
		t.Errorf("a successful delivery was claimed again")
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Success: 1}) {
		t.Errorf("CountDeliveries = %+v, %v; want 1 success", c, err)
	}
}

// testCompleteAttemptHeaders checks that an attempt's headers read back as
// written: the ones that repeat the delivery's ids and event type, as the
// dispatcher sends them, and the ones that name another delivery's.
func testCompleteAttemptHeaders(t *testing.T, h *harness) {
	tenant := h.tenant()
	w1, w2 := h.webhook(t, tenant, nil), h.webhook(t, tenant, nil)
	d1, d2 := h.delivery(t, w1, Base), NewDelivery(w2, "agent.status.changed")
	h.enqueue(t, d2)
	if got := h.claim(t, Base, 2, "w"); len(got) != 2 {
		t.Fatalf("claimed %d deliveries, want 2", len(got))
	}
	sent := func(d *store.Delivery) http.Header {
		return http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"noa-webhook/1"},
			"Webhook-Id": {d.EventID}, "X-Webhook-Event": {d.EventType}, "X-Webhook-Id": {d.WebhookID},
			"X-Webhook-Delivery": {d.ID}, "X-Echo": {d.ID, d.EventID, d.EventType, d.WebhookID, ""},
		}
	}
	for _, c := range []struct {
		d *store.Delivery
		h http.Header
	}{
		{d1, sent(d1)},
		{d2, sent(d1)}, // not its own values
	} {
		a := NewAttempt(c.d.ID, 1, 200)
		a.RequestHeaders = c.h
		a.ResponseHeaders = http.Header{"X-Webhook-Id": {c.d.WebhookID}, "X-Other": {c.d.EventID}}
		err := h.s.Complete(h.ctx, store.CompleteParams{
			DeliveryID: c.d.ID, Owner: "w", Attempt: a, Status: store.StatusSuccess, Now: Base,
		})
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		as, err := h.s.ListAttempts(h.ctx, c.d.ID)
		if err != nil {
			t.Fatalf("ListAttempts: %v", err)
		}
		if dd := diff([]*store.Attempt{a}, as); dd != "" {
			t.Errorf("ListAttempts (-want +got):\n%s", dd)
		}
	}
}

func testCompleteRefused(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d := h.delivery(t, w, Base)
	unleased := h.delivery(t, w, Base.Add(time.Hour))
	h.claim(t, Base, 1, "owner")
	before := h.getDelivery(t, d.ID)
	beforeUnleased := h.getDelivery(t, unleased.ID)
	ok := func() store.CompleteParams {
		return store.CompleteParams{DeliveryID: d.ID, Owner: "owner", Attempt: NewAttempt(d.ID, 1, 200), Status: store.StatusSuccess, Now: Base.Add(time.Second)}
	}
	for _, c := range []struct {
		name string
		edit func(p *store.CompleteParams)
		want error
	}{
		{"non-owner", func(p *store.CompleteParams) { p.Owner = "other" }, store.ErrLeaseLost},
		{"unleased delivery", func(p *store.CompleteParams) { p.DeliveryID = unleased.ID; p.Attempt.DeliveryID = unleased.ID }, store.ErrLeaseLost},
		{"unknown delivery", func(p *store.CompleteParams) { p.DeliveryID = NewID("del_"); p.Attempt.DeliveryID = "" }, store.ErrNotFound},
		{"attempt number skips", func(p *store.CompleteParams) { p.Attempt.Number = 2 }, store.ErrConflict},
		{"attempt number zero", func(p *store.CompleteParams) { p.Attempt.Number = 0 }, store.ErrConflict},
		{"attempt of another delivery", func(p *store.CompleteParams) { p.Attempt.DeliveryID = unleased.ID }, store.ErrInvalid},
		{"nil attempt", func(p *store.CompleteParams) { p.Attempt = nil }, store.ErrInvalid},
		{"empty id", func(p *store.CompleteParams) { p.DeliveryID = ""; p.Attempt.DeliveryID = "" }, store.ErrInvalid},
		{"empty owner", func(p *store.CompleteParams) { p.Owner = "" }, store.ErrInvalid},
		{"bogus status", func(p *store.CompleteParams) { p.Status = "done" }, store.ErrInvalid},
		{"empty status", func(p *store.CompleteParams) { p.Status = "" }, store.ErrInvalid},
		{"pending without NextAttemptAt", func(p *store.CompleteParams) { p.Status = store.StatusPending }, store.ErrInvalid},
		{"KeepRoundAttempts when finished", func(p *store.CompleteParams) { p.KeepRoundAttempts = true }, store.ErrInvalid},
		{"zero Now", func(p *store.CompleteParams) { p.Now = time.Time{} }, store.ErrInvalid},
	} {
		p := ok()
		c.edit(&p)
		if err := h.s.Complete(h.ctx, p); !errors.Is(err, c.want) {
			t.Errorf("Complete with %s: %v, want %v", c.name, err, c.want)
		}
	}
	if dd := diff(before, h.getDelivery(t, d.ID)); dd != "" {
		t.Errorf("refused Completes changed the delivery (-want +got):\n%s", dd)
	}
	if dd := diff(beforeUnleased, h.getDelivery(t, unleased.ID)); dd != "" {
		t.Errorf("refused Completes changed the unleased delivery (-want +got):\n%s", dd)
	}
	if as, err := h.s.ListAttempts(h.ctx, d.ID); err != nil || len(as) != 0 {
		t.Errorf("refused Completes logged %d attempts (%v)", len(as), err)
	}
	if err := h.s.Complete(h.ctx, ok()); err != nil {
		t.Fatalf("Complete by the owner: %v", err)
	}
	// Completing twice: the lease went with the first.
	p := ok()
	p.Attempt.Number = 2
	wantErr(t, "second Complete", h.s.Complete(h.ctx, p), store.ErrLeaseLost)
}

// testCompleteKeepRoundAttempts: an attempt completed with
// KeepRoundAttempts is logged and numbered but leaves RoundAttempts alone.
func testCompleteKeepRoundAttempts(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	d := h.delivery(t, w, Base)
	want := h.getDelivery(t, d.ID)

	h.claim(t, Base, 1, "w1")
	t1 := Base.Add(time.Second)
	canceled := NewAttempt(d.ID, 1, 0)
	canceled.ErrorClass, canceled.Error = store.ErrorCanceled, "the dispatcher stopped during the attempt"
	err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "w1", Attempt: canceled, Status: store.StatusPending,
		NextAttemptAt: t1, KeepRoundAttempts: true, Now: t1,
	})
	if err != nil {
		t.Fatalf("Complete with KeepRoundAttempts: %v", err)
	}
	want.Attempts, want.RoundAttempts = 1, 0
	want.LastStatusCode, want.LastError = 0, canceled.Error
	want.NextAttemptAt, want.UpdatedAt = t1, t1
	if dd := diff(want, h.getDelivery(t, d.ID)); dd != "" {
		t.Errorf("after an attempt that keeps the round (-want +got):\n%s", dd)
	}

	// The next attempt counts as usual, and the log holds both.
	h.claim(t, t1, 1, "w2")
	h.complete(t, d.ID, "w2", 2, store.StatusPending, t1.Add(time.Second))
	got := h.getDelivery(t, d.ID)
	if got.Attempts != 2 || got.RoundAttempts != 1 {
		t.Errorf("after a counted attempt: Attempts %d, RoundAttempts %d; want 2, 1", got.Attempts, got.RoundAttempts)
	}
	as, err := h.s.ListAttempts(h.ctx, d.ID)
	if err != nil {
		t.Fatalf("ListAttempts: %v", err)
	}
	if dd := diff([]*store.Attempt{canceled, NewAttempt(d.ID, 2, 500)}, as); dd != "" {
		t.Errorf("ListAttempts (-want +got):\n%s", dd)
	}
}

func testCompleteDisableWebhook(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	bystander := h.webhook(t, tn, nil)
	succeeded := h.delivery(t, w, Base.Add(-time.Hour))
	h.finish(t, succeeded, store.StatusSuccess, Base.Add(-time.Minute))
	gone := h.delivery(t, w, Base)
	inFlightOK := h.delivery(t, w, Base.Add(time.Second))
	inFlightRetry := h.delivery(t, w, Base.Add(time.Second))
	if got := h.claim(t, Base.Add(time.Second), 1, "a", bystander.ID); len(got) != 1 || got[0].ID != gone.ID {
		t.Fatalf("Claim = %q, want %s", ids(got), gone.ID)
	}
	if got := h.claim(t, Base.Add(time.Second), 2, "b", bystander.ID); len(got) != 2 {
		t.Fatalf("Claim = %q, want %s and %s", ids(got), inFlightOK.ID, inFlightRetry.ID)
	}
	waiting := h.delivery(t, w, Base.Add(time.Hour))
	other := h.delivery(t, bystander, Base)
	// Leased by c until Base - 30 s: expired when the 410 is recorded.
	expired := h.delivery(t, w, Base.Add(-time.Hour))
	if got := h.claim(t, Base.Add(-time.Minute), 10, "c", bystander.ID); len(got) != 1 || got[0].ID != expired.ID {
		t.Fatalf("Claim = %q, want %s", ids(got), expired.ID)
	}
	otherBefore := h.getDelivery(t, other.ID)
	succeededBefore := h.getDelivery(t, succeeded.ID)
	okBefore := h.getDelivery(t, inFlightOK.ID)
	retryBefore := h.getDelivery(t, inFlightRetry.ID)

	now := Base.Add(2 * time.Second)
	reason := "endpoint answered 410 Gone"
	err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: gone.ID, Owner: "a", Attempt: NewAttempt(gone.ID, 1, 410),
		Status: store.StatusFailed, DisableWebhook: reason, Now: now,
	})
	if err != nil {
		t.Fatalf("Complete with DisableWebhook: %v", err)
	}
	gotW := h.getWebhook(t, w.ID)
	wantW := *w
	wantW.Active, wantW.DisabledReason, wantW.UpdatedAt = false, reason, now
	if dd := diff(&wantW, gotW); dd != "" {
		t.Errorf("disabled webhook (-want +got):\n%s", dd)
	}
	if m, err := h.s.MatchWebhooks(h.ctx, tn, "workflow.completed"); err != nil || len(m) != 1 || m[0].ID != bystander.ID {
		t.Errorf("MatchWebhooks after disable = %d webhooks, %v; want only the bystander", len(m), err)
	}
	g := h.getDelivery(t, gone.ID)
	if g.Status != store.StatusFailed || g.LastStatusCode != 410 || g.Attempts != 1 {
		t.Errorf("completed delivery: %s, status %d, %d attempts; want failed, 410, 1", g.Status, g.LastStatusCode, g.Attempts)
	}
	for _, d := range []*store.Delivery{waiting, expired} {
		want := *d
		want.Status, want.LastError, want.UpdatedAt = store.StatusFailed, reason, now
		if dd := diff(&want, h.getDelivery(t, d.ID)); dd != "" {
			t.Errorf("other pending delivery of the disabled webhook, not under a live lease (-want +got):\n%s", dd)
		}
	}
	for _, before := range []*store.Delivery{okBefore, retryBefore} {
		if dd := diff(before, h.getDelivery(t, before.ID)); dd != "" {
			t.Errorf("a delivery under a live lease changed on disable (-want +got):\n%s", dd)
		}
	}
	if dd := diff(succeededBefore, h.getDelivery(t, succeeded.ID)); dd != "" {
		t.Errorf("a finished delivery changed on disable (-want +got):\n%s", dd)
	}
	if dd := diff(otherBefore, h.getDelivery(t, other.ID)); dd != "" {
		t.Errorf("another webhook's delivery changed on disable (-want +got):\n%s", dd)
	}
	err = h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: expired.ID, Owner: "c", Attempt: NewAttempt(expired.ID, 1, 200), Status: store.StatusSuccess, Now: now,
	})
	wantErr(t, "Complete of a delivery failed by a disable", err, store.ErrLeaseLost)

	// The attempts in flight are recorded: a success succeeds, a retry
	// fails, the webhook being inactive.
	done := now.Add(time.Second)
	if err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: inFlightOK.ID, Owner: "b", Attempt: NewAttempt(inFlightOK.ID, 1, 200), Status: store.StatusSuccess, Now: done,
	}); err != nil {
		t.Fatalf("Complete of a success in flight during the disable: %v", err)
	}
	retry := NewAttempt(inFlightRetry.ID, 1, 503)
	if err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: inFlightRetry.ID, Owner: "b", Attempt: retry, Status: store.StatusPending,
		NextAttemptAt: done.Add(time.Minute), Now: done,
	}); err != nil {
		t.Fatalf("Complete of a retry in flight during the disable: %v", err)
	}
	wantOK := *okBefore
	wantOK.Status, wantOK.Attempts, wantOK.RoundAttempts, wantOK.LastStatusCode = store.StatusSuccess, 1, 1, 200
	wantOK.LeaseOwner, wantOK.LeaseExpiresAt, wantOK.UpdatedAt = "", time.Time{}, done
	if dd := diff(&wantOK, h.getDelivery(t, inFlightOK.ID)); dd != "" {
		t.Errorf("success in flight during the disable (-want +got):\n%s", dd)
	}
	wantRetry := *retryBefore
	wantRetry.Status, wantRetry.Attempts, wantRetry.RoundAttempts = store.StatusFailed, 1, 1
	wantRetry.LastStatusCode, wantRetry.LastError = 503, retry.Error
	wantRetry.LeaseOwner, wantRetry.LeaseExpiresAt, wantRetry.UpdatedAt = "", time.Time{}, done
	if dd := diff(&wantRetry, h.getDelivery(t, inFlightRetry.ID)); dd != "" {
		t.Errorf("retry in flight during the disable (-want +got):\n%s", dd)
	}
	for _, id := range []string{inFlightOK.ID, inFlightRetry.ID} {
		if as, err := h.s.ListAttempts(h.ctx, id); err != nil || len(as) != 1 {
			t.Errorf("ListAttempts(%s) = %d attempts, %v; want the one in flight", id, len(as), err)
		}
	}

	if got := h.claim(t, Base.Add(24*time.Hour), 10, "d"); len(got) != 1 || got[0].ID != other.ID {
		t.Errorf("Claim after disable = %q, want only %s", ids(got), other.ID)
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Success: 2, Failed: 4}) {
		t.Errorf("CountDeliveries = %+v, %v; want 2 success, 4 failed", c, err)
	}
}

// testCompleteInactiveWebhook: an inactive webhook's delivery is not
// retried, whoever deactivated the webhook; other outcomes stand.
func testCompleteInactiveWebhook(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	retried := h.delivery(t, w, Base)
	ok := h.delivery(t, w, Base)
	cut := h.delivery(t, w, Base)
	untouched := h.delivery(t, w, Base.Add(time.Hour))
	if got := h.claim(t, Base, 3, "a"); len(got) != 3 {
		t.Fatalf("Claim = %q, want 3", ids(got))
	}
	w.Active = false
	w.UpdatedAt = Base.Add(time.Second)
	h.replaceWebhook(t, w)
	untouchedBefore := h.getDelivery(t, untouched.ID)
	retriedBefore := h.getDelivery(t, retried.ID)

	now := Base.Add(2 * time.Second)
	att := NewAttempt(retried.ID, 1, 500)
	if err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: retried.ID, Owner: "a", Attempt: att, Status: store.StatusPending,
		NextAttemptAt: now.Add(time.Minute), Now: now,
	}); err != nil {
		t.Fatalf("Complete to pending: %v", err)
	}
	want := *retriedBefore
	want.Status, want.Attempts, want.RoundAttempts = store.StatusFailed, 1, 1
	want.LastStatusCode, want.LastError = 500, att.Error
	want.LeaseOwner, want.LeaseExpiresAt, want.UpdatedAt = "", time.Time{}, now
	if dd := diff(&want, h.getDelivery(t, retried.ID)); dd != "" {
		t.Errorf("a retry of an inactive webhook's delivery (-want +got):\n%s", dd)
	}
	h.complete(t, ok.ID, "a", 1, store.StatusSuccess, now)
	if got := h.getDelivery(t, ok.ID); got.Status != store.StatusSuccess {
		t.Errorf("a success of an inactive webhook's delivery: %s, want success", got.Status)
	}
	// An attempt cut short fails the delivery too, and, ending it, counts.
	if err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: cut.ID, Owner: "a", Attempt: NewAttempt(cut.ID, 1, 0), Status: store.StatusPending,
		NextAttemptAt: now, KeepRoundAttempts: true, Now: now,
	}); err != nil {
		t.Fatalf("Complete to pending with KeepRoundAttempts: %v", err)
	}
	if got := h.getDelivery(t, cut.ID); got.Status != store.StatusFailed || got.RoundAttempts != 1 {
		t.Errorf("an attempt cut short of an inactive webhook's delivery: %s, RoundAttempts %d; want failed, 1",
			got.Status, got.RoundAttempts)
	}
	if dd := diff(untouchedBefore, h.getDelivery(t, untouched.ID)); dd != "" {
		t.Errorf("a pending delivery nobody completed changed (-want +got):\n%s", dd)
	}
	if dd := diff(w, h.getWebhook(t, w.ID)); dd != "" {
		t.Errorf("the webhook changed (-want +got):\n%s", dd)
	}
	c, err := h.s.CountDeliveries(h.ctx, w.ID)
	if err != nil || c != (store.Counts{Pending: 1, Success: 1, Failed: 2}) {
		t.Errorf("CountDeliveries = %+v, %v; want 1 pending, 1 success, 2 failed", c, err)
	}
}

func testRedeliver(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	failed := h.delivery(t, w, Base)
	h.finish(t, failed, store.StatusPending, Base.Add(time.Second))
	h.finish(t, failed, store.StatusFailed, Base.Add(2*time.Minute))
	ok := h.delivery(t, w, Base)
	h.finish(t, ok, store.StatusSuccess, Base.Add(time.Second))
	pending := h.delivery(t, w, Base.Add(time.Hour))

	now := Base.Add(time.Hour)
	for _, d := range []*store.Delivery{failed, ok} {
		want := h.getDelivery(t, d.ID)
		got, err := h.s.Redeliver(h.ctx, store.RedeliverParams{ID: d.ID, Now: now})
		if err != nil {
			t.Fatalf("Redeliver(%s): %v", want.Status, err)
		}
		want.Status, want.RoundAttempts, want.NextAttemptAt, want.UpdatedAt = store.StatusPending, 0, now, now
		if dd := diff(want, got); dd != "" {
			t.Errorf("Redeliver result (-want +got):\n%s", dd)
		}
		if dd := diff(want, h.getDelivery(t, d.ID)); dd != "" {
			t.Errorf("stored after Redeliver (-want +got):\n%s", dd)
		}
	}
	_, err := h.s.Redeliver(h.ctx, store.RedeliverParams{ID: pending.ID, Now: now})
	wantErr(t, "Redeliver of a pending delivery", err, store.ErrConflict)
	_, err = h.s.Redeliver(h.ctx, store.RedeliverParams{ID: NewID("del_"), Now: now})
	wantErr(t, "Redeliver of an unknown delivery", err, store.ErrNotFound)

	got := h.claim(t, now, 10, "r")
	want := []string{failed.ID, ok.ID, pending.ID} // all due at now; by id
	if dd := diff(want, ids(got)); dd != "" {
		t.Errorf("Claim after Redeliver (-want +got):\n%s", dd)
	}
	// The next attempt continues the numbering.
	h.complete(t, failed.ID, "r", 3, store.StatusSuccess, now.Add(time.Second))
	d := h.getDelivery(t, failed.ID)
	if d.Attempts != 3 || d.RoundAttempts != 1 {
		t.Errorf("after a redelivered attempt: Attempts %d, RoundAttempts %d; want 3, 1", d.Attempts, d.RoundAttempts)
	}
}
