package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/build/registry"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/test/bench/figures"
)

// Targets from the issue.
const (
	targetRatio       = 0.7
	targetAddedP50us  = 100
	targetColdGoMS    = 50
	targetColdPyMS    = 300
	targetColdNodeMS  = 300
	targetSwitchMS    = 300
	targetRollbackMS  = 300
	throughputWorkers = 8
	// coldIdleAfter scales a function to zero this long after its last
	// call: short, so each cold run waits little for its function to stop.
	coldIdleAfter = 250 * time.Millisecond
	// settle is left after a function stopped, so the old process is gone
	// before the cold start is timed.
	settle = 300 * time.Millisecond
	// switchWorkers call the function without pause during a switch, each
	// waiting switchPause after every answer.
	switchWorkers = 2
	switchPause   = time.Millisecond
	// switchHold is how long the load continues after an Apply returns,
	// to see that every answer comes from the new release.
	switchHold = 500 * time.Millisecond
)

func main() {
	var (
		root     = flag.String("root", ".", "ferry's repository, for examples/")
		data     = flag.String("data", "", "folder for the registry, caches, images and logs (required)")
		runs     = flag.Int("runs", 3, "runs of the gateway and switch figures")
		coldRuns = flag.Int("cold-runs", 5, "cold starts per runtime")
		duration = flag.Duration("duration", 3*time.Second, "length of each load-generator run")
		load     = flag.String("load", "", "be the load generator: call this URL")
		workers  = flag.Int("workers", 1, "load generator: concurrent callers")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	if *load != "" {
		err = generate(ctx, *load, *workers, *duration)
	} else {
		if *data == "" {
			err = errors.New("-data is required")
		} else {
			b := &bench{root: *root, data: *data, runs: *runs, coldRuns: *coldRuns, duration: *duration}
			err = b.run(ctx)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "embedded: %v\n", err)
		os.Exit(1)
	}
}

// ---- load generator -------------------------------------------------------

// loadResult is what one load-generator run prints.
type loadResult struct {
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"`
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
}

// generate calls url from workers goroutines over keep-alive connections:
// 300 ms of warm-up, not counted, then d counted.
func generate(ctx context.Context, url string, workers int, d time.Duration) error {
	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: workers,
		DisableCompression:  true,
	}}
	warmEnd := time.Now().Add(300 * time.Millisecond)
	end := warmEnd.Add(d)
	lats := make([][]time.Duration, workers)
	failed := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<16)
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(end) {
					break
				}
				ok := call(ctx, client, url) == nil
				if t.Before(warmEnd) {
					continue
				}
				lat = append(lat, time.Since(t))
				if !ok {
					failed[w]++
				}
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var all []time.Duration
	res := loadResult{}
	for w := range workers {
		all = append(all, lats[w]...)
		res.Failed += failed[w]
	}
	if len(all) == 0 {
		return fmt.Errorf("no call to %s completed", url)
	}
	slices.Sort(all)
	res.Requests = len(all)
	res.RPS = float64(len(all)) / d.Seconds()
	res.P50us = float64(all[len(all)/2]) / 1e3
	res.P99us = float64(all[len(all)*99/100]) / 1e3
	return json.NewEncoder(os.Stdout).Encode(res)
}

// call GETs url and reads the answer; an answer other than 200 is an error.
func call(ctx context.Context, client *http.Client, url string) error {
	_, err := get(ctx, client, url)
	return err
}

func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// ---- the benchmark ----------------------------------------------------------

type bench struct {
	root, data     string
	runs, coldRuns int
	duration       time.Duration

	builder build.Builder
	sandbox *sandbox.Sandbox
	// locals are the targets started, deleted at the end.
	locals []*local
}

// local is one environment: a target behind its own gateway.
type local struct {
	env    string
	target *embedded.Target
	url    string // http://ADDR of the gateway
	srv    *http.Server
}

