package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// ---- checkout ----------------------------------------------------------------

// checkout gets the commit's tree and what a build records about it.
func (r *runner) checkout(ctx context.Context) error {
	r.logf(ctx, StepCheckout, "commit %s of %s/%s", r.run.Commit, r.run.Source, r.run.Branch)
	if err := r.checkoutAgain(ctx); err != nil {
		return err
	}
	if r.info.SourceURL != "" {
		r.logf(ctx, StepCheckout, "from %s", r.info.SourceURL)
	}
	return nil
}

func (r *runner) checkoutAgain(ctx context.Context) error {
	tree, err := r.cfg.Tree(ctx, r.run.Source, r.run.Commit)
	if err != nil {
		// why infra: the commit's tree is what ferry's mirror holds, not
		// what the repository says; it may be readable after a fetch.
		return &infraError{fmt.Errorf("reading commit %s of source %s: %w", store.Short(r.run.Commit), r.run.Source, err)}
	}
	info := build.Info{Revision: r.run.Commit}
	if r.cfg.SourceURL != nil {
		info.SourceURL = r.cfg.SourceURL(r.run.Source)
	}
	if r.cfg.CommitTime != nil {
		t, err := r.cfg.CommitTime(ctx, r.run.Source, r.run.Commit)
		if err != nil {
			return &infraError{fmt.Errorf("reading the time of commit %s of source %s: %w", store.Short(r.run.Commit), r.run.Source, err)}
		}
		info.Time = t
	}
	r.tree, r.info = tree, info
	return nil
}

// ---- validate ----------------------------------------------------------------

// validate loads the manifests. Their problems go to the log one per
// line, each with its file:line:column.
func (r *runner) validate(ctx context.Context) error {
	if err := r.validateAgain(ctx); err != nil {
		return err
	}
	var names []string
	for _, f := range r.set.Functions {
		names = append(names, f.Name)
	}
	r.logf(ctx, StepValidate, "%s: %s (%s), %s; releases go to %s first",
		strings.Join(r.set.Files, ", "), count(len(names), "function"), strings.Join(names, ", "),
		count(triggers(r.set), "trigger"), r.deployEnv())
	return nil
}

func (r *runner) validateAgain(ctx context.Context) error {
	set, err := manifests.Load(ctx, r.tree)
	if err != nil {
		if manifests.Errors(err) != nil {
			// The list's lines name their files and lines already.
			return err
		}
		return fmt.Errorf("reading the manifests of commit %s: %w", store.Short(r.run.Commit), err)
	}
	r.set = set
	return nil
}

// count says "1 function", "2 functions".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func triggers(set *manifests.Set) int {
	return len(set.HTTPTriggers) + len(set.CronTriggers) + len(set.NATSTriggers) + len(set.KafkaTriggers)
}

// deployEnv is the environment a run deploys to: its pull request's
// preview, or else the first stage.
func (r *runner) deployEnv() string {
	if r.run.PullRequest > 0 {
		return store.PreviewName(r.run.Source, r.run.PullRequest)
	}
	return r.firstStage()
}

// firstStage is the first stage of the repository's Pipeline, dev by
// default.
func (r *runner) firstStage() string {
	set := r.set
	if r.artifact != nil && r.artifact.Set != nil {
		set = r.artifact.Set
	}
	if set == nil || set.Pipeline == nil || len(set.Pipeline.Spec.Stages) == 0 {
		return manifests.DefaultPipeline().Spec.Stages[0].Name
	}
	return set.Pipeline.Spec.Stages[0].Name
}

// ---- build -------------------------------------------------------------------

// build builds every function, Jobs at once, and records the builds. Every
// function is built even when one fails, so one run reports every failure.
func (r *runner) build(ctx context.Context) error {
	return r.buildAll(ctx, StepBuild)
}

