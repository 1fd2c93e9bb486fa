package test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// readmeRepo pushes a repository of one README commit to srv (no
// manifest: its runs fail at once, which is all these tests need) and
// returns a clone to work in.
func readmeRepo(t *testing.T, srv *gitserver.Server, name string) (url, work string) {
	t.Helper()
	url = srv.Create(t, name)
	work = t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "one")
	gitserver.Git(t, work, "remote", "add", "origin", srv.PushURL(url))
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return url, work
}

// pushLine commits another line to README and pushes; it returns the commit.
func pushLine(t *testing.T, work, line string) string {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(work, "README"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, line)
	f.Close()
	gitserver.Git(t, work, "commit", "-q", "-a", "-m", line)
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
}

// deliver sends a signed GitHub push for refs/heads/main and returns the
// status and the decoded answer.
func deliver(t *testing.T, api, source, secret, delivery string) (int, map[string]any) {
	t.Helper()
	body := []byte(`{"ref":"refs/heads/main","before":"` + strings.Repeat("0", 40) + `","after":"` + strings.Repeat("f", 40) + `","deleted":false,"repository":{"full_name":"dev/demo"}}`)
	code, b := githubPushReply(t, api, source, secret, delivery, body)
	var reply map[string]any
	json.Unmarshal(b, &reply)
	return code, reply
}

// stop ends ferry serve with SIGTERM and waits for it.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("ferry serve did not stop on SIGTERM:\n%s", p.output)
	}
}

// waitSource polls the API until ok(source) holds.
func waitSource(t *testing.T, p *serveProc, name string, ok func(server.SourceView) bool) server.SourceView {
	t.Helper()
	c := p.client(t)
	var last server.SourceView
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		srcs, err := c.Sources(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range srcs {
			if s.Name == name {
				if last = s; ok(s) {
					return s
				}
			}
		}
	}
	t.Fatalf("source %s did not get there: %+v\n%s", name, last, p.output)
	return last
}

