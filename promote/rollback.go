package promote

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// digestRE is a sha256 digest: a release id, or an image's.
var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Rollback implements Promoter. It takes env from whatever deploys there
// (a promotion deploying or verifying ends rolled back), holds automatic
// promotion into env, applies the release and records the deployment.
// No check runs: a rollback is the way out when checks are no help.
//
// Into a stage with an approval policy a rollback goes only where the
// policy let the environment go before: to a release env ran, or with
// one function pinned to an image that function had in a release env
// ran. Anything else is a promotion, and needs its approvals.
func (e *engine) Rollback(ctx context.Context, env string, to RollbackTarget, actor Identity) (store.Deployment, error) {
	if err := e.checkEnv(env); err != nil {
		return store.Deployment{}, err
	}
	if actor.Name == "" {
		return store.Deployment{}, invalid("rollback: no actor; ferry records who rolls %s back", env)
	}
	switch {
	case to.Function != "" && to.Image == "":
		return store.Deployment{}, invalid("rollback %s --function %s: give the image to pin it to (--to sha256:…)", env, to.Function)
	case to.Function == "" && to.Image != "":
		return store.Deployment{}, invalid("rollback %s: an image is pinned for one function; name it (--function)", env)
	case to.Function != "" && to.Release != "":
		return store.Deployment{}, invalid("rollback %s: give a release or a function's image, not both", env)
	}

	// why: the target is worked out before the environment is taken, so
	// that a refused rollback disturbs nothing (taking it stops what
	// deploys there), and so that pulling or pushing a release does not
	// hold it. Once it is taken, what runs may have changed: then again.
	cur, target, how, err := e.rollbackTarget(ctx, env, to, actor)
	if err != nil {
		return store.Deployment{}, err
	}
	unlock, err := e.takeEnv(ctx, env, fmt.Errorf("%s rolls %s back", actor.Name, env))
	if err != nil {
		return store.Deployment{}, err
	}
	defer unlock()
	if now, err := e.st.GetEnvironment(ctx, env); err != nil {
		return store.Deployment{}, err
	} else if now.Release != cur.Release {
		if cur, target, how, err = e.rollbackTarget(ctx, env, to, actor); err != nil {
			return store.Deployment{}, err
		}
	}

	wctx := context.WithoutCancel(ctx)
	// why: held before the release changes, so that no automatic
	// promotion comes in between, even across a crash.
	hold := fmt.Sprintf("%s pinned it to release %s at %s", actor.Name, store.Short(target.rec.ID), e.now().UTC().Format(time.RFC3339))
	// why: the entry goes with the hold, the rollback's first change; a
	// rollback that then fails adds an entry saying so.
	hctx := e.event(wctx, actor.Name, ActionRollback, "env/"+env, fmt.Sprintf("from release %s to %s (%s); automatic promotions wait until `ferry resume %s`", cur.Release, target.rec.ID, how, env))
	if err := e.st.HoldEnvironment(hctx, env, true, hold); err != nil {
		return store.Deployment{}, err
	}
	d := store.Deployment{Environment: env, Release: target.rec.ID, Previous: cur.Release, Actor: actor.Name,
		Kind: store.DeploymentRollback, Status: store.DeploymentSucceeded,
		Reason: fmt.Sprintf("rolled back from release %s: %s", store.Short(cur.Release), how)}
	if err := e.apply(ctx, env, target); err != nil {
		// The promotion it stopped, if any, stays as it was: Run takes it
		// up again.
		d.Status, d.Reason = store.DeploymentFailed, err.Error()
		fctx := e.event(wctx, actor.Name, ActionRollback, "env/"+env, fmt.Sprintf("to release %s (%s): failed: %v", target.rec.ID, how, err))
		if _, rerr := e.st.RecordDeployment(fctx, d); rerr != nil {
			e.logf("%v", rerr)
		}
		if herr := e.st.HoldEnvironment(wctx, env, cur.Held, cur.HoldReason); herr != nil {
			e.logf("%v", herr)
		}
		return store.Deployment{}, fmt.Errorf("rolling %s back to release %s: %w; %s still runs release %s", env, store.Short(target.rec.ID), err, env, store.Short(cur.Release))
	}
	if err := e.stopActive(wctx, env, fmt.Sprintf("stopped: %s rolled %s back to release %s", actor.Name, env, store.Short(target.rec.ID))); err != nil {
		return store.Deployment{}, e.undoRollback(wctx, env, cur, target, err)
	}
	d, err = e.st.RecordDeployment(wctx, d)
	if err != nil {
		return store.Deployment{}, e.undoRollback(wctx, env, cur, target, err)
	}
	e.tell(Event{Kind: EventRolledBack, Environment: env, Release: target.rec.ID, Actor: actor.Name, Reason: firstLine(d.Reason)})
	e.export(wctx, d)
	return d, nil
}

