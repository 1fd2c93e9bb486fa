package manifests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// TestEnvValueForms loads both forms of an env value, renders them back
// (the reference, as written), and reads the rendered manifest again.
func TestEnvValueForms(t *testing.T) {
	m := pyFunction + fnDoc("s", "runtime: python\nsource: fn\nenv:\n  SIZE: \"128\"\n  DB_PASSWORD: {valueFrom: {secret: db-password}}\n  TOKEN:\n    valueFrom:\n      secret: API_TOKEN")
	set := mustLoad(t, m, nil)
	env := set.Function("s").Spec.Env
	if env["SIZE"] != v1alpha1.Plain("128") || env["DB_PASSWORD"].Secret() != "db-password" || env["TOKEN"].Secret() != "API_TOKEN" {
		t.Fatalf("env = %+v", env)
	}
	out, err := Render(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`SIZE: "128"`, "DB_PASSWORD:\n", "secret: db-password", "secret: API_TOKEN"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered manifest lacks %q:\n%s", want, out)
		}
	}
	again := mustLoad(t, string(out), nil)
	if got := again.Function("s").Spec.Env; got["DB_PASSWORD"].Secret() != "db-password" || got["SIZE"].Value != "128" {
		t.Errorf("rendered manifest read back as %+v", got)
	}
	js, err := RenderJSON(set)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"SIZE":"128"`) && !strings.Contains(string(js), `"SIZE": "128"`) {
		t.Errorf("a plain value is not a JSON string:\n%s", js)
	}
}

// TestEnvValueJSON is the CRD side: both forms survive encoding/json, and
// a value that is neither is refused.
func TestEnvValueJSON(t *testing.T) {
	in := map[string]v1alpha1.EnvValue{"A": v1alpha1.Plain("x"), "B": v1alpha1.SecretRef("b")}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":"x","B":{"valueFrom":{"secret":"b"}}}` {
		t.Fatalf("json = %s", b)
	}
	var out map[string]v1alpha1.EnvValue
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out["A"] != in["A"] || out["B"].Secret() != "b" {
		t.Fatalf("round trip = %+v", out)
	}
	for _, bad := range []string{`{"A":1}`, `{"A":{"valueFrom":{"secret":"b"},"extra":1}}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
	b0 := in["B"]
	cp := b0.DeepCopy()
	cp.ValueFrom.Secret = "changed"
	if in["B"].Secret() != "b" {
		t.Error("DeepCopy shares ValueFrom")
	}
}

// TestEnvAndTriggerEnvironmentRules: each broken rule is one error at the
// line at fault.
func TestEnvAndTriggerEnvironmentRules(t *testing.T) {
	cases := []struct {
		name, manifest, field, at, want string
	}{
		{"both value and valueFrom", fnDoc("s", "runtime: python\nsource: fn\nenv:\n  A: {value: x, valueFrom: {secret: a}}"),
			"spec.env.A", "A: {", "both value and valueFrom"},
		{"empty secret", fnDoc("s", "runtime: python\nsource: fn\nenv:\n  A: {valueFrom: {secret: \"\"}}"),
			"spec.env.A.valueFrom.secret", "A: {", "missing; name the secret"},
		{"bad secret name", fnDoc("s", "runtime: python\nsource: fn\nenv:\n  A: {valueFrom: {secret: \"no way\"}}"),
			"spec.env.A.valueFrom.secret", "no way", "is not a valid secret name"},
		{"unknown key", fnDoc("s", "runtime: python\nsource: fn\nenv:\n  A: {valueFrom: {secrett: a}}"),
			"spec.env.A.valueFrom.secrett", "secrett", "secret"},
		{"unknown source key", fnDoc("s", "runtime: python\nsource: fn\nenv:\n  A: {valueFromm: {secret: a}}"),
			"spec.env.A.valueFromm", "valueFromm", "valueFrom"},
		{"a list", fnDoc("s", "runtime: python\nsource: fn\nenv:\n  A: [x]"),
			"spec.env.A", "A: [x]", "a string or {valueFrom: {secret: NAME}}"},
		{"a number", fnDoc("s", "runtime: python\nsource: fn\nenv:\n  A: 128"),
			"spec.env.A", "A: 128", `quote it: "128"`},
		{"trigger environment name", obj("CronTrigger", "c", "function: fn\nschedule: \"@daily\"\nenvironments: [Prod]"),
			"spec.environments[0]", "Prod", `"Prod" is not a valid environment name`},
		{"trigger environment twice", httpDoc("h", "function: fn\npath: /h\nenvironments: [prod, prod]"),
			"spec.environments[1]", "environments", `"prod" is listed twice`},
		{"nats environment empty", obj("NATSTrigger", "n", "function: fn\ntopic: a\nenvironments: [\"\"]"),
			"spec.environments[0]", "environments", "empty environment name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			manifest := pyFunction + c.manifest
			_, errs := loadFS(t, repo(manifest, nil))
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d:\n%v", len(errs), ErrorList(errs))
			}
			e := errs[0]
			if e.Field != c.field || !strings.Contains(e.Message, c.want) {
				t.Errorf("got %s (field %q), want field %q saying %q", e, e.Field, c.field, c.want)
			}
			if line := strings.Split(manifest, "\n")[e.Line-1]; !strings.Contains(line, c.at) {
				t.Errorf("error at line %d %q, want the line with %q", e.Line, line, c.at)
			}
		})
	}
}

// TestTriggerEnvironmentsLoad: a valid list is kept and rendered.
func TestTriggerEnvironmentsLoad(t *testing.T) {
	set := mustLoad(t, pyFunction+obj("CronTrigger", "nightly", "function: fn\nschedule: \"@daily\"\nenvironments: [prod, staging]"), nil)
	got := set.CronTriggers[0].Spec.Environments
	if strings.Join(got, ",") != "prod,staging" {
		t.Fatalf("environments = %v", got)
	}
	if !v1alpha1.RunsIn(got, "prod") || v1alpha1.RunsIn(got, "dev") || !v1alpha1.RunsIn(nil, "dev") {
		t.Error("RunsIn disagrees with the list")
	}
	out, err := Render(set)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "environments:\n") {
		t.Errorf("rendered manifest lacks environments:\n%s", out)
	}
}

func TestSecretNameProblem(t *testing.T) {
	for _, ok := range []string{"DB_PASSWORD", "db-password", "_x", "a.b", strings.Repeat("a", 63)} {
		if p := SecretNameProblem(ok); p != "" {
			t.Errorf("%q refused: %s", ok, p)
		}
	}
	for _, bad := range []string{"", "1abc", "-a", "a b", "a/b", "..", strings.Repeat("a", 64), "a=b"} {
		if SecretNameProblem(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}
