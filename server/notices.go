package server

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
)

// noticeTimeout bounds the store reads that fill one notice: the engine
// waits for them, as it tells its events in line.
const noticeTimeout = 5 * time.Second

// noticeStore is what the notices read of the store; store.SQLite has it.
type noticeStore interface {
	GetSource(ctx context.Context, name string) (store.Source, error)
	GetRun(ctx context.Context, id int64) (store.Run, error)
	GetRelease(ctx context.Context, id string) (store.Release, error)
}

// notices turns the pipeline's and the promoter's events into the
// notifications' events and publishes them. Publishing only queues them
// in the store: a receiver that is down never slows the engine.
type notices struct {
	store noticeStore
	// publish queues an event (nil: there are no receivers).
	publish func(context.Context, notify.Event)
	// publicURL is ferry's API as people reach it; gatewayURL where the
	// environments' functions answer.
	publicURL, gatewayURL string
}

// run is pipeline.Config.Events.
func (o *notices) run(ev pipeline.Event) {
	if o.publish == nil {
		return // no receivers: not even the store reads
	}
	n := notify.Event{Step: ev.Step, StepStatus: string(ev.StepStatus)}
	switch ev.Kind {
	case pipeline.EventRunStarted:
		n.Kind = notify.RunStarted
	case pipeline.EventStepStarted:
		n.Kind = notify.StepStarted
	case pipeline.EventStepEnded:
		n.Kind, n.Reason = notify.StepEnded, ev.Error
	case pipeline.EventRunFinished:
		switch ev.Run.Status {
		case store.StatusSucceeded:
			n.Kind = notify.RunSucceeded
		case store.StatusFailed:
			n.Kind, n.Reason = notify.RunFailed, ev.Error
			if n.Reason == "" {
				n.Reason = ev.Run.Reason
			}
		default:
			return // superseded: a newer run tells the news
		}
	case pipeline.EventDeploying:
		n.Kind, n.Environment, n.Release = notify.Deploying, ev.Environment, ev.Release
	case pipeline.EventDeployed:
		n.Kind, n.Environment, n.Release = notify.Deployed, ev.Environment, ev.Release
	case pipeline.EventDeployFailed:
		n.Kind, n.Environment, n.Release, n.Reason = notify.DeployFailed, ev.Environment, ev.Release, ev.Error
	default:
		return // a resumed run, a release made: no one acts on them
	}
	ctx, cancel := context.WithTimeout(context.Background(), noticeTimeout)
	defer cancel()
	o.fillRun(ctx, &n, ev.Run)
	o.fillEnvironment(ctx, &n)
	o.publish(ctx, n)
}

// promoteKinds are the promoter's events that are notified.
var promoteKinds = map[promote.EventKind]notify.Kind{
	promote.EventDeploying:    notify.Deploying,
	promote.EventDeployed:     notify.Deployed,
	promote.EventDeployFailed: notify.DeployFailed,
	promote.EventVerifyFailed: notify.VerificationFailed,
	promote.EventRolledBack:   notify.RolledBack,
	promote.EventWaiting:      notify.WaitingForApproval,
	promote.EventApproved:     notify.Approved,
	promote.EventRejected:     notify.Rejected,
}

// promotion is promote.Events.
func (o *notices) promotion(ev promote.Event) {
	kind, ok := promoteKinds[ev.Kind]
	if !ok || o.publish == nil {
		return
	}
	n := notify.Event{Kind: kind, Environment: ev.Environment, Release: ev.Release, Actor: ev.Actor, Reason: ev.Reason}
	ctx, cancel := context.WithTimeout(context.Background(), noticeTimeout)
	defer cancel()
	o.fillEnvironment(ctx, &n)
	if rel, err := o.store.GetRelease(ctx, ev.Release); err == nil {
		run := store.Run{ID: rel.RunID, Source: rel.Source, Commit: rel.Commit}
		if rel.RunID != 0 {
			if r, err := o.store.GetRun(ctx, rel.RunID); err == nil {
				run.Branch = r.Branch
			}
		}
		o.fillRun(ctx, &n, run)
	}
	o.publish(ctx, n)
}

// preview publishes a preview's change (preview.ready and the like);
// url, when set, is where it answers.
func (o *notices) preview(n notify.Event, run store.Run, url string) {
	if o.publish == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), noticeTimeout)
	defer cancel()
	o.fillRun(ctx, &n, run)
	fns := n.Functions
	o.fillEnvironment(ctx, &n)
	if len(fns) > 0 {
		n.Functions = fns // the manager's, read from the release it went live with
	}
	if url != "" {
		n.URL = url
	}
	o.publish(ctx, n)
}

// fillRun fills what n says of the run and its source.
func (o *notices) fillRun(ctx context.Context, n *notify.Event, run store.Run) {
	n.Source, n.Branch, n.Commit, n.Run = run.Source, run.Branch, run.Commit, run.ID
	if run.PullRequest > 0 {
		n.PullRequest = run.PullRequest
	}
	if run.ID != 0 {
		n.RunURL = fmt.Sprintf("%s/api/v1/runs/%d", o.publicURL, run.ID)
	}
	if run.Source == "" {
		return
	}
	if src, err := o.store.GetSource(ctx, run.Source); err == nil {
		n.Repository = withoutUserinfo(src.URL)
		if n.Branch == "" {
			n.Branch = src.Branch
		}
	}
}

// fillEnvironment fills n's URL, its preview's number, and the digests
// of its release's functions.
func (o *notices) fillEnvironment(ctx context.Context, n *notify.Event) {
	if n.Environment != "" {
		n.URL = o.gatewayURL + "/" + n.Environment + "/"
		if _, num, ok := store.ParsePreviewName(n.Environment); ok {
			n.Preview, n.PullRequest = true, num
		}
	}
	if n.Release == "" {
		return
	}
	rel, err := o.store.GetRelease(ctx, n.Release)
	if err != nil {
		return
	}
	set, err := manifests.LoadRelease(ctx, rel.Manifest)
	if err != nil {
		return
	}
	n.Functions = map[string]string{}
	for _, f := range set.Functions {
		// why: the image is HOST/REPO@sha256:…; the digest alone is what
		// a receiver compares, and the registry's address may be private.
		img := f.Spec.Image
		if _, d, ok := strings.Cut(img, "@"); ok {
			img = d
		}
		n.Functions[f.Name] = img
	}
}

// withoutUserinfo is u without a user and password, which a URL may carry
// and a notice must not.
func withoutUserinfo(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.User == nil {
		return u
	}
	pu.User = nil
	return pu.String()
}
