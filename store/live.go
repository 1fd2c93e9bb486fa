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

// LiveReader is what LiveIn reads.
type LiveReader interface {
	GetEnvironment(ctx context.Context, name string) (Environment, error)
	GetRelease(ctx context.Context, id string) (Release, error)
	GetRun(ctx context.Context, id int64) (Run, error)
}

// HeadReader is what HeadOf reads.
type HeadReader interface {
	GetSource(ctx context.Context, name string) (Source, error)
	GetSourceStatus(ctx context.Context, name string) (SourceStatus, error)
}

// LiveIn reads what env runs. An environment never deployed to, or
// one whose release the store does not hold, gives what is known and no
// error.
func LiveIn(ctx context.Context, st LiveReader, env string) (Live, error) {
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

// HeadOf returns the head of source's branch as the watcher last saw it,
// or "" when the store knows none (or the source follows another branch
// now). The head is where environments converge, even when it is older
// than what they run: a branch force-pushed back.
func HeadOf(ctx context.Context, st HeadReader, source, branch string) (string, error) {
	stt, err := st.GetSourceStatus(ctx, source)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	src, err := st.GetSource(ctx, source)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if src.Branch != branch {
		return "", nil
	}
	return stt.LastCommit, nil
}
