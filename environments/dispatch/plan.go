package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Plan is what one dispatcher process runs (`ferry dispatch --plan FILE`):
// the message triggers of one environment and where their functions
// answer. On Kubernetes the controller writes it as JSON into a ConfigMap
// that the dispatcher Deployment mounts, so the dispatcher needs no
// access to the API server.
type Plan struct {
	// Environment is the environment the triggers run in, for the events'
	// source and the logs.
	Environment string `json:"environment"`
	// NATSURL and KafkaBrokers are where the triggers connect.
	NATSURL      string   `json:"natsURL,omitempty"`
	KafkaBrokers []string `json:"kafkaBrokers,omitempty"`
	// NATSTriggers and KafkaTriggers are the triggers, as in the release.
	NATSTriggers  []v1alpha1.NATSTrigger  `json:"natsTriggers,omitempty"`
	KafkaTriggers []v1alpha1.KafkaTrigger `json:"kafkaTriggers,omitempty"`
	// Functions maps each function a trigger may call to the base URL
	// that answers it (http://NAME.NAMESPACE.svc:80 in a cluster).
	Functions map[string]string `json:"functions"`
	// FunctionLabels are the functions' labels, for triggers that select
	// their functions by label.
	FunctionLabels map[string]map[string]string `json:"functionLabels,omitempty"`
	// FunctionTimeouts bound one call of each function (its spec.timeout);
	// a function not in it gets the functions' default, 30s.
	FunctionTimeouts map[string]metav1.Duration `json:"functionTimeouts,omitempty"`
}

// LoadPlan reads a Plan from a JSON file and checks it.
func LoadPlan(file string) (*Plan, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the dispatch plan: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("dispatch plan %s is not a plan's JSON: %w", file, err)
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("dispatch plan %s: %w", file, err)
	}
	return &p, nil
}

// Check finds what would fail later, or quietly: the triggers' own
// mistakes (a function not in the plan, a bad selector) are Apply's.
func (p *Plan) Check() error {
	if p.Environment == "" {
		return errors.New("environment is empty; give the environment the triggers run in")
	}
	for name, u := range p.Functions {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return fmt.Errorf("function %s: URL %q is not an http:// or https:// URL with a host", name, u)
		}
	}
	return nil
}

// Set is the plan as a release's set: its triggers, and its functions
// with their labels, which the triggers' selectors match.
func (p *Plan) Set() *manifests.Set {
	s := &manifests.Set{}
	for _, name := range slices.Sorted(maps.Keys(p.Functions)) {
		f := &v1alpha1.Function{}
		f.Name = name
		f.Labels = p.FunctionLabels[name]
		s.Functions = append(s.Functions, f)
	}
	for i := range p.NATSTriggers {
		s.NATSTriggers = append(s.NATSTriggers, &p.NATSTriggers[i])
	}
	for i := range p.KafkaTriggers {
		s.KafkaTriggers = append(s.KafkaTriggers, &p.KafkaTriggers[i])
	}
	return s
}

// Invoker calls the plan's functions with plain HTTP at their URLs.
func (p *Plan) Invoker() *HTTPInvoker {
	timeouts := map[string]time.Duration{}
	for name, d := range p.FunctionTimeouts {
		if d.Duration > 0 {
			timeouts[name] = d.Duration
		}
	}
	return NewHTTPInvoker(p.Functions, timeouts)
}
