package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/memstore"
)

type regClock struct{ t time.Time }

func (c *regClock) Now() time.Time { return c.t }

func newTestRegistry(t *testing.T, opts RegistryOptions) *Registry {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	return NewRegistry(st, opts)
}

func validInput() WebhookInput {
	return WebhookInput{URL: "https://example.com/hooks", Events: []string{EventWorkflowCompleted}}
}

// A nil store is refused when the Registry is built, not by a nil
// dereference in its first call.
func TestNewRegistryRefusesNilStore(t *testing.T) {
	defer func() {
		if p := recover(); p != "webhook: NewRegistry: nil store" {
			t.Errorf("NewRegistry(nil) panicked with %v, want the nil store message", p)
		}
	}()
	NewRegistry(nil, RegistryOptions{})
	t.Error("NewRegistry(nil) returned")
}

func TestRegistryCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newTestRegistry(t, RegistryOptions{})
	in := validInput()
	in.Events = []string{"workflow.completed", "agent.*", "workflow.completed"}
	in.Description = "prod"
	in.Headers = map[string]string{"x-team": "core"}
	w, err := r.Create(ctx, "t1", in)
	if err != nil {
		t.Fatal(err)
	}
	if w.CreatedAt.IsZero() {
		t.Error("CreatedAt not set on the returned webhook")
	}
	if !strings.HasPrefix(w.ID, "wh_") || len(w.ID) != 3+36 {
		t.Errorf("id %q, want wh_ + UUID", w.ID)
	}
	if !w.Active || w.Tenant != "t1" || w.Description != "prod" {
		t.Errorf("got %+v", w)
	}
	if diff := cmp.Diff([]string{"workflow.completed", "agent.*"}, w.Events); diff != "" {
		t.Errorf("events deduplicated (-want +got):\n%s", diff)
	}
	if w.Headers["X-Team"] != "core" {
		t.Errorf("headers %v, want canonical X-Team", w.Headers)
	}
	if len(w.Secrets) != 1 || !strings.HasPrefix(w.Secrets[0].Value, SecretPrefix) {
		t.Fatalf("secrets %d", len(w.Secrets))
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(w.Secrets[0].Value, SecretPrefix))
	if err != nil || len(k) != 32 {
		t.Errorf("generated secret decodes to %d bytes (%v), want 32", len(k), err)
	}
	got, err := r.Get(ctx, "t1", w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Secrets[0].Value != w.Secrets[0].Value || got.URL != w.URL {
		t.Error("stored webhook differs from the returned one")
	}
	w2, err := r.Create(ctx, "t1", validInput())
	if err != nil {
		t.Fatal(err)
	}
	if w2.ID == w.ID || w2.Secrets[0].Value == w.Secrets[0].Value {
		t.Error("two webhooks share an id or a secret")
	}
	off := false
	in = validInput()
	in.Active = &off
	in.Secret = "my-webhook-secret"
	w3, err := r.Create(ctx, "t1", in)
	if err != nil {
		t.Fatal(err)
	}
	if w3.Active || w3.Secrets[0].Value != "my-webhook-secret" {
		t.Errorf("Active=%v, supplied secret kept=%v", w3.Active, w3.Secrets[0].Value == "my-webhook-secret")
	}
}

func TestRegistryDeterministicRand(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, RegistryOptions{Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 64))})
	w, err := r.Create(context.Background(), "t", validInput())
	if err != nil {
		t.Fatal(err)
	}
	if want := SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)); w.Secrets[0].Value != want {
		t.Errorf("secret not drawn from Rand")
	}
	if _, err := r.Create(context.Background(), "t", validInput()); err == nil {
		t.Error("exhausted Rand: no error")
	}
}

