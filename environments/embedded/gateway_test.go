package embedded

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBackend is a backend whose instance is a server the test runs. It
// counts acquires and dones, so a test can check every done was called.
type fakeBackend struct {
	url      string
	cold     bool
	err      error
	acquired atomic.Int64
	released atomic.Int64
}

func (b *fakeBackend) acquire(ctx context.Context) (string, bool, func(), error) {
	if b.err != nil {
		return "", false, nil, b.err
	}
	b.acquired.Add(1)
	return b.url, b.cold, func() { b.released.Add(1) }, nil
}

// seen is what an echo server saw of a request.
type seen struct {
	Server string
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   string
}

// echoServer answers every request 200 with JSON of what it saw, after
// reading the whole body, as the invokers do.
func echoServer(t *testing.T, name string) *fakeBackend {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{Server: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return &fakeBackend{url: srv.URL}
}

// handlerBackend runs h as the instance.
func handlerBackend(t *testing.T, h http.HandlerFunc) *fakeBackend {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fakeBackend{url: srv.URL}
}

// serveGateway runs g on a real listener.
func serveGateway(t testing.TB, g *gateway) string {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv.URL
}

type answer struct {
	code   int
	header http.Header
	body   string
}

// do sends a request; host, when set, replaces the Host header.
func do(t *testing.T, method, url, host string, header map[string]string, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (a answer) seen(t *testing.T) seen {
	t.Helper()
	var s seen
	if a.code != http.StatusOK {
		t.Fatalf("answer %d %s, want 200 from the backend", a.code, a.body)
	}
	if err := json.Unmarshal([]byte(a.body), &s); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	return s
}

func (a answer) wantError(t *testing.T, code int, msg string) {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(a.body), &e); a.code != code || err != nil || e.Error != msg {
		t.Errorf("answer %d %q, want %d {\"error\": %q}", a.code, a.body, code, msg)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error's Content-Type = %q", ct)
	}
}

func TestGatewayRouting(t *testing.T) {
	t.Parallel()
	dev, prod, root := echoServer(t, "dev"), echoServer(t, "prod"), echoServer(t, "root")
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{
		{Path: "/hello", Methods: []string{"get", "POST"}, Function: "hello", Backend: dev},
		{Path: "/hello", Methods: []string{"DELETE"}, Function: "bye", Backend: root},
		{Path: "/", Function: "index", Backend: root},
	})
	g.setRoutes("prod", []gatewayRoute{{Path: "hello/", Function: "hello", Backend: prod}})
	url := serveGateway(t, g)
	port := strings.TrimPrefix(url, "http://127.0.0.1")

	for _, tc := range []struct{ method, path, host, server string }{
		{"GET", "/dev/hello", "", "dev"},
		{"POST", "/dev/hello/", "", "dev"}, // a trailing slash is tolerated
		{"DELETE", "/dev/hello", "", "root"},
		{"GET", "/dev", "", "root"},
		{"GET", "/dev/", "", "root"},
		{"PATCH", "/prod/hello", "", "prod"}, // no methods: every method
		{"GET", "/hello", "dev.localhost" + port, "dev"},
		{"GET", "/hello/", "PROD.localhost", "prod"},
		{"GET", "/", "dev.localhost.", "root"},
	} {
		s := do(t, tc.method, url+tc.path, tc.host, nil, nil).seen(t)
		if s.Server != tc.server || s.Path != "/" || s.Method != tc.method {
			t.Errorf("%s %s (Host %q) reached %s %s %s, want %s %s /", tc.method, tc.path, tc.host, s.Server, s.Method, s.Path, tc.server, tc.method)
		}
	}

	do(t, "GET", url+"/staging/hello", "", nil, nil).wantError(t, 404, `environment "staging" runs nothing here: it has no release yet, or there is no such environment (ferry status lists them)`)
	do(t, "GET", url+"/hello", "staging.localhost", nil, nil).wantError(t, 404, `environment "staging" runs nothing here: it has no release yet, or there is no such environment (ferry status lists them)`)
	do(t, "GET", url+"/dev/nope", "", nil, nil).wantError(t, 404, "no route /nope in environment dev")
	do(t, "GET", url+"/dev/hello/x", "", nil, nil).wantError(t, 404, "no route /hello/x in environment dev")
	do(t, "GET", url+"/", "", nil, nil).wantError(t, 404, "no environment in the path: call /<environment>/<path>")
	a := do(t, "PUT", url+"/dev/hello", "", nil, nil)
	a.wantError(t, 405, "PUT /hello in environment dev answers DELETE, GET, POST only")
	if allow := a.header.Get("Allow"); allow != "DELETE, GET, POST" {
		t.Errorf("Allow = %q", allow)
	}

	// Removing an environment: its URLs answer 404, others still serve.
	g.setRoutes("dev", nil)
	do(t, "GET", url+"/dev/hello", "", nil, nil).wantError(t, 404, `environment "dev" runs nothing here: it has no release yet, or there is no such environment (ferry status lists them)`)
	if s := do(t, "GET", url+"/prod/hello", "", nil, nil).seen(t); s.Server != "prod" {
		t.Errorf("prod answered from %s", s.Server)
	}
}