func (b *bench) run(ctx context.Context) error {
	started := time.Now()
	defer b.cleanup()
	reg, err := registry.New(ctx, registry.Config{Addr: "127.0.0.1:0", Dir: filepath.Join(b.data, "registry")})
	if err != nil {
		return err
	}
	go reg.Serve()
	defer reg.Shutdown(context.WithoutCancel(ctx))
	b.builder, err = build.New(reg.Addr()+"/bench",
		build.WithCacheDir(filepath.Join(b.data, "build-cache")),
		build.WithBase("python", build.Scratch), build.WithBase("nodejs", build.Scratch))
	if err != nil {
		return err
	}

	// why: the figures are those of functions in the sandbox, as ferry
	// serve runs them; a machine without bubblewrap fails here.
	if b.sandbox, err = sandbox.Find(ctx, sandbox.ModeBwrap, sandbox.NetworkNone); err != nil {
		return err
	}
	sandboxMS, err := b.sandboxStart(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("method    gateway: %d runs of %s per load, %d workers for throughput, 1 for p50, medians; cold: %d runs per runtime, medians; switch: %d runs, medians\n",
		b.runs, b.duration, throughputWorkers, b.coldRuns, b.runs)
	rels := map[string]*build.Release{}
	for _, rt := range []string{"go", "python", "nodejs"} {
		t := time.Now()
		rel, err := b.release(ctx, rt, "")
		if err != nil {
			return err
		}
		rels[rt] = rel
		fmt.Printf("release   %-6s built in %d ms (not counted)\n", rt, time.Since(t).Milliseconds())
	}
	r1, err := b.release(ctx, "python", "R1")
	if err != nil {
		return err
	}
	r2, err := b.release(ctx, "python", "R2")
	if err != nil {
		return err
	}

	ratio, added, err := b.gatewayOverhead(ctx, rels["go"])
	if err != nil {
		return fmt.Errorf("gateway overhead: %w", err)
	}
	cold := map[string]int64{}
	for _, rt := range []string{"go", "python", "nodejs"} {
		ms, err := b.coldStart(ctx, rt, rels[rt])
		if err != nil {
			return fmt.Errorf("cold start of %s: %w", rt, err)
		}
		cold[rt] = ms
	}
	switchMS, rollbackMS, err := b.switches(ctx, r1, r2)
	if err != nil {
		return fmt.Errorf("switch: %w", err)
	}

	fmt.Printf("target    gateway throughput gateway/direct %.2fx >= %.1fx: %s\n", ratio, targetRatio, figures.Verdict(ratio >= targetRatio))
	fmt.Printf("target    gateway added p50 %d µs <= %d µs: %s\n", added, targetAddedP50us, figures.Verdict(added <= targetAddedP50us))
	fmt.Printf("target    cold go %d ms <= %d ms: %s\n", cold["go"], targetColdGoMS, figures.Verdict(cold["go"] <= targetColdGoMS))
	fmt.Printf("target    cold python %d ms <= %d ms: %s\n", cold["python"], targetColdPyMS, figures.Verdict(cold["python"] <= targetColdPyMS))
	fmt.Printf("target    cold nodejs %d ms <= %d ms: %s\n", cold["nodejs"], targetColdNodeMS, figures.Verdict(cold["nodejs"] <= targetColdNodeMS))
	fmt.Printf("target    switch %d ms <= %d ms: %s\n", switchMS, targetSwitchMS, figures.Verdict(switchMS <= targetSwitchMS))
	fmt.Printf("target    rollback %d ms <= %d ms: %s\n", rollbackMS, targetRollbackMS, figures.Verdict(rollbackMS <= targetRollbackMS))
	fmt.Printf("total     took %d s\n", int(time.Since(started).Seconds()))
	fmt.Printf("embedded: gw_ratio=%.2f gw_added_p50_us=%d cold_go_ms=%d cold_py_ms=%d cold_node_ms=%d switch_ms=%d rollback_ms=%d sandbox_ms=%.1f\n",
		ratio, added, cold["go"], cold["python"], cold["nodejs"], switchMS, rollbackMS, sandboxMS)
	return nil
}

// release builds a copy of examples/<rt>; a tag, when given, is put into
// the greeting ("hello from python" becomes "hello from python R1").
func (b *bench) release(ctx context.Context, rt, tag string) (*build.Release, error) {
	dir := filepath.Join(b.data, "src", rt+tag)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(b.root, "examples", rt))); err != nil {
		return nil, fmt.Errorf("copying examples/%s: %w", rt, err)
	}
	if tag != "" {
		f := filepath.Join(dir, "hello", "main.py")
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		edited := strings.Replace(string(src), `"hello from python"`, `"hello from python `+tag+`"`, 1)
		if edited == string(src) {
			return nil, fmt.Errorf("%s has no greeting \"hello from python\" to tag", f)
		}
		if err := os.WriteFile(f, []byte(edited), 0o644); err != nil {
			return nil, err
		}
	}
	src, err := build.LocalSource(ctx, dir)
	if err != nil {
		return nil, err
	}
	set, err := manifests.Load(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("examples/%s: %w", rt, err)
	}
	info, err := build.LocalInfo(ctx, dir)
	if err != nil {
		return nil, err
	}
	res, err := b.builder.Release(ctx, src, set, info)
	if err != nil {
		return nil, fmt.Errorf("building examples/%s: %w", rt, err)
	}
	return res.Release, nil
}

