package embedded

import (
	"cmp"
	"context"
	"fmt"
	"net/http"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/environments/dispatch"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// noRedirects is the CheckRedirect of ferry's clients of functions: a
// redirect is returned as the answer, never followed.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// redacting is a backend whose secrets must not be quoted: an instance.
type redacting interface{ redact(string) string }

var _ redacting = (*instance)(nil)

// triggerConfig wires the triggers of one environment.
type triggerConfig struct {
	Environment  string
	NATSURL      string
	KafkaBrokers []string
	Log          func(format string, args ...any)
	// Gateway is what calls go through, counted with the gateway's own
	// calls of the same functions; nil: a gateway of these triggers alone.
	Gateway *gateway
	// Metrics counts ticks, deliveries, failures and retries; nil: counts
	// of these triggers alone, which nothing serves.
	Metrics *dispatch.Metrics
}

// triggers runs an environment's CronTriggers, NATSTriggers and
// KafkaTriggers: the dispatcher every target shares (dispatch), calling
// the functions through the gateway's forwarder (gatewayInvoker).
type triggers struct {
	d   *dispatch.Dispatcher
	g   *gateway
	env string
	// ownGateway: g is these triggers' alone, and its idle connections
	// close with them.
	ownGateway bool
}

func newTriggers(cfg triggerConfig) *triggers {
	own := cfg.Gateway == nil
	if own {
		cfg.Gateway = newGateway()
	}
	d := dispatch.New(dispatch.Config{Environment: cfg.Environment, NATSURL: cfg.NATSURL,
		KafkaBrokers: cfg.KafkaBrokers, Log: cfg.Log, Metrics: cfg.Metrics})
	return &triggers{d: d, g: cfg.Gateway, env: cfg.Environment, ownGateway: own}
}

// apply replaces the running triggers with those of set, calling functions
// through backends (function name → backend); a function of set with no
// backend is one the environment does not run. It fails, changing
// nothing, on a trigger it cannot start.
func (t *triggers) apply(ctx context.Context, set *manifests.Set, backends map[string]backend) error {
	if set == nil {
		set = &manifests.Set{}
	}
	inv := &gatewayInvoker{g: t.g, routes: map[string]*boundRoute{}}
	run := *set
	run.Functions = nil
	for _, f := range set.Functions {
		b := backends[f.Name]
		if b == nil {
			continue
		}
		run.Functions = append(run.Functions, f)
		inv.routes[f.Name] = t.route(f, b)
	}
	return t.d.Apply(ctx, &run, inv)
}

// route is how a trigger calls f: its backend, timeout, concurrency and
// the count it shares with the gateway's routes of f.
func (t *triggers) route(f *v1alpha1.Function, b backend) *boundRoute {
	timeout, _, _ := functionSettings(f.Spec)
	var log *FunctionLog // the function's, for an access line per attempt
	if in, ok := b.(*instance); ok {
		log = in.spec.Log
	}
	return &boundRoute{
		gatewayRoute: gatewayRoute{Function: f.Name, Timeout: cmp.Or(timeout, defaultFunctionTimeout),
			MaxInFlight: concurrency(f.Spec), Backend: b, Log: log},
		stats: t.g.functionStats(t.env, f.Name),
	}
}

// stop ends every trigger and waits for the calls in flight.
func (t *triggers) stop() {
	t.d.Stop()
	if t.ownGateway {
		t.g.pool.closeAll()
	}
}

// gatewayInvoker calls functions through the gateway's forwarder
// (gateway.invoke): a call takes a slot of the function's concurrency,
// shared with the gateway's calls, is bounded by the function's timeout,
// and a call past it is a failed attempt whose slot stays taken until its
// handler ends, as an HTTP call's does.
type gatewayInvoker struct {
	g      *gateway
	routes map[string]*boundRoute
}

var _ dispatch.Invoker = (*gatewayInvoker)(nil)

// Invoke implements dispatch.Invoker.
func (i *gatewayInvoker) Invoke(ctx context.Context, function string, ev *environments.Event) (int, []byte, error) {
	rt := i.routes[function]
	if rt == nil {
		return 0, nil, fmt.Errorf("function %s does not run in this environment", function)
	}
	// why WithoutCancel: the trigger's ctx ends the wait for a slot, not
	// a call under way, which the function's timeout bounds.
	req, err := ev.Request(context.WithoutCancel(ctx), "/")
	if err != nil {
		return 0, nil, err
	}
	code, head, err := i.g.invoke(ctx, req, rt)
	// why: the answer ends up in ferry's own log, and a function that
	// fails on a secret may answer with it (Python's invoker answers
	// {"error": str(exc)}).
	if r, ok := rt.Backend.(redacting); ok && len(head) > 0 {
		head = []byte(r.redact(string(head)))
	}
	return code, head, err
}
