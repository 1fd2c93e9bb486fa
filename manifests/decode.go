package manifests

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// decoder turns one YAML document into a typed object, strictly, recording
// the position of every field it sets and every problem it finds. It decodes
// by reflection over the json tags of the API types, so the manifest accepts
// exactly the fields a Kubernetes API server would, spelled exactly as it
// would (no case folding).
//
// It is only ever run on a tree that checkTree has bounded, so following
// aliases here cannot explode.
type decoder struct {
	file   string
	errs   *errs
	origin *Origin
	// tag is the struct tag that names fields: "json" for the API types
	// (the default), "yaml" for ferry's own files (DecodeStrict).
	tag string
}

// Origin records where an object and each of its fields came from, so that
// validation can point at the line that needs fixing.
type Origin struct {
	// Pos is the start of the object's document.
	Pos
	// values holds where each scalar value was written; keys where each
	// field's key was (for a mapping or list, the line to point at).
	values map[string]Pos
	keys   map[string]Pos
	// bad holds the fields that failed to decode, so validation does not
	// report them a second time.
	bad map[string]bool
}

// reported says whether a problem with field was already reported while
// decoding: the field itself, one around it (a field inside a value that
// failed to decode was never set, so anything said about it is noise), or
// one inside it (a list whose item failed holds a blank in its place).
// A whole section (spec, metadata) is never taken as reported, so one bad
// field cannot hide the rest of its object.
func (o *Origin) reported(field string) bool {
	if o == nil {
		return false
	}
	for b := range o.bad {
		if b != "" && (b == field || within(field, b) || (strings.Contains(field, ".") && within(b, field))) {
			return true
		}
	}
	return false
}

// within reports whether path p lies inside the field parent.
func within(p, parent string) bool {
	return strings.HasPrefix(p, parent) && len(p) > len(parent) && (p[len(parent)] == '.' || p[len(parent)] == '[')
}

// At returns the position of a field path ("spec.runtime"): its value if
// that is a scalar, else its key; for a field that was not written, the key
// of its nearest enclosing field, or the object's start.
func (o *Origin) At(field string) Pos {
	if o == nil {
		return Pos{}
	}
	if p, ok := o.values[field]; ok {
		return p
	}
	for f := field; f != ""; f = parentPath(f) {
		if p, ok := o.keys[f]; ok {
			return p
		}
	}
	return o.Pos
}

// Has reports whether the manifest wrote the field itself (as opposed to a
// default filling it in).
func (o *Origin) Has(field string) bool {
	if o == nil {
		return false
	}
	_, ok := o.keys[field]
	return ok
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func (d *decoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	if d.origin.bad == nil {
		d.origin.bad = map[string]bool{}
	}
	d.origin.bad[field] = true
	d.errs.add(d.pos(n), field, format, args...)
}

var (
	durationType    = reflect.TypeOf(metav1.Duration{})
	quantityType    = reflect.TypeOf(resource.Quantity{})
	rawType         = reflect.TypeOf(runtime.RawExtension{})
	objectMetaType  = reflect.TypeOf(metav1.ObjectMeta{})
	envValueType    = reflect.TypeOf(v1alpha1.EnvValue{})
	goDurationType  = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// decodeOwnYAML lets a type of ferry's own files that decodes itself
// (a yaml.Unmarshaler) do so, and reports whether it did.
func (d *decoder) decodeOwnYAML(n *yaml.Node, v reflect.Value, path string) bool {
	if !v.CanAddr() || !v.Addr().Type().Implements(unmarshalerType) {
		return false
	}
	if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
		d.fail(n, path, "%v", err)
	}
	return true
}

// decodeGoDuration reads a time.Duration of ferry's own files, written as
// a duration ("90s") as yaml.v3 would accept it.
func (d *decoder) decodeGoDuration(n *yaml.Node, v reflect.Value, path string) {
	if dur, ok := d.duration(n, path); ok {
		v.SetInt(int64(dur))
	}
}

// duration reads a duration scalar; a mistake is reported at n.
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.scalar(n, path, "!!str", "a duration such as 500ms, 10s or 1m30s")
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.fail(n, path, "%q is not a duration (use a number and a unit: 500ms, 10s, 1m30s, 2h)", s)
		return 0, false
	}
	return dur, true
}

