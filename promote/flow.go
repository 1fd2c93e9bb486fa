package promote

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// Deployed implements Promoter. It returns once the verification is
// recorded as to do: a promotion of the release into env in status
// verifying, which Run executes. A promotion still deploying to or
// verifying in env is superseded: env runs the new release now.
func (e *engine) Deployed(ctx context.Context, runID int64, releaseID, env string) error {
	rel, err := e.release(ctx, releaseID)
	if err != nil {
		return fmt.Errorf("run %d deployed release %s to %s: %w", runID, releaseID, env, err)
	}
	if _, ok := rel.stage(env); !ok {
		return invalid("run %d deployed release %s to %s, which is not a stage of its pipeline (%s)", runID, store.Short(releaseID), env, rel.stageNames())
	}
	ds, err := e.st.FindDeployments(ctx, store.DeploymentQuery{Environment: env, RunID: runID, Release: releaseID, Limit: 1})
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		return fmt.Errorf("run %d: no deployment of release %s to %s is recorded; the pipeline records it before telling the promoter", runID, releaseID, env)
	}
	d := ds[0]
	if done, err := e.verifiedBefore(ctx, runID, env, d.ID); err != nil {
		return err
	} else if done {
		e.signal()
		return nil
	}
	if d.Status != store.DeploymentSucceeded {
		return nil // nothing became live, nothing to verify
	}

	unlock, err := e.takeEnv(ctx, env, fmt.Errorf("run %d deployed release %s to %s", runID, store.Short(releaseID), env))
	if err != nil {
		return err
	}
	defer unlock()
	ctx = context.WithoutCancel(ctx) // what follows is a few writes, done together
	if done, err := e.verifiedBefore(ctx, runID, env, d.ID); err != nil || done {
		return err
	}
	p := store.Promotion{Release: releaseID, Environment: env, Requester: Actor, RunID: runID, Deployment: d.ID}
	cur, err := e.st.GetEnvironment(ctx, env)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if cur.Release != releaseID {
		// A later deployment replaced it before it could be verified: say
		// so in the history, and verify nothing.
		p.Status = StatusSuperseded
		p.Reason = fmt.Sprintf("run %d deployed it, but %s runs release %s since", runID, env, store.Short(cur.Release))
		_, err := e.st.CreatePromotion(ctx, p)
		return err
	}
	active, err := e.st.FindPromotions(ctx, store.PromotionQuery{Environment: env, Statuses: []string{StatusDeploying, StatusVerifying}})
	if err != nil {
		return err
	}
	for _, q := range active {
		from := q.Status
		q.Status = StatusSuperseded
		q.Reason = fmt.Sprintf("run %d deployed release %s over it", runID, store.Short(releaseID))
		if err := e.settleDeployment(ctx, q, store.DeploymentSucceeded, "", q.Reason); err != nil {
			return err
		}
		if err := e.st.UpdatePromotion(ctx, q, from); err != nil {
			return err
		}
	}
	p.Status, p.Reason = StatusVerifying, fmt.Sprintf("run %d deployed it; verifying", runID)
	p, err = e.st.CreatePromotion(e.created(ctx, Actor, fmt.Sprintf("release %s in %s, deployed by run %d: verifying", releaseID, env, runID)), p)
	if err != nil {
		return err
	}
	d.Verification = store.VerificationPending
	if err := e.st.UpdateDeployment(ctx, d); err != nil {
		return err
	}
	e.export(ctx, d)
	return nil
}

// verifiedBefore reports whether Deployed was told of run runID's
// deployment d to env before (a restart tells it again). A promotion of
// the run that names an older deployment does not count: the run
// deployed again (its commit became the branch head again after a
// force-push back), and promotion carries on from this deployment.
func (e *engine) verifiedBefore(ctx context.Context, runID int64, env string, d int64) (bool, error) {
	done, err := e.st.FindPromotions(ctx, store.PromotionQuery{RunID: runID, Environment: env})
	if err != nil {
		return false, err
	}
	for _, p := range done {
		if p.Deployment == 0 || p.Deployment == d {
			return true, nil
		}
	}
	return false, nil
}

// settleDeployment ends the verification of p's deployment, if it has
// one and it is still pending, with status, result and reason.
func (e *engine) settleDeployment(ctx context.Context, p store.Promotion, status, result, reason string) error {
	if p.Deployment == 0 {
		return nil
	}
	d, err := e.st.GetDeployment(ctx, p.Deployment)
	if err != nil {
		return err
	}
	if d.Verification != store.VerificationPending {
		return nil
	}
	d.Status, d.Verification, d.Reason, d.Verified = status, result, reason, e.now()
	return e.st.UpdateDeployment(ctx, d)
}

