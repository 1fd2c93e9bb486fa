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
// delivery only asks the watcher to fetch the source now; it never says what
// to build. It panics when Source or Sync is nil, which is a wiring mistake.
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
	// ignored says why a delivery does not sync; empty for a ping.
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
	OK        bool   `json:"ok"`
	Event     string `json:"event,omitempty"`
	Source    string `json:"source,omitempty"`
	Delivery  string `json:"delivery,omitempty"`
	Sync      string `json:"sync,omitempty"`
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
	if !d.sync {
		// Nothing changes, so nothing needs remembering: a replay gets the
		// same answer and changes nothing either.
		reply.Ignored = d.ignored
		replyHook(w, http.StatusOK, reply)
		return
	}
	// Only deliveries that passed the signature check and are about to sync
	// get here, so a forged delivery cannot claim an id before the real one.
	first := true
	ctx := r.Context()
	ev := store.Event{Actor: "webhook", Action: "source.sync", Object: "source/" + src.Name,
		Detail: fmt.Sprintf("%s %s delivery %s: %s", p.name, d.event, id, d.detail)}
	if wh.cfg.Audit != nil {
		ctx = store.WithEvent(ctx, ev)
	}
	if id != "" {
		first, err = wh.cfg.Deliveries.RememberDelivery(ctx, deliveryKey(p.name, src.Name, id), wh.cfg.Now(), defaultDeliveryTTL)
		if err != nil {
			// Not synced and not remembered: the sender retries later.
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
		wh.cfg.Log("webhook: %s delivery %s for source %q is a duplicate; not syncing again", p.name, id, src.Name)
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
	wh.cfg.Log("webhook: %s %s delivery %s for source %q: %s; syncing", p.name, d.event, id, src.Name, d.detail)
	wh.cfg.Sync(src.Name)
	reply.Sync = "requested"
	replyHook(w, http.StatusAccepted, reply)
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
	case "push", "pull_request":
	default:
		d.ignored = "ferry acts on push and pull_request events, not " + event
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

	var pr struct {
		Action string `json:"action"`
		Number int    `json:"number"`
	}
	if err := json.Unmarshal(payload, &pr); err != nil {
		return d, badHook("pull_request payload is not valid JSON: %v", err)
	}
	switch pr.Action {
	case "opened", "reopened", "synchronize", "closed":
		d.sync, d.detail = true, fmt.Sprintf("pull request #%d %s", pr.Number, pr.Action)
	default:
		d.ignored = fmt.Sprintf("pull request action %q changes no code", pr.Action)
	}
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
		var mr struct {
			ObjectAttributes struct {
				IID    int    `json:"iid"`
				Action string `json:"action"`
			} `json:"object_attributes"`
		}
		if err := json.Unmarshal(body, &mr); err != nil {
			return d, badHook("Merge Request Hook payload is not valid JSON: %v", err)
		}
		d.sync, d.detail = true, fmt.Sprintf("merge request !%d %s", mr.ObjectAttributes.IID, mr.ObjectAttributes.Action)
	default:
		d.ignored = "ferry acts on Push Hook and Merge Request Hook events, not " + event
	}
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
