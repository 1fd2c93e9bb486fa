package embedded

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// EnvResolver returns the variables a function's process starts with in
// one environment: its spec.env with the environment's overrides applied
// and every secret reference replaced by the secret's value. It is called
// at each Apply, before anything starts, so a secret that is missing fails
// the Apply while the previous release keeps serving. Its error must name
// the secret, never a value. secrets are the values of vars that came from
// secrets: the function's log (and so a failed start's message, which
// quotes it) shows each as redactedSecret.
type EnvResolver func(ctx context.Context, f *v1alpha1.Function) (vars map[string]string, secrets []string, err error)

// plainEnv is the resolver of a target given none (ferry run, tests): the
// plain values, and a clear refusal of a secret, since there is no store
// to read one from.
func plainEnv(_ context.Context, f *v1alpha1.Function) (map[string]string, []string, error) {
	for _, k := range slices.Sorted(maps.Keys(f.Spec.Env)) {
		if s := f.Spec.Env[k].Secret(); s != "" {
			return nil, nil, fmt.Errorf("function %s: env %s names secret %s, but this ferry keeps no secrets; deploy through ferry serve (ferry secrets set ENV %s), or give the variable a plain value here", f.Name, k, s, s)
		}
	}
	return f.Spec.PlainEnv(), nil, nil
}

// redactedSecret stands for a secret's value in a function's log.
const redactedSecret = "[secret]"

// minRedacted is the shortest secret value the log redacts: hiding every
// "1" of a log would make it unreadable and say what the secret is all
// the same.
const minRedacted = 4

// RedactSecrets returns text with every secret of secrets hidden as a
// function's log hides them, for what quotes a function's answer outside
// the log (a verification's reason).
func RedactSecrets(text string, secrets []string) string {
	if r := secretRedactor(secrets); r != nil {
		return r.Replace(text)
	}
	return text
}

// secretRedactor replaces every secret of secrets in a line with
// redactedSecret; nil when there is none to replace. A secret of several
// lines (a key, a certificate) has each line replaced too, since a log
// line never holds more than one of them.
func secretRedactor(secrets []string) *strings.Replacer {
	var vs []string
	add := func(s string) {
		if len(s) >= minRedacted && !slices.Contains(vs, s) {
			vs = append(vs, s)
		}
	}
	for _, s := range secrets {
		add(s)
		if strings.Contains(s, "\n") {
			for _, l := range strings.Split(s, "\n") {
				add(strings.TrimSuffix(l, "\r"))
			}
		}
	}
	if len(vs) == 0 {
		return nil
	}
	// why: the Replacer tries its pairs in order at each position, so a
	// secret that starts with another must come first to be hidden whole.
	slices.SortFunc(vs, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(vs))
	for _, s := range vs {
		pairs = append(pairs, s, redactedSecret)
	}
	return strings.NewReplacer(pairs...)
}

// envDigest stands for a resolved env in an instance's key: two instances
// whose variables differ in any value are not interchangeable, and the key
// holds no value itself.
func envDigest(env map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(env[k]), env[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// warnPlacement reports each trigger of rel whose environments name none
// the host serves: it runs nowhere, which is allowed (a repository may be
// served by more than one ferry, with other environments) but is most
// likely a typo. A warning, not a refusal, since the repository cannot know
// the server's environments.
func (t *Target) warnPlacement(rel *build.Release) {
	if t.cfg.Known == nil || t.cfg.Log == nil {
		return
	}
	known := t.cfg.Known()
	if len(known) == 0 {
		return
	}
	check := func(kind, name string, envs []string) {
		if len(envs) == 0 {
			return
		}
		for _, e := range envs {
			if slices.Contains(known, e) {
				return
			}
		}
		t.cfg.Log("release %s: %s %s runs in %v, none of which this ferry serves (%v); it runs nowhere", rel.Digest, kind, name, envs, known)
	}
	for _, tr := range rel.Set.HTTPTriggers {
		check("HTTPTrigger", tr.Name, tr.Spec.Environments)
	}
	for _, tr := range rel.Set.CronTriggers {
		check("CronTrigger", tr.Name, tr.Spec.Environments)
	}
	for _, tr := range rel.Set.NATSTriggers {
		check("NATSTrigger", tr.Name, tr.Spec.Environments)
	}
	for _, tr := range rel.Set.KafkaTriggers {
		check("KafkaTrigger", tr.Name, tr.Spec.Environments)
	}
}