func TestRegistryValidation(t *testing.T) {
	t.Parallel()
	secret := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)) // 16 bytes: too short
	tests := []struct {
		name  string
		edit  func(*WebhookInput)
		field string
	}{
		{"empty url", func(in *WebhookInput) { in.URL = "" }, "url"},
		{"relative url", func(in *WebhookInput) { in.URL = "/hooks" }, "url"},
		{"http url", func(in *WebhookInput) { in.URL = "http://example.com/" }, "url"},
		{"ftp url", func(in *WebhookInput) { in.URL = "ftp://example.com/" }, "url"},
		{"no host", func(in *WebhookInput) { in.URL = "https:///path" }, "url"},
		{"userinfo", func(in *WebhookInput) { in.URL = "https://u:p@example.com/" }, "url"},
		{"fragment", func(in *WebhookInput) { in.URL = "https://example.com/#x" }, "url"},
		{"empty fragment", func(in *WebhookInput) { in.URL = "https://example.com/#" }, "url"},
		{"long url", func(in *WebhookInput) { in.URL = "https://example.com/" + strings.Repeat("a", MaxURLLength) }, "url"},
		{"unparsable url", func(in *WebhookInput) { in.URL = "https://exa mple.com/%zz" }, "url"},
		// net/http sends a query as it is written: a space in it splits
		// the request line, and receivers answer 400 to every delivery.
		{"space in query", func(in *WebhookInput) { in.URL = "https://example.com/hooks?name=my hook" }, "url"},
		// Go's resolver looks up no name that is not ASCII: every attempt
		// would fail with "no such host".
		{"unicode host", func(in *WebhookInput) { in.URL = "https://bücher.example/hooks" }, "url"},
		{"encoded unicode host", func(in *WebhookInput) { in.URL = "https://b%C3%BCcher.example/hooks" }, "url"},
		{"port over 65535", func(in *WebhookInput) { in.URL = "https://example.com:99999/" }, "url"},
		{"port 65536", func(in *WebhookInput) { in.URL = "https://example.com:65536/" }, "url"},
		{"port 0", func(in *WebhookInput) { in.URL = "https://example.com:0/" }, "url"},
		{"port 00", func(in *WebhookInput) { in.URL = "https://example.com:00/" }, "url"},
		{"bare colon", func(in *WebhookInput) { in.URL = "https://example.com:/" }, "url"},
		{"bare colon no path", func(in *WebhookInput) { in.URL = "https://example.com:" }, "url"},
		{"ipv6 bare colon", func(in *WebhookInput) { in.URL = "https://[::1]:/" }, "url"},
		{"ipv6 port over 65535", func(in *WebhookInput) { in.URL = "https://[::1]:70000/" }, "url"},
		{"huge port", func(in *WebhookInput) { in.URL = "https://example.com:" + strings.Repeat("9", 40) + "/" }, "url"},
		{"no events", func(in *WebhookInput) { in.Events = nil }, "events"},
		{"unknown event", func(in *WebhookInput) { in.Events = []string{"workflow.completed", "nope.nope"} }, "events[1]"},
		{"bad pattern", func(in *WebhookInput) { in.Events = []string{"work*"} }, "events[0]"},
		{"unknown prefix", func(in *WebhookInput) { in.Events = []string{"billing.*"} }, "events[0]"},
		{"long description", func(in *WebhookInput) { in.Description = strings.Repeat("d", 501) }, "description"},
		{"invalid utf8 description", func(in *WebhookInput) { in.Description = "\xff" }, "description"},
		{"reserved header", func(in *WebhookInput) { in.Headers = map[string]string{"X-Webhook-Signature": "x"} }, "headers.X-Webhook-Signature"},
		{"standard header", func(in *WebhookInput) { in.Headers = map[string]string{"webhook-id": "x"} }, "headers.webhook-id"},
		{"content type", func(in *WebhookInput) { in.Headers = map[string]string{"content-type": "x"} }, "headers.content-type"},
		{"host", func(in *WebhookInput) { in.Headers = map[string]string{"Host": "x"} }, "headers.Host"},
		{"user agent", func(in *WebhookInput) { in.Headers = map[string]string{"User-Agent": "x"} }, "headers.User-Agent"},
		{"hop by hop", func(in *WebhookInput) { in.Headers = map[string]string{"Transfer-Encoding": "x"} }, "headers.Transfer-Encoding"},
		// The dispatcher never sends these two; a webhook must not seem to
		// hold them.
		{"content encoding", func(in *WebhookInput) { in.Headers = map[string]string{"Content-Encoding": "gzip"} }, "headers.Content-Encoding"},
		{"expect", func(in *WebhookInput) { in.Headers = map[string]string{"Expect": "100-continue"} }, "headers.Expect"},
		{"bad header name", func(in *WebhookInput) { in.Headers = map[string]string{"X Bad": "x"} }, "headers"},
		{"header crlf", func(in *WebhookInput) { in.Headers = map[string]string{"X-A": "a\r\nX-B: b"} }, "headers.X-A"},
		{"duplicate header", func(in *WebhookInput) { in.Headers = map[string]string{"x-a": "1", "X-A": "2"} }, ""},
		{"negative attempts", func(in *WebhookInput) { in.MaxAttempts = -1 }, "maxAttempts"},
		{"negative rate", func(in *WebhookInput) { in.RateLimit = -1 }, "rateLimit"},
		{"too many attempts", func(in *WebhookInput) { in.MaxAttempts = MaxWebhookAttempts + 1 }, "maxAttempts"},
		{"rate below one an hour", func(in *WebhookInput) { in.RateLimit = 1e-12 }, "rateLimit"},
		{"rate too high", func(in *WebhookInput) { in.RateLimit = MaxRateLimit * 2 }, "rateLimit"},
		{"NaN rate", func(in *WebhookInput) { in.RateLimit = math.NaN() }, "rateLimit"},
		{"infinite rate", func(in *WebhookInput) { in.RateLimit = math.Inf(1) }, "rateLimit"},
		{"short secret", func(in *WebhookInput) { in.Secret = "short" }, "secret"},
		{"short whsec", func(in *WebhookInput) { in.Secret = secret }, "secret"},
		{"bad base64", func(in *WebhookInput) { in.Secret = "whsec_!!!!notbase64!!!!!!!!!!!!!!" }, "secret"},
		{"v1 prefix", func(in *WebhookInput) { in.Secret = "v1,abcdefghijklmnopqrstu" }, "secret"},
		{"space in secret", func(in *WebhookInput) { in.Secret = "abcdefgh ijklmnopqrstu" }, "secret"},
	}
	r := newTestRegistry(t, RegistryOptions{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := validInput()
			tc.edit(&in)
			_, err := r.Create(context.Background(), "t", in)
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrValidation) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if tc.field != "" && ve.Field != tc.field {
				t.Errorf("field %q, want %q", ve.Field, tc.field)
			}
			if in.Secret != "" && strings.Contains(err.Error(), in.Secret) {
				t.Errorf("error message reveals the secret: %v", err)
			}
		})
	}
	if _, err := r.Create(context.Background(), "", validInput()); !errors.Is(err, ErrValidation) {
		t.Errorf("empty tenant: err = %v", err)
	}
	list, _, err := r.List(context.Background(), "t", "", 100)
	if err != nil || len(list) != 0 {
		t.Errorf("invalid inputs stored %d webhooks (%v)", len(list), err)
	}
}

