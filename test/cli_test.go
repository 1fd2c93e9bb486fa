package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/saysonce"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// ferryBin is the ferry binary built once for these tests, and root the
// repository root, where the tests run it as a user would.
var ferryBin, root string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	root, err = filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "ferry-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	ferryBin = filepath.Join(tmp, "ferry")
	build := exec.Command("go", "build", "-race", "-ldflags", "-X main.version=v0.0.0-test", "-o", ferryBin, "./cmd/ferry")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building ferry: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

type result struct {
	code           int
	stdout, stderr string
}

// ferry runs the binary in the repository root and returns what it did.
func ferry(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	cmd.Dir = root
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("ferry %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func TestVersion(t *testing.T) {
	r := ferry(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ferry v0.0.0-test (") {
		t.Fatalf("ferry version: %+v", r)
	}
}

func TestValidateExamples(t *testing.T) {
	for _, rt := range v1alpha1.Runtimes {
		r := ferry(t, "validate", "examples/"+rt)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "valid: 1 Function, 1 HTTPTrigger") {
			t.Errorf("ferry validate examples/%s: %+v", rt, r)
		}
	}
}

// TestValidateBadExamples runs ferry validate on every broken repository
// and checks it exits 1 and lists errors as file:line:col: message, with
// paths an editor can open from where the command ran.
func TestValidateBadExamples(t *testing.T) {
	dirs, err := os.ReadDir(filepath.Join(root, "examples", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		cases++
		dir := "examples/bad/" + d.Name()
		r := ferry(t, "validate", dir)
		if r.code != 1 {
			t.Errorf("%s: exit %d, want 1 (%+v)", dir, r.code, r)
			continue
		}
		line := regexp.MustCompile(`^` + regexp.QuoteMeta(dir) + `/(ferry\.yaml|\.ferry/[^:]+):(\d+):(\d+): \S.*$`)
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		for _, l := range lines {
			m := line.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("%s: %q is not file:line:col: message", dir, l)
				continue
			}
			if _, err := os.Stat(filepath.Join(root, dir, m[1])); err != nil {
				t.Errorf("%s: error names %s, which does not exist", dir, m[1])
			}
			saysonce.Check(t, dir, l)
		}
		if r.stdout != "" {
			t.Errorf("%s: printed to stdout on failure: %q", dir, r.stdout)
		}
	}
	if cases < 8 {
		t.Fatalf("only %d bad cases", cases)
	}
	// Several problems in one repository are all listed, not just the first.
	if r := ferry(t, "validate", "examples/bad/many-errors"); strings.Count(r.stderr, "\n") < 5 {
		t.Errorf("many-errors listed only:\n%s", r.stderr)
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	for _, rt := range v1alpha1.Runtimes {
		a := ferry(t, "render", "examples/"+rt)
		b := ferry(t, "render", "examples/"+rt)
		if a.code != 0 || a.stdout == "" || a.stdout != b.stdout {
			t.Fatalf("two renders of examples/%s differ or failed:\n%+v\n%+v", rt, a, b)
		}
		golden, err := os.ReadFile(filepath.Join(root, "manifests", "testdata", "golden", rt+".yaml"))
		if err != nil || string(golden) != a.stdout {
			t.Errorf("ferry render examples/%s differs from its golden file (%v)", rt, err)
		}
		j := ferry(t, "render", "-o", "json", "examples/"+rt)
		var list struct {
			Kind  string
			Items []json.RawMessage
		}
		if err := json.Unmarshal([]byte(j.stdout), &list); err != nil || list.Kind != "List" || len(list.Items) != 3 {
			t.Errorf("render -o json: %v %+v", err, j)
		}
	}
	if r := ferry(t, "render", "-o", "xml", "examples/go"); r.code == 0 || !strings.Contains(r.stderr, "use yaml or json") {
		t.Errorf("render -o xml: %+v", r)
	}
	if r := ferry(t, "render", "examples/bad/bad-runtime"); r.code != 1 || r.stdout != "" {
		t.Errorf("render of a bad repository: %+v", r)
	}
}

// TestInitMakesAWorkingFunction scaffolds a function per runtime with the
// CLI, validates it, and runs the test the scaffold declares, so a new
// user's first function is known to work.
func TestInitMakesAWorkingFunction(t *testing.T) {
	for _, rt := range v1alpha1.Runtimes {
		t.Run(rt, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shop")
			r := ferry(t, "init", dir, "--runtime", rt)
			if r.code != 0 || !strings.Contains(r.stdout, "created function shop ("+rt+")") {
				t.Fatalf("ferry init: %+v", r)
			}
			if r := ferry(t, "validate", dir); r.code != 0 {
				t.Fatalf("the scaffold does not validate: %+v", r)
			}
			runDeclaredTests(t, dir)
			again := ferry(t, "init", dir, "--runtime", rt)
			if again.code != 1 || !strings.Contains(again.stderr, "already exists") {
				t.Errorf("a second init with the same name: %+v", again)
			}
		})
	}
	if r := ferry(t, "init", t.TempDir(), "--runtime", "ruby"); r.code != 1 || !strings.Contains(r.stderr, "use go, python or nodejs") {
		t.Errorf("init --runtime ruby: %+v", r)
	}
	if r := ferry(t, "init", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, `"runtime" not set`) {
		t.Errorf("init without --runtime: %+v", r)
	}
}

// TestExamplesPassTheirTests runs each example's declared test command:
// the examples are real apps whose handlers answer as documented.
func TestExamplesPassTheirTests(t *testing.T) {
	for _, rt := range v1alpha1.Runtimes {
		t.Run(rt, func(t *testing.T) {
			runDeclaredTests(t, filepath.Join(root, "examples", rt))
		})
	}
}

// runDeclaredTests loads the repository in dir and runs every function's
// spec.test.command in its source folder, as the pipeline will.
func runDeclaredTests(t *testing.T, dir string) {
	t.Helper()
	set, err := manifests.Load(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range set.Functions {
		if f.Spec.Test == nil {
			t.Fatalf("%s declares no test", f.Name)
		}
		argv := f.Spec.Test.Command
		ctx, cancel := context.WithTimeout(context.Background(), f.Spec.Test.Timeout.Duration)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = filepath.Join(dir, f.Spec.Source)
		// Go must not reach for the network or the host's settings.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %s failed: %v\n%s", f.Name, strings.Join(argv, " "), err, out)
		}
		if !regexp.MustCompile(`(?m)^(ok |OK$|# pass [1-9])`).Match(out) {
			t.Fatalf("%s: %s ran no passing test:\n%s", f.Name, strings.Join(argv, " "), out)
		}
	}
}
