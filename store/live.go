package store

import (
	"context"
	"errors"
)

// Live is what an environment runs, with where its release came from.
type Live struct {
	Release string // "" before the first deployment
	Source  string // "" for a release the store does not hold
	Commit  string
	// Branch is the branch of the run that made the release; "" when no
	// run of the store made it (a release a rollback pulled or pinned
	// names no run).
	Branch string
}

// LiveIn reads what env runs. An environment never deployed to, or
// one whose release the store does not hold, gives what is known and no
// error.
func LiveIn(ctx context.Context, st Store, env string) (Live, error) {
	e, err := st.GetEnvironment(ctx, env)
	if errors.Is(err, ErrNotFound) {
		return Live{}, nil
	}
	if err != nil || e.Release == "" {
		return Live{}, err
	}
	live := Live{Release: e.Release}
	rel, err := st.GetRelease(ctx, e.Release)
	if errors.Is(err, ErrNotFound) {
		return live, nil
	}
	if err != nil {
		return Live{}, err
	}
	live.Source, live.Commit = rel.Source, rel.Commit
	if rel.RunID == 0 {
		return live, nil
	}
	run, err := st.GetRun(ctx, rel.RunID)
	if errors.Is(err, ErrNotFound) {
		return live, nil
	}
	if err != nil {
		return Live{}, err
	}
	live.Branch = run.Branch
	return live, nil
}