func TestGatewayPlainRequestBecomesCloudEvent(t *testing.T) {
	t.Parallel()
	b := echoServer(t, "fn")
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/hello", Function: "hello", Backend: b}})
	url := serveGateway(t, g)

	before := time.Now()
	a := do(t, "POST", url+"/dev/hello/?name=a%20b&x=1", "", map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Custom": "kept"}, strings.NewReader("some body"))
	s := a.seen(t)
	if s.Path != "/" || s.Query != "name=a%20b&x=1" || s.Body != "some body" {
		t.Errorf("backend saw path %q query %q body %q", s.Path, s.Query, s.Body)
	}
	ce := map[string]string{}
	for k, v := range s.Header {
		if strings.HasPrefix(k, "Ce-") {
			ce[k] = strings.Join(v, "|")
		}
	}
	id, at := ce["Ce-Id"], ce["Ce-Time"]
	delete(ce, "Ce-Id")
	delete(ce, "Ce-Time")
	want := map[string]string{
		"Ce-Specversion": "1.0",
		"Ce-Source":      "/dev/hello",
		"Ce-Type":        "dev.ferry.http.request",
		"Ce-Httpmethod":  "POST",
		"Ce-Httppath":    "/dev/hello/",
		// the raw query, percent-encoded as a CloudEvents header value
		"Ce-Httpquery": "name=a%2520b&x=1",
	}
	if mustJSON(ce) != mustJSON(want) {
		t.Errorf("ce- headers\n%v\nwant\n%v", ce, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}-[0-9]+$`).MatchString(id) {
		t.Errorf("ce-id = %q, want 16 hex digits, '-' and a number", id)
	}
	if again := do(t, "POST", url+"/dev/hello/?name=a%20b&x=1", "", nil, strings.NewReader("x")).seen(t).Header.Get("Ce-Id"); again == id || again == "" {
		t.Errorf("two calls had ce-id %q and %q, want two ids", id, again)
	}
	if tm, err := time.Parse(time.RFC3339Nano, at); err != nil || !strings.HasSuffix(at, "Z") || tm.Before(before.Add(-time.Second)) || tm.After(time.Now().Add(time.Second)) {
		t.Errorf("ce-time = %q (%v), want now in UTC", at, err)
	}
	if ct := s.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || s.Header.Get("X-Custom") != "kept" {
		t.Errorf("Content-Type %q, X-Custom %q: not passed as sent", ct, s.Header.Get("X-Custom"))
	}
	if xff := s.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", xff)
	}
	// Each call gets its own id.
	if id2 := do(t, "GET", url+"/dev/hello", "", nil, nil).seen(t).Header.Get("Ce-Id"); id2 == id {
		t.Errorf("two calls got one ce-id %s", id)
	}
	// A path that needs escaping is escaped, so the invoker decodes it back.
	if p := do(t, "GET", url+"/dev/hello?q=%22", "", nil, nil).seen(t).Header.Get("Ce-Httpquery"); p != "q=%2522" {
		t.Errorf("ce-httpquery = %q", p)
	}
}

func TestGatewayCloudEventPassesUnchanged(t *testing.T) {
	t.Parallel()
	b := echoServer(t, "fn")
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/hello", Function: "hello", Backend: b}})
	url := serveGateway(t, g)

	sent := map[string]string{
		"Ce-Specversion": "1.0",
		"Ce-Id":          "evt-1",
		"Ce-Source":      "/my/source",
		"Ce-Type":        "com.example.thing",
		"Ce-Time":        "2024-05-01T12:00:00Z",
		"Ce-Subject":     "x%20y",
		"Ce-Custom":      "v",
		"Content-Type":   "application/json",
	}
	s := do(t, "PUT", url+"/dev/hello", "", sent, strings.NewReader(`{"n":1}`)).seen(t)
	got := map[string]string{"Content-Type": s.Header.Get("Content-Type")}
	for k, v := range s.Header {
		if strings.HasPrefix(k, "Ce-") {
			got[k] = strings.Join(v, "|")
		}
	}
	if mustJSON(got) != mustJSON(sent) || s.Body != `{"n":1}` || s.Method != "PUT" {
		t.Errorf("backend saw %s %v body %q, want the event as sent: %v", s.Method, got, s.Body, sent)
	}
}

func TestGatewayBodyLimit(t *testing.T) {
	t.Parallel()
	b := echoServer(t, "fn")
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/up", Function: "up", Backend: b}})
	url := serveGateway(t, g)
	big := bytes.Repeat([]byte("x"), 7<<20)
	msg := "the request body is larger than 6 MiB, the gateway's limit"

	// With Content-Length: refused before the function is called.
	do(t, "POST", url+"/dev/up", "", nil, bytes.NewReader(big)).wantError(t, 413, msg)
	if n := b.acquired.Load(); n != 0 {
		t.Errorf("a body with Content-Length over the limit still reached the backend (%d acquires)", n)
	}
	// Chunked, so the size shows only while it streams.
	do(t, "POST", url+"/dev/up", "", nil, io.MultiReader(bytes.NewReader(big))).wantError(t, 413, msg)
	// Exactly the limit passes.
	if s := do(t, "POST", url+"/dev/up", "", nil, bytes.NewReader(big[:6<<20])).seen(t); len(s.Body) != 6<<20 {
		t.Errorf("a 6 MiB body arrived as %d bytes", len(s.Body))
	}
	waitFor(t, 30*time.Second, "done not called for every acquire", func() bool { return b.released.Load() == b.acquired.Load() })
}

func TestGatewayInFlightLimit(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	b := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "finally")
	})
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/one", Function: "one", MaxInFlight: 1, Backend: b}})
	url := serveGateway(t, g)

	first := make(chan answer)
	go func() { first <- do(t, "GET", url+"/dev/one", "", nil, nil) }()
	<-entered
	// A call queued behind the first would wait for release, which comes
	// only after this answer: the 429 itself says it came at once.
	a := do(t, "GET", url+"/dev/one", "", nil, nil)
	a.wantError(t, 429, "function one is serving 1 calls, its limit")
	if a.header.Get("Retry-After") != "1" {
		t.Errorf("429 with Retry-After %q, want 1", a.header.Get("Retry-After"))
	}
	close(release)
	if a := <-first; a.code != 200 || a.body != "finally" {
		t.Errorf("the blocked call answered %d %q", a.code, a.body)
	}
	// The slot is free again.
	if a := do(t, "GET", url+"/dev/one", "", nil, nil); a.code != 200 {
		t.Errorf("after the first call: %d %s", a.code, a.body)
	}
}

// overrunBackend is a fakeBackend that also counts what overran hears.
type overrunBackend struct {
	*fakeBackend
	overran_, ended atomic.Int64
}

func (b *overrunBackend) overran(url string) (func(), bool) {
	if url != b.url {
		panic("overran for " + url + ", not the backend's " + b.url)
	}
	n := b.overran_.Add(1)
	return func() { b.ended.Add(1) }, n == 1
}

// TestGatewayTimeout: a call past its timeout is answered 504 at the
// deadline, and keeps its slot (the next call gets 429, the metrics count
// it in flight and overdue) until the function answers it, with the 500
// an invoker once answered a timeout with; only then is done called.
func TestGatewayTimeout(t *testing.T) {
	t.Parallel()
	finish := make(chan struct{})
	var hits atomic.Int64
	b := &overrunBackend{fakeBackend: handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			<-finish
			writeError(w, http.StatusInternalServerError, "timed out")
			return
		}
		io.WriteString(w, "fast")
	})}
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/slow", Function: "slow", Timeout: 200 * time.Millisecond, MaxInFlight: 1, Backend: b}})
	url := serveGateway(t, g)

	begin := time.Now()
	do(t, "GET", url+"/dev/slow", "", nil, nil).wantError(t, 504, "function slow did not answer within 200ms")
	if took := time.Since(begin); took < 200*time.Millisecond {
		t.Errorf("the 504 came after %s, before the 200ms deadline", took)
	}
	waitFor(t, 30*time.Second, "overran was not called", func() bool { return b.overran_.Load() == 1 })
	do(t, "GET", url+"/dev/slow", "", nil, nil).wantError(t, 429, "function slow is serving 1 calls, its limit")
	m := scrape(t, url)
	for sample, want := range map[string]float64{
		`ferry_gateway_in_flight{env="dev",function="slow"}`:              1,
		`ferry_gateway_overdue{env="dev",function="slow"}`:                1,
		`ferry_gateway_restarts_total{env="dev",function="slow"}`:         1,
		`ferry_gateway_calls_total{env="dev",function="slow",code="5xx"}`: 1,
	} {
		if got := m.samples[sample]; got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if n := b.released.Load(); n != 0 {
		t.Errorf("done was called %d times while the handler still ran", n)
	}

	close(finish) // the handler ends: its answer frees the slot
	waitFor(t, 30*time.Second, "done was not called once the function answered", func() bool {
		return b.released.Load() == 1 && b.ended.Load() == 1
	})
	if a := do(t, "GET", url+"/dev/slow", "", nil, nil); a.code != 200 || a.body != "fast" {
		t.Errorf("after the late answer: %d %s, want 200 fast", a.code, a.body)
	}
	m = scrape(t, url)
	if got := m.samples[`ferry_gateway_overdue{env="dev",function="slow"}`]; got != 0 {
		t.Errorf("overdue = %v after the late answer, want 0", got)
	}
}

// TestGatewayLateAnswerIs504: a function that answers 500 just after the
// deadline, as an invoker's own timeout did, never reaches the caller:
// every call is answered 504, and every slot comes back.
func TestGatewayLateAnswerIs504(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	b := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(timeout + time.Millisecond)
		writeError(w, http.StatusInternalServerError, "timed out in the function")
	})
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/late", Function: "late", Timeout: timeout, MaxInFlight: 50, Backend: b}})
	url := serveGateway(t, g)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := do(t, "GET", url+"/dev/late", "", nil, nil)
			if a.code != 504 && a.code != 429 {
				bad.Add(1)
				t.Errorf("answered %d %s, want 504 (or 429 while slots are held)", a.code, a.body)
			}
		}()
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "a slot was not given back", func() bool {
		return b.released.Load() == b.acquired.Load()
	})
}

func TestGatewayAcquireFails(t *testing.T) {
	t.Parallel()
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/x", Function: "broken", Backend: &fakeBackend{err: errors.New("start failed: boom")}}})
	url := serveGateway(t, g)
	do(t, "GET", url+"/dev/x", "", nil, nil).wantError(t, 503, "function broken is not available: start failed: boom")
}

// TestGatewaySwitchIsAtomic switches a route between two backends while
// requests run: every answer is a 200 from one of them.
func TestGatewaySwitchIsAtomic(t *testing.T) {
	t.Parallel()
	a, b := echoServer(t, "a"), echoServer(t, "b")
	routes := func(be backend) []gatewayRoute {
		return []gatewayRoute{
			{Path: "/hello", Methods: []string{"GET"}, Function: "hello", Backend: be},
			{Path: "/other", Function: "other", Backend: be},
		}
	}
	g := newGateway()
	g.setRoutes("dev", routes(a))
	url := serveGateway(t, g)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url + "/dev/hello")
				if err != nil {
					mu.Lock()
					counts["error "+err.Error()]++
					mu.Unlock()
					continue
				}
				var s seen
				json.NewDecoder(resp.Body).Decode(&s)
				resp.Body.Close()
				key := s.Server
				if resp.StatusCode != 200 {
					key = "status " + strconv.Itoa(resp.StatusCode)
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
			}
		})
	}
	for i := range 50 {
		time.Sleep(3 * time.Millisecond)
		if i%2 == 0 {
			g.setRoutes("dev", routes(b))
		} else {
			g.setRoutes("dev", routes(a))
		}
	}
	close(stop)
	wg.Wait()
	if len(counts) != 2 || counts["a"] == 0 || counts["b"] == 0 {
		t.Errorf("answers %v, want only 200s, from both a and b", counts)
	}
	t.Logf("answers: %v", counts)
}

// metricsText is a scraped metrics page: samples by name{labels}, and
// each family's TYPE.
type metricsText struct {
	samples map[string]float64
	types   map[string]string
	order   []string
}

func scrape(t *testing.T, url string) metricsText {
	t.Helper()
	a := do(t, "GET", url+"/_ferry/metrics", "", nil, nil)
	if a.code != 200 || a.header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("GET /_ferry/metrics = %d %q", a.code, a.header.Get("Content-Type"))
	}
	m := metricsText{samples: map[string]float64{}, types: map[string]string{}}
	help := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(a.body))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(f, " ")
			m.types[name] = kind
			continue
		}
		if f, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ := strings.Cut(f, " ")
			help[name] = true
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		key := canonicalSample(t, line[:i])
		m.samples[key] = v
		m.order = append(m.order, key)
	}
	for name := range m.types {
		if !help[name] {
			t.Errorf("%s has a TYPE but no HELP", name)
		}
	}
	return m
}

// canonicalSample puts the labels of a sample (name{l="v",…}) in the
// order the tests write them: the text format gives them no order.
func canonicalSample(t *testing.T, sample string) string {
	name, rest, ok := strings.Cut(sample, "{")
	if !ok {
		return sample
	}
	rest = strings.TrimSuffix(rest, "}")
	byName := map[string]string{}
	for rest != "" {
		label, after, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("bad labels in %q", sample)
		}
		// The value ends at the first quote no backslash escapes.
		i, escaped := 0, false
		for ; i < len(after); i++ {
			if escaped {
				escaped = false
			} else if after[i] == '\\' {
				escaped = true
			} else if after[i] == '"' {
				break
			}
		}
		byName[label] = after[:i]
		rest = strings.TrimPrefix(after[min(i+1, len(after)):], ",")
	}
	var labels []string
	for _, l := range []string{"env", "function", "trigger", "kind", "code", "le"} {
		if v, ok := byName[l]; ok {
			labels = append(labels, l+`="`+v+`"`)
			delete(byName, l)
		}
	}
	if len(byName) > 0 {
		t.Fatalf("unexpected labels %v in %q", byName, sample)
	}
	return name + "{" + strings.Join(labels, ",") + "}"
}

func TestGatewayMetrics(t *testing.T) {
	t.Parallel()
	ok := echoServer(t, "ok")
	failing := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) })
	cold := echoServer(t, "cold")
	cold.cold = true
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{
		{Path: "/ok", Methods: []string{"GET"}, Function: "ok", Backend: ok},
		{Path: "/fail", Function: "fail", Backend: failing},
		{Path: "/cold", Function: `odd "name"\`, Backend: cold},
		{Path: "/down", Function: "down", Backend: &fakeBackend{err: errors.New("no")}},
	})
	url := serveGateway(t, g)
	for range 3 {
		do(t, "GET", url+"/dev/ok", "", nil, nil)
	}
	do(t, "POST", url+"/dev/ok", "", nil, nil) // 405: no function was called
	do(t, "GET", url+"/dev/nope", "", nil, nil)
	do(t, "GET", url+"/dev/ok", "", nil, bytes.NewReader(make([]byte, 7<<20))) // 413
	for range 2 {
		do(t, "GET", url+"/dev/fail", "", nil, nil)
	}
	do(t, "GET", url+"/dev/cold", "", nil, nil)
	do(t, "GET", url+"/dev/down", "", nil, nil)

	m := scrape(t, url)
	for family, kind := range map[string]string{
		"ferry_gateway_calls_total": "counter", "ferry_gateway_failures_total": "counter",
		"ferry_gateway_duration_seconds": "histogram", "ferry_gateway_cold_starts_total": "counter",
		"ferry_gateway_in_flight": "gauge",
	} {
		if m.types[family] != kind {
			t.Errorf("TYPE of %s = %q, want %s", family, m.types[family], kind)
		}
	}
	okL, failL, coldL, downL := `env="dev",function="ok"`, `env="dev",function="fail"`, `env="dev",function="odd \"name\"\\"`, `env="dev",function="down"`
	for sample, want := range map[string]float64{
		"ferry_gateway_calls_total{" + okL + `,code="2xx"}`:            3,
		"ferry_gateway_calls_total{" + okL + `,code="4xx"}`:            1,
		"ferry_gateway_calls_total{" + failL + `,code="5xx"}`:          2,
		"ferry_gateway_calls_total{" + coldL + `,code="2xx"}`:          1,
		"ferry_gateway_calls_total{" + downL + `,code="5xx"}`:          1,
		"ferry_gateway_failures_total{" + okL + "}":                    0,
		"ferry_gateway_failures_total{" + failL + "}":                  2,
		"ferry_gateway_failures_total{" + downL + "}":                  1,
		"ferry_gateway_cold_starts_total{" + coldL + "}":               1,
		"ferry_gateway_cold_starts_total{" + okL + "}":                 0,
		"ferry_gateway_duration_seconds_count{" + okL + "}":            4,
		"ferry_gateway_duration_seconds_bucket{" + okL + `,le="+Inf"}`: 4,
		"ferry_gateway_duration_seconds_count{" + failL + "}":          2,
		"ferry_gateway_in_flight{" + okL + "}":                         0,
	} {
		if got, present := m.samples[sample]; !present || got != want {
			t.Errorf("%s = %v (present %v), want %v", sample, got, present, want)
		}
	}
	if _, ok := m.samples["ferry_gateway_calls_total{"+okL+`,code="5xx"}`]; ok {
		t.Error("a class with no calls has a sample")
	}
	var bounds []string
	var last float64
	for _, s := range m.order {
		if rest, ok := strings.CutPrefix(s, "ferry_gateway_duration_seconds_bucket{"+okL+`,le="`); ok {
			bounds = append(bounds, strings.TrimSuffix(rest, `"}`))
			if m.samples[s] < last {
				t.Errorf("%s = %v, fewer than the bucket before: buckets must be cumulative", s, m.samples[s])
			}
			last = m.samples[s]
		}
	}
	if got := strings.Join(bounds, " "); got != "0.001 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf" {
		t.Errorf("bucket bounds %s", got)
	}
	if sum := m.samples["ferry_gateway_duration_seconds_sum{"+okL+"}"]; sum <= 0 || sum > 5 {
		t.Errorf("duration sum = %v", sum)
	}
	// Sorted by environment then function, so two scrapes read the same.
	var fns []string
	for _, s := range m.order {
		if strings.HasPrefix(s, "ferry_gateway_failures_total{") {
			fns = append(fns, s)
		}
	}
	if want := []string{"{" + downL + "}", "{" + failL + "}", "{" + coldL + "}", "{" + okL + "}"}; strings.Join(fns, " ") != "ferry_gateway_failures_total"+strings.Join(want, " ferry_gateway_failures_total") {
		t.Errorf("failures in order %v", fns)
	}

	// A new release of the same function keeps its counters; a function
	// the release drops loses its samples; a removed env, all of them.
	g.setRoutes("dev", []gatewayRoute{{Path: "/ok2", Function: "ok", Backend: ok}})
	m = scrape(t, url)
	if got := m.samples["ferry_gateway_calls_total{"+okL+`,code="2xx"}`]; got != 3 {
		t.Errorf("after a setRoutes keeping ok: 2xx calls = %v, want 3", got)
	}
	if _, present := m.samples["ferry_gateway_failures_total{"+failL+"}"]; present {
		t.Error("a function no longer routed still has samples")
	}
	g.setRoutes("dev", nil)
	if m := scrape(t, url); len(m.samples) != 0 {
		t.Errorf("after removing dev: %v", m.samples)
	}
}

