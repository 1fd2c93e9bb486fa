package manifests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// wantError loads a repository and checks that the load fails with one
// error whose text starts with prefix and contains want.
func wantError(t *testing.T, files map[string]string, manifest, prefix, want string) {
	t.Helper()
	_, errs := loadFS(t, repo(manifest, files))
	if len(errs) == 0 {
		t.Fatalf("Load succeeded; want an error saying %q", want)
	}
	for _, e := range errs {
		if strings.HasPrefix(e.Error(), prefix) && strings.Contains(e.Error(), want) {
			return
		}
	}
	t.Fatalf("no error starts with %q and says %q; got:\n%v", prefix, want, ErrorList(errs))
}

// allocDuring reports the bytes allocated while f ran.
func allocDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileInput checks that input built to exhaust the loader is
// refused with a clear error, and that refusing it costs little memory:
// each case allocates a bounded amount whatever the input expands to.
func TestHostileInput(t *testing.T) {
	billion := "apiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: lol}\nspec:\n  function: fn\n  schedule: '@daily'\n  data:\n    a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
	for i := 1; i < 12; i++ {
		prev, cur := string(rune('a'+i-1)), string(rune('a'+i))
		billion += fmt.Sprintf("    %s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", cur, cur, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	var many strings.Builder
	for i := 0; i <= MaxObjects; i++ {
		fmt.Fprintf(&many, "---\napiVersion: ferry.dev/v1alpha1\nkind: HTTPTrigger\nmetadata: {name: t%d}\nspec: {function: fn, path: /t%d}\n", i, i)
	}
	deepBlock := "apiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: deep}\nspec:\n  function: fn\n  schedule: '@daily'\n  data:\n"
	for i := 0; i < 80; i++ {
		deepBlock += strings.Repeat("  ", i+2) + fmt.Sprintf("k%d:\n", i)
	}
	cases := []struct {
		name, manifest, prefix, want string
	}{
		{"file over 1 MiB", pyFunction + "# " + strings.Repeat("x", MaxFileSize) + "\n",
			"ferry.yaml:1:1:", "a manifest file may be at most 1 MiB"},
		{"more than 1000 objects", pyFunction + many.String(),
			"ferry.yaml:", "more than 1000 objects"},
		{"billion laughs", pyFunction + "---\n" + billion,
			"ferry.yaml:", "(an alias bomb?)"},
		{"deeply nested flow", pyFunction + "---\n" + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n",
			"ferry.yaml:", "invalid YAML: exceeded max depth"},
		{"nested deeper than the limit", pyFunction + "---\n" + deepBlock,
			"ferry.yaml:", "values nest more than 64 levels deep"},
		{"aliases nest deeper than the limit", pyFunction + "---\nx: &x [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\ny: &y [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
			"ferry.yaml:", "nests values more than 64 levels deep"},
		{"endless empty documents", pyFunction + strings.Repeat("---\n", maxDocuments+1),
			"ferry.yaml:", "more than 10000 YAML documents"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alloc := allocDuring(func() { wantError(t, nil, c.manifest, c.prefix, c.want) })
			// The input is at most 1 MiB; refusing it must not cost more
			// than a small multiple of that.
			if limit := uint64(256 << 20); alloc > limit {
				t.Errorf("refusing it allocated %d MiB; want under %d MiB", alloc>>20, limit>>20)
			}
		})
	}
}

// TestObjectLimitIsInclusive loads exactly MaxObjects objects.
func TestObjectLimitIsInclusive(t *testing.T) {
	var b strings.Builder
	b.WriteString(pyFunction)
	for i := 1; i < MaxObjects; i++ {
		fmt.Fprintf(&b, "---\napiVersion: ferry.dev/v1alpha1\nkind: HTTPTrigger\nmetadata: {name: t%d}\nspec: {function: fn, path: /t%d}\n", i, i)
	}
	set := mustLoad(t, b.String(), nil)
	if got := len(set.Functions) + len(set.HTTPTriggers); got != MaxObjects {
		t.Fatalf("loaded %d objects, want %d", got, MaxObjects)
	}
}

// TestStrictDecoding: every way a document can be malformed is an error
// at the offending key or value.
func TestStrictDecoding(t *testing.T) {
	doc := func(body string) string {
		return pyFunction + "---\n" + body
	}
	cases := []struct {
		name, manifest, prefix, want string
	}{
		{"unknown top-level field", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspecs: {}\n"),
			"ferry.yaml:13:1:", `specs: unknown field; did you mean "spec"?`},
		{"unknown field far from any", doc("apiVersion: ferry.dev/v1alpha1\nkind: HTTPTrigger\nmetadata: {name: b}\nspec: {function: fn, path: /b, zzzzzz: 1}\n"),
			"ferry.yaml:13:32:", "spec.zzzzzz: unknown field; the fields allowed in spec are function, functionSelector, environments, path, methods"},
		{"spec of the wrong type", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec: [runtime]\n"),
			"ferry.yaml:13:7:", "spec: expected a mapping, got a list"},
		{"status is not for manifests", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: fn}\nstatus: {image: x}\n"),
			"ferry.yaml:14:1:", "status is written by ferry"},
		{"namespace is the environment's", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b, namespace: prod}\nspec: {runtime: python, source: fn}\n"),
			"ferry.yaml:12:21:", "the environment chooses the namespace"},
		{"uid is the store's", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b, uid: x}\nspec: {runtime: python, source: fn}\n"),
			"ferry.yaml:12:21:", "metadata.uid: set by whoever stores the object"},
		{"key set twice", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec:\n  runtime: python\n  runtime: go\n  source: fn\n"),
			"ferry.yaml:15:3:", "spec.runtime: set twice (first at line 14)"},
		{"key not a string", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: fn, env: {1: x}}\n"),
			"ferry.yaml:13:43:", "a key must be a string, got the number 1"},
		{"apiVersion missing", doc("kind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: fn}\n"),
			"ferry.yaml:10:1:", "apiVersion: missing; set apiVersion: ferry.dev/v1alpha1"},
		{"apiVersion wrong", doc("apiVersion: ferry.dev/v1\nkind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: fn}\n"),
			"ferry.yaml:10:13:", `apiVersion: the string "ferry.dev/v1" is not supported; use ferry.dev/v1alpha1`},
		{"kind missing", doc("apiVersion: ferry.dev/v1alpha1\nmetadata: {name: b}\n"),
			"ferry.yaml:10:1:", "kind: missing; set one of Function, HTTPTrigger"},
		{"kind unknown", doc("apiVersion: ferry.dev/v1alpha1\nkind: Deployment\nmetadata: {name: b}\n"),
			"ferry.yaml:11:7:", `unknown kind "Deployment"; ferry knows Function`},
		{"document not a mapping", doc("- a\n- b\n"),
			"ferry.yaml:10:1:", "expected an object with apiVersion, kind, metadata and spec, got a list"},
		{"yes is not a boolean", doc("apiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages: [{name: dev, auto: yes}]\n"),
			"ferry.yaml:13:30:", `spec.stages[0].auto: expected true or false, got the string "yes"`},
		{"number out of range", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: fn, scale: {max: 99999999999}}\n"),
			"ferry.yaml:13:50:", "spec.scale.max: 99999999999 is out of range"},
		{"number not whole", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: b}\nspec: {runtime: python, source: fn, scale: {max: 1.5}}\n"),
			"ferry.yaml:13:50:", "spec.scale.max: expected a whole number, got the number 1.5"},
		{"data with no JSON form", doc("apiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: c}\nspec: {function: fn, schedule: '@daily', data: {x: .nan}}\n"),
			"ferry.yaml:13:52:", ".nan has no JSON form"},
		{"data with a binary tag", doc("apiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: c}\nspec: {function: fn, schedule: '@daily', data: !!binary aGk=}\n"),
			"ferry.yaml:13:48:", "cannot be written as JSON"},
		{"alias to itself", doc("apiVersion: ferry.dev/v1alpha1\nkind: CronTrigger\nmetadata: {name: c}\nspec: &s {function: fn, schedule: '@daily', data: *s}\n"),
			"ferry.yaml:", ""},
		{"list where a string goes", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: [b]}\nspec: {runtime: python, source: fn}\n"),
			"ferry.yaml:12:18:", "metadata.name: expected a string, got a list"},
		{"syntax error", doc("apiVersion: ferry.dev/v1alpha1\nkind: Function\n  metadata: x\n"),
			"ferry.yaml:", "invalid YAML"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, nil, c.manifest, c.prefix, c.want)
		})
	}
}

