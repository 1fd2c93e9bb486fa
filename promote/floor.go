package promote

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Floor is the least policy of an environment, set by the operator in
// ferry serve's configuration. A release's Pipeline may tighten it, never
// loosen it: a release whose stage for the environment would let a
// release in more easily is refused, with what it loosens (see Check).
// The zero Floor asks for nothing.
type Floor struct {
	// Approval gates the environment: a release's stage must ask for at
	// least Required approvals, from Approvers or fewer (none listed
	// means anyone with the approver role), with approvals expiring no
	// later than ExpireAfter (nil: never), and may allow self-approval
	// only where this does. A gated environment takes no auto stage.
	Approval *v1alpha1.ApprovalPolicy
	// NoAuto forbids an auto stage without gating the environment: a
	// release comes in only when someone asks for it.
	NoAuto bool
	// From pins the order: a release comes into the environment only
	// after it succeeded in each of these (the release's stage must come
	// after them, directly or not, and may not be the first stage).
	From []string
	// Verify are checks that run after every deploy, before the
	// release's own; Soak is the least time they keep running.
	Verify []v1alpha1.Check
	Soak   time.Duration
	// Key names the floor in messages; default environments[<name>].
	Key string

	// byDefault: DefaultFloor made it, which messages say.
	byDefault bool
}

// DefaultFloor is the floor of an environment the configuration sets
// none for: prod waits for one approval by someone other than the
// requester or the commit's author, so that no commit can take prod's
// approval away; other environments have none.
func DefaultFloor(env string) Floor {
	if env != "prod" {
		return Floor{}
	}
	one := int32(1)
	return Floor{Approval: &v1alpha1.ApprovalPolicy{Required: &one}, byDefault: true}
}

// gated reports whether the floor lets nothing in without someone's
// say: approvals, no auto, or an order of stages.
func (f Floor) gated() bool {
	return f.Approval != nil || f.NoAuto || len(f.From) > 0
}

// LoosenError is a release refused because its Pipeline would loosen an
// environment's floor. Its message names each configuration key the
// release's stage goes below.
type LoosenError struct {
	Environment string
	Problems    []string
	// ByDefault: the floor is DefaultFloor, the configuration sets none.
	ByDefault bool
}

func (e *LoosenError) Error() string {
	fix := "tighten the stage " + e.Environment + " of the repository's Pipeline, or ask the operator to change ferry serve's configuration"
	if e.ByDefault {
		fix = "the configuration sets no floor for " + e.Environment + ", which has the default one; " + fix
	}
	return strings.Join(e.Problems, "; ") + ": a repository may tighten a gate, never loosen it (" + fix + ")"
}

