package server

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if src.URL != "/srv/ferry/demo-repo" || src.Branch != "main" || src.Interval != time.Minute || src.WebhookSecret != "from-the-environment" || !src.FromConfig {
		t.Errorf("source: %+v", src)
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
		`target "kubernetes": only embedded exists`,
		"a secret of at least 16 characters",
		"tokens[1] (norole): give it roles",
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