// resolve follows aliases and unwraps documents.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// decode sets v from n. path names v in error messages and in the origin.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n == nil {
		return
	}
	if path != "" && n.Kind == yaml.ScalarNode {
		d.origin.values[path] = d.pos(n)
	}
	t := v.Type()
	if d.tag == "yaml" && d.decodeOwnYAML(n, v, path) {
		return
	}
	switch t {
	case goDurationType:
		if d.tag == "yaml" {
			d.decodeGoDuration(n, v, path)
			return
		}
	case durationType:
		d.decodeDuration(n, v, path)
		return
	case quantityType:
		d.decodeQuantity(n, v, path)
		return
	case rawType:
		d.decodeRaw(n, v, path)
		return
	case objectMetaType:
		d.decodeMeta(n, v, path)
		return
	case envValueType:
		d.decodeEnvValue(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path, "!!str", "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "!!bool", "true or false"); ok {
			b, err := parseBool(s)
			if err != nil {
				d.fail(n, path, "%s", err)
				return
			}
			v.SetBool(b)
		}
	case reflect.Int32, reflect.Int64, reflect.Int:
		if s, ok := d.scalar(n, path, "!!int", "a whole number"); ok {
			if leadingZero(s) {
				d.fail(n, path, "%s has a leading zero, which YAML may read as octal; write the number without it", s)
				return
			}
			var x any
			if err := n.Decode(&x); err != nil {
				d.fail(n, path, "%q is not a whole number", s)
				return
			}
			i, ok := toInt64(x)
			if !ok || v.OverflowInt(i) {
				d.fail(n, path, "%s is out of range", s)
				return
			}
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if s, ok := d.scalar(n, path, "!!int", "a whole number"); ok {
			u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
			if err != nil || leadingZero(s) || v.OverflowUint(u) {
				d.fail(n, path, "%s is not a whole number from 0 to %d", s, uint64(1)<<(v.Type().Bits())-1)
				return
			}
			v.SetUint(u)
		}
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.fail(n, path, "ferry cannot load a field of Go type %s; this is a bug in ferry", t)
			return
		}
		if val, ok := d.toJSON(n, path); ok && val != nil {
			v.Set(reflect.ValueOf(val))
		}
	case reflect.Float64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: n.Value, Line: n.Line, Column: n.Column}
		}
		if s, ok := d.scalar(n, path, "!!float", "a number"); ok {
			f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
			if err != nil {
				d.fail(n, path, "%q is not a number", s)
				return
			}
			v.SetFloat(f)
		}
	default:
		// Every API type is made of the kinds above; a new field of another
		// kind must be taught here before it can be loaded.
		d.fail(n, path, "ferry cannot load a field of Go type %s; this is a bug in ferry", t)
	}
}

func toInt64(x any) (int64, bool) {
	switch x := x.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// parseBool accepts the YAML 1.2 spellings of true and false only; an
// explicit !!bool tag on "yes" or "1" must not quietly mean false.
func parseBool(s string) (bool, error) {
	switch s {
	case "true", "True", "TRUE":
		return true, nil
	case "false", "False", "FALSE":
		return false, nil
	}
	return false, fmt.Errorf("expected true or false, got %q", s)
}

var leadingZeroRE = regexp.MustCompile(`^[-+]?0[0-9_]`)

// leadingZero reports a number such as 010, which YAML 1.1 reads as octal
// and YAML 1.2 as decimal: ambiguous, so refused.
func leadingZero(s string) bool {
	return leadingZeroRE.MatchString(s)
}

// scalar checks that n is a scalar of the wanted tag and returns its text.
// A plain scalar that YAML reads as another type is refused with a hint,
// because silently turning 128 into "128" or yes into true hides mistakes.
func (d *decoder) scalar(n *yaml.Node, path, tag, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", want, describe(n))
		return "", false
	}
	got := n.ShortTag()
	if got == tag {
		return n.Value, true
	}
	if got == "!!null" {
		return "", false
	}
	hint := ""
	if tag == "!!str" && n.Style == 0 {
		hint = fmt.Sprintf(" (quote it: %q)", n.Value)
	}
	d.fail(n, path, "expected %s, got %s%s", want, describe(n), hint)
	return "", false
}

