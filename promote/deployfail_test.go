package promote

import (
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/saysonce"
	"github.com/ferrycd/ferry/store"
)

// TestDeployFailureMessage: a promotion whose release does not start
// fails with a reason that says each thing once: the release (short)
// and the environment from the promoter, why from the target, that the
// previous release keeps serving, and "it logged nothing" for a function
// that died silently, never a dangling colon.
func TestDeployFailureMessage(t *testing.T) {
	f := newFixture(t, nil)
	good := f.release(spec{message: "deploy failure: good"})
	if p := f.pipelineDeploy(good); p.Status != StatusSucceeded {
		t.Fatalf("the good release in dev: %+v", p)
	}
	bad := f.release(spec{message: "deploy failure: bad", main: "import os\nos._exit(3)\n"})
	p, err := f.p.Promote(f.ctx, bad.ID, "dev", ann)
	if err != nil {
		t.Fatal(err)
	}
	p = f.wait(p.ID, StatusFailed, StatusSucceeded, StatusRolledBack)
	const cause = "function hello exited with status 3 before it was healthy; the previous release keeps serving; it logged nothing"
	want := "deploying release " + store.Short(bad.ID) + " to dev failed: " + cause
	if p.Status != StatusFailed || p.Reason != want {
		t.Errorf("the promotion: %s %q\nwant: failed %q", p.Status, p.Reason, want)
	}
	var failed []store.Deployment
	for _, d := range f.deployments("dev") {
		if d.Release == bad.ID {
			failed = append(failed, d)
		}
	}
	if len(failed) != 1 || failed[0].Status != store.DeploymentFailed || failed[0].Reason != cause {
		t.Errorf("the failed deployment: %+v\nwant reason %q", failed, cause)
	}
	for _, e := range must[[]store.Event](t)(f.st.ListEvents(f.ctx, "env/dev", store.Page{})) {
		saysonce.Check(t, "the audit entry "+e.Action, e.Detail)
	}
	for _, text := range []string{p.Reason, cause} {
		saysonce.Check(t, "the failure", text)
		if strings.HasSuffix(strings.TrimSpace(text), ":") || strings.Count(text, "sha256:") > 0 || strings.Count(text, store.Short(bad.ID)) > 1 {
			t.Errorf("said twice, or dangling: %q", text)
		}
	}
	f.answers("dev", "deploy failure: good")
}
