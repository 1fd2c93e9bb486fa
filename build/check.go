package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// syntaxCheckVersion changes whenever the check would refuse sources it
// passed before. It is in every Python and Node.js build's key, so an
// image made before the check (or a laxer one) is not reused unchecked.
const syntaxCheckVersion = "1"

const (
	// maxSyntaxErrors bounds how many errors a refused build lists; the
	// rest are counted.
	maxSyntaxErrors = 10
	// syntaxCheckTimeout bounds one check: parsing even thousands of
	// files takes seconds, so only a hung interpreter reaches it.
	syntaxCheckTimeout = 5 * time.Minute
	// maxCheckOutput bounds what a check's output may hold.
	maxCheckOutput = 1 << 20
	// checkDir is where a sandboxed check sees its copy of the source.
	checkDir = "/src"
)

// pythonCheck compiles every file named on stdin (NUL-separated, relative
// to argv[1]) with compile(), which parses and makes byte-code in memory
// but runs nothing, and prints "INDEX\tLINE\tMESSAGE" per file that fails.
// It imports nothing but sys, so no file of the repository is ever loaded
// as a module (python3 -I does not look in the working folder either).
const pythonCheck = `import sys
root = sys.argv[1]
for i, name in enumerate(sys.stdin.buffer.read().split(b"\0")):
    if not name:
        continue
    rel = name.decode("utf-8", "surrogateescape")
    try:
        with open(root + "/" + rel, "rb") as f:
            compile(f.read(), rel, "exec", dont_inherit=True)
        continue
    except SyntaxError as e:
        line, msg = e.lineno or 0, e.msg
    except Exception as e:
        line, msg = 0, "%s: %s" % (type(e).__name__, e)
    sys.stdout.write("%d\t%d\t%s\n" % (i, line, " ".join(str(msg).split())))
`

// nodeCheck runs node --check on every file named on stdin (as
// pythonCheck) and prints {"i": INDEX, "out": STDERR} per file that fails.
// node --check passes a .js file that it takes for an ES module (import
// or export in a package that does not say its type) without parsing it
// as one; such a file, which does not compile as CommonJS, is checked
// again as a module. new vm.Script compiles and runs nothing.
const nodeCheck = `const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const vm = require('node:vm');
const root = process.argv[1];
fs.readFileSync(0, 'utf8').split('\0').forEach((rel, i) => {
  if (!rel) return;
  const file = root + '/' + rel;
  let r = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
  if (r.status === 0 && rel.endsWith('.js')) {
    const src = fs.readFileSync(file, 'utf8');
    try {
      new vm.Script('(function (exports, require, module, __filename, __dirname) {' + src.replace(/^#!.*/, '') + '\n})');
    } catch (e) {
      r = spawnSync(process.execPath, ['--input-type=module', '--check'], { input: src, encoding: 'utf8' });
    }
  }
  if (r.status !== 0) process.stdout.write(JSON.stringify({ i, out: r.stderr || String(r.error) }) + '\n');
});
`

// syntaxError is one file that does not parse.
type syntaxError struct {
	File string // relative to the function's folder
	Line int    // 0: not known
	Msg  string
}

