package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/bench/figures"
)

const (
	targetPreviewOpen = 3000 // ms, p50
	previewSource     = "app"
	previewRepo       = "octo-org/app" // the repository the payloads name
)

// previews serves one repository of the Python example whose Pipeline
// enables previews, starts ferry serve on it (webhook secret, hourly
// polling, previews.max live+5), waits for dev, then opens timed pull
// requests one after another and times each from the webhook until
// GATEWAY/pr-N-app/hello answers that request's greeting; then opens more
// until live previews run at once and reads ferry serve's RSS.
func (b *bench) previews(ctx context.Context, timed, live int, poll time.Duration) error {
	started := time.Now()
	if err := b.startGitServer(); err != nil {
		return err
	}
	work, err := b.pythonRepo(previewSource, "dev", true)
	if err != nil {
		return err
	}
	// why: a cap above live, so that no preview measured is evicted.
	cfg := fmt.Sprintf(`sources:
- {name: %s, url: %s/%s.git, interval: 1h, webhookSecret: %s}
environments:
- {name: dev}
previews: {max: %d}
`, previewSource, b.gitURL, previewSource, webhookSecret, live+5)
	if err := b.startServe(ctx, "previews", cfg); err != nil {
		return err
	}
	defer b.stopServe()
	if err := b.waitMessage(ctx, "dev", "hello from python", 3*time.Minute); err != nil {
		return fmt.Errorf("first deploy to dev: %w", err)
	}
	fmt.Printf("method    %d pull requests opened one after another, each changing the Python example's greeting; time from sending the signed pull_request webhook until GATEWAY/pr-N-%s/hello answers the request's greeting (polled every %s)\n",
		timed, previewSource, poll)

	var opened []float64
	t0 := time.Now()
	for n := 1; n <= timed; n++ {
		greeting, err := pushPull(work, n)
		if err != nil {
			return err
		}
		start := time.Now()
		answer, err := b.pullWebhook(n)
		if err != nil {
			return err
		}
		hooked := time.Since(start)
		env := store.PreviewName(previewSource, n)
		if err := b.waitMessageEvery(ctx, env, greeting, 3*time.Minute, poll); err != nil {
			return fmt.Errorf("pull request %d: %w", n, err)
		}
		ms := float64(time.Since(start).Microseconds()) / 1000
		opened = append(opened, ms)
		fmt.Printf("open      %2d/%d  %6.0f ms  (webhook answered in %.0f ms: %q)\n", n, timed, ms, float64(hooked.Microseconds())/1000, answer)
	}
	p50, p95 := figures.Median(opened), percentile(opened, 95)
	if err := b.profileRuns(ctx, t0); err != nil {
		fmt.Printf("profile   could not read the runs: %v\n", err)
	}

	// The rest, untimed, all at once: the figure is what ferry holds with
	// live previews running, not how fast it gets there.
	for n := timed + 1; n <= live; n++ {
		if _, err := pushPull(work, n); err != nil {
			return err
		}
		if _, err := b.pullWebhook(n); err != nil {
			return err
		}
	}
	if err := forEach(live, func(i int) error {
		n := i + 1
		return b.waitMessageEvery(ctx, store.PreviewName(previewSource, n), pullGreeting(n), 5*time.Minute, 200*time.Millisecond)
	}); err != nil {
		return fmt.Errorf("%d previews live: %w", live, err)
	}
	s, err := b.scrape(ctx)
	if err != nil {
		return err
	}
	rss := s["process_resident_memory_bytes"] / (1 << 20)
	if rss == 0 {
		return fmt.Errorf("ferry serve's /metrics has no process_resident_memory_bytes")
	}
	fmt.Printf("memory    %d previews answering at once (and dev): ferry serve's RSS %.0f MiB, %.0f goroutines, %.0f open descriptors\n",
		live, rss, s["go_goroutines"], s["process_open_fds"])
	fmt.Printf("memory    functions running: %.0f\n", s.sum(`ferry_function_processes{`, `state="running"`))
	if kids, n, err := descendantsPSS(b.serve.Process.Pid); err == nil {
		fmt.Printf("memory    ferry serve's %d descendant processes (the functions, their sandboxes): %.0f MiB PSS more, not in the figure\n", n, kids/(1<<20))
	} else {
		fmt.Printf("memory    the functions' memory is not known: %v\n", err)
	}
	if c, err := server.NewClient(b.api, token); err == nil {
		if pv, err := c.Previews(ctx); err == nil {
			fmt.Printf("memory    ferry previews lists %d\n", len(pv))
		}
	}
	fmt.Printf("target    open p50 %.0f ms <= %d ms: %s\n", p50, targetPreviewOpen, figures.Verdict(p50 <= targetPreviewOpen))
	fmt.Printf("total     took %d s\n", int(time.Since(started).Seconds()))
	fmt.Printf("previews: open_p50_ms=%.0f open_p95_ms=%.0f rss_%d_mib=%.0f\n", p50, p95, live, rss)
	return nil
}

func pullGreeting(n int) string { return fmt.Sprintf("hello from pull request %d", n) }

