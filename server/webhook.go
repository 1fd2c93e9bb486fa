package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferrycd/ferry/store"
)

// WebhookSource is what a receiver needs to know of a source.
type WebhookSource struct {
	Name string
	URL  string
	// Branch is the watched branch. Empty means the repository's default
	// branch, as the sender names it in the payload.
	Branch string
	// Secret is the source's webhookSecret. Without one every delivery is
	// refused: an unsigned webhook could be sent by anyone.
	Secret string
}

// WebhookConfig wires the webhook receivers to the rest of ferry.
type WebhookConfig struct {
	// Source looks up a source by name; ok false answers 404.
	Source func(ctx context.Context, name string) (WebhookSource, bool)
	// Sync asks the watcher to fetch the source now. It must not block on
	// the fetch: the receiver calls it and answers 202 at once, and the
	// fetch and the pipeline run follow asynchronously. It takes only the
	// source's name on purpose: the commit always comes from Git, never
	// from a payload, so a webhook can at worst cause a needless fetch.
	Sync func(name string)
	// Pull, when set, is told of each pull (merge) request a signed
	// delivery reports (GitHub pull_request opened, reopened, synchronize,
	// closed, labeled; GitLab Merge Request Hook), instead of a sync of
	// the source; what it answers goes back to the sender, who shows it
	// (GitHub in the hook's recent deliveries). The event carries no
	// commit: the callback fetches the request's head from Git. Nil: those
	// deliveries sync the source, as a push does.
	Pull func(ctx context.Context, ev store.PullEvent) (answer string, err error)
	// Comment, when set, is told of each new comment that starts with
	// "/ferry " (GitHub issue_comment and commit_comment, action
	// created); other comments are ignored. Nil: every comment is.
	Comment func(ctx context.Context, ev CommentEvent) (answer string, err error)
	// Deliveries remembers the deliveries that synced, so that a replay is
	// answered "duplicate" without syncing again: the store, so that this
	// holds across a restart. Default: a set in memory, forgotten on exit.
	Deliveries DeliveryLog
	// Audit records each fetch a delivery asks for before it is asked, so
	// that none goes unrecorded; nil records none. When Deliveries is the
	// store, the entry is written with the delivery's id.
	Audit interface {
		AppendEvent(ctx context.Context, e store.Event) (store.Event, error)
	}
	// Log reports accepted and refused deliveries; default log.Printf.
	Log func(format string, args ...any)
	// Now is the clock of the delivery de-duplication; default time.Now.
	Now func() time.Time
}

// CommentEvent is a comment made on GitHub that starts with "/ferry ": on a
// pull request or issue (issue_comment), or on a commit (commit_comment).
// Only the webhook's signature vouches for it: Author is GitHub's login of
// who wrote it, which the approver checks with the GitHub API before it
// counts for anything.
type CommentEvent struct {
	Source string
	// Number is the pull request's or issue's; 0 for a commit comment.
	Number        int
	IsPullRequest bool
	CommentID     int64
	Body          string
	Author        string
	// Commit is commit_comment's commit, "" otherwise: the approver looks
	// the release up from it and trusts it for nothing else.
	Commit string
}

// commandPrefix starts the comments ferry acts on.
const commandPrefix = "/ferry "

// maxWebhookBody caps a delivery's body. GitHub caps its payloads at
// 25 MiB, but those are pushes of thousands of commits, and ferry reads only
// a ref and a flag or two; a push to a watched branch is a few KiB.
const maxWebhookBody = 3 << 20