// describe names what a node is, for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", v)
		case "!!int", "!!float":
			return "the number " + v
		case "!!bool":
			return v
		case "!!null":
			return "null"
		default:
			return fmt.Sprintf("%s %q", n.ShortTag(), v)
		}
	}
	return "nothing"
}

// pair is one key and value of a mapping, after merge keys are applied.
type pair struct {
	key, value *yaml.Node
}

// pairs lists a mapping's entries, applying YAML merge keys ("<<: *base",
// where explicit keys win) and refusing duplicate keys, which yaml.v3's node
// API would otherwise let through silently.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var explicit, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(val, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, joinPath(path, "?"), "a key must be a plain string, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, joinPath(path, k.Value), "set twice (first at line %d); remove one", first.Line)
			continue
		}
		seen[k.Value] = k
		explicit = append(explicit, pair{k, val})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; ok {
			continue
		}
		seen[p.key.Value] = p.key
		explicit = append(explicit, p)
	}
	return explicit
}

func (d *decoder) mergeSources(val *yaml.Node, path string) []pair {
	val = resolve(val)
	switch {
	case val == nil:
		return nil
	case val.Kind == yaml.MappingNode:
		return d.pairs(val, path)
	case val.Kind == yaml.SequenceNode:
		// In a list of merged maps, earlier maps win.
		var out []pair
		have := map[string]bool{}
		for _, m := range val.Content {
			m = resolve(m)
			if m == nil || m.Kind != yaml.MappingNode {
				d.fail(val, path, "<< merges mappings only, got %s", describe(val))
				return nil
			}
			for _, p := range d.pairs(m, path) {
				if !have[p.key.Value] {
					have[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	}
	d.fail(val, path, "<< merges mappings only, got %s", describe(val))
	return nil
}

func joinPath(path, key string) string {
	if strings.ContainsAny(key, ".[]") {
		key = "[" + strconv.Quote(key) + "]"
		return path + key
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) mapping(n *yaml.Node, path string) ([]pair, bool) {
	if isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	return d.pairs(n, path), true
}

// field is one settable field of a struct, reached through inline
// embedded structs.
type field struct {
	name  string
	index []int
}

type fieldKey struct {
	t   reflect.Type
	tag string
}

var fieldCache sync.Map // fieldKey -> []field

// fieldsOf lists a struct's fields by json name, flattening ",inline"
// embedded structs the way the Kubernetes JSON decoder does.
func fieldsOf(t reflect.Type) []field { return fieldsByTag(t, "json") }

// fieldsByTag lists a struct's fields by the names its tag gives them. An
// untagged field is named as the encoder of that tag would name it: its Go
// name for json, the name in lower case for yaml.
func fieldsByTag(t reflect.Type, tagName string) []field {
	if f, ok := fieldCache.Load(fieldKey{t, tagName}); ok {
		return f.([]field)
	}
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get(tagName)
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if sf.Anonymous && name == "" && strings.Contains(opts, "inline") {
			for _, sub := range fieldsByTag(sf.Type, tagName) {
				out = append(out, field{sub.name, append([]int{i}, sub.index...)})
			}
			continue
		}
		switch {
		case name != "":
		case tagName == "yaml":
			name = strings.ToLower(sf.Name)
		default:
			name = sf.Name
		}
		out = append(out, field{name, []int{i}})
	}
	fieldCache.Store(fieldKey{t, tagName}, out)
	return out
}

// decodeEnvValue reads a variable of a function's env in either of its
// forms: a string, or a mapping with value or valueFrom (see
// v1alpha1.EnvValue). A number or a bool is refused as a string field is,
// with the hint to quote it.
func (d *decoder) decodeEnvValue(n *yaml.Node, v reflect.Value, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		// why: EnvValue is an API type, named by json tags also where
		// ferry's own files (tag yaml) hold one.
		tag := d.tag
		d.tag = "json"
		d.decodeStruct(n, v, path)
		d.tag = tag
	case yaml.ScalarNode:
		if s, ok := d.scalar(n, path, "!!str", "a string"); ok {
			v.FieldByName("Value").SetString(s)
		}
	default:
		d.fail(n, path, "expected a string or {valueFrom: {secret: NAME}}, got %s", describe(n))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	pairs, ok := d.mapping(n, path)
	if !ok {
		return
	}
	fields := fieldsByTag(v.Type(), cmp.Or(d.tag, "json"))
	for _, p := range pairs {
		key := p.key.Value
		f, found := lookupField(fields, key)
		if !found {
			d.unknownField(p.key, path, key, fields)
			continue
		}
		if d.tag == "" && path == "" && key == "status" {
			d.fail(p.key, "status", "status is written by ferry, not by a manifest; remove it")
			continue
		}
		d.origin.keys[joinPath(path, key)] = d.pos(p.key)
		d.decode(p.value, v.FieldByIndex(f.index), joinPath(path, key))
	}
}

func lookupField(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	return field{}, false
}

func (d *decoder) unknownField(k *yaml.Node, path, key string, fields []field) {
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		if path == "" && (f.name == "status" || f.name == "apiVersion" || f.name == "kind") {
			continue
		}
		names = append(names, f.name)
	}
	where := "here"
	if path != "" {
		where = "in " + path
	}
	if d.tag == "yaml" {
		// ferry's own files: name the keys that exist, so the fix is in
		// the message even when the typo is far from any of them.
		hint := ""
		if s := closest(key, names); s != "" {
			hint = fmt.Sprintf("did you mean %q? ", s)
		}
		d.fail(k, joinPath(path, key), "unknown key; %sthe keys allowed %s are %s", hint, where, strings.Join(names, ", "))
		return
	}
	if s := closest(key, names); s != "" {
		d.fail(k, joinPath(path, key), "unknown field; did you mean %q?", s)
		return
	}
	d.fail(k, joinPath(path, key), "unknown field; the fields allowed %s are %s", where, strings.Join(names, ", "))
}

// closest returns the candidate nearest to s (by edit distance, ignoring
// case), if it is near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		dist := editDistance(strings.ToLower(s), strings.ToLower(c))
		if dist < bestD {
			best, bestD = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	pairs, ok := d.mapping(n, path)
	if !ok {
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "ferry cannot load a map keyed by %s; this is a bug in ferry", t.Key())
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(t, len(pairs)))
	}
	for _, p := range pairs {
		if p.key.ShortTag() != "!!str" {
			d.fail(p.key, path, "a key must be a string, got %s (quote it: %q)", describe(p.key), p.key.Value)
			continue
		}
		elem := reflect.New(t.Elem()).Elem()
		d.origin.keys[joinPath(path, p.key.Value)] = d.pos(p.key)
		d.decode(p.value, elem, joinPath(path, p.key.Value))
		v.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		if r := resolve(item); r != nil {
			d.origin.keys[ip] = d.pos(r)
		}
		d.decode(item, s.Index(i), ip)
	}
	v.Set(s)
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if dur, ok := d.duration(n, path); ok {
		v.Set(reflect.ValueOf(metav1.Duration{Duration: dur}))
	}
}

func (d *decoder) decodeQuantity(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int") {
		d.fail(n, path, "expected a quantity such as 128Mi or 1Gi, got %s", describe(n))
		return
	}
	q, err := resource.ParseQuantity(n.Value)
	if err != nil {
		d.fail(n, path, "%q is not a quantity (use a number and a binary unit: 128Mi, 1Gi)", n.Value)
		return
	}
	v.Set(reflect.ValueOf(q))
}

