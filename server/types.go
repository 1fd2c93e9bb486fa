package server

import (
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/watcher"
)

// The API's JSON shapes. The CLI decodes the same types. Secrets (webhook
// secrets, passwords, keys, tokens) never appear in them.

// SourceView is a source and what the watcher last saw of it.
type SourceView struct {
	Name       string    `json:"name"`
	URL        string    `json:"url"`
	Branch     string    `json:"branch"`
	Interval   string    `json:"interval"`
	Timeout    string    `json:"timeout"` // bounds each fetch
	Webhook    bool      `json:"webhook"` // has a webhook secret
	FromConfig bool      `json:"fromConfig"`
	LastCommit string    `json:"lastCommit,omitempty"`
	LastFetch  time.Time `json:"lastFetch,omitzero"`
	LastError  string    `json:"lastError,omitempty"`
	Failures   int       `json:"failures,omitempty"`
	NextFetch  time.Time `json:"nextFetch,omitzero"`
}

// SourceRequest adds a source.
type SourceRequest struct {
	Name          string `json:"name"`
	URL           string `json:"url"`
	Branch        string `json:"branch,omitempty"`
	Interval      string `json:"interval,omitempty"`
	Timeout       string `json:"timeout,omitempty"`
	WebhookSecret string `json:"webhookSecret,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	SSHKey        string `json:"sshKey,omitempty"`
}

// RunView is a PipelineRun.
type RunView struct {
	ID      int64      `json:"id"`
	Source  string     `json:"source"`
	Branch  string     `json:"branch"`
	Commit  string     `json:"commit"`
	Status  string     `json:"status"`
	Reason  string     `json:"reason,omitempty"`
	Release string     `json:"release,omitempty"`
	Created time.Time  `json:"created"`
	Started time.Time  `json:"started,omitzero"`
	Ended   time.Time  `json:"ended,omitzero"`
	Steps   []StepView `json:"steps,omitempty"`
	// InfraFailed marks a failed run that failed because ferry's
	// infrastructure did (the store, the registry, the source's mirror):
	// ferry runs it again while its commit is the branch head.
	InfraFailed bool `json:"infraFailed,omitempty"`
	// Fate is where the run's release went, environment by environment
	// (runs_fate.go).
	Fate []FateView `json:"fate,omitempty"`
}

// StepView is one step of a run.
type StepView struct {
	Name    string    `json:"name"`
	Status  string    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// LogLineView is one line of a run's log.
type LogLineView struct {
	Seq  int64     `json:"seq"`
	Step string    `json:"step"`
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// ReleaseView is a release; Manifest only when one release is asked for.
type ReleaseView struct {
	Seq      int64     `json:"seq"`
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	Commit   string    `json:"commit"`
	Ref      string    `json:"ref"`
	RunID    int64     `json:"run,omitempty"`
	Created  time.Time `json:"created"`
	Manifest string    `json:"manifest,omitempty"`
}

// EnvironmentView is an environment: what the store says it runs and what
// its target reports.
type EnvironmentView struct {
	Name         string               `json:"name"`
	Target       string               `json:"target"`
	Release      string               `json:"release,omitempty"`
	Held         bool                 `json:"held,omitempty"`
	HoldReason   string               `json:"holdReason,omitempty"`
	Frozen       bool                 `json:"frozen,omitempty"`
	FreezeReason string               `json:"freezeReason,omitempty"`
	Updated      time.Time            `json:"updated,omitzero"`
	Functions    []FunctionStatusView `json:"functions,omitempty"`
	Error        string               `json:"error,omitempty"` // the target could not be asked
	// Next says what happens next (answers to resume, freeze, unfreeze).
	Next string `json:"next,omitempty"`
	// Preview marks an environment made for a pull request, listed after
	// the configured ones; URL is where it answers (GATEWAY/pr-N-SOURCE/).
	Preview bool   `json:"preview,omitempty"`
	URL     string `json:"url,omitempty"`
}

// FunctionStatusView is one function as its target runs it.
type FunctionStatusView struct {
	Name     string `json:"name"`
	Image    string `json:"image"`
	URL      string `json:"url,omitempty"`
	State    string `json:"state"`
	Restarts int    `json:"restarts,omitempty"`
	Message  string `json:"message,omitempty"`
}

// ListPage wraps a list: Next is the Before of the following page, 0 when
// this page is the last.
type ListPage[T any] struct {
	Items []T   `json:"items"`
	Next  int64 `json:"next,omitempty"`
}

// ErrorView is every error's body.
type ErrorView struct {
	Error string `json:"error"`
}

func sourceView(s store.Source, st store.SourceStatus) SourceView {
	return SourceView{
		Name: s.Name, URL: s.URL, Branch: s.Branch, Interval: s.Interval.String(), Timeout: watcher.ShowTimeout(sourceTimeout(s)),
		Webhook: s.WebhookSecret != "", FromConfig: s.FromConfig,
		LastCommit: st.LastCommit, LastFetch: st.LastFetch, LastError: st.LastError,
		Failures: st.Failures, NextFetch: st.NextFetch,
	}
}

func runView(r store.Run) RunView {
	v := RunView{ID: r.ID, Source: r.Source, Branch: r.Branch, Commit: r.Commit, Status: string(r.Status),
		Reason: r.Reason, Release: r.Release, Created: r.Created, Started: r.Started, Ended: r.Ended, InfraFailed: r.InfraFailed}
	for _, s := range r.Steps {
		v.Steps = append(v.Steps, StepView{Name: s.Name, Status: string(s.Status), Reason: s.Reason, Started: s.Started, Ended: s.Ended})
	}
	return v
}

func releaseView(r store.Release, withManifest bool) ReleaseView {
	v := ReleaseView{Seq: r.Seq, ID: r.ID, Source: r.Source, Commit: r.Commit, Ref: r.Ref, RunID: r.RunID, Created: r.Created}
	if withManifest {
		v.Manifest = string(r.Manifest)
	}
	return v
}

func functionViews(st *environments.Status) []FunctionStatusView {
	var out []FunctionStatusView
	for _, f := range st.Functions {
		out = append(out, FunctionStatusView{Name: f.Name, Image: f.Image, URL: f.URL, State: f.State, Restarts: f.Restarts, Message: f.Message})
	}
	return out
}
