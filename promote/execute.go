package promote

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ferrycd/ferry/store"
)

// execute takes p from where it is (deploying or verifying) to its end,
// one step at a time, each keyed by the promotion's status so that it can
// run again after a restart. When ctx ends (Run stops, or Rollback or
// Deployed takes the environment) it returns, leaving p as it is: Run
// takes it up again, or whoever took the environment settles it.
func (e *engine) execute(ctx context.Context, p store.Promotion) {
	for ctx.Err() == nil {
		var err error
		switch p.Status {
		case StatusDeploying:
			p, err = e.deploy(ctx, p)
		case StatusVerifying:
			p, err = e.verifyAndFinish(ctx, p)
		default:
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				// why: a store or registry hiccup; the promotion stays
				// where it is and Run tries it again shortly.
				e.logf("promotion %d of release %s to %s: %v", p.ID, store.Short(p.Release), p.Environment, err)
			}
			return
		}
	}
}

// deploy applies the release and records the deployment with the move
// to verifying, in one transaction. A release that does not apply fails
// the promotion; the target keeps the previous release serving.
func (e *engine) deploy(ctx context.Context, p store.Promotion) (store.Promotion, error) {
	rel, err := e.release(ctx, p.Release)
	if errors.Is(err, store.ErrNotFound) {
		return e.deployFailed(ctx, p, fmt.Errorf("the store holds no release %s", p.Release))
	}
	if err != nil {
		return p, err
	}
	if p.Parent != 0 {
		// why: a release carried on by itself must not take the stage
		// back to an older commit than it runs; a person may.
		reason, err := e.behind(ctx, p.Environment, rel.rec)
		if err != nil {
			return p, err
		}
		if reason != "" {
			return e.supersedeDeploying(ctx, p, reason)
		}
	}
	e.tell(Event{Kind: EventDeploying, Environment: p.Environment, Release: p.Release, Promotion: p.ID, Actor: actorOf(p)})
	if err := e.apply(ctx, p.Environment, rel); err != nil {
		if ctx.Err() != nil {
			return p, ctx.Err()
		}
		return e.deployFailed(ctx, p, err)
	}
	// why: the release is live; what follows is recorded even if ctx ends
	// now.
	ctx = context.WithoutCancel(ctx)
	p.Status, p.Reason = StatusVerifying, "deployed; verifying"
	dctx := e.event(ctx, actorOf(p), ActionDeploy, "env/"+p.Environment, fmt.Sprintf("release %s by promotion %d: succeeded", p.Release, p.ID))
	next, d, err := e.st.ChangePromotion(dctx, store.PromotionChange{Promotion: p, From: StatusDeploying,
		Record: &store.Deployment{Environment: p.Environment, Release: p.Release, Actor: actorOf(p), Promotion: p.ID,
			Status: store.DeploymentSucceeded, Verification: store.VerificationPending}})
	if err != nil {
		return p, err
	}
	e.tell(Event{Kind: EventDeployed, Environment: p.Environment, Release: p.Release, Promotion: p.ID, Actor: actorOf(p)})
	e.export(ctx, d)
	return next, nil
}