func TestRegistryAcceptedInput(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, RegistryOptions{AllowHTTP: true, MaxEvents: 2})
	ctx := context.Background()
	for _, in := range []WebhookInput{
		{URL: "http://127.0.0.1:8080/h?x=1", Events: []string{"*"}},
		{URL: "https://example.com", Events: []string{"agent.*", "agent.spawned"}, Secret: "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64))},
		{URL: "https://example.com:1/", Events: []string{"*"}},
		{URL: "https://example.com:65535", Events: []string{"*"}},
		{URL: "https://example.com/my hook?name=my%20hook+x", Events: []string{"*"}}, // the path is escaped when sent
		{URL: "https://xn--bcher-kva.example/bücher?q=é", Events: []string{"*"}},     // an IDN host in its ASCII form
		{URL: "https://[::1]:443/", Events: []string{"workflow.completed"}, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Description: strings.Repeat("é", 250)},
	} {
		if _, err := r.Create(ctx, "t", in); err != nil {
			t.Errorf("Create(%+v): %v", in.URL, err)
		}
	}
	_, err := r.Create(ctx, "t", WebhookInput{URL: "https://example.com", Events: []string{"a.*", "agent.spawned", "*"}})
	if !errors.Is(err, ErrValidation) {
		t.Errorf("three events over MaxEvents=2: err = %v", err)
	}
}

func TestRegistryTenantIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newTestRegistry(t, RegistryOptions{})
	w, err := r.Create(ctx, "alice", validInput())
	if err != nil {
		t.Fatal(err)
	}
	_, errMissing := r.Get(ctx, "bob", "wh_missing")
	_, errOther := r.Get(ctx, "bob", w.ID)
	for _, err := range []error{errMissing, errOther} {
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	}
	desc := "stolen"
	if _, err := r.Update(ctx, "bob", w.ID, WebhookUpdate{Description: &desc}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update by other tenant: %v", err)
	}
	if _, err := r.RotateSecret(ctx, "bob", w.ID, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("RotateSecret by other tenant: %v", err)
	}
	if err := r.Delete(ctx, "bob", w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete by other tenant: %v", err)
	}
	if list, _, err := r.List(ctx, "bob", "", 10); err != nil || len(list) != 0 {
		t.Errorf("bob lists %d webhooks (%v)", len(list), err)
	}
	got, err := r.Get(ctx, "alice", w.ID)
	if err != nil || got.Description != "" || got.Secrets[0].Value != w.Secrets[0].Value {
		t.Errorf("alice's webhook changed by bob: %+v, %v", got, err)
	}
	if err := r.Delete(ctx, "alice", w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "alice", w.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete: %v", err)
	}
}

func TestRegistryList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newTestRegistry(t, RegistryOptions{})
	ids := map[string]bool{}
	for range 5 {
		w, err := r.Create(ctx, "t", validInput())
		if err != nil {
			t.Fatal(err)
		}
		ids[w.ID] = true
	}
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		ws, next, err := r.List(ctx, "t", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) > 2 {
			t.Fatalf("page of %d, want at most 2", len(ws))
		}
		for _, w := range ws {
			seen[w.ID] = true
		}
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
	if diff := cmp.Diff(ids, seen); diff != "" {
		t.Errorf("listed ids (-want +got):\n%s", diff)
	}
}

func TestRegistryUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	r := NewRegistry(st, RegistryOptions{})
	in := validInput()
	in.Description = "keep me"
	in.Headers = map[string]string{"X-A": "1"}
	w, err := r.Create(ctx, "t", in)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://example.org/new"
	got, err := r.Update(ctx, "t", w.ID, WebhookUpdate{URL: &url})
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != url || got.Description != "keep me" || got.Headers["X-A"] != "1" || !got.Active ||
		got.Secrets[0].Value != w.Secrets[0].Value || !cmp.Equal(got.Events, w.Events) {
		t.Errorf("absent fields changed: %+v", got)
	}
	bad := "http://example.org/"
	if _, err := r.Update(ctx, "t", w.ID, WebhookUpdate{URL: &bad}); !errors.Is(err, ErrValidation) {
		t.Errorf("bad url: %v", err)
	}
	empty := []string{}
	if _, err := r.Update(ctx, "t", w.ID, WebhookUpdate{Events: &empty}); !errors.Is(err, ErrValidation) {
		t.Errorf("empty events: %v", err)
	}
	neg := -2
	if _, err := r.Update(ctx, "t", w.ID, WebhookUpdate{MaxAttempts: &neg}); !errors.Is(err, ErrValidation) {
		t.Errorf("negative attempts: %v", err)
	}
	if cur, _ := r.Get(ctx, "t", w.ID); cur.URL != url || cur.MaxAttempts != 0 {
		t.Errorf("refused update was stored: %+v", cur)
	}

	// A webhook disabled by the library is re-activated by hand.
	cur, _ := st.GetWebhook(ctx, w.ID)
	cur.Active, cur.DisabledReason = false, "410 Gone"
	saveWebhook(t, st, cur)
	on := true
	got, err = r.Update(ctx, "t", w.ID, WebhookUpdate{Active: &on})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Active || got.DisabledReason != "" {
		t.Errorf("re-activated: Active=%v DisabledReason=%q", got.Active, got.DisabledReason)
	}
	noHeaders := map[string]string{}
	rate, attempts := 2.5, 3
	got, err = r.Update(ctx, "t", w.ID, WebhookUpdate{Headers: &noHeaders, RateLimit: &rate, MaxAttempts: &attempts})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Headers) != 0 || got.RateLimit != 2.5 || got.MaxAttempts != 3 {
		t.Errorf("update: %+v", got)
	}
	if _, err := r.Update(ctx, "t", "wh_missing", WebhookUpdate{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestRegistryRotateSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &regClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := newTestRegistry(t, RegistryOptions{Now: clock.Now})
	w, err := r.Create(ctx, "t", validInput())
	if err != nil {
		t.Fatal(err)
	}
	s0 := w.Secrets[0].Value

	w, err = r.RotateSecret(ctx, "t", w.ID, -1) // default grace
	if err != nil {
		t.Fatal(err)
	}
	s1 := w.Secrets[0].Value
	if s1 == s0 || len(w.Secrets) != 2 || w.Secrets[1].Value != s0 || !w.Secrets[1].ExpiresAt.Equal(clock.t.Add(24*time.Hour)) {
		t.Fatalf("after rotation: %d secrets, previous expires %v", len(w.Secrets), w.Secrets[len(w.Secrets)-1].ExpiresAt)
	}
	if diff := cmp.Diff([]string{s1, s0}, ActiveSecrets(w, clock.t)); diff != "" {
		t.Errorf("ActiveSecrets during grace (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{s1}, ActiveSecrets(w, clock.t.Add(24*time.Hour))); diff != "" {
		t.Errorf("ActiveSecrets at expiry (-want +got):\n%s", diff)
	}

	clock.t = clock.t.Add(time.Hour)
	w, err = r.RotateSecret(ctx, "t", w.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s2 := w.Secrets[0].Value
	if diff := cmp.Diff([]string{s2, s1, s0}, ActiveSecrets(w, clock.t)); diff != "" {
		t.Errorf("two rotations in grace (-want +got):\n%s", diff)
	}

	// Grace 0 revokes: the secrets still in an earlier rotation's grace go
	// too, as after a leak.
	w, err = r.RotateSecret(ctx, "t", w.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	s3 := w.Secrets[0].Value
	if diff := cmp.Diff([]string{s3}, ActiveSecrets(w, clock.t)); diff != "" {
		t.Errorf("grace 0 during the grace of earlier rotations (-want +got):\n%s", diff)
	}

	w, err = r.RotateSecret(ctx, "t", w.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(30 * time.Hour) // every previous secret expired
	w, err = r.RotateSecret(ctx, "t", w.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Secrets) != 1 || w.Secrets[0].Value == s3 {
		t.Errorf("grace 0 after expiry: %d secrets, want only the new one", len(w.Secrets))
	}
	stored, err := r.Get(ctx, "t", w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w.Secrets, stored.Secrets); diff != "" {
		t.Errorf("stored secrets differ (-returned +stored):\n%s", diff)
	}
}

// RegistryOptions.MaxPreviousSecrets bounds the previous secrets in their
// grace period: a rotation with a grace period beyond it is refused with a
// *RotationLimitError that changes nothing and holds no secret; the
// default grace counts as a grace period, a revocation is never refused.
func TestRegistryRotationLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &regClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := newTestRegistry(t, RegistryOptions{Now: clock.Now, MaxPreviousSecrets: 1})
	w, err := r.Create(ctx, "t", validInput())
	if err != nil {
		t.Fatal(err)
	}
	if w, err = r.RotateSecret(ctx, "t", w.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Minute)
	for _, grace := range []time.Duration{time.Hour, -1} {
		_, err := r.RotateSecret(ctx, "t", w.ID, grace)
		le, ok := errors.AsType[*RotationLimitError](err)
		if !ok || !errors.Is(err, ErrRotationLimit) {
			t.Fatalf("grace %v at the limit: %v, want a *RotationLimitError", grace, err)
		}
		if want := (RotationLimitError{Limit: 1, NextExpiry: w.Secrets[1].ExpiresAt}); *le != want {
			t.Errorf("grace %v at the limit: %+v, want %+v", grace, *le, want)
		}
		for _, s := range w.Secrets {
			if strings.Contains(err.Error(), s.Value) {
				t.Errorf("the error shows a secret: %v", err)
			}
		}
		stored, err := r.Get(ctx, "t", w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w, stored); diff != "" {
			t.Errorf("a refused rotation changed the webhook (-before +after):\n%s", diff)
		}
	}
	got, err := r.RotateSecret(ctx, "t", w.ID, 0)
	if err != nil {
		t.Fatalf("revocation at the limit: %v", err)
	}
	if len(got.Secrets) != 1 {
		t.Errorf("revocation at the limit: %d secrets, want 1", len(got.Secrets))
	}
}

// uncappedStore hides its store's CreateWebhookCapped, as a store of the
// host's that does not implement store.CappedCreator would.
type uncappedStore struct{ store.Store }

// TestRegistryWebhookLimit: Create stops at MaxWebhooks a tenant (100 by
// default) with a *WebhookLimitError and stores nothing, on a store that
// caps atomically and on one that does not; concurrent creates stop there
// too. Another tenant is not held back, and a negative MaxWebhooks is no
// cap.
func TestRegistryWebhookLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	count := func(t *testing.T, r *Registry, tenant string) int {
		t.Helper()
		ws, _, err := r.List(ctx, tenant, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(ws)
	}
	fill := func(t *testing.T, r *Registry, tenant string, n int) {
		t.Helper()
		for i := range n {
			if _, err := r.Create(ctx, tenant, validInput()); err != nil {
				t.Fatalf("create %d of %d: %v", i+1, n, err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		wrap   func(store.Store) store.Store
		limit  int // MaxWebhooks
		filled int // the cap reached
	}{
		{"default", func(st store.Store) store.Store { return st }, 0, DefaultMaxWebhooks},
		{"capped store", func(st store.Store) store.Store { return st }, 3, 3},
		{"counted", func(st store.Store) store.Store { return uncappedStore{st} }, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			t.Cleanup(func() { st.Close() })
			r := NewRegistry(tc.wrap(st), RegistryOptions{MaxWebhooks: tc.limit})
			fill(t, r, "t", tc.filled)
			_, err := r.Create(ctx, "t", validInput())
			le, ok := errors.AsType[*WebhookLimitError](err)
			if !ok || !errors.Is(err, ErrWebhookLimit) || le.Limit != tc.filled {
				t.Fatalf("create at the cap: %v, want a *WebhookLimitError of %d", err, tc.filled)
			}
			if n := count(t, r, "t"); n != tc.filled {
				t.Errorf("after a refused create the tenant has %d webhooks, want %d", n, tc.filled)
			}
			if _, err := r.Create(ctx, "other", validInput()); err != nil {
				t.Errorf("another tenant's create: %v", err)
			}
		})
	}

	t.Run("concurrent", func(t *testing.T) {
		r := newTestRegistry(t, RegistryOptions{MaxWebhooks: 3})
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() { r.Create(ctx, "t", validInput()) })
		}
		wg.Wait()
		if n := count(t, r, "t"); n != 3 {
			t.Errorf("12 concurrent creates with a cap of 3 stored %d", n)
		}
	})
	t.Run("no cap", func(t *testing.T) {
		fill(t, newTestRegistry(t, RegistryOptions{MaxWebhooks: -1}), "t", DefaultMaxWebhooks+1)
	})
}

// TestRegistryConcurrentChanges rotates a webhook's secret while another
// goroutine updates it: each change is read and written in one store
// transaction, so no rotation is undone by an update that read the webhook
// before it (the API would have answered with a secret that never signs).
func TestRegistryConcurrentChanges(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) store.Store{
		"memstore": func(t *testing.T) store.Store { return memstore.New() },
		"boltstore": func(t *testing.T) store.Store {
			st, err := boltstore.Open(filepath.Join(t.TempDir(), "reg.db"), &boltstore.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			defer st.Close()
			ctx := context.Background()
			clock := &regClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			const rounds = 100
			// Every rotation stays in its grace period: the cap is raised
			// so that none is refused and each must be stored.
			r := NewRegistry(st, RegistryOptions{Now: clock.Now, MaxPreviousSecrets: rounds})
			w, err := r.Create(ctx, "t", validInput())
			if err != nil {
				t.Fatal(err)
			}
			var (
				wg   sync.WaitGroup
				last string
			)
			wg.Go(func() {
				for i := range rounds {
					desc := fmt.Sprintf("update %d", i)
					if _, err := r.Update(ctx, "t", w.ID, WebhookUpdate{Description: &desc}); err != nil {
						t.Errorf("Update: %v", err)
						return
					}
				}
			})
			wg.Go(func() {
				for range rounds {
					got, err := r.RotateSecret(ctx, "t", w.ID, time.Hour)
					if err != nil {
						t.Errorf("RotateSecret: %v", err)
						return
					}
					last = got.Secrets[0].Value
				}
			})
			wg.Wait()
			got, err := r.Get(ctx, "t", w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Secrets) != rounds+1 || got.Secrets[0].Value != last {
				t.Errorf("after %d rotations in their grace: %d secrets stored, current is the last rotation's: %v",
					rounds, len(got.Secrets), got.Secrets[0].Value == last)
			}
			if got.Description != fmt.Sprintf("update %d", rounds-1) {
				t.Errorf("description %q, want the last update's", got.Description)
			}
		})
	}
}

// No store is handed a NUL character (PostgreSQL text cannot hold one): a
// description with NUL is refused on create and update like every other
// string field, and nothing is stored.
func TestRegistryRefusesNUL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newTestRegistry(t, RegistryOptions{})
	w, err := r.Create(ctx, "t", validInput())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*WebhookInput)
		field string
	}{
		{"description", func(in *WebhookInput) { in.Description = "a\x00b" }, "description"},
		{"description only NUL", func(in *WebhookInput) { in.Description = "\x00" }, "description"},
		{"url path", func(in *WebhookInput) { in.URL = "https://example.com/a\x00b" }, "url"},
		{"url host", func(in *WebhookInput) { in.URL = "https://exa\x00mple.com/" }, "url"},
		{"header name", func(in *WebhookInput) { in.Headers = map[string]string{"X-A\x00": "1"} }, "headers"},
		{"header value", func(in *WebhookInput) { in.Headers = map[string]string{"X-A": "1\x002"} }, "headers.X-A"},
		{"event", func(in *WebhookInput) { in.Events = []string{"workflow.completed\x00"} }, "events[0]"},
		{"secret", func(in *WebhookInput) { in.Secret = "abcdefgh\x00ijklmnopqrstu" }, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := validInput()
			tc.edit(&in)
			_, err := r.Create(ctx, "t", in)
			if ve, ok := errors.AsType[*ValidationError](err); !ok || ve.Field != tc.field {
				t.Errorf("create: err = %v, want a *ValidationError of field %q", err, tc.field)
			}
			if tc.field == "secret" {
				return // an update takes no secret
			}
			u := WebhookUpdate{URL: &in.URL, Events: &in.Events, Description: &in.Description, Headers: &in.Headers}
			if _, err := r.Update(ctx, "t", w.ID, u); !errors.Is(err, ErrValidation) {
				t.Errorf("update: err = %v, want ErrValidation", err)
			}
		})
	}
	list, _, err := r.List(ctx, "t", "", 100)
	if err != nil || len(list) != 1 {
		t.Fatalf("%d webhooks stored, want 1 (%v)", len(list), err)
	}
	if got := list[0]; got.Description != "" || got.URL != w.URL || len(got.Headers) != 0 {
		t.Errorf("a refused update was stored: %+v", got)
	}
}

