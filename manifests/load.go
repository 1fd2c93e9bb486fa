package manifests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing/fstest"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Limits against hostile or broken input. A repository is untrusted: a pull
// request from anyone reaches the loader, so every limit is checked before
// the expensive step it protects.
const (
	// MaxFileSize is the largest manifest file read. Real manifests are a
	// few kilobytes; a megabyte leaves room for a thousand objects.
	MaxFileSize = 1 << 20
	// MaxObjects is the most objects one repository may declare.
	MaxObjects = 1000
	// MaxFiles is the most files .ferry/ may hold.
	MaxFiles = 1000
	// MaxDepth is the deepest nesting of mappings and lists, aliases
	// followed. The API's own depth is under ten; free-form data gets the
	// rest.
	MaxDepth = 64
	// maxDocuments bounds empty documents ("---" repeated), which hold no
	// object and so do not count against MaxObjects.
	maxDocuments = 10 * MaxObjects
	// expansionAllowance is how many nodes aliases may add beyond twice
	// the nodes actually written: plenty for "<<: *defaults" on every
	// function, nothing like the billion a "laughs" bomb expands to.
	expansionAllowance = 100_000
)

// Where a repository's manifests live.
const (
	// ManifestFile is the manifest at the repository root.
	ManifestFile = "ferry.yaml"
	// ManifestDir holds more manifests, *.yaml and *.yml, not recursively.
	ManifestDir = ".ferry"
)

// rootManifests are the names the root manifest may have, preferred first;
// a repository has at most one of them.
var rootManifests = []string{ManifestFile, "ferry.yml"}

// fileStart is the position of an error about a whole file.
func fileStart(name string) Pos { return Pos{File: name, Line: 1, Column: 1} }

// Load reads every manifest of the repository in fsys, decodes it strictly,
// applies defaults and validates the result against the repository's files.
// The error, if any, is an ErrorList holding every problem found, each with
// its file:line:column; the Set is nil then, so nothing downstream ever sees
// a half-valid declaration.
//
// fsys should implement fs.ReadLinkFS (os.DirFS does) so that symlinks can
// be confined to the repository; on one that does not, symlinks are
// invisible and followed.
func Load(ctx context.Context, fsys fs.FS) (*Set, error) {
	files, err := findManifests(fsys)
	if err != nil {
		return nil, err
	}
	return load(ctx, fsys, files, false)
}

// ReleaseFile is the name errors give to a release's manifest.
const ReleaseFile = "release.yaml"

// LoadRelease reads a release's rendered manifest (what Render printed for
// a Set whose functions have their images pinned), with the same strict
// decoding and rules as Load, except that it needs no repository: sources
// and handlers are not looked up, and every function must carry its image
// pinned by digest instead. A release is deployable from these bytes
// alone.
func LoadRelease(ctx context.Context, data []byte) (*Set, error) {
	fsys := fstest.MapFS{ReleaseFile: &fstest.MapFile{Data: data, Mode: 0o644}}
	return load(ctx, fsys, []string{ReleaseFile}, true)
}

func load(ctx context.Context, fsys fs.FS, files []string, release bool) (*Set, error) {
	l := &loader{fsys: fsys, errs: &errs{}, set: newSet()}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := l.loadFile(f); err != nil {
			return nil, err
		}
		if l.tooMany {
			break
		}
	}
	l.set.Files = files
	// Validate even when decoding failed, so that one run reports every
	// problem; fields that failed to decode are not reported twice.
	Default(l.set)
	if err := validate(ctx, fsys, l.set, l.errs, release); err != nil {
		return nil, err
	}
	if err := l.errs.err(); err != nil {
		return nil, err
	}
	return l.set, nil
}

