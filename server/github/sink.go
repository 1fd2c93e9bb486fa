package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v57/github"

	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
)

// SinkName is the sink's name in the outbox.
const SinkName = "github"

// maxDescription is GitHub's limit on a status's description.
const maxDescription = 140

// maxReason bounds the comment's line saying why.
const maxReason = 500

// Memos keep what the sink learned (a comment's id, a deployment's id):
// store.Outbox's PutMemo and GetMemo.
type Memos interface {
	PutMemo(ctx context.Context, key, value string) error
	GetMemo(ctx context.Context, key string) (string, error)
}

// SinkConfig wires the sink.
type SinkConfig struct {
	Client *Client
	Memos  Memos
	// Repos maps sources to repositories (Client.Repos).
	Repos Repos
	// Deployments are the environments whose deployments become GitHub
	// deployments; previews always do.
	Deployments []string
	// Production are the environments GitHub marks
	// production_environment (default: prod and production).
	Production []string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sink is the notify.Sink that tells GitHub.
type Sink struct {
	cfg SinkConfig
}

var _ notify.Sink = (*Sink)(nil)

// NewSink makes the GitHub sink.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if cfg.Client == nil || cfg.Memos == nil {
		return nil, errors.New("github sink: a client and memos are required")
	}
	if cfg.Production == nil {
		cfg.Production = []string{"prod", "production"}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sink{cfg: cfg}, nil
}

// Name implements notify.Sink.
func (s *Sink) Name() string { return SinkName }

// notice is one planned call, as the outbox keeps it: everything Deliver
// needs, since it gets nothing else.
type notice struct {
	Op    string `json:"op"` // status, comment, deployment
	Owner string `json:"owner"`
	Repo  string `json:"repo"`

	// status and deployment
	SHA         string `json:"sha,omitempty"`
	State       string `json:"state,omitempty"`
	Context     string `json:"context,omitempty"`
	Description string `json:"description,omitempty"`
	TargetURL   string `json:"targetURL,omitempty"`

	// comment
	Number int    `json:"number,omitempty"`
	Marker string `json:"marker,omitempty"`
	Text   string `json:"text,omitempty"`

	// deployment
	Environment string `json:"environment,omitempty"`
	Transient   bool   `json:"transient,omitempty"`
	Production  bool   `json:"production,omitempty"`
	EnvURL      string `json:"envURL,omitempty"`
}

// Plan implements notify.Sink. It only encodes: the calls wait in the
// outbox for Deliver.
func (s *Sink) Plan(ev notify.Event) ([]notify.Delivery, error) {
	repo, ok := s.cfg.Repos.For(ev.Source, ev.Repository)
	if !ok {
		return nil, nil
	}
	var ns []notice
	switch ev.Kind {
	case notify.StepStarted, notify.StepEnded:
		if n, ok := stepStatus(ev); ok {
			ns = append(ns, n)
		}
	case notify.PreviewBuilding, notify.PreviewReady, notify.PreviewFailed, notify.PreviewTornDown, notify.PreviewWaiting:
		if ev.PullRequest <= 0 {
			return nil, nil
		}
		ns = append(ns, previewComment(ev))
		if n, ok := s.previewDeployment(ev); ok {
			ns = append(ns, n)
		}
	case notify.Deploying, notify.Deployed, notify.DeployFailed, notify.VerificationFailed:
		if n, ok := s.envDeployment(ev); ok {
			ns = append(ns, n)
		}
	}
	var out []notify.Delivery
	for _, n := range ns {
		n.Owner, n.Repo = repo.Owner, repo.Name
		b, err := json.Marshal(n)
		if err != nil {
			return nil, err
		}
		out = append(out, notify.Delivery{Key: n.key(), Body: b})
	}
	return out, nil
}

