package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/dashboard"
	"github.com/noa-server/webhook/store/memstore"
)

// A host mounts the dashboard at /dashboard/ next to its API, scoped by the
// same tenant function.
func ExampleNew() {
	st := memstore.New()
	defer st.Close()
	reg := webhook.NewRegistry(st, webhook.RegistryOptions{})
	disp, err := webhook.New(st, nil)
	if err != nil {
		panic(err)
	}
	_ = disp.Start(context.Background())
	defer disp.Stop(context.Background())

	tenant := func(r *http.Request) (string, error) {
		if r.Header.Get("Authorization") == "Bearer acme-token" {
			return "acme", nil
		}
		return "", errors.New("unknown token")
	}
	h, err := dashboard.New(dashboard.Config{
		Registry: reg, Dispatcher: disp, Store: st, Tenant: tenant, Prefix: "/dashboard",
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", h)

	if _, err := reg.Create(context.Background(), "acme", webhook.WebhookInput{
		URL: "https://hooks.example.com/noa", Events: []string{"workflow.completed"},
	}); err != nil {
		panic(err)
	}
	for _, token := range []string{"acme-token", "wrong-token"} {
		req := httptest.NewRequest(http.MethodGet, "/dashboard/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.Contains(rec.Body.String(), "https://hooks.example.com/noa"))
	}
	// Output:
	// 200 true
	// 401 false
}
