package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/store"
)

// gatewayFunctions calls a gateway with the client ferry serve calls its
// gateway with, so its redirect policy is the one under test.
type gatewayFunctions struct {
	fakeFunctions
	client *http.Client
}

func (g *gatewayFunctions) Invoke(ctx context.Context, env, function, method, path string, header http.Header, body io.Reader, length int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, g.gateway+"/"+env+path, body)
	if err != nil {
		return nil, err
	}
	req.Header = header
	return g.client.Do(req)
}

// TestAPIInvokeRedirect: a function's code is whoever pushed it, and it
// may answer anything, a redirect too. Neither ferry serve nor the CLI
// follows it: the server would fetch a URL of the host's network for a
// function whose own network is loopback only, and the CLI would send the
// caller's token (and body) to whatever API route the function names,
// since a redirect to the same host keeps the Authorization header: a
// function in dev freezing prod, or approving a promotion, with the token
// of whoever invoked it. The API passes the function's Location on as
// Ferry-Function-Location, so that no client that follows redirects
// (curl -L, fetch) is sent anywhere by it.
func TestAPIInvokeRedirect(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	var mu sync.Mutex
	var reached []string
	note := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		reached = append(reached, what)
	}
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note("inside " + r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization"))
	}))
	t.Cleanup(inside.Close)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dev/api":
			w.Header().Set("Location", "/api/v1/environments/prod/freeze")
		case "/dev/host":
			w.Header().Set("Location", inside.URL+"/latest/meta-data")
		}
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(gw.Close)

	api, err := NewAPI(APIConfig{
		Store:        st,
		Sources:      noSources{},
		Tokens:       []Token{{Name: "dan", Secret: deployerSecret, Roles: []Role{RoleDeployer}}},
		Environments: func(context.Context, string) (*environments.Status, error) { return &environments.Status{}, nil },
		Functions: &gatewayFunctions{
			fakeFunctions: fakeFunctions{logs: map[string]*embedded.FunctionLog{"dev/hello": embedded.NewFunctionLog("")}, gateway: gw.URL},
			client:        newEmbeddedFunctions(nil).client,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/environments/dev/functions/hello/invoke" {
			note("api " + r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization"))
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	dan, err := NewClient(srv.URL, deployerSecret)
	if err != nil {
		t.Fatal(err)
	}

	for path, where := range map[string]string{"/api": "/api/v1/environments/prod/freeze", "/host": inside.URL + "/latest/meta-data"} {
		ans, err := dan.Invoke(t.Context(), "dev", "hello", InvokeRequest{Method: "POST", Path: path, Body: []byte(`{}`)})
		if err != nil {
			t.Errorf("a function redirecting to %s: %v; want its answer", where, err)
			continue
		}
		if ans.Status != http.StatusTemporaryRedirect || ans.Header.Get("Location") != "" || ans.Header.Get("Ferry-Function-Location") != where {
			t.Errorf("a function redirecting to %s: %d %v; want its 307, its Location as Ferry-Function-Location only", where, ans.Status, ans.Header)
		}
	}
	// Also a client that follows every redirect the API answers.
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/environments/dev/functions/hello/invoke?path=/api", nil)
	req.Header.Set("Authorization", "Bearer "+deployerSecret)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reached) > 0 {
		t.Errorf("a function's redirect was followed: %q", reached)
	}
}
