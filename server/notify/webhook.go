package notify

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// WebhookBody is the JSON a generic webhook receives, one event a POST.
// Fields the event has nothing for are left out. The README documents it
// field by field; a change here is a change for every receiver.
type WebhookBody struct {
	// ID is the delivery's id, also in X-Ferry-Delivery: the same on
	// every retry, so that a receiver can drop a notice it had.
	ID    string    `json:"id"`
	Event Kind      `json:"event"`
	At    time.Time `json:"at"`

	Source      string `json:"source,omitempty"`
	Repository  string `json:"repository,omitempty"`
	Branch      string `json:"branch,omitempty"`
	Commit      string `json:"commit,omitempty"`
	PullRequest int    `json:"pullRequest,omitempty"`
	Run         int64  `json:"run,omitempty"`
	RunURL      string `json:"runURL,omitempty"`
	Step        string `json:"step,omitempty"`
	StepStatus  string `json:"stepStatus,omitempty"`
	Environment string `json:"environment,omitempty"`
	Preview     bool   `json:"preview,omitempty"`
	URL         string `json:"url,omitempty"`
	Release     string `json:"release,omitempty"`
	// Functions maps each function of the release to its image digest.
	Functions map[string]string `json:"functions,omitempty"`
	Actor     string            `json:"actor,omitempty"`
	Reason    string            `json:"reason,omitempty"`
}

// SignatureHeader carries "sha256=<hex>", the HMAC-SHA256 of the body with
// the webhook's secret: the scheme ferry's own /hooks/generic verifies.
const SignatureHeader = "X-Ferry-Signature-256"

// WebhookConfig is a generic webhook.
type WebhookConfig struct {
	// Name is the sink's name, unique among the sinks.
	Name string
	URL  string
	// Secret signs each body (empty: no signature is sent).
	Secret string
	Filter Filter
	// Client sends (nil: a client of its own).
	Client *http.Client
}

type webhook struct{ cfg WebhookConfig }

var _ Sink = (*webhook)(nil)

// NewWebhook returns a sink that POSTs WebhookBody to cfg.URL.
func NewWebhook(cfg WebhookConfig) (Sink, error) {
	if cfg.Name == "" || cfg.URL == "" {
		return nil, errors.New("notify: a webhook needs a name and a url")
	}
	if err := cfg.Filter.Check(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	return &webhook{cfg: cfg}, nil
}

func (w *webhook) Name() string { return w.cfg.Name }

func (w *webhook) Plan(ev Event) ([]Delivery, error) {
	if !w.cfg.Filter.Match(ev) {
		return nil, nil
	}
	id := make([]byte, 16)
	rand.Read(id)
	body, err := json.Marshal(WebhookBody{
		ID: hex.EncodeToString(id), Event: ev.Kind, At: ev.At.UTC(),
		Source: ev.Source, Repository: ev.Repository, Branch: ev.Branch, Commit: ev.Commit,
		PullRequest: ev.PullRequest, Run: ev.Run, RunURL: ev.RunURL,
		Step: ev.Step, StepStatus: ev.StepStatus,
		Environment: ev.Environment, Preview: ev.Preview, URL: ev.URL, Release: ev.Release,
		Functions: ev.Functions, Actor: ev.Actor, Reason: ev.Reason,
	})
	if err != nil {
		return nil, err
	}
	return []Delivery{{Body: body}}, nil
}

func (w *webhook) Deliver(ctx context.Context, body []byte) error {
	// why: the headers are read back from the body, so the outbox keeps
	// one thing per notice and a retry sends the same id.
	var b struct {
		ID    string `json:"id"`
		Event string `json:"event"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return &PermanentError{Err: fmt.Errorf("a queued notice is not JSON: %w", err)}
	}
	h := http.Header{}
	h.Set("X-Ferry-Event", b.Event)
	h.Set("X-Ferry-Delivery", b.ID)
	if w.cfg.Secret != "" {
		h.Set(SignatureHeader, Sign(body, w.cfg.Secret))
	}
	return post(ctx, w.cfg.Client, w.cfg.URL, body, h)
}

// Sign returns the X-Ferry-Signature-256 value of body with secret.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
