package promote

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// TestFloorCheck is the tighten/loosen rule, one case a row: what the
// floor says, what the release's stage for prod says, and the words the
// refusal must hold ("" when it tightens or keeps the floor).
func TestFloorCheck(t *testing.T) {
	n := func(i int32) *int32 { return &i }
	d := func(s string) *metav1.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Duration{Duration: v}
	}
	two := Floor{Approval: &v1alpha1.ApprovalPolicy{Required: n(2)}}
	sre := Floor{Approval: &v1alpha1.ApprovalPolicy{Required: n(1), Approvers: []string{"group:sre", "erin"}}}
	day := Floor{Approval: &v1alpha1.ApprovalPolicy{Required: n(1), ExpireAfter: d("24h")}}
	ordered := Floor{Approval: &v1alpha1.ApprovalPolicy{Required: n(1)}, From: []string{"staging"}}
	groups := map[string][]string{"group:sre": {"carol", "dave"}}
	dev := v1alpha1.Stage{Name: "dev", Auto: true}
	staging := v1alpha1.Stage{Name: "staging", Auto: true}
	prod := func(s v1alpha1.Stage) []v1alpha1.Stage {
		s.Name = "prod"
		return []v1alpha1.Stage{dev, staging, s}
	}
	approval := func(a v1alpha1.ApprovalPolicy) v1alpha1.Stage { return v1alpha1.Stage{Approval: &a} }
	for _, c := range []struct {
		name   string
		floor  Floor
		stages []v1alpha1.Stage
		words  []string // nil: admitted
	}{
		{"the default floor takes the default pipeline", DefaultFloor("prod"), prod(approval(v1alpha1.ApprovalPolicy{})), nil},
		{"auto into the default floor", DefaultFloor("prod"), prod(v1alpha1.Stage{Auto: true}),
			[]string{"environments[prod].approval.required is 1; the release's Pipeline makes prod an auto stage", "never loosen it", "the default one"}},
		{"no approval at all", DefaultFloor("prod"), prod(v1alpha1.Stage{}), []string{"environments[prod].approval.required is 1; the release's Pipeline asks for no approval"}},
		{"prod first, straight from every commit", DefaultFloor("prod"), []v1alpha1.Stage{{Name: "prod", Approval: &v1alpha1.ApprovalPolicy{Required: n(3)}}},
			[]string{"environments[prod].approval.required is 1; the release's Pipeline makes prod its first stage"}},
		{"fewer approvals", two, prod(approval(v1alpha1.ApprovalPolicy{Required: n(1)})),
			[]string{"environments[prod].approval.required is 2; the release's Pipeline asks for 1: a repository may tighten a gate, never loosen it"}},
		{"the same approvals", two, prod(approval(v1alpha1.ApprovalPolicy{Required: n(2)})), nil},
		{"more approvals", two, prod(approval(v1alpha1.ApprovalPolicy{Required: n(3)})), nil},
		{"self-approval", two, prod(approval(v1alpha1.ApprovalPolicy{Required: n(2), SelfApproval: true})),
			[]string{"environments[prod].approval.selfApproval is false; the release's Pipeline sets selfApproval: true"}},
		{"self-approval where the floor allows it", Floor{Approval: &v1alpha1.ApprovalPolicy{Required: n(1), SelfApproval: true}},
			prod(approval(v1alpha1.ApprovalPolicy{SelfApproval: true})), nil},
		{"every problem at once", two, prod(approval(v1alpha1.ApprovalPolicy{Required: n(1), SelfApproval: true})),
			[]string{"approval.required is 2", "approval.selfApproval is false"}},
		{"approvers: anyone where the floor names some", sre, prod(approval(v1alpha1.ApprovalPolicy{})),
			[]string{"environments[prod].approval.approvers are [group:sre, erin]; the release's Pipeline lets anyone with the approver role approve"}},
		{"approvers: one outside", sre, prod(approval(v1alpha1.ApprovalPolicy{Approvers: []string{"carol", "mallory"}})),
			[]string{"lists mallory, not among them"}},
		{"approvers: another group", sre, prod(approval(v1alpha1.ApprovalPolicy{Approvers: []string{"group:devs"}})), []string{"lists group:devs"}},
		{"approvers: members of the floor's group and a named one", sre, prod(approval(v1alpha1.ApprovalPolicy{Approvers: []string{"carol", "erin"}})), nil},
		{"approvers: the floor's group", sre, prod(approval(v1alpha1.ApprovalPolicy{Approvers: []string{"group:sre"}})), nil},
		{"approvers: any list under a floor of anyone", two, prod(approval(v1alpha1.ApprovalPolicy{Required: n(2), Approvers: []string{"mallory"}})), nil},
		{"approvals that never expire", day, prod(approval(v1alpha1.ApprovalPolicy{})), []string{"environments[prod].approval.expireAfter is 24h0m0s; the release's Pipeline lets approvals count forever"}},
		{"approvals that expire later", day, prod(approval(v1alpha1.ApprovalPolicy{ExpireAfter: d("48h")})), []string{"lets approvals count for 48h0m0s"}},
		{"approvals that expire sooner", day, prod(approval(v1alpha1.ApprovalPolicy{ExpireAfter: d("1h")})), nil},
		{"the pinned order kept", ordered, prod(approval(v1alpha1.ApprovalPolicy{})), nil},
		{"the pinned order kept through another stage", ordered,
			[]v1alpha1.Stage{dev, staging, {Name: "canary", Auto: true}, {Name: "prod", Approval: &v1alpha1.ApprovalPolicy{}}}, nil},
		{"staging skipped", ordered, []v1alpha1.Stage{dev, staging, {Name: "prod", From: []string{"dev"}, Approval: &v1alpha1.ApprovalPolicy{}}},
			[]string{"environments[prod].from is [staging]; the release's Pipeline brings releases into prod without staging before it"}},
		{"order reversed", ordered, []v1alpha1.Stage{dev, {Name: "prod", Approval: &v1alpha1.ApprovalPolicy{}}, {Name: "staging", Auto: true}},
			[]string{"without staging before it"}},
		{"auto where the floor forbids it", Floor{NoAuto: true}, prod(v1alpha1.Stage{Auto: true}), []string{"environments[prod].auto is false; the release's Pipeline makes prod an auto stage"}},
		{"a manual stage where the floor forbids auto", Floor{NoAuto: true}, prod(v1alpha1.Stage{}), nil},
		{"no floor", Floor{}, prod(v1alpha1.Stage{Auto: true}), nil},
		{"no stage prod: nothing goes there", two, []v1alpha1.Stage{dev, staging}, nil},
		{"a key of the operator's", Floor{Approval: &v1alpha1.ApprovalPolicy{Required: n(2)}, Key: "environments[1] (prod)"},
			prod(approval(v1alpha1.ApprovalPolicy{})), []string{"environments[1] (prod).approval.required is 2; the release's Pipeline asks for 1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.floor.Check("prod", &v1alpha1.PipelineSpec{Stages: c.stages}, groups)
			if c.words == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var le *LoosenError
			if !errors.As(err, &le) || le.Environment != "prod" {
				t.Fatalf("got %v, want a *LoosenError for prod", err)
			}
			for _, w := range c.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q\ndoes not say %q", err, w)
				}
			}
		})
	}
}

