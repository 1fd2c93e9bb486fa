package build

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/build/invoker"
)

// goSDK holds ferry's Go SDK (package build/fn). Every Go build gets it as
// the workspace module github.com/ferrycd/ferry, so a function that
// imports github.com/ferrycd/ferry/build/fn compiles against the SDK of
// the ferry that builds it, whatever version its go.mod requires, and
// without downloading ferry.
//
//go:embed fn/doc.go fn/event.go
var goSDK embed.FS

const (
	// goSDKModule is the module path the SDK is written under.
	goSDKModule = "github.com/ferrycd/ferry"
	// goMainModule is the module of the generated main.
	goMainModule = "ferry.local/main"
	// goLooseModule is the module path given to a function folder that
	// has no go.mod anywhere above it.
	goLooseModule = "ferry.local/function"
	// goMaxErrorBytes caps the compiler output quoted in an error.
	goMaxErrorBytes = 32 << 10
	// goKillDelay is how long a cancelled go command gets to exit after
	// it is killed before its output pipes are closed under it.
	goKillDelay = 5 * time.Second
)

// goCommand is the go command compile runs, found on PATH.
var goCommand = "go"

// goMaxSourceBytes caps what one build copies out of the repository: far
// above any real module, low enough that a repository full of media
// cannot fill the disk one build at a time. A variable for tests.
var goMaxSourceBytes int64 = 512 << 20

// goBuild is one compile of a Go function.
type goBuild struct {
	Src          fs.FS    // the repository tree at a commit (may be os.DirFS or an fstest.MapFS); read only through it
	Source       string   // the function's folder in Src, cleaned, "." for the root
	Handler      string   // exported func name, e.g. "Handle"
	GOOS, GOARCH string   // default linux and runtime.GOARCH
	Out          string   // path of the binary to write
	Env          []string // extra environment for the go command (tests set GOFLAGS etc.); may be nil

	// files and modRoot, when files is set, are the module's files as the
	// build's plan read them (modRoot "" when no go.mod holds Source), so
	// that the compile copies them without walking the module again.
	files   []sourceFile
	modRoot string
}

// goWorkspace is the temporary go.work tree one compile builds in:
//
//	ws/go.work      uses ./main ./src; replaces github.com/ferrycd/ferry with ./sdk
//	ws/src          the function's module, copied out of the repository
//	ws/sdk          ferry's SDK as module github.com/ferrycd/ferry
//	ws/main         the generated main, module ferry.local/main
type goWorkspace struct {
	dir        string // absolute, symlinks resolved, so compiler paths match it
	moduleDir  string // the folder copied to ws/src: the module's, or the function's when no go.mod holds it
	modulePath string
	pkgDir     string // the function's folder relative to the module, "." for its root
	importPath string
	handler    string
	mainSrc    []byte
}

// compile builds b.Source into a static binary at b.Out. The binary
// depends only on the source, the toolchain and GOOS/GOARCH: two compiles
// of the same tree, wherever it lies, write the same bytes.
func (b goBuild) compile(ctx context.Context) error {
	if b.GOOS == "" {
		b.GOOS = "linux"
	}
	if b.GOARCH == "" {
		b.GOARCH = runtime.GOARCH
	}
	tool, err := loadGoTool(ctx)
	if err != nil {
		return err
	}
	ws, err := newGoWorkspace(b.Handler)
	if err != nil {
		return fmt.Errorf("go function %s (handler %s): %w", b.Source, b.Handler, err)
	}
	defer os.RemoveAll(ws.dir)
	for _, step := range []func(context.Context, goBuild, *goWorkspace, *goTool) error{
		goCopySource,
		goWriteSDK,
		goWriteMain,
		goWriteWork,
		goRunBuild,
	} {
		if err := step(ctx, b, ws, tool); err != nil {
			return fmt.Errorf("go function %s (handler %s): %w", b.Source, b.Handler, err)
		}
	}
	return nil
}

