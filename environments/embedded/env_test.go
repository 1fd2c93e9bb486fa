package embedded

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/internal/saysonce"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

func TestForEnvironment(t *testing.T) {
	meta := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: n} }
	set := &manifests.Set{
		Functions: []*v1alpha1.Function{{ObjectMeta: meta("f")}},
		HTTPTriggers: []*v1alpha1.HTTPTrigger{
			{ObjectMeta: meta("everywhere")},
			{ObjectMeta: meta("prod-only"), Spec: v1alpha1.HTTPTriggerSpec{Environments: []string{"prod"}}},
		},
		CronTriggers: []*v1alpha1.CronTrigger{
			{ObjectMeta: meta("nightly"), Spec: v1alpha1.CronTriggerSpec{Environments: []string{"staging", "prod"}}},
		},
		NATSTriggers:  []*v1alpha1.NATSTrigger{{ObjectMeta: meta("n"), Spec: v1alpha1.TopicTriggerSpec{Environments: []string{"prod"}}}},
		KafkaTriggers: []*v1alpha1.KafkaTrigger{{ObjectMeta: meta("k")}},
	}
	names := func(s *manifests.Set) string {
		var out []string
		for _, t := range s.HTTPTriggers {
			out = append(out, "http/"+t.Name)
		}
		for _, t := range s.CronTriggers {
			out = append(out, "cron/"+t.Name)
		}
		for _, t := range s.NATSTriggers {
			out = append(out, "nats/"+t.Name)
		}
		for _, t := range s.KafkaTriggers {
			out = append(out, "kafka/"+t.Name)
		}
		return strings.Join(out, " ")
	}
	for env, want := range map[string]string{
		"dev":     "http/everywhere kafka/k",
		"staging": "http/everywhere cron/nightly kafka/k",
		"prod":    "http/everywhere http/prod-only cron/nightly nats/n kafka/k",
	} {
		got := set.In(env)
		if names(got) != want || len(got.Functions) != 1 {
			t.Errorf("%s: %s, want %s (and the function)", env, names(got), want)
		}
	}
	if names(set) != "http/everywhere http/prod-only cron/nightly nats/n kafka/k" {
		t.Errorf("forEnvironment changed its input: %s", names(set))
	}
}

func TestPlainEnvRefusesSecrets(t *testing.T) {
	f := &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "f"}, Spec: v1alpha1.FunctionSpec{Env: map[string]v1alpha1.EnvValue{
		"A": v1alpha1.Plain("1"),
	}}}
	env, _, err := plainEnv(t.Context(), f)
	if err != nil || env["A"] != "1" || len(env) != 1 {
		t.Fatalf("plain env: %v %v", env, err)
	}
	f.Spec.Env["B"] = v1alpha1.SecretRef("b")
	_, _, err = plainEnv(t.Context(), f)
	if err == nil || !strings.Contains(err.Error(), "env B names secret b, but this ferry keeps no secrets") {
		t.Fatalf("a secret without a store: %v", err)
	}
	saysonce.Check(t, "a secret without a store", err.Error())
}

// TestInstanceKeyFollowsEnv: a changed value (a secret set again) makes a
// new instance; the key holds no value.
func TestInstanceKeyFollowsEnv(t *testing.T) {
	f := &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: "f"}}
	a := instanceKey(f, map[string]string{"DB": "one-value"})
	b := instanceKey(f, map[string]string{"DB": "two-value"})
	c := instanceKey(f, map[string]string{"DB": "one-value"})
	if a == b || a != c {
		t.Errorf("keys: %q %q %q", a, b, c)
	}
	if strings.Contains(a, "one-value") {
		t.Errorf("the key holds the value: %q", a)
	}
	if instanceKey(f, map[string]string{"A": "BC"}) == instanceKey(f, map[string]string{"AB": "C"}) {
		t.Error("two different envs share a key")
	}
}
