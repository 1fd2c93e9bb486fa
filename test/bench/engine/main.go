package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/bench/figures"
	"github.com/ferrycd/ferry/test/gitserver"
)

const (
	token         = "bench-token-0123456789abcdef"
	webhookSecret = "bench-webhook-secret"
	targetWebhook = 2000 // ms
	targetPoll    = 3000 // ms
	targetCPU     = 10.0 // % of one core
)

func main() {
	var (
		ferry    = flag.String("ferry", "", "the ferry binary (required)")
		root     = flag.String("root", ".", "ferry's repository, for examples/")
		data     = flag.String("data", "", "scratch folder (required)")
		runs     = flag.Int("runs", 5, "commits timed per way")
		sources  = flag.Int("sources", 200, "sources of the watcher load")
		interval = flag.Duration("interval", 30*time.Second, "their poll interval")
		watch    = flag.Duration("watch", 2*time.Minute, "how long their CPU is measured")
		storm    = flag.Int("storm", 0, "instead of the figures above, a storm: this many sources (storm.go)")
		commits  = flag.Int("storm-commits", 5, "commits pushed to each source in the storm")
		sample   = flag.Duration("storm-sample", 500*time.Millisecond, "how often the storm reads /metrics")
		previews = flag.Int("previews", 0, "instead of the figures above, previews: this many pull requests opened and timed (previews.go)")
		live     = flag.Int("previews-live", 20, "previews running at once when the memory is read")
		pvPoll   = flag.Duration("previews-poll", 25*time.Millisecond, "how often a timed preview's URL is called")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{ferry: *ferry, root: *root, data: *data}
	err := errors.New("-ferry and -data are required")
	switch {
	case *ferry == "" || *data == "":
	case *storm > 0:
		err = b.storm(ctx, *storm, *commits, *sample)
	case *previews > 0:
		err = b.previews(ctx, *previews, max(*live, *previews), *pvPoll)
	default:
		err = b.run(ctx, *runs, *sources, *interval, *watch)
	}
	b.stopServe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "engine: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	ferry, root, data string
	gitURL            string
	serve             *exec.Cmd
	serveDone         chan error
	api, gw           string
}

func (b *bench) run(ctx context.Context, runs, sources int, interval, watch time.Duration) error {
	started := time.Now()
	if err := b.startGitServer(); err != nil {
		return err
	}

	// (a) and (b): one ferry serve, two sources, each deploying to an
	// environment of its own (its repository's Pipeline names it).
	webWork, err := b.pythonRepo("web", "web-dev", false)
	if err != nil {
		return err
	}
	pollWork, err := b.pythonRepo("poll", "poll-dev", false)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`sources:
- {name: web, url: %s/web.git, interval: 1h, webhookSecret: %s}
- {name: poll, url: %s/poll.git, interval: 1s}
environments:
- {name: web-dev}
- {name: poll-dev}
`, b.gitURL, webhookSecret, b.gitURL)
	if err := b.startServe(ctx, "latency", cfg); err != nil {
		return err
	}
	fmt.Printf("method    %d commits per way, each changing the Python example's greeting; time from `git push` to the first answer of the new code; medians\n", runs)
	for _, env := range []string{"web-dev", "poll-dev"} {
		if err := b.waitMessage(ctx, env, "hello from python", 3*time.Minute); err != nil {
			return fmt.Errorf("first deploy: %w", err)
		}
	}
	var web, poll []float64
	for i := 1; i <= runs; i++ {
		ms, err := b.commitToServing(ctx, webWork, "web", "web-dev", i, true)
		if err != nil {
			return err
		}
		web = append(web, ms)
		ms, err = b.commitToServing(ctx, pollWork, "poll", "poll-dev", i, false)
		if err != nil {
			return err
		}
		poll = append(poll, ms)
		fmt.Printf("latency   %d/%d  webhook %6.0f ms  poll (1 s) %6.0f ms\n", i, runs, web[len(web)-1], poll[len(poll)-1])
	}
	webP50, pollP50 := figures.Median(web), figures.Median(poll)
	b.stopServe()

	// (c): many sources, nothing new to fetch.
	cpu, err := b.watcherLoad(ctx, sources, interval, watch)
	if err != nil {
		return err
	}

	fmt.Printf("target    webhook p50 %.0f ms <= %d ms: %s\n", webP50, targetWebhook, figures.Verdict(webP50 <= targetWebhook))
	fmt.Printf("target    poll p50 %.0f ms <= %d ms: %s\n", pollP50, targetPoll, figures.Verdict(pollP50 <= targetPoll))
	fmt.Printf("target    watcher CPU %.1f%% < %.0f%% of one core: %s\n", cpu, targetCPU, figures.Verdict(cpu < targetCPU))
	fmt.Printf("total     took %d s\n", int(time.Since(started).Seconds()))
	fmt.Printf("engine: webhook_p50_ms=%.0f poll_p50_ms=%.0f watcher_cpu_pct=%.1f\n", webP50, pollP50, cpu)
	return nil
}