// TestRegistryRefusesEveryDroppedHeader: a custom header the dispatcher
// would drop is refused when the webhook is saved, so a webhook never
// seems to send a header it does not.
func TestRegistryRefusesEveryDroppedHeader(t *testing.T) {
	t.Parallel()
	for name := range reservedHeaders {
		if !registryReservedHeaders[name] {
			t.Errorf("the dispatcher drops %s, but the Registry accepts it", name)
		}
	}
}

// TestRegistryRefusesUnderscoreReservedHeaders: Webhook_Signature used to
// pass the reserved-header filter, and CGI and WSGI receivers (which read
// '_' and '-' alike, as HTTP_WEBHOOK_SIGNATURE) took it for the real
// signature header. A reserved name spelt with '_' is refused; other names
// with '_' are not.
func TestRegistryRefusesUnderscoreReservedHeaders(t *testing.T) {
	t.Parallel()
	r := newTestRegistry(t, RegistryOptions{})
	ctx := context.Background()
	for _, name := range []string{"Webhook_Signature", "webhook_id", "X_Webhook_Event", "X-Webhook_Signature", "Content_Type", "user_agent", "Transfer_Encoding"} {
		in := validInput()
		in.Headers = map[string]string{name: "forged"}
		if _, err := r.Create(ctx, "t", in); !errors.Is(err, ErrValidation) {
			t.Errorf("header %s: err = %v, want ErrValidation", name, err)
		}
	}
	in := validInput()
	in.Headers = map[string]string{"X_Request_Source": "noa"}
	if _, err := r.Create(ctx, "t", in); err != nil {
		t.Errorf("header X_Request_Source: %v", err)
	}
}