// decodeRaw keeps free-form data (a cron trigger's event data, a check's
// expected value) as canonical JSON: keys sorted, no insignificant space.
func (d *decoder) decodeRaw(n *yaml.Node, v reflect.Value, path string) {
	val, ok := d.toJSON(n, path)
	if !ok {
		return
	}
	b, err := json.Marshal(val)
	if err != nil {
		d.fail(n, path, "cannot be written as JSON: %v", err)
		return
	}
	v.Set(reflect.ValueOf(runtime.RawExtension{Raw: b}))
}

// toJSON converts a YAML tree to the Go values encoding/json writes.
func (d *decoder) toJSON(n *yaml.Node, path string) (any, bool) {
	n = resolve(n)
	if n == nil {
		return nil, true
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		for _, p := range d.pairs(n, path) {
			if p.key.ShortTag() != "!!str" {
				d.fail(p.key, path, "JSON keys are strings; quote %q", p.key.Value)
				ok = false
				continue
			}
			val, vok := d.toJSON(p.value, joinPath(path, p.key.Value))
			ok = ok && vok
			out[p.key.Value] = val
		}
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		ok := true
		for i, item := range n.Content {
			val, vok := d.toJSON(item, fmt.Sprintf("%s[%d]", path, i))
			ok = ok && vok
			out[i] = val
		}
		return out, ok
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, true
		case "!!str", "!!timestamp":
			return n.Value, true
		case "!!bool":
			b, err := parseBool(n.Value)
			if err != nil {
				d.fail(n, path, "%s", err)
				return nil, false
			}
			return b, true
		case "!!int", "!!float":
			num, err := canonicalNumber(n.Value)
			if err != nil {
				d.fail(n, path, "%s", err)
				return nil, false
			}
			return num, true
		}
	}
	d.fail(n, path, "%s cannot be written as JSON", describe(n))
	return nil, false
}