// buildAll builds the functions, logging to step.
func (r *runner) buildAll(ctx context.Context, step string) error {
	fns := r.set.Functions
	if len(fns) == 0 {
		r.log(ctx, step, "no functions to build")
	}
	images := make([]*build.Image, len(fns))
	errs := make([]error, len(fns))
	var g errgroup.Group
	g.SetLimit(r.cfg.Jobs)
	for i, f := range fns {
		g.Go(func() error {
			start := time.Now()
			img, err := r.cfg.Builder.Build(ctx, r.tree, f, r.info)
			if err != nil {
				errs[i] = err // Build's errors name the function
				r.logf(ctx, step, "%s  %s  failed", f.Name, f.Spec.Runtime)
				return nil
			}
			images[i] = img
			how := "built in " + took(start)
			if img.Cached {
				how = "cached"
			}
			r.logf(ctx, step, "%s  %s  %s  %s", f.Name, f.Spec.Runtime, img.Digest, how)
			return nil
		})
	}
	_ = g.Wait()
	var builds []store.Build
	refs := map[string]string{}
	for _, img := range images {
		if img == nil {
			continue
		}
		refs[img.Function] = img.Ref
		builds = append(builds, store.Build{Source: r.run.Source, Commit: r.run.Commit, Function: img.Function,
			Key: img.Key, Image: img.Ref, Cached: img.Cached, At: time.Now()})
	}
	if len(builds) > 0 {
		if err := r.e.writeRetrying(ctx, r.subject(), count(len(builds), "build"), func(ctx context.Context) error { return r.st.PutBuilds(ctx, builds) }); err != nil {
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.images = refs
	return nil
}

// imageRefs returns every function's image: the ones built in this
// process, else the builds the store recorded for the commit, else built
// again (from the builder's cache, normally).
func (r *runner) imageRefs(ctx context.Context) (map[string]string, error) {
	if r.coversFunctions(r.images) {
		return r.images, nil
	}
	builds, err := r.st.ListBuilds(ctx, r.run.Source, r.run.Commit)
	if err != nil {
		return nil, fmt.Errorf("reading the builds of commit %s: %w", store.Short(r.run.Commit), err)
	}
	refs := map[string]string{}
	latest := map[string]time.Time{}
	for _, b := range builds {
		if r.set.Function(b.Function) != nil && !b.At.Before(latest[b.Function]) {
			refs[b.Function], latest[b.Function] = b.Image, b.At
		}
	}
	if r.coversFunctions(refs) {
		r.images = refs
		return refs, nil
	}
	r.log(ctx, StepRelease, "the builds of this commit are not all recorded; building again")
	if err := r.buildAll(ctx, StepRelease); err != nil {
		return nil, err
	}
	return r.images, nil
}

func (r *runner) coversFunctions(refs map[string]string) bool {
	if refs == nil {
		return false
	}
	for _, f := range r.set.Functions {
		if refs[f.Name] == "" {
			return false
		}
	}
	return true
}

// ---- test --------------------------------------------------------------------

// test runs each function's spec.test.command, Jobs at once, each in a
// scratch copy of the tree.
func (r *runner) test(ctx context.Context) error {
	var tested []*v1alpha1.Function
	for _, f := range r.set.Functions {
		if f.Spec.Test != nil && len(f.Spec.Test.Command) > 0 {
			tested = append(tested, f)
		}
	}
	if len(tested) == 0 {
		return &skip{"no function has a test (spec.test.command)"}
	}
	errs := make([]error, len(tested))
	var g errgroup.Group
	g.SetLimit(r.cfg.Jobs)
	for i, f := range tested {
		g.Go(func() error {
			errs[i] = r.testFunction(ctx, f)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// ---- release -----------------------------------------------------------------

// release pushes the release artifact and records it, unless the store
// has the commit's release already: a commit never gets two.
func (r *runner) release(ctx context.Context) error {
	existing, err := r.st.ReleaseForCommit(ctx, r.run.Source, r.run.Commit)
	switch {
	case err == nil:
		r.stored = existing
		r.logf(ctx, StepRelease, "release %s at %s (made before for this commit, by run %d)", existing.ID, existing.Ref, existing.RunID)
		return r.setRunRelease(ctx)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("looking up the release of commit %s: %w", store.Short(r.run.Commit), err)
	}
	images, err := r.imageRefs(ctx)
	if err != nil {
		return err
	}
	rel, err := build.PushRelease(ctx, r.cfg.Repo, r.set, images, r.info, r.cfg.PushOptions...)
	if err != nil {
		return fmt.Errorf("pushing the release of commit %s to %s: %w", store.Short(r.run.Commit), r.cfg.Repo, err)
	}
	rec := store.Release{ID: rel.Digest.String(), Source: r.run.Source, Commit: r.run.Commit, Ref: rel.Ref,
		Manifest: rel.Manifest, RunID: r.run.ID}
	var (
		stored  store.Release
		created bool
	)
	// why: the release and its entry are kept in one transaction, so no
	// full disk or crash between two writes leaves one without the other.
	entry := store.Event{Actor: Actor, Action: "release.create", Object: "release/" + rec.ID,
		Detail: fmt.Sprintf("%s %s by run %d at %s", r.run.Source, store.Short(r.run.Commit), r.run.ID, rec.Ref)}
	err = r.e.writeRetrying(ctx, r.subject(), "release "+rec.ID, func(ctx context.Context) (err error) {
		stored, created, err = r.st.PutRelease(store.WithEvent(ctx, entry), rec)
		return err
	})
	if err != nil {
		return err
	}
	r.stored = stored
	if stored.ID == rec.ID {
		r.artifact = rel
	}
	if created {
		r.logf(ctx, StepRelease, "release %s at %s", stored.ID, stored.Ref)
		r.tell(Event{Kind: EventReleaseMade, Release: stored.ID})
	} else {
		r.logf(ctx, StepRelease, "release %s at %s (recorded before for this commit, by run %d)", stored.ID, stored.Ref, stored.RunID)
	}
	return r.setRunRelease(ctx)
}

func (r *runner) setRunRelease(ctx context.Context) error {
	if r.run.Release == r.stored.ID {
		return nil
	}
	r.run.Release = r.stored.ID
	return r.updateRun(ctx)
}

// releaseAgain finds the release a done release step made.
func (r *runner) releaseAgain(ctx context.Context) error {
	var (
		rel store.Release
		err error
	)
	if r.run.Release != "" {
		rel, err = r.st.GetRelease(ctx, r.run.Release)
	} else {
		rel, err = r.st.ReleaseForCommit(ctx, r.run.Source, r.run.Commit)
	}
	if err != nil {
		return fmt.Errorf("the release step is done, but its release of commit %s cannot be read: %w", store.Short(r.run.Commit), err)
	}
	r.stored = rel
	return r.setRunRelease(ctx)
}

// ---- deploy ------------------------------------------------------------------

// deploy applies the release to the first stage and records the
// deployment.
func (r *runner) deploy(ctx context.Context) error {
	if r.artifact == nil {
		pull := r.cfg.Pull
		if pull == nil {
			pull = func(ctx context.Context, ref string) (*build.Release, error) {
				return build.PullRelease(ctx, ref, r.cfg.PushOptions...)
			}
		}
		rel, err := pull(ctx, r.stored.Ref)
		if err != nil {
			return fmt.Errorf("pulling release %s: %w", r.stored.ID, err)
		}
		if rel.Digest.String() != r.stored.ID {
			return fmt.Errorf("release %s: the registry gave %s for %s", r.stored.ID, rel.Digest, r.stored.Ref)
		}
		r.artifact = rel
	}
	env := r.deployEnv()
	if r.cfg.Admit != nil && r.run.PullRequest == 0 {
		// why: a frozen first stage, or one held after a manual rollback,
		// must not be changed by a commit behind the operator's back; the
		// release is made, and waits (Admit records it) until the stage
		// is open.
		if err := r.cfg.Admit(ctx, r.run, r.stored, env); err != nil {
			return &skip{fmt.Sprintf("%s takes no automatic deploys now: %v", env, err)}
		}
	}
	if err := r.behind(ctx, env); err != nil {
		return err
	}
	target, err := r.cfg.Target(env)
	if err != nil {
		return fmt.Errorf("environment %s: %w", env, err)
	}
	r.tell(Event{Kind: EventDeploying, Release: r.stored.ID, Environment: env})
	if err := target.Apply(ctx, r.artifact); err != nil {
		if ctx.Err() != nil {
			return err
		}
		err = fmt.Errorf("applying release %s to %s: %w", r.stored.ID, env, err)
		if rerr := r.recordDeployment(ctx, env, store.DeploymentFailed, summary(err)); rerr != nil {
			return rerr
		}
		r.tell(Event{Kind: EventDeployFailed, Release: r.stored.ID, Environment: env, Error: firstLine(err.Error())})
		return err
	}
	// why: Apply is done; what follows is recorded even if ctx ends now.
	if done, err := r.deployedBefore(context.WithoutCancel(ctx), env); err != nil {
		return err
	} else if !done {
		if err := r.recordDeployment(ctx, env, store.DeploymentSucceeded, ""); err != nil {
			return err
		}
	}
	r.logf(ctx, StepDeploy, "%s now runs %s", env, r.stored.ID)
	r.tell(Event{Kind: EventDeployed, Release: r.stored.ID, Environment: env})
	for _, fi := range r.artifact.FunctionImages() {
		if u, err := target.URL(fi.Function); err == nil {
			r.logf(ctx, StepDeploy, "%s  %s", fi.Function, u)
		}
	}
	r.deployed(env)
	return nil
}

// deployed tells the hook of the run's kind that env runs its release: a
// stage's is promoted onward, a preview's never.
func (r *runner) deployed(env string) {
	switch {
	case r.run.PullRequest > 0 && r.cfg.OnPreviewDeployed != nil:
		r.cfg.OnPreviewDeployed(r.run, r.stored, env)
	case r.run.PullRequest == 0 && r.cfg.OnDeployed != nil:
		r.cfg.OnDeployed(r.run, r.stored, env)
	}
}

// behind returns a *supersededError when env runs a newer commit of the
// run's source and branch than the run's, unless the run's commit is the
// branch head: deploying it would take env back. Whether it is newer is Git's answer (the run's commit is an
// ancestor of the live one), not the times of the commits or the runs.
func (r *runner) behind(ctx context.Context, env string) error {
	if r.cfg.IsAncestor == nil {
		return nil
	}
	live, err := store.LiveIn(ctx, r.st, env)
	if err != nil {
		return fmt.Errorf("reading what %s runs: %w", env, err)
	}
	if live.Commit == "" || live.Source != r.run.Source || live.Commit == r.run.Commit ||
		(live.Branch != "" && live.Branch != r.run.Branch) {
		return nil
	}
	// why: the branch's head as the watcher last saw it is where env
	// converges, even when it is older than what env runs: the branch was
	// force-pushed back to it (git reset --hard HEAD~1 && git push -f).
	head, err := r.e.headOf(ctx, r.run)
	if err != nil {
		return fmt.Errorf("reading the head of %s/%s: %w", r.run.Source, r.run.Branch, err)
	}
	if head == r.run.Commit {
		return nil
	}
	older, err := r.cfg.IsAncestor(ctx, r.run.Source, r.run.Commit, live.Commit)
	if err != nil {
		return fmt.Errorf("comparing commit %s with %s, which %s runs: %w", store.Short(r.run.Commit), store.Short(live.Commit), env, err)
	}
	if !older {
		return nil
	}
	return &supersededError{fmt.Sprintf("%s already runs %s (newer on %s); this run's commit %s is older",
		env, store.Short(live.Commit), r.run.Branch, store.Short(r.run.Commit))}
}

// deployedBefore reports whether the newest deployment of env is this
// run's, succeeded: ferry stopped after recording it, before the step
// was marked done.
func (r *runner) deployedBefore(ctx context.Context, env string) (bool, error) {
	last, err := r.st.ListDeployments(ctx, env, store.Page{Limit: 1})
	if err != nil {
		return false, fmt.Errorf("reading the deployments of %s: %w", env, err)
	}
	return len(last) == 1 && last[0].RunID == r.run.ID && last[0].Release == r.stored.ID && last[0].Status == store.DeploymentSucceeded, nil
}

// recordDeployment records a deployment of the run's release to env; the
// store fills in the release live before, in the same transaction.
func (r *runner) recordDeployment(ctx context.Context, env, status, reason string) error {
	d := store.Deployment{Environment: env, Release: r.stored.ID, Actor: Actor,
		RunID: r.run.ID, Status: status, Reason: reason}
	detail := fmt.Sprintf("release %s by run %d: %s", r.stored.ID, r.run.ID, status)
	if reason != "" {
		detail += ": " + reason
	}
	// why: the deployment and its entry are kept in one transaction; a
	// resumed run that finds its deployment recorded does not record it
	// again, so an entry written apart could be lost for good.
	entry := store.Event{Actor: Actor, Action: "deploy", Object: "env/" + env, Detail: detail}
	what := fmt.Sprintf("the deployment of %s to %s", r.stored.ID, env)
	return r.e.writeRetrying(ctx, r.subject(), what, func(ctx context.Context) error {
		_, err := r.st.RecordDeployment(store.WithEvent(ctx, entry), d)
		return err
	})
}

// deployAgain tells OnDeployed again about a deployment whose run ferry
// did not finish: it may not have heard of it.
func (r *runner) deployAgain(ctx context.Context) error {
	r.deployed(r.deployEnv())
	return nil
}

// took says how long since start, as people read it: 40ms, 1.2s, 2m3s.
func took(start time.Time) string {
	d := time.Since(start)
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
