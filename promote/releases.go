package promote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/store"
)

// release is a stored release with its manifest loaded: where its
// Pipeline, the policy of every stage, comes from.
type release struct {
	rec store.Release
	set *manifests.Set
}

// stage returns the release's stage for env.
func (r *release) stage(env string) (*v1alpha1.Stage, bool) {
	if r.set.Pipeline == nil {
		return nil, false
	}
	for i := range r.set.Pipeline.Spec.Stages {
		if st := &r.set.Pipeline.Spec.Stages[i]; st.Name == env {
			return st, true
		}
	}
	return nil, false
}

// stageNames lists the release's stages, for messages.
func (r *release) stageNames() string {
	var names []string
	if r.set.Pipeline != nil {
		for _, st := range r.set.Pipeline.Spec.Stages {
			names = append(names, st.Name)
		}
	}
	return strings.Join(names, ", ")
}

// floorPipeline is the pipeline of a release whose repository declares
// none (or only ferry's defaults): the default stages, each gated as its
// environment's floor says, so that the operator's floor is the policy
// rather than a reason to refuse the release. A floor's checks and soak
// are added to every release's as it is verified.
func (e *engine) floorPipeline() *v1alpha1.Pipeline {
	p := manifests.FilledDefaultPipeline()
	for i := range p.Spec.Stages {
		st := &p.Spec.Stages[i]
		f, ok := e.floorOf(st.Name)
		if !ok {
			continue
		}
		if f.Approval != nil {
			st.Auto, st.Approval = false, f.Approval.DeepCopy()
		}
		if f.NoAuto {
			st.Auto = false
		}
		if len(f.From) > 0 {
			st.From = slices.Clone(f.From)
		}
	}
	return p
}

// release loads a release of the store; the error wraps store.ErrNotFound
// when the store has none of that id.
func (e *engine) release(ctx context.Context, id string) (*release, error) {
	e.mu.Lock()
	r := e.releases[id]
	e.mu.Unlock()
	if r != nil {
		return r, nil
	}
	rec, err := e.st.GetRelease(ctx, id)
	if err != nil {
		return nil, err
	}
	set, err := manifests.LoadRelease(ctx, rec.Manifest)
	if err != nil {
		return nil, fmt.Errorf("release %s: its manifest in the store does not load: %w", id, err)
	}
	if manifests.IsDefaultPipeline(set.Pipeline) {
		set.Pipeline = e.floorPipeline()
	}
	r = &release{rec: rec, set: set}
	e.mu.Lock()
	if len(e.releases) >= cacheSize {
		clear(e.releases)
	}
	e.releases[id] = r
	e.mu.Unlock()
	return r, nil
}

// knownRelease is release for a caller's id: a release the store does not
// hold is the caller's mistake.
func (e *engine) knownRelease(ctx context.Context, id string) (*release, error) {
	r, err := e.release(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid("release %s is not known to ferry; give the id of a release ferry made (ferry releases lists them)", id)
	}
	return r, err
}

// artifact pulls the release from the registry, once, and checks that the
// registry gave the release asked for.
func (e *engine) artifact(ctx context.Context, r *release) (*build.Release, error) {
	e.mu.Lock()
	a := e.artifacts[r.rec.ID]
	e.mu.Unlock()
	if a != nil {
		return a, nil
	}
	a, err := e.cfg.Pull(ctx, r.rec.Ref)
	if err != nil {
		return nil, fmt.Errorf("pulling release %s from %s: %w", r.rec.ID, r.rec.Ref, err)
	}
	if a.Digest.String() != r.rec.ID {
		return nil, fmt.Errorf("release %s: the registry gave %s for %s; the registry is not to be trusted", r.rec.ID, a.Digest, r.rec.Ref)
	}
	e.keepArtifact(a)
	return a, nil
}

func (e *engine) keepArtifact(a *build.Release) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.artifacts) >= cacheSize {
		clear(e.artifacts)
	}
	e.artifacts[a.Digest.String()] = a
}

// apply makes env run r.
func (e *engine) apply(ctx context.Context, env string, r *release) error {
	a, err := e.artifact(ctx, r)
	if err != nil {
		return err
	}
	t, err := e.cfg.Target(env)
	if err != nil {
		return fmt.Errorf("environment %s: %w", env, err)
	}
	return t.Apply(ctx, a)
}

// commitAuthor returns the author of the release's commit, once per
// commit; nothing when the Config has no CommitAuthor.
func (e *engine) commitAuthor(ctx context.Context, rec store.Release) (author, error) {
	if e.cfg.CommitAuthor == nil || rec.Commit == "" {
		return author{}, nil
	}
	key := rec.Source + "\x00" + rec.Commit
	e.mu.Lock()
	a, ok := e.authors[key]
	e.mu.Unlock()
	if ok {
		return a, nil
	}
	name, email, err := e.cfg.CommitAuthor(ctx, rec.Source, rec.Commit)
	if err != nil {
		return author{}, fmt.Errorf("reading the author of commit %s of %s: %w", store.Short(rec.Commit), rec.Source, err)
	}
	a = author{name: name, email: email}
	e.mu.Lock()
	if len(e.authors) >= cacheSize {
		clear(e.authors)
	}
	e.authors[key] = a
	e.mu.Unlock()
	return a, nil
}

// succeededIn reports whether the release succeeded in env: a promotion
// of it there succeeded (the first stage's included: Deployed makes one).
func (e *engine) succeededIn(ctx context.Context, id, env string) (bool, error) {
	ps, err := e.st.FindPromotions(ctx, store.PromotionQuery{Release: id, Environment: env, Statuses: []string{StatusSucceeded}})
	if err != nil {
		return false, err
	}
	return len(ps) > 0, nil
}
