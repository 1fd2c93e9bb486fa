package test

import (
	"os"
	"strings"
	"testing"
)

// TestServePreviewsConfig: ferry serve takes the previews: block, ferry
// status lists the configured environments, and ferry previews says when
// there are none to list.
func TestServePreviewsConfig(t *testing.T) {
	cfg := writeServeConfig(t, "  []")
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("previews: {max: 2, label: preview-me, labelers: [octocat], env: {LOG_LEVEL: debug}}\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	auth := []string{"--server", p.api, "--token", serveToken}

	r := ferry(t, append([]string{"status"}, auth...)...)
	if r.code != 0 {
		t.Fatalf("ferry status: %d %s", r.code, r.stderr)
	}
	for _, env := range []string{"dev", "staging", "prod"} {
		if !strings.Contains(r.stdout, env) {
			t.Errorf("ferry status does not list %s:\n%s", env, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "(preview)") {
		t.Errorf("ferry status lists a preview, with none made:\n%s", r.stdout)
	}
	// ferry serve always runs the preview manager; with no pull request
	// seen it has none to list.
	r = ferry(t, append([]string{"previews"}, auth...)...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "no previews" {
		t.Errorf("ferry previews: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// A mistake in the block stops ferry serve before it starts.
	bad := writeServeConfig(t, "  []")
	f, err = os.OpenFile(bad.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("previews: {max: 0}\n")
	f.Close()
	r = ferry(t, "serve", "--config", bad.path)
	if r.code == 0 || !strings.Contains(r.stderr, "previews.max: 0: give how many previews may run at once") {
		t.Errorf("ferry serve with previews.max 0: %d %q", r.code, r.stderr)
	}
}