// TestGatewayPythonFunction calls the python example, run by its real
// invoker, through the gateway.
func TestGatewayPythonFunction(t *testing.T) {
	t.Parallel()
	root, argv, env := interpretedRoot(t, "python", "../../examples/python/hello", nil)
	p := start(t, testSpec(t, root, argv, env))
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/hello", Methods: []string{"GET", "POST"}, Function: "hello", Timeout: 10 * time.Second, Backend: processBackend{p}}})
	url := serveGateway(t, g)

	a := do(t, "POST", url+"/dev/hello?who=a%20b", "", map[string]string{"Content-Type": "application/json"}, strings.NewReader(`{"n":1}`))
	if a.code != 200 || mustJSONString(a.body) != `{"echo":{"n":1},"message":"hello from python"}` {
		t.Errorf("POST = %d %s", a.code, a.body)
	}
	a = do(t, "GET", url+"/hello", "dev.localhost", nil, nil)
	if a.code != 200 || mustJSONString(a.body) != `{"echo":null,"message":"hello from python"}` {
		t.Errorf("GET by Host = %d %s", a.code, a.body)
	}

	// The invoker reads the event the gateway made: its source, and the
	// request's method, path and query, percent-decoded back as sent.
	handler := "def handle(event, context):\n    return {'source': event['source'], 'type': event['type'], 'extensions': event['extensions']}\n"
	root, argv, env = interpretedRoot(t, "python", "", map[string][]byte{"main.py": []byte(handler)})
	g.setRoutes("dev", []gatewayRoute{{Path: "/event", Function: "event", Backend: processBackend{start(t, testSpec(t, root, argv, env))}}})
	a = do(t, "PUT", url+"/dev/event/?who=a%20b&q=%22x%22", "", nil, strings.NewReader("1"))
	want := `{"extensions":{"httpmethod":"PUT","httppath":"/dev/event/","httpquery":"who=a%20b&q=%22x%22"},"source":"/dev/event","type":"dev.ferry.http.request"}`
	if a.code != 200 || mustJSONString(a.body) != mustJSONString(want) {
		t.Errorf("the function saw %d %s\nwant %s", a.code, a.body, want)
	}
}

// processBackend serves a function by its running process.
type processBackend struct{ p *process }

func (b processBackend) acquire(context.Context) (string, bool, func(), error) {
	return b.p.URL(), false, func() {}, nil
}

// mustJSONString re-encodes JSON text with sorted keys, or returns it as
// it is when it is not JSON.
func mustJSONString(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	return mustJSON(v)
}

// benchBackend is a trivial function server.
func benchBackend(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

func benchGet(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkGateway and BenchmarkDirect call the same backend through the
// gateway and directly; their ns/op compare.
func BenchmarkGateway(b *testing.B) {
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/hello", Function: "hello", MaxInFlight: 10000, Backend: &fakeBackend{url: benchBackend(b)}}})
	benchGet(b, serveGateway(b, g)+"/dev/hello")
}

func BenchmarkDirect(b *testing.B) {
	benchGet(b, benchBackend(b)+"/")
}
