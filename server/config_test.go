package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/manifests"
)

func TestParseConfigDefaults(t *testing.T) {
	t.Setenv("DEMO_SECRET", "from-the-environment")
	cfg, err := ParseConfig([]byte(`
sources:
- {name: demo, url: ./demo-repo, webhookSecret: $DEMO_SECRET}
tokens:
- {name: alice, token: alice-token-0123456789, roles: [deployer, approver]}
`), "/srv/ferry", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Gateway != "127.0.0.1:8081" || cfg.RegistryListen != "127.0.0.1:8082" || cfg.Registry != "embedded" {
		t.Errorf("addresses: %+v", cfg)
	}
	if cfg.DataDir != filepath.Join("/srv/ferry", ".ferry-data") {
		t.Errorf("dataDir %q, want it beside the file", cfg.DataDir)
	}
	if len(cfg.Environments) != 3 || cfg.Environments[2].Name != "prod" || cfg.Environments[0].Target != "embedded" {
		t.Errorf("environments: %+v", cfg.Environments)
	}
	src, err := cfg.source(cfg.Sources[0])
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps the reference, never the value; reveal reads it.
	if src.URL != "/srv/ferry/demo-repo" || src.Branch != "main" || src.Interval != time.Minute || src.WebhookSecret != "env:$DEMO_SECRET" || !src.FromConfig {
		t.Errorf("source: %+v", src)
	}
	box, err := seal.New(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	clear, err := (&secrets{box: box}).reveal(src)
	if err != nil || clear.WebhookSecret != "from-the-environment" {
		t.Errorf("revealed: %q %v", clear.WebhookSecret, err)
	}
	toks := cfg.tokens()
	if len(toks) != 1 || toks[0].Name != "alice" || len(toks[0].Roles) != 2 {
		t.Errorf("tokens: %+v", toks)
	}
}

func TestParseConfigErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`
listen: 127.0.0.1:8080
gateway: 127.0.0.1:8080
registry: somewhere
sources:
- {name: demo, url: ./a, interval: 10ms}
- {name: demo, url: ./b}
- {name: Bad_Name, url: ./c}
- {name: nourl}
- {name: secret, url: ./d, webhookSecret: $FERRY_TEST_UNSET_VARIABLE}
environments:
- {name: dev}
- {name: dev}
- {name: qa, target: kubernetes}
tokens:
- {name: short, token: abc, roles: [viewer]}
- {name: norole, token: norole-token-0123456789}
- {name: odd, token: odd-token-0123456789, roles: [root]}
`), "/srv", "ferry-serve.yaml")
	if err == nil {
		t.Fatal("a configuration full of mistakes loaded")
	}
	for _, want := range []string{
		"listen and gateway are both 127.0.0.1:8080",
		`registry: "somewhere" is neither embedded nor HOST/REPO`,
		`interval "10ms": give a duration of at least 1s`,
		"sources[1]: a second source named demo",
		`source name "Bad_Name"`,
		"nourl: url is required",
		"$FERRY_TEST_UNSET_VARIABLE is not set",
		"environments[1]: a second environment named dev",
		`environments[2].target: environment qa: unknown target "kubernetes" (use embedded or kube)`,
		"a secret of at least 16 characters",
		"ferry-serve.yaml:17:3: tokens[1].roles: token norole has none; give it roles",
		"ferry-serve.yaml:10:43: sources[4].webhookSecret: $FERRY_TEST_UNSET_VARIABLE is not set",
		"ferry-serve.yaml:7:3: sources[1]: a second source named demo",
		`role "root" is not one of viewer, deployer, approver, admin`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	// Unknown keys are mistakes too.
	if _, err := ParseConfig([]byte("listen: 127.0.0.1:8080\nlisten_addr: x\n"), "/srv", "f.yaml"); err == nil || !strings.Contains(err.Error(), "listen_addr") {
		t.Errorf("an unknown key: %v", err)
	}
}

// TestConfigErrorsReadLikeManifestErrors: every mistake at once, each at
// file:line:column with what to do, from the manifests' strict decoder.
func TestConfigErrorsReadLikeManifestErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`listen: 127.0.0.1:8080
gatway: 127.0.0.1:8081
insecure: yes
sources:
- name: demo
  url: ./demo
  webhookSecret: ${FERRY_TEST_UNSET_SECRET}
  branchh: main
- {name: ftp, url: "ftp://example.com/r.git"}
environments:
- {name: dev, freeze: [{schedule: "0 18 * * 5", duration: forever}]}
listen: 127.0.0.1:9090
`), "/srv", "ferry-serve.yaml")
	list := manifests.Errors(err)
	if list == nil {
		t.Fatalf("not a list of positioned errors: %v", err)
	}
	for _, want := range []string{
		// An unknown key: a hint when one is near, and the known keys.
		`ferry-serve.yaml:2:1: gatway: unknown key; did you mean "gateway"? the keys allowed here are listen, gateway, dataDir`,
		`ferry-serve.yaml:8:3: sources[0].branchh: unknown key; did you mean "branch"? the keys allowed in sources[0] are name, url, branch, interval, webhookSecret`,
		`ferry-serve.yaml:3:11: insecure: expected true or false, got the string "yes"`,
		`ferry-serve.yaml:7:18: sources[0].webhookSecret: $FERRY_TEST_UNSET_SECRET is not set in ferry's environment`,
		`ferry-serve.yaml:9:20: sources[1].url: url "ftp://example.com/r.git": ftp:// is not supported`,
		`ferry-serve.yaml:11:24: environments[0].freeze[0]: environment dev: duration "forever"`,
		`ferry-serve.yaml:12:1: listen: set twice (first at line 1); remove one`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the errors do not say %q:\n%v", want, err)
		}
	}
	// Sorted by position, as manifest errors are.
	for i := 1; i < len(list); i++ {
		if list[i].Line < list[i-1].Line {
			t.Errorf("not in order: %v before %v", list[i-1], list[i])
		}
	}
}

func TestLoadConfigRefusesABinaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ferry")
	if err := os.WriteFile(path, []byte("\x7fELF\x02\x01\x01\x00\x00\x00listen: x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path+":1:1: is a binary file, not YAML") {
		t.Errorf("a binary file: %v", err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("a folder: %v", err)
	}
	// Two documents: the second would be ignored silently otherwise.
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:8080\n---\nlisten: 127.0.0.1:9090\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Errorf("two documents: %v", err)
	}
	// An empty file is every default.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadConfig(path); err != nil || cfg.Listen != "127.0.0.1:8080" {
		t.Errorf("an empty file: %+v %v", cfg, err)
	}
}

func TestConfigResolvesLocalPaths(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "repos", "demo")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "repos"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(`
localRoots: [link]
sources:
- {name: demo, url: link/demo}
`), dir, "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(real)
	if cfg.Sources[0].URL != want {
		t.Errorf("url %q, want it absolute and resolved: %q", cfg.Sources[0].URL, want)
	}
	if root, _ := filepath.EvalSymlinks(filepath.Join(dir, "repos")); len(cfg.LocalRoots) != 1 || cfg.LocalRoots[0] != root {
		t.Errorf("localRoots %q, want %q", cfg.LocalRoots, root)
	}
	_, err = ParseConfig([]byte("localRoots: [missing]\n"), dir, "ferry-serve.yaml")
	if err == nil || !strings.Contains(err.Error(), "ferry-serve.yaml:1:14: localRoots[0]: ") || !strings.Contains(err.Error(), "give an existing folder") {
		t.Errorf("a missing root: %v", err)
	}
}
