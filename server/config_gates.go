package server

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/promote"
)

// The gates of an environment are its floor: the least policy any
// release's Pipeline must keep there (see promote.Floor). They are the
// operator's, in this file's keys of an environment:
//
//	approval: {required: 2, approvers: [group:sre], expireAfter: 24h, selfApproval: false}
//	auto: false           # no auto stage here (implied by approval)
//	from: [staging]       # a release comes here only after it succeeded in these
//	verify: [{http: {path: /healthz}}]   # checks that run after every deploy
//	soak: 5m              # the least time the checks keep running
//
// prod, when it sets neither approval nor auto: true, waits for one
// approval by someone other than the requester or the commit's author.

// ApprovalGateConfig is the least approval policy of an environment.
type ApprovalGateConfig struct {
	// Required approvals, at least 1 (the default).
	Required *int32 `yaml:"required"`
	// Approvers who may approve: names, or "group:<name>" (a token's
	// groups). Empty: anyone with the approver role.
	Approvers []string `yaml:"approvers"`
	// ExpireAfter drops approvals older than this (a duration such as
	// 24h). Empty: approvals never expire.
	ExpireAfter string `yaml:"expireAfter"`
	// SelfApproval lets the requester and the commit's author approve.
	SelfApproval bool `yaml:"selfApproval"`
}

// gated reports whether e sets any gate key.
func (e EnvironmentConfig) gated() bool {
	return e.Approval != nil || e.Auto != nil || len(e.From) > 0 || len(e.Verify) > 0 || e.Soak != ""
}

// checkGates checks every environment's gates; check calls it once the
// environments are filled in.
func (c *Config) checkGates() []string {
	var errs []string
	names := map[string]bool{}
	for _, e := range c.Environments {
		names[e.Name] = true
	}
	for i, e := range c.Environments {
		// why: a configuration error is positioned by its index path.
		_, bad := e.floor(names, fmt.Sprintf("environments[%d]", i))
		errs = append(errs, bad...)
	}
	return errs
}

// floor is the environment's gates as the promoter takes them; nil when
// it sets none (prod then has promote.DefaultFloor). envs are the
// configured environments, which from must name; key names it in
// messages and check names. It returns every problem, one a message.
func (e EnvironmentConfig) floor(envs map[string]bool, key string) (*promote.Floor, []string) {
	if !e.gated() {
		return nil, nil
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, key+"."+fmt.Sprintf(format, args...)) }
	f := &promote.Floor{}
	if a := e.Approval; a != nil {
		pol := &v1alpha1.ApprovalPolicy{Required: a.Required, SelfApproval: a.SelfApproval}
		if pol.Required == nil {
			one := int32(1)
			pol.Required = &one
		} else if *pol.Required < 1 {
			bad("approval.required is %d: give 1 or more; to let releases in without approval, remove approval and set auto: true", *pol.Required)
		}
		for i, who := range a.Approvers {
			if g, isGroup := strings.CutPrefix(who, "group:"); strings.TrimSpace(who) == "" || isGroup && g == "" {
				bad("approval.approvers[%d] %q: give a token's name or group:<name>", i, who)
			}
		}
		pol.Approvers = slices.Compact(slices.Sorted(slices.Values(a.Approvers)))
		if a.ExpireAfter != "" {
			d, err := time.ParseDuration(a.ExpireAfter)
			if err != nil || d <= 0 {
				bad("approval.expireAfter %q: give how long an approval counts, such as 24h", a.ExpireAfter)
			}
			pol.ExpireAfter = &metav1.Duration{Duration: d}
		}
		f.Approval = pol
	}
	if e.Auto != nil {
		switch {
		case *e.Auto && e.Approval != nil:
			bad("auto is true, and approval is set: an environment is auto or waits for approvals, not both; remove one")
		case !*e.Auto:
			f.NoAuto = true
		}
	}
	if e.Name == "prod" && e.Approval == nil && (e.Auto == nil || !*e.Auto) {
		// why: setting prod's checks must not drop its default approval;
		// only auto: true opens it.
		f.Approval = promote.DefaultFloor("prod").Approval
	}
	for i, from := range e.From {
		switch {
		case from == e.Name:
			bad("from[%d] is %s itself; name the environment a release must succeed in first", i, from)
		case !envs[from]:
			bad("from[%d]: no environment %q is configured; add it to environments, or remove it here", i, from)
		}
	}
	f.From = slices.Clone(e.From)
	for i, raw := range e.Verify {
		ck, err := gateCheck(raw)
		if err != nil {
			bad("verify[%d]: %v", i, err)
			continue
		}
		if ck.Name == "" {
			ck.Name = fmt.Sprintf("%s.verify[%d]", key, i)
		}
		f.Verify = append(f.Verify, ck)
	}
	if e.Soak != "" {
		d, err := time.ParseDuration(e.Soak)
		if err != nil || d < 0 {
			bad("soak %q: give how long the checks keep running after a deploy, such as 5m", e.Soak)
		}
		f.Soak = d
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

// gateCheck reads one check of verify, in the shape of a Pipeline's
// (name, http or event), strictly, with the manifests' defaults.
func gateCheck(raw map[string]any) (v1alpha1.Check, error) {
	var ck v1alpha1.Check
	b, err := json.Marshal(raw)
	if err != nil {
		return ck, fmt.Errorf("%v; write it as a Pipeline stage's check: {http: {path: /healthz}} or {event: {function: NAME}}", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ck); err != nil {
		return ck, fmt.Errorf("%v; the keys are name, and http (path, method, headers, body, expectStatus, bodyContains, jsonPath, equals, maxLatency) or event (function, type, data, expectStatus, bodyContains)", err)
	}
	switch {
	case ck.HTTP != nil && ck.Event != nil:
		return ck, fmt.Errorf("has both http and event; give one per check")
	case ck.HTTP != nil:
		h := ck.HTTP
		if !strings.HasPrefix(h.Path, "/") {
			return ck, fmt.Errorf("http.path %q: give the path of an HTTPTrigger, starting with /", h.Path)
		}
		h.Method = strings.ToUpper(cmp.Or(h.Method, http.MethodGet))
		if h.ExpectStatus == 0 {
			h.ExpectStatus = http.StatusOK
		}
	case ck.Event != nil:
		if ck.Event.Function == "" {
			return ck, fmt.Errorf("event.function is empty; name the function to invoke")
		}
		ck.Event.Type = cmp.Or(ck.Event.Type, manifests.DefaultCheckEventType)
		if ck.Event.ExpectStatus == 0 {
			ck.Event.ExpectStatus = http.StatusOK
		}
	default:
		return ck, fmt.Errorf("says nothing to check; give http: {path: /healthz} or event: {function: NAME}")
	}
	return ck, nil
}

// gatedEnvironments are the environments as the promoter sees them, each
// with its floor.
func (c *Config) gatedEnvironments() []promote.Environment {
	names := map[string]bool{}
	for _, e := range c.Environments {
		names[e.Name] = true
	}
	out := c.promoteEnvironments()
	for i, e := range c.Environments {
		out[i].Floor, _ = e.floor(names, "environments["+e.Name+"]") // checked at load
	}
	return out
}