// key makes the newest notice about one thing replace an older one not
// yet sent: a step's status, a pull request's comment, a deployment's
// state.
func (n notice) key() string {
	r := n.Owner + "/" + n.Repo
	switch n.Op {
	case "status":
		return "status/" + r + "/" + n.SHA + "/" + n.Context
	case "comment":
		return fmt.Sprintf("comment/%s/%d", r, n.Number)
	default:
		return "deployment/" + r + "/" + n.Environment + "/" + n.SHA
	}
}

// stepStatus is a commit status for a pipeline step: pending when it
// starts, then success or failure; a skipped step is a success that
// says why.
func stepStatus(ev notify.Event) (notice, bool) {
	if ev.Commit == "" || ev.Step == "" {
		return notice{}, false
	}
	n := notice{Op: "status", SHA: ev.Commit, Context: "ferry/" + ev.Step, TargetURL: ev.RunURL}
	switch {
	case ev.Kind == notify.StepStarted:
		n.State, n.Description = "pending", ev.Step+" running"
	case ev.StepStatus == "succeeded":
		n.State, n.Description = "success", ev.Step+" succeeded"
	case ev.StepStatus == "skipped":
		n.State, n.Description = "success", "skipped: "+ev.Reason
	default:
		n.State, n.Description = "failure", ev.Step+" failed"
		if ev.Reason != "" {
			n.Description += ": " + firstLine(ev.Reason)
		}
	}
	n.Description = clip(n.Description, maxDescription)
	return n, true
}

// previewStates are a preview's states as the comment and the
// deployment show them.
var previewStates = map[notify.Kind]struct{ word, deployment string }{
	notify.PreviewBuilding: {"building", "in_progress"},
	notify.PreviewReady:    {"live", "success"},
	notify.PreviewFailed:   {"failed", "failure"},
	notify.PreviewTornDown: {"torn down", "inactive"},
	// No deployment: nothing of the waiting head is deployed.
	notify.PreviewWaiting: {"waiting for the label", ""},
}

// marker is the hidden line that finds a preview's comment again.
func marker(source string, pr int) string {
	return fmt.Sprintf("<!-- ferry-preview source=%s pr=%d -->", source, pr)
}

func previewComment(ev notify.Event) notice {
	m := marker(ev.Source, ev.PullRequest)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n### ferry preview `%s`: %s\n\n", m, store.PreviewName(ev.Source, ev.PullRequest), previewStates[ev.Kind].word)
	shows := ev.Kind != notify.PreviewTornDown && ev.Kind != notify.PreviewWaiting
	if ev.URL != "" && shows {
		fmt.Fprintf(&b, "**URL:** %s\n\n", ev.URL)
	}
	if ev.Commit != "" {
		fmt.Fprintf(&b, "**Commit:** %s\n\n", ev.Commit)
	}
	if len(ev.Functions) > 0 && shows {
		b.WriteString("| function | image digest |\n|---|---|\n")
		for _, f := range slices.Sorted(maps.Keys(ev.Functions)) {
			fmt.Fprintf(&b, "| `%s` | `%s` |\n", f, ev.Functions[f])
		}
		b.WriteString("\n")
	}
	if ev.RunURL != "" {
		fmt.Fprintf(&b, "**Run:** %s\n\n", ev.RunURL)
	}
	if ev.Reason != "" {
		// why a code span: the reason may quote the pull request's own
		// code (a manifest's error, a step's output); as markdown it could
		// put a link, HTML or an @mention in ferry's words.
		fmt.Fprintf(&b, "**Why:** `%s`\n", strings.ReplaceAll(clip(firstLine(ev.Reason), maxReason), "`", "'"))
	}
	return notice{Op: "comment", Number: ev.PullRequest, Marker: m, Text: b.String()}
}

func (s *Sink) previewDeployment(ev notify.Event) (notice, bool) {
	env := store.PreviewName(ev.Source, ev.PullRequest)
	n := notice{Op: "deployment", SHA: ev.Commit, Environment: env, Transient: true,
		State: previewStates[ev.Kind].deployment, TargetURL: ev.RunURL, Description: clip("preview "+previewStates[ev.Kind].word, maxDescription)}
	if ev.Kind == notify.PreviewReady {
		n.EnvURL = ev.URL
	}
	// Torn down without a commit: the environment's last deployment is
	// made inactive (Deliver finds it by its memo).
	if n.State == "" {
		return n, false
	}
	return n, n.SHA != "" || ev.Kind == notify.PreviewTornDown
}

