package manifests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // so a cron time zone validates the same on every host

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Bounds on values, each wide enough for real use and narrow enough to
// catch a slip of the unit. MaxTimeout, MaxMemory and MaxScale also bound
// what one function may take of a cluster: the Kubernetes controller
// refuses a Function applied by hand beyond them, as validation refuses
// a release.
var (
	MaxTimeout     = 15 * time.Minute
	minMemory      = quantity("16Mi")
	MaxMemory      = quantity("64Gi")
	MaxScale       = int32(1000)
	maxConcurrency = int32(10000)
	maxTestTimeout = 2 * time.Hour
	maxAttempts    = int32(100)
	maxSoak        = 24 * time.Hour
	maxHTTPPath    = 1024
	maxGoFileSize  = int64(4 << 20)
)

// quantity parses s with its string form cached: Quantity.String
// caches it on first use, a write that would race when validations (or
// the controller's reconciles) print a shared bound at once.
func quantity(s string) resource.Quantity {
	q := resource.MustParse(s)
	_ = q.String()
	return q
}

// httpMethods are the methods an HTTPTrigger may name.
var httpMethods = []string{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}

// reservedEnv are variables ferry sets for every function; a user's value
// would be overwritten or, worse, break the contract.
var reservedEnv = []string{"PORT"}
var reservedEnvPrefixes = []string{"FUNCTION_", "FERRY_", "K_"}

// reservedHTTPPrefix is kept for ferry's own endpoints on the gateway.
const reservedHTTPPrefix = "/_ferry"

// validator checks a defaulted Set against the rules and the repository's
// files, collecting every problem with the position of the field at fault.
type validator struct {
	ctx  context.Context
	fsys fs.FS
	set  *Set
	errs *errs
	// walked remembers each source folder's walk, so that many functions
	// sharing one folder (source: ".") cost one walk.
	walked map[string]error
	// release is set when checking a release's manifest, which is judged
	// without the repository and must pin every image.
	release bool
}

// validate runs every rule. A rule never stops at the first problem, so
// one run reports everything a user has to fix.
func validate(ctx context.Context, fsys fs.FS, s *Set, into *errs, release bool) error {
	v := &validator{ctx: ctx, fsys: fsys, set: s, errs: into, walked: map[string]error{}, release: release}
	for _, rule := range []func(){
		v.names,
		v.functions,
		v.triggers,
		v.httpRoutes,
		v.pipeline,
	} {
		if err := ctx.Err(); err != nil {
			return err
		}
		rule()
	}
	return nil
}

func (v *validator) errorf(obj Object, field, format string, args ...any) {
	if v.set.Origin(obj).reported(field) {
		return
	}
	pos := v.set.Origin(obj).At(field)
	if pos.File == "" {
		// Only objects built by code have no origin; name the object.
		pos = Pos{File: fmt.Sprintf("<%s %s>", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName()), Line: 1, Column: 1}
	}
	v.errs.add(pos, field, format, args...)
}

// names checks metadata: DNS-1123 names unique per kind, valid labels and
// annotations. Names become host names and Kubernetes object names, so the
// strictest of those rules applies.
func (v *validator) names() {
	for _, group := range [][]Object{
		asObjects(v.set.Functions), asObjects(v.set.HTTPTriggers), asObjects(v.set.CronTriggers),
		asObjects(v.set.NATSTriggers), asObjects(v.set.KafkaTriggers),
	} {
		seen := map[string]Object{}
		for _, obj := range group {
			v.meta(obj)
			name := obj.GetName()
			if name == "" {
				continue
			}
			if first, dup := seen[name]; dup {
				v.errorf(obj, "metadata.name", "%s %q is declared twice (first at %s); rename one",
					kindOf(obj), name, v.set.Origin(first).At("metadata.name"))
				continue
			}
			seen[name] = obj
		}
	}
	if p := v.set.Pipeline; p != nil && v.set.Origin(p) != nil {
		v.meta(p)
	}
	for _, p := range v.set.extraPipelines {
		v.errorf(p, "", "a repository has one Pipeline and this is a second (the first is at %s); merge their stages", v.set.Origin(v.set.Pipeline).Pos)
	}
}

func kindOf(obj Object) string {
	return obj.GetObjectKind().GroupVersionKind().Kind
}

func (v *validator) meta(obj Object) {
	name := obj.GetName()
	switch {
	case name == "" && kindOf(obj) == v1alpha1.KindPipeline:
		// A Pipeline may be written without a name; Default named it.
	case name == "":
		v.errorf(obj, "metadata.name", "missing; every %s needs a name such as %q", kindOf(obj), "thumbnail")
	default:
		if len(content.IsDNS1123Label(name)) > 0 {
			v.errorf(obj, "metadata.name", "%q is not a valid name; %s", name, nameRule(name))
		}
	}
	for _, k := range sortedKeys(obj.GetLabels()) {
		f := joinPath("metadata.labels", k)
		for _, msg := range content.IsLabelKey(k) {
			v.errorf(obj, f, "label key %q: %s", k, msg)
		}
		for _, msg := range content.IsLabelValue(obj.GetLabels()[k]) {
			v.errorf(obj, f, "label value %q: %s", obj.GetLabels()[k], msg)
		}
	}
	for _, k := range sortedKeys(obj.GetAnnotations()) {
		for _, msg := range content.IsLabelKey(strings.ToLower(k)) {
			v.errorf(obj, joinPath("metadata.annotations", k), "annotation key %q: %s", k, msg)
		}
	}
}