// newLocal starts the environment env behind a gateway of its own on a
// free loopback port.
func (b *bench) newLocal(env string, idleAfter time.Duration) (*local, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	url := "http://" + ln.Addr().String()
	t, gw, err := embedded.NewLocal(embedded.LocalConfig{Environment: env, DataDir: b.data, GatewayURL: url, IdleAfter: idleAfter, Sandbox: b.sandbox})
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	l := &local{env: env, target: t, url: url, srv: srv}
	b.locals = append(b.locals, l)
	return l, nil
}

// cleanup stops every function process and gateway the benchmark started.
func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, l := range b.locals {
		if err := l.target.Delete(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "embedded: stopping environment %s: %v\n", l.env, err)
		}
		l.srv.Close()
	}
}

// apply applies rel to the bench's local target.
func (b *bench) apply(ctx context.Context, l *local, rel *build.Release) error {
	return l.target.Apply(ctx, rel)
}

// ---- (a) gateway overhead ---------------------------------------------------

// gatewayOverhead calls the Go example directly, through ferry's gateway
// and through the peers (a byte relay, and nginx when it is installed),
// with the same load generator, taking turns, and returns the gateway's
// median throughput ratio to direct and its added median p50 in µs.
func (b *bench) gatewayOverhead(ctx context.Context, rel *build.Release) (float64, int64, error) {
	l, err := b.newLocal("gw", 0)
	if err != nil {
		return 0, 0, err
	}
	if err := b.apply(ctx, l, rel); err != nil {
		return 0, 0, err
	}
	direct, err := l.target.ProcessURL("hello")
	if err != nil {
		return 0, 0, err
	}
	through, err := l.target.URL("hello")
	if err != nil {
		return 0, 0, err
	}
	fnAddr := strings.TrimPrefix(direct, "http://")
	paths := []path{{"direct", direct + "/"}, {"ferry", through}}
	relayURL, stopRelay, err := startRelay(fnAddr)
	if err != nil {
		return 0, 0, err
	}
	defer stopRelay()
	paths = append(paths, path{"relay", relayURL + "/"})
	if nginxURL, stopNginx, err := startNginx(ctx, filepath.Join(b.data, "nginx"), fnAddr); err != nil {
		fmt.Printf("gateway   nginx not measured: %v\n", err)
	} else {
		defer stopNginx()
		paths = append(paths, path{"nginx", nginxURL + "/"})
	}
	for _, p := range paths {
		if _, err := get(ctx, http.DefaultClient, p.url); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Printf("gateway   %-6s %s\n", p.name, p.url)
	}

	ratios, added := map[string][]float64{}, map[string][]float64{}
	for n := 1; n <= b.runs; n++ {
		res := map[string]map[int]loadResult{}
		for _, w := range []int{throughputWorkers, 1} {
			// why: the paths take turns going first, so none always runs
			// on a machine warmed (or loaded) by another.
			for i := range paths {
				p := paths[(i+n)%len(paths)]
				r, err := b.loadRun(ctx, p.url, w)
				if err != nil {
					return 0, 0, err
				}
				if r.Failed > 0 {
					return 0, 0, fmt.Errorf("%d of %d calls to %s failed", r.Failed, r.Requests, p.url)
				}
				if res[p.name] == nil {
					res[p.name] = map[int]loadResult{}
				}
				res[p.name][w] = r
			}
		}
		d8, d1 := res["direct"][throughputWorkers], res["direct"][1]
		fmt.Printf("gateway   %d/%d  direct  %6.0f req/s (%d workers)  p50 %4.0f µs p99 %5.0f µs (1 worker)\n",
			n, b.runs, d8.RPS, throughputWorkers, d1.P50us, d1.P99us)
		for _, p := range paths[1:] {
			g8, g1 := res[p.name][throughputWorkers], res[p.name][1]
			ratio, add := g8.RPS/d8.RPS, g1.P50us-d1.P50us
			fmt.Printf("gateway   %d/%d  %-6s  %6.0f req/s  ratio %.2fx  p50 %4.0f µs p99 %5.0f µs  added p50 %.0f µs\n",
				n, b.runs, p.name, g8.RPS, ratio, g1.P50us, g1.P99us, add)
			ratios[p.name] = append(ratios[p.name], ratio)
			added[p.name] = append(added[p.name], add)
		}
	}
	for _, p := range paths[1:] {
		fmt.Printf("gateway   median %-6s ratio %.2fx  added p50 %.0f µs\n", p.name, figures.Median(ratios[p.name]), figures.Median(added[p.name]))
	}
	if err := l.target.Delete(ctx); err != nil {
		return 0, 0, err
	}
	ratio, add := figures.Median(ratios["ferry"]), figures.Median(added["ferry"])
	return ratio, int64(add + 0.5), nil
}

