package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// Pull requests opened past previews.max, pushed to, closed and reopened
// in a row: the cap holds, and once every request is closed no preview's
// function process is left.
func TestPreviewChurnLeavesNoProcess(t *testing.T) {
	const secret = "churn-secret"
	srv := gitserver.Start(t, "", "")
	on := `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata: {name: default}
spec:
  previews: {enabled: true}
  stages:
  - {name: dev, auto: true}
`
	url, work := pythonRepo(t, srv, "demo", func(dir string) {
		os.WriteFile(filepath.Join(dir, "hello", "main.py"), []byte(greeter("main")), 0o644)
		os.WriteFile(filepath.Join(dir, "hello", "test_main.py"), []byte(greeterTest), 0o644)
		os.MkdirAll(filepath.Join(dir, ".ferry"), 0o755)
		os.WriteFile(filepath.Join(dir, ".ferry", "pipeline.yaml"), []byte(on), 0o644)
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1s, webhookSecret: %s}`, url, secret))
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "previews: {max: 2}")
	f.Close()
	p := startServe(t, cfg)
	waitGreeting(t, p, "main", 2*time.Minute)
	pid := p.cmd.Process.Pid
	base := descendants(pid, "ferry_invoker.py")

	hook := func(action string, n int) {
		t.Helper()
		code, answer := pullHook(t, p.api, "demo", secret, fmt.Sprintf("%s-%d-%d", action, n, time.Now().UnixNano()), action, n, "acme/demo")
		if code >= 300 {
			t.Fatalf("%s #%d: %d %s", action, n, code, answer)
		}
	}
	live := func() int {
		t.Helper()
		list, err := p.client(t).Previews(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range list {
			if x.State != "torn down" {
				n++
			}
		}
		return n
	}
	for n := 1; n <= 4; n++ {
		pushPullFiles(t, work, n, map[string]string{"hello/main.py": greeter(fmt.Sprintf("PR %d", n))})
		hook("opened", n)
		waitGreetingAt(t, p, fmt.Sprintf("%s/pr-%d-demo/hello", p.gw, n), fmt.Sprintf("PR %d", n), 2*time.Minute)
		if l := live(); l > 2 {
			t.Errorf("after #%d: %d previews live; previews.max is 2", n, l)
		}
	}
	// A push to #4 (its old instance kept warm), then a close and a reopen.
	pushPullFiles(t, work, 4, map[string]string{"hello/main.py": greeter("PR 4 again")})
	hook("synchronize", 4)
	waitGreetingAt(t, p, p.gw+"/pr-4-demo/hello", "PR 4 again", 2*time.Minute)
	// The count below can fail: the previews' functions run now.
	if running := descendants(pid, "ferry_invoker.py"); len(running) <= len(base) {
		t.Fatalf("function processes before the requests %v, with two previews live %v: the count sees none of theirs", base, running)
	}
	hook("closed", 4)
	hook("reopened", 4)
	waitGreetingAt(t, p, p.gw+"/pr-4-demo/hello", "PR 4 again", 2*time.Minute)
	for n := 1; n <= 4; n++ {
		hook("closed", n)
	}
	if l := live(); l != 0 {
		t.Errorf("%d previews live after every request closed", l)
	}
	deadline := time.Now().Add(60 * time.Second) // only to catch a leak that never ends
	for {
		left := descendants(pid, "ferry_invoker.py")
		if len(left) <= len(base) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("function processes before the requests %v, after they all closed %v", base, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _ := getBody(p.gw + "/pr-3-demo/hello"); code != 404 {
		t.Errorf("a closed request's preview answers %d", code)
	}
}