// NewWebhooks returns the handler of the webhook endpoints:
//
//	POST /hooks/github/{source}   GitHub, signed with X-Hub-Signature-256
//	POST /hooks/gitlab/{source}   GitLab, authenticated by X-Gitlab-Token
//	POST /hooks/generic/{source}  anything else, signed with X-Ferry-Signature-256
//
// It serves those paths itself: mount it at "/hooks/" or at the root. A
// delivery only asks the watcher to fetch the source now, or tells Pull of a
// pull request's change or Comment of a "/ferry " comment; it never says
// what to build: no commit is read from a payload. It panics when Source or Sync is nil, which is a wiring mistake.
func NewWebhooks(cfg WebhookConfig) http.Handler {
	if cfg.Source == nil {
		panic("server.NewWebhooks: WebhookConfig.Source is nil; pass a function that looks up a source by name")
	}
	if cfg.Sync == nil {
		panic("server.NewWebhooks: WebhookConfig.Sync is nil; pass the watcher's function that fetches a source now")
	}
	if cfg.Log == nil {
		cfg.Log = log.Printf
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Deliveries == nil {
		cfg.Deliveries = newDeliverySet(defaultDeliveryMax, defaultDeliveryTTL, cfg.Now)
	}
	wh := &webhooks{cfg: cfg}

	mux := http.NewServeMux()
	for _, p := range []*hookProvider{githubHooks, gitlabHooks, genericHooks} {
		mux.Handle("/hooks/"+p.name+"/{source}", wh.endpoint(p))
	}
	mux.HandleFunc("/hooks/", func(w http.ResponseWriter, r *http.Request) {
		replyHookError(w, http.StatusNotFound, "no webhook endpoint at "+r.URL.Path+
			"; use /hooks/github/<source>, /hooks/gitlab/<source> or /hooks/generic/<source>")
	})
	return mux
}

type webhooks struct {
	cfg WebhookConfig
}

// hookProvider is what differs between senders: how they prove they hold
// the secret, how they name a delivery and what their payloads mean.
type hookProvider struct {
	name string
	// signatureHeader names what carries the proof, for the messages.
	signatureHeader string
	// verify reports whether the request proves it was sent with secret.
	// It is called before anything of the request is parsed.
	verify func(h http.Header, body []byte, secret string) bool
	// deliveryID is the id that stays the same when the sender retries the
	// delivery; "" when there is none.
	deliveryID func(h http.Header) string
	// idHeader is set when a delivery without an id is refused.
	idHeader string
	// decide reads the payload and says whether the source needs a fetch.
	decide func(h http.Header, body []byte, src WebhookSource) (hookDecision, error)
}

type hookDecision struct {
	event string
	sync  bool
	// pulls are the requests' changes to hand to WebhookConfig.Pull (more
	// than one when a GitLab update adds several labels); when Pull is
	// nil, sync decides.
	pulls []store.PullEvent
	// isPull marks a delivery about a pull (merge) request: with
	// WebhookConfig.Pull set, only pulls act on it, and it never syncs.
	isPull bool
	// comment is the comment to hand to WebhookConfig.Comment; ignored
	// when Comment is nil.
	comment *CommentEvent
	// ignored says why a delivery does nothing; empty for a ping.
	ignored string
	// detail is logged when the delivery syncs, e.g. "pull request #7 opened".
	detail string
}

// hookError is a delivery refused with status.
type hookError struct {
	status int
	msg    string
}

func (e *hookError) Error() string { return e.msg }

func badHook(format string, args ...any) error {
	return &hookError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// hookReply is the body of every answer that is not an error.
type hookReply struct {
	OK       bool   `json:"ok"`
	Event    string `json:"event,omitempty"`
	Source   string `json:"source,omitempty"`
	Delivery string `json:"delivery,omitempty"`
	Sync     string `json:"sync,omitempty"`
	// Answer is what WebhookConfig.Pull or Comment said.
	Answer    string `json:"answer,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Ignored   string `json:"ignored,omitempty"`
}

func (wh *webhooks) endpoint(p *hookProvider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wh.serve(p, w, r)
	})
}

// serve runs the checks in order, cheapest and least trusting first:
// nothing of the body is parsed before the signature matched, and nothing
// is remembered or synced before the payload parsed.
func (wh *webhooks) serve(p *hookProvider, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		replyHookError(w, http.StatusMethodNotAllowed, "webhooks are delivered with POST, not "+r.Method)
		return
	}
	// Refuse a body announced too big before reading a byte of it.
	if r.ContentLength > maxWebhookBody {
		replyHookError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"body of %d bytes is over the webhook limit of %d bytes; ferry needs only the ref, send fewer fields",
			r.ContentLength, maxWebhookBody))
		return
	}

	name := r.PathValue("source")
	src, ok := wh.cfg.Source(r.Context(), name)
	if !ok {
		replyHookError(w, http.StatusNotFound, fmt.Sprintf(
			"no source %q; the webhook URL ends in the name of a source ferry watches", name))
		return
	}
	if src.Name == "" {
		src.Name = name
	}
	if src.Secret == "" {
		wh.cfg.Log("webhook: %s delivery for source %q refused: the source has no webhookSecret", p.name, src.Name)
		replyHookError(w, http.StatusUnauthorized, fmt.Sprintf(
			"source %q has no webhookSecret, and ferry accepts only signed webhooks; set webhookSecret on the source and the same secret on the webhook",
			src.Name))
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			replyHookError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"body is over the webhook limit of %d bytes; ferry needs only the ref, send fewer fields", maxWebhookBody))
			return
		}
		replyHookError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}

	// The same answer whether the proof is missing, malformed or wrong, so
	// that a prober learns nothing from it.
	if !p.verify(r.Header, body, src.Secret) {
		wh.cfg.Log("webhook: %s delivery for source %q from %s refused: %s does not match",
			p.name, src.Name, r.RemoteAddr, p.signatureHeader)
		replyHookError(w, http.StatusUnauthorized, fmt.Sprintf(
			"%s does not match; the webhook's secret must be the source's webhookSecret", p.signatureHeader))
		return
	}

	id := p.deliveryID(r.Header)
	if id == "" && p.idHeader != "" {
		replyHookError(w, http.StatusBadRequest, "missing "+p.idHeader+" header: every delivery needs an id, so that a replayed one is recognised")
		return
	}

	d, err := p.decide(r.Header, body, src)
	if err != nil {
		he, ok := errors.AsType[*hookError](err)
		if !ok {
			he = &hookError{status: http.StatusBadRequest, msg: err.Error()}
		}
		wh.cfg.Log("webhook: %s delivery %s for source %q refused: %s", p.name, id, src.Name, he.msg)
		replyHookError(w, he.status, he.msg)
		return
	}
	reply := hookReply{OK: true, Event: d.event, Source: src.Name, Delivery: id}
	action := ""
	switch {
	case d.isPull && wh.cfg.Pull != nil:
		if len(d.pulls) > 0 {
			action = "source.pull"
		}
	case d.comment != nil && wh.cfg.Comment != nil:
		action = "source.comment"
	case d.sync:
		action = "source.sync"
	}
	if action == "" {
		// Nothing changes, so nothing needs remembering: a replay gets the
		// same answer and changes nothing either.
		reply.Ignored = d.ignored
		replyHook(w, http.StatusOK, reply)
		return
	}
	// Only deliveries that passed the signature check and are about to act
	// get here, so a forged delivery cannot claim an id before the real one.
	first := true
	ctx := r.Context()
	ev := store.Event{Actor: "webhook", Action: action, Object: "source/" + src.Name,
		Detail: fmt.Sprintf("%s %s delivery %s: %s", p.name, d.event, id, d.detail)}
	if wh.cfg.Audit != nil {
		ctx = store.WithEvent(ctx, ev)
	}
	if id != "" {
		first, err = wh.cfg.Deliveries.RememberDelivery(ctx, deliveryKey(p.name, src.Name, id), wh.cfg.Now(), defaultDeliveryTTL)
		if err != nil {
			// Not acted on and not remembered: the sender retries later.
			wh.cfg.Log("webhook: %s delivery %s for source %q: %v", p.name, id, src.Name, err)
			msg := "ferry could not record the delivery; send it again later"
			if ae, ok := errors.AsType[*store.AuditError](err); ok {
				msg = ae.Error()
			}
			replyHookError(w, http.StatusServiceUnavailable, msg)
			return
		}
	}
	if !first {
		wh.cfg.Log("webhook: %s delivery %s for source %q is a duplicate; not acting again", p.name, id, src.Name)
		reply.Duplicate = true
		replyHook(w, http.StatusOK, reply)
		return
	}
	if wh.cfg.Audit != nil && !store.EventWritten(ctx) {
		if _, err := wh.cfg.Audit.AppendEvent(ctx, ev); err != nil {
			wh.cfg.Log("webhook: %s delivery %s for source %q: %v", p.name, id, src.Name, err)
			replyHookError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	switch action {
	case "source.sync":
		wh.cfg.Log("webhook: %s %s delivery %s for source %q: %s; syncing", p.name, d.event, id, src.Name, d.detail)
		wh.cfg.Sync(src.Name)
		reply.Sync = "requested"
		replyHook(w, http.StatusAccepted, reply)
		return
	case "source.pull":
		wh.cfg.Log("webhook: %s %s delivery %s for source %q: %s", p.name, d.event, id, src.Name, d.detail)
		var answers []string
		for _, pe := range d.pulls {
			pe.Source = src.Name
			// why: r.Context(), not ctx: the audit entry is written, and a
			// callback's own changes must not carry it.
			a, err := wh.cfg.Pull(r.Context(), pe)
			if err != nil {
				wh.failed(r.Context(), w, p.name, src.Name, id, d.detail, err)
				return
			}
			if a != "" {
				answers = append(answers, a)
			}
		}
		reply.Answer = strings.Join(answers, "; ")
	case "source.comment":
		wh.cfg.Log("webhook: %s %s delivery %s for source %q: %s", p.name, d.event, id, src.Name, d.detail)
		c := *d.comment
		c.Source = src.Name
		a, err := wh.cfg.Comment(r.Context(), c)
		if err != nil {
			wh.failed(r.Context(), w, p.name, src.Name, id, d.detail, err)
			return
		}
		reply.Answer = a
	}
	replyHook(w, http.StatusAccepted, reply)
}

// failed answers a delivery whose action failed 503, and forgets it: the
// sender's redelivery (GitHub's "Redeliver", GitLab's retry) must act, not
// be answered "duplicate".
func (wh *webhooks) failed(ctx context.Context, w http.ResponseWriter, provider, source, id, detail string, err error) {
	wh.cfg.Log("webhook: %s delivery %s for source %q: %s: %v", provider, id, source, detail, err)
	if id != "" {
		if ferr := wh.cfg.Deliveries.ForgetDelivery(ctx, deliveryKey(provider, source, id)); ferr != nil {
			wh.cfg.Log("webhook: %s delivery %s for source %q: %v", provider, id, source, ferr)
		}
	}
	replyHookError(w, http.StatusServiceUnavailable, err.Error()+"; deliver it again once that is fixed")
}

func replyHook(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func replyHookError(w http.ResponseWriter, status int, msg string) {
	replyHook(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// verifyHMAC checks a "sha256=<hex>" header against the HMAC-SHA256 of the
// raw body, in constant time.
func verifyHMAC(header string, body []byte, secret string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), got)
}

// onWatchedBranch reports whether ref names the watched branch: the
// source's branch, or when it names none the repository's default branch
// as the payload gives it. When neither is known every branch counts, since
// a needless fetch costs little and a missed one delays a deploy.
func onWatchedBranch(ref, branch, defaultBranch string) bool {
	if branch == "" {
		branch = defaultBranch
	}
	if branch == "" {
		return strings.HasPrefix(ref, "refs/heads/")
	}
	return ref == "refs/heads/"+branch
}

func notWatched(src WebhookSource, ref string) string {
	if src.Branch == "" {
		return fmt.Sprintf("not the watched branch: %s is not the default branch", ref)
	}
	return fmt.Sprintf("not the watched branch: %s is not refs/heads/%s", ref, src.Branch)
}

// GitHub: https://docs.github.com/en/webhooks/webhook-events-and-payloads
var githubHooks = &hookProvider{
	name:            "github",
	signatureHeader: "X-Hub-Signature-256",
	verify: func(h http.Header, body []byte, secret string) bool {
		return verifyHMAC(h.Get("X-Hub-Signature-256"), body, secret)
	},
	deliveryID: func(h http.Header) string { return h.Get("X-GitHub-Delivery") },
	idHeader:   "X-GitHub-Delivery",
	decide:     decideGitHub,
}

func decideGitHub(h http.Header, body []byte, src WebhookSource) (hookDecision, error) {
	event := h.Get("X-GitHub-Event")
	d := hookDecision{event: event}
	switch event {
	case "":
		return d, badHook("missing X-GitHub-Event header; is this a GitHub webhook?")
	case "ping":
		return d, nil
	case "push", "pull_request", "issue_comment", "commit_comment":
	default:
		d.ignored = "ferry acts on push, pull_request, issue_comment and commit_comment events, not " + event
		return d, nil
	}

	payload, err := githubPayload(h, body)
	if err != nil {
		return d, err
	}
	if event == "push" {
		var push struct {
			Ref        string `json:"ref"`
			Deleted    bool   `json:"deleted"`
			Repository struct {
				DefaultBranch string `json:"default_branch"`
			} `json:"repository"`
		}
		if err := json.Unmarshal(payload, &push); err != nil {
			return d, badHook("push payload is not valid JSON: %v", err)
		}
		switch {
		case !onWatchedBranch(push.Ref, src.Branch, push.Repository.DefaultBranch):
			d.ignored = notWatched(src, push.Ref)
		case push.Deleted:
			d.ignored = "the push deleted " + push.Ref
		default:
			d.sync, d.detail = true, "push to "+push.Ref
		}
		return d, nil
	}

	if event == "issue_comment" || event == "commit_comment" {
		return decideGitHubComment(d, payload)
	}
	return decideGitHubPull(d, payload)
}

// githubRepo is a repository as GitHub's payloads name it; null when it is
// gone (a deleted fork).
type githubRepo struct {
	FullName string `json:"full_name"`
}

// githubUser is a user as GitHub's payloads name them.
type githubUser struct {
	Login string `json:"login"`
}

// decideGitHubPull reads a pull_request delivery. Its head commit is never
// read: the callback fetches refs/pull/N/head from Git.
func decideGitHubPull(d hookDecision, payload []byte) (hookDecision, error) {
	var pr struct {
		Action      string `json:"action"`
		Number      int    `json:"number"`
		PullRequest struct {
			Number  int        `json:"number"`
			Title   string     `json:"title"`
			HTMLURL string     `json:"html_url"`
			User    githubUser `json:"user"`
			Head    struct {
				// SHA only bounds what a label approves (LabeledHead).
				SHA  string      `json:"sha"`
				Repo *githubRepo `json:"repo"`
			} `json:"head"`
			Base struct {
				Repo *githubRepo `json:"repo"`
			} `json:"base"`
		} `json:"pull_request"`
		Label  *struct{ Name string } `json:"label"`
		Sender githubUser             `json:"sender"`
	}
	if err := json.Unmarshal(payload, &pr); err != nil {
		return d, badHook("pull_request payload is not valid JSON: %v", err)
	}
	if pr.Number == 0 {
		pr.Number = pr.PullRequest.Number
	}
	var action store.PullAction
	switch pr.Action {
	case "opened", "reopened":
		action = store.PullOpened
	case "synchronize":
		action = store.PullUpdated
	case "closed":
		action = store.PullClosed
	case "labeled":
		action = store.PullLabeled
	default:
		d.ignored = fmt.Sprintf("pull request action %q changes no code", pr.Action)
		return d, nil
	}
	if pr.Number <= 0 {
		return d, badHook("pull_request payload has no pull request number")
	}
	d.detail = fmt.Sprintf("pull request #%d %s", pr.Number, pr.Action)
	// Without a Pull callback a pull request only nudges the branch, as
	// before; a label changes no code.
	d.sync = action != store.PullLabeled
	if !d.sync {
		d.ignored = fmt.Sprintf("pull request action %q changes no code", pr.Action)
	}
	head, base := pr.PullRequest.Head.Repo, pr.PullRequest.Base.Repo
	ev := store.PullEvent{
		Number:      pr.Number,
		Action:      action,
		FromWebhook: true,
		// A head whose repository is gone, or another than the base's, is
		// a fork's: its code is not the base's owners'.
		Fork:   head == nil || base == nil || !strings.EqualFold(head.FullName, base.FullName),
		Author: pr.PullRequest.User.Login,
		Sender: pr.Sender.Login,
		Title:  pr.PullRequest.Title,
		WebURL: pr.PullRequest.HTMLURL,
	}
	d.isPull = true
	if action == store.PullLabeled {
		if pr.Label == nil || pr.Label.Name == "" {
			d.ignored = "the pull request was labelled, but the payload names no label"
			return d, nil
		}
		ev.Label, ev.LabeledHead = pr.Label.Name, pr.PullRequest.Head.SHA
	}
	d.pulls = []store.PullEvent{ev}
	return d, nil
}

// decideGitHubComment reads an issue_comment or commit_comment delivery:
// a new comment that starts with "/ferry " is a command.
func decideGitHubComment(d hookDecision, payload []byte) (hookDecision, error) {
	var c struct {
		Action string `json:"action"`
		Issue  *struct {
			Number      int             `json:"number"`
			PullRequest json.RawMessage `json:"pull_request"`
		} `json:"issue"`
		Comment struct {
			ID       int64      `json:"id"`
			Body     string     `json:"body"`
			User     githubUser `json:"user"`
			CommitID string     `json:"commit_id"`
		} `json:"comment"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return d, badHook("%s payload is not valid JSON: %v", d.event, err)
	}
	switch {
	case c.Action != "created":
		d.ignored = fmt.Sprintf("comment action %q: ferry acts on new comments only", c.Action)
		return d, nil
	case !strings.HasPrefix(strings.TrimLeft(c.Comment.Body, " \t\r\n"), commandPrefix):
		d.ignored = "the comment is no command: ferry's start with " + strings.TrimSpace(commandPrefix)
		return d, nil
	case c.Comment.ID == 0 || c.Comment.User.Login == "":
		return d, badHook("%s payload has no comment id or author", d.event)
	}
	ce := &CommentEvent{CommentID: c.Comment.ID, Body: c.Comment.Body, Author: c.Comment.User.Login}
	if d.event == "issue_comment" {
		if c.Issue == nil || c.Issue.Number <= 0 {
			return d, badHook("issue_comment payload has no issue number")
		}
		ce.Number = c.Issue.Number
		// why: GitHub's pull requests are issues; the issue of one has a
		// pull_request object, which is absent or null otherwise.
		ce.IsPullRequest = len(c.Issue.PullRequest) > 0 && string(c.Issue.PullRequest) != "null"
		d.detail = fmt.Sprintf("comment %d on #%d by %s", ce.CommentID, ce.Number, ce.Author)
	} else {
		if c.Comment.CommitID == "" {
			return d, badHook("commit_comment payload has no commit_id")
		}
		ce.Commit = c.Comment.CommitID
		d.detail = fmt.Sprintf("comment %d on commit %s by %s", ce.CommentID, store.Short(ce.Commit), ce.Author)
	}
	d.comment = ce
	d.ignored = "comments are acted on only when approvals from GitHub are configured"
	return d, nil
}

// githubPayload returns the JSON of a delivery. A hook whose content type
// is "application/x-www-form-urlencoded" sends it in the payload form
// field; the signature covers the raw body either way.
func githubPayload(h http.Header, body []byte) ([]byte, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		return body, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, badHook("Content-Type %q: %v", ct, err)
	}
	switch mt {
	case "application/json":
		return body, nil
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, badHook("form body: %v", err)
		}
		if !form.Has("payload") {
			return nil, badHook("form body has no payload field")
		}
		return []byte(form.Get("payload")), nil
	}
	return nil, &hookError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf(
		"Content-Type %q is not one GitHub sends; set the webhook's content type to application/json", mt)}
}

