package manifests

import (
	"fmt"
	"k8s.io/apimachinery/pkg/api/equality"
	"path"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Defaults, each chosen so a function written with no settings behaves the
// way a Lambda or Knative user expects.
var (
	// DefaultTimeout lets ordinary request handlers finish and still fails
	// a stuck one well before a client gives up.
	DefaultTimeout = 30 * time.Second
	// DefaultMemory fits a small interpreter and its handler.
	DefaultMemory = resource.MustParse("128Mi")
	// DefaultScaleMin of 0 lets idle functions cost nothing.
	DefaultScaleMin int32 = 0
	// DefaultScaleMax bounds what one noisy function can take of a host.
	DefaultScaleMax int32 = 10
	// DefaultConcurrency matches what an async runtime comfortably serves.
	DefaultConcurrency int32 = 100
	// DefaultTestTimeout bounds a function's test in the pipeline.
	DefaultTestTimeout = 10 * time.Minute
	// DefaultTimeZone makes a cron schedule mean the same on every host.
	DefaultTimeZone = "UTC"
	// DefaultRetryAttempts, DefaultRetryBackoff and DefaultRetryMaxBackoff:
	// five tries over about fifteen seconds ride out a restart of the
	// function without holding a partition for long.
	DefaultRetryAttempts   int32 = 5
	DefaultRetryBackoff          = time.Second
	DefaultRetryMaxBackoff       = time.Minute
	// DefaultPreviewTTL deletes a forgotten preview after three days.
	DefaultPreviewTTL = 72 * time.Hour
	// DefaultCheckEventType is the ce-type of a verification event.
	DefaultCheckEventType = "dev.ferry.verify"
)

// DefaultHandler is the entry point of a function that names none.
var DefaultHandler = map[string]string{
	v1alpha1.RuntimeGo:     "Handle",
	v1alpha1.RuntimePython: "main.handle",
	v1alpha1.RuntimeNodeJS: "index.handler",
}

// Default fills every unset field with its default and puts values that
// mean the same into one form (a source folder "./hello/" becomes "hello",
// methods are upper case and sorted), so that two manifests that mean the
// same render to the same bytes. It is idempotent.
func Default(s *Set) {
	for _, f := range s.Functions {
		defaultFunction(&f.Spec)
	}
	for _, t := range s.HTTPTriggers {
		sortSelector(t.Spec.FunctionSelector)
		t.Spec.Path = cleanHTTPPath(t.Spec.Path)
		t.Spec.Methods = upperSorted(t.Spec.Methods)
	}
	for _, t := range s.CronTriggers {
		sortSelector(t.Spec.FunctionSelector)
		if t.Spec.TimeZone == "" {
			t.Spec.TimeZone = DefaultTimeZone
		}
		t.Spec.Schedule = strings.Join(strings.Fields(t.Spec.Schedule), " ")
	}
	for _, t := range s.NATSTriggers {
		defaultTopic(&t.Spec)
	}
	for _, t := range s.KafkaTriggers {
		defaultTopic(&t.Spec.TopicTriggerSpec)
		if t.Spec.InitialOffset == "" {
			t.Spec.InitialOffset = v1alpha1.OffsetLatest
		}
	}
	if s.Pipeline == nil {
		s.Pipeline = DefaultPipeline()
	}
	defaultPipeline(s.Pipeline)
}

func defaultFunction(spec *v1alpha1.FunctionSpec) {
	if spec.Source == "" {
		spec.Source = "."
	}
	spec.Source = path.Clean(spec.Source)
	if spec.Handler == "" {
		spec.Handler = DefaultHandler[spec.Runtime]
	}
	if len(spec.Env) == 0 {
		spec.Env = nil
	}
	if spec.Timeout == nil {
		spec.Timeout = &metav1.Duration{Duration: DefaultTimeout}
	}
	if spec.Memory == nil {
		q := DefaultMemory.DeepCopy()
		spec.Memory = &q
	}
	// Memory is a count of bytes however it was written (134217728,
	// 0.125Gi, 128Mi); one form, binary units where they fit, makes one
	// rendering.
	spec.Memory = resource.NewQuantity(spec.Memory.Value(), resource.BinarySI)
	if spec.Scale == nil {
		spec.Scale = &v1alpha1.Scale{}
	}
	setInt(&spec.Scale.Min, DefaultScaleMin)
	setInt(&spec.Scale.Max, DefaultScaleMax)
	setInt(&spec.Scale.Concurrency, DefaultConcurrency)
	if spec.Test != nil {
		setDuration(&spec.Test.Timeout, DefaultTestTimeout)
		if len(spec.Test.Env) == 0 {
			spec.Test.Env = nil
		}
	}
}

func defaultTopic(spec *v1alpha1.TopicTriggerSpec) {
	sortSelector(spec.FunctionSelector)
	if spec.Retry == nil {
		spec.Retry = &v1alpha1.RetryPolicy{}
	}
	setInt(&spec.Retry.Attempts, DefaultRetryAttempts)
	setDuration(&spec.Retry.Backoff, DefaultRetryBackoff)
	// A backoff written above the default cap raises the cap with it.
	setDuration(&spec.Retry.MaxBackoff, max(DefaultRetryMaxBackoff, spec.Retry.Backoff.Duration))
}

// DefaultPipeline is the pipeline of a repository that declares none: dev
// and staging take every release automatically, prod waits for one
// approval from someone other than the author.
func DefaultPipeline() *v1alpha1.Pipeline {
	p := &v1alpha1.Pipeline{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.DefaultPipelineName},
		Spec: v1alpha1.PipelineSpec{Stages: []v1alpha1.Stage{
			{Name: "dev", Auto: true},
			{Name: "staging", Auto: true},
			{Name: "prod", Approval: &v1alpha1.ApprovalPolicy{}},
		}},
	}
	p.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(v1alpha1.KindPipeline))
	return p
}