// Promote implements Promoter.
func (e *engine) Promote(ctx context.Context, releaseID, env string, actor Identity) (store.Promotion, error) {
	if actor.Name == "" {
		return store.Promotion{}, invalid("promote: no actor; ferry records who asks for each promotion")
	}
	if err := e.checkEnv(env); err != nil {
		return store.Promotion{}, err
	}
	rel, err := e.knownRelease(ctx, releaseID)
	if err != nil {
		return store.Promotion{}, err
	}
	stage, ok := rel.stage(env)
	if !ok {
		return store.Promotion{}, invalid("release %s has no stage %s in its pipeline (its stages are %s); promote it to one of those",
			store.Short(releaseID), env, rel.stageNames())
	}
	if err := e.loosens(rel, env); err != nil {
		return store.Promotion{}, forbidden("release %s is refused in %s: %v", store.Short(releaseID), env, err)
	}
	g, err := e.gate(ctx, env)
	if err != nil {
		return store.Promotion{}, err
	}
	if g.frozen != "" {
		return store.Promotion{}, conflict("%s; promote again once it is unfrozen", g.frozen)
	}
	for _, from := range stage.From {
		ok, err := e.succeededIn(ctx, releaseID, from)
		if err != nil {
			return store.Promotion{}, err
		}
		if !ok {
			return store.Promotion{}, conflict("release %s has not succeeded in %s, which %s comes after; promote it to %s first", store.Short(releaseID), from, env, from)
		}
	}
	st := e.envState(env)
	st.create.Lock()
	defer st.create.Unlock()
	open, err := e.st.FindPromotions(ctx, store.PromotionQuery{Release: releaseID, Environment: env,
		Statuses: []string{StatusPending, StatusApproved, StatusDeploying, StatusVerifying}})
	if err != nil {
		return store.Promotion{}, err
	}
	if len(open) > 0 {
		return store.Promotion{}, conflict("promotion %d (%s) brings release %s to %s already", open[0].ID, open[0].Status, store.Short(releaseID), env)
	}
	if cur, err := e.st.GetEnvironment(ctx, env); err == nil && cur.Release == releaseID {
		return store.Promotion{}, conflict("%s runs release %s already", env, store.Short(releaseID))
	}
	p := store.Promotion{Release: releaseID, Environment: env, Requester: actor.Name, Pinned: true,
		Status: StatusApproved, Reason: "asked for by " + actor.Name}
	if stage.Approval != nil {
		p.Status, p.Reason = StatusPending, "waiting for "+approvalsWanted(stage.Approval)
	}
	return e.create(ctx, p)
}

// create records p, says so in the audit log, supersedes older pending
// promotions, and wakes Run.
func (e *engine) create(ctx context.Context, p store.Promotion) (store.Promotion, error) {
	p, err := e.st.CreatePromotion(e.created(ctx, p.Requester, fmt.Sprintf("release %s to %s: %s (%s)", p.Release, p.Environment, p.Status, p.Reason)), p)
	if err != nil {
		return store.Promotion{}, err
	}
	if n := e.approvalsNeeded(ctx, p); n > 0 && p.Status == StatusPending {
		e.tell(Event{Kind: EventWaiting, Environment: p.Environment, Release: p.Release, Promotion: p.ID, Actor: p.Requester, Reason: p.Reason, Approvals: n})
	}
	if err := e.supersede(ctx, p); err != nil {
		e.logf("promotion %d: superseding older ones: %v", p.ID, err)
	}
	e.signal()
	return p, nil
}

// supersede ends the pending promotions into p's environment of releases
// older than p's, except pinned ones: only the newest release waits.
func (e *engine) supersede(ctx context.Context, p store.Promotion) error {
	newer, err := e.st.GetRelease(ctx, p.Release)
	if err != nil {
		return err
	}
	return e.supersedeOlder(ctx, p.Environment, newer, p.ID, fmt.Sprintf("promotion %d of the newer release %s", p.ID, store.Short(p.Release)))
}