func (e syntaxError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// syntaxErrors is a build refused because files of the function do not
// parse. Retrying cannot help: the source must change.
type syntaxErrors struct {
	Errors []syntaxError
}

func (e *syntaxErrors) Error() string {
	shown := e.Errors
	if len(shown) > maxSyntaxErrors {
		shown = shown[:maxSyntaxErrors]
	}
	parts := make([]string, len(shown))
	for i, s := range shown {
		parts[i] = s.String()
	}
	list := strings.Join(parts, "; ")
	if more := len(e.Errors) - len(shown); more > 0 {
		list += fmt.Sprintf(" (and %d more)", more)
	}
	if len(e.Errors) == 1 {
		return "syntax error: " + list + "; fix it and build again"
	}
	return fmt.Sprintf("syntax errors in %d files: %s; fix them and build again", len(e.Errors), list)
}

// checkTool is the interpreter that checks a runtime's files.
func checkTool(rt string) string {
	switch rt {
	case v1alpha1.RuntimePython:
		return "python3"
	case v1alpha1.RuntimeNodeJS:
		return "node"
	}
	return ""
}

// checkedFiles are the files of the function the check parses: every
// Python module; every JavaScript file but those of node_modules folders,
// which are dependencies' code, not the function's.
func checkedFiles(rt string, files []sourceFile) []string {
	var out []string
	for _, f := range files {
		if f.Dir || strings.ContainsRune(f.Path, 0) {
			continue
		}
		switch rt {
		case v1alpha1.RuntimePython:
			if strings.HasSuffix(f.Path, ".py") {
				out = append(out, f.Path)
			}
		case v1alpha1.RuntimeNodeJS:
			if strings.HasPrefix(f.Path, "node_modules/") || strings.Contains(f.Path, "/node_modules/") {
				continue
			}
			if strings.HasSuffix(f.Path, ".js") || strings.HasSuffix(f.Path, ".mjs") || strings.HasSuffix(f.Path, ".cjs") {
				out = append(out, f.Path)
			}
		}
	}
	return out
}

// sandbox is what checks run in: the one given, else none (as ferry,
// with the installers' clean environment).
func (b *builder) sandbox() *sandbox.Sandbox {
	if b.opts.sandbox != nil {
		return b.opts.sandbox
	}
	return &sandbox.Sandbox{}
}

// checkerPath is where the check's interpreter is looked up: the fixed
// system PATH in the sandbox (as the embedded target runs functions),
// ferry's own PATH without one.
func (b *builder) checkerPath() string {
	if b.sandbox().Enabled() {
		return sandbox.SystemPath
	}
	return os.Getenv("PATH")
}

// hasChecker reports whether rt's interpreter is there to check with.
func (b *builder) hasChecker(rt string) bool {
	tool := checkTool(rt)
	for _, dir := range filepath.SplitList(b.checkerPath()) {
		if dir == "" || tool == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, tool)); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return true
		}
	}
	return false
}

// checkerKey is the build key's line for the check: which interpreter
// checks, or that none can. A machine without the interpreter builds
// unchecked (an image on a base brings its own); the key says so, so a
// build on a machine that has it checks again.
func (b *builder) checkerKey(rt string) string {
	if b.hasChecker(rt) {
		return fmt.Sprintf("syntax check %s %s", syntaxCheckVersion, checkTool(rt))
	}
	return fmt.Sprintf("syntax check %s skipped: no %s", syntaxCheckVersion, checkTool(rt))
}