// startGitServer serves the repositories under data/git over smart HTTP.
func (b *bench) startGitServer() error {
	gitRoot := filepath.Join(b.data, "git")
	if err := os.MkdirAll(gitRoot, 0o755); err != nil {
		return err
	}
	h, err := gitserver.Handler(gitRoot, "", "")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, h)
	b.gitURL = "http://" + ln.Addr().String()
	return nil
}

// git runs git in dir with a fixed identity and no host configuration.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// bareRepo makes name.git on the Git server, pushable over HTTP.
func (b *bench) bareRepo(name string) error {
	dir := filepath.Join(b.data, "git", name+".git")
	if _, err := git("", "init", "-q", "--bare", "-b", "main", dir); err != nil {
		return err
	}
	_, err := git(dir, "config", "http.receivepack", "true")
	return err
}

// pythonRepo pushes examples/python, with a Pipeline whose one stage is
// env (and which enables previews with previews), as repository name; it
// returns the work tree.
func (b *bench) pythonRepo(name, env string, previews bool) (string, error) {
	if err := b.bareRepo(name); err != nil {
		return "", err
	}
	work := filepath.Join(b.data, "work", name)
	if err := os.CopyFS(work, os.DirFS(filepath.Join(b.root, "examples", "python"))); err != nil {
		return "", err
	}
	f, err := os.OpenFile(filepath.Join(work, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(f, "---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages:\n  - {name: %s, auto: true}\n", env)
	msg := "the python example"
	if previews {
		fmt.Fprintf(f, "  previews: {enabled: true}\n")
		msg += ", previews on"
	}
	f.Close()
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", msg},
		{"remote", "add", "origin", b.gitURL + "/" + name + ".git"}, {"push", "-q", "origin", "main"},
	} {
		if _, err := git(work, args...); err != nil {
			return "", err
		}
	}
	return work, nil
}

var greetingRE = regexp.MustCompile(`"message": "[^"]*"`)

// setGreeting sets the Python example's greeting in work and commits it
// on the branch checked out.
func setGreeting(work, greeting string) error {
	p := filepath.Join(work, "hello", "main.py")
	code, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, greetingRE.ReplaceAll(code, []byte(`"message": "`+greeting+`"`)), 0o644); err != nil {
		return err
	}
	_, err = git(work, "commit", "-q", "-am", greeting)
	return err
}

// commitToServing changes the greeting, commits, pushes (and with webhook
// sends a signed GitHub push webhook), and returns the ms from the push
// until the gateway answers with the new greeting.
func (b *bench) commitToServing(ctx context.Context, work, source, env string, n int, webhook bool) (float64, error) {
	greeting := fmt.Sprintf("hello number %d from %s", n, source)
	if err := setGreeting(work, greeting); err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := git(work, "push", "-q", "origin", "main"); err != nil {
		return 0, err
	}
	if webhook {
		if err := b.webhook(source, n); err != nil {
			return 0, err
		}
	}
	if err := b.waitMessage(ctx, env, greeting, time.Minute); err != nil {
		return 0, err
	}
	return float64(time.Since(start).Microseconds()) / 1000, nil
}