func (s *Sink) envDeployment(ev notify.Event) (notice, bool) {
	if ev.Preview || ev.Commit == "" || ev.Environment == "" || !slices.Contains(s.cfg.Deployments, ev.Environment) {
		return notice{}, false
	}
	n := notice{Op: "deployment", SHA: ev.Commit, Environment: ev.Environment, TargetURL: ev.RunURL,
		Production: slices.Contains(s.cfg.Production, ev.Environment)}
	switch ev.Kind {
	case notify.Deploying:
		n.State, n.Description = "in_progress", "deploying release "+store.Short(ev.Release)
	case notify.Deployed:
		n.State, n.EnvURL, n.Description = "success", ev.URL, "deployed release "+store.Short(ev.Release)
	default:
		n.State, n.Description = "failure", clip(string(ev.Kind)+": "+firstLine(ev.Reason), maxDescription)
	}
	return n, true
}

// Deliver implements notify.Sink.
func (s *Sink) Deliver(ctx context.Context, body []byte) error {
	var n notice
	if err := json.Unmarshal(body, &n); err != nil {
		return &notify.PermanentError{Err: fmt.Errorf("github: a notice this ferry cannot read: %w", err)}
	}
	switch n.Op {
	case "status":
		return s.status(ctx, n)
	case "comment":
		return s.comment(ctx, n)
	case "deployment":
		return s.deployment(ctx, n)
	}
	return &notify.PermanentError{Err: fmt.Errorf("github: unknown notice %q", n.Op)}
}

func (s *Sink) status(ctx context.Context, n notice) error {
	st := &gh.RepoStatus{State: gh.String(n.State), Context: gh.String(n.Context), Description: gh.String(n.Description)}
	if n.TargetURL != "" {
		st.TargetURL = gh.String(n.TargetURL)
	}
	_, _, err := s.cfg.Client.gh.Repositories.CreateStatus(ctx, n.Owner, n.Repo, n.SHA, st)
	return sorted(fmt.Sprintf("status %s of %s@%s", n.Context, n.Owner+"/"+n.Repo, store.Short(n.SHA)), err, s.cfg.Now())
}

// comment edits the pull request's one preview comment, found by its memo
// or, when the memo is lost, by its marker; it makes the comment when
// there is none (or it was deleted).
func (s *Sink) comment(ctx context.Context, n notice) error {
	issues := s.cfg.Client.gh.Issues
	what := fmt.Sprintf("the preview comment on %s/%s#%d", n.Owner, n.Repo, n.Number)
	memo := fmt.Sprintf("github/comment/%s/%s/%d", n.Owner, n.Repo, n.Number)
	id, err := s.memo(ctx, memo)
	if err != nil {
		return err
	}
	if id == 0 {
		if id, err = s.findComment(ctx, n); err != nil {
			return sorted("finding "+what, err, s.cfg.Now())
		}
	}
	if id != 0 {
		_, _, err := issues.EditComment(ctx, n.Owner, n.Repo, id, &gh.IssueComment{Body: gh.String(n.Text)})
		if !isStatus(err, http.StatusNotFound) {
			if err == nil {
				return s.putMemo(ctx, memo, id)
			}
			return sorted("editing "+what, err, s.cfg.Now())
		}
		// Someone deleted it: make it again below.
	}
	c, _, err := issues.CreateComment(ctx, n.Owner, n.Repo, n.Number, &gh.IssueComment{Body: gh.String(n.Text)})
	if err != nil {
		return sorted("making "+what, err, s.cfg.Now())
	}
	return s.putMemo(ctx, memo, c.GetID())
}