// grepFiles fails the test for each file under dir that holds a value.
func grepFiles(t *testing.T, dir string, values map[string]string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for what, v := range values {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds the %s in the clear", path, what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestServeKeepsNoSecretInTheClear adds sources with every kind of secret,
// through the configuration ($VAR and written out) and through the API
// (password, webhook secret, SSH key), uses them (a fetch with the Git
// password, signed webhooks), and then reads every file under the data
// folder (the database, its -wal and -shm, logs, mirrors) and ferry's own
// output: no secret value appears in any, while ferry runs or after.
func TestServeKeepsNoSecretInTheClear(t *testing.T) {
	const gitPassword = "git-password-at-rest-3f7a"
	srv := gitserver.Start(t, "git-user", gitPassword)
	url, _ := readmeRepo(t, srv, "demo")
	secrets := map[string]string{
		"Git password":                     gitPassword,
		"webhook secret from $HOOK_SECRET": "env-webhook-secret-1c9e",
		"webhook secret written out":       "config-literal-secret-8d2b",
		"API password":                     "api-password-5e1b",
		"API webhook secret":               "api-webhook-secret-2a4d",
		"API token":                        serveToken,
	}
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, interval: 1h, username: git-user, password: $GIT_PASSWORD, webhookSecret: $HOOK_SECRET}
- {name: lit, url: %q, interval: 1h, username: git-user, password: $GIT_PASSWORD, webhookSecret: %s}`, url, url, secrets["webhook secret written out"]))
	p := startServe(t, cfg, "GIT_PASSWORD="+gitPassword, "HOOK_SECRET="+secrets["webhook secret from $HOOK_SECRET"])
	c := p.client(t)

	// An SSH key given through the API; its body must not be stored.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(block))
	keyLines := strings.Split(strings.TrimSpace(keyPEM), "\n")
	secrets["API SSH key"] = keyLines[1]
	if _, err := c.AddSource(t.Context(), server.SourceRequest{Name: "apihttp", URL: "http://127.0.0.1:1/x.git", Interval: "1h",
		Username: "u", Password: secrets["API password"], WebhookSecret: secrets["API webhook secret"]}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddSource(t.Context(), server.SourceRequest{Name: "apissh", URL: "ssh://git@127.0.0.1:1/x.git", Interval: "1h", SSHKey: keyPEM}); err != nil {
		t.Fatal(err)
	}

	// The secrets work: the fetch used the password, the webhooks verify.
	waitSource(t, p, "demo", func(s server.SourceView) bool { return s.LastCommit != "" })
	for src, secret := range map[string]string{"demo": secrets["webhook secret from $HOOK_SECRET"], "lit": secrets["webhook secret written out"], "apihttp": secrets["API webhook secret"]} {
		if code, reply := deliver(t, p.api, src, secret, "at-rest-"+src); code != 202 {
			t.Errorf("a webhook signed with %s's secret: %d %v", src, code, reply)
		}
	}

	data := filepath.Join(filepath.Dir(cfg.path), "data")
	for _, f := range []string{"ferry.db", "ferry.db-wal", "ferry.db-shm"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("%s: %v (the test must read it)", f, err)
		}
	}
	grepFiles(t, data, secrets)
	p.stop(t)
	if n := grepFiles(t, data, secrets); n < 3 {
		t.Errorf("only %d files under the data folder", n)
	}
	for what, v := range secrets {
		if strings.Contains(p.output.String(), v) {
			t.Errorf("ferry serve's output shows the %s", what)
		}
	}
	// The key that seals them is ferry's alone.
	if info, err := os.Stat(filepath.Join(data, "secret.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret.key: %v %v", info, err)
	}
}

// TestServeWebhookReplayAfterRestart delivers a signed webhook, restarts
// ferry serve, and replays the same delivery: the answer is a duplicate
// and nothing happens (no fetch, no run, no audit record), although a new
// commit waits in Git. A new delivery then does fetch it, which shows the
// replay would have been seen.
func TestServeWebhookReplayAfterRestart(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, work := readmeRepo(t, srv, "demo")
	const secret = "replay-webhook-secret"
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, interval: 1h, webhookSecret: %s}`, url, secret))
	p := startServe(t, cfg)
	waitSource(t, p, "demo", func(s server.SourceView) bool { return s.LastCommit != "" })

	second := pushLine(t, work, "two")
	if code, reply := deliver(t, p.api, "demo", secret, "delivery-R"); code != 202 {
		t.Fatalf("the delivery answered %d %v", code, reply)
	}
	waitSource(t, p, "demo", func(s server.SourceView) bool { return s.LastCommit == second })
	p.stop(t)

	restarted := time.Now()
	p = startServe(t, cfg)
	c := p.client(t)
	// Let the fetch every start makes end before the new commit lands.
	before := waitSource(t, p, "demo", func(s server.SourceView) bool { return s.LastFetch.After(restarted) })
	third := pushLine(t, work, "three")
	runs, err := c.Runs(t.Context(), "demo", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	events, err := c.Events(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	logged := len(p.output.String())

	code, reply := deliver(t, p.api, "demo", secret, "delivery-R")
	if code != 200 || reply["duplicate"] != true || reply["sync"] != nil {
		t.Fatalf("the replay after a restart answered %d %v, want 200 and duplicate", code, reply)
	}
	after := waitSource(t, p, "demo", func(server.SourceView) bool { return true })
	if !after.LastFetch.Equal(before.LastFetch) || after.LastCommit != before.LastCommit {
		t.Errorf("the replay fetched: %+v, before %+v", after, before)
	}
	runsAfter, _ := c.Runs(t.Context(), "demo", 0, 0)
	eventsAfter, _ := c.Events(t.Context(), "", 0, 0)
	if len(runsAfter.Items) != len(runs.Items) || len(eventsAfter.Items) != len(events.Items) {
		t.Errorf("the replay changed runs (%d → %d) or the audit log (%d → %d)", len(runs.Items), len(runsAfter.Items), len(events.Items), len(eventsAfter.Items))
	}
	said := p.output.String()[logged:]
	if !strings.Contains(said, "delivery-R for source \"demo\" is a duplicate") || strings.Contains(said, "; syncing") || strings.Contains(said, "new head") {
		t.Errorf("ferry serve said after the replay:\n%s", said)
	}

	// A new delivery is not a duplicate, and brings the waiting commit.
	if code, reply := deliver(t, p.api, "demo", secret, "delivery-S"); code != 202 {
		t.Fatalf("a new delivery answered %d %v", code, reply)
	}
	waitSource(t, p, "demo", func(s server.SourceView) bool { return s.LastCommit == third })
}
