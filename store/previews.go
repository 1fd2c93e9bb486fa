package store

import (
	"context"
	"fmt"
	"time"
)

// The branch a pull request's run is recorded under: pull/N for GitHub's
// refs/pull/N/head, merge-requests/N for GitLab's
// refs/merge-requests/N/head.
const (
	PullPrefixGitHub = "pull"
	PullPrefixGitLab = "merge-requests"
)

// PullBranch is the branch of pull request number's runs, prefix
// PullPrefixGitHub or PullPrefixGitLab: a name no Git branch of the
// source's own can clash with in the runs' (source, branch, commit).
func PullBranch(prefix string, number int) string {
	return fmt.Sprintf("%s/%d", prefix, number)
}

// PreviewState is where a preview is.
type PreviewState string

// The states of a preview.
const (
	// PreviewBuilding: a run for its head is queued or running.
	PreviewBuilding PreviewState = "building"
	// PreviewLive: its environment runs the head's release.
	PreviewLive PreviewState = "live"
	// PreviewFailed: the run for its head failed.
	PreviewFailed PreviewState = "failed"
	// PreviewTornDown: its environment is gone (closed, idle past its
	// ttl, evicted for the cap); the record stays as history.
	PreviewTornDown PreviewState = "torn down"
)

// Preview is the environment ferry keeps for one pull request of a
// source: named PreviewName(Source, Number).
type Preview struct {
	Source      string
	Number      int
	Environment string
	// Head is the request's head commit ferry last built (or builds), as
	// fetched from Git.
	Head  string
	State PreviewState
	// Reason says why the head's run failed (PreviewFailed).
	Reason string
	// Fork: the head is in another repository, or ferry cannot tell (a
	// request polled without a webhook).
	Fork bool
	// Approved is who added the preview label to a fork's request for
	// its current head; cleared by each new head, so every push from a
	// fork is approved again.
	Approved string
	Author   string
	Title    string
	WebURL   string
	// Release is the release the environment runs, once live.
	Release string
	// TTL is the Pipeline's previews.ttl when the preview opened: idle
	// that long, it is torn down.
	TTL     time.Duration
	Created time.Time
	// Activity is the last push or deploy: what idle is counted from.
	Activity time.Time
	// TornDown and TornReason say when and why it was torn down.
	TornDown   time.Time
	TornReason string
}

// Previews keeps the preview of each pull request.
type Previews interface {
	// PutPreview records p, replacing the record of its (Source, Number).
	PutPreview(ctx context.Context, p Preview) error
	// GetPreview returns the preview of source's request number;
	// ErrNotFound when there is none.
	GetPreview(ctx context.Context, source string, number int) (Preview, error)
	// ListPreviews lists every preview, torn down ones too, by source and
	// number.
	ListPreviews(ctx context.Context) ([]Preview, error)
}