// nameRule says what a name must look like, with a valid one close to
// what the user wrote. Names become host names and Kubernetes object
// names, so DNS-1123 labels it is.
func nameRule(name string) string {
	return fmt.Sprintf("use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit, such as %q", suggestName(name))
}

// suggestName turns an invalid name into a valid one, for the message.
func suggestName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		return "my-function"
	}
	return s
}

func (v *validator) functions() {
	for _, f := range v.set.Functions {
		v.function(f)
	}
}

func (v *validator) function(f *v1alpha1.Function) {
	spec := &f.Spec
	switch {
	case spec.Runtime == "":
		v.errorf(f, "spec.runtime", "missing; set one of %s", strings.Join(v1alpha1.Runtimes, ", "))
	case !slices.Contains(v1alpha1.Runtimes, spec.Runtime):
		v.errorf(f, "spec.runtime", "%q is not supported (use %s)", spec.Runtime, orList(v1alpha1.Runtimes))
	}
	v.image(f)
	// A source that failed to decode was defaulted to "."; checking that
	// folder would only report noise. A release has no folders to check.
	if !v.release && !v.set.Origin(f).reported("spec.source") {
		dir, ok := v.source(f)
		if ok && slices.Contains(v1alpha1.Runtimes, spec.Runtime) && !v.set.Origin(f).reported("spec.handler") {
			v.handler(f, dir)
		}
	}
	for _, k := range sortedKeys(spec.Env) {
		v.envName(f, joinPath("spec.env", k), k)
		v.envValue(f, joinPath("spec.env", k), spec.Env[k])
	}
	if spec.Timeout != nil {
		v.duration(f, "spec.timeout", spec.Timeout.Duration, MaxTimeout, "move long work behind a KafkaTrigger or NATSTrigger")
	}
	if m := spec.Memory; m != nil {
		switch {
		case m.Cmp(minMemory) < 0:
			hint := ""
			if m.Value() > 0 && m.Value() < 1<<16 {
				hint = fmt.Sprintf("; did you mean %sMi?", m.String())
			}
			v.errorf(f, "spec.memory", "%s is less than the minimum %s%s", m.String(), minMemory.String(), hint)
		case m.Cmp(MaxMemory) > 0:
			v.errorf(f, "spec.memory", "%s is more than the maximum %s", m.String(), MaxMemory.String())
		}
	}
	if sc := spec.Scale; sc != nil {
		if sc.Min != nil && *sc.Min < 0 {
			v.errorf(f, "spec.scale.min", "%d is negative; use 0 to scale to zero", *sc.Min)
		}
		if sc.Max != nil && (*sc.Max < 1 || *sc.Max > MaxScale) {
			v.errorf(f, "spec.scale.max", "%d is out of range; use 1 to %d", *sc.Max, MaxScale)
		}
		if sc.Min != nil && sc.Max != nil && *sc.Min > *sc.Max {
			v.errorf(f, "spec.scale.min", "%d is more than scale.max %d; raise max or lower min", *sc.Min, *sc.Max)
		}
		if sc.Concurrency != nil && (*sc.Concurrency < 1 || *sc.Concurrency > maxConcurrency) {
			v.errorf(f, "spec.scale.concurrency", "%d is out of range; use 1 to %d", *sc.Concurrency, maxConcurrency)
		}
	}
	if t := spec.Test; t != nil {
		if len(t.Command) == 0 || t.Command[0] == "" {
			v.errorf(f, "spec.test.command", "missing; give the test's command as a list, such as [python, -m, pytest]")
		}
		if t.Timeout != nil {
			v.duration(f, "spec.test.timeout", t.Timeout.Duration, maxTestTimeout, "split the test")
		}
		for _, k := range sortedKeys(t.Env) {
			v.envName(f, joinPath("spec.test.env", k), k)
		}
	}
}

