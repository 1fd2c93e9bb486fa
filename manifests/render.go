package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// renderedMeta is the metadata a rendered object keeps: what the manifest
// may set, nothing a store adds.
type renderedMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type renderedObject struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   renderedMeta `json:"metadata"`
	Spec       any          `json:"spec"`
}

// Render writes a set as one canonical YAML stream: defaults applied,
// objects sorted by kind (Function, HTTPTrigger, CronTrigger, NATSTrigger,
// KafkaTrigger, Pipeline) then name, keys sorted at every level, no status.
// Two sets that mean the same render to the same bytes, which is what makes
// the rendering fit to be hashed into a release's identity. The stream
// loads back with Load into an equal set. Render does not change s.
func Render(s *Set) ([]byte, error) {
	docs, err := canonicalObjects(s)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(yamlNode(d)); err != nil {
			return nil, fmt.Errorf("rendering %v: %w", d["kind"], err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rendering: %w", err)
	}
	return buf.Bytes(), nil
}

// RenderJSON writes the same objects as a JSON List, keys sorted, indented
// for people; for tools that read JSON more easily than a YAML stream.
func RenderJSON(s *Set) ([]byte, error) {
	docs, err := canonicalObjects(s)
	if err != nil {
		return nil, err
	}
	items := make([]any, len(docs))
	for i, d := range docs {
		items[i] = d
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}); err != nil {
		return nil, fmt.Errorf("rendering: %w", err)
	}
	return buf.Bytes(), nil
}

// canonicalObjects defaults a copy of s and turns each object into plain
// maps, lists and json.Numbers, so both encoders sort keys the same way and
// no Go struct order leaks into the bytes.
func canonicalObjects(s *Set) ([]map[string]any, error) {
	c := s.deepCopy()
	Default(c)
	var out []map[string]any
	for _, obj := range c.Objects() {
		r := renderedObject{
			APIVersion: obj.GetObjectKind().GroupVersionKind().GroupVersion().String(),
			Kind:       obj.GetObjectKind().GroupVersionKind().Kind,
			Metadata: renderedMeta{
				Name:        obj.GetName(),
				Labels:      obj.GetLabels(),
				Annotations: obj.GetAnnotations(),
			},
			Spec: specOf(obj),
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("rendering %s %s: %w", r.Kind, r.Metadata.Name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("rendering %s %s: %w", r.Kind, r.Metadata.Name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// yamlNode builds the YAML tree of a JSON value by hand: keys sorted
// byte-wise, numbers written exactly as JSON wrote them (no float
// rounding, no quoting), strings quoted only where YAML would otherwise
// read them as something else.
func yamlNode(v any) *yaml.Node {
	switch v := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range sortedKeys(v) {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, yamlNode(v[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, item := range v {
			n.Content = append(n.Content, yamlNode(item))
		}
		return n
	case json.Number:
		// YAML reads an integer beyond 64 bits as a float; tag it so, or
		// the encoder would write an explicit !!int the loader refuses.
		tag := "!!float"
		if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			tag = "!!int"
		} else if _, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(v)}
	case string:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
		// A string with a line break or another control character is
		// written double-quoted: the block styles YAML would pick cannot
		// hold every such string (a leading tab, say) and load it back.
		if strings.IndexFunc(v, unicode.IsControl) >= 0 {
			n.Style = yaml.DoubleQuotedStyle
		}
		return n
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	panic(fmt.Sprintf("manifests: cannot render %T", v))
}