// pushPull commits pull request n's greeting on main's head (not on main)
// and pushes it as refs/pull/n/head, as GitHub keeps a pull request's
// head; it returns the greeting.
func pushPull(work string, n int) (string, error) {
	greeting := pullGreeting(n)
	if _, err := git(work, "checkout", "-q", "-B", fmt.Sprintf("pr%d", n), "main"); err != nil {
		return "", err
	}
	if err := setGreeting(work, greeting); err != nil {
		return "", err
	}
	if _, err := git(work, "push", "-q", "origin", fmt.Sprintf("HEAD:refs/pull/%d/head", n)); err != nil {
		return "", err
	}
	return greeting, nil
}

// pullWebhook sends a signed GitHub pull_request "opened" delivery for
// pull request n, shaped like GitHub's (the fields ferry reads, and the
// head and base in the same repository: not a fork), and returns
// ferry's answer.
func (b *bench) pullWebhook(n int) (string, error) {
	repo := map[string]any{"full_name": previewRepo, "name": "app", "owner": map[string]any{"login": "octo-org"}}
	user := map[string]any{"login": "octocat", "id": 1, "type": "User"}
	body, err := json.Marshal(map[string]any{
		"action": "opened",
		"number": n,
		"pull_request": map[string]any{
			"number":   n,
			"state":    "open",
			"title":    fmt.Sprintf("Greeting %d", n),
			"html_url": fmt.Sprintf("https://github.com/%s/pull/%d", previewRepo, n),
			"user":     user,
			"head":     map[string]any{"ref": fmt.Sprintf("pr%d", n), "repo": repo},
			"base":     map[string]any{"ref": "main", "repo": repo},
		},
		"repository": repo,
		"sender":     user,
	})
	if err != nil {
		return "", err
	}
	resp, err := b.postHook(previewSource, "pull_request", fmt.Sprintf("bench-pr-%d", n), body)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var reply struct {
		Answer, Ignored, Error, Sync string
	}
	json.Unmarshal(raw, &reply)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("the pull_request webhook for #%d answered %s: %s", n, resp.Status, bytes.TrimSpace(raw))
	}
	// why: without the preview manager a pull request only syncs the
	// branch; waiting for a preview then would only time out.
	if reply.Ignored != "" || reply.Sync != "" {
		return "", fmt.Errorf("the pull_request webhook for #%d made no preview (ignored %q, sync %q): are previews wired into ferry serve?", n, reply.Ignored, reply.Sync)
	}
	return reply.Answer, nil
}

// profileRuns prints, for the runs created since t0 (the timed pull
// requests'), the median wait in the queue and the median of each step:
// where an open's time goes.
func (b *bench) profileRuns(ctx context.Context, t0 time.Time) error {
	c, err := server.NewClient(b.api, token)
	if err != nil {
		return err
	}
	page, err := c.Runs(ctx, previewSource, 100, 0)
	if err != nil {
		return err
	}
	var queued, total []float64
	steps := map[string][]float64{}
	var order []string
	runs := 0
	for _, r := range slices.Backward(page.Items) {
		if r.Created.Before(t0) {
			continue
		}
		runs++
		// why: the list leaves the steps out; one run has them.
		if r, err = c.Run(ctx, r.ID); err != nil {
			return err
		}
		if !r.Started.IsZero() {
			queued = append(queued, float64(r.Started.Sub(r.Created).Milliseconds()))
		}
		if !r.Ended.IsZero() {
			total = append(total, float64(r.Ended.Sub(r.Created).Milliseconds()))
		}
		for _, s := range r.Steps {
			if s.Started.IsZero() || s.Ended.IsZero() {
				continue
			}
			if _, ok := steps[s.Name]; !ok {
				order = append(order, s.Name)
			}
			steps[s.Name] = append(steps[s.Name], float64(s.Ended.Sub(s.Started).Milliseconds()))
		}
	}
	if runs == 0 {
		return fmt.Errorf("no run of source %s since the first pull request", previewSource)
	}
	var parts []string
	for _, name := range order {
		parts = append(parts, fmt.Sprintf("%s %.0f", name, figures.Median(steps[name])))
	}
	med := func(v []float64) string {
		if len(v) == 0 {
			return "?"
		}
		return strconv.FormatFloat(figures.Median(v), 'f', 0, 64)
	}
	fmt.Printf("profile   %d runs (ferry runs): queued %s ms, created to ended %s ms; steps (ms, medians): %s\n",
		runs, med(queued), med(total), strings.Join(parts, ", "))
	return nil
}

// percentile is the p-th percentile of v by the nearest-rank method: the
// smallest value at least p% of v is at or below.
func percentile(v []float64, p float64) float64 {
	s := slices.Sorted(slices.Values(v))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// descendantsPSS adds up the proportional set size of pid's descendants
// (Linux's /proc): the function processes ferry serve starts, and their
// sandboxes. PSS, not RSS: the interpreters share their code's pages,
// which RSS would count once per process.
func descendantsPSS(pid int) (float64, int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// why: fields count from the last ')', the name may hold spaces.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+2:]))
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var total float64
	n := 0
	for p := range parent {
		for a := parent[p]; a > 1; a = parent[a] {
			if a != pid {
				continue
			}
			kb, err := pssKB(p)
			if err != nil {
				return 0, 0, err
			}
			total += kb * 1024
			n++
			break
		}
	}
	return total, n, nil
}

// pssKB reads the Pss line of /proc/PID/smaps_rollup; a process gone
// meanwhile counts 0.
func pssKB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup has no Pss line", pid)
}