// undoRollback puts env back on cur's release when the rollback to target
// was applied but the store refused to record it (a full disk): the
// environment must run what the store says it runs, or the next start
// would undo the rollback silently while the hold stays. The error says
// what happened and what runs.
func (e *engine) undoRollback(ctx context.Context, env string, cur store.Environment, target *release, cause error) error {
	err := fmt.Errorf("rolling %s back to release %s: the store did not record it: %w", env, store.Short(target.rec.ID), cause)
	prev, rerr := e.release(ctx, cur.Release)
	if rerr == nil {
		rerr = e.apply(ctx, env, prev)
	}
	if rerr != nil {
		// why: nothing better is left; the store's release is what the
		// next start restores.
		return fmt.Errorf("%w; putting release %s back failed too (%v): ferry serve's next start puts it back", err, store.Short(cur.Release), rerr)
	}
	if herr := e.st.HoldEnvironment(ctx, env, cur.Held, cur.HoldReason); herr != nil {
		e.logf("rollback of %s undone, but its hold stays: %v", env, herr)
	}
	return fmt.Errorf("%w; %s runs release %s again", err, env, store.Short(cur.Release))
}

// rollbackTarget works out where a rollback of env goes from what env
// runs now.
func (e *engine) rollbackTarget(ctx context.Context, env string, to RollbackTarget, actor Identity) (store.Environment, *release, string, error) {
	cur, err := e.st.GetEnvironment(ctx, env)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return cur, nil, "", err
	}
	if cur.Release == "" {
		return cur, nil, "", conflict("%s runs no release; there is nothing to roll back", env)
	}
	live, err := e.release(ctx, cur.Release)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return cur, nil, "", err
	}
	var target *release
	var how string
	switch {
	case to.Function != "":
		target, err = e.pinned(ctx, env, live, to)
		how = fmt.Sprintf("function %s pinned to %s", to.Function, to.Image)
	case to.Release != "":
		target, err = e.chosen(ctx, env, live, to.Release)
		how = "chosen by " + actor.Name
	default:
		target, err = e.previous(ctx, env, cur.Release)
		how = "the release before"
	}
	if err != nil {
		return cur, nil, "", err
	}
	if target.rec.ID == cur.Release {
		return cur, nil, "", conflict("%s runs release %s already", env, store.Short(cur.Release))
	}
	return cur, target, how, nil
}

