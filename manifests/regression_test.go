package manifests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Regression tests for defects found by an adversarial review of the
// loader; each names what used to go wrong.

// Many documents, each just under the per-alias limit, used to add up to
// gigabytes: the expansion budget is now the whole load's.
func TestAliasBudgetIsPerLoad(t *testing.T) {
	one := "---\napiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: c%d}\nspec:\n  function: fn\n  schedule: '@daily'\n  data:\n" +
		"    a: &a [x,x,x,x,x,x,x,x,x,x]\n    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
		"    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n    e: [*d,*d,*d,*d,*d,*d,*d]\n    f: [*c,*c,*c,*c,*c,*c,*c,*c]\n"
	var b strings.Builder
	b.WriteString(pyFunction)
	for i := 0; i < 999; i++ {
		fmt.Fprintf(&b, one, i)
	}
	alloc := allocDuring(func() { wantError(t, nil, b.String(), "ferry.yaml:", "expand the manifests to") })
	if alloc > 256<<20 {
		t.Errorf("refusing it allocated %d MiB", alloc>>20)
	}
}

func TestSyntaxErrorPositions(t *testing.T) {
	cases := []struct{ manifest, prefix, want string }{
		{"apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec:\n  env: {A: \"1\"\n  runtime: python\n",
			"ferry.yaml:5:1:", "did not find expected ',' or '}'"},
		{"a: 1\nb: *nope\n", "ferry.yaml:2:4:", "alias *nope names no anchor"},
		{"a: 1\nb: \"x\x01y\"\n", "ferry.yaml:2:6:", "control character U+0001 is not allowed"},
		{"a: 1\nbb: \xff\n", "ferry.yaml:2:5:", "byte 0xff is not valid UTF-8"},
	}
	for _, c := range cases {
		wantError(t, nil, c.manifest, c.prefix, c.want)
	}
}

// TestOneErrorOnce: an error is reported once, a bad key hides nothing
// else, and a field that failed to decode does not cause others.
func TestOneErrorOnce(t *testing.T) {
	cases := []struct {
		name, manifest string
		want           []string
	}{
		{"key set twice at the top", "apiVersion: ferry.dev/v1alpha1\nkind: Function\nkind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: fn}\n",
			[]string{"ferry.yaml:3:1: kind: set twice"}},
		{"a complex key hides nothing", "apiVersion: ferry.dev/v1alpha1\nkind: Function\n? [a]\n: 1\nmetadata: {name: B}\nspec: {runtime: python2, source: fn, timeout: -5s}\n",
			[]string{"ferry.yaml:3:3: ?: a key must be a plain string", "ferry.yaml:5:18: metadata.name:", "ferry.yaml:6:17: spec.runtime:", "ferry.yaml:6:47: spec.timeout:"}},
		{"a bad method hides no missing function", "apiVersion: ferry.dev/v1alpha1\nkind: HTTPTrigger\nmetadata: {name: h}\nspec: {path: /h, methods: [GET, [POST]]}\n",
			[]string{"ferry.yaml:4:1: spec.function: missing", "ferry.yaml:4:33: spec.methods[1]: expected a string"}},
		{"a bad source is not defaulted and checked", "apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: 5}\n",
			[]string{"ferry.yaml:4:33: spec.source: expected a string, got the number 5"}},
		{"a bad name makes no dangling references", "apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: [x]}\nspec: {runtime: python, source: fn}\n---\napiVersion: ferry.dev/v1alpha1\nkind: HTTPTrigger\nmetadata: {name: h}\nspec: {function: x, path: /h}\n",
			[]string{"ferry.yaml:3:18: metadata.name: expected a string"}},
		{"a stage without a name", "apiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages:\n  - {auto: true}\n  - {name: qa}\n",
			[]string{"ferry.yaml:5:5: spec.stages[0].name: missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := loadFS(t, repo(c.manifest, nil))
			if len(errs) != len(c.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(c.want), ErrorList(errs))
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), c.want[i]) {
					t.Errorf("error %d = %q, want it to start with %q", i, e, c.want[i])
				}
			}
		})
	}
}