// newGoWorkspace makes an empty workspace folder under the temp folder.
func newGoWorkspace(handler string) (*goWorkspace, error) {
	dir, err := os.MkdirTemp("", "ferry-go-build-")
	if err != nil {
		return nil, fmt.Errorf("making a build workspace: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &goWorkspace{dir: resolved, handler: handler}, nil
}

// goCopySource finds the module that holds the function's folder and
// copies it into ws/src; a folder with no go.mod above it is copied alone
// and given one. Links are followed inside the repository only, as every
// source walk does.
func goCopySource(ctx context.Context, b goBuild, ws *goWorkspace, tool *goTool) error {
	if !fs.ValidPath(b.Source) {
		return fmt.Errorf("source %q is not a clean path inside the repository", b.Source)
	}
	// A link is judged by the walk below, which names where it leads.
	if _, err := fs.Lstat(b.Src, b.Source); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("source folder %s is not in the repository", b.Source)
	}
	modDir, found, files := b.modRoot, b.modRoot != "", b.files
	if files == nil {
		var err error
		if modDir, found, err = goModuleRoot(b.Src, b.Source); err != nil {
			return err
		}
		walk := b.Source
		if found {
			walk = modDir
		}
		if files, err = readSource(ctx, b.Src, walk, goSkip); err != nil {
			return err
		}
	}
	walk := b.Source
	if found {
		walk = modDir
	}
	var total int64
	for _, f := range files {
		if total += f.Size; total > goMaxSourceBytes {
			return fmt.Errorf("the Go module in %s is larger than %d MiB: ferry will not build it (move large files out of the module)", walk, goMaxSourceBytes>>20)
		}
	}
	dst := filepath.Join(ws.dir, "src")
	if err := copyToHost(b.Src, files, dst); err != nil {
		return err
	}
	if err := goCheckAssembly(dst, walk, files); err != nil {
		return err
	}
	if !found {
		ws.modulePath, ws.moduleDir, ws.pkgDir = goLooseModule, b.Source, "."
		mod := fmt.Sprintf("module %s\n\ngo %s\n", goLooseModule, tool.goLine)
		return os.WriteFile(filepath.Join(dst, "go.mod"), []byte(mod), 0o644)
	}
	gomod, err := os.ReadFile(filepath.Join(dst, "go.mod"))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path.Join(modDir, "go.mod"), err)
	}
	ws.modulePath = goModulePath(gomod)
	if ws.modulePath == "" {
		return fmt.Errorf("%s has no module line (add one, e.g. module example.com/functions)", path.Join(modDir, "go.mod"))
	}
	if err := goCheckReplaces(gomod, modDir); err != nil {
		return err
	}
	ws.moduleDir = modDir
	ws.pkgDir = "."
	if b.Source != modDir {
		ws.pkgDir = strings.TrimPrefix(b.Source, modDir+"/")
		if modDir == "." {
			ws.pkgDir = b.Source
		}
	}
	return nil
}

// goModulePath returns the path on a go.mod's module line, or "".
func goModulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		line, _, _ = strings.Cut(line, "//")
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t' && rest[0] != '"') {
			continue
		}
		rest = strings.TrimSpace(rest)
		if p, err := strconv.Unquote(rest); err == nil {
			return p
		}
		return rest
	}
	return ""
}

// goCheckAssembly refuses assembly files that #include a file by an
// absolute path or through "..": the assembler runs as ferry, reads what
// it is told to include and quotes it in its errors, which end up in the
// run's log (a repository could print ferry's own files there). Includes
// of files beside the code ("defs.h") and of Go's own headers
// ("textflag.h") stay allowed.
func goCheckAssembly(dir, walk string, files []sourceFile) error {
	for _, f := range files {
		if f.Dir || !strings.HasSuffix(f.Path, ".s") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "#") {
				continue
			}
			directive := strings.TrimSpace(strings.TrimPrefix(line, "#"))
			if !strings.HasPrefix(directive, "include") {
				continue
			}
			name := strings.Trim(strings.TrimSpace(strings.TrimPrefix(directive, "include")), `"<> `)
			if path.IsAbs(name) || filepath.IsAbs(name) || slices.Contains(strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }), "..") {
				return fmt.Errorf("%s:%d: #include %q reaches outside the function's code; include only files beside it (or Go's own, such as \"textflag.h\")", path.Join(walk, f.Path), i+1, name)
			}
		}
	}
	return nil
}