// findManifests lists the manifest files: ferry.yaml (or ferry.yml), then
// .ferry/*.yaml and .ferry/*.yml in name order.
func findManifests(fsys fs.FS) ([]string, error) {
	var files []string
	var c errs
	root := ""
	for _, name := range rootManifests {
		info, err := fs.Lstat(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if root != "" {
			c.add(fileStart(name), "", "both %s and %s exist; keep one", root, name)
			continue
		}
		if info.IsDir() {
			c.add(fileStart(name), "", "is a folder; the manifest is a file (use %s/ for a folder of manifests)", ManifestDir)
			continue
		}
		root = name
		files = append(files, name)
	}
	if _, err := fs.Lstat(fsys, ManifestDir); err == nil {
		// Resolve .ferry before reading it: ReadDir would follow a link
		// out of the repository.
		real, err := resolveInRoot(fsys, ManifestDir)
		if err != nil {
			c.add(fileStart(ManifestDir), "", "%v", err)
		} else if entries, err := fs.ReadDir(fsys, real); err != nil {
			c.add(fileStart(ManifestDir), "", "cannot be read as a folder: %v", err)
		} else {
			n := 0
			for _, e := range entries {
				ext := path.Ext(e.Name())
				if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
					continue
				}
				if n++; n > MaxFiles {
					c.add(fileStart(ManifestDir), "", "holds more than %d manifest files; merge some", MaxFiles)
					break
				}
				files = append(files, path.Join(ManifestDir, e.Name()))
			}
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, ErrorList{{Pos: fileStart(ManifestFile),
			Message: fmt.Sprintf("no manifest found: the repository needs %s or %s/*.yaml (ferry init writes one)", ManifestFile, ManifestDir)}}
	}
	return files, nil
}

type loader struct {
	fsys    fs.FS
	errs    *errs
	set     *Set
	objects int
	docs    int
	tooMany bool
	// written and expanded count YAML nodes over the whole load, so that
	// many documents each just under a limit cannot add up to a bomb.
	written, expanded int
}

// loadFile decodes every document of one file. It returns an error only
// for a failure of the file system; problems with the content are
// collected in l.errs.
func (l *loader) loadFile(name string) error {
	at := func(line, col int) Pos { return Pos{File: name, Line: line, Column: col} }
	real, err := resolveInRoot(l.fsys, name)
	if err != nil {
		l.errs.add(fileStart(name), "", "%v", err)
		return nil
	}
	info, err := fs.Stat(l.fsys, real)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		l.errs.add(fileStart(name), "", "is not a regular file")
		return nil
	}
	if info.Size() > MaxFileSize {
		l.errs.add(fileStart(name), "", "is %s; a manifest file may be at most %s (split it into %s/*.yaml)", sizeString(info.Size()), sizeString(MaxFileSize), ManifestDir)
		return nil
	}
	f, err := l.fsys.Open(real)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	defer f.Close()
	// Read one byte past the limit: the size from Stat can lie (a file
	// that grows, a file system that does not know).
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		l.errs.add(fileStart(name), "", "is larger than %s; a manifest file may be at most that (split it into %s/*.yaml)", sizeString(MaxFileSize), ManifestDir)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			p, msg := syntaxError(data, err)
			l.errs.add(at(p.Line, p.Column), "", "invalid YAML: %s", msg)
			return nil
		}
		if l.docs++; l.docs > maxDocuments {
			l.errs.add(at(doc.Line, doc.Column), "", "more than %d YAML documents; a repository may declare at most %d objects", maxDocuments, MaxObjects)
			l.tooMany = true
			return nil
		}
		root := resolve(&doc)
		if isNull(root) {
			continue // an empty document, as between two "---"
		}
		if l.objects++; l.objects > MaxObjects {
			l.errs.add(at(root.Line, root.Column), "", "more than %d objects; a repository may declare at most %d (split it into several repositories or sources)", MaxObjects, MaxObjects)
			l.tooMany = true
			return nil
		}
		if err := l.checkTree(&doc); err != nil {
			l.errs.add(at(err.line, err.col), "", "%s", err.msg)
			if err.fatal {
				l.tooMany = true
				return nil
			}
			continue
		}
		l.decodeObject(name, root)
	}
}

var (
	yamlLine   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// parserProblems are the errors yaml.v3's parser (not its scanner)
// reports. For those it numbers lines from 0, and the line is either where
// the enclosing collection starts or where the problem is, so the hint
// says "near here".
var parserProblems = map[string]string{
	"did not find expected key":              "(check the indentation of the mapping's keys near here)",
	"did not find expected '-' indicator":    "(check the indentation of the list's items near here)",
	"did not find expected ',' or ']'":       "(a [list] near here is not closed, or its items lack ',')",
	"did not find expected ',' or '}'":       "(a {mapping} near here is not closed, or its entries lack ',')",
	"did not find expected node content":     "(a value is missing near here)",
	"did not find expected <document start>": "",
	"did not find expected <stream-start>":   "",
	"found undefined tag handle":             "",
	"found duplicate %YAML directive":        "",
	"found duplicate %TAG directive":         "",
	"found incompatible YAML document":       "",
}

// syntaxError turns a yaml.v3 parse error into a position and a message.
// yaml.v3 gives a line for most errors and never a column; where it gives
// neither, or a line that is off, the position is found in the data.
func syntaxError(data []byte, err error) (Pos, string) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		problem := m[2]
		if hint, ok := parserProblems[problem]; ok {
			n++
			if hint != "" {
				problem += " " + hint
			}
		}
		return Pos{Line: max(n, 1), Column: 1}, problem
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlAnchor.FindStringSubmatch(err.Error()); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			p := offsetPos(data, i)
			return p, fmt.Sprintf("alias *%s names no anchor; define &%s before it", m[1], m[1])
		}
	}
	if i, what := badCharacter(data); i >= 0 {
		return offsetPos(data, i), what + "; YAML files are UTF-8 text"
	}
	return Pos{Line: 1, Column: 1}, msg
}