func TestStrictValues(t *testing.T) {
	doc := func(spec string) string {
		return pyFunction + fnDoc("b", "runtime: python\nsource: fn\n"+spec)
	}
	for _, c := range []struct{ manifest, want string }{
		{pyFunction + pipelineDoc("stages: [{name: dev, auto: !!bool yes}]"), `expected true or false, got "yes"`},
		{doc("scale: {max: 010}"), "010 has a leading zero"},
		{pyFunction + obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ndata: {n: 08}"), "08 has a leading zero"},
		{pyFunction + obj("CronTrigger", "c", "function: fn\nschedule: '@every -5m'"), "@every takes whole seconds, at least 1s"},
		{pyFunction + obj("CronTrigger", "c", "function: fn\nschedule: '@every 1ms'"), "@every takes whole seconds, at least 1s"},
		{pyFunction + obj("CronTrigger", "c", "function: fn\nschedule: '@every soon'"), "@every needs a duration"},
		{pyFunction + obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ntimeZone: localtime"), `"localtime" is not a time zone`},
		{pyFunction + obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ntimeZone: posixrules"), `"posixrules" is not a time zone`},
		{pyFunction + httpDoc("h", "function: fn\npath: //"), "has an empty segment"},
	} {
		wantError(t, nil, c.manifest, "ferry.yaml:", c.want)
	}
}

func TestAcceptedAfterReview(t *testing.T) {
	mustLoad(t, pyFunction+obj("KafkaTrigger", "k", "function: fn\ntopic: t\nretry: {backoff: 5m}"), nil)
	// What the go command ignores, validation ignores; what it follows
	// (a symlinked file), validation follows.
	mustLoad(t, pyFunction+fnDoc("g", "runtime: go\nsource: gopkg"), map[string]string{
		"gopkg/_old.go":     "this is not Go",
		"gopkg/.hidden.go":  "nor this",
		"gopkg/skip.go":     "//go:build ignore\n\nthis is not Go either",
		"gopkg/windows.go":  "//go:build windows\n\npackage gopkg\n\nfunc broken( {",
		"gopkg/handler.go":  "->../shared/handler.go",
		"shared/handler.go": "package gopkg\n\nfunc Handle() {}\n",
	})
	// A link whose target climbs through another link stays inside.
	mustLoad(t, pyFunction+fnDoc("l", "runtime: python\nsource: l"), map[string]string{
		"p/q/r/main.py": "def handle(e, c): pass\n", "sub": "->p/q", "l": "->sub/../q/r",
	})
}

// A link to a folder inside the repository is walked too: a link in it
// that leads out is refused.
func TestLinkedFolderIsWalked(t *testing.T) {
	wantError(t, map[string]string{
		"fn/lib": "->../shared", "shared/passwd": "->/etc/passwd",
	}, pyFunction, "ferry.yaml:8:11:", `shared/passwd is a symlink to "/etc/passwd", which leads outside the repository; replace the link with the files it points to (reached through the link fn/lib)`)
	// Real symlinks on disk, through os.DirFS, behave the same.
	dir := t.TempDir()
	for p, c := range map[string]string{"ferry.yaml": pyFunction, "fn/main.py": "def handle(e, c): pass\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"fn/lib": "../shared", "shared/up": "../../.."} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	_, errs := loadFS(t, os.DirFS(dir))
	if len(errs) != 1 || !strings.Contains(errs[0].Message, `shared/up is a symlink to "../../.."`) {
		t.Fatalf("got %v", ErrorList(errs))
	}
}

// TestRenderAfterReview: values the review found rendering differently
// for one meaning, or not loading back.
func TestRenderAfterReview(t *testing.T) {
	pairs := [][2]string{
		{pipelineDoc("stages: [{name: dev, soak: 0s}]"), pipelineDoc("stages: [{name: dev}]")},
		{obj("CronTrigger", "c", "function: fn\nschedule: ' 0  3 * * *'"), obj("CronTrigger", "c", "function: fn\nschedule: '0 3 * * *'")},
		{obj("NATSTrigger", "n", "functionSelector:\n  matchExpressions: [{key: app, operator: In, values: [videos, photos]}, {key: app, operator: Exists}]\ntopic: t"),
			obj("NATSTrigger", "n", "functionSelector:\n  matchExpressions: [{key: app, operator: Exists}, {key: app, operator: In, values: [photos, videos, photos]}]\ntopic: t")},
		{obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ndata: [1e20, -0.0, 0x10, 1.50]"),
			obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ndata: [100000000000000000000, 0, 16, 1.5]")},
	}
	for _, p := range pairs {
		a, err := Render(mustLoad(t, pyFunction+p[0], nil))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Render(mustLoad(t, pyFunction+p[1], nil))
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("same meaning, different bytes:\n%s\n---\n%s", a, b)
		}
	}
	// Different values stay different.
	a, _ := Render(mustLoad(t, pyFunction+obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ndata: 0.1000000000000000000001"), nil))
	b, _ := Render(mustLoad(t, pyFunction+obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ndata: 0.1"), nil))
	if string(a) == string(b) {
		t.Error("0.1000000000000000000001 and 0.1 render the same")
	}
	// Strings YAML's block styles cannot hold load back.
	tricky := pyFunction + fnDoc("t", "runtime: python\nsource: fn\nenv: {A: \"\\tfoo\\nbar\", B: \" lead\", C: \"x\\r\\ny\"}") +
		obj("CronTrigger", "c", "function: fn\nschedule: '@daily'\ndata: \"\\tline1\\nline2\"")
	first, err := Render(mustLoad(t, tricky, nil))
	if err != nil {
		t.Fatal(err)
	}
	loaded := mustLoad(t, string(first), nil)
	second, _ := Render(loaded)
	if string(first) != string(second) {
		t.Fatalf("round trip changed:\n%s\n---\n%s", first, second)
	}
	if v := loaded.Function("t").Spec.Env["A"]; v.Value != "\tfoo\nbar" {
		t.Fatalf("env A came back as %q", v)
	}
}

func TestInitAfterReview(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ferry.yml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Init(ctx, dir, "python", "web")
	if err != nil || res.Manifest != "ferry.yml" {
		t.Fatalf("Init into a ferry.yml repository: %+v, %v", res, err)
	}
	for _, kw := range []string{"go", "type", "select"} {
		if _, err := Init(ctx, dir, "go", kw); err != nil {
			t.Errorf("Init go %s: %v", kw, err)
		}
	}
	loadDir(t, dir)
}