// goCheckReplaces refuses a go.mod whose replace directives point at
// folders outside the module: compile copies the module alone.
func goCheckReplaces(gomod []byte, modDir string) error {
	block, n := false, 0
	for line := range strings.Lines(string(gomod)) {
		n++
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case block && f[0] == ")":
			block = false
			continue
		case block:
		case f[0] == "replace" && len(f) == 2 && f[1] == "(":
			block = true
			continue
		case f[0] == "replace":
			f = f[1:]
		default:
			continue
		}
		arrow := slices.Index(f, "=>")
		if arrow < 0 || len(f) != arrow+2 {
			continue // a replacement by a module version is downloaded, not copied
		}
		target := f[arrow+1]
		if t, err := strconv.Unquote(target); err == nil {
			target = t
		}
		local := target == "." || target == ".." || strings.HasPrefix(target, "./") || strings.HasPrefix(target, "../")
		abs := path.IsAbs(target) || filepath.IsAbs(target)
		if !local && !abs {
			continue
		}
		joined := path.Join(modDir, target)
		if abs || joined == ".." || strings.HasPrefix(joined, "../") || (modDir != "." && joined != modDir && !strings.HasPrefix(joined, modDir+"/")) {
			return fmt.Errorf("%s:%d: replace %s => %s points outside the module, and ferry builds a function from its module alone (move that code into the module or require a published version)",
				path.Join(modDir, "go.mod"), n, f[0], target)
		}
	}
	return nil
}

