package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
)

var webhookTests = []subtest{
	{"RoundTrip", testWebhookRoundTrip},
	{"CreateSetsTimes", testWebhookCreateSetsTimes},
	{"CreateConflict", testWebhookCreateConflict},
	{"CreateCapped", testWebhookCreateCapped},
	{"Update", testWebhookUpdate},
	{"UpdateKeepsIdentity", testWebhookUpdateKeepsIdentity},
	{"UpdateConcurrent", testWebhookUpdateConcurrent},
	{"Delete", testWebhookDelete},
	{"Copies", testWebhookCopies},
	{"Match", testMatchWebhooks},
	{"MatchAfterChange", testMatchAfterChange},
	{"List", testListWebhooks},
	{"ListConcurrentInsert", testListWebhooksConcurrentInsert},
}

func testWebhookRoundTrip(t *testing.T, h *harness) {
	want := NewWebhook(h.tenant())
	if err := h.s.CreateWebhook(h.ctx, want); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	got := h.getWebhook(t, want.ID)
	if d := diff(want, got); d != "" {
		t.Errorf("GetWebhook after CreateWebhook (-want +got):\n%s", d)
	}
	// A minimal webhook: zero values survive as zero values.
	min := &store.Webhook{ID: NewID("wh_"), Tenant: want.Tenant, URL: "https://e.example/", CreatedAt: Base, UpdatedAt: Base}
	if err := h.s.CreateWebhook(h.ctx, min); err != nil {
		t.Fatalf("CreateWebhook(minimal): %v", err)
	}
	if d := diff(min, h.getWebhook(t, min.ID)); d != "" {
		t.Errorf("minimal webhook (-want +got):\n%s", d)
	}
}

func testWebhookCreateSetsTimes(t *testing.T, h *harness) {
	w := NewWebhook(h.tenant())
	w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}
	before := time.Now().Add(-time.Second)
	if err := h.s.CreateWebhook(h.ctx, w); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	after := time.Now().Add(time.Second)
	if w.CreatedAt.Before(before) || w.CreatedAt.After(after) {
		t.Errorf("CreatedAt written back = %v, want about now", w.CreatedAt)
	}
	if !w.UpdatedAt.Equal(w.CreatedAt) {
		t.Errorf("UpdatedAt written back = %v, want CreatedAt %v", w.UpdatedAt, w.CreatedAt)
	}
	got := h.getWebhook(t, w.ID)
	if !got.CreatedAt.Equal(w.CreatedAt) || !got.UpdatedAt.Equal(w.UpdatedAt) {
		t.Errorf("stored times %v/%v, written back %v/%v", got.CreatedAt, got.UpdatedAt, w.CreatedAt, w.UpdatedAt)
	}
}

func testWebhookCreateConflict(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	dup := NewWebhook(w.Tenant)
	dup.ID = w.ID
	dup.URL = "https://other.example/"
	wantErr(t, "CreateWebhook with a used id", h.s.CreateWebhook(h.ctx, dup), store.ErrConflict)
	if d := diff(w, h.getWebhook(t, w.ID)); d != "" {
		t.Errorf("webhook changed by a refused create (-want +got):\n%s", d)
	}
}

