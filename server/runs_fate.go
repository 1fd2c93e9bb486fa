package server

import (
	"context"

	"github.com/ferrycd/ferry/store"
)

// FateView is where a run's release went in one environment: the newest
// promotion of the release there (pending, succeeded, rolled-back, …)
// with its reason, or the pipeline's failed deploy to the first stage, or
// a pull request's deploy to its preview.
type FateView struct {
	Environment string `json:"environment"`
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
	Promotion   int64  `json:"promotion,omitempty"`
}

// fateStatusDeployFailed is a fate with no promotion: the run's deploy to
// the first stage failed, so nothing was there to verify.
const fateStatusDeployFailed = "deploy-failed"

// releaseFate reads the promotion history of run's release: one entry per
// environment it reached or waits for, in the order it got there.
func releaseFate(ctx context.Context, st store.Store, run store.Run) ([]FateView, error) {
	if run.Release == "" {
		return nil, nil
	}
	var out []FateView
	at := map[string]int{}
	ds, err := st.FindDeployments(ctx, store.DeploymentQuery{RunID: run.ID, Release: run.Release})
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		// why: a pull request's run deploys to its preview with no
		// promotion; without this its runs showed no fate at all.
		if _, _, preview := store.ParsePreviewName(d.Environment); preview && d.Promotion == 0 && d.Status == store.DeploymentSucceeded {
			if _, seen := at[d.Environment]; !seen {
				at[d.Environment] = len(out)
				out = append(out, FateView{Environment: d.Environment, Status: store.DeploymentSucceeded})
			}
			continue
		}
		if d.Status == store.DeploymentFailed && d.Promotion == 0 {
			if _, seen := at[d.Environment]; !seen {
				at[d.Environment] = len(out)
				out = append(out, FateView{Environment: d.Environment, Status: fateStatusDeployFailed, Reason: d.Reason})
			}
		}
	}
	ps, err := st.FindPromotions(ctx, store.PromotionQuery{Release: run.Release})
	if err != nil {
		return nil, err
	}
	for _, p := range ps { // oldest first: a newer promotion says where it is now
		f := FateView{Environment: p.Environment, Status: p.Status, Reason: p.Reason, Promotion: p.ID}
		if i, seen := at[p.Environment]; seen {
			out[i] = f
			continue
		}
		at[p.Environment] = len(out)
		out = append(out, f)
	}
	return out, nil
}