// metaFields are the metadata a manifest may set. Everything else in
// ObjectMeta (uid, resourceVersion, namespace, ...) belongs to whoever
// stores the object.
var metaFields = []string{"name", "labels", "annotations"}

func (d *decoder) decodeMeta(n *yaml.Node, v reflect.Value, path string) {
	pairs, ok := d.mapping(n, path)
	if !ok {
		return
	}
	meta := v.Addr().Interface().(*metav1.ObjectMeta)
	for _, p := range pairs {
		key := p.key.Value
		fp := joinPath(path, key)
		d.origin.keys[fp] = d.pos(p.key)
		switch key {
		case "name":
			d.decode(p.value, reflect.ValueOf(&meta.Name).Elem(), fp)
		case "labels":
			d.decode(p.value, reflect.ValueOf(&meta.Labels).Elem(), fp)
		case "annotations":
			d.decode(p.value, reflect.ValueOf(&meta.Annotations).Elem(), fp)
		case "namespace":
			d.fail(p.key, fp, "the environment chooses the namespace; remove metadata.namespace")
		default:
			if _, known := lookupField(fieldsOf(objectMetaType), key); known {
				d.fail(p.key, fp, "set by whoever stores the object, not by a manifest; remove it")
				continue
			}
			if s := closest(key, metaFields); s != "" {
				d.fail(p.key, fp, "unknown field; did you mean %q?", s)
				continue
			}
			d.fail(p.key, fp, "unknown field; metadata holds %s", strings.Join(metaFields, ", "))
		}
	}
}

// sortedKeys lists a map's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
