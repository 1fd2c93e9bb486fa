package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// envSecretsManifest is the repository of TestServeEnvSecrets: the Python
// example's function answering with what its environment holds (a digest
// of the secret, never the secret), a cron placed in staging only, and a
// pipeline of three automatic stages.
const envSecretsManifest = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec:
  runtime: python
  source: hello
  env:
    LOG_LEVEL: info
%s---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: hello}
spec: {function: hello, path: /hello}
---
apiVersion: ferry.dev/v1alpha1
kind: CronTrigger
metadata: {name: tick}
spec:
  function: hello
  schedule: "@every 1s"
  data: {tick: true}
  environments: [staging]
---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - {name: prod, auto: true}
`

const envSecretsHandler = `import hashlib
import os


def handle(event, context):
    data = event.get("data")
    if isinstance(data, dict) and data.get("tick"):
        print("cron tick", flush=True)
        return {"ok": True}
    secret = os.environ.get("DB_PASSWORD")
    return {
        "message": %q,
        "secret": hashlib.sha256(secret.encode()).hexdigest() if secret is not None else "unset",
        "level": os.environ.get("LOG_LEVEL", ""),
        "extra": os.environ.get("EXTRA", ""),
    }
`

// writeEnvSecretsRepo writes the function with greeting, referencing the
// secret db-password when withSecret.
func writeEnvSecretsRepo(t *testing.T, dir, greeting string, withSecret bool) {
	t.Helper()
	ref := ""
	if withSecret {
		ref = "    DB_PASSWORD: {valueFrom: {secret: db-password}}\n"
	}
	os.RemoveAll(filepath.Join(dir, "hello", "test_main.py"))
	if err := os.WriteFile(filepath.Join(dir, "ferry.yaml"), []byte(fmt.Sprintf(envSecretsManifest, ref)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello", "main.py"), []byte(fmt.Sprintf(envSecretsHandler, greeting)), 0o644); err != nil {
		t.Fatal(err)
	}
}

type envAnswer struct {
	Message, Secret, Level, Extra string
}

// waitAnswer polls GATEWAY/env/hello until ok accepts the answer.
func waitAnswer(t *testing.T, p *serveProc, env string, within time.Duration, ok func(envAnswer) bool) envAnswer {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		resp, err := http.Get(p.gw + "/" + env + "/hello")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var a envAnswer
			if resp.StatusCode == 200 && json.Unmarshal(body, &a) == nil && ok(a) {
				return a
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/hello: no expected answer within %s (last: %s)\n%s\nruns:\n%s", env, within, last, p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ferryIn runs the binary with stdin.
func ferryIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestServeEnvSecrets is points 10 and 11 of the first-hour issue with the
// real binary: a deploy that names a secret nobody set fails, saying which
// and how to set it, and dev keeps its release; ferry secrets set (value on
// stdin, one newline dropped) makes the next deploy work, and setting it
// again restarts dev's function with the new value; the configuration's
// override reaches prod only; the secret's value is in no output, file,
// export or answer of ferry; a cron placed in staging ticks there and never
// in dev; a restart of ferry with the secret deleted leaves dev down until
// it is set again.
func TestServeEnvSecrets(t *testing.T) {
	const value1, value2 = "s3cr3t-value-e2e-7c1d", "s3cr3t-value-e2e-rotated-90aa"
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "envs", func(dir string) { writeEnvSecretsRepo(t, dir, "v1", false) })
	gitops := srv.Create(t, "gitops")
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: envs, url: %q, branch: main, interval: 1s}`, url))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("- {name: prod}"), []byte("- {name: prod, auto: true, env: {LOG_LEVEL: warn}, functions: {hello: {env: {EXTRA: prod-only}}}}"), 1)
	b = append(b, fmt.Sprintf("- {name: viewer, token: e2e-viewer-token-0123456789, roles: [viewer]}\nexport: {url: %q, branch: main}\n", gitops)...)
	if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	c := p.client(t)
	cli := func(stdin string, args ...string) result {
		return ferryIn(t, stdin, append(args, "--server", p.api, "--token", serveToken)...)
	}

	// v1 names no secret: it runs everywhere, and only prod has the
	// configuration's override.
	waitAnswer(t, p, "prod", 120*time.Second, func(a envAnswer) bool { return a.Message == "v1" })
	dev := waitAnswer(t, p, "dev", 60*time.Second, func(a envAnswer) bool { return a.Message == "v1" })
	prod := waitAnswer(t, p, "prod", 60*time.Second, func(a envAnswer) bool { return a.Message == "v1" })
	if dev.Level != "info" || dev.Extra != "" || dev.Secret != "unset" {
		t.Errorf("dev's function env: %+v, want the manifest's LOG_LEVEL only", dev)
	}
	if prod.Level != "warn" || prod.Extra != "prod-only" {
		t.Errorf("prod's function env: %+v, want the overrides LOG_LEVEL=warn and EXTRA=prod-only", prod)
	}
	devV1 := liveRelease(t, c, "dev")

	// v2 names db-password, set nowhere: dev refuses it and keeps v1.
	writeEnvSecretsRepo(t, work, "v2", true)
	gitserver.Git(t, work, "commit", "-q", "-a", "-m", "read the password")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	want := "function hello in environment dev needs secret db-password (env DB_PASSWORD), not set in dev; set it with: ferry secrets set dev db-password"
	failed := func() bool {
		runs, err := c.Runs(t.Context(), "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs.Items {
			if r.Status == "failed" && strings.Contains(r.Reason, want) && strings.Contains(r.Reason, "the previous release keeps serving") {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(120 * time.Second); !failed(); {
		if time.Now().After(deadline) {
			t.Fatalf("no deploy failure saying %q:\n%s\nruns:\n%s", want, p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := liveRelease(t, c, "dev"); got != devV1 {
		t.Errorf("dev runs %s after the failed deploy, want %s still", got, devV1)
	}
	waitAnswer(t, p, "dev", 60*time.Second, func(a envAnswer) bool { return a.Message == "v1" })

	// The secret: names are checked, environments must exist, a viewer may
	// list but not set, the value comes from stdin with its newline dropped.
	if r := cli(value1+"\n", "secrets", "set", "dev", "no way"); r.code == 0 || !strings.Contains(r.stderr, "is not a valid secret name") {
		t.Errorf("a bad name: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(value1+"\n", "secrets", "set", "qa", "db-password"); r.code == 0 || !strings.Contains(r.stderr, "404") {
		t.Errorf("an unknown environment: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := ferryIn(t, value1, "secrets", "set", "dev", "db-password", "--server", p.api, "--token", "e2e-viewer-token-0123456789"); r.code == 0 || !strings.Contains(r.stderr, "lacks the admin role") {
		t.Errorf("a viewer set a secret: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(value1+"\n", "secrets", "set", "dev", "db-password"); r.code != 0 || !strings.Contains(r.stdout, "secret db-password of dev set") {
		t.Fatalf("ferry secrets set: %d %s%s", r.code, r.stdout, r.stderr)
	}

	// The next commit deploys to dev with the value; staging has no such
	// secret, refuses it, and keeps v1 (and its cron).
	writeEnvSecretsRepo(t, work, "v3", true)
	gitserver.Git(t, work, "commit", "-q", "-a", "-m", "v3")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	got := waitAnswer(t, p, "dev", 120*time.Second, func(a envAnswer) bool { return a.Message == "v3" })
	if got.Secret != digest(value1) {
		t.Errorf("dev's function read a secret with digest %s, want %s (the value without its newline)", got.Secret, digest(value1))
	}

	// Setting it again restarts dev's function with the new value.
	if r := cli(value2, "secrets", "set", "dev", "db-password"); r.code != 0 || !strings.Contains(r.stdout, "replaced") || !strings.Contains(r.stdout, "restarted") {
		t.Fatalf("ferry secrets set again: %d %s%s", r.code, r.stdout, r.stderr)
	}
	waitAnswer(t, p, "dev", 60*time.Second, func(a envAnswer) bool { return a.Message == "v3" && a.Secret == digest(value2) })

	// Listing shows names and times only, to a viewer too.
	r := ferryIn(t, "", "secrets", "list", "dev", "-o", "json", "--server", p.api, "--token", "e2e-viewer-token-0123456789")
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "db-password"`) || !strings.Contains(r.stdout, `"updated"`) {
		t.Errorf("ferry secrets list dev: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("", "secrets", "list", "staging"); r.code != 0 || !strings.Contains(r.stdout, "staging has no secrets") {
		t.Errorf("ferry secrets list staging: %d %s%s", r.code, r.stdout, r.stderr)
	}

	// The cron placed in staging ticks there, and never in dev.
	data := filepath.Join(filepath.Dir(cfg.path), "data")
	for deadline := time.Now().Add(60 * time.Second); ; {
		b, _ := os.ReadFile(filepath.Join(data, "logs", "staging", "hello.log"))
		if bytes.Count(b, []byte("cron tick")) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cron of staging did not tick twice in 60 s; staging's log:\n%s\n%s", b, p.output)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, env := range []string{"dev", "prod"} {
		if b, _ := os.ReadFile(filepath.Join(data, "logs", env, "hello.log")); bytes.Contains(b, []byte("cron tick")) {
			t.Errorf("the cron placed in staging ticked in %s:\n%s", env, b)
		}
	}

	// A restart without the secret leaves dev down, saying why; setting it
	// brings dev's release back.
	if r := cli("", "secrets", "delete", "dev", "db-password"); r.code != 0 || !strings.Contains(r.stdout, "deleted") {
		t.Fatalf("ferry secrets delete: %d %s%s", r.code, r.stdout, r.stderr)
	}
	p.stop(t)
	outputs := p.output.String()
	p = startServe(t, cfg)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(p.output.String(), "environment dev: starting its release"); {
		if time.Now().After(deadline) {
			t.Fatalf("dev started again without its secret:\n%s", p.output)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(p.output.String(), "needs secret db-password") {
		t.Errorf("the restart does not say which secret dev lacks:\n%s", p.output)
	}
	if r := cli(value1, "secrets", "set", "dev", "db-password"); r.code != 0 || !strings.Contains(r.stdout, "restarted") {
		t.Fatalf("ferry secrets set after the restart: %d %s%s", r.code, r.stdout, r.stderr)
	}
	waitAnswer(t, p, "dev", 60*time.Second, func(a envAnswer) bool { return a.Message == "v3" && a.Secret == digest(value1) })

	// Nothing of ferry holds the value: its output, every file of its data
	// folder (database, registry blobs, logs), the export, the answers.
	secrets := map[string]string{"secret": value1, "rotated secret": value2}
	var answers bytes.Buffer
	for _, args := range [][]string{{"status"}, {"releases", "-o", "json"}, {"secrets", "list", "dev", "-o", "json"}, {"history", "dev", "-o", "json"}} {
		r := cli("", args...)
		answers.WriteString(r.stdout + r.stderr)
	}
	for _, path := range []string{"/api/v1/environments", "/api/v1/releases", "/api/v1/events"} {
		req, _ := http.NewRequest("GET", p.api+path, nil)
		req.Header.Set("Authorization", "Bearer "+serveToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(&answers, resp.Body)
			resp.Body.Close()
		}
	}
	clone := filepath.Join(t.TempDir(), "gitops")
	gitserver.Git(t, "", "clone", "-q", gitops, clone)
	p.stop(t)
	outputs += p.output.String()
	for what, v := range secrets {
		if strings.Contains(outputs, v) {
			t.Errorf("ferry serve's output holds the %s", what)
		}
		if strings.Contains(answers.String(), v) {
			t.Errorf("an API answer holds the %s", what)
		}
	}
	if !strings.Contains(answers.String(), "db-password") {
		t.Errorf("the answers do not even name the secret:\n%s", answers.String())
	}
	if n := grepFiles(t, data, secrets); n < 10 {
		t.Errorf("only %d files under the data folder; is it the right one?", n)
	}
	exported, err := os.ReadFile(filepath.Join(clone, "environments", "dev", "ferry.yaml"))
	if err != nil {
		t.Fatalf("the export has no dev release: %v", err)
	}
	if !strings.Contains(string(exported), "secret: db-password") {
		t.Errorf("the export's dev release does not hold the reference:\n%s", exported)
	}
	grepFiles(t, clone, secrets)
}