// offsetPos converts a byte offset into a line and a column in runes.
func offsetPos(data []byte, off int) Pos {
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	return Pos{Line: line, Column: 1 + utf8.RuneCount(data[start:off])}
}

// badCharacter finds the first byte YAML does not accept: invalid UTF-8,
// or a control character other than tab and line breaks.
func badCharacter(data []byte) (int, string) {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return i, fmt.Sprintf("byte 0x%02x is not valid UTF-8", data[i])
		case r == '\t' || r == '\n' || r == '\r' || r == 0x85 || r == 0xFEFF:
		case unicode.IsControl(r) || (r >= 0xd800 && r <= 0xdfff) || r == 0xfffe || r == 0xffff:
			return i, fmt.Sprintf("control character %U is not allowed", r)
		}
		i += size
	}
	return -1, ""
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// newObject returns an empty object of a kind, or nil for a kind ferry
// does not know.
func newObject(kind string) Object {
	switch kind {
	case v1alpha1.KindFunction:
		return &v1alpha1.Function{}
	case v1alpha1.KindHTTPTrigger:
		return &v1alpha1.HTTPTrigger{}
	case v1alpha1.KindCronTrigger:
		return &v1alpha1.CronTrigger{}
	case v1alpha1.KindNATSTrigger:
		return &v1alpha1.NATSTrigger{}
	case v1alpha1.KindKafkaTrigger:
		return &v1alpha1.KafkaTrigger{}
	case v1alpha1.KindPipeline:
		return &v1alpha1.Pipeline{}
	}
	return nil
}

// decodeObject reads apiVersion and kind, then decodes the document into
// the kind's type and adds it to the set, even if parts of it failed (see
// below).
func (l *loader) decodeObject(file string, root *yaml.Node) {
	origin := &Origin{Pos: Pos{File: file, Line: root.Line, Column: root.Column}, values: map[string]Pos{}, keys: map[string]Pos{}}
	d := &decoder{file: file, errs: l.errs, origin: origin}
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "expected an object with apiVersion, kind, metadata and spec, got %s", describe(root))
		return
	}
	// Find apiVersion and kind by a plain scan; decode reports anything
	// wrong with the mapping itself (a key set twice, say) once, later.
	var apiVersion, kind *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i]; {
		case k.Kind != yaml.ScalarNode:
		case k.Value == "apiVersion" && apiVersion == nil:
			apiVersion = resolve(root.Content[i+1])
		case k.Value == "kind" && kind == nil:
			kind = resolve(root.Content[i+1])
		}
	}
	switch {
	case apiVersion == nil:
		d.fail(root, "apiVersion", "missing; set apiVersion: %s", v1alpha1.APIVersion)
	case apiVersion.Kind != yaml.ScalarNode || apiVersion.Value != v1alpha1.APIVersion:
		d.fail(apiVersion, "apiVersion", "%s is not supported; use %s", describe(apiVersion), v1alpha1.APIVersion)
	}
	var obj Object
	switch {
	case kind == nil:
		d.fail(root, "kind", "missing; set one of %s", strings.Join(v1alpha1.Kinds, ", "))
	case kind.Kind != yaml.ScalarNode:
		d.fail(kind, "kind", "expected one of %s, got %s", strings.Join(v1alpha1.Kinds, ", "), describe(kind))
	default:
		obj = newObject(kind.Value)
		if obj == nil {
			hint := ""
			if s := closest(kind.Value, v1alpha1.Kinds); s != "" {
				hint = fmt.Sprintf("did you mean %s? ", s)
				// Whatever the document names is probably what others
				// refer to as that kind; do not call those dangling.
				if name := metadataName(root); name != "" {
					l.set.broken[kindName{s, name}] = true
				}
			}
			d.fail(kind, "kind", "unknown kind %q; %sferry knows %s", kind.Value, hint, strings.Join(v1alpha1.Kinds, ", "))
		}
	}
	if obj == nil {
		return
	}
	d.decode(root, reflect.ValueOf(obj).Elem(), "")
	if origin.reported("metadata.name") {
		// Its name is unknown, so any reference might have meant it.
		l.set.broken[kindName{kind.Value, "*"}] = true
	}
	// Keep an object even if parts of it failed to decode: validation of
	// the rest still reports everything else in the same run, and Load
	// returns no Set when anything failed.
	obj.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind.Value))
	l.set.add(obj, origin)
}