// checkSyntax parses every file checkedFiles names, in the sandbox, on a
// copy of the source in work: the source is the repository's, so the
// interpreter sees nothing of ferry's (environment, data folder), and
// nothing is written beside the source (no byte-code caches).
func (b *builder) checkSyntax(ctx context.Context, p *plan, work string) error {
	tool := checkTool(p.runtime)
	files := checkedFiles(p.runtime, p.files)
	if len(files) == 0 || !b.hasChecker(p.runtime) {
		return nil
	}
	sb := b.sandbox()
	// The copy holds what is parsed, and the package.json files that say
	// whether a .js file is an ES module.
	checked := map[string]bool{}
	for _, f := range files {
		checked[f] = true
	}
	var copied []sourceFile
	for _, f := range p.files {
		if checked[f.Path] || (!f.Dir && path.Base(f.Path) == "package.json") {
			copied = append(copied, f)
		}
	}
	dir := filepath.Join(work, "check-src")
	if err := copyToHost(p.src, copied, dir); err != nil {
		return err
	}
	if sb.Enabled() {
		// why: the sandbox's user may be another than ferry's (ferry
		// as root), and must read the copy whatever the umask made it.
		if err := readableTree(dir); err != nil {
			return err
		}
	}
	var args []string
	if tool == "python3" {
		// -I: no PYTHON* variables, no user site, not the working folder
		// on sys.path; -B: no byte-code written.
		args = []string{"-I", "-B", "-c", pythonCheck, checkDir}
	} else {
		args = []string{"-e", nodeCheck, checkDir}
	}
	env := []string{"PATH=" + sandbox.SystemPath, "LANG=C.UTF-8", "HOME=/tmp"}
	if !sb.Enabled() {
		env = installerEnv(os.Environ())
	}
	cctx, cancel := context.WithTimeout(ctx, syntaxCheckTimeout)
	defer cancel()
	sc, err := sb.CommandContext(cctx, sandbox.Spec{
		Program: tool, Args: args, Path: b.checkerPath(), Env: env,
		Binds: []sandbox.Bind{{Src: dir, Dest: checkDir}},
	})
	if err != nil {
		return fmt.Errorf("checking the syntax with %s: %w", tool, err)
	}
	cmd := sc.Cmd
	cmd.Stdin = strings.NewReader(strings.Join(files, "\x00"))
	var out, errOut limitedBuffer
	out.max, errOut.max = maxCheckOutput, maxInstallOutput
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// why: a session of its own, as the sandbox needs, which is also one
	// group a cancelled build kills whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = installKillWait
	if err := sc.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cctx.Err() != nil {
			return fmt.Errorf("checking the syntax with %s took longer than %s", tool, syntaxCheckTimeout)
		}
		return fmt.Errorf("checking the syntax with %s failed (%v): %s", tool, err, strings.TrimSpace(errOut.String()))
	}
	errs, err := parseCheck(tool, out.String(), files)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return &syntaxErrors{Errors: errs}
	}
	return nil
}

// parseCheck reads pythonCheck's or nodeCheck's output.
func parseCheck(tool, out string, files []string) ([]syntaxError, error) {
	var errs []syntaxError
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		var i int
		var se syntaxError
		if tool == "python3" {
			f := strings.SplitN(line, "\t", 3)
			if len(f) != 3 {
				return nil, fmt.Errorf("checking the syntax with %s: cannot read %q", tool, line)
			}
			i, _ = strconv.Atoi(f[0])
			se.Line, _ = strconv.Atoi(f[1])
			se.Msg = f[2]
		} else {
			var rec struct {
				I   int    `json:"i"`
				Out string `json:"out"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				return nil, fmt.Errorf("checking the syntax with %s: cannot read %q", tool, line)
			}
			i = rec.I
			se.Line, se.Msg = parseNodeError(rec.Out)
		}
		if i < 0 || i >= len(files) {
			return nil, fmt.Errorf("checking the syntax with %s: it names file %d of %d", tool, i, len(files))
		}
		se.File = files[i]
		errs = append(errs, se)
	}
	return errs, nil
}

var (
	// nodeWhere is node's first line of an error: FILE:LINE.
	nodeWhere = regexp.MustCompile(`:(\d+)$`)
	// nodeError is the line that says what is wrong: SyntaxError: ...
	nodeError = regexp.MustCompile(`^([A-Za-z]*Error): (.*)$`)
)

// parseNodeError takes the line and the message from node --check's
// report: "FILE:LINE", the line and a caret, then "SyntaxError: MESSAGE".
func parseNodeError(out string) (int, string) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	line := 0
	if m := nodeWhere.FindStringSubmatch(strings.TrimSpace(lines[0])); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	for _, l := range lines {
		if m := nodeError.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			if m[1] == "SyntaxError" {
				return line, m[2]
			}
			return line, m[1] + ": " + m[2]
		}
	}
	return line, strings.Join(strings.Fields(lines[0]), " ")
}

// readableTree lets everyone read dir's files and enter its folders.
func readableTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