// GitLab: https://docs.gitlab.com/user/project/integrations/webhooks/
var gitlabHooks = &hookProvider{
	name:            "gitlab",
	signatureHeader: "X-Gitlab-Token",
	// GitLab sends the secret itself. Comparing digests keeps the time
	// taken independent of both the token's content and its length.
	verify: func(h http.Header, _ []byte, secret string) bool {
		got := sha256.Sum256([]byte(h.Get("X-Gitlab-Token")))
		want := sha256.Sum256([]byte(secret))
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	},
	deliveryID: gitlabDeliveryID,
	decide:     decideGitLab,
}

// gitlabDeliveryID prefers Idempotency-Key (GitLab 17.4 and later), the one
// header GitLab keeps the same when it retries a delivery. Older GitLab has
// only ids it makes anew for every attempt, which still recognise a replay
// of the very same request. A GitLab too old for any of them is not
// de-duplicated, which costs at most a needless fetch.
func gitlabDeliveryID(h http.Header) string {
	for _, k := range []string{"Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// zeroSHA is the after of a push that deleted the branch.
const zeroSHA = "0000000000000000000000000000000000000000"

func decideGitLab(h http.Header, body []byte, src WebhookSource) (hookDecision, error) {
	event := h.Get("X-Gitlab-Event")
	d := hookDecision{event: event}
	switch event {
	case "":
		return d, badHook("missing X-Gitlab-Event header; is this a GitLab webhook?")
	case "Push Hook":
		var push struct {
			Ref     string `json:"ref"`
			After   string `json:"after"`
			Project struct {
				DefaultBranch string `json:"default_branch"`
			} `json:"project"`
		}
		if err := json.Unmarshal(body, &push); err != nil {
			return d, badHook("Push Hook payload is not valid JSON: %v", err)
		}
		switch {
		case !onWatchedBranch(push.Ref, src.Branch, push.Project.DefaultBranch):
			d.ignored = notWatched(src, push.Ref)
		case push.After == zeroSHA:
			d.ignored = "the push deleted " + push.Ref
		default:
			d.sync, d.detail = true, "push to "+push.Ref
		}
	case "Merge Request Hook":
		return decideGitLabMerge(d, body)
	default:
		d.ignored = "ferry acts on Push Hook and Merge Request Hook events, not " + event
	}
	return d, nil
}

// decideGitLabMerge reads a Merge Request Hook. GitLab names no author
// login in it (only an id), so Author stays empty; Sender is who acted.
func decideGitLabMerge(d hookDecision, body []byte) (hookDecision, error) {
	type label struct {
		Title string `json:"title"`
	}
	var mr struct {
		User struct {
			Username string `json:"username"`
		} `json:"user"`
		ObjectAttributes struct {
			IID             int    `json:"iid"`
			Action          string `json:"action"`
			OldRev          string `json:"oldrev"`
			SourceProjectID int64  `json:"source_project_id"`
			TargetProjectID int64  `json:"target_project_id"`
			Title           string `json:"title"`
			URL             string `json:"url"`
			// LastCommit only bounds what a label approves (LabeledHead).
			LastCommit struct {
				ID string `json:"id"`
			} `json:"last_commit"`
		} `json:"object_attributes"`
		Changes struct {
			Labels *struct {
				Previous []label `json:"previous"`
				Current  []label `json:"current"`
			} `json:"labels"`
		} `json:"changes"`
	}
	if err := json.Unmarshal(body, &mr); err != nil {
		return d, badHook("Merge Request Hook payload is not valid JSON: %v", err)
	}
	oa := mr.ObjectAttributes
	d.detail = fmt.Sprintf("merge request !%d %s", oa.IID, oa.Action)
	// Without a Pull callback every merge request event nudges the
	// branch, as before.
	d.sync, d.isPull = true, true
	if oa.IID <= 0 {
		return d, badHook("Merge Request Hook payload has no object_attributes.iid")
	}
	ev := store.PullEvent{
		Number:      oa.IID,
		FromWebhook: true,
		// why both named: a payload naming neither (0 == 0) does not
		// confirm the merge request is the project's own.
		Fork:   oa.SourceProjectID == 0 || oa.SourceProjectID != oa.TargetProjectID,
		Sender: mr.User.Username,
		Title:  oa.Title,
		WebURL: oa.URL,
	}
	switch oa.Action {
	case "open", "reopen":
		ev.Action = store.PullOpened
	case "close", "merge":
		ev.Action = store.PullClosed
	case "update":
		// An update with oldrev is a push; without, a change of title,
		// description or labels, of which only an added label matters.
		if oa.OldRev != "" {
			ev.Action = store.PullUpdated
			break
		}
		var added []string
		if l := mr.Changes.Labels; l != nil {
			had := map[string]bool{}
			for _, p := range l.Previous {
				had[p.Title] = true
			}
			for _, c := range l.Current {
				if !had[c.Title] && c.Title != "" {
					added = append(added, c.Title)
				}
			}
		}
		if len(added) == 0 {
			d.ignored = "the merge request update changes no code and adds no label"
			return d, nil
		}
		d.detail = fmt.Sprintf("merge request !%d labelled %s", oa.IID, strings.Join(added, ", "))
		for _, name := range added {
			lev := ev
			lev.Action, lev.Label, lev.LabeledHead = store.PullLabeled, name, oa.LastCommit.ID
			d.pulls = append(d.pulls, lev)
		}
		return d, nil
	default:
		d.ignored = fmt.Sprintf("merge request action %q changes no code", oa.Action)
		return d, nil
	}
	d.pulls = []store.PullEvent{ev}
	return d, nil
}

// genericHooks is ferry's own webhook, for any sender that can compute an
// HMAC: sign the raw body with the source's webhookSecret.
var genericHooks = &hookProvider{
	name:            "generic",
	signatureHeader: "X-Ferry-Signature-256",
	verify: func(h http.Header, body []byte, secret string) bool {
		return verifyHMAC(h.Get("X-Ferry-Signature-256"), body, secret)
	},
	deliveryID: func(h http.Header) string { return h.Get("X-Ferry-Delivery") },
	idHeader:   "X-Ferry-Delivery",
	decide:     decideGeneric,
}

// decideGeneric syncs unless the optional {"ref": "refs/heads/<branch>"}
// names another branch than the watched one. A bare branch name is read as
// refs/heads/<name>.
func decideGeneric(_ http.Header, body []byte, src WebhookSource) (hookDecision, error) {
	d := hookDecision{event: "sync"}
	var p struct {
		Ref string `json:"ref"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &p); err != nil {
			return d, badHook(`body is not valid JSON; send nothing or {"ref": "refs/heads/<branch>"}: %v`, err)
		}
	}
	if p.Ref != "" && !strings.HasPrefix(p.Ref, "refs/") {
		p.Ref = "refs/heads/" + p.Ref
	}
	if p.Ref != "" && !onWatchedBranch(p.Ref, src.Branch, "") {
		d.ignored = notWatched(src, p.Ref)
		return d, nil
	}
	d.sync, d.detail = true, "sync requested"
	if p.Ref != "" {
		d.detail = "sync of " + p.Ref
	}
	return d, nil
}

// httpTimeouts are the limits NewHTTPServer sets; tests shorten them.
type httpTimeouts struct {
	readHeader, read, idle time.Duration
}

var defaultHTTPTimeouts = httpTimeouts{
	// A client gets 10 s to send its headers, so connections held open by
	// trickling them (slowloris) are cut off early.
	readHeader: 10 * time.Second,
	// Reading a whole request, body included, takes at most 30 s: enough for
	// a 3 MiB webhook over a slow link.
	read: 30 * time.Second,
	// Idle keep-alive connections are closed after 2 minutes.
	idle: 2 * time.Minute,
}

// maxHTTPHeaderBytes bounds request headers: webhook and API requests carry
// a few hundred bytes of them.
const maxHTTPHeaderBytes = 64 << 10

// NewHTTPServer returns the server for ferry's HTTP surface, with the header
// and read timeouts that keep slow or stalled clients from holding
// connections. WriteTimeout is left at 0 because server-sent events stream
// their responses on the same server for as long as a client watches;
// ReadTimeout bounds only the reading of the request, so it does not cut a
// stream short.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return newHTTPServer(addr, h, defaultHTTPTimeouts)
}

func newHTTPServer(addr string, h http.Handler, t httpTimeouts) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      0,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHTTPHeaderBytes,
	}
}