// testWebhookCreateCapped: CreateWebhookCapped stores a tenant's webhooks
// up to the cap and refuses the next with ErrLimit, storing nothing; other
// tenants, a cap of 0 and a place freed by a delete are not refused; and
// concurrent creates never take a tenant past the cap.
func testWebhookCreateCapped(t *testing.T, h *harness) {
	cc, ok := h.s.(store.CappedCreator)
	if !ok {
		t.Skip("the store does not implement store.CappedCreator")
	}
	const most = 3
	tenant := h.tenant()
	var ws []*store.Webhook
	for range most {
		w := NewWebhook(tenant)
		if err := cc.CreateWebhookCapped(h.ctx, w, most); err != nil {
			t.Fatalf("CreateWebhookCapped under the cap: %v", err)
		}
		ws = append(ws, w)
	}
	over := NewWebhook(tenant)
	wantErr(t, "CreateWebhookCapped at the cap", cc.CreateWebhookCapped(h.ctx, over, most), store.ErrLimit)
	if _, err := h.s.GetWebhook(h.ctx, over.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetWebhook of the refused webhook: %v, want ErrNotFound", err)
	}
	if err := cc.CreateWebhookCapped(h.ctx, NewWebhook(h.tenant()), most); err != nil {
		t.Errorf("CreateWebhookCapped for another tenant: %v", err)
	}
	if err := cc.CreateWebhookCapped(h.ctx, NewWebhook(tenant), 0); err != nil {
		t.Errorf("CreateWebhookCapped with no cap: %v", err)
	}
	// most+1 now: two deletes free one place.
	for _, w := range ws[:2] {
		if err := h.s.DeleteWebhook(h.ctx, w.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := cc.CreateWebhookCapped(h.ctx, over, most); err != nil {
		t.Errorf("CreateWebhookCapped once deletes freed a place: %v", err)
	}

	racing := h.tenant()
	const callers = 12
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() { errs <- cc.CreateWebhookCapped(h.ctx, NewWebhook(racing), most) })
	}
	wg.Wait()
	close(errs)
	created, refused := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case errors.Is(err, store.ErrLimit):
			refused++
		default:
			t.Errorf("concurrent CreateWebhookCapped: %v", err)
		}
	}
	got, _, err := h.s.ListWebhooks(h.ctx, store.ListWebhooksParams{Tenant: racing, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if created != most || refused != callers-most || len(got) != most {
		t.Errorf("%d concurrent creates with a cap of %d: %d created, %d refused, %d stored; want %d, %d, %d",
			callers, most, created, refused, len(got), most, callers-most, most)
	}
}

func testWebhookUpdate(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	edit := func(c *store.Webhook) {
		c.URL = "https://new.example/hook"
		c.Events = []string{"*"}
		c.Description = ""
		c.Active = false
		c.DisabledReason = "paused by test"
		c.Secrets = []store.Secret{{Value: "whsec_new"}, {Value: w.Secrets[0].Value, ExpiresAt: Base.Add(48 * time.Hour)}}
		c.Headers = nil
		c.MaxAttempts = 0
		c.RateLimit = 0.25
		c.UpdatedAt = Base.Add(2 * time.Hour)
	}
	calls := 0
	got, err := h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
		calls++
		if d := diff(w, c); d != "" {
			t.Errorf("UpdateWebhook's change got (-stored +got):\n%s", d)
		}
		edit(c)
		c.CreatedAt = Base.Add(time.Hour) // ignored: CreatedAt is kept
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
	if calls == 0 {
		t.Fatal("UpdateWebhook never called its change")
	}
	want := w.Clone()
	edit(want)
	if d := diff(want, got); d != "" {
		t.Errorf("UpdateWebhook returned (-want +got):\n%s", d)
	}
	if d := diff(want, h.getWebhook(t, w.ID)); d != "" {
		t.Errorf("GetWebhook after UpdateWebhook (-want +got):\n%s", d)
	}

	// Zero UpdatedAt: the store stamps now.
	before := time.Now().Add(-time.Second)
	got, err = h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
		c.UpdatedAt = time.Time{}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
	stored := h.getWebhook(t, w.ID)
	if stored.UpdatedAt.Before(before) || stored.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("UpdatedAt after an update with zero UpdatedAt = %v, want about now", stored.UpdatedAt)
	}
	if !got.UpdatedAt.Equal(stored.UpdatedAt) {
		t.Errorf("UpdateWebhook returned UpdatedAt %v, stored %v", got.UpdatedAt, stored.UpdatedAt)
	}

	// An error from change aborts the update and comes back as it is.
	errStop := errors.New("stop")
	_, err = h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
		c.URL = "https://aborted.example/"
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Errorf("UpdateWebhook whose change failed = %v, want its error", err)
	}
	if d := diff(stored, h.getWebhook(t, w.ID)); d != "" {
		t.Errorf("webhook changed by an aborted update (-want +got):\n%s", d)
	}

	missing := NewWebhook(w.Tenant)
	_, err = h.s.UpdateWebhook(h.ctx, missing.ID, func(c *store.Webhook) error {
		t.Error("UpdateWebhook of an unknown id called its change")
		return nil
	})
	wantErr(t, "UpdateWebhook of an unknown id", err, store.ErrNotFound)
	if _, err := h.s.GetWebhook(h.ctx, missing.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateWebhook of an unknown id created it (GetWebhook: %v)", err)
	}
}

