package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/noa-server/webhook"
	"github.com/noa-server/webhook/api"
	"github.com/noa-server/webhook/store/memstore"
)

// A host mounts the API next to its own routes, with a tenant taken from
// its own authentication, and lets its users register webhooks.
func ExampleNew() {
	st := memstore.New()
	defer st.Close()
	disp, err := webhook.New(st, nil)
	if err != nil {
		panic(err)
	}
	if err := disp.Start(context.Background()); err != nil {
		panic(err)
	}
	defer disp.Stop(context.Background())

	h, err := api.New(api.Config{
		Registry:   webhook.NewRegistry(st, webhook.RegistryOptions{}),
		Dispatcher: disp,
		Store:      st,
		Tenant: func(r *http.Request) (string, error) {
			if r.Header.Get("Authorization") != "Bearer YOUR_ACCESS_TOKEN" {
				return "", fmt.Errorf("unknown token")
			}
			return "acme", nil
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/v1/webhooks", strings.NewReader(`{
		"url": "https://your-server.com/webhooks/noa-server",
		"events": ["workflow.completed", "workflow.failed", "agent.status.changed"],
		"description": "Production webhook for workflow monitoring",
		"active": true
	}`))
	req.Header.Set("Authorization", "Bearer YOUR_ACCESS_TOKEN")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var out struct {
		Success bool `json:"success"`
		Data    struct {
			ID     string   `json:"id"`
			Events []string `json:"events"`
			Secret string   `json:"secret"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		panic(err)
	}
	fmt.Println(res.StatusCode, out.Success)
	fmt.Println(strings.HasPrefix(out.Data.ID, "wh_"), strings.HasPrefix(out.Data.Secret, "whsec_"))
	fmt.Println(out.Data.Events)
	// Output:
	// 201 true
	// true true
	// [workflow.completed workflow.failed agent.status.changed]
}