// path is one way to the function: direct, ferry's gateway or a peer.
type path struct{ name, url string }

// startRelay listens on a loopback port and copies bytes both ways
// between each connection and one of its own to the function: what a
// proxy costs that parses nothing, the floor under every HTTP gateway.
func startRelay(fnAddr string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			open[c] = true
		} else {
			delete(open, c)
		}
	}
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				out, err := net.Dial("tcp", fnAddr)
				if err != nil {
					in.Close()
					return
				}
				track(in, true)
				track(out, true)
				defer func() {
					in.Close()
					out.Close()
					track(in, false)
					track(out, false)
				}()
				go func() {
					io.Copy(out, in)
					out.(*net.TCPConn).CloseWrite()
				}()
				io.Copy(in, out)
			})
		}
	})
	stop := func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// startNginx runs nginx from PATH as a reverse proxy to the function, as
// one would deploy it in front of an HTTP service: a worker per CPU, HTTP/1.1
// to the upstream with kept-alive connections, no access log.
func startNginx(ctx context.Context, dir, fnAddr string) (string, func(), error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return "", nil, errors.New("nginx is not on PATH (hack/deps.sh bench installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close() // why: nginx binds it itself; the port was free a moment ago
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream fn { server %[2]s; keepalive 64; }
	server {
		listen %[3]s;
		location / {
			proxy_pass http://fn;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`, dir, fnAddr, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGQUIT) // nginx's graceful stop
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	url := "http://" + addr
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := get(ctx, http.DefaultClient, url+"/"); err == nil {
			return url, stop, nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", nil, fmt.Errorf("nginx exited: %s %s", strings.TrimSpace(stderr.String()), strings.TrimSpace(string(log)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("nginx did not answer within 5 s")
		}
	}
}

// loadRun runs the load generator as a second process of this program.
func (b *bench) loadRun(ctx context.Context, url string, workers int) (loadResult, error) {
	self, err := os.Executable()
	if err != nil {
		return loadResult{}, err
	}
	cmd := exec.CommandContext(ctx, self, "-load", url, "-workers", strconv.Itoa(workers), "-duration", b.duration.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("load generator against %s: %w", url, err)
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return loadResult{}, fmt.Errorf("load generator printed %q: %w", out, err)
	}
	return r, nil
}

// ---- (b) cold start -----------------------------------------------------------

// sandboxRuns is how many times the sandbox's own start is timed.
const sandboxRuns = 21

// sandboxStart times the sandbox alone: bubblewrap starting /bin/true
// with the host's system folders, as a scratch image's function gets
// them, until it has exited. It is part of every cold start below.
func (b *bench) sandboxStart(ctx context.Context) (float64, error) {
	var ms []float64
	for range sandboxRuns {
		c, err := b.sandbox.CommandContext(ctx, sandbox.Spec{Program: "true"})
		if err != nil {
			return 0, err
		}
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
		t := time.Now()
		if err := c.Run(); err != nil {
			return 0, fmt.Errorf("the sandbox running /bin/true: %w", err)
		}
		ms = append(ms, float64(time.Since(t).Microseconds())/1000)
	}
	m := figures.Median(ms)
	fmt.Printf("sandbox   %s running /bin/true: median %.1f ms of %d runs (part of every cold start)\n", b.sandbox, m, sandboxRuns)
	return m, nil
}

// coldStart times, coldRuns times, one call to a function scaled to zero:
// Apply starts it, the target stops it after coldIdleAfter, and the call
// starts it again. Each run starts from a fresh Apply, as a function that
// has once been scaled to zero and started again is not necessarily
// scaled to zero a second time soon. It returns the median in ms.
func (b *bench) coldStart(ctx context.Context, rt string, rel *build.Release) (int64, error) {
	l, err := b.newLocal("cold-"+rt, coldIdleAfter)
	if err != nil {
		return 0, err
	}
	var times []float64
	for n := 1; n <= b.coldRuns; n++ {
		if err := b.apply(ctx, l, rel); err != nil {
			return 0, err
		}
		if err := waitIdle(ctx, l.target, 10*time.Second); err != nil {
			return 0, err
		}
		time.Sleep(settle)
		url, err := l.target.URL("hello")
		if err != nil {
			return 0, err
		}
		before, err := coldCount(ctx, l.url)
		if err != nil {
			return 0, err
		}
		// why: a new connection, as a first caller after a quiet while
		// would make; it costs tens of µs on loopback.
		client := &http.Client{Transport: &http.Transport{Proxy: nil}}
		t := time.Now()
		if err := call(ctx, client, url); err != nil {
			return 0, err
		}
		d := time.Since(t)
		client.CloseIdleConnections()
		after, err := coldCount(ctx, l.url)
		if err != nil {
			return 0, err
		}
		if after != before+1 {
			return 0, fmt.Errorf("run %d: the gateway counted %d cold starts for the call, not 1", n, after-before)
		}
		ms := float64(d.Microseconds()) / 1e3
		fmt.Printf("cold      %-6s %d/%d  %6.1f ms\n", rt, n, b.coldRuns, ms)
		times = append(times, ms)
		if err := l.target.Delete(ctx); err != nil {
			return 0, err
		}
	}
	m := figures.Median(times)
	fmt.Printf("cold      %-6s median  %6.1f ms\n", rt, m)
	return int64(m + 0.5), nil
}

// waitIdle waits until the target's function hello is scaled to zero.
func waitIdle(ctx context.Context, t *embedded.Target, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := t.Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Functions) == 1 && st.Functions[0].State == "idle" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("function hello was not scaled to zero within %s of its start", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// coldCount reads ferry_gateway_cold_starts_total of the gateway at base.
func coldCount(ctx context.Context, base string) (int, error) {
	body, err := get(ctx, http.DefaultClient, base+"/_ferry/metrics")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ferry_gateway_cold_starts_total{") {
			return strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
		}
	}
	return 0, nil // no call yet: no sample
}

// ---- (c) switch and rollback --------------------------------------------------

// answer is one call made during a switch.
type answer struct {
	start, end time.Time
	tag        string // "R1", "R2", or "" for a failed call
}

// switches applies r1, then under continuous calls applies r2 and r1
// again, runs times, and returns the median switch and rollback times in
// ms: from the start of the Apply until every call started from then on
// is answered by the release applied. Each run starts from a fresh
// target, so that r2 is never warm and its switch includes a cold start.
func (b *bench) switches(ctx context.Context, r1, r2 *build.Release) (int64, int64, error) {
	l, err := b.newLocal("switch", 0)
	if err != nil {
		return 0, 0, err
	}
	var sw, rb []float64
	for n := 1; n <= b.runs; n++ {
		if err := l.target.Apply(ctx, r1); err != nil {
			return 0, 0, err
		}
		url, err := l.target.URL("hello")
		if err != nil {
			return 0, 0, err
		}
		loadCtx, stopLoad := context.WithCancel(ctx)
		answers := make([][]answer, switchWorkers)
		var wg sync.WaitGroup
		for w := range switchWorkers {
			wg.Go(func() {
				client := &http.Client{Transport: &http.Transport{Proxy: nil}}
				for loadCtx.Err() == nil {
					a := answer{start: time.Now()}
					body, err := get(loadCtx, client, url)
					switch {
					case loadCtx.Err() != nil:
						return
					case err != nil:
					case strings.Contains(body, "hello from python R1"):
						a.tag = "R1"
					case strings.Contains(body, "hello from python R2"):
						a.tag = "R2"
					}
					a.end = time.Now()
					answers[w] = append(answers[w], a)
					time.Sleep(switchPause)
				}
			})
		}
		time.Sleep(switchHold)

		t0 := time.Now()
		if err := l.target.Apply(ctx, r2); err != nil {
			stopLoad()
			wg.Wait()
			return 0, 0, err
		}
		apply2 := time.Since(t0)
		time.Sleep(switchHold)
		t1 := time.Now()
		if err := l.target.Apply(ctx, r1); err != nil {
			stopLoad()
			wg.Wait()
			return 0, 0, err
		}
		apply1 := time.Since(t1)
		time.Sleep(switchHold)
		t2 := time.Now()
		stopLoad()
		wg.Wait()

		var all []answer
		for _, a := range answers {
			all = append(all, a...)
		}
		slices.SortFunc(all, func(a, b answer) int { return a.start.Compare(b.start) })
		s, sFailed, sCalls, err := settledAfter(all, t0, t1, "R2")
		if err != nil {
			return 0, 0, fmt.Errorf("run %d, switch to R2: %w", n, err)
		}
		r, rFailed, rCalls, err := settledAfter(all, t1, t2, "R1")
		if err != nil {
			return 0, 0, fmt.Errorf("run %d, rollback to R1: %w", n, err)
		}
		sms := float64(s.Microseconds()) / 1e3
		rms := float64(r.Microseconds()) / 1e3
		fmt.Printf("switch    %d/%d  switch %6.1f ms (Apply %6.1f ms, %d calls, %d failed)  rollback %6.1f ms (Apply %5.1f ms, %d calls, %d failed)\n",
			n, b.runs, sms, float64(apply2.Microseconds())/1e3, sCalls, sFailed, rms, float64(apply1.Microseconds())/1e3, rCalls, rFailed)
		sw, rb = append(sw, sms), append(rb, rms)
		if err := l.target.Delete(ctx); err != nil {
			return 0, 0, err
		}
	}
	s, r := figures.Median(sw), figures.Median(rb)
	fmt.Printf("switch    median  switch %6.1f ms  rollback %6.1f ms\n", s, r)
	return int64(s + 0.5), int64(r + 0.5), nil
}

// settledAfter looks at the calls started at from or later and answered
// before to (a call still in flight when the next Apply starts may be
// answered by that one's release), and returns how
// long after from the first call was started from which on every call
// was answered by want, with the count of failed calls and of all calls.
func settledAfter(all []answer, from, to time.Time, want string) (time.Duration, int, int, error) {
	var window []answer
	failed := 0
	for _, a := range all {
		if !a.start.Before(from) && a.end.Before(to) {
			window = append(window, a)
			if a.tag == "" {
				failed++
			}
		}
	}
	last := -1 // the last call not answered by want
	for i, a := range window {
		if a.tag != want {
			last = i
		}
	}
	if last == len(window)-1 {
		return 0, failed, len(window), fmt.Errorf("%d calls, and the last was not answered by %s", len(window), want)
	}
	return window[last+1].start.Sub(from), failed, len(window), nil
}
