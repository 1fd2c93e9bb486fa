package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/store"
)

// hungSources is a watcher whose fetches never end.
type hungSources struct{ noSources }

func (hungSources) Sync(ctx context.Context, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}

func (hungSources) Status(string) (store.SourceStatus, error) { return store.SourceStatus{}, nil }

// A sync answers when its deadline passes (twice the source's timeout and
// a moment) even when the watcher's fetch never ends, saying the fetch
// goes on.
func TestSyncDeadline(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AddSource(ctx, store.Source{Name: "hung", URL: "/srv/hung", Branch: "main", Interval: time.Minute, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	h, err := NewAPI(APIConfig{
		Store:        st,
		Sources:      hungSources{},
		Tokens:       []Token{{Name: "root", Secret: adminSecret, Roles: []Role{RoleAdmin}}},
		Environments: func(context.Context, string) (*environments.Status, error) { return &environments.Status{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, adminSecret)
	if err != nil {
		t.Fatal(err)
	}
	// Bounded only to catch a hang: the answer is due after 7 s.
	cctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	defer cancel()
	_, err = c.SyncSource(cctx, "hung")
	if cctx.Err() != nil {
		t.Fatal("the sync did not answer")
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusGatewayTimeout ||
		!strings.Contains(err.Error(), "source hung: still fetching after 7s; ferry goes on, and ferry sources list shows the outcome") {
		t.Fatalf("sync of a hung source: %v, want 504 saying it is still fetching after 7s", err)
	}
	src, err := SourceFromRequest(SourceRequest{Name: "big", URL: "/srv/big", Timeout: "10m"})
	if err != nil || src.Timeout != 10*time.Minute || sourceView(src, store.SourceStatus{}).Timeout != "600s" {
		t.Errorf("a source with timeout 10m: %+v, %v", src, err)
	}
	if v := sourceView(store.Source{}, store.SourceStatus{}); v.Timeout != "60s" {
		t.Errorf("the view of a source without a timeout says %q, want the default 60s", v.Timeout)
	}
	if _, err := SourceFromRequest(SourceRequest{Name: "big", URL: "/srv/big", Timeout: "10ms"}); err == nil ||
		!strings.Contains(err.Error(), `timeout "10ms": give a duration of at least 1s`) {
		t.Errorf("timeout 10ms: %v", err)
	}
	if got := syncWait(store.Source{}); got != 2*time.Minute+5*time.Second {
		t.Errorf("the wait of a source with the default timeout: %v", got)
	}
}

// registryTimeout and a source's timeout are read from the configuration;
// a bad one is a mistake.
func TestConfigTimeouts(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
registryTimeout: 5s
sources:
- {name: demo, url: ./a, timeout: 90s}
`), "/srv", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.registryTimeout != 5*time.Second {
		t.Errorf("registryTimeout 5s read as %v", cfg.registryTimeout)
	}
	src, err := cfg.source(cfg.Sources[0])
	if err != nil || src.Timeout != 90*time.Second {
		t.Errorf("a source with timeout 90s: %+v, %v", src, err)
	}
	_, err = ParseConfig([]byte(`
registryTimeout: soon
sources:
- {name: demo, url: ./a, timeout: 1ms}
`), "/srv", "ferry-serve.yaml")
	for _, want := range []string{`registryTimeout: "soon": give a duration such as 60s`, `timeout "1ms": give a duration of at least 1s`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}