// TestPrintedWebhookInputHidesSecrets prints and logs the input of a
// Create, as a host logging what it is about to register might, and checks
// that neither its secret, a credential header's value nor its URL's query
// appears, while the rest does.
func TestPrintedWebhookInputHidesSecrets(t *testing.T) {
	t.Parallel()
	const (
		secret = "whsec_SW5wdXRTZWNyZXRJbnB1dFNlY3JldElucHV0"
		apiKey = "k3y-v4lue-0f-the-endpoint"
		query  = "t0ken-in-the-query"
	)
	in := WebhookInput{
		URL:         "https://hooks.example.com/in?token=" + query,
		Events:      []string{"workflow.completed"},
		Description: "payments",
		Secret:      secret,
		Headers:     map[string]string{"X-Api-Key": apiKey, "X-Team": "blue"},
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", slog.Any("in", in))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", slog.Any("in", &in))
	for _, out := range []string{
		fmt.Sprintf("%v", in), fmt.Sprintf("%+v", in), fmt.Sprintf("%#v", in), fmt.Sprintf("%+v", &in),
		fmt.Sprint(in), text.String(), js.String(),
	} {
		for _, s := range []string{secret, apiKey, query} {
			if strings.Contains(out, s) {
				t.Errorf("printed input shows %q:\n%s", s, out)
			}
		}
		for _, want := range []string{"https://hooks.example.com/in", "workflow.completed", "payments", "X-Api-Key", "blue"} {
			if !strings.Contains(out, want) {
				t.Errorf("printed input lacks %q:\n%s", want, out)
			}
		}
	}
}

// TestInvalidHeaderNameIsNotEchoed: a whole header line pasted as a name
// ("Authorization: Bearer …") is not a valid name, and the error that
// refuses it, which the API returns and a host may log, does not quote it.
func TestInvalidHeaderNameIsNotEchoed(t *testing.T) {
	t.Parallel()
	const token = "sk_live_51HxQpRtOkEn"
	r := newTestRegistry(t, RegistryOptions{})
	for _, name := range []string{"Authorization: Bearer " + token, "X-Api-Key=" + token, token + "\n"} {
		_, err := r.Create(context.Background(), "acme", WebhookInput{
			URL: "https://hooks.example.com/in", Events: []string{"*"},
			Headers: map[string]string{name: "value"},
		})
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("Create with header name %q: %v, want a *ValidationError", name, err)
		}
		if strings.Contains(err.Error(), token) || strings.Contains(ve.Field, token) {
			t.Errorf("Create with header name %q: %q (field %q) quotes it", name, err, ve.Field)
		}
		if ve.Field != "headers" || !strings.Contains(ve.Message, "not a valid header name") {
			t.Errorf("Create with header name %q: field %q, message %q; want headers, not a valid header name", name, ve.Field, ve.Message)
		}
	}
}