// behind says why rel must not be deployed to env automatically: env runs
// a newer commit of rel's source and branch (Git's ancestry says so), and
// rel's commit is not the branch head.
// "" when it may go.
func (e *engine) behind(ctx context.Context, env string, rel store.Release) (string, error) {
	if e.cfg.IsAncestor == nil || rel.Commit == "" {
		return "", nil
	}
	live, err := store.LiveIn(ctx, e.st, env)
	if err != nil {
		return "", fmt.Errorf("reading what %s runs: %w", env, err)
	}
	if live.Commit == "" || live.Source != rel.Source || live.Commit == rel.Commit {
		return "", nil
	}
	branch := ""
	if rel.RunID != 0 {
		if run, err := e.st.GetRun(ctx, rel.RunID); err == nil {
			branch = run.Branch
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	if live.Branch != "" && branch != "" && live.Branch != branch {
		return "", nil
	}
	if branch != "" {
		// why: the branch's head goes on even when older than what env
		// runs: the branch was force-pushed back to it.
		head, err := store.HeadOf(ctx, e.st, rel.Source, branch)
		if err != nil {
			return "", fmt.Errorf("reading the head of %s/%s: %w", rel.Source, branch, err)
		}
		if head == rel.Commit {
			return "", nil
		}
	}
	older, err := e.cfg.IsAncestor(ctx, rel.Source, rel.Commit, live.Commit)
	if err != nil {
		return "", fmt.Errorf("comparing commit %s with %s, which %s runs: %w", store.Short(rel.Commit), store.Short(live.Commit), env, err)
	}
	if !older {
		return "", nil
	}
	on := ""
	if branch != "" {
		on = " on " + branch
	}
	return fmt.Sprintf("%s already runs %s (newer%s); release %s's commit %s is older", env, store.Short(live.Commit), on, store.Short(rel.ID), store.Short(rel.Commit)), nil
}

// supersedeDeploying ends p, not deployed yet, superseded for reason.
func (e *engine) supersedeDeploying(ctx context.Context, p store.Promotion, reason string) (store.Promotion, error) {
	ctx = context.WithoutCancel(ctx)
	p.Status, p.Reason = StatusSuperseded, reason
	// why: the entry goes in the change's transaction, or neither is made.
	dctx := e.event(ctx, actorOf(p), ActionDeploy, "env/"+p.Environment, fmt.Sprintf("release %s by promotion %d: not deployed: %s", p.Release, p.ID, reason))
	next, _, err := e.st.ChangePromotion(dctx, store.PromotionChange{Promotion: p, From: StatusDeploying})
	if err != nil {
		return p, err
	}
	e.logf("promotion %d of release %s to %s: %s", p.ID, store.Short(p.Release), p.Environment, reason)
	return next, nil
}

func (e *engine) deployFailed(ctx context.Context, p store.Promotion, cause error) (store.Promotion, error) {
	ctx = context.WithoutCancel(ctx)
	reason := fmt.Sprintf("deploying release %s to %s failed: %v", store.Short(p.Release), p.Environment, cause)
	p.Status, p.Reason = StatusFailed, reason
	dctx := e.event(ctx, actorOf(p), ActionDeploy, "env/"+p.Environment, fmt.Sprintf("release %s by promotion %d: failed: %v", p.Release, p.ID, cause))
	next, _, err := e.st.ChangePromotion(dctx, store.PromotionChange{Promotion: p, From: StatusDeploying,
		Record: &store.Deployment{Environment: p.Environment, Release: p.Release, Actor: actorOf(p), Promotion: p.ID,
			Status: store.DeploymentFailed, Reason: cause.Error()}})
	if err != nil {
		return p, err
	}
	e.tell(Event{Kind: EventDeployFailed, Environment: p.Environment, Release: p.Release, Promotion: p.ID, Actor: actorOf(p), Reason: firstLine(cause.Error())})
	return next, nil
}

// verifyAndFinish runs the stage's checks on the live release. Passed:
// the release moves on to the next stages and the promotion succeeds.
// Failed: the environment goes back to the release live before.
func (e *engine) verifyAndFinish(ctx context.Context, p store.Promotion) (store.Promotion, error) {
	rel, err := e.release(ctx, p.Release)
	if err != nil {
		return p, err
	}
	if p.Deployment == 0 {
		return e.end(ctx, p, StatusFailed, "it is verifying but records no deployment; promote the release again", nil)
	}
	d, err := e.st.GetDeployment(ctx, p.Deployment)
	if err != nil {
		return p, err
	}
	if d.Verification != store.VerificationFailed {
		v, err := e.verifyLive(ctx, p.Environment, rel)
		if err != nil {
			return p, err
		}
		d.Verification, d.Verified = v.result, e.now()
		if v.result != store.VerificationFailed {
			wctx := context.WithoutCancel(ctx)
			if err := e.carryOn(wctx, p, rel); err != nil {
				return p, err
			}
			p.Status, p.Reason = StatusSucceeded, v.detail
			next, _, err := e.st.ChangePromotion(wctx, store.PromotionChange{Promotion: p, From: StatusVerifying, Update: &d})
			if err != nil {
				return p, err
			}
			// why: the export at deploy time may have been cut off by a
			// crash; exporting is idempotent, so the verified deployment
			// is exported once more, which changes nothing if it landed.
			e.export(wctx, d)
			e.tell(Event{Kind: EventVerified, Environment: p.Environment, Release: p.Release, Promotion: p.ID, Reason: firstLine(v.detail)})
			e.signal()
			return next, nil
		}
		// why: recorded before rolling back, so that after a crash in the
		// middle of it the rollback goes on instead of verifying again.
		d.Reason = v.detail
		if err := e.st.UpdateDeployment(context.WithoutCancel(ctx), d); err != nil {
			return p, err
		}
		e.tell(Event{Kind: EventVerifyFailed, Environment: p.Environment, Release: p.Release, Promotion: p.ID, Reason: firstLine(v.detail)})
	}
	return e.rollBack(ctx, p, d)
}

// verifyLive applies the release again (a no-op when it runs, and what a
// restart needs: the functions died with the process), then runs the
// stage's checks through the soak.
func (e *engine) verifyLive(ctx context.Context, env string, rel *release) (verdict, error) {
	if err := e.apply(ctx, env, rel); err != nil {
		if ctx.Err() != nil {
			return verdict{}, ctx.Err()
		}
		return verdict{result: store.VerificationFailed, detail: fmt.Sprintf("the release does not run: %v", err)}, nil
	}
	stage, _ := rel.stage(env)
	return e.verify(ctx, env, e.floor(env).withFloor(stage))
}

// rollBack puts env back on the release live before d, after d failed
// its verification.
func (e *engine) rollBack(ctx context.Context, p store.Promotion, d store.Deployment) (store.Promotion, error) {
	why := "verification failed: " + d.Reason
	if d.Previous == "" {
		d.Status = store.DeploymentSucceeded
		return e.end(ctx, p, StatusFailed, why+fmt.Sprintf("; %s ran no release before, so it stays live", p.Environment), &d)
	}
	prev, err := e.release(ctx, d.Previous)
	if err == nil {
		err = e.apply(ctx, p.Environment, prev)
	}
	if err != nil {
		if ctx.Err() != nil {
			return p, ctx.Err()
		}
		ectx := e.event(ctx, Actor, ActionRollback, "env/"+p.Environment, fmt.Sprintf("to release %s after promotion %d failed verification: failed: %v", d.Previous, p.ID, err))
		return e.end(ectx, p, StatusFailed, why+fmt.Sprintf("; rolling back to release %s failed too: %v", store.Short(d.Previous), err), nil)
	}
	ctx = context.WithoutCancel(ctx)
	d.Status = store.DeploymentRolledBack
	p.Status, p.Reason = StatusRolledBack, why+fmt.Sprintf("; rolled back to release %s", store.Short(d.Previous))
	rctx := e.event(ctx, Actor, ActionRollback, "env/"+p.Environment, fmt.Sprintf("to release %s: promotion %d of release %s failed verification: %s", d.Previous, p.ID, d.Release, d.Reason))
	next, rb, err := e.st.ChangePromotion(rctx, store.PromotionChange{Promotion: p, From: StatusVerifying, Update: &d,
		Record: &store.Deployment{Environment: p.Environment, Release: d.Previous, Previous: d.Release, Actor: Actor, Promotion: p.ID,
			Status: store.DeploymentSucceeded, Kind: store.DeploymentAutoRollback, Reason: why}})
	if err != nil {
		return p, err
	}
	e.tell(Event{Kind: EventRolledBack, Environment: p.Environment, Release: d.Previous, Promotion: p.ID, Actor: Actor,
		Reason: firstLine(fmt.Sprintf("release %s %s", store.Short(d.Release), why))})
	e.export(ctx, rb)
	return next, nil
}

// end finishes a verifying promotion with status and reason, updating its
// deployment too when d is given.
func (e *engine) end(ctx context.Context, p store.Promotion, status, reason string, d *store.Deployment) (store.Promotion, error) {
	p.Status, p.Reason = status, reason
	next, _, err := e.st.ChangePromotion(context.WithoutCancel(ctx), store.PromotionChange{Promotion: p, From: StatusVerifying, Update: d})
	if err != nil {
		return p, err
	}
	if status == StatusFailed {
		e.tell(Event{Kind: EventPromotionError, Environment: p.Environment, Release: p.Release, Promotion: p.ID, Reason: firstLine(reason)})
		e.logf("promotion %d of release %s to %s failed: %s", p.ID, store.Short(p.Release), p.Environment, firstLine(reason))
	}
	return next, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
