package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ferrycd/ferry/store"
)

// SlackMessage is what a Slack-compatible incoming webhook receives: the
// text field, in Slack's mrkdwn, which Mattermost and Rocket.Chat's
// incoming webhooks read too.
type SlackMessage struct {
	Text string `json:"text"`
}

// SlackConfig is a Slack-compatible incoming webhook.
type SlackConfig struct {
	// Name is the sink's name, unique among the sinks.
	Name string
	// URL is the incoming webhook's address, a secret: it is never
	// logged, only its host.
	URL    string
	Filter Filter
	// Client sends (nil: a client of its own).
	Client *http.Client
}

type slack struct{ cfg SlackConfig }

var _ Sink = (*slack)(nil)

// NewSlack returns a sink that posts a short message per event.
func NewSlack(cfg SlackConfig) (Sink, error) {
	if cfg.Name == "" || cfg.URL == "" {
		return nil, errors.New("notify: a Slack webhook needs a name and a url")
	}
	if err := cfg.Filter.Check(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	return &slack{cfg: cfg}, nil
}

func (s *slack) Name() string { return s.cfg.Name }

func (s *slack) Plan(ev Event) ([]Delivery, error) {
	if !s.cfg.Filter.Match(ev) {
		return nil, nil
	}
	body, err := json.Marshal(SlackMessage{Text: SlackText(ev)})
	if err != nil {
		return nil, err
	}
	return []Delivery{{Body: body}}, nil
}

// Deliver posts body. Slack answers 404 no_service, 410
// channel_is_archived, 403 action_prohibited or 400 invalid_payload for
// what no retry mends: those are permanent, as post sorts them.
func (s *slack) Deliver(ctx context.Context, body []byte) error {
	return post(ctx, s.cfg.Client, s.cfg.URL, body, nil)
}

// SlackText is ev as one line of Slack mrkdwn, with links to the run and
// the environment where ev has them.
func SlackText(ev Event) string {
	run := link(ev.RunURL, fmt.Sprintf("Run #%d", ev.Run))
	src := "*" + esc(ev.Source) + "*"
	at := ""
	if ev.Commit != "" {
		at = fmt.Sprintf(" (%s@%s)", esc(ev.Branch), esc(store.Short(ev.Commit)))
	}
	rel := "release " + esc(store.Short(ev.Release))
	env := link(ev.URL, esc(ev.Environment))
	pr := fmt.Sprintf("Preview of pull request #%d of %s", ev.PullRequest, src)
	var t string
	switch ev.Kind {
	case RunStarted:
		t = fmt.Sprintf("%s of %s started%s", run, src, at)
	case StepStarted:
		t = fmt.Sprintf("%s of %s%s: step %s started", run, src, at, esc(ev.Step))
	case StepEnded:
		t = fmt.Sprintf("%s of %s%s: step %s %s", run, src, at, esc(ev.Step), esc(ev.StepStatus))
	case RunFailed:
		t = fmt.Sprintf(":x: %s of %s failed%s", run, src, at)
		if ev.Step != "" {
			t += " at step " + esc(ev.Step)
		}
	case RunSucceeded:
		t = fmt.Sprintf(":white_check_mark: %s of %s succeeded%s", run, src, at)
	case Deployed:
		t = fmt.Sprintf(":rocket: %s deployed to %s", rel, env)
		if ev.Source != "" {
			t = fmt.Sprintf(":rocket: %s of %s%s deployed to %s", rel, src, at, env)
		}
	case Deploying:
		t = fmt.Sprintf(":hammer_and_wrench: Deploying %s to %s", rel, env)
	case DeployFailed:
		t = fmt.Sprintf(":x: Deploying %s to %s failed", rel, env)
	case VerificationFailed:
		t = fmt.Sprintf(":warning: %s failed its verification in %s", rel, env)
	case RolledBack:
		t = fmt.Sprintf(":rewind: %s rolled back to %s", env, rel)
	case WaitingForApproval:
		t = fmt.Sprintf(":hourglass: %s waits for approval to enter %s", rel, env)
	case Approved:
		t = fmt.Sprintf(":+1: %s approved for %s", rel, env)
	case Rejected:
		t = fmt.Sprintf(":no_entry: %s rejected for %s", rel, env)
	case PreviewBuilding:
		t = fmt.Sprintf(":construction: %s is building%s", pr, at)
	case PreviewReady:
		t = fmt.Sprintf(":eyes: %s is ready at %s", pr, link(ev.URL, esc(ev.URL)))
	case PreviewFailed:
		t = fmt.Sprintf(":x: %s failed%s", pr, at)
	case PreviewWaiting:
		t = fmt.Sprintf(":lock: %s waits for its label%s", pr, at)
	case PreviewTornDown:
		t = fmt.Sprintf("%s was torn down", pr)
	default:
		t = esc(string(ev.Kind))
	}
	if ev.Actor != "" && ev.Kind != RunFailed && ev.Kind != RunSucceeded {
		t += " by " + esc(ev.Actor)
	}
	if ev.Reason != "" {
		t += ": " + esc(ev.Reason)
	}
	if ev.Run != 0 && ev.Kind != RunStarted && ev.Kind != RunFailed && ev.Kind != RunSucceeded &&
		ev.Kind != StepStarted && ev.Kind != StepEnded {
		t += " (" + run + ")"
	}
	return t
}

// link is Slack's <url|text>, or text alone without a url.
func link(url, text string) string {
	if url == "" {
		return text
	}
	return "<" + esc(url) + "|" + text + ">"
}

// escaper escapes the three characters Slack's mrkdwn gives a meaning.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func esc(s string) string { return escaper.Replace(s) }