// TestDiscovery covers where manifests are found and how manifest files
// themselves are confined to the repository.
func TestDiscovery(t *testing.T) {
	t.Run(".ferry folder alone", func(t *testing.T) {
		set := mustLoad(t, "", map[string]string{
			".ferry/a.yaml":     pyFunction,
			".ferry/b.yml":      httpDoc("h", "function: fn\npath: /h"),
			".ferry/README.md":  "ignored",
			".ferry/sub/c.yaml": "not: [read",
		})
		if len(set.Functions) != 1 || len(set.HTTPTriggers) != 1 {
			t.Fatalf("loaded %d functions and %d triggers, want 1 and 1", len(set.Functions), len(set.HTTPTriggers))
		}
		if got := strings.Join(set.Files, ","); got != ".ferry/a.yaml,.ferry/b.yml" {
			t.Errorf("Files = %s", got)
		}
	})
	t.Run("ferry.yaml and .ferry together", func(t *testing.T) {
		set := mustLoad(t, pyFunction, map[string]string{".ferry/h.yaml": httpDoc("h", "function: fn\npath: /h")})
		if len(set.Files) != 2 || set.Origin(set.HTTPTriggers[0]).File != ".ferry/h.yaml" {
			t.Fatalf("files %v, trigger from %v", set.Files, set.Origin(set.HTTPTriggers[0]))
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		wantError(t, nil, "", "ferry.yaml:1:1:", "no manifest found")
	})
	t.Run("both ferry.yaml and ferry.yml", func(t *testing.T) {
		wantError(t, map[string]string{"ferry.yml": pyFunction}, pyFunction, "ferry.yml:1:1:", "both ferry.yaml and ferry.yml exist")
	})
	t.Run("ferry.yaml is a folder", func(t *testing.T) {
		wantError(t, map[string]string{"ferry.yaml/x": "y"}, "", "ferry.yaml:1:1:", "is a folder")
	})
	t.Run("ferry.yaml links outside", func(t *testing.T) {
		wantError(t, map[string]string{"ferry.yaml": "->../../etc/passwd"}, "", "ferry.yaml:1:1:", "leads outside the repository")
	})
	t.Run(".ferry links outside", func(t *testing.T) {
		wantError(t, map[string]string{".ferry": "->/etc"}, pyFunction, ".ferry:1:1:", "leads outside the repository")
	})
	t.Run("manifest linked inside", func(t *testing.T) {
		mustLoad(t, "", map[string]string{"ferry.yaml": "->deploy/ferry.yaml", "deploy/ferry.yaml": pyFunction})
	})
	t.Run("too many files in .ferry", func(t *testing.T) {
		files := map[string]string{}
		for i := 0; i <= MaxFiles; i++ {
			files[fmt.Sprintf(".ferry/%04d.yaml", i)] = ""
		}
		wantError(t, files, pyFunction, ".ferry:1:1:", "more than 1000 manifest files")
	})
}

// TestExamplesValidate loads the three example apps from disk.
func TestExamplesValidate(t *testing.T) {
	for _, rt := range v1alpha1.Runtimes {
		t.Run(rt, func(t *testing.T) {
			set, errs := loadFS(t, os.DirFS(filepath.Join("..", "examples", rt)))
			if errs != nil {
				t.Fatalf("examples/%s: %v", rt, ErrorList(errs))
			}
			if len(set.Functions) != 1 || set.Functions[0].Name != "hello" || set.Functions[0].Spec.Runtime != rt {
				t.Fatalf("want one %s function hello, got %+v", rt, set.Functions)
			}
			if len(set.HTTPTriggers) != 1 || set.HTTPTriggers[0].Spec.Path != "/hello" || set.HTTPTriggers[0].Spec.Function != "hello" {
				t.Fatalf("want an HTTPTrigger on /hello calling hello, got %+v", set.HTTPTriggers)
			}
		})
	}
}

// badExamples is what each broken repository in examples/bad must report:
// the start of the first error (file:line:col: field) and part of it.
var badExamples = map[string][2]string{
	"alias-bomb":          {"ferry.yaml:16:12: ", "(an alias bomb?)"},
	"bad-cron":            {"ferry.yaml:15:13: spec.schedule: ", "is not a cron schedule"},
	"bad-runtime":         {"ferry.yaml:6:12: spec.runtime: ", `"python2" is not supported (use go, python or nodejs)`},
	"dangling-trigger":    {"ferry.yaml:14:13: spec.function: ", `no Function named "helo" (did you mean "hello"?)`},
	"deep-nesting":        {"ferry.yaml:7:71: ", "values nest more than 64 levels deep"},
	"duplicate-http-path": {"ferry.yaml:23:9: spec.path: ", `POST /hello is already routed by HTTPTrigger "hello"`},
	"escaping-source":     {"ferry.yaml:7:11: spec.source: ", "leaves the repository"},
	"invalid-yaml":        {"ferry.yaml:7:1: ", "invalid YAML"},
	"many-errors":         {"ferry.yaml:4:9: metadata.name: ", `"Hello_World" is not a valid name`},
	"missing-handler":     {"ferry.yaml:7:12: spec.handler: ", "needs app.py or app/__init__.py in hello"},
	"stage-cycle":         {"ferry.yaml:15:18: spec.stages[2].from: ", "loop (staging <- prod <- staging)"},
	"symlink-escape":      {"ferry.yaml:7:11: spec.source: ", `hello/up is a symlink to "../../", which leads outside the repository`},
	"unknown-field":       {"ferry.yaml:8:3: spec.memroy: ", `unknown field; did you mean "memory"?`},
	"unknown-kind":        {"ferry.yaml:2:7: kind: ", `unknown kind "Functoin"; did you mean Function?`},
	"wrong-type":          {"ferry.yaml:9:11: spec.env.SIZE: ", `expected a string, got the number 128 (quote it: "128")`},
}

// TestBadExamples loads every broken repository in examples/bad and
// checks it fails where and how its README says.
func TestBadExamples(t *testing.T) {
	dirs, err := os.ReadDir(filepath.Join("..", "examples", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		seen++
		want, ok := badExamples[d.Name()]
		if !ok {
			t.Errorf("examples/bad/%s has no expectation in badExamples", d.Name())
			continue
		}
		t.Run(d.Name(), func(t *testing.T) {
			_, errs := loadFS(t, os.DirFS(filepath.Join("..", "examples", "bad", d.Name())))
			if len(errs) == 0 {
				t.Fatal("loaded without error")
			}
			first := errs[0].Error()
			if !strings.HasPrefix(first, want[0]) || !strings.Contains(first, want[1]) {
				t.Errorf("first error %q; want it to start with %q and say %q", first, want[0], want[1])
			}
		})
	}
	if seen < 8 || seen != len(badExamples) {
		t.Errorf("examples/bad holds %d cases, badExamples %d; want the same, at least 8", seen, len(badExamples))
	}
}

func TestLoadHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, repo(pyFunction, nil)); err != context.Canceled {
		t.Fatalf("Load with a cancelled context = %v, want context.Canceled", err)
	}
}