// Check refuses a release's pipeline p whose stage env goes below f: the
// error is a *LoosenError naming every key it goes below. A pipeline
// without a stage env loosens nothing (no release of it goes there).
// groups maps "group:<name>" approvers to members, as Config.Groups: a
// floor listing a group lets a stage list its members.
func (f Floor) Check(env string, p *v1alpha1.PipelineSpec, groups map[string][]string) error {
	i := slices.IndexFunc(p.Stages, func(s v1alpha1.Stage) bool { return s.Name == env })
	if i < 0 {
		return nil
	}
	st := p.Stages[i]
	key := f.Key
	if key == "" {
		key = "environments[" + env + "]"
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if i == 0 && f.gated() {
		// why: the pipeline deploys every new release to the first stage
		// by itself, before any approval or order applies.
		bad("%s; the release's Pipeline makes %s its first stage, which every new release goes to by itself", f.describe(key), env)
	} else if missing := f.missingFrom(p, i); len(missing) > 0 {
		bad("%s.from is [%s]; the release's Pipeline brings releases into %s without %s before it",
			key, strings.Join(f.From, ", "), env, strings.Join(missing, " and "))
	}
	a := f.Approval
	switch {
	case st.Auto && a != nil:
		bad("%s.approval.required is %d; the release's Pipeline makes %s an auto stage, which asks for no approval", key, required(a), env)
	case st.Auto && f.NoAuto:
		bad("%s.auto is false; the release's Pipeline makes %s an auto stage", key, env)
	case a != nil && st.Approval == nil:
		bad("%s.approval.required is %d; the release's Pipeline asks for no approval", key, required(a))
	}
	if a != nil && st.Approval != nil {
		sa := st.Approval
		if required(sa) < required(a) {
			bad("%s.approval.required is %d; the release's Pipeline asks for %d", key, required(a), required(sa))
		}
		if sa.SelfApproval && !a.SelfApproval {
			bad("%s.approval.selfApproval is false; the release's Pipeline sets selfApproval: true", key)
		}
		if len(a.Approvers) > 0 {
			if len(sa.Approvers) == 0 {
				bad("%s.approval.approvers are [%s]; the release's Pipeline lets anyone with the approver role approve", key, strings.Join(a.Approvers, ", "))
			} else if out := outside(sa.Approvers, a.Approvers, groups); len(out) > 0 {
				bad("%s.approval.approvers are [%s]; the release's Pipeline lists %s, not among them", key, strings.Join(a.Approvers, ", "), strings.Join(out, ", "))
			}
		}
		if a.ExpireAfter != nil {
			switch {
			case sa.ExpireAfter == nil:
				bad("%s.approval.expireAfter is %s; the release's Pipeline lets approvals count forever", key, a.ExpireAfter.Duration)
			case sa.ExpireAfter.Duration > a.ExpireAfter.Duration:
				bad("%s.approval.expireAfter is %s; the release's Pipeline lets approvals count for %s", key, a.ExpireAfter.Duration, sa.ExpireAfter.Duration)
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &LoosenError{Environment: env, Problems: problems, ByDefault: f.byDefault}
}

// describe says what gates the floor, for a first stage.
func (f Floor) describe(key string) string {
	switch {
	case f.Approval != nil:
		return fmt.Sprintf("%s.approval.required is %d", key, required(f.Approval))
	case len(f.From) > 0:
		return fmt.Sprintf("%s.from is [%s]", key, strings.Join(f.From, ", "))
	}
	return key + ".auto is false"
}

// missingFrom lists the stages of f.From that stage i of p does not come
// after, directly or through the stages it comes from.
func (f Floor) missingFrom(p *v1alpha1.PipelineSpec, i int) []string {
	before := map[string]bool{}
	var walk func(j int)
	walk = func(j int) {
		for _, from := range stageFrom(p, j) {
			if before[from] {
				continue
			}
			before[from] = true
			if k := slices.IndexFunc(p.Stages, func(s v1alpha1.Stage) bool { return s.Name == from }); k >= 0 {
				walk(k)
			}
		}
	}
	walk(i)
	var missing []string
	for _, want := range f.From {
		if !before[want] {
			missing = append(missing, want)
		}
	}
	return missing
}

// stageFrom is stage j's From, the stage before it when it lists none
// (as the manifests' defaults fill in).
func stageFrom(p *v1alpha1.PipelineSpec, j int) []string {
	if len(p.Stages[j].From) > 0 || j == 0 {
		return p.Stages[j].From
	}
	return []string{p.Stages[j-1].Name}
}

// outside lists the approvers of a stage that the floor's list does not
// cover: by name, as a group it lists, or as a member of a group it
// lists.
func outside(stage, floor []string, groups map[string][]string) []string {
	var out []string
	for _, s := range stage {
		if slices.Contains(floor, s) {
			continue
		}
		member := false
		if !strings.HasPrefix(s, "group:") {
			for _, fa := range floor {
				if g, ok := strings.CutPrefix(fa, "group:"); ok && (slices.Contains(groups[fa], s) || slices.Contains(groups[g], s)) {
					member = true
					break
				}
			}
		}
		if !member {
			out = append(out, s)
		}
	}
	return out
}

// withFloor is stage with the floor's checks run first and its soak at
// least the floor's: what verifies a release in the environment.
func (f Floor) withFloor(stage *v1alpha1.Stage) *v1alpha1.Stage {
	if len(f.Verify) == 0 && f.Soak == 0 {
		return stage
	}
	out := v1alpha1.Stage{}
	if stage != nil {
		out = *stage.DeepCopy()
	}
	out.Verify = append(slices.Clone(f.Verify), out.Verify...)
	if f.Soak > 0 && (out.Soak == nil || out.Soak.Duration < f.Soak) {
		out.Soak = &metav1.Duration{Duration: f.Soak}
	}
	return &out
}
