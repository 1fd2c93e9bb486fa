package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
)

// hookReceiver records the POSTs it gets.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []hookRequest
}

type hookRequest struct {
	method string
	header http.Header
	body   []byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{r.Method, r.Header.Clone(), body})
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

// wait polls until found says one request is the one wanted.
func (h *hookReceiver) wait(t *testing.T, p *serveProc, what string, found func(hookRequest) bool) hookRequest {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		h.mu.Lock()
		reqs := append([]hookRequest(nil), h.reqs...)
		h.mu.Unlock()
		for _, q := range reqs {
			if found(q) {
				return q
			}
		}
		if time.Now().After(deadline) {
			var got []string
			for _, q := range reqs {
				got = append(got, string(q.body))
			}
			t.Fatalf("no %s within 120 s; got:\n%s\nferry serve said:\n%s\nruns:\n%s", what, strings.Join(got, "\n"), p.output, p.runsReport(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeNotifiesDeploy: a commit is built and deployed to dev; a
// generic webhook hears the run's success and the deployment, signed, and
// a Slack-compatible webhook the deployment. The receivers' URL and secret
// come from ferry's environment.
func TestServeNotifiesDeploy(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "demo", nil)
	commit := strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
	hook, chat := newHookReceiver(t), newHookReceiver(t)
	const secret = "notify-secret-e2e"
	slackURL := chat.URL + "/services/T000/B000/secret-path"

	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1s}`, url))
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `notifications:
- {type: webhook, url: %q, secret: "env:HOOK_SECRET", events: [run.succeeded, deployed]}
- {type: slack, url: "env:SLACK_URL", environments: [dev]}
`, hook.URL+"/ferry")
	f.Close()
	p := startServe(t, cfg, "HOOK_SECRET="+secret, "SLACK_URL="+slackURL)

	decode := func(q hookRequest) notify.WebhookBody {
		var b notify.WebhookBody
		json.Unmarshal(q.body, &b)
		return b
	}
	succeeded := hook.wait(t, p, "run.succeeded notice", func(q hookRequest) bool { return decode(q).Event == notify.RunSucceeded })
	deployed := hook.wait(t, p, "deployed notice for dev", func(q hookRequest) bool {
		b := decode(q)
		return b.Event == notify.Deployed && b.Environment == "dev"
	})
	for _, q := range []hookRequest{succeeded, deployed} {
		b := decode(q)
		if q.method != http.MethodPost || q.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s came as %s %s", b.Event, q.method, q.header.Get("Content-Type"))
		}
		if got, want := q.header.Get("X-Ferry-Signature-256"), notify.Sign(q.body, secret); got != want {
			t.Errorf("%s signed %q; want %q", b.Event, got, want)
		}
		if q.header.Get("X-Ferry-Event") != string(b.Event) || q.header.Get("X-Ferry-Delivery") != b.ID || b.ID == "" {
			t.Errorf("%s: X-Ferry-Event %q, X-Ferry-Delivery %q; want the body's event and id %q", b.Event,
				q.header.Get("X-Ferry-Event"), q.header.Get("X-Ferry-Delivery"), b.ID)
		}
		if b.Source != "demo" || b.Repository != url || b.Branch != "main" || b.Commit != commit || b.Run == 0 ||
			b.RunURL != fmt.Sprintf("%s/api/v1/runs/%d", p.api, b.Run) {
			t.Errorf("%s: %s; want source demo, its repository, branch main, commit %s and a link to the run", b.Event, q.body, commit)
		}
	}
	b := decode(deployed)
	if b.URL != p.gw+"/dev/" || !strings.HasPrefix(b.Release, "sha256:") || !strings.HasPrefix(b.Functions["hello"], "sha256:") {
		t.Errorf("deployed: %s; want dev's URL, the release and the digest of function hello", deployed.body)
	}

	msg := chat.wait(t, p, "Slack message of the deployment", func(q hookRequest) bool {
		return strings.Contains(string(q.body), "deployed to")
	})
	var m notify.SlackMessage
	if err := json.Unmarshal(msg.body, &m); err != nil || msg.method != http.MethodPost {
		t.Fatalf("Slack got %s %s: %v", msg.method, msg.body, err)
	}
	for _, want := range []string{"*demo*", "deployed to <" + p.gw + "/dev/|dev>", store.Short(b.Release)} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("Slack message %q; want %q in it", m.Text, want)
		}
	}
	// The deliveries show in ferry's metrics.
	req, _ := http.NewRequest("GET", p.api+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+serveToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ferry_notices_delivered_total{sink="webhook"}`, `ferry_notices_pending{sink="slack"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if strings.Contains(string(metrics), `ferry_notices_delivered_total{sink="webhook"} 0`) {
		t.Errorf("/metrics counts no delivery to the webhook:\n%s", metrics)
	}
	if strings.Contains(p.output.String(), "secret-path") || strings.Contains(p.output.String(), secret) {
		t.Errorf("ferry serve's log shows a notification's secret:\n%s", p.output)
	}
}
