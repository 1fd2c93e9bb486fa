package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/watcher"
)

// grepDir fails the test for every file under dir holding one of values.
func grepDir(t *testing.T, dir string, values ...string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds the secret %q in the clear", p, v)
			}
		}
		return nil
	})
}

// TestSecretsAtRest: an older ferry's clear rows are sealed at start,
// configured secrets stay references, and a reference given through the
// API is sealed like any value rather than followed.
func TestSecretsAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// What ferry before migration 0003 wrote: the values themselves.
	legacy := store.Source{Name: "old", URL: "http://127.0.0.1:1/old.git", Branch: "main", Interval: 3600e9,
		Username: "u", Password: "legacy-password-1f9a", WebhookSecret: "legacy-webhook-7c2e"}
	if err := st.PutSource(ctx, legacy); err != nil {
		t.Fatal(err)
	}

	t.Setenv("FERRY_TEST_GIT_PASSWORD", "config-password-4b8d")
	cfg, err := ParseConfig([]byte(`
sources:
- {name: conf, url: "http://127.0.0.1:1/conf.git", interval: 1h, username: u, password: $FERRY_TEST_GIT_PASSWORD, webhookSecret: config-literal-webhook-9e3f}
`), dir, "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := watcher.New(watcher.Config{Dir: filepath.Join(dir, "mirrors"), State: st, OnEvent: func(store.SourceEvent) {}})
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	m := &sourceManager{store: st, watcher: w, secrets: &secrets{box: box}}
	if err := m.load(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// Through the API, a "reference" is only a value: sealed, not followed.
	api := store.Source{Name: "api", URL: "http://127.0.0.1:1/api.git", Branch: "main", Interval: 3600e9,
		Username: "u", Password: "env:$FERRY_TEST_GIT_PASSWORD", WebhookSecret: "api-webhook-5d1c"}
	if err := m.Add(ctx, api); err != nil {
		t.Fatal(err)
	}
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	old, _ := st.GetSource(ctx, "old")
	conf, _ := st.GetSource(ctx, "conf")
	stored, _ := st.GetSource(ctx, "api")
	if !seal.IsSealed(old.Password) || !seal.IsSealed(old.WebhookSecret) {
		t.Errorf("the legacy row is not sealed: %+v", old)
	}
	if conf.Password != "env:$FERRY_TEST_GIT_PASSWORD" || !seal.IsSealed(conf.WebhookSecret) {
		t.Errorf("the configured source: %+v", conf)
	}
	if !seal.IsSealed(stored.Password) {
		t.Errorf("the API's source: %+v", stored)
	}
	for _, c := range []struct {
		src            store.Source
		password, hook string
	}{
		{old, "legacy-password-1f9a", "legacy-webhook-7c2e"},
		{conf, "config-password-4b8d", "config-literal-webhook-9e3f"},
		{stored, "env:$FERRY_TEST_GIT_PASSWORD", "api-webhook-5d1c"},
	} {
		clear, err := m.secrets.reveal(c.src)
		if err != nil || clear.Password != c.password || clear.WebhookSecret != c.hook {
			t.Errorf("%s revealed as %q %q (%v), want %q %q", c.src.Name, clear.Password, clear.WebhookSecret, err, c.password, c.hook)
		}
	}
	grepDir(t, dir, "legacy-password-1f9a", "legacy-webhook-7c2e", "config-password-4b8d", "config-literal-webhook-9e3f", "api-webhook-5d1c")

	// Under another key the API's sources cannot be revealed: ferry still
	// starts (so they can be removed and added again) and says why.
	other, _ := seal.New(bytes.Repeat([]byte{10}, 32))
	var said []string
	m2 := &sourceManager{store: st, watcher: w, secrets: &secrets{box: other}, log: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
	if err := m2.load(ctx, cfg); err != nil {
		t.Fatalf("a changed key stops the start: %v", err)
	}
	if all := strings.Join(said, "\n"); !strings.Contains(all, "source api is not watched") || !strings.Contains(all, seal.KeyEnv) {
		t.Errorf("a changed key: %s", all)
	}

	// A sealed value moved to another source does not open there.
	moved := conf
	moved.Password = stored.Password
	if _, err := m.secrets.reveal(moved); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("a sealed value moved to another source: %v", err)
	}
}

// TestSecretValue: the one reader of the GitHub and notification secrets
// takes every form either part documents.
func TestSecretValue(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FERRY_TEST_SECRET_VALUE", "from-env")
	c := &Config{dir: dir}
	for in, want := range map[string]string{
		"env:FERRY_TEST_SECRET_VALUE":    "from-env",
		"env:$FERRY_TEST_SECRET_VALUE":   "from-env",
		"env:${FERRY_TEST_SECRET_VALUE}": "from-env",
		"$FERRY_TEST_SECRET_VALUE":       "from-env",
		"file:tok":                       "from-file",
		"as-written":                     "as-written",
	} {
		if got, err := c.secretValue(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"env:${FERRY_TEST_UNSET_SECRET}": "$FERRY_TEST_UNSET_SECRET is not set",
		"file:missing":                   "give a readable file",
	} {
		if _, err := c.secretValue(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", in, err, want)
		}
	}
}