// imageRE is an image reference pinned by digest, the only form a release
// may hold: a tag could move under a running environment. The host is a
// name (any case, as DNS is) or a bracketed IPv6 address, with a port.
var imageRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?(/[a-z0-9]+([._\-]+[a-z0-9]+)*)+@sha256:[0-9a-f]{64}$`)

// IsPinnedImage reports whether ref is an image reference pinned by
// digest, HOST[:PORT]/PATH@sha256:<64 hex>, as a release must hold it.
func IsPinnedImage(ref string) bool { return imageRE.MatchString(ref) }

// image checks spec.image: ferry's to set, so absent in a repository, and
// present and pinned by digest in a release.
func (v *validator) image(f *v1alpha1.Function) {
	img := f.Spec.Image
	switch {
	case !v.release && img != "":
		v.errorf(f, "spec.image", "is set by ferry when it builds the function; remove it")
	case v.release && img == "":
		v.errorf(f, "spec.image", "missing; a release pins every function's image by digest")
	case v.release && !IsPinnedImage(img):
		v.errorf(f, "spec.image", "%q is not an image pinned by digest (HOST/REPO/NAME@sha256:<64 hex>)", img)
	}
}

func (v *validator) duration(obj Object, field string, d, limit time.Duration, hint string) {
	switch {
	case d <= 0:
		v.errorf(obj, field, "%s is not positive; give a duration such as 10s", d)
	case limit > 0 && d > limit:
		v.errorf(obj, field, "%s is longer than the limit %s; %s", d, limit, hint)
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (v *validator) envName(obj Object, field, name string) {
	if p := EnvNameProblem(name); p != "" {
		v.errorf(obj, field, "%s", p)
	}
}

// EnvNameProblem says what is wrong with a variable's name for a
// function's env, or "" when nothing is. ferry serve's per-environment
// overrides are checked with it too.
func EnvNameProblem(name string) string {
	if !envNameRE.MatchString(name) {
		return fmt.Sprintf("%q is not a valid variable name; use letters, digits and '_', not starting with a digit", name)
	}
	upper := strings.ToUpper(name)
	if slices.Contains(reservedEnv, upper) {
		return fmt.Sprintf("%s is set by ferry; choose another name", name)
	}
	for _, p := range reservedEnvPrefixes {
		if strings.HasPrefix(upper, p) {
			return fmt.Sprintf("names starting with %s are set by ferry; choose another name", p)
		}
	}
	return ""
}

// source checks that the function's folder exists inside the repository,
// through no escaping symlink, and holds no symlink that leads out. It
// returns the folder's resolved path.
func (v *validator) source(f *v1alpha1.Function) (string, bool) {
	src := f.Spec.Source
	dir, err := resolveInRoot(v.fsys, src)
	if err != nil {
		var esc *escapeError
		switch {
		case errors.As(err, &esc):
			v.errorf(f, "spec.source", "%v", err) // it names the path
		case errors.Is(err, fs.ErrNotExist):
			v.errorf(f, "spec.source", "%q does not exist in the repository; create the folder or fix the path", src)
		default:
			v.errorf(f, "spec.source", "%q: %v", src, err)
		}
		return "", false
	}
	info, err := fs.Stat(v.fsys, dir)
	if err != nil {
		v.errorf(f, "spec.source", "%q: %v", src, err)
		return "", false
	}
	if !info.IsDir() {
		v.errorf(f, "spec.source", "%q is a file; give the folder that holds the function's code", src)
		return "", false
	}
	err, done := v.walked[dir]
	if !done {
		err = checkTreeConfined(v.ctx, v.fsys, dir)
		v.walked[dir] = err
	}
	if err != nil {
		v.errorf(f, "spec.source", "%q: %v", src, err)
		return "", false
	}
	return dir, true
}

var (
	goHandlerRE     = regexp.MustCompile(`^[A-Z][A-Za-z0-9_]*$`)
	pythonHandlerRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`)
	nodeHandlerRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\.[A-Za-z_$][A-Za-z0-9_$]*$`)
)

// handler checks the handler's form for the runtime and that the code it
// names is there, so a typo fails at validation and not after a build.
func (v *validator) handler(f *v1alpha1.Function, dir string) {
	h := f.Spec.Handler
	defaulted := ""
	if !v.set.Origin(f).Has("spec.handler") {
		defaulted = " (the default for " + f.Spec.Runtime + ")"
	}
	switch f.Spec.Runtime {
	case v1alpha1.RuntimeGo:
		if !goHandlerRE.MatchString(h) {
			v.errorf(f, "spec.handler", "%q is not an exported Go function name; use one such as Handle", h)
			return
		}
		v.goHandler(f, dir, h, defaulted)
	case v1alpha1.RuntimePython:
		if !pythonHandlerRE.MatchString(h) {
			v.errorf(f, "spec.handler", "%q is not <module>.<function>; use one such as main.handle (def handle(event, context) in main.py)", h)
			return
		}
		i := strings.LastIndex(h, ".")
		mod := strings.ReplaceAll(h[:i], ".", "/")
		v.handlerFile(f, dir, h, defaulted, mod+".py", mod+"/__init__.py")
	case v1alpha1.RuntimeNodeJS:
		if !nodeHandlerRE.MatchString(h) || slices.Contains(strings.Split(h, "/"), "..") {
			v.errorf(f, "spec.handler", "%q is not <file>.<export>; use one such as index.handler (exports.handler in index.js)", h)
			return
		}
		i := strings.LastIndex(h, ".")
		file := h[:i]
		v.handlerFile(f, dir, h, defaulted, file+".js", file+".mjs", file+".cjs")
	}
}

func (v *validator) handlerFile(f *v1alpha1.Function, dir, h, defaulted string, candidates ...string) {
	for _, c := range candidates {
		p, err := resolveInRoot(v.fsys, path.Join(dir, c))
		if err != nil {
			var esc *escapeError
			if errors.As(err, &esc) {
				v.errorf(f, "spec.handler", "%q: %v", h, err)
				return
			}
			continue
		}
		if info, err := fs.Stat(v.fsys, p); err == nil && info.Mode().IsRegular() {
			return
		}
	}
	v.errorf(f, "spec.handler", "handler %q%s needs %s in %s; create it or set spec.handler", h, defaulted, orList(candidates), f.Spec.Source)
}

// goHandler parses the package in dir and looks for the handler function.
func (v *validator) goHandler(f *v1alpha1.Function, dir, h, defaulted string) {
	entries, err := fs.ReadDir(v.fsys, dir)
	if err != nil {
		v.errorf(f, "spec.source", "%q: %v", f.Spec.Source, err)
		return
	}
	fset := token.NewFileSet()
	var pkgs []string
	found := false
	files := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		p := path.Join(dir, name)
		real, err := resolveInRoot(v.fsys, p)
		if err != nil {
			continue // the walk of the folder reported it
		}
		info, err := fs.Stat(v.fsys, real)
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		// The go command skips _x.go, .x.go and files whose build
		// constraints exclude linux/amd64 (what ferry builds); so does this.
		// MatchFile reads the file through goContext, which keeps what it
		// read so the file is read once.
		src, ok, err := v.matchGoFile(dir, name, real, info.Size())
		if err != nil || !ok {
			continue
		}
		if info.Size() > maxGoFileSize {
			v.errorf(f, "spec.source", "%s is larger than %s; ferry does not build generated files that large", p, sizeString(maxGoFileSize))
			return
		}
		file, err := parser.ParseFile(fset, p, src, parser.SkipObjectResolution)
		if err != nil {
			// The compiler will say it in full during the build; say here
			// which file so the user need not wait for it.
			v.errorf(f, "spec.source", "%s does not parse: %v", p, firstLine(err.Error()))
			return
		}
		files++
		if !slices.Contains(pkgs, file.Name.Name) {
			pkgs = append(pkgs, file.Name.Name)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == h {
				found = true
			}
		}
	}
	switch {
	case files == 0:
		v.errorf(f, "spec.source", "%q holds no Go files; put the package with func %s there", f.Spec.Source, h)
	case len(pkgs) == 1 && pkgs[0] == "main":
		v.errorf(f, "spec.source", "%q is package main, which cannot be imported; ferry writes the main package itself, so rename the package (package %s)", f.Spec.Source, suggestIdent(path.Base(path.Clean("/"+f.Spec.Source))))
	case !found:
		v.errorf(f, "spec.handler", "no func %s%s in package %s in %q; declare func %s(ctx context.Context, in T) (any, error)", h, defaulted, pkgs[0], f.Spec.Source, h)
	}
}

// matchGoFile reports whether the go command would build the file name
// in dir (already resolved to real) for the platform ferry builds
// functions for, and returns its content when it is small enough to parse.
func (v *validator) matchGoFile(dir, name, real string, size int64) ([]byte, bool, error) {
	var src []byte
	c := build.Default
	c.GOOS, c.GOARCH, c.CgoEnabled = "linux", "amd64", false
	c.JoinPath = path.Join
	c.IsAbsPath = func(string) bool { return false }
	c.OpenFile = func(string) (io.ReadCloser, error) {
		if size > maxGoFileSize {
			return v.fsys.Open(real) // read only the header of a huge file
		}
		b, err := fs.ReadFile(v.fsys, real)
		if err != nil {
			return nil, err
		}
		src = b
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	ok, err := c.MatchFile(dir, name)
	return src, ok, err
}

func suggestIdent(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || b.Len() > 0 && r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 || b.String() == "main" {
		return "function"
	}
	if token.IsKeyword(b.String()) {
		return b.String() + "fn" // package go, package type: not allowed
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// orList writes "a, b or c".
func orList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// triggers checks what every trigger kind shares (which functions it
// calls) and what each kind adds.
func (v *validator) triggers() {
	for _, t := range v.set.HTTPTriggers {
		names := v.target(t, &t.Spec.FunctionTarget)
		if t.Spec.FunctionSelector != nil && len(names) > 1 {
			v.errorf(t, "spec.functionSelector", "matches %d functions (%s), but an HTTP request is answered by one; name it with spec.function", len(names), strings.Join(names, ", "))
		}
		v.httpPath(t, "spec.path", t.Spec.Path)
		v.triggerEnvironments(t, t.Spec.Environments)
		// Methods were sorted by Default, so name the method, not its index.
		for _, m := range t.Spec.Methods {
			if !slices.Contains(httpMethods, m) {
				v.errorf(t, "spec.methods", "%q is not an HTTP method ferry routes (use %s)", m, orList(httpMethods))
			}
		}
	}
	for _, t := range v.set.CronTriggers {
		v.target(t, &t.Spec.FunctionTarget)
		v.cron(t)
		v.triggerEnvironments(t, t.Spec.Environments)
	}
	for _, t := range v.set.NATSTriggers {
		v.target(t, &t.Spec.FunctionTarget)
		v.triggerEnvironments(t, t.Spec.Environments)
		v.topic(t, &t.Spec, natsSubjectOK, "a NATS subject: tokens of letters, digits, '-' and '_' separated by '.', with * for one token and > as the last")
	}
	for _, t := range v.set.KafkaTriggers {
		v.target(t, &t.Spec.FunctionTarget)
		v.triggerEnvironments(t, t.Spec.Environments)
		v.topic(t, &t.Spec.TopicTriggerSpec, kafkaNameOK, "a Kafka topic: up to 249 letters, digits, '.', '_' and '-'")
		if o := t.Spec.InitialOffset; o != v1alpha1.OffsetLatest && o != v1alpha1.OffsetEarliest {
			v.errorf(t, "spec.initialOffset", "%q is not latest or earliest", o)
		}
	}
}

// target checks a trigger's function or selector and returns the names of
// the functions it calls.
func (v *validator) target(t Object, ft *v1alpha1.FunctionTarget) []string {
	switch {
	case ft.Function != "" && ft.FunctionSelector != nil:
		v.errorf(t, "spec.functionSelector", "set spec.function or spec.functionSelector, not both")
		return nil
	case ft.Function != "":
		if v.set.Function(ft.Function) != nil {
			return []string{ft.Function}
		}
		if v.mayBeBroken(v1alpha1.KindFunction, ft.Function) {
			return nil // already reported where it is declared
		}
		names := functionNames(v.set)
		hint := ""
		if s := closest(ft.Function, names); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		} else if len(names) > 0 {
			hint = " (the functions are " + strings.Join(names, ", ") + ")"
		}
		v.errorf(t, "spec.function", "no Function named %q%s; declare it or fix the name", ft.Function, hint)
	case ft.FunctionSelector != nil:
		sel := ft.FunctionSelector
		if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
			v.errorf(t, "spec.functionSelector", "is empty and would call every function; give matchLabels or matchExpressions")
			return nil
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			v.errorf(t, "spec.functionSelector", "%v", err)
			return nil
		}
		var names []string
		for _, f := range v.set.Functions {
			if s.Matches(labels.Set(f.Labels)) {
				names = append(names, f.Name)
			}
		}
		sort.Strings(names)
		if len(names) == 0 && !v.anyBroken(v1alpha1.KindFunction) {
			v.errorf(t, "spec.functionSelector", "%q matches no function; add those labels to a Function's metadata.labels or fix the selector", s.String())
		}
		return names
	default:
		v.errorf(t, "spec.function", "missing; set spec.function to a function's name, or spec.functionSelector")
	}
	return nil
}

// mayBeBroken reports whether name may be an object of kind that failed to
// decode (its own errors are reported; a dangling reference would repeat
// them).
func (v *validator) mayBeBroken(kind, name string) bool {
	return v.set.broken[kindName{kind, name}] || v.set.broken[kindName{kind, "*"}]
}

func (v *validator) anyBroken(kind string) bool {
	for k := range v.set.broken {
		if k.kind == kind {
			return true
		}
	}
	return false
}

func functionNames(s *Set) []string {
	var out []string
	for _, f := range s.Functions {
		if f.Name != "" {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}

// httpPathRE allows the characters RFC 3986 permits in a path, minus
// those a router would treat specially.
var httpPathRE = regexp.MustCompile(`^(/[A-Za-z0-9\-._~!$&'()*+,;=:@%]*)+$`)

func (v *validator) httpPath(obj Object, field, p string) bool {
	switch {
	case p == "":
		v.errorf(obj, field, "missing; give the path to serve, such as /hello")
	case !strings.HasPrefix(p, "/"):
		v.errorf(obj, field, "%q must start with /; use %q", p, "/"+p)
	case len(p) > maxHTTPPath:
		v.errorf(obj, field, "is %d characters long; the limit is %d", len(p), maxHTTPPath)
	case strings.ContainsAny(p, "?#"):
		v.errorf(obj, field, "%q holds a query or fragment; give the path alone", p)
	case strings.Contains(p, "//"):
		v.errorf(obj, field, "%q has an empty segment (//); remove it", p)
	case slices.Contains(strings.Split(p, "/"), "..") || slices.Contains(strings.Split(p, "/"), "."):
		v.errorf(obj, field, "%q has a . or .. segment, which clients remove before sending; give the path they will send", p)
	case !httpPathRE.MatchString(p):
		v.errorf(obj, field, "%q has characters a URL path cannot hold unescaped; use letters, digits and -._~ or %%-escapes", p)
	case p == reservedHTTPPrefix || strings.HasPrefix(p, reservedHTTPPrefix+"/"):
		v.errorf(obj, field, "%s is kept for ferry's own endpoints; choose another path", reservedHTTPPrefix)
	default:
		return true
	}
	return false
}

// httpRoutes refuses two triggers that would receive the same request.
// Two triggers may share a path when their methods do not overlap (GET
// /items to one function, POST /items to another).
func (v *validator) httpRoutes() {
	byPath := map[string][]*v1alpha1.HTTPTrigger{}
	for _, t := range v.set.HTTPTriggers {
		for _, prev := range byPath[t.Spec.Path] {
			if shared := overlap(prev.Spec.Methods, t.Spec.Methods); shared != "" {
				v.errorf(t, "spec.path", "%s %s is already routed by HTTPTrigger %q (%s); a request goes to one function, so change the path or the methods",
					shared, t.Spec.Path, prev.Name, v.set.Origin(prev).At("spec.path"))
				break
			}
		}
		byPath[t.Spec.Path] = append(byPath[t.Spec.Path], t)
	}
}

// overlap names the methods two triggers share; empty methods mean all.
func overlap(a, b []string) string {
	switch {
	case len(a) == 0 && len(b) == 0:
		return "every method of"
	case len(a) == 0:
		return strings.Join(b, ",")
	case len(b) == 0:
		return strings.Join(a, ",")
	}
	var shared []string
	for _, m := range b {
		if slices.Contains(a, m) {
			shared = append(shared, m)
		}
	}
	return strings.Join(shared, ",")
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (v *validator) cron(t *v1alpha1.CronTrigger) {
	s := strings.TrimSpace(t.Spec.Schedule)
	switch {
	case s == "":
		v.errorf(t, "spec.schedule", "missing; give a schedule such as \"0 3 * * *\" (03:00 every day) or @hourly")
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		v.errorf(t, "spec.schedule", "%q sets a time zone in the schedule; move it to spec.timeZone", s)
	case strings.HasPrefix(s, "@every"):
		// robfig/cron rounds anything under a second up to one second and
		// accepts a negative interval; say what will really happen.
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(s, "@every")))
		switch {
		case err != nil:
			v.errorf(t, "spec.schedule", "%q: @every needs a duration, such as @every 5m", s)
		case d < time.Second || d%time.Second != 0:
			v.errorf(t, "spec.schedule", "%q: @every takes whole seconds, at least 1s", s)
		}
	default:
		if _, err := cronParser.Parse(s); err != nil {
			v.errorf(t, "spec.schedule", "%q is not a cron schedule (%v); use five fields, minute hour day-of-month month day-of-week, such as \"0 3 * * *\", or @hourly, @daily, @every 5m", s, err)
		}
	}
	if !validTimeZone(t.Spec.TimeZone) {
		v.errorf(t, "spec.timeZone", "%q is not a time zone; use an IANA name such as UTC or Europe/Berlin", t.Spec.TimeZone)
	}
}

// zoneNameRE is the shape of IANA zone names. It refuses the host's
// special files (localtime, posixrules, posix/..., right/...), which
// time.LoadLocation would find on some hosts and not on others.
var zoneNameRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`)

func validTimeZone(name string) bool {
	if name == "Local" || !zoneNameRE.MatchString(name) {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

var kafkaNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

func kafkaNameOK(s string) bool {
	return kafkaNameRE.MatchString(s) && s != "." && s != ".."
}

var natsTokenRE = regexp.MustCompile(`^[A-Za-z0-9_\-]+$`)

func natsSubjectOK(s string) bool {
	if len(s) > 255 {
		return false
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "*":
		case tok == ">" && i == len(toks)-1:
		case natsTokenRE.MatchString(tok):
		default:
			return false
		}
	}
	return true
}

func (v *validator) topic(t Object, spec *v1alpha1.TopicTriggerSpec, ok func(string) bool, form string) {
	switch {
	case spec.Topic == "":
		v.errorf(t, "spec.topic", "missing; give the topic to consume")
	case !ok(spec.Topic):
		v.errorf(t, "spec.topic", "%q is not %s", spec.Topic, form)
	}
	if spec.Group != "" && !kafkaNameOK(spec.Group) {
		v.errorf(t, "spec.group", "%q is not a valid group name: use up to 249 letters, digits, '.', '_' and '-'", spec.Group)
	}
	if r := spec.Retry; r != nil {
		if r.Attempts != nil && (*r.Attempts < 1 || *r.Attempts > maxAttempts) {
			v.errorf(t, "spec.retry.attempts", "%d is out of range; use 1 to %d", *r.Attempts, maxAttempts)
		}
		if r.Backoff != nil {
			v.duration(t, "spec.retry.backoff", r.Backoff.Duration, time.Hour, "use a shorter backoff")
		}
		if r.MaxBackoff != nil {
			v.duration(t, "spec.retry.maxBackoff", r.MaxBackoff.Duration, 24*time.Hour, "use a shorter backoff")
		}
		if r.Backoff != nil && r.MaxBackoff != nil && r.MaxBackoff.Duration < r.Backoff.Duration {
			v.errorf(t, "spec.retry.maxBackoff", "%s is less than backoff %s; raise it", r.MaxBackoff.Duration, r.Backoff.Duration)
		}
	}
}

// previewName matches the environments ferry makes for pull requests:
// pr-N-SOURCE (store.PreviewName), and pr-N, the older form, kept
// reserved.
var previewName = regexp.MustCompile(`^pr-[0-9]+(-.*)?$`)

// reservedStages are environment names ferry uses itself: "local" for
// ferry run.
var reservedStages = []string{"local"}

func (v *validator) pipeline() {
	p := v.set.Pipeline
	if p == nil || v.set.Origin(p) == nil {
		return // the default pipeline
	}
	stages := p.Spec.Stages
	if len(stages) == 0 {
		v.errorf(p, "spec.stages", "missing; list at least one stage, such as {name: dev, auto: true}")
		return
	}
	index := map[string]int{}
	for i, st := range stages {
		f := fmt.Sprintf("spec.stages[%d]", i)
		switch {
		case st.Name == "":
			v.errorf(p, f+".name", "missing; name the environment, such as dev")
			continue
		case len(content.IsDNS1123Label(st.Name)) > 0:
			v.errorf(p, f+".name", "%q is not a valid environment name; %s", st.Name, nameRule(st.Name))
		case previewName.MatchString(st.Name) || slices.Contains(reservedStages, st.Name):
			v.errorf(p, f+".name", "%q is a name ferry gives its own environments (pull-request previews are pr-<n> and pr-<n>-<source>, ferry run uses local); choose another", st.Name)
		}
		if j, dup := index[st.Name]; dup {
			v.errorf(p, f+".name", "stage %q is listed twice (first as stage %d); rename one", st.Name, j+1)
			continue
		}
		index[st.Name] = i
	}
	for i, st := range stages {
		if index[st.Name] != i {
			continue // a second stage of the same name, already reported
		}
		v.stage(p, i, st, index)
	}
	v.stageCycles(p, index)
	if pv := p.Spec.Previews; pv != nil && pv.TTL != nil {
		v.duration(p, "spec.previews.ttl", pv.TTL.Duration, 0, "")
	}
}

func (v *validator) stage(p *v1alpha1.Pipeline, i int, st v1alpha1.Stage, index map[string]int) {
	f := fmt.Sprintf("spec.stages[%d]", i)
	if i == 0 && len(st.From) > 0 {
		v.errorf(p, f+".from", "the first stage receives every new release and has no from; list the stage it should follow first, or remove from")
	}
	for _, from := range st.From {
		if from == "" {
			v.errorf(p, f+".from", "lists an empty stage name; name the stage this one follows")
			continue
		}
		switch _, ok := index[from]; {
		case from == st.Name:
			v.errorf(p, f+".from", "stage %q comes from itself; name the stage before it", st.Name)
		case !ok:
			hint := ""
			if s := closest(from, sortedKeys(index)); s != "" {
				hint = fmt.Sprintf("did you mean %q? ", s)
			}
			v.errorf(p, f+".from", "no stage named %q; %sthe stages are %s", from, hint, strings.Join(stageNames(p), ", "))
		}
	}
	if st.Auto && st.Approval != nil {
		v.errorf(p, f+".auto", "a stage is auto or waits for an approval, not both; remove auto to require the approval")
	}
	if a := st.Approval; a != nil {
		if a.Required != nil && *a.Required < 1 {
			v.errorf(p, f+".approval.required", "%d approvals means none; use at least 1, or make the stage auto", *a.Required)
		}
		if a.Required != nil && len(a.Approvers) > 0 && int(*a.Required) > len(a.Approvers) {
			v.errorf(p, f+".approval.required", "needs %d approvals but lists %d approvers, so it could never pass; add approvers or lower required", *a.Required, len(a.Approvers))
		}
		for j, who := range a.Approvers {
			name := strings.TrimPrefix(who, "group:")
			if name == "" || strings.ContainsAny(name, " \t\n:") {
				v.errorf(p, fmt.Sprintf("%s.approval.approvers[%d]", f, j), "%q is not a user name or group:<name>", who)
			}
		}
		if a.ExpireAfter != nil {
			v.duration(p, f+".approval.expireAfter", a.ExpireAfter.Duration, 0, "")
		}
	}
	if st.Soak != nil && (st.Soak.Duration < 0 || st.Soak.Duration > maxSoak) {
		v.errorf(p, f+".soak", "%s is out of range; use 0 to %s", st.Soak.Duration, maxSoak)
	}
	names := map[string]bool{}
	for j, c := range st.Verify {
		v.check(p, fmt.Sprintf("%s.verify[%d]", f, j), c)
		if names[c.Name] {
			v.errorf(p, fmt.Sprintf("%s.verify[%d]", f, j), "check %q is listed twice in stage %s; give each check its own name", c.Name, st.Name)
		}
		names[c.Name] = true
	}
}

func stageNames(p *v1alpha1.Pipeline) []string {
	var out []string
	for _, st := range p.Spec.Stages {
		out = append(out, st.Name)
	}
	return out
}

var jsonPathRE = regexp.MustCompile(`^\$(\.[A-Za-z_][A-Za-z0-9_\-]*|\[[0-9]+\]|\["[^"]*"\])*$`)

func (v *validator) check(p *v1alpha1.Pipeline, f string, c v1alpha1.Check) {
	switch {
	case c.HTTP != nil && c.Event != nil:
		v.errorf(p, f, "a check is http or event, not both; split it into two checks")
	case c.HTTP == nil && c.Event == nil:
		v.errorf(p, f, "says nothing to check; give http: {path: /hello} or event: {function: hello}")
	case c.HTTP != nil:
		h := c.HTTP
		hf := f + ".http"
		if v.httpPath(p, hf+".path", h.Path) && !v.routed(h.Method, h.Path) && !v.anyBroken(v1alpha1.KindHTTPTrigger) {
			v.errorf(p, hf+".path", "no HTTPTrigger serves %s %s; a check calls the gateway, so point it at a trigger's path", h.Method, h.Path)
		}
		if !slices.Contains(httpMethods, h.Method) {
			v.errorf(p, hf+".method", "%q is not an HTTP method (use %s)", h.Method, orList(httpMethods))
		}
		v.status(p, hf+".expectStatus", h.ExpectStatus)
		switch {
		case h.JSONPath != "" && h.Equals == nil:
			v.errorf(p, hf+".equals", "missing; jsonPath needs the value it must equal")
		case h.JSONPath == "" && h.Equals != nil:
			v.errorf(p, hf+".jsonPath", "missing; equals needs a jsonPath such as $.status")
		case h.JSONPath != "" && !jsonPathRE.MatchString(h.JSONPath):
			v.errorf(p, hf+".jsonPath", "%q is not a path ferry evaluates; use $ with .field, [index] and [\"key\"] steps, such as $.items[0].name", h.JSONPath)
		}
		if h.MaxLatency != nil {
			v.duration(p, hf+".maxLatency", h.MaxLatency.Duration, time.Minute, "a check waits at most that long")
		}
		for k := range h.Headers {
			if !headerRE.MatchString(k) {
				v.errorf(p, joinPath(hf+".headers", k), "%q is not an HTTP header name", k)
			}
		}
	case c.Event != nil:
		e := c.Event
		ef := f + ".event"
		switch {
		case e.Function == "":
			v.errorf(p, ef+".function", "missing; name the function to invoke")
		case v.set.Function(e.Function) == nil && !v.mayBeBroken(v1alpha1.KindFunction, e.Function):
			v.errorf(p, ef+".function", "no Function named %q; fix the name", e.Function)
		}
		v.status(p, ef+".expectStatus", e.ExpectStatus)
	}
}

var headerRE = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")

func (v *validator) status(p Object, f string, code int32) {
	if code < 100 || code > 599 {
		v.errorf(p, f, "%d is not an HTTP status; use 100 to 599", code)
	}
}

// routed reports whether an HTTPTrigger serves method on path.
func (v *validator) routed(method, p string) bool {
	for _, t := range v.set.HTTPTriggers {
		if t.Spec.Path == p && (len(t.Spec.Methods) == 0 || slices.Contains(t.Spec.Methods, method)) {
			return true
		}
	}
	return false
}

// stageCycles refuses stages whose from references loop, naming the loop.
func (v *validator) stageCycles(p *v1alpha1.Pipeline, index map[string]int) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make([]int, len(p.Spec.Stages))
	var stack []string
	reported := false
	var visit func(i int)
	visit = func(i int) {
		if reported {
			return
		}
		state[i] = visiting
		stack = append(stack, p.Spec.Stages[i].Name)
		for _, from := range p.Spec.Stages[i].From {
			if i == 0 {
				break // the first stage's from is an error of its own
			}
			j, ok := index[from]
			if !ok || j == i {
				continue // reported by stage
			}
			switch state[j] {
			case visiting:
				start := slices.Index(stack, from)
				loop := append(append([]string(nil), stack[start:]...), from)
				v.errorf(p, fmt.Sprintf("spec.stages[%d].from", i), "stages come from each other in a loop (%s); a release could never enter them, so break the loop", strings.Join(loop, " <- "))
				reported = true
				return
			case unvisited:
				visit(j)
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
	}
	for i := range p.Spec.Stages {
		if state[i] == unvisited {
			visit(i)
		}
	}
}