// testWebhookUpdateKeepsIdentity: a change cannot move a webhook to another
// id or tenant.
func testWebhookUpdateKeepsIdentity(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), nil)
	other := h.tenant()
	got, err := h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
		c.ID = NewID("wh_")
		c.Tenant = other
		c.URL = "https://thief.example/"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWebhook: %v", err)
	}
	if got.ID != w.ID || got.Tenant != w.Tenant {
		t.Errorf("UpdateWebhook returned id %q tenant %q, want %q %q", got.ID, got.Tenant, w.ID, w.Tenant)
	}
	stored := h.getWebhook(t, w.ID)
	if stored.Tenant != w.Tenant || stored.URL != "https://thief.example/" {
		t.Errorf("stored tenant %q URL %q, want %q and the new URL", stored.Tenant, stored.URL, w.Tenant)
	}
	if page, _, err := h.s.ListWebhooks(h.ctx, store.ListWebhooksParams{Tenant: other, Limit: 10}); err != nil || len(page) != 0 {
		t.Errorf("the other tenant lists %d webhooks (err %v), want none", len(page), err)
	}
}

// testWebhookUpdateConcurrent: updates made at the same time are applied
// one after the other; none undoes another.
func testWebhookUpdateConcurrent(t *testing.T, h *harness) {
	w := h.webhook(t, h.tenant(), func(w *store.Webhook) { w.MaxAttempts = 0 })
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				_, err := h.s.UpdateWebhook(h.ctx, w.ID, func(c *store.Webhook) error {
					c.MaxAttempts++
					return nil
				})
				if err != nil {
					t.Errorf("UpdateWebhook: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := h.getWebhook(t, w.ID).MaxAttempts; got != writers*each {
		t.Errorf("after %d concurrent increments MaxAttempts = %d: updates were lost", writers*each, got)
	}
}

func testWebhookDelete(t *testing.T, h *harness) {
	tn := h.tenant()
	w := h.webhook(t, tn, nil)
	keep := h.webhook(t, tn, nil)
	d1 := h.delivery(t, w, Base)
	d2 := h.delivery(t, w, Base)
	k := h.delivery(t, keep, Base)
	h.finish(t, d1, store.StatusSuccess, Base.Add(time.Minute))
	h.finish(t, k, store.StatusFailed, Base.Add(time.Minute))

	if err := h.s.DeleteWebhook(h.ctx, w.ID); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	if _, err := h.s.GetWebhook(h.ctx, w.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetWebhook after delete: %v, want ErrNotFound", err)
	}
	for _, d := range []*store.Delivery{d1, d2} {
		if _, err := h.s.GetDelivery(h.ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetDelivery of a deleted webhook's delivery: %v, want ErrNotFound", err)
		}
		if _, err := h.s.ListAttempts(h.ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ListAttempts of a deleted webhook's delivery: %v, want ErrNotFound", err)
		}
	}
	if got := h.claim(t, Base.Add(time.Hour), 10, "after-delete"); len(got) != 0 {
		t.Errorf("Claim after delete returned %d deliveries of the deleted webhook", len(got))
	}
	if got := h.getDelivery(t, k.ID); got.Status != store.StatusFailed {
		t.Errorf("other webhook's delivery status %q after delete, want failed", got.Status)
	}
	if as, err := h.s.ListAttempts(h.ctx, k.ID); err != nil || len(as) != 1 {
		t.Errorf("other webhook's attempts after delete: %d, %v; want 1", len(as), err)
	}
	page, _, err := h.s.ListDeliveries(h.ctx, store.ListDeliveriesParams{Tenant: tn, Limit: 10})
	if err != nil || len(page) != 1 || page[0].ID != k.ID {
		t.Errorf("ListDeliveries after delete = %d items, %v; want only %s", len(page), err, k.ID)
	}
	if _, err := h.s.CountDeliveries(h.ctx, w.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CountDeliveries of a deleted webhook: %v, want ErrNotFound", err)
	}
	wantErr(t, "second DeleteWebhook", h.s.DeleteWebhook(h.ctx, w.ID), store.ErrNotFound)

	// The attempts went with the deliveries: a new delivery reusing a
	// deleted id starts with an empty log.
	reuse := NewDelivery(keep, "workflow.completed")
	reuse.ID = d1.ID
	h.enqueue(t, reuse)
	if as, err := h.s.ListAttempts(h.ctx, d1.ID); err != nil || len(as) != 0 {
		t.Errorf("ListAttempts of a new delivery reusing a deleted id = %d attempts, %v; want none", len(as), err)
	}
}

func testWebhookCopies(t *testing.T, h *harness) {
	w := NewWebhook(h.tenant())
	want := new(store.Webhook)
	*want = *w
	want.Events = slices.Clone(w.Events)
	want.Secrets = slices.Clone(w.Secrets)
	want.Headers = map[string]string{"X-Team": "noa", "X-Env": "test"}
	if err := h.s.CreateWebhook(h.ctx, w); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	// Mutating the argument after the call changes nothing stored.
	w.Events[0] = "mutated"
	w.Secrets[0].Value = "mutated"
	w.Headers["X-Team"] = "mutated"

	got := h.getWebhook(t, want.ID)
	if d := diff(want, got); d != "" {
		t.Fatalf("store shares memory with CreateWebhook's argument (-want +got):\n%s", d)
	}
	// Mutating a returned record changes nothing stored.
	got.Events[0] = "mutated"
	got.Secrets[0].Value = "mutated"
	got.Headers["X-Team"] = "mutated"
	got.URL = "mutated"
	if d := diff(want, h.getWebhook(t, want.ID)); d != "" {
		t.Errorf("store shares memory with GetWebhook's result (-want +got):\n%s", d)
	}
	list, _, err := h.s.ListWebhooks(h.ctx, store.ListWebhooksParams{Tenant: want.Tenant, Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListWebhooks = %d, %v", len(list), err)
	}
	list[0].Events[0] = "mutated"
	list[0].Headers["X-Env"] = "mutated"
	match, err := h.s.MatchWebhooks(h.ctx, want.Tenant, "workflow.completed")
	if err != nil || len(match) != 1 {
		t.Fatalf("MatchWebhooks = %d, %v", len(match), err)
	}
	match[0].Secrets[0].Value = "mutated"
	match[0].Events[0] = "mutated"
	match[0].Headers["X-Team"] = "mutated"
	match[0].Active = false
	if d := diff(want, h.getWebhook(t, want.ID)); d != "" {
		t.Errorf("store shares memory with listing results (-want +got):\n%s", d)
	}
	// A store may keep what it matched: the next match is untouched too.
	match, err = h.s.MatchWebhooks(h.ctx, want.Tenant, "workflow.completed")
	if err != nil || len(match) != 1 {
		t.Fatalf("second MatchWebhooks = %d, %v; want the webhook again", len(match), err)
	}
	if d := diff(want, match[0]); d != "" {
		t.Errorf("store shares memory between MatchWebhooks results (-want +got):\n%s", d)
	}
}

// testMatchAfterChange matches before and after every kind of change to a
// tenant's webhooks: a store that keeps what it matched must see each.
func testMatchAfterChange(t *testing.T, h *harness) {
	tn := h.tenant()
	const ev = "workflow.completed"
	match := func(when string, want ...*store.Webhook) {
		t.Helper()
		got, err := h.s.MatchWebhooks(h.ctx, tn, ev)
		if err != nil {
			t.Fatalf("MatchWebhooks %s: %v", when, err)
		}
		if d := diff(want, got); d != "" {
			t.Errorf("MatchWebhooks %s (-want +got):\n%s", when, d)
		}
	}
	match("of a tenant without webhooks")
	a := h.webhook(t, tn, nil)
	match("after CreateWebhook", a)
	match("again", a)

	b := h.webhook(t, tn, func(w *store.Webhook) { w.Events = []string{"agent.*"} })
	match("after creating a webhook of other events", a)
	b.Events = []string{"workflow.*"}
	b.UpdatedAt = b.UpdatedAt.Add(time.Second)
	h.replaceWebhook(t, b)
	match("after subscribing a webhook to the event", a, b)

	a.Active = false
	a.UpdatedAt = a.UpdatedAt.Add(time.Second)
	h.replaceWebhook(t, a)
	match("after deactivating a webhook", b)
	b.URL = "https://changed.example/hook"
	b.Secrets = append([]store.Secret{{Value: "whsec_rotated"}}, b.Secrets...)
	b.UpdatedAt = b.UpdatedAt.Add(time.Second)
	h.replaceWebhook(t, b)
	match("after changing a webhook's URL and secrets", b)

	// The receiver answers 410 Gone: Complete disables the webhook.
	d := h.delivery(t, b, Base)
	if got := h.claim(t, Base.Add(time.Second), 1, "a"); len(got) != 1 {
		t.Fatalf("Claim = %d deliveries, want 1", len(got))
	}
	err := h.s.Complete(h.ctx, store.CompleteParams{
		DeliveryID: d.ID, Owner: "a", Attempt: NewAttempt(d.ID, 1, 410),
		Status: store.StatusFailed, DisableWebhook: "gone", Now: Base.Add(2 * time.Second),
	})
	if err != nil {
		t.Fatalf("Complete with DisableWebhook: %v", err)
	}
	match("after Complete disabled the webhook")

	c := h.webhook(t, tn, nil)
	match("after creating another", c)
	if err := h.s.DeleteWebhook(h.ctx, c.ID); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	match("after DeleteWebhook")
}

func testMatchWebhooks(t *testing.T, h *harness) {
	tn, other := h.tenant(), h.tenant()
	mk := func(tenant string, active bool, events ...string) *store.Webhook {
		return h.webhook(t, tenant, func(w *store.Webhook) { w.Events = events; w.Active = active })
	}
	exact := mk(tn, true, "workflow.completed")
	prefix := mk(tn, true, "workflow.*")
	all := mk(tn, true, "*")
	multi := mk(tn, true, "agent.error", "swarm.*")
	mk(tn, false, "*") // inactive: never matched
	foreign := mk(other, true, "*")

	ids := func(ws []*store.Webhook) []string {
		var out []string
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	for _, c := range []struct {
		tenant, event string
		want          []*store.Webhook
	}{
		{tn, "workflow.completed", []*store.Webhook{exact, prefix, all}},
		{tn, "workflow.failed", []*store.Webhook{prefix, all}},
		{tn, "workflow.completed.extra", []*store.Webhook{prefix, all}},
		{tn, "workflowx.started", []*store.Webhook{all}},
		{tn, "workflow", []*store.Webhook{all}},
		{tn, "agent.error", []*store.Webhook{all, multi}},
		{tn, "swarm.node.joined", []*store.Webhook{all, multi}},
		{tn, "agent.errors", []*store.Webhook{all}},
		{other, "workflow.completed", []*store.Webhook{foreign}},
		{"tenant_nobody", "workflow.completed", nil},
	} {
		got, err := h.s.MatchWebhooks(h.ctx, c.tenant, c.event)
		if err != nil {
			t.Errorf("MatchWebhooks(%s): %v", c.event, err)
			continue
		}
		want := ids(c.want)
		slices.Sort(want) // oldest (lowest id) first
		if d := diff(want, ids(got)); d != "" {
			t.Errorf("MatchWebhooks(%s, %s) ids (-want +got):\n%s", c.tenant, c.event, d)
		}
	}
	got, err := h.s.MatchWebhooks(h.ctx, tn, "workflow.completed")
	if err == nil && len(got) > 0 {
		if d := diff(exact, got[0]); d != "" {
			t.Errorf("MatchWebhooks returned a different record than stored (-want +got):\n%s", d)
		}
	}
}

// listAllWebhooks pages through a tenant's webhooks with the given limit,
// calling each (when not nil) between pages.
func listAllWebhooks(t *testing.T, h *harness, tenant string, limit int, each ...func()) []*store.Webhook {
	t.Helper()
	var all []*store.Webhook
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ListWebhooks pagination does not end")
		}
		page, next, err := h.s.ListWebhooks(h.ctx, store.ListWebhooksParams{Tenant: tenant, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatalf("ListWebhooks: %v", err)
		}
		if len(page) > limit {
			t.Fatalf("ListWebhooks returned %d items with Limit %d", len(page), limit)
		}
		if next != "" && len(page) == 0 {
			t.Fatal("ListWebhooks returned an empty page with a next cursor")
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		for _, f := range each {
			f()
		}
		cursor = next
	}
}

func testListWebhooks(t *testing.T, h *harness) {
	tn, other := h.tenant(), h.tenant()
	var want []*store.Webhook
	for range 20 {
		want = append(want, h.webhook(t, tn, nil))
		h.webhook(t, other, nil)
	}
	slices.Reverse(want) // newest first
	for _, limit := range []int{1, 3, 5, 20, 21, store.MaxPageLimit} {
		got := listAllWebhooks(t, h, tn, limit)
		if d := diff(want, got); d != "" {
			t.Errorf("ListWebhooks with Limit %d (-want +got):\n%s", limit, d)
		}
	}
	// The page holding the last item has no next cursor.
	page, next, err := h.s.ListWebhooks(h.ctx, store.ListWebhooksParams{Tenant: tn, Limit: 20})
	if err != nil || len(page) != 20 || next != "" {
		t.Errorf("ListWebhooks of exactly Limit items = %d, cursor %q, %v; want 20, \"\"", len(page), next, err)
	}
	page, next, err = h.s.ListWebhooks(h.ctx, store.ListWebhooksParams{Tenant: "tenant_nobody", Limit: 5})
	if err != nil || len(page) != 0 || next != "" {
		t.Errorf("ListWebhooks of an unknown tenant = %d, %q, %v; want empty", len(page), next, err)
	}
}

func testListWebhooksConcurrentInsert(t *testing.T, h *harness) {
	tn := h.tenant()
	initial := make(map[string]bool)
	for range 40 {
		initial[h.webhook(t, tn, nil).ID] = true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 { // bounded, in case the listing never ends
			select {
			case <-stop:
				return
			default:
			}
			if err := h.s.CreateWebhook(h.ctx, NewWebhook(tn)); err != nil {
				t.Errorf("concurrent CreateWebhook: %v", err)
				return
			}
		}
	})
	got := listAllWebhooks(t, h, tn, 3, func() { h.webhook(t, tn, nil) })
	close(stop)
	wg.Wait()
	seen := make(map[string]bool)
	for i, w := range got {
		if seen[w.ID] {
			t.Errorf("webhook %s listed twice", w.ID)
		}
		seen[w.ID] = true
		if i > 0 && got[i-1].ID <= w.ID {
			t.Errorf("listing not newest first: %s before %s", got[i-1].ID, w.ID)
		}
	}
	for id := range initial {
		if !seen[id] {
			t.Errorf("webhook %s, stored before the listing began, was not listed", id)
		}
	}
}
