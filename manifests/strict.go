package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// DecodeStrict decodes data, the one YAML document of the file name, into
// v (a pointer to a struct whose fields carry yaml tags) as strictly as
// Load decodes a manifest: an unknown key (the message lists the known
// ones), a key set twice, a value of the wrong type, a binary or oversized
// file, a second document and an alias bomb are all errors. It is for
// ferry's own files, such as ferry serve's configuration, so that their
// mistakes read like a manifest's.
//
// The error, if any, is an ErrorList with every problem found, each at its
// file:line:column. The Origin says where each key was written, so the
// caller's own checks can point at the line too (Origin.At("sources[0].url")).
// v may be partly set when there are errors.
func DecodeStrict(name string, data []byte, v any) (*Origin, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("manifests.DecodeStrict: %T is not a pointer to a struct; this is a bug in ferry", v)
	}
	c := &errs{}
	origin := &Origin{Pos: fileStart(name), values: map[string]Pos{}, keys: map[string]Pos{}}
	if len(data) > MaxFileSize {
		c.add(fileStart(name), "", "is %s; a file ferry reads may be at most %s", sizeString(int64(len(data))), sizeString(MaxFileSize))
		return origin, c.err()
	}
	if bytes.IndexByte(data, 0) >= 0 {
		// why: a NUL never appears in text; the YAML parser's own message
		// about it ("control characters are not allowed") hides that the
		// wrong file was given.
		c.add(fileStart(name), "", "is a binary file, not YAML; give the path of the YAML file")
		return origin, c.err()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return origin, nil // an empty file: every default
	}
	if err != nil {
		p, msg := syntaxError(data, err)
		c.add(Pos{File: name, Line: p.Line, Column: p.Column}, "", "invalid YAML: %s", msg)
		return origin, c.err()
	}
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		at := fileStart(name)
		if err == nil {
			at = Pos{File: name, Line: second.Line, Column: second.Column}
		}
		c.add(at, "", "holds more than one YAML document; keep one (remove the second ---)")
	}
	l := &loader{errs: c}
	if terr := l.checkTree(&doc); terr != nil {
		c.add(Pos{File: name, Line: terr.line, Column: terr.col}, "", "%s", terr.msg)
		return origin, c.err()
	}
	root := resolve(&doc)
	if isNull(root) {
		return origin, c.err()
	}
	origin.Pos = Pos{File: name, Line: root.Line, Column: root.Column}
	d := &decoder{file: name, errs: c, origin: origin, tag: "yaml"}
	d.decode(root, rv.Elem(), "")
	return origin, c.err()
}

// Reported says whether DecodeStrict already reported a problem with field
// (or one around or inside it), so that a caller's check need not report it
// again.
func (o *Origin) Reported(field string) bool { return o.reported(field) }

// Sort orders the list by position, as Load returns it.
func (l ErrorList) Sort() { l.sort() }