func (b *bench) webhook(source string, n int) error {
	body := []byte(`{"ref":"refs/heads/main","deleted":false}`)
	resp, err := b.postHook(source, "push", fmt.Sprintf("bench-%d", n), body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}

// postHook sends body to source's GitHub webhook as a delivery of event,
// signed with webhookSecret; delivery prefixes its unique id.
func (b *bench) postHook(source, event, delivery string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest("POST", b.api+"/hooks/github/"+source, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("%s-%d", delivery, time.Now().UnixNano()))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return http.DefaultClient.Do(req)
}

// waitMessage polls GATEWAY/env/hello every 5 ms until its message is want.
func (b *bench) waitMessage(ctx context.Context, env, want string, within time.Duration) error {
	return b.waitMessageEvery(ctx, env, want, within, 5*time.Millisecond)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServe writes a configuration with the given sources and
// environments and starts ferry serve on it, waiting for its API.
func (b *bench) startServe(ctx context.Context, name, body string) error {
	dir := filepath.Join(b.data, "serve-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	api, err := freeAddr()
	if err != nil {
		return err
	}
	gw, err := freeAddr()
	if err != nil {
		return err
	}
	reg, err := freeAddr()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf("listen: %s\ngateway: %s\nregistryListen: %s\ndataDir: data\ntokens:\n- {name: bench, token: %s, roles: [admin]}\n%s", api, gw, reg, token, body)
	path := filepath.Join(dir, "ferry-serve.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(b.ferry, "serve", "--config", path)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if err := cmd.Start(); err != nil {
		return err
	}
	b.serve, b.serveDone = cmd, make(chan error, 1)
	go func() { b.serveDone <- cmd.Wait(); log.Close() }()
	b.api, b.gw = "http://"+api, "http://"+gw
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if resp, err := http.Get(b.api + "/healthz"); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-b.serveDone:
			b.serve = nil
			out, _ := os.ReadFile(log.Name())
			return fmt.Errorf("ferry serve exited (%v): %s", err, out)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("ferry serve did not answer within a minute")
}

func (b *bench) stopServe() {
	if b.serve == nil {
		return
	}
	b.serve.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.serveDone:
	case <-time.After(30 * time.Second):
		b.serve.Process.Kill()
		<-b.serveDone
	}
	b.serve = nil
}

// watcherLoad serves n repositories with one commit each (no ferry.yaml,
// so each first run ends at validate and builds nothing), starts ferry
// serve polling them all at interval, waits until every first run has
// ended, then measures the CPU ferry serve uses for d: the watcher's cost
// when nothing changes.
func (b *bench) watcherLoad(ctx context.Context, n int, interval, d time.Duration) (float64, error) {
	var cfg strings.Builder
	cfg.WriteString("sources:\n")
	seed := filepath.Join(b.data, "work", "seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(seed, "README"), []byte("nothing to build\n"), 0o644); err != nil {
		return 0, err
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "seed"}} {
		if _, err := git(seed, args...); err != nil {
			return 0, err
		}
	}
	for i := range n {
		name := fmt.Sprintf("s%03d", i)
		if err := b.bareRepo(name); err != nil {
			return 0, err
		}
		if _, err := git(seed, "push", "-q", b.gitURL+"/"+name+".git", "main"); err != nil {
			return 0, err
		}
		fmt.Fprintf(&cfg, "- {name: %s, url: %s/%s.git, interval: %s}\n", name, b.gitURL, name, interval)
	}
	if err := b.startServe(ctx, "load", cfg.String()); err != nil {
		return 0, err
	}
	defer b.stopServe()
	c, err := server.NewClient(b.api, token)
	if err != nil {
		return 0, err
	}
	settle := time.Now()
	for {
		p, err := c.Runs(ctx, "", 500, 0)
		if err != nil {
			return 0, err
		}
		ended := 0
		for _, r := range p.Items {
			if r.Status != "queued" && r.Status != "running" {
				ended++
			}
		}
		if ended >= n {
			break
		}
		if time.Since(settle) > 5*time.Minute {
			return 0, fmt.Errorf("after 5 minutes %d of %d first runs had ended", ended, n)
		}
		time.Sleep(time.Second)
	}
	fmt.Printf("watcher   %d sources every %s: first fetches and runs took %.1f s (not counted)\n", n, interval, time.Since(settle).Seconds())
	pid := b.serve.Process.Pid
	t0, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	w0 := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	t1, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	wall := time.Since(w0)
	pct := 100 * t1.Sub(t0).Seconds() / wall.Seconds()
	fmt.Printf("watcher   ferry serve used %.2f s of CPU in %.0f s: %.1f%% of one core\n", t1.Sub(t0).Seconds(), wall.Seconds(), pct)
	return pct, nil
}

// cpuTime is the user plus system time of process pid so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func cpuTime(pid int) (cpu, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading ferry serve's CPU time: %w (the watcher figure needs Linux's /proc)", err)
	}
	// why: the command name (field 2) may hold spaces; fields count from
	// the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return cpu(utime + stime), nil
}

// cpu is CPU time in clock ticks (USER_HZ, 100 on Linux).
type cpu int64

func (c cpu) Sub(o cpu) time.Duration { return time.Duration(c-o) * 10 * time.Millisecond }
