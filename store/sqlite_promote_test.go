package store

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestMigration0002KeepsReleases opens a database of schema version 1
// holding releases: the rebuilt table keeps every row and its seq, and
// numbers new releases after them.
func TestMigration0002KeepsReleases(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ferry.db")
	ms := must[[]migration](t)(migrations())
	db := must[*sql.DB](t)(sql.Open("sqlite", dsn(path, "")))
	_, err := db.ExecContext(ctx, ms[0].sql)
	check(t, err)
	_, err = db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL) STRICT;
		INSERT INTO schema_migrations VALUES (1, 0);
		INSERT INTO releases (id, source, commit_id, ref, manifest, run, created) VALUES
			('sha256:a', 'demo', 'c1', 'reg/demo@sha256:a', X'6d31', 3, 5),
			('sha256:b', 'demo', 'c2', 'reg/demo@sha256:b', X'6d32', 4, 6);
		INSERT INTO environments (name, target, release_id, held, updated) VALUES ('dev', 'embedded', 'sha256:b', 1, 7);
		INSERT INTO deployments (environment, release_id, previous, actor, promotion, run, status, reason, at)
			VALUES ('dev', 'sha256:b', 'sha256:a', 'ferry', 0, 4, 'succeeded', '', 8);`)
	check(t, err)
	check(t, db.Close())

	s := must[*SQLite](t)(Open(ctx, path))
	t.Cleanup(func() { s.Close() })
	rels := must[[]Release](t)(s.ListReleases(ctx, "", Page{}))
	same(t, "releases after the migration", rels, []Release{
		{Seq: 2, ID: "sha256:b", Source: "demo", Commit: "c2", Ref: "reg/demo@sha256:b", Manifest: []byte("m2"), RunID: 4, Created: time.Unix(0, 6).UTC(), Kind: ReleasePipeline},
		{Seq: 1, ID: "sha256:a", Source: "demo", Commit: "c1", Ref: "reg/demo@sha256:a", Manifest: []byte("m1"), RunID: 3, Created: time.Unix(0, 5).UTC(), Kind: ReleasePipeline},
	})
	// The pipeline's rule holds still: one pipeline release per commit.
	got, created, err := s.PutRelease(ctx, Release{ID: "sha256:c", Source: "demo", Commit: "c1"})
	check(t, err)
	if created || got.ID != "sha256:a" {
		t.Errorf("a second pipeline release of c1: %+v created %v", got, created)
	}
	c := must[Release](t)(func() (Release, error) {
		r, _, err := s.PutRelease(ctx, Release{ID: "sha256:c", Source: "demo", Commit: "c3"})
		return r, err
	}())
	if c.Seq != 3 {
		t.Errorf("new release seq %d, want 3", c.Seq)
	}
	env := must[Environment](t)(s.GetEnvironment(ctx, "dev"))
	if !env.Held || env.Release != "sha256:b" || env.Frozen {
		t.Errorf("environment after the migration: %+v", env)
	}
	d := must[[]Deployment](t)(s.ListDeployments(ctx, "dev", Page{}))
	if len(d) != 1 || d[0].Commit != "c2" || d[0].Kind != "" || d[0].Verification != "" {
		t.Errorf("deployments after the migration: %+v", d)
	}
}

func TestPinnedAndPulledReleasesShareTheCommit(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	base, _, err := s.PutRelease(ctx, Release{ID: "sha256:a", Source: "demo", Commit: "c1"})
	check(t, err)
	pin, created, err := s.PutRelease(ctx, Release{ID: "sha256:pin", Source: "demo", Commit: "c1", Kind: ReleasePinned, BasedOn: base.ID})
	check(t, err)
	if !created || pin.Kind != ReleasePinned || pin.BasedOn != base.ID {
		t.Fatalf("pinned release: %+v, created %v", pin, created)
	}
	pulled, created, err := s.PutRelease(ctx, Release{ID: "sha256:old", Source: "demo", Commit: "c1", Kind: ReleasePulled})
	check(t, err)
	if !created {
		t.Fatalf("pulled release not created: %+v", pulled)
	}
	// The same id again is the stored one, whatever its kind.
	again, created, err := s.PutRelease(ctx, Release{ID: "sha256:pin", Source: "demo", Commit: "c9", Kind: ReleasePulled})
	check(t, err)
	if created || again.Kind != ReleasePinned {
		t.Errorf("the pinned release again: %+v created %v", again, created)
	}
	same(t, "the commit's pipeline release", must[Release](t)(s.ReleaseForCommit(ctx, "demo", "c1")), base)
	same(t, "GetRelease of the pin", must[Release](t)(s.GetRelease(ctx, pin.ID)), pin)
}

func TestOnePromotionDeploysPerEnvironment(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	a := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r1", Environment: "prod", Status: "deploying"}))
	_, err := s.CreatePromotion(ctx, Promotion{Release: "r2", Environment: "prod", Status: "verifying"})
	isErr(t, err, ErrConflict, `create promotion of r2 to "prod": another promotion is deploying to "prod": conflict`)
	b := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r2", Environment: "prod", Status: "approved"}))
	must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r2", Environment: "dev", Status: "verifying"}))

	b.Status = "deploying"
	isErr(t, s.UpdatePromotion(ctx, b, "approved"), ErrConflict, `promotion 2: another promotion is deploying to "prod": conflict`)
	a.Status = "verifying"
	check(t, s.UpdatePromotion(ctx, a, "deploying"))
	a.Status = "succeeded"
	check(t, s.UpdatePromotion(ctx, a, "verifying"))
	check(t, s.UpdatePromotion(ctx, b, "approved"))
}

func TestChangePromotion(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	_, _, err := s.PutRelease(ctx, Release{ID: "r1", Source: "demo", Commit: "c1"})
	check(t, err)
	must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "prod", Release: "r0", Status: DeploymentSucceeded}))
	p := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r1", Environment: "prod", Status: "deploying", Requester: "ann"}))

	// Deployed: the deployment and the status, together.
	p.Status = "verifying"
	got, d, err := s.ChangePromotion(ctx, PromotionChange{Promotion: p, From: "deploying",
		Record: &Deployment{Environment: "prod", Release: "r1", Actor: "ann", Promotion: p.ID, Status: DeploymentSucceeded, Verification: VerificationPending}})
	check(t, err)
	if got.Status != "verifying" || got.Deployment != d.ID || d.ID == 0 || d.Previous != "r0" || d.Commit != "c1" || d.Source != "demo" {
		t.Fatalf("ChangePromotion = %+v, %+v", got, d)
	}
	same(t, "GetDeployment", must[Deployment](t)(s.GetDeployment(ctx, d.ID)), d)
	if env := must[Environment](t)(s.GetEnvironment(ctx, "prod")); env.Release != "r1" {
		t.Errorf("prod runs %s, want r1", env.Release)
	}

	// A change from a status it no longer has changes nothing, the
	// deployment it would record included.
	p.Status = "succeeded"
	_, _, err = s.ChangePromotion(ctx, PromotionChange{Promotion: p, From: "deploying",
		Record: &Deployment{Environment: "prod", Release: "r9", Status: DeploymentSucceeded}})
	isErr(t, err, ErrConflict, "promotion 1 is verifying, not deploying: conflict")
	if env := must[Environment](t)(s.GetEnvironment(ctx, "prod")); env.Release != "r1" {
		t.Errorf("prod runs %s after a refused change, want r1", env.Release)
	}
	if ds := must[[]Deployment](t)(s.FindDeployments(ctx, DeploymentQuery{Release: "r9"})); len(ds) != 0 {
		t.Errorf("a refused change recorded %+v", ds)
	}

	// Verified: the deployment's verification, with the status.
	verified := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d.Verification, d.Verified = VerificationPassed, verified
	p.Reason = "checks passed"
	got, _, err = s.ChangePromotion(ctx, PromotionChange{Promotion: p, From: "verifying", Update: &d})
	check(t, err)
	if got.Status != "succeeded" || got.Reason != "checks passed" || got.Deployment != d.ID {
		t.Errorf("after verification: %+v", got)
	}
	same(t, "verified deployment", must[Deployment](t)(s.GetDeployment(ctx, d.ID)), d)
	isErr(t, s.UpdateDeployment(ctx, Deployment{ID: 99}), ErrNotFound, "update deployment 99: deployment 99: not found")
	_, err = s.GetDeployment(ctx, 99)
	isErr(t, err, ErrNotFound, "deployment 99: not found")
}

func TestFindPromotionsAndDeployments(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	p1 := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r1", Environment: "dev", Status: "verifying", RunID: 7}))
	p2 := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r1", Environment: "staging", Status: "approved", Parent: p1.ID}))
	p3 := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r2", Environment: "staging", Status: "pending", Pinned: true}))
	find := func(q PromotionQuery) []Promotion { return must[[]Promotion](t)(s.FindPromotions(ctx, q)) }
	same(t, "all", find(PromotionQuery{}), []Promotion{p1, p2, p3})
	same(t, "by run", find(PromotionQuery{RunID: 7}), []Promotion{p1})
	same(t, "by parent", find(PromotionQuery{Parent: p1.ID}), []Promotion{p2})
	same(t, "by statuses", find(PromotionQuery{Statuses: []string{"pending", "approved"}}), []Promotion{p2, p3})
	same(t, "by release and environment", find(PromotionQuery{Release: "r1", Environment: "staging"}), []Promotion{p2})
	same(t, "none", find(PromotionQuery{Environment: "prod"}), []Promotion{})

	d1 := must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "dev", Release: "r1", RunID: 7, Status: DeploymentSucceeded}))
	d2 := must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "dev", Release: "r2", Promotion: 3, Status: DeploymentFailed}))
	d3 := must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "staging", Release: "r1", Kind: DeploymentRollback, Status: DeploymentSucceeded}))
	findD := func(q DeploymentQuery) []Deployment { return must[[]Deployment](t)(s.FindDeployments(ctx, q)) }
	same(t, "deployments of dev", findD(DeploymentQuery{Environment: "dev"}), []Deployment{d2, d1})
	same(t, "deployments of r1, one", findD(DeploymentQuery{Release: "r1", Limit: 1}), []Deployment{d3})
	same(t, "by run", findD(DeploymentQuery{RunID: 7}), []Deployment{d1})
	same(t, "by promotion", findD(DeploymentQuery{Promotion: 3}), []Deployment{d2})
}

func TestDecide(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	p := must[Promotion](t)(s.CreatePromotion(ctx, Promotion{Release: "r1", Environment: "prod", Status: "pending"}))
	yes := must[Approval](t)(s.Decide(ctx, Approval{Promotion: p.ID, Actor: "ann", Approve: true, Comment: "ok"}, []string{"pending"}, "", ""))
	if yes.ID == 0 || yes.At.IsZero() {
		t.Errorf("Decide = %+v, want ID and At set", yes)
	}
	no := must[Approval](t)(s.Decide(ctx, Approval{Promotion: p.ID, Actor: "bob", Comment: "not now"}, []string{"pending", "approved"}, "rejected", "rejected by bob"))
	got := must[Promotion](t)(s.GetPromotion(ctx, p.ID))
	if got.Status != "rejected" || got.Reason != "rejected by bob" {
		t.Errorf("after the rejection: %+v", got)
	}
	// Too late: nothing is recorded.
	_, err := s.Decide(ctx, Approval{Promotion: p.ID, Actor: "carol", Approve: true}, []string{"pending"}, "", "")
	isErr(t, err, ErrConflict, "promotion 1 is rejected, not pending: conflict")
	same(t, "approvals", must[[]Approval](t)(s.ListApprovals(ctx, p.ID)), []Approval{yes, no})
	_, err = s.Decide(ctx, Approval{Promotion: 99, Actor: "eve"}, []string{"pending"}, "", "")
	isErr(t, err, ErrNotFound, "promotion 99: not found")
}

func TestHoldAndFreeze(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	check(t, s.PutEnvironment(ctx, Environment{Name: "prod", Target: "k8s", Release: "r1"}))
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	check(t, s.FreezeEnvironment(ctx, "prod", Freeze{Frozen: true, Reason: "release party", Actor: "ann", At: at}))
	check(t, s.HoldEnvironment(ctx, "prod", true, "rolled back by bob"))
	env := must[Environment](t)(s.GetEnvironment(ctx, "prod"))
	same(t, "frozen and held", env, Environment{Name: "prod", Target: "k8s", Release: "r1", Held: true, HoldReason: "rolled back by bob",
		Updated: env.Updated, Frozen: true, FreezeReason: "release party", FrozenBy: "ann", FrozenAt: at})

	// A configuration reload (PutEnvironment) does not thaw it.
	check(t, s.PutEnvironment(ctx, Environment{Name: "prod", Target: "k8s-west", Release: "r1", Held: true, HoldReason: "rolled back by bob"}))
	if env := must[Environment](t)(s.GetEnvironment(ctx, "prod")); !env.Frozen || env.FreezeReason != "release party" || env.Target != "k8s-west" {
		t.Errorf("after PutEnvironment: %+v", env)
	}
	check(t, s.FreezeEnvironment(ctx, "prod", Freeze{Reason: "ignored"}))
	check(t, s.HoldEnvironment(ctx, "prod", false, ""))
	env = must[Environment](t)(s.GetEnvironment(ctx, "prod"))
	same(t, "thawed", env, Environment{Name: "prod", Target: "k8s-west", Release: "r1", Updated: env.Updated})

	// Either adds a missing environment.
	check(t, s.FreezeEnvironment(ctx, "qa", Freeze{Frozen: true, Reason: "r", Actor: "ann"}))
	check(t, s.HoldEnvironment(ctx, "uat", true, "h"))
	if qa := must[Environment](t)(s.GetEnvironment(ctx, "qa")); !qa.Frozen || qa.FrozenAt.IsZero() || qa.Target != "embedded" {
		t.Errorf("qa: %+v", qa)
	}
	if uat := must[Environment](t)(s.GetEnvironment(ctx, "uat")); !uat.Held || uat.Target != "embedded" {
		t.Errorf("uat: %+v", uat)
	}
}