// findComment looks for the marker in ferry's own comments on the pull
// request. Anyone can write the marker: a comment by someone else is
// never taken (ferry would overwrite it, and its author could later edit
// what reads as ferry's words, the preview's URL say).
func (s *Sink) findComment(ctx context.Context, n notice) (int64, error) {
	self, err := s.cfg.Client.Self(ctx)
	if err != nil {
		return 0, err
	}
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		cs, resp, err := s.cfg.Client.gh.Issues.ListComments(ctx, n.Owner, n.Repo, n.Number, opts)
		if err != nil {
			return 0, err
		}
		for _, c := range cs {
			if strings.HasPrefix(c.GetBody(), n.Marker) && strings.EqualFold(c.GetUser().GetLogin(), self) {
				return c.GetID(), nil
			}
		}
		if resp.NextPage == 0 {
			return 0, nil
		}
		opts.Page = resp.NextPage
	}
}

// deployment gives the commit's deployment to the environment a status,
// making the deployment first when there is none.
func (s *Sink) deployment(ctx context.Context, n notice) error {
	repos := s.cfg.Client.gh.Repositories
	r := n.Owner + "/" + n.Repo
	what := fmt.Sprintf("the deployment of %s@%s to %s", r, store.Short(n.SHA), n.Environment)
	last := "github/deployment/" + r + "/" + n.Environment
	memo := last + "/" + n.SHA
	if n.SHA == "" {
		memo = last
	}
	id, err := s.memo(ctx, memo)
	if err != nil {
		return err
	}
	if id == 0 && n.SHA != "" {
		ds, _, err := repos.ListDeployments(ctx, n.Owner, n.Repo, &gh.DeploymentsListOptions{SHA: n.SHA, Environment: n.Environment})
		if err != nil {
			return sorted("finding "+what, err, s.cfg.Now())
		}
		if len(ds) > 0 {
			id = ds[0].GetID()
		}
	}
	if id == 0 && n.State == "inactive" {
		// A preview torn down: its last deployment, whatever the commit.
		if id, err = s.memo(ctx, last); err != nil {
			return err
		}
		if id == 0 {
			return nil // never deployed: nothing to mark inactive
		}
	}
	if id == 0 {
		d, _, err := repos.CreateDeployment(ctx, n.Owner, n.Repo, &gh.DeploymentRequest{
			Ref: gh.String(n.SHA), Environment: gh.String(n.Environment),
			// ferry deployed what it verified: GitHub must neither wait
			// for status contexts nor merge the default branch in.
			RequiredContexts: &[]string{}, AutoMerge: gh.Bool(false),
			TransientEnvironment: gh.Bool(n.Transient), ProductionEnvironment: gh.Bool(n.Production),
			Description: gh.String("ferry"),
		})
		if err != nil {
			return sorted("making "+what, err, s.cfg.Now())
		}
		id = d.GetID()
	}
	if err := s.putMemo(ctx, memo, id); err != nil {
		return err
	}
	if err := s.putMemo(ctx, last, id); err != nil {
		return err
	}
	req := &gh.DeploymentStatusRequest{State: gh.String(n.State), Description: gh.String(n.Description)}
	if n.EnvURL != "" {
		req.EnvironmentURL = gh.String(n.EnvURL)
	}
	if n.TargetURL != "" {
		req.LogURL = gh.String(n.TargetURL)
	}
	_, _, err = repos.CreateDeploymentStatus(ctx, n.Owner, n.Repo, id, req)
	return sorted(n.State+" status of "+what, err, s.cfg.Now())
}

func (s *Sink) memo(ctx context.Context, key string) (int64, error) {
	v, err := s.cfg.Memos.GetMemo(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("github: memo %s: %w", key, err)
	}
	id, _ := strconv.ParseInt(v, 10, 64)
	return id, nil
}

func (s *Sink) putMemo(ctx context.Context, key string, id int64) error {
	if err := s.cfg.Memos.PutMemo(ctx, key, strconv.FormatInt(id, 10)); err != nil {
		return fmt.Errorf("github: memo %s: %w", key, err)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// clip cuts s to at most n bytes, on a rune boundary, with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
