package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// logLine is one line of ferry serve --log-format json.
type logLine map[string]any

func (l logLine) str(key string) string { s, _ := l[key].(string); return s }

// jsonLines parses every line of out; a line that is not JSON fails the
// test, as a log collector would choke on it.
func jsonLines(t *testing.T, out string) []logLine {
	t.Helper()
	var lines []logLine
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		var l logLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("ferry serve --log-format json wrote a line that is not JSON: %q (%v)", s, err)
		}
		lines = append(lines, l)
	}
	return lines
}

// findLine returns the first line whose fields hold every one of want.
func findLine(lines []logLine, want map[string]string) (logLine, bool) {
next:
	for _, l := range lines {
		for k, v := range want {
			if l.str(k) != v {
				continue next
			}
		}
		return l, true
	}
	return nil, false
}

// waitLine waits until ferry serve logged a line with want's fields.
func waitLine(t *testing.T, p *serveProc, want map[string]string, within time.Duration) logLine {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if l, ok := findLine(jsonLines(t, p.output.String()), want); ok {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry serve logged no line with %v within %s:\n%s", want, within, p.output)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promoteStory starts ferry serve (with args) on a repository of the
// Python example whose pipeline is promotePipeline, with alice, bob and
// carol's tokens.
func promoteStory(t *testing.T, args ...string) (p *serveProc, cfg serveConfig, work string) {
	t.Helper()
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "shop", func(dir string) {
		f, err := os.OpenFile(filepath.Join(dir, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(promotePipeline)
		f.Close()
	})
	cfg = writeServeConfig(t, fmt.Sprintf(`- {name: shop, url: %q, branch: main, interval: 1s}`, url))
	cfg.args = args
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, fmt.Sprintf(`- {name: alice, token: %s, roles: [deployer, approver], email: alice@example.com}
- {name: bob, token: %s, roles: [approver]}
- {name: carol, token: %s, roles: [approver]}
`, aliceToken, bobToken, carolToken)...)
	if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, cfg), cfg, work
}

// commitFailingTest adds a test that fails and pushes it.
func commitFailingTest(t *testing.T, work string) {
	t.Helper()
	test := "import unittest\n\n\nclass Broken(unittest.TestCase):\n    def test_sum(self):\n        self.assertEqual(1 + 1, 3)\n"
	if err := os.WriteFile(filepath.Join(work, "hello", "test_broken.py"), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "a test that fails")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
}

// TestServeLogsOutcomes drives commits through dev, staging and prod's
// approval with ferry serve --log-format json, and reads its log as a
// log collector would: every line is JSON, and each outcome has its line
// with the fields that say to what it happened.
func TestServeLogsOutcomes(t *testing.T) {
	p, _, work := promoteStory(t, "--log-format", "json")
	c := func(token string) *server.Client {
		cl, err := server.NewClient(p.api, token)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	alice, bob, carol := c(aliceToken), c(bobToken), c(carolToken)
	cli := func(token string, args ...string) {
		t.Helper()
		if r := ferry(t, append(args, "--server", p.api, "--token", token)...); r.code != 0 {
			t.Fatalf("ferry %s: %d %s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}

	waitIn(t, p, "staging", "hello from python", 120*time.Second)
	first := pendingProd(t, p, alice, "")
	approve(t, bob, first.ID)
	approve(t, carol, first.ID)
	waitIn(t, p, "prod", "hello from python", 30*time.Second)
	v1 := liveRelease(t, alice, "prod")
	short := v1[len("sha256:") : len("sha256:")+12]

	// A release that fails staging's check, then a commit whose test fails.
	commitGreeting(t, work, "alice <alice@example.com>", "bye from alice")
	rolled := waitLine(t, p, map[string]string{"msg": "staging rolled back"}, 120*time.Second)
	cli(aliceToken, "freeze", "prod", "--reason", "audit week")
	cli(aliceToken, "unfreeze", "prod")
	commitFailingTest(t, work)
	failed := waitLine(t, p, map[string]string{"msg": "run finished", "status": "failed"}, 120*time.Second)

	lines := jsonLines(t, p.output.String())
	for _, want := range []map[string]string{
		{"msg": "run started", "source": "shop", "branch": "main"},
		{"msg": "release made", "release": short},
		{"msg": "deployed to dev", "env": "dev", "release": short},
		{"msg": "run finished", "status": "succeeded", "release": short},
		{"msg": "verification passed", "env": "dev", "release": short},
		{"msg": "deployed to staging", "env": "staging", "release": short, "actor": "ferry"},
		{"msg": "verification passed", "env": "staging", "release": short},
		{"msg": "waiting for 2 approvals", "env": "prod", "release": short},
		{"msg": "approved by bob", "env": "prod", "actor": "bob", "release": short},
		{"msg": "approved by carol", "env": "prod", "actor": "carol"},
		{"msg": "deployed to prod", "env": "prod", "release": short},
		{"msg": "verification failed", "env": "staging", "level": "WARN"},
		{"msg": "prod frozen", "env": "prod", "actor": "alice", "reason": "audit week"},
		{"msg": "prod unfrozen", "env": "prod", "actor": "alice"},
	} {
		if _, ok := findLine(lines, want); !ok {
			t.Errorf("no log line with %v", want)
		}
	}
	if l, _ := findLine(lines, map[string]string{"msg": "waiting for 2 approvals"}); l["approvals"] != 2.0 {
		t.Errorf("waiting for approvals: %v", l)
	}
	if rolled.str("release") != short || !strings.Contains(rolled.str("reason"), "greets") {
		t.Errorf("the rollback names the release it went back to and the failed check: %v", rolled)
	}
	if failed.str("step") != "test" || !strings.Contains(failed.str("error"), "test") || failed.str("level") != "WARN" {
		t.Errorf("a failed run names its step and first error: %v", failed)
	}
	if t.Failed() {
		t.Logf("ferry serve said:\n%s", p.output)
	}

	// The same story, told by ferry runs: where each run's release went.
	t.Run("runs show their release's fate", func(t *testing.T) {
		runsShowFate(t, p, alice, v1)
	})
}

// runsShowFate checks ferry runs after TestServeLogsOutcomes's story: the
// first release went everywhere, the second was rolled back in staging,
// the third run failed its test and made no release.
func runsShowFate(t *testing.T, p *serveProc, c *server.Client, v1 string) {
	runs, err := c.Runs(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var first, second, broken server.RunView
	for _, r := range runs.Items {
		switch {
		case r.Status == "failed":
			broken = r
		case r.Release == v1:
			first = r
		case r.Status == "succeeded" && r.Release != "":
			second = r
		}
	}
	if first.ID == 0 || second.ID == 0 || broken.ID == 0 {
		t.Fatalf("runs: %+v", runs.Items)
	}
	cli := func(args ...string) result {
		return ferry(t, append(args, "--server", p.api, "--token", serveToken)...)
	}
	r := cli("runs")
	if r.code != 0 {
		t.Fatalf("ferry runs: %d %s", r.code, r.stderr)
	}
	narrow := func(out string) {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if n := utf8.RuneCountInString(l); n > 100 {
				t.Errorf("a line of %d columns:\n%s", n, l)
			}
		}
	}
	narrow(r.stdout)
	for id, want := range map[int64]string{first.ID: "dev ✔, staging ✔, prod ✔", second.ID: "dev ✔, staging rolled back  verification failed"} {
		if line := lineOf(r.stdout, fmt.Sprint(id)+" "); !strings.Contains(line, want) {
			t.Errorf("ferry runs: run %d's line %q lacks %q\n%s", id, line, want, r.stdout)
		}
	}
	r = cli("runs", fmt.Sprint(second.ID))
	narrow(r.stdout)
	if r.code != 0 || !strings.Contains(lineOf(r.stdout, "staging "), "rolled back  verification failed") ||
		!strings.Contains(lineOf(r.stdout, "staging "), "greets") || !strings.Contains(lineOf(r.stdout, "dev "), "✔") {
		t.Errorf("ferry runs %d: %d\n%s%s", second.ID, r.code, r.stdout, r.stderr)
	}
	var asJSON server.RunView
	r = cli("runs", fmt.Sprint(first.ID), "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &asJSON); err != nil || len(asJSON.Fate) != 3 || asJSON.Fate[2].Environment != "prod" || asJSON.Fate[2].Status != "succeeded" {
		t.Errorf("ferry runs %d -o json: %v\n%s", first.ID, err, r.stdout)
	}

	if r := cli("runs", "logs", fmt.Sprint(broken.ID)); r.code == 0 || !strings.Contains(r.stderr, "failed") || !strings.Contains(r.stdout, "test") {
		t.Errorf("ferry runs logs of a failed run: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("runs", "logs", fmt.Sprint(first.ID)); r.code != 0 {
		t.Errorf("ferry runs logs of a run that succeeded: %d\n%s", r.code, r.stderr)
	}
}