// IsDefaultPipeline reports whether p, defaults filled in, says no more
// than the pipeline of a repository that declares none: the policies in
// it are ferry's defaults, not the repository's choice.
func IsDefaultPipeline(p *v1alpha1.Pipeline) bool {
	if p == nil {
		return true
	}
	return equality.Semantic.DeepEqual(FilledDefaultPipeline().Spec, p.Spec)
}

// FilledDefaultPipeline is DefaultPipeline with its defaults filled in,
// as a release renders it (each stage from the one before).
func FilledDefaultPipeline() *v1alpha1.Pipeline {
	d := DefaultPipeline()
	defaultPipeline(d)
	return d
}

func defaultPipeline(p *v1alpha1.Pipeline) {
	if p.Name == "" {
		p.Name = v1alpha1.DefaultPipelineName
	}
	for i := range p.Spec.Stages {
		st := &p.Spec.Stages[i]
		if prev := i - 1; len(st.From) == 0 && prev >= 0 && p.Spec.Stages[prev].Name != "" {
			st.From = []string{p.Spec.Stages[prev].Name}
		}
		if st.Soak != nil && st.Soak.Duration == 0 {
			st.Soak = nil // a soak of zero is no soak
		}
		st.From = sortedUnique(st.From)
		if st.Approval != nil {
			setInt(&st.Approval.Required, 1)
			st.Approval.Approvers = sortedUnique(st.Approval.Approvers)
		}
		for j := range st.Verify {
			c := &st.Verify[j]
			if c.HTTP != nil {
				c.HTTP.Method = strings.ToUpper(c.HTTP.Method)
				if c.HTTP.Method == "" {
					c.HTTP.Method = "GET"
				}
				c.HTTP.Path = cleanHTTPPath(c.HTTP.Path)
				if c.HTTP.ExpectStatus == 0 {
					c.HTTP.ExpectStatus = 200
				}
				if c.Name == "" {
					c.Name = fmt.Sprintf("http %s %s", c.HTTP.Method, c.HTTP.Path)
				}
			}
			if c.Event != nil {
				if c.Event.Type == "" {
					c.Event.Type = DefaultCheckEventType
				}
				if c.Event.ExpectStatus == 0 {
					c.Event.ExpectStatus = 200
				}
				if c.Name == "" {
					c.Name = "event " + c.Event.Function
				}
			}
		}
	}
	if p.Spec.Previews == nil {
		p.Spec.Previews = &v1alpha1.Previews{}
	}
	if p.Spec.Previews.Enabled == nil {
		// why off: a preview runs a pull request's code, so a repository
		// asks for previews; until then ferry builds no pull request.
		off := false
		p.Spec.Previews.Enabled = &off
	}
	setDuration(&p.Spec.Previews.TTL, DefaultPreviewTTL)
}

// cleanHTTPPath drops one trailing slash, so /hello and /hello/ are one
// route. It leaves anything odd ("//", "/a//") for validation to report.
func cleanHTTPPath(p string) string {
	if len(p) > 1 && strings.HasSuffix(p, "/") && !strings.HasSuffix(p, "//") {
		return p[:len(p)-1]
	}
	return p
}

// sortSelector puts a selector's requirements, which all must hold, and
// each one's values, which are a set, in one order.
func sortSelector(sel *metav1.LabelSelector) {
	if sel == nil {
		return
	}
	for i := range sel.MatchExpressions {
		sel.MatchExpressions[i].Values = sortedUnique(sel.MatchExpressions[i].Values)
	}
	sort.SliceStable(sel.MatchExpressions, func(i, j int) bool {
		a, b := sel.MatchExpressions[i], sel.MatchExpressions[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		if a.Operator != b.Operator {
			return a.Operator < b.Operator
		}
		return strings.Join(a.Values, ",") < strings.Join(b.Values, ",")
	})
	if len(sel.MatchLabels) == 0 {
		sel.MatchLabels = nil
	}
	if len(sel.MatchExpressions) == 0 {
		sel.MatchExpressions = nil
	}
}

func upperSorted(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, m := range in {
		out[i] = strings.ToUpper(m)
	}
	return sortedUnique(out)
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := append([]string(nil), in...)
	sort.Strings(out)
	n := 0
	for i, s := range out {
		if i == 0 || s != out[n-1] {
			out[n] = s
			n++
		}
	}
	return out[:n]
}

func setInt(p **int32, v int32) {
	if *p == nil {
		*p = &v
	}
}

func setDuration(p **metav1.Duration, v time.Duration) {
	if *p == nil {
		*p = &metav1.Duration{Duration: v}
	}
}