// goWriteSDK writes ferry's SDK into ws/sdk as module github.com/ferrycd/ferry,
// unless the function's own module is ferry's, which has it already.
func goWriteSDK(_ context.Context, _ goBuild, ws *goWorkspace, tool *goTool) error {
	if ws.modulePath == goSDKModule {
		return nil
	}
	dir := filepath.Join(ws.dir, "sdk")
	if err := os.MkdirAll(filepath.Join(dir, "build", "fn"), 0o755); err != nil {
		return err
	}
	mod := fmt.Sprintf("module %s\n\ngo %s\n", goSDKModule, tool.goLine)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		return err
	}
	entries, err := goSDK.ReadDir("fn")
	if err != nil {
		return err
	}
	for _, e := range entries {
		data, err := goSDK.ReadFile("fn/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "build", "fn", e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// goWriteMain writes the generated main into ws/main.
func goWriteMain(_ context.Context, _ goBuild, ws *goWorkspace, tool *goTool) error {
	ws.importPath = ws.modulePath
	if ws.pkgDir != "." {
		ws.importPath += "/" + ws.pkgDir
	}
	src, err := invoker.GoMain(ws.importPath, ws.handler)
	if err != nil {
		return err
	}
	ws.mainSrc = src
	dir := filepath.Join(ws.dir, "main")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mod := fmt.Sprintf("module %s\n\ngo %s\n", goMainModule, tool.goLine)
	if ws.modulePath != goSDKModule {
		// Any version: go.work replaces them all with ws/sdk.
		mod += fmt.Sprintf("\nrequire %s v0.0.0\n", goSDKModule)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644)
}

// goWriteWork writes ws/go.work. The SDK comes in through a replace of
// every version of github.com/ferrycd/ferry rather than as a workspace
// module: a user module that requires, say, ferry v0.1.0 would otherwise
// make the go command look v0.1.0 up as soon as it loads the module graph,
// and fail offline.
func goWriteWork(_ context.Context, _ goBuild, ws *goWorkspace, tool *goTool) error {
	work := fmt.Sprintf("go %s\n\nuse (\n\t./main\n\t./src\n)\n", tool.goLine)
	if ws.modulePath != goSDKModule {
		work += fmt.Sprintf("\nreplace %s => ./sdk\n", goSDKModule)
	}
	return os.WriteFile(filepath.Join(ws.dir, "go.work"), []byte(work), 0o644)
}

// goRunBuild runs the go command in the workspace and moves the binary to
// b.Out, replacing it in one rename so that a failed build leaves b.Out
// as it was.
func goRunBuild(ctx context.Context, b goBuild, ws *goWorkspace, tool *goTool) error {
	tmp := filepath.Join(ws.dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(ws.dir, "bin", "function")
	// -s -w leave out the symbol table and DWARF: the binary is a third
	// smaller and links in half the time, which is most of a one-line
	// change's build and push; panics still print functions and lines,
	// which come from the runtime's own tables.
	cmd := exec.CommandContext(ctx, goCommand, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", bin, "./main")
	cmd.Dir = ws.dir
	cmd.Env = tool.environ(b.Env,
		"CGO_ENABLED=0",
		"GOOS="+b.GOOS,
		"GOARCH="+b.GOARCH,
		"GOWORK="+filepath.Join(ws.dir, "go.work"),
		"GOTOOLCHAIN=local",
		"GOENV=off",
		"GOTMPDIR="+tmp, // the go command's own scratch dir goes away with ws, even if it is killed
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = goKillDelay
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("build stopped: %w", ctx.Err())
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return fmt.Errorf("running %s build: %w", goCommand, err)
		}
		return ws.compileError(out.Bytes())
	}
	return goInstall(bin, b.Out)
}

// goInstall copies the binary at src to dst through a temporary file in
// dst's folder and a rename.
func goInstall(src, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".ferry-go-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if err := out.Chmod(0o755); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// compileError turns the go command's output into an error that speaks
// of the repository: workspace paths become repository paths, and what
// the go command says about the generated main or the workspace is said
// about the user's code.
func (ws *goWorkspace) compileError(output []byte) error {
	if len(output) > goMaxErrorBytes {
		output = append(output[:goMaxErrorBytes:goMaxErrorBytes], "\n..."...)
	}
	text := strings.ReplaceAll(string(output), ws.dir+string(filepath.Separator), "")
	handlerLine := ws.mainLine("adapt(function." + ws.handler + ")")
	var lines []string
	explained := false // the line before was rewritten whole: drop its tab-indented hints
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if explained && strings.HasPrefix(line, "\t") {
			continue
		}
		explained = false
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "# "):
			continue // "# package" headers: the paths below name the files
		case line == "package "+goMainModule:
			continue // the head of an import stack, which starts at the generated main
		}
		if rest, ok := strings.CutPrefix(line, "\timports "+ws.importPath+": "); ok {
			line = ws.repoPath(ws.pkgDir) + ": " + rest
		}
		line = ws.relocate(line)
		if m := goCompilerLine.FindStringSubmatch(line); m != nil && m[1] == "main/main.go" {
			n, _ := strconv.Atoi(m[2])
			line, explained = ws.explainMainError(n == handlerLine, m[3]), true
		} else if m := goWorkVersion.FindStringSubmatch(line); m != nil {
			line = fmt.Sprintf("%s: the module needs go >= %s, but ferry builds with go %s (GOTOOLCHAIN=local): lower its go line, or run ferry with a newer Go toolchain",
				ws.repoPath("go.mod"), m[1], m[2])
			explained = true
		}
		lines = append(lines, line)
	}
	lines = slices.Compact(lines)
	return fmt.Errorf("the Go build failed:\n%s\nfix the Go compile errors above", strings.Join(lines, "\n"))
}

var (
	// goCompilerLine is one "file:line:col: message" line of compiler output.
	goCompilerLine = regexp.MustCompile(`^(\S+\.go):(\d+)(?::\d+)?: (.*)$`)
	// goSrcPath is a workspace path into the function's module, at the
	// start of a line or after a space, tab, quote or parenthesis.
	goSrcPath = regexp.MustCompile(`(^|[\s"'(])(?:\./)?src/`)
	// goDeclaredInMain is the compiler pointing into the generated main.
	goDeclaredInMain = regexp.MustCompile(` \(declared at main/main\.go:\d+:\d+\)`)
	// goWorkVersion is the go command refusing a module newer than the toolchain.
	goWorkVersion = regexp.MustCompile(`requires go >= ([^\s;,]+), but go\.work lists go ([^\s;,]+)`)
)

// relocate rewrites workspace paths and names on a line of the go
// command's output into what they are in the repository.
func (ws *goWorkspace) relocate(line string) string {
	prefix := ""
	if ws.moduleDir != "." {
		prefix = ws.moduleDir + "/"
	}
	line = goSrcPath.ReplaceAllString(line, "${1}"+strings.ReplaceAll(prefix, "$", "$$"))
	line = goDeclaredInMain.ReplaceAllString(line, "")
	if line == "\tcd src" {
		return "\tcd " + ws.moduleDir
	}
	return strings.ReplaceAll(line, "module src listed in go.work file", "module "+ws.modulePath+" ("+ws.repoPath("go.mod")+")")
}

// mainLine returns the 1-based line of the generated main holding s, or 0.
func (ws *goWorkspace) mainLine(s string) int {
	n := 0
	for line := range strings.Lines(string(ws.mainSrc)) {
		n++
		if strings.Contains(line, s) {
			return n
		}
	}
	return 0
}

// explainMainError says what a compile error in the generated main means
// for the user's code, pointing at the user's files.
func (ws *goWorkspace) explainMainError(onHandlerLine bool, msg string) string {
	pkg := ws.repoPath(ws.pkgDir)
	const want = "want func(context.Context, T) (any, error)"
	switch {
	case strings.Contains(msg, "is a program, not an importable package"):
		where := pkg
		if pos, ok := ws.findInPackage(func(f *ast.File) ast.Node {
			if f.Name.Name == "main" {
				return f.Name
			}
			return nil
		}); ok {
			where = pos
		}
		return fmt.Sprintf("%s: package main cannot be a ferry function: ferry writes the main itself, the function is a library package with an exported func %s (rename the package, e.g. package %s, and remove func main)",
			where, ws.handler, goPackageName(ws.importPath))
	case onHandlerLine && strings.Contains(msg, "undefined: function."+ws.handler):
		return fmt.Sprintf("%s: package %s has no exported func %s, the handler the manifest names (add func %s(ctx context.Context, in T) (any, error))",
			pkg, ws.importPath, ws.handler, ws.handler)
	case onHandlerLine:
		where, kind := pkg, "func"
		if pos, ok := ws.findInPackage(func(f *ast.File) ast.Node { return goTopLevel(f, ws.handler, &kind) }); ok {
			where = pos
		}
		switch kind {
		case "func":
			return fmt.Sprintf("%s: func %s has the wrong signature: %s; compiler says: %s", where, ws.handler, want, msg)
		case "generic func":
			return fmt.Sprintf("%s: func %s is generic, and ferry cannot choose its type parameters: %s with a concrete T; compiler says: %s", where, ws.handler, want, msg)
		default:
			return fmt.Sprintf("%s: %s is a %s, not a func: the handler must be a func, %s; compiler says: %s", where, ws.handler, kind, want, msg)
		}
	case strings.Contains(msg, "no required module provides package "+ws.importPath+";"):
		return fmt.Sprintf("%s: there is no Go package in this folder (no .go files): put the function's package, with func %s, here", pkg, ws.handler)
	case strings.Contains(msg, strconv.Quote(ws.importPath)) || strings.Contains(msg, " "+ws.importPath):
		return fmt.Sprintf("%s: %s", pkg, msg)
	default:
		return fmt.Sprintf("ferry's generated main does not compile, which is a bug in ferry (please report it): main.go: %s", msg)
	}
}

// repoPath returns the repository path of a folder of the function's module.
func (ws *goWorkspace) repoPath(dir string) string {
	return path.Join(ws.moduleDir, dir)
}

// findInPackage parses the function's package (tests aside) and returns
// the repository position of the first node pick returns.
func (ws *goWorkspace) findInPackage(pick func(*ast.File) ast.Node) (string, bool) {
	dir := filepath.Join(ws.dir, "src", filepath.FromSlash(ws.pkgDir))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	fset := token.NewFileSet()
	for _, n := range names {
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			continue
		}
		if node := pick(f); node != nil {
			p := fset.Position(node.Pos())
			return fmt.Sprintf("%s:%d:%d", ws.repoPath(path.Join(ws.pkgDir, n)), p.Line, p.Column), true
		}
	}
	return "", false
}

