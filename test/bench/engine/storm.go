package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrycd/ferry/test/bench/figures"
)

// stormSample is what one scrape of ferry serve's /metrics gave.
type stormSample map[string]float64

// settleAfter is how long after the storm the settled figures are read.
const settleAfter = 20 * time.Second

// storm serves n repositories of the Python example, each deploying to an
// environment of its own, starts ferry serve polling them every second,
// waits for every first deploy (not counted), then pushes new
// commits to every repository at once and times until every source's last
// commit answers in its environment. Meanwhile it scrapes /metrics every
// sampleEvery for ferry's peak memory, descriptors and goroutines.
func (b *bench) storm(ctx context.Context, n, commits int, sampleEvery time.Duration) error {
	started := time.Now()
	if err := b.startGitServer(); err != nil {
		return err
	}
	var cfg strings.Builder
	cfg.WriteString("sources:\n")
	works := make([]string, n)
	envs := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("s%02d", i)
		envs[i] = name + "-dev"
		work, err := b.pythonRepo(name, envs[i], false)
		if err != nil {
			return err
		}
		works[i] = work
		fmt.Fprintf(&cfg, "- {name: %s, url: %s/%s.git, interval: 1s}\n", name, b.gitURL, name)
	}
	cfg.WriteString("environments:\n")
	for _, env := range envs {
		fmt.Fprintf(&cfg, "- {name: %s}\n", env)
	}
	if err := b.startServe(ctx, "storm", cfg.String()); err != nil {
		return err
	}
	defer b.stopServe()
	fmt.Printf("storm     %d sources polled every 1 s, each deploying the Python example to an environment of its own\n", n)
	warm := time.Now()
	if err := forEach(n, func(i int) error {
		return b.waitMessageEvery(ctx, envs[i], "hello from python", 10*time.Minute, 100*time.Millisecond)
	}); err != nil {
		return fmt.Errorf("first deploys: %w", err)
	}
	fmt.Printf("storm     first deploys of all %d took %.1f s (not counted)\n", n, time.Since(warm).Seconds())
	before, err := b.scrape(ctx)
	if err != nil {
		return err
	}

	sctx, stopSampling := context.WithCancel(ctx)
	peaks := stormSample{}
	var sampled sync.WaitGroup
	sampled.Go(func() { b.samplePeaks(sctx, sampleEvery, peaks) })

	// Every source gets its commits pushed one after the other, all
	// sources at once; each waits for its last commit to answer.
	t0 := time.Now()
	converged := make([]time.Duration, n)
	err = forEach(n, func(i int) error {
		last := ""
		for c := 1; c <= commits; c++ {
			last = fmt.Sprintf("storm commit %d of s%02d", c, i)
			if err := commitGreeting(works[i], last); err != nil {
				return err
			}
		}
		if err := b.waitMessageEvery(ctx, envs[i], last, 10*time.Minute, 100*time.Millisecond); err != nil {
			return err
		}
		converged[i] = time.Since(t0)
		return nil
	})
	took := time.Since(t0)
	stopSampling()
	sampled.Wait()
	if err != nil {
		return fmt.Errorf("storm: %w", err)
	}
	after, err := b.scrape(ctx)
	if err != nil {
		return err
	}
	mergePeaks(peaks, after)

	var per []float64
	for _, d := range converged {
		per = append(per, d.Seconds())
	}
	runs := func(status string) float64 {
		k := `ferry_runs{status="` + status + `"}`
		return after[k] - before[k]
	}
	mb := peaks["process_resident_memory_bytes"] / (1 << 20)
	fmt.Printf("storm     %d commits pushed to each of %d sources; every head live in its environment after %.1f s (median source %.1f s)\n",
		commits, n, took.Seconds(), figures.Median(per))
	fmt.Printf("storm     runs during the storm: %.0f succeeded, %.0f superseded, %.0f failed\n", runs("succeeded"), runs("superseded"), runs("failed"))
	fmt.Printf("storm     peaks sampled every %s from /metrics: RSS %.0f MiB, %.0f open descriptors, %.0f goroutines; store write errors %.0f\n",
		sampleEvery, mb, peaks["process_open_fds"], peaks["go_goroutines"], after.sum("ferry_store_write_errors_total"))
	fmt.Printf("storm     functions running at the end: %.0f\n", after.sum(`ferry_function_processes{`, `state="running"`))
	// why: a peak says what the storm cost; the figures some time after it
	// say whether that cost is given back (replaced releases stay warm for
	// a rollback a while, so not all of it at once).
	time.Sleep(settleAfter)
	settled, err := b.scrape(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("storm     before the storm: %.0f descriptors, %.0f goroutines; %s after it: %.0f descriptors, %.0f goroutines, RSS %.0f MiB\n",
		before["process_open_fds"], before["go_goroutines"], settleAfter,
		settled["process_open_fds"], settled["go_goroutines"], settled["process_resident_memory_bytes"]/(1<<20))
	fmt.Printf("total     took %d s\n", int(time.Since(started).Seconds()))
	fmt.Printf("storm: sources=%d commits=%d converge_s=%.1f peak_rss_mib=%.0f peak_fds=%.0f peak_goroutines=%.0f failed_runs=%.0f\n",
		n, commits, took.Seconds(), mb, peaks["process_open_fds"], peaks["go_goroutines"], runs("failed"))
	return nil
}

// sum adds the samples whose name and labels hold every one of parts.
func (s stormSample) sum(parts ...string) float64 {
	total := 0.0
	for k, v := range s {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(k, p)
		}
		if all {
			total += v
		}
	}
	return total
}

// samplePeaks scrapes /metrics every d until ctx ends, keeping the
// highest value of each figure the storm reports.
func (b *bench) samplePeaks(ctx context.Context, d time.Duration, peaks stormSample) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if s, err := b.scrape(ctx); err == nil {
			mergePeaks(peaks, s)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func mergePeaks(peaks, s stormSample) {
	for _, k := range []string{"process_resident_memory_bytes", "process_open_fds", "go_goroutines"} {
		peaks[k] = max(peaks[k], s[k])
	}
}

// scrape reads ferry serve's /metrics in the text format.
func (b *bench) scrape(ctx context.Context) (stormSample, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", b.api+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /metrics: %s %s", resp.Status, body)
	}
	s := stormSample{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			s[line[:i]] = v
		}
	}
	return s, sc.Err()
}

// commitGreeting sets the Python example's greeting in work, commits and
// pushes.
func commitGreeting(work, greeting string) error {
	if err := setGreeting(work, greeting); err != nil {
		return err
	}
	_, err := git(work, "push", "-q", "origin", "main")
	return err
}

// waitMessageEvery polls GATEWAY/env/hello every poll until its message is
// want: twenty waiters polling every 5 ms would load the machine they
// measure.
func (b *bench) waitMessageEvery(ctx context.Context, env, want string, within, poll time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 5 * time.Second}
	last := ""
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := client.Get(b.gw + "/" + env + "/hello")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m struct{ Message string }
			json.Unmarshal(body, &m)
			if resp.StatusCode == 200 && m.Message == want {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(poll)
	}
	return fmt.Errorf("%s/hello did not answer %q within %s (last: %s)", env, want, within, last)
}

// forEach runs f(0) … f(n-1) at once and returns their errors.
func forEach(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
