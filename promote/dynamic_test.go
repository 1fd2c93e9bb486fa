package promote

import (
	"testing"
)

// A preview is an environment the promoter learns of at run time and
// forgets when it is removed. (A Pipeline cannot name one as a stage: the
// manifests refuse pr-<n> and pr-<n>-<source> stage names, see
// manifests/validate_test.go; the promoter's carry-on skips a preview
// all the same.)
func TestPreviewEnvironments(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.p.AddEnvironment(Environment{Name: "pr-3-app", Preview: true}); err != nil {
		t.Fatal(err)
	}
	rel := f.release(spec{message: "into a preview?"})
	if p := f.pipelineDeploy(rel); p.Status != StatusSucceeded {
		t.Fatalf("dev: %s (%s)", p.Status, p.Reason)
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
