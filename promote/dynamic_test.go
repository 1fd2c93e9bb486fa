package promote

import (
	"testing"
)

// A Pipeline that names a preview as its next stage: the release must
// not be carried into it.
const previewStagePipeline = `spec:
  stages:
  - {name: dev, auto: true}
  - {name: pr-3-app, auto: true, from: [dev]}
`

func TestPreviewEnvironments(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.p.AddEnvironment(Environment{Name: "pr-3-app", Preview: true}); err != nil {
		t.Fatal(err)
	}
	rel := f.release(spec{message: "into a preview?", pipeline: previewStagePipeline})
	if p := f.pipelineDeploy(rel); p.Status != StatusSucceeded {
		t.Fatalf("dev: %s (%s)", p.Status, p.Reason)
	}
	// Deployed verifies dev and carries on in the same step: by now a
	// promotion into pr-3-app would be recorded.
	if ps := f.promotions(rel, "pr-3-app"); len(ps) != 0 {
		t.Errorf("the release was carried into the preview: %+v", ps)
	}

	err := f.p.Freeze(f.ctx, "pr-3-app", "no", Identity{Name: "ann"})
	refused(t, err, Invalid, "pr-3-app is a preview environment, which has no freeze")

	if err := f.p.RemoveEnvironment("pr-3-app", "its pull request closed"); err != nil {
		t.Fatal(err)
	}
	_, err = f.p.Promote(f.ctx, rel.ID, "pr-3-app", Identity{Name: "ann"})
	refused(t, err, Invalid, "environment pr-3-app was removed (its pull request closed)")
	_, err = f.p.Rollback(f.ctx, "pr-3-app", RollbackTarget{Release: rel.ID}, Identity{Name: "ann"})
	refused(t, err, Invalid, "environment pr-3-app was removed (its pull request closed)")

	err = f.p.RemoveEnvironment("prod", "no")
	refused(t, err, Invalid, "prod is in ferry serve's configuration and cannot be removed")
	if !f.p.known("prod") {
		t.Error("prod is gone after a refused removal")
	}
	// Made again, it is known again.
	if err := f.p.AddEnvironment(Environment{Name: "pr-3-app", Preview: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.p.checkEnv("pr-3-app"); err != nil {
		t.Errorf("made again: %v", err)
	}
	if err := f.p.AddEnvironment(Environment{Name: "staging", Preview: true}); err == nil {
		t.Error("a configured environment became a preview")
	}
}
