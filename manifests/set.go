package manifests

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Object is any ferry API object: a Kubernetes object with metadata.
type Object interface {
	metav1.Object
	runtime.Object
}

// Set is a repository's declaration: every object its manifests hold, by
// kind, in the order they were read. A Set from Load is defaulted and valid.
type Set struct {
	Functions     []*v1alpha1.Function
	HTTPTriggers  []*v1alpha1.HTTPTrigger
	CronTriggers  []*v1alpha1.CronTrigger
	NATSTriggers  []*v1alpha1.NATSTrigger
	KafkaTriggers []*v1alpha1.KafkaTrigger
	// Pipeline is the repository's Pipeline, or after defaulting the
	// default one (dev, staging, prod) if it declared none.
	Pipeline *v1alpha1.Pipeline
	// Files are the manifest files read, relative to the repository root.
	Files []string

	origins map[Object]*Origin
	// extraPipelines holds every Pipeline after the first, so validation
	// can point at each of them.
	extraPipelines []*v1alpha1.Pipeline
	// broken names objects that failed to decode, by kind, so references
	// to them are not reported again as dangling.
	broken map[kindName]bool
}

type kindName struct{ kind, name string }

func newSet() *Set {
	return &Set{origins: map[Object]*Origin{}, broken: map[kindName]bool{}}
}

func (s *Set) add(obj Object, o *Origin) {
	s.origins[obj] = o
	switch obj := obj.(type) {
	case *v1alpha1.Function:
		s.Functions = append(s.Functions, obj)
	case *v1alpha1.HTTPTrigger:
		s.HTTPTriggers = append(s.HTTPTriggers, obj)
	case *v1alpha1.CronTrigger:
		s.CronTriggers = append(s.CronTriggers, obj)
	case *v1alpha1.NATSTrigger:
		s.NATSTriggers = append(s.NATSTriggers, obj)
	case *v1alpha1.KafkaTrigger:
		s.KafkaTriggers = append(s.KafkaTriggers, obj)
	case *v1alpha1.Pipeline:
		if s.Pipeline == nil {
			s.Pipeline = obj
		} else {
			s.extraPipelines = append(s.extraPipelines, obj)
		}
	}
}

// Origin says where obj was declared; nil for an object the loader did not
// read (the default Pipeline, or one built in code).
func (s *Set) Origin(obj Object) *Origin {
	return s.origins[obj]
}

// Function returns the function of that name, or nil.
func (s *Set) Function(name string) *v1alpha1.Function {
	for _, f := range s.Functions {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Objects lists every object in canonical order: by kind in the order of
// v1alpha1.Kinds, then by name.
func (s *Set) Objects() []Object {
	var out []Object
	add := func(objs []Object) {
		sort.SliceStable(objs, func(i, j int) bool { return objs[i].GetName() < objs[j].GetName() })
		out = append(out, objs...)
	}
	add(asObjects(s.Functions))
	add(asObjects(s.HTTPTriggers))
	add(asObjects(s.CronTriggers))
	add(asObjects(s.NATSTriggers))
	add(asObjects(s.KafkaTriggers))
	if s.Pipeline != nil {
		out = append(out, s.Pipeline)
	}
	return out
}

func asObjects[T Object](in []T) []Object {
	out := make([]Object, len(in))
	for i, o := range in {
		out[i] = o
	}
	return out
}

// deepCopy copies every object, keeping each copy's origin, so that
// defaulting a copy never changes what a caller holds.
func (s *Set) deepCopy() *Set {
	c := newSet()
	c.Files = append([]string(nil), s.Files...)
	for _, obj := range s.Objects() {
		cp := obj.DeepCopyObject().(Object)
		c.add(cp, s.Origin(obj))
	}
	for _, p := range s.extraPipelines {
		c.add(p.DeepCopy(), s.Origin(p))
	}
	for k := range s.broken {
		c.broken[k] = true
	}
	return c
}

// specOf returns an object's spec.
func specOf(obj Object) any {
	switch o := obj.(type) {
	case *v1alpha1.Function:
		return o.Spec
	case *v1alpha1.HTTPTrigger:
		return o.Spec
	case *v1alpha1.CronTrigger:
		return o.Spec
	case *v1alpha1.NATSTrigger:
		return o.Spec
	case *v1alpha1.KafkaTrigger:
		return o.Spec
	case *v1alpha1.Pipeline:
		return o.Spec
	}
	panic(fmt.Sprintf("manifests: no spec for %T", obj))
}

// Pin returns a copy of the set in which every function's spec.image is the
// image images maps its name to: the declaration of a release. It fails,
// changing nothing, when a function has no image or an image is for a
// function the set does not declare.
func (s *Set) Pin(images map[string]string) (*Set, error) {
	c := s.deepCopy()
	for _, f := range c.Functions {
		img, ok := images[f.Name]
		if !ok || img == "" {
			return nil, fmt.Errorf("function %s has no image; build it before making a release", f.Name)
		}
		f.Spec.Image = img
	}
	for name := range images {
		if c.Function(name) == nil {
			return nil, fmt.Errorf("an image is given for %s, which the manifest does not declare", name)
		}
	}
	return c, nil
}

// In returns the set as it runs in environment env: only the triggers
// whose spec.environments include it (all, when empty). Functions all
// stay: a function runs wherever its release is deployed; only what
// calls it is placed. The objects are shared with s, not copied. Both
// targets place a release's triggers with it.
func (s *Set) In(env string) *Set {
	if s == nil {
		return nil
	}
	c := *s
	c.HTTPTriggers = runIn(s.HTTPTriggers, env, func(t *v1alpha1.HTTPTrigger) []string { return t.Spec.Environments })
	c.CronTriggers = runIn(s.CronTriggers, env, func(t *v1alpha1.CronTrigger) []string { return t.Spec.Environments })
	c.NATSTriggers = runIn(s.NATSTriggers, env, func(t *v1alpha1.NATSTrigger) []string { return t.Spec.Environments })
	c.KafkaTriggers = runIn(s.KafkaTriggers, env, func(t *v1alpha1.KafkaTrigger) []string { return t.Spec.Environments })
	return &c
}

func runIn[T any](ts []T, env string, envs func(T) []string) []T {
	var out []T
	for _, t := range ts {
		if v1alpha1.RunsIn(envs(t), env) {
			out = append(out, t)
		}
	}
	return out
}
