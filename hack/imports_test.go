package hack

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportsRules runs imports.sh on two fixture modules: one that
// keeps every rule passes, one that breaks each rule once fails and
// names each offending import with the rule it breaks.
func TestImportsRules(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("sh", "imports.sh", "testdata/imports/good").CombinedOutput()
	if err != nil {
		t.Fatalf("the fixture that keeps the rules: %v\n%s", err, out)
	}

	out, err = exec.Command("sh", "imports.sh", "testdata/imports/bad").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("the fixture that breaks the rules: %v, want exit status 1\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{
		"environments imports watcher: environments (layer 2) must not import watcher, pipeline, promote (layer 3): imports go from the composition root down",
		"environments/kube imports environments/embedded: one target never imports another; share code through environments",
		"extra is in no layer: give its folder one in hack/imports.sh",
		"promote imports environments/embedded: only server, cmd and test know a concrete target; ask environments.Target (a test takes one from test/testenv)",
		"promote imports environments/kube (in a test): only server, cmd and test know a concrete target; ask environments.Target (a test takes one from test/testenv)",
		"server imports test/testenv: only tests import test helpers",
		"store imports promote: internal, config, manifests, store (layer 0) must not import watcher, pipeline, promote (layer 3): imports go from the composition root down",
		"imports: the imports above break the rules in hack/imports.sh",
	}
	if !slices.Equal(got, want) {
		t.Errorf("imports.sh on the bad fixture said\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