// stopActive ends the promotions deploying to or verifying in env (whose
// execution takeEnv stopped): the environment was rolled back from them.
func (e *engine) stopActive(ctx context.Context, env, reason string) error {
	active, err := e.st.FindPromotions(ctx, store.PromotionQuery{Environment: env, Statuses: []string{StatusDeploying, StatusVerifying}})
	if err != nil {
		return err
	}
	for _, p := range active {
		from := p.Status
		if err := e.settleDeployment(ctx, p, store.DeploymentRolledBack, "", reason); err != nil {
			return err
		}
		p.Status, p.Reason = StatusRolledBack, reason
		if err := e.st.UpdatePromotion(ctx, p, from); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

// Resume implements Promoter. Automatic promotions that waited go in
// then, oldest first: an auto stage's newest waiting release (older ones
// were superseded while it waited), and approved promotions of an
// approval stage.
func (e *engine) Resume(ctx context.Context, env string, actor Identity) error {
	if err := e.checkEnv(env); err != nil {
		return err
	}
	if actor.Name == "" {
		return invalid("resume: no actor; ferry records who resumed %s", env)
	}
	cur, err := e.st.GetEnvironment(ctx, env)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !cur.Held {
		return conflict("%s is not held; automatic promotions go in already", env)
	}
	if err := e.st.HoldEnvironment(e.event(ctx, actor.Name, ActionResume, "env/"+env, "was held: "+cur.HoldReason), env, false, ""); err != nil {
		return err
	}
	e.tell(Event{Kind: EventResumed, Environment: env, Actor: actor.Name, Reason: firstLine("was held: " + cur.HoldReason)})
	e.signal()
	return nil
}

// previous is the release env ran before the live one: walking the
// history back, the first release that became live and that env was not
// rolled back from (nor failed its checks), so that rolling back twice
// goes two releases back rather than forth again.
func (e *engine) previous(ctx context.Context, env, live string) (*release, error) {
	left := map[string]bool{live: true}
	page := store.Page{Limit: store.MaxPageSize}
	for {
		ds, err := e.st.ListDeployments(ctx, env, page)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if (d.Kind == store.DeploymentRollback || d.Kind == store.DeploymentAutoRollback) && d.Status != store.DeploymentFailed {
				left[d.Previous] = true
			}
			if d.Status == store.DeploymentRolledBack || d.Verification == store.VerificationFailed {
				left[d.Release] = true
			}
			if d.Status != store.DeploymentSucceeded || left[d.Release] {
				continue
			}
			r, err := e.release(ctx, d.Release)
			if errors.Is(err, store.ErrNotFound) {
				left[d.Release] = true // not deployable again without its record
				continue
			}
			return r, err
		}
		if len(ds) < page.Limit {
			return nil, conflict("%s ran no release before %s that it could go back to; give one (--to RELEASE)", env, store.Short(live))
		}
		page.Before = ds[len(ds)-1].ID
	}
}

// ranIn reports whether env ran release id before (it became live there).
func (e *engine) ranIn(ctx context.Context, env, id string) (bool, error) {
	ds, err := e.st.FindDeployments(ctx, store.DeploymentQuery{Environment: env, Release: id})
	if err != nil {
		return false, err
	}
	for _, d := range ds {
		if d.Status == store.DeploymentSucceeded || d.Status == store.DeploymentRolledBack {
			return true, nil
		}
	}
	return false, nil
}

// approvalStage reports whether env asks for approvals in the pipeline of
// any of rels, or its floor gates it.
func (e *engine) approvalStage(env string, rels ...*release) bool {
	if e.floor(env).gated() {
		return true
	}
	for _, r := range rels {
		if r == nil {
			continue
		}
		if st, ok := r.stage(env); ok && st.Approval != nil {
			return true
		}
	}
	return false
}

// chosen is the release a rollback --to names: one of the store, or one
// the store does not hold, pulled from the registry and recorded.
func (e *engine) chosen(ctx context.Context, env string, live *release, given string) (*release, error) {
	id, ref := given, ""
	if i := strings.LastIndex(given, "@"); i >= 0 {
		id, ref = given[i+1:], given
	}
	if !digestRE.MatchString(id) {
		return nil, invalid("%q is not a release id; give sha256:<64 hex digits> (ferry releases lists them) or REPO@sha256:…", given)
	}
	r, err := e.release(ctx, id)
	switch {
	case err == nil:
		// why: a pipeline release holds what ferry built; a pinned or
		// pulled one was admitted when it was made, and is admitted again
		// under today's allowedImages, which may have narrowed since.
		if r.rec.Kind != store.ReleasePipeline {
			if err := e.admitSet(ctx, id, r.rec.Source, r.set); err != nil {
				return nil, err
			}
		}
		if e.approvalStage(env, live, r) {
			if err := e.letIn(ctx, env, id); err != nil {
				return nil, err
			}
		}
		return r, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if ref == "" {
		if e.cfg.Repo == "" {
			return nil, invalid("the store holds no release %s and ferry knows no registry to pull it from; give REPO@%s", id, id)
		}
		ref = e.cfg.Repo + "@" + id
	}
	if err := e.admitReleaseRef(ref); err != nil {
		return nil, err
	}
	a, err := e.cfg.Pull(ctx, ref)
	if err != nil {
		return nil, invalid("the store holds no release %s, and pulling it from %s failed: %v", id, ref, err)
	}
	if a.Digest.String() != id {
		return nil, environments.RefusedImage(fmt.Errorf("release %s: the registry gave %s for %s; the registry is not to be trusted", id, a.Digest, ref))
	}
	source := e.sourceNamed(ctx, a.SourceURL)
	if err := e.admitSet(ctx, id, source, a.Set); err != nil {
		return nil, err
	}
	pulled := &release{rec: store.Release{ID: id}, set: a.Set}
	if e.approvalStage(env, live, pulled) {
		if err := e.letIn(ctx, env, id); err != nil {
			return nil, err
		}
	}
	rec := store.Release{ID: id, Source: source, Commit: a.Revision, Ref: a.Ref,
		Manifest: a.Manifest, Kind: store.ReleasePulled}
	if _, _, err := e.st.PutRelease(ctx, rec); err != nil {
		return nil, err
	}
	e.keepArtifact(a)
	return e.release(ctx, id)
}

// letIn refuses a rollback into an approval stage to a release the
// environment never ran: that is a promotion, and needs approvals.
func (e *engine) letIn(ctx context.Context, env, id string) error {
	ok, err := e.ranIn(ctx, env, id)
	if err != nil || ok {
		return err
	}
	return forbidden("release %s never ran in %s, whose policy asks for approvals; a rollback goes back to a release %s ran before, so promote this one instead (ferry promote)", store.Short(id), env, env)
}

// sourceNamed is the name of the source whose URL is url, else url: what
// a release pulled from the registry says of where it came from.
func (e *engine) sourceNamed(ctx context.Context, url string) string {
	if url == "" {
		return ""
	}
	srcs, err := e.st.ListSources(ctx)
	if err == nil {
		for _, s := range srcs {
			if s.URL == url {
				return s.Name
			}
		}
	}
	return url
}

// pinned makes the release a rollback --function asks for: the live one
// with the function's image replaced, pushed to the registry as a release
// of its own and recorded.
func (e *engine) pinned(ctx context.Context, env string, live *release, to RollbackTarget) (*release, error) {
	if live == nil {
		return nil, conflict("the store holds no record of the release %s runs, so ferry cannot pin one of its functions; roll back to a release (--to)", env)
	}
	f := live.set.Function(to.Function)
	if f == nil {
		var names []string
		for _, fn := range live.set.Functions {
			names = append(names, fn.Name)
		}
		return nil, invalid("release %s that %s runs has no function %s (its functions are %s)", store.Short(live.rec.ID), env, to.Function, strings.Join(names, ", "))
	}
	image := to.Image
	if digestRE.MatchString(image) {
		repo, _, _ := strings.Cut(f.Spec.Image, "@")
		image = repo + "@" + image
	}
	if !manifests.IsPinnedImage(image) {
		return nil, invalid("%q is not an image by digest; give sha256:<64 hex digits> or HOST/REPO@sha256:…", to.Image)
	}
	if image == f.Spec.Image {
		return nil, conflict("function %s runs image %s in %s already", to.Function, image, env)
	}
	// why: admitted before anything is asked of its registry.
	if err := e.admitImage(ctx, live.rec.Source, image); err != nil {
		return nil, err
	}
	if e.approvalStage(env, live) {
		if err := e.ranImage(ctx, env, to.Function, image); err != nil {
			return nil, err
		}
	}
	if err := e.cfg.ImageExists(ctx, image); err != nil {
		if errors.Is(err, environments.ErrRefusedImage) {
			return nil, fmt.Errorf("image %s: %w; give the digest of an image (of one platform)", image, err)
		}
		return nil, invalid("image %s: %v; give a digest of an image the registry holds (a build printed it)", image, err)
	}
	if e.cfg.Repo == "" {
		return nil, invalid("ferry knows no registry to push the release with %s pinned to (Config.Repo)", to.Function)
	}
	images := map[string]string{}
	for _, fn := range live.set.Functions {
		images[fn.Name] = fn.Spec.Image
	}
	images[to.Function] = image
	var info build.Info
	if a, err := e.artifact(ctx, live); err == nil {
		info = build.Info{SourceURL: a.SourceURL, Revision: a.Revision}
	} else {
		info = build.Info{Revision: live.rec.Commit}
	}
	a, err := build.PushRelease(ctx, e.cfg.Repo, live.set, images, info, e.cfg.PushOptions...)
	if err != nil {
		return nil, fmt.Errorf("pushing release %s with %s pinned to %s: %w", store.Short(live.rec.ID), to.Function, image, err)
	}
	rec := store.Release{ID: a.Digest.String(), Source: live.rec.Source, Commit: live.rec.Commit, Ref: a.Ref,
		Manifest: a.Manifest, Kind: store.ReleasePinned, BasedOn: live.rec.ID}
	if _, _, err := e.st.PutRelease(ctx, rec); err != nil {
		return nil, err
	}
	e.keepArtifact(a)
	return e.release(ctx, rec.ID)
}

// ranImage refuses to pin a function, in an approval stage, to an image
// it never had in a release the environment ran.
func (e *engine) ranImage(ctx context.Context, env, function, image string) error {
	seen := map[string]bool{}
	page := store.Page{Limit: store.MaxPageSize}
	for {
		ds, err := e.st.ListDeployments(ctx, env, page)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if seen[d.Release] || (d.Status != store.DeploymentSucceeded && d.Status != store.DeploymentRolledBack) {
				continue
			}
			seen[d.Release] = true
			r, err := e.release(ctx, d.Release)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if f := r.set.Function(function); f != nil && f.Spec.Image == image {
				return nil
			}
		}
		if len(ds) < page.Limit {
			return forbidden("function %s never ran image %s in %s, whose policy asks for approvals; pin an image it ran there before, or promote a release with it", function, image, env)
		}
		page.Before = ds[len(ds)-1].ID
	}
}

// HeadImage is the default Config.ImageExists: a HEAD of the manifest.
func HeadImage(ctx context.Context, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	desc, err := remote.Head(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(build.RegistryTransport(build.DefaultRegistryTimeout)))
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == 404 {
			return errors.New("the registry has no such image")
		}
		return err
	}
	if !desc.MediaType.IsImage() && !desc.MediaType.IsIndex() {
		return environments.RefusedImage(fmt.Errorf("it is a %s, not an image", desc.MediaType))
	}
	return nil
}
