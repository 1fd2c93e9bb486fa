package embedded

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestHostRemove: an environment made at run time answers, is removed
// (404 saying why, a held target refuses to deploy, not known any more),
// and is made again under the same name.
func TestHostRemove(t *testing.T) {
	rel := newReleaser(t, "python").release()
	ctx := context.Background()
	h, err := NewHost(HostConfig{DataDir: t.TempDir(), Environments: []string{"dev"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	h.cfg.GatewayURL = srv.URL
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/pr-3-demo/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	old, err := h.Target("pr-3-demo", EnvironmentConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Delete(context.Background()) })
	if !slices.Equal(h.knownEnvironments(), []string{"dev", "pr-3-demo"}) {
		t.Errorf("known: %v", h.knownEnvironments())
	}
	if err := old.Apply(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != 200 {
		t.Fatalf("the new environment answers %d %s", code, body)
	}

	const why = "environment pr-3-demo was removed (its pull request closed)"
	if err := h.Remove(ctx, "pr-3-demo", why); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != 404 || !strings.Contains(body, why) {
		t.Errorf("removed, it answers %d %s", code, body)
	}
	if err := old.Apply(ctx, rel); err == nil || err.Error() != why {
		t.Errorf("a deploy through the target held from before: %v, want %q", err, why)
	}
	if code, _ := get(); code != 404 {
		t.Errorf("the held target routed the removed environment again: %d", code)
	}
	if slices.Contains(h.knownEnvironments(), "pr-3-demo") {
		t.Errorf("still known: %v", h.knownEnvironments())
	}

	again, err := h.Target("pr-3-demo", EnvironmentConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Delete(context.Background()) })
	if again == old {
		t.Fatal("made again, it is the removed target")
	}
	if code, body := get(); code != 404 || strings.Contains(body, why) {
		t.Errorf("made again, before a deploy, it answers %d %s", code, body)
	}
	if err := again.Apply(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != 200 {
		t.Errorf("made again, it answers %d %s", code, body)
	}
}
