package server

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/store"
)

// previewList is a PreviewLister with a fixed list.
type previewList []PreviewInfo

func (l previewList) List(context.Context) ([]PreviewInfo, error) { return l, nil }

func TestAPIPreviews(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	serve := func(p PreviewLister) *Client {
		h, err := NewAPI(APIConfig{
			Store:   st,
			Tokens:  []Token{{Name: "vera", Secret: viewerSecret, Roles: []Role{RoleViewer}}},
			Sources: &sourceManager{store: st},
			Environments: func(ctx context.Context, env string) (*environments.Status, error) {
				return &environments.Status{Environment: env}, nil
			},
			Previews: p,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		c, err := NewClient(srv.URL, viewerSecret)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	if _, err := serve(nil).Previews(t.Context()); err == nil || !strings.Contains(err.Error(), "previews are not set up") {
		t.Errorf("without a lister: %v", err)
	}
	at := time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)
	want := PreviewInfo{Source: "demo", Number: 3, Environment: "pr-3-demo", State: "live", Head: "c0ffee", URL: "http://gw/pr-3-demo/", LastActivity: at,
		Title: "Say hello in French", Author: "mona", PullURL: "https://github.example/o/r/pull/3", Fork: true, Release: "sha256:" + strings.Repeat("d", 64), Created: at.Add(-time.Hour)}
	got, err := serve(previewList{want}).Previews(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("previews %+v, want %+v", got, want)
	}
	if got, err := serve(previewList(nil)).Previews(t.Context()); err != nil || len(got) != 0 {
		t.Errorf("none: %+v %v", got, err)
	}
}
