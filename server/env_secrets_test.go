package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestConfigEnvOverrides(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
environments:
- name: dev
- name: prod
  env:
    LOG_LEVEL: warn
  functions:
    hello:
      env:
        LOG_LEVEL: info
        DB_PASSWORD: {valueFrom: {secret: prod-db}}
`), "/srv", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all, per := cfg.envOverrides("prod")
	if all["LOG_LEVEL"].Value != "warn" || per["hello"].Env["DB_PASSWORD"].Secret() != "prod-db" {
		t.Errorf("prod's overrides: %+v %+v", all, per)
	}
	if all, per := cfg.envOverrides("dev"); all != nil || per != nil {
		t.Errorf("dev has overrides: %+v %+v", all, per)
	}

	_, err = ParseConfig([]byte(`
environments:
- name: prod
  env:
    PORT: "1"
    "1BAD": x
    BOTH: {value: x, valueFrom: {secret: s}}
    EMPTY: {valueFrom: {secret: ""}}
    ODD: {valueFrom: {secret: "no way"}}
  functions:
    Bad_Fn: {env: {A: b}}
- name: dev
  env:
    TYPO: {valueFrom: {secrett: s}}
    NUMBER: 3
`), "/srv", "ferry-serve.yaml")
	if err == nil {
		t.Fatal("a configuration with bad overrides loaded")
	}
	for _, want := range []string{
		"PORT is set by ferry",
		`"1BAD" is not a valid variable name`,
		"BOTH has both value and valueFrom",
		"EMPTY: valueFrom.secret is missing",
		`ODD: "no way" is not a valid secret name`,
		`environments[1].env.TYPO.valueFrom.secrett: unknown field; did you mean "secret"?`,
		`environments[1].env.NUMBER: expected a string, got the number 3 (quote it: "3")`,
		`"Bad_Fn" is not a function name`,
		"ferry-serve.yaml:4:3: environments[0].env:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}

func newTestSettings(t *testing.T, cfgText string) (*envSettings, *store.SQLite, string) {
	t.Helper()
	cfg, err := ParseConfig([]byte(cfgText), "/srv", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &envSettings{cfg: cfg, store: st, box: box}, st, dir
}

// TestEnvSecretsResolve: a secret goes into the store sealed and comes
// out as the function's variable; overrides stack in order; a missing
// secret is named with the command that sets it, and no value is.
func TestEnvSecretsResolve(t *testing.T) {
	const value = "the-value-9f3e1c"
	s, st, dir := newTestSettings(t, `
environments:
- name: dev
- name: prod
  env: {LOG_LEVEL: warn, SHARED: all}
  functions:
    hello: {env: {LOG_LEVEL: info, DB: {valueFrom: {secret: prod-db}}}}
`)
	ctx := t.Context()
	reloaded := ""
	s.reload = func(_ context.Context, env string) error { reloaded = env; return nil }

	fn := &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "hello"}, Spec: v1alpha1.FunctionSpec{Env: map[string]v1alpha1.EnvValue{
		"LOG_LEVEL": v1alpha1.Plain("debug"),
		"TOKEN":     v1alpha1.SecretRef("api-token"),
	}}}
	_, err := s.Env(ctx, "dev", fn)
	want := "function hello in environment dev needs secret api-token (env TOKEN), not set in dev; set it with: ferry secrets set dev api-token"
	if err == nil || err.Error() != want {
		t.Fatalf("missing secret: %v\nwant: %s", err, want)
	}
	if _, err := s.Env(ctx, "prod", fn); err == nil || !strings.Contains(err.Error(), "secrets prod-db (env DB), api-token (env TOKEN), not set in prod; set them with: ferry secrets set prod prod-db; ferry secrets set prod api-token") {
		t.Errorf("two missing secrets: %v", err)
	}
	// A preview reads no secret, whatever its pull request's code names.
	if _, err := s.Env(ctx, "pr-3-demo", fn); err == nil || !strings.Contains(err.Error(), "env TOKEN names secret api-token, and a preview reads no secrets") {
		t.Errorf("a secret in a preview: %v", err)
	}

	sec, replaced, reload, err := s.Set(ctx, "dev", "api-token", value)
	if err != nil || replaced || reload != nil || sec.Value != "" || reloaded != "dev" {
		t.Fatalf("Set: %+v %v %v %v (reloaded %q)", sec, replaced, reload, err, reloaded)
	}
	row, err := st.GetEnvSecret(ctx, "dev", "api-token")
	if err != nil || !seal.IsSealed(row.Value) || strings.Contains(row.Value, value) {
		t.Fatalf("the stored row is not sealed: %+v %v", row, err)
	}
	env, err := s.Env(ctx, "dev", fn)
	if err != nil || env["TOKEN"] != value || env["LOG_LEVEL"] != "debug" || len(env) != 2 {
		t.Fatalf("dev env: %v %v", env, err)
	}
	for _, n := range []string{"api-token", "prod-db"} {
		if _, _, _, err := s.Set(ctx, "prod", n, n+"-value"); err != nil {
			t.Fatal(err)
		}
	}
	env, err = s.Env(ctx, "prod", fn)
	if err != nil || env["LOG_LEVEL"] != "info" || env["SHARED"] != "all" || env["DB"] != "prod-db-value" || env["TOKEN"] != "api-token-value" {
		t.Errorf("prod env (manifest, then environment, then function): %v %v", env, err)
	}

	// A sealed value moved to another row does not open.
	row.Environment, row.Name = "prod", "prod-db"
	if _, err := st.PutEnvSecret(ctx, row); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Env(ctx, "prod", fn); err == nil || strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("a moved sealed value: %v", err)
	}

	if _, err := s.List(ctx, "qa"); !errors.Is(err, ErrUnknownEnvironment) {
		t.Errorf("an unknown environment: %v", err)
	}
	if _, _, _, err := s.Set(ctx, "dev", "no way", "x"); err == nil || !strings.Contains(err.Error(), "is not a valid secret name") {
		t.Errorf("a bad name: %v", err)
	}
	list, err := s.List(ctx, "prod")
	if err != nil || len(list) != 2 || list[0].Value != "" {
		t.Errorf("List: %+v %v", list, err)
	}
	st.Checkpoint(ctx)
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(value)) {
				t.Errorf("%s holds the secret in the clear", p)
			}
		}
		return err
	})
}

// TestEnvSecretsRedact: what a verification quotes of a function's answer
// has every secret of the environment hidden, and only that
// environment's.
func TestEnvSecretsRedact(t *testing.T) {
	s, _, _ := newTestSettings(t, "environments: [{name: dev}, {name: prod}]\n")
	ctx := t.Context()
	for env, v := range map[string]string{"prod": "prod-value-7a1c", "dev": "dev-value-2b9d"} {
		if _, _, _, err := s.Set(ctx, env, "db", v); err != nil {
			t.Fatal(err)
		}
	}
	got := s.redact(ctx, "prod", "answered 500: 'prod-value-7a1c' 'dev-value-2b9d'")
	if got != "answered 500: '[secret]' 'dev-value-2b9d'" {
		t.Errorf("redacted: %q", got)
	}
	if got := s.redact(ctx, "staging", "nothing to hide"); got != "nothing to hide" {
		t.Errorf("an environment without secrets: %q", got)
	}
}