// goTopLevel returns the name node of the package-level declaration of
// name in f, setting kind to func, generic func, var, const or type.
func goTopLevel(f *ast.File, name string, kind *string) ast.Node {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.Name == name {
				*kind = "func"
				if d.Type.TypeParams != nil {
					*kind = "generic func"
				}
				return d.Name
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.ValueSpec:
					for _, id := range s.Names {
						if id.Name == name {
							*kind = d.Tok.String()
							return id
						}
					}
				case *ast.TypeSpec:
					if s.Name.Name == name {
						*kind = "type"
						return s.Name
					}
				}
			}
		}
	}
	return nil
}

// goPackageName guesses a package name from an import path: its last
// element, as a Go identifier.
func goPackageName(importPath string) string {
	name := strings.Map(func(r rune) rune {
		if r == '-' || r == '.' {
			return '_'
		}
		return r
	}, path.Base(importPath))
	if !token.IsIdentifier(name) {
		return "function"
	}
	return name
}

// goTool is what compile needs to know about the go command, asked once
// per process.
type goTool struct {
	version string   // go env GOVERSION, e.g. go1.26.8
	goLine  string   // the version for go.mod and go.work go lines, e.g. 1.26.8
	carry   []string // KEY=VALUE settings taken from the user's go environment
}