// metadataName digs metadata.name out of a document that could not be
// decoded, for error bookkeeping only.
func metadataName(root *yaml.Node) string {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "metadata" {
			continue
		}
		m := resolve(root.Content[i+1])
		if m == nil || m.Kind != yaml.MappingNode {
			return ""
		}
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == "name" {
				if v := resolve(m.Content[j+1]); v != nil && v.Kind == yaml.ScalarNode {
					return v.Value
				}
			}
		}
	}
	return ""
}

// treeError is a problem found by checkTree; a fatal one ends the load,
// because the budget it exceeded is the whole load's.
type treeError struct {
	line, col int
	msg       string
	fatal     bool
}

func (e *treeError) Error() string { return e.msg }

// checkTree bounds a parsed document before anything follows its aliases:
// nesting depth (aliases included) and the number of nodes it expands to,
// counted over the whole load. A billion-laughs document is a few hundred
// bytes that expand to a billion nodes; it is refused here after visiting
// each written node once, because sizes of anchored nodes are memoized.
func (l *loader) checkTree(doc *yaml.Node) *treeError {
	c := &treeCheck{memo: map[*yaml.Node]treeSize{}, active: map[*yaml.Node]bool{}}
	total, err := c.visit(doc, 0)
	if err != nil {
		return err
	}
	l.written += c.written
	l.expanded += total.nodes
	if limit := 2*l.written + expansionAllowance; l.expanded > limit {
		return &treeError{doc.Line, doc.Column, fmt.Sprintf(
			"YAML aliases expand the manifests to %d nodes from %d written (an alias bomb?); at most %d are allowed, so write the values out or use fewer aliases",
			l.expanded, l.written, limit), true}
	}
	return nil
}

type treeSize struct {
	nodes  int // nodes after expanding aliases
	height int // levels of nesting below and including this node
}

type treeCheck struct {
	memo    map[*yaml.Node]treeSize
	active  map[*yaml.Node]bool
	written int
}

// saturate keeps node counts from overflowing on a deep alias bomb.
const saturate = 1 << 40

func (c *treeCheck) visit(n *yaml.Node, depth int) (treeSize, *treeError) {
	if n.Kind == yaml.AliasNode {
		t := n.Alias
		if t == nil || c.active[t] {
			return treeSize{}, &treeError{n.Line, n.Column, fmt.Sprintf("alias *%s refers to itself; a value cannot contain itself", n.Value), false}
		}
		s, ok := c.memo[t]
		if !ok {
			// An alias before its anchor cannot parse; this only happens
			// for an anchor inside a merge, visited through the alias.
			var err *treeError
			if s, err = c.visit(t, depth); err != nil {
				return s, err
			}
		}
		if s.nodes > expansionAllowance {
			return s, &treeError{n.Line, n.Column, fmt.Sprintf(
				"alias *%s expands to %d nodes (an alias bomb?); at most %d are allowed, so write the values out or use fewer aliases",
				n.Value, s.nodes, expansionAllowance), false}
		}
		if depth+s.height > MaxDepth {
			return s, &treeError{n.Line, n.Column, fmt.Sprintf("alias *%s nests values more than %d levels deep; flatten the document", n.Value, MaxDepth), false}
		}
		return s, nil
	}
	c.written++
	if depth > MaxDepth {
		return treeSize{}, &treeError{n.Line, n.Column, fmt.Sprintf("values nest more than %d levels deep; flatten the document", MaxDepth), false}
	}
	c.active[n] = true
	defer delete(c.active, n)
	s := treeSize{nodes: 1, height: 1}
	for _, child := range n.Content {
		cs, err := c.visit(child, depth+1)
		if err != nil {
			return s, err
		}
		s.nodes = min(s.nodes+cs.nodes, saturate)
		s.height = max(s.height, cs.height+1)
	}
	if n.Anchor != "" {
		c.memo[n] = s
	}
	return s, nil
}