// supersedeOlder ends the pending promotions into env of releases older
// than newer, except pinned ones and promotion except, saying by what.
func (e *engine) supersedeOlder(ctx context.Context, env string, newer store.Release, except int64, by string) error {
	pending, err := e.st.FindPromotions(ctx, store.PromotionQuery{Environment: env, Statuses: []string{StatusPending}})
	if err != nil {
		return err
	}
	for _, q := range pending {
		if q.ID == except || q.Pinned || q.Release == newer.ID {
			continue
		}
		older, err := e.st.GetRelease(ctx, q.Release)
		if err != nil || older.Seq >= newer.Seq {
			continue
		}
		q.Status = StatusSuperseded
		q.Reason = "superseded by " + by
		if err := e.st.UpdatePromotion(ctx, q, StatusPending); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

// carryOn makes, once p succeeded, the promotions of its release into
// every stage that follows p's environment and whose other From stages it
// succeeded in too: an auto stage's goes at once (or waits pending while
// the stage is frozen or held), an approval stage's waits pending. A
// stage with neither takes releases only from Promote.
func (e *engine) carryOn(ctx context.Context, p store.Promotion, rel *release) error {
	for _, stage := range rel.set.Pipeline.Spec.Stages {
		if !slices.Contains(stage.From, p.Environment) || (!stage.Auto && stage.Approval == nil) {
			continue
		}
		ready := true
		for _, from := range stage.From {
			if from == p.Environment {
				continue
			}
			ok, err := e.succeededIn(ctx, p.Release, from)
			if err != nil {
				return err
			}
			ready = ready && ok
		}
		if !ready {
			continue
		}
		if !e.known(stage.Name) {
			e.logf("release %s succeeded in %s and would go to %s next, which is not a configured environment", store.Short(p.Release), p.Environment, stage.Name)
			continue
		}
		if e.isPreview(stage.Name) {
			// why: a preview runs a pull request's code, deployed by its
			// own run; no Pipeline may carry a release into one.
			e.logf("release %s succeeded in %s and would go to %s next, which is a preview environment; a release is never carried into a preview", store.Short(p.Release), p.Environment, stage.Name)
			continue
		}
		if err := e.carryInto(ctx, p, &stage); err != nil {
			return fmt.Errorf("promoting release %s to %s: %w", store.Short(p.Release), stage.Name, err)
		}
	}
	return nil
}

func (e *engine) carryInto(ctx context.Context, p store.Promotion, stage *v1alpha1.Stage) error {
	st := e.envState(stage.Name)
	st.create.Lock()
	defer st.create.Unlock()
	// Once per success (a restart may carry on again), and not while one
	// is on its way already.
	if made, err := e.st.FindPromotions(ctx, store.PromotionQuery{Parent: p.ID, Environment: stage.Name}); err != nil || len(made) > 0 {
		return err
	}
	open, err := e.st.FindPromotions(ctx, store.PromotionQuery{Release: p.Release, Environment: stage.Name,
		Statuses: []string{StatusPending, StatusApproved, StatusDeploying, StatusVerifying}})
	if err != nil || len(open) > 0 {
		return err
	}
	next := store.Promotion{Release: p.Release, Environment: stage.Name, Requester: Actor, Parent: p.ID}
	rel, err := e.release(ctx, p.Release)
	if err != nil {
		return err
	}
	if refusal := e.loosens(rel, stage.Name); refusal != nil {
		// why: recorded, not skipped, so that `ferry promotions` says why
		// the release never came; not through create, as a refused
		// release must not supersede older ones that wait.
		next.Status, next.Reason = StatusRefused, fmt.Sprintf("succeeded in %s; refused: %v", p.Environment, refusal)
		if _, err := e.st.CreatePromotion(e.created(ctx, Actor, fmt.Sprintf("release %s to %s: %s (%s)", next.Release, next.Environment, next.Status, next.Reason)), next); err != nil {
			return err
		}
		e.logf("release %s is refused in %s: %v", store.Short(p.Release), stage.Name, refusal)
		return nil
	}
	if stage.Approval != nil {
		next.Status, next.Reason = StatusPending, fmt.Sprintf("succeeded in %s; waiting for %s", p.Environment, approvalsWanted(stage.Approval))
	} else {
		g, err := e.gate(ctx, stage.Name)
		if err != nil {
			return err
		}
		next.Status, next.Reason = StatusApproved, fmt.Sprintf("succeeded in %s; %s is an auto stage", p.Environment, stage.Name)
		if why := g.blocks(next); why != "" {
			// why: pending, not approved, so that a newer release
			// supersedes it while it waits: after a long freeze only the
			// newest release goes in.
			next.Status, next.Reason = StatusPending, why
		}
	}
	_, err = e.create(ctx, next)
	return err
}

// reconcilePending approves p when it may go: an automatic promotion into
// an auto stage that waited for a freeze or a hold, once that ended; a
// promotion into an approval stage with enough valid approvals (counted
// again, as a crash may have come between an approval and its count).
func (e *engine) reconcilePending(ctx context.Context, p store.Promotion, g gate) (store.Promotion, error) {
	rel, err := e.release(ctx, p.Release)
	if err != nil {
		return p, err
	}
	stage, ok := rel.stage(p.Environment)
	if !ok {
		return p, nil
	}
	if err := e.loosens(rel, p.Environment); err != nil {
		return e.refuse(ctx, p, err)
	}
	if stage.Approval != nil {
		return e.approveIfEnough(ctx, p, rel, stage.Approval)
	}
	if why := g.blocks(p); why != "" {
		e.setReason(ctx, p, why)
		return p, nil
	}
	p.Status, p.Reason = StatusApproved, p.Environment+" is an auto stage and takes releases again"
	if err := e.st.UpdatePromotion(ctx, p, StatusPending); err != nil {
		return p, err
	}
	return p, nil
}

func promotionObject(id int64) string { return fmt.Sprintf("promotion/%d", id) }

// Admitter is implemented by the promoter New returns. The pipeline asks
// it before it deploys a new release to the first stage itself: that is an
// automatic promotion, which a freeze refuses and a hold (after a manual
// rollback) keeps out, so that the next commit does not silently undo the
// rollback, and which a floor refuses when the first stage is gated.
type Admitter interface {
	// Admit returns nil when run may deploy release into env, its first
	// stage, now. Else it returns a *Error saying why not: Forbidden when
	// the release's Pipeline would loosen env's floor (a promotion ended
	// refused records it), Conflict when env is frozen or held (a pending
	// promotion of the release records it, and goes once the freeze or
	// the hold ends, unless a newer release supersedes it). Idempotent per
	// run.
	Admit(ctx context.Context, runID int64, releaseID, env string) error
}

var _ Admitter = (*engine)(nil)

// Admit implements Admitter.
func (e *engine) Admit(ctx context.Context, runID int64, releaseID, env string) error {
	if !e.known(env) {
		return nil // the deploy step fails on it, naming the configured ones
	}
	rel, err := e.release(ctx, releaseID)
	if err != nil {
		return fmt.Errorf("run %d, release %s: %w", runID, releaseID, err)
	}
	st := e.envState(env)
	st.create.Lock()
	defer st.create.Unlock()
	// why: a restart runs the deploy step again; what the first call
	// recorded answers again.
	made, err := e.st.FindPromotions(ctx, store.PromotionQuery{RunID: runID, Environment: env})
	if err != nil {
		return err
	}
	for _, p := range made {
		switch p.Status {
		case StatusRefused:
			return forbidden("promotion %d: %s", p.ID, p.Reason)
		case StatusPending, StatusApproved, StatusDeploying, StatusVerifying:
			return conflict("promotion %d brings release %s to %s (%s: %s)", p.ID, store.Short(releaseID), env, p.Status, p.Reason)
		}
	}
	p := store.Promotion{Release: releaseID, Environment: env, Requester: Actor, RunID: runID}
	if err := e.loosens(rel, env); err != nil {
		p.Status, p.Reason = StatusRefused, fmt.Sprintf("run %d made it; refused: %v", runID, err)
		p, err := e.st.CreatePromotion(e.created(ctx, Actor, fmt.Sprintf("release %s to %s: %s (%s)", p.Release, p.Environment, p.Status, p.Reason)), p)
		if err != nil {
			return err
		}
		return forbidden("promotion %d: %s", p.ID, p.Reason)
	}
	g, err := e.gate(ctx, env)
	if err != nil {
		return err
	}
	why := g.blocks(p)
	if why == "" {
		// why: a release that waited while the stage was closed must not
		// go in after this newer one.
		if err := e.supersedeOlder(ctx, env, rel.rec, 0, fmt.Sprintf("run %d, which deploys the newer release %s", runID, store.Short(releaseID))); err != nil {
			e.logf("run %d: superseding the promotions waiting in %s: %v", runID, env, err)
		}
		return nil
	}
	// why: the newest release waits for the freeze or the hold to end,
	// and then goes in by itself; older waiting ones are superseded.
	p.Status, p.Reason = StatusPending, why
	p, err = e.create(ctx, p)
	if err != nil {
		return err
	}
	return conflict("%s; promotion %d waits for it with release %s", why, p.ID, store.Short(releaseID))
}

// loosens refuses rel into env when its Pipeline goes below env's floor.
func (e *engine) loosens(rel *release, env string) error {
	if rel.set.Pipeline == nil {
		return nil
	}
	return e.floor(env).Check(env, &rel.set.Pipeline.Spec, e.cfg.Groups)
}

// refuse ends p, pending or approved, refused because its release would
// loosen its environment's floor.
func (e *engine) refuse(ctx context.Context, p store.Promotion, why error) (store.Promotion, error) {
	from := p.Status
	p.Status, p.Reason = StatusRefused, "refused: "+why.Error()
	rctx := e.event(ctx, Actor, ActionPromotionRefuse, promotionObject(p.ID), fmt.Sprintf("release %s to %s: %s", p.Release, p.Environment, p.Reason))
	if err := e.st.UpdatePromotion(rctx, p, from); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return e.st.GetPromotion(ctx, p.ID)
		}
		return p, err
	}
	e.logf("promotion %d of release %s to %s: %s", p.ID, store.Short(p.Release), p.Environment, p.Reason)
	return p, nil
}
