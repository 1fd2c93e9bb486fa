package server

import (
	"strings"
	"testing"
	"time"
)

// TestConfigGates: an environment's gate keys become the promoter's
// floor; prod keeps one approval unless it says auto: true.
func TestConfigGates(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
environments:
- {name: dev}
- name: staging
  auto: false
  verify: [{http: {path: /healthz}}, {name: ping, event: {function: hello}}]
  soak: 30s
- name: prod
  approval: {required: 2, approvers: [group:sre, erin, erin], expireAfter: 24h}
  from: [staging]
- {name: qa, auto: true}
- name: prod-eu
  verify: [{http: {path: /healthz, method: head}}]
`), "/srv/ferry", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	envs := cfg.gatedEnvironments()
	if envs[0].Floor != nil || envs[3].Floor == nil || envs[3].Floor.Approval != nil || envs[3].Floor.NoAuto {
		t.Errorf("dev %+v, qa %+v: want no floor and an open one", envs[0].Floor, envs[3].Floor)
	}
	st := envs[1].Floor
	if !st.NoAuto || st.Approval != nil || len(st.Verify) != 2 || st.Soak != 30*time.Second {
		t.Fatalf("staging's floor: %+v", st)
	}
	if h := st.Verify[0]; h.Name != "environments[staging].verify[0]" || h.HTTP.Method != "GET" || h.HTTP.ExpectStatus != 200 {
		t.Errorf("staging's first check: %+v %+v", h, h.HTTP)
	}
	if ev := st.Verify[1]; ev.Name != "ping" || ev.Event.Type != "dev.ferry.verify" || ev.Event.ExpectStatus != 200 {
		t.Errorf("staging's second check: %+v %+v", ev, ev.Event)
	}
	prod := envs[2].Floor
	if a := prod.Approval; a == nil || *a.Required != 2 || strings.Join(a.Approvers, ",") != "erin,group:sre" || a.ExpireAfter.Duration != 24*time.Hour || a.SelfApproval {
		t.Errorf("prod's approval floor: %+v", prod.Approval)
	}
	if strings.Join(prod.From, ",") != "staging" {
		t.Errorf("prod's from: %v", prod.From)
	}
	// A prod that only adds checks keeps its one approval.
	if a := envs[4].Floor.Approval; envs[4].Name != "prod-eu" || a != nil {
		t.Errorf("prod-eu is not prod: %+v", a)
	}
	cfg, err = ParseConfig([]byte("environments:\n- {name: prod, verify: [{http: {path: /healthz}}]}\n"), "/srv/ferry", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.gatedEnvironments()[0].Floor.Approval; a == nil || *a.Required != 1 {
		t.Errorf("prod with checks only: approval floor %+v, want one approval", a)
	}
}

func TestConfigGatesErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`
environments:
- name: dev
  from: [dev, nowhere]
- name: prod
  auto: true
  approval: {required: 0, approvers: ["", "group:"], expireAfter: soon}
  verify: [{http: {path: healthz}}, {}, {http: {path: /a}, event: {function: f}}, {http: {path: /a, expect: 200}}]
  soak: forever
`), "/srv/ferry", "ferry-serve.yaml")
	if err == nil {
		t.Fatal("a configuration with bad gates was taken")
	}
	for _, want := range []string{
		"ferry-serve.yaml:4:10: environments[0].from[0] is dev itself",
		`environments[0].from[1]: no environment "nowhere" is configured`,
		"environments[1].approval.required is 0: give 1 or more",
		`environments[1].approval.approvers[0] ""`,
		`environments[1].approval.approvers[1] "group:"`,
		`environments[1].approval.expireAfter "soon"`,
		"environments[1].auto is true, and approval is set",
		`environments[1].verify[0]: http.path "healthz"`,
		"environments[1].verify[1]: says nothing to check",
		"environments[1].verify[2]: has both http and event",
		`environments[1].verify[3]: json: unknown field "expect"`,
		`environments[1].soak "forever"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}
