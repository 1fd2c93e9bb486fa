package store

import "testing"

func TestEnvironments(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	check(t, s.PutEnvironment(ctx, Environment{Name: "prod", Target: "k8s-east", Held: true}))
	check(t, s.PutEnvironment(ctx, Environment{Name: "dev", Target: "embedded", Release: "sha256:r1"}))
	check(t, s.PutEnvironment(ctx, Environment{Name: "prod", Target: "k8s-west"}))
	envs := must[[]Environment](t)(s.ListEnvironments(ctx))
	if len(envs) != 2 || envs[0].Updated.IsZero() {
		t.Fatalf("ListEnvironments = %+v, want two, Updated set", envs)
	}
	same(t, "environments", envs, []Environment{
		{Name: "dev", Target: "embedded", Release: "sha256:r1", Updated: envs[0].Updated},
		{Name: "prod", Target: "k8s-west", Updated: envs[1].Updated},
	})
	same(t, "GetEnvironment", must[Environment](t)(s.GetEnvironment(ctx, "dev")), envs[0])
	_, err := s.GetEnvironment(ctx, "qa")
	isErr(t, err, ErrNotFound, `environment "qa": not found`)
}

func TestRecordDeployment(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()

	// A failure changes no environment, and makes none.
	failed := must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "dev", Release: "sha256:r1", Actor: "ann", Status: "failed", Reason: "unhealthy"}))
	if failed.ID == 0 || failed.At.IsZero() {
		t.Errorf("RecordDeployment = %+v, want ID and At set", failed)
	}
	_, err := s.GetEnvironment(ctx, "dev")
	isErr(t, err, ErrNotFound, `environment "dev": not found`)

	// A success makes the environment, target embedded.
	d1 := must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "dev", Release: "sha256:r1", Actor: "ferry", RunID: 3, Status: "succeeded"}))
	same(t, "environment made by a deployment", must[Environment](t)(s.GetEnvironment(ctx, "dev")),
		Environment{Name: "dev", Target: "embedded", Release: "sha256:r1", Updated: d1.At})

	// A success into an existing environment changes its release alone,
	// and Previous is the release that was live.
	check(t, s.PutEnvironment(ctx, Environment{Name: "prod", Target: "k8s", Release: "sha256:r0", Held: true}))
	d2 := must[Deployment](t)(s.RecordDeployment(ctx, Deployment{Environment: "prod", Release: "sha256:r1", Actor: "bob", Promotion: 4, Status: "succeeded"}))
	if d2.Previous != "sha256:r0" {
		t.Errorf("Previous = %q, want the release live before", d2.Previous)
	}
	same(t, "environment after a deployment", must[Environment](t)(s.GetEnvironment(ctx, "prod")),
		Environment{Name: "prod", Target: "k8s", Release: "sha256:r1", Held: true, Updated: d2.At})

	same(t, "ListDeployments", must[[]Deployment](t)(s.ListDeployments(ctx, "", Page{})), []Deployment{d2, d1, failed})
	same(t, "ListDeployments of dev", must[[]Deployment](t)(s.ListDeployments(ctx, "dev", Page{Limit: 1})), []Deployment{d1})
}