// TestFloorVerify: the floor's checks run before the release's, and its
// soak is the least one.
func TestFloorVerify(t *testing.T) {
	floor := Floor{Verify: []v1alpha1.Check{{Name: "floor"}}, Soak: time.Minute}
	st := &v1alpha1.Stage{Name: "prod", Verify: []v1alpha1.Check{{Name: "own"}}, Soak: &metav1.Duration{Duration: time.Second}}
	got := floor.withFloor(st)
	if len(got.Verify) != 2 || got.Verify[0].Name != "floor" || got.Verify[1].Name != "own" || got.Soak.Duration != time.Minute {
		t.Errorf("with the floor: %+v", got)
	}
	if len(st.Verify) != 1 || st.Soak.Duration != time.Second {
		t.Errorf("the release's stage changed: %+v", st)
	}
	st.Soak.Duration = time.Hour
	if got := floor.withFloor(st); got.Soak.Duration != time.Hour {
		t.Errorf("a longer soak of the release's became %s", got.Soak.Duration)
	}
	if got := floor.withFloor(nil); len(got.Verify) != 1 {
		t.Errorf("a stage without checks: %+v", got)
	}
	if got := (Floor{}).withFloor(st); got != st {
		t.Errorf("no floor changed the stage")
	}
}

// TestFloorInTheEngine: the floor's checks run in staging before the
// release's own (a release they fail is not carried on); a release whose
// prod stage asks for fewer approvals than prod's floor is refused there,
// and so is a pending promotion of it made before the floor was set.
func TestFloorInTheEngine(t *testing.T) {
	two := int32(2)
	f := newFixture(t, func(c *Config) {
		c.Environments[1].Floor = &Floor{Verify: []v1alpha1.Check{{Name: "floor greets",
			HTTP: &v1alpha1.HTTPCheck{Path: "/hello", Method: "GET", ExpectStatus: 200, BodyContains: "floor ok"}}}}
		c.Environments[2].Floor = &Floor{Approval: &v1alpha1.ApprovalPolicy{Required: &two}}
	})
	// why: a Pipeline of the repository's own (one approval that
	// expires), looser than prod's floor; without one the floor is the
	// policy (below).
	loose := "spec:\n  stages:\n  - {name: dev, auto: true}\n  - {name: staging, auto: true}\n  - {name: prod, approval: {required: 1, expireAfter: 24h}}\n"
	good := f.release(spec{message: "floor ok", pipeline: loose})
	bad := f.release(spec{message: "floor fails", pipeline: loose})
	plain := f.release(spec{message: "floor ok, no pipeline"})

	f.pipelineDeploy(good)
	f.wait(f.promotion(good, "staging").ID, StatusSucceeded)
	p := f.wait(f.promotion(good, "prod").ID, StatusRefused)
	if !strings.Contains(p.Reason, "environments[prod].approval.required is 2; the release's Pipeline asks for 1: a repository may tighten a gate, never loosen it") {
		t.Errorf("the refusal: %q", p.Reason)
	}
	_, err := f.p.Promote(f.ctx, good.ID, "prod", ann)
	refused(t, err, Forbidden, "environments[prod].approval.required is 2")

	// A promotion recorded pending before the floor was there is refused
	// before anyone can approve it in.
	old := must[store.Promotion](t)(f.st.CreatePromotion(f.ctx, store.Promotion{Release: good.ID, Environment: "prod", Requester: Actor, Status: StatusPending, Reason: "from before the floor"}))
	f.wait(old.ID, StatusRefused)
	if d := f.deployments("prod"); len(d) != 0 {
		t.Errorf("prod deployed under a loosened gate: %+v", d)
	}

	// A repository without a Pipeline gets the floor as prod's policy:
	// two approvals, not a refusal.
	f.pipelineDeploy(plain)
	f.wait(f.promotion(plain, "staging").ID, StatusSucceeded)
	waiting := f.wait(f.promotion(plain, "prod").ID, StatusPending, StatusRefused)
	if waiting.Status != StatusPending || !strings.Contains(waiting.Reason, "2 approvals") {
		t.Errorf("a release without a Pipeline in prod: %s (%s), want pending for the floor's 2 approvals", waiting.Status, waiting.Reason)
	}

	f.pipelineDeploy(bad)
	failed := f.wait(f.promotion(bad, "staging").ID, StatusRolledBack, StatusFailed)
	if !strings.Contains(failed.Reason, "floor greets") {
		t.Errorf("staging's verification of a release the floor's check fails: %q", failed.Reason)
	}
	if ps := f.promotions(bad, "prod"); len(ps) != 0 {
		t.Errorf("a release that failed staging's floor went on to prod: %+v", ps)
	}
}
