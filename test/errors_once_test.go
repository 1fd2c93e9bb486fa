package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/saysonce"
	"github.com/ferrycd/ferry/test/gitserver"
)

// TestFailuresSayEachThingOnce provokes the failures people meet first
// through the binary (a function that dies at start, a secret that is not
// set, a build or a test that fails, a manifest that does not load, a stage ferry
// does not have) and refused CLI calls, and checks that every message
// ferry gives about them, in runs, promotions, its log and the CLI, says
// each thing once.
func TestFailuresSayEachThingOnce(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	broken := map[string]func(dir string){
		"crash": func(dir string) {
			write(t, dir, "hello/main.py", "raise RuntimeError('boom at start')\n")
			os.Remove(filepath.Join(dir, "hello", "test_main.py"))
		},
		"nosecret": func(dir string) {
			edit(t, dir, "ferry.yaml", "  timeout: 10s\n", "  timeout: 10s\n  env: {API_KEY: {valueFrom: {secret: api-key}}}\n")
		},
		"nobuild": func(dir string) {
			write(t, dir, "hello/main.py", "def handle(req:\n")
			os.Remove(filepath.Join(dir, "hello", "test_main.py"))
		},
		"nostage": func(dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "ferry.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, "ferry.yaml", string(b)+"---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages:\n  - {name: qa, auto: true}\n")
		},
		"failtest": func(dir string) {
			write(t, dir, "hello/test_main.py", "import unittest\n\nclass T(unittest.TestCase):\n    def test_fails(self):\n        self.assertEqual(1, 2)\n")
		},
		"badyaml": func(dir string) {
			edit(t, dir, "ferry.yaml", "  timeout: 10s\n", "  timeout: 10s\n  colour: blue\n")
		},
	}
	var sources []string
	for name, change := range broken {
		url, _ := pythonRepo(t, srv, name, change)
		sources = append(sources, fmt.Sprintf(`- {name: %s, url: %q, branch: main, interval: 1h}`, name, url))
	}
	p := startServe(t, writeServeConfig(t, strings.Join(sources, "\n")))
	c := p.client(t)

	// Every source's run ends (each fails) within a bound that only
	// catches a hang.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		runs, err := c.Runs(t.Context(), "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		ended := map[string]bool{}
		for _, r := range runs.Items {
			if r.Status != "queued" && r.Status != "running" {
				ended[r.Source] = true
			}
		}
		if len(ended) == len(broken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs did not end within 5 minutes:\n%s", p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}

	said := 0
	check := func(what, msg string) {
		t.Helper()
		if msg != "" {
			said++
			saysonce.Check(t, what, msg)
		}
	}
	runs, err := c.Runs(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs.Items {
		full, err := c.Run(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if full.Status != "failed" {
			t.Errorf("run %d of %s: %s, want failed", r.ID, r.Source, full.Status)
		}
		check(fmt.Sprintf("run %d of %s", r.ID, r.Source), full.Reason)
		for _, s := range full.Steps {
			check(fmt.Sprintf("step %s of run %d", s.Name, r.ID), s.Reason)
		}
	}
	proms, err := c.Promotions(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range proms.Items {
		check(fmt.Sprintf("promotion %d", pr.ID), pr.Reason)
	}
	// The CLI's answers to what fails at once.
	url := strings.Replace(strings.Split(strings.Split(sources[0], "url: \"")[1], "\"")[0], "/"+firstName(sources[0]), "/missing", 1)
	if r := ferry(t, "sources", "add", "missing", url, "--server", p.api, "--token", serveToken); r.code != 0 {
		t.Fatalf("adding a source: %s", r.stderr)
	}
	for _, args := range [][]string{
		{"sources", "sync", "missing"},
		{"sources", "sync", "nowhere"},
		{"freeze", "nowhere", "--reason", "x"},
		{"promote", "0123456789ab", "--to", "staging"},
		{"rollback", "staging"},
		{"secrets", "delete", "dev", "api-key"},
	} {
		r := ferry(t, append(args, "--server", p.api, "--token", serveToken)...)
		if r.code == 0 {
			t.Errorf("ferry %s worked", strings.Join(args, " "))
		}
		check("ferry "+strings.Join(args, " "), strings.TrimSpace(r.stderr))
	}
	for _, line := range strings.Split(p.output.String(), "\n") {
		check("ferry serve's log", line)
	}
	if said < 2*len(broken) {
		t.Errorf("only %d messages to check; the failures did not happen as planned:\n%s", said, p.runsReport(t))
	}
	if t.Failed() {
		t.Logf("runs:\n%s", p.runsReport(t))
	}
}

// firstName is the name of a source line of the configuration.
func firstName(line string) string {
	return strings.TrimSuffix(strings.Fields(line)[2], ",")
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// edit replaces old with new in dir's file name; old must be there.
func edit(t *testing.T, dir, name, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", name, old)
	}
	write(t, dir, name, strings.Replace(string(b), old, new, 1))
}
