package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/test/testreg"
)

// checkRepo writes a repository with one function in fn/ of runtime rt
// and the files given (paths relative to the repository).
func checkRepo(t *testing.T, rt, handler string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["ferry.yaml"] = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: fn}
spec: {runtime: ` + rt + `, handler: ` + handler + `, source: fn}
`
	writeFiles(t, dir, files)
	return dir
}

// listTree is every path under dir, for proving nothing was written.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSyntaxCheck builds Python and Node.js functions whose files do and
// do not parse: a good function builds; a bad one fails before anything
// is pushed, naming every bad file with its line relative to the
// function's folder; a bad file outside the function's folder is not the
// function's business; and the check writes nothing beside the source.
func TestSyntaxCheck(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	cases := []struct {
		rt, tool, handler string
		good, bad         map[string]string
		// want are the file:line the bad function's error names.
		want []string
	}{
		{
			rt: "python", tool: "python3", handler: "main.handle",
			good: map[string]string{
				"fn/main.py":         "from app import util\n\ndef handle(req):\n    return util.greet()\n",
				"fn/app/__init__.py": "",
				"fn/app/util.py":     "def greet():\n    return {'message': 'hi'}\n",
				"outside.py":         "def broken(:\n",
			},
			bad: map[string]string{
				"fn/main.py":         "def handle(req):\n    return {'message': 'hi'}\n",
				"fn/app/__init__.py": "",
				"fn/app/util.py":     "x = 1\n\ndef greet(\n    return 2\n",
				"fn/app/other.py":    "if True\n    pass\n",
				"outside.py":         "def broken(:\n",
			},
			want: []string{"app/other.py:1: ", "app/util.py:3: "},
		},
		{
			rt: "nodejs", tool: "node", handler: "index.handle",
			good: map[string]string{
				"fn/index.js":              "const { greet } = require('./lib/util.cjs');\nexports.handle = async () => greet();\n",
				"fn/lib/util.cjs":          "#!/usr/bin/env node\nmodule.exports.greet = () => ({ message: 'hi' });\nreturn;\n",
				"fn/lib/esm.mjs":           "export const x = 1;\n",
				"fn/node_modules/dep/x.js": "this is not javascript (\n",
				"outside.js":               "function (\n",
			},
			bad: map[string]string{
				"fn/index.js":       "exports.handle = async () => ({ message: 'hi' });\n",
				"fn/lib/broken.mjs": "export const x = ;\n",
				"fn/lib/cjs.js":     "const a = 1;\nlet = = 2;\n",
				// ES module syntax in a .js of a package that does not say
				// its type, with an error after it: node --check alone
				// passes it.
				"fn/lib/esm.js": "import fs from 'node:fs';\n\nconst = 2;\n",
				"outside.js":    "function (\n",
			},
			want: []string{"lib/broken.mjs:1: ", "lib/cjs.js:2: ", "lib/esm.js:3: "},
		},
	}
	// Without a sandbox, and in one when this machine has bubblewrap.
	boxes := map[string]*sandbox.Sandbox{"as-ferry": nil}
	if sb, err := sandbox.Find(t.Context(), sandbox.ModeAuto, sandbox.NetworkNone); err == nil && sb.Enabled() {
		boxes["sandboxed"] = sb
	}
	for box, sb := range boxes {
		for _, c := range cases {
			t.Run(box+"/"+c.rt, func(t *testing.T) {
				testSyntaxCheck(t, reg, sb, c.rt, c.tool, c.handler, c.good, c.bad, c.want)
			})
		}
	}
}

// testSyntaxCheck builds good, which must pass, then bad, which must fail
// naming want.
func testSyntaxCheck(t *testing.T, reg string, sb *sandbox.Sandbox, rt, tool, handler string, good, bad map[string]string, want []string) {
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed", tool)
	}
	b := newTestBuilder(t, reg, "", nil, WithSandbox(sb))

	dir := checkRepo(t, rt, handler, good)
	before := listTree(t, dir)
	src, set := loadRepo(t, dir)
	if _, err := b.Build(t.Context(), src, set.Function("fn"), testInfo); err != nil {
		t.Fatalf("a function whose files parse: %v", err)
	}
	if after := listTree(t, dir); !slices.Equal(before, after) {
		t.Errorf("the build wrote beside the source:\nbefore %v\nafter  %v", before, after)
	}

	dir = checkRepo(t, rt, handler, bad)
	before = listTree(t, dir)
	src, set = loadRepo(t, dir)
	rec := &requests{}
	b = newTestBuilder(t, reg, "", rec, WithSandbox(sb))
	_, err := b.Build(t.Context(), src, set.Function("fn"), testInfo)
	if err == nil {
		t.Fatal("a function with syntax errors built")
	}
	msg := err.Error()
	t.Logf("the error: %s", msg)
	for _, w := range want {
		if strings.Count(msg, w) != 1 {
			t.Errorf("the error does not name %q once: %s", w, msg)
		}
	}
	if strings.Contains(msg, "outside") || strings.Contains(msg, "node_modules") || strings.Contains(msg, "index.js") || strings.Contains(msg, "main.py") {
		t.Errorf("the error names a file that is not checked or parses: %s", msg)
	}
	if !strings.HasPrefix(msg, "function fn: syntax errors in ") || !strings.HasSuffix(msg, "; fix them and build again") {
		t.Errorf("the error's shape: %s", msg)
	}
	if w := rec.writes(); len(w) != 0 {
		t.Errorf("a refused build pushed %v", w)
	}
	if after := listTree(t, dir); !slices.Equal(before, after) {
		t.Errorf("the check wrote beside the source:\nbefore %v\nafter  %v", before, after)
	}
}

// TestSyntaxErrorOne is the message for one bad file, and the check in
// the sandbox when this machine has one.
func TestSyntaxErrorOne(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	reg := testreg.Embedded(t, "").Addr
	sb, err := sandbox.Find(t.Context(), sandbox.ModeAuto, sandbox.NetworkNone)
	if err != nil {
		t.Fatal(err)
	}
	if !sb.Enabled() {
		t.Logf("no sandbox here (%s): the check runs as the test", sb.Note())
	}
	dir := checkRepo(t, "python", "main.handle", map[string]string{
		"fn/main.py": "def handle(req):\n    return {'message': 'hi'}\n\nprint 'hello'\n",
	})
	src, set := loadRepo(t, dir)
	b := newTestBuilder(t, reg, "", nil, WithSandbox(sb))
	_, err = b.Build(context.Background(), src, set.Function("fn"), testInfo)
	if err == nil {
		t.Fatal("a function with a syntax error built")
	}
	const want = "function fn: syntax error: main.py:4: "
	if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, "; fix it and build again") || strings.Count(msg, "main.py") != 1 {
		t.Errorf("error %q, want %q...; fix it and build again", msg, want)
	}
}

// TestSyntaxCheckKey: the check is part of the build's key, so an image
// built without it (or by an older check) is not taken as checked.
func TestSyntaxCheckKey(t *testing.T) {
	dir := checkRepo(t, "python", "main.handle", map[string]string{"fn/main.py": "def handle(req):\n    return {}\n"})
	src, set := loadRepo(t, dir)
	b := newTestBuilder(t, "127.0.0.1:1", "", nil)
	p, err := b.plan(t.Context(), src, set.Function("fn"))
	if err != nil {
		t.Fatal(err)
	}
	line := b.checkerKey(v1alpha1.RuntimePython)
	if !strings.HasPrefix(line, "syntax check "+syntaxCheckVersion) {
		t.Fatalf("the key's line %q", line)
	}
	// Without a sandbox the interpreter is looked up on ferry's PATH.
	t.Setenv("PATH", t.TempDir())
	q, err := b.plan(t.Context(), src, set.Function("fn"))
	if err != nil {
		t.Fatal(err)
	}
	if p.key == q.key {
		t.Errorf("a build without python3 to check it has the key of one checked: %s", p.key)
	}
}

// TestParseNodeError reads node --check's reports.
func TestParseNodeError(t *testing.T) {
	for _, c := range []struct {
		out  string
		line int
		msg  string
	}{
		{"/src/a.js:3\n\n\n\nSyntaxError: Unexpected end of input\n    at wrapSafe (node:internal)\n\nNode.js v20", 3, "Unexpected end of input"},
		{"file:///src/b.mjs:1\nexport const x = ;\n                 ^\n\nSyntaxError: Unexpected token ';'\n", 1, "Unexpected token ';'"},
		{"[stdin]:2\nconst = 2\n      ^\n\nSyntaxError: Unexpected token '='\n", 2, "Unexpected token '='"},
		{"node: bad option\n", 0, "node: bad option"},
	} {
		line, msg := parseNodeError(c.out)
		if line != c.line || msg != c.msg {
			t.Errorf("parseNodeError(%q) = %d %q, want %d %q", c.out, line, msg, c.line, c.msg)
		}
	}
}

// TestSyntaxErrorsCapped: a refused build lists the first errors and
// counts the rest, so a broken tree does not make a message of pages.
func TestSyntaxErrorsCapped(t *testing.T) {
	var e syntaxErrors
	for i := range maxSyntaxErrors + 2 {
		e.Errors = append(e.Errors, syntaxError{File: fmt.Sprintf("m%02d.py", i), Line: i + 1, Msg: "invalid syntax"})
	}
	msg := e.Error()
	if !strings.HasPrefix(msg, fmt.Sprintf("syntax errors in %d files: m00.py:1: invalid syntax; ", maxSyntaxErrors+2)) ||
		!strings.Contains(msg, fmt.Sprintf("m%02d.py", maxSyntaxErrors-1)) || strings.Contains(msg, fmt.Sprintf("m%02d.py", maxSyntaxErrors)) ||
		!strings.HasSuffix(msg, " (and 2 more); fix them and build again") {
		t.Errorf("capped: %s", msg)
	}
}