// goCarried are the go settings compile keeps from the user's environment
// (including their go env file, which compile's GOENV=off hides): where
// the caches are, and how and from where modules download. Every other
// GO* and CGO_* variable is dropped so that the host cannot change the
// binary.
var goCarried = []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE", "GOVCS", "GOAUTH", "GOROOT"}

var goToolCache struct {
	sync.Mutex
	tool *goTool
}

// goVersionNumber finds the release in a GOVERSION such as "go1.26.8" or
// "devel go1.27-abcdef Tue ...".
var goVersionNumber = regexp.MustCompile(`go(1\.\d+(?:\.\d+|rc\d+)?)`)

func loadGoTool(ctx context.Context) (*goTool, error) {
	goToolCache.Lock()
	defer goToolCache.Unlock()
	if goToolCache.tool != nil {
		return goToolCache.tool, nil
	}
	args := append([]string{"env", "-json", "GOVERSION"}, goCarried...)
	cmd := exec.CommandContext(ctx, goCommand, args...)
	cmd.Dir = os.TempDir() // no go.mod or go.work of the caller's working folder
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go functions need the go command on PATH: %s env: %w: %s", goCommand, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var vars map[string]string
	if err := json.Unmarshal(out, &vars); err != nil {
		return nil, fmt.Errorf("reading %s env -json: %w", goCommand, err)
	}
	t := &goTool{version: vars["GOVERSION"]}
	m := goVersionNumber.FindStringSubmatch(t.version)
	if m == nil {
		return nil, fmt.Errorf("%s env GOVERSION says %q, which names no Go release", goCommand, t.version)
	}
	t.goLine = m[1]
	for _, k := range goCarried {
		if v := vars[k]; v != "" {
			t.carry = append(t.carry, k+"="+v)
		}
	}
	goToolCache.tool = t
	return t, nil
}

// environ returns the go command's environment: the process's, without
// its GO* and CGO_* variables; the carried go settings; extra (the
// goBuild's Env); then forced, which nothing overrides. A -mod=mod in
// extra's GOFLAGS is dropped: the go command refuses it in workspace
// mode, and the workspace needs no go.mod updates.
func (t *goTool) environ(extra []string, forced ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "GO") || strings.HasPrefix(k, "CGO_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, t.carry...)
	for _, kv := range extra {
		if flags, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			kv = "GOFLAGS=" + strings.Join(slices.DeleteFunc(strings.Fields(flags), func(f string) bool { return f == "-mod=mod" }), " ")
		}
		env = append(env, kv)
	}
	return append(env, forced...)
}
