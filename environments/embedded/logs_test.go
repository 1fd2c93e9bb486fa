package embedded

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// hang bounds a wait that only a hang would reach.
const hang = 60 * time.Second

func TestFunctionLogKeepsAndFollows(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "logs", "dev", "hello.log")
	l := NewFunctionLog(path)
	defer l.close()
	for i := range logRingLines + 10 {
		l.Add("stdout", 7, "line "+strconv.Itoa(i))
	}
	all := l.Lines(LogQuery{})
	if len(all) != logRingLines || all[0].Text != "line 10" || all[len(all)-1].Seq != logRingLines+10 {
		t.Fatalf("ring holds %d lines from %q (seq of the last %d); want the newest %d", len(all), all[0].Text, all[len(all)-1].Seq, logRingLines)
	}
	if got := l.Lines(LogQuery{Tail: 2}); len(got) != 2 || got[1].Text != "line "+strconv.Itoa(logRingLines+9) || got[0].PID != 7 {
		t.Errorf("tail 2 = %+v", got)
	}
	if got := l.Lines(LogQuery{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("since an hour from now = %d lines, want none", len(got))
	}

	// A follower gets the tail it asked for, then each new line once.
	backlog, f := l.Follow(LogQuery{Tail: 1})
	if len(backlog) != 1 || backlog[0].Text != "line "+strconv.Itoa(logRingLines+9) {
		t.Fatalf("follow's backlog = %+v", backlog)
	}
	l.Add("access", 0, "POST /hello 200 1ms")
	select {
	case got := <-f.C():
		if got.Stream != "access" || got.Text != "POST /hello 200 1ms" || got.Seq != backlog[0].Seq+1 {
			t.Errorf("followed line = %+v", got)
		}
	case <-time.After(hang):
		t.Fatal("a line added after follow never reached the follower")
	}
	// A follower that does not read loses lines, never blocks the writer.
	for range followBuffer + 5 {
		l.Add("stdout", 7, "flood")
	}
	if n := f.Missed(); n != 5 {
		t.Errorf("missed %d lines, want 5", n)
	}
	if l.Followers() != 1 {
		t.Fatalf("%d followers, want 1", l.Followers())
	}
	f.Close()
	f.Close()
	if l.Followers() != 0 {
		t.Errorf("a closed follower is still held")
	}

	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(file), "\n"); n != logRingLines+10+1+followBuffer+5 {
		t.Errorf("the file has %d lines, want every one", n)
	}
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z access POST /hello 200 1ms$`).Match(file) {
		t.Errorf("the file holds no access line:\n%.300s", file)
	}
}

func TestFunctionLogsStartFromTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := newFunctionLogs(dir, "dev")
	for i := range 3 {
		first.of("hello").Add("stdout", 1, "before the restart "+strconv.Itoa(i))
	}
	first.closeFiles()

	// A new ferry: its log of hello starts with the file's lines, and goes
	// on after them.
	again := newFunctionLogs(dir, "dev")
	l := again.of("hello")
	l.Add("access", 0, "after")
	got := l.Lines(LogQuery{})
	if len(got) != 4 || got[0].Text != "before the restart 0" || got[2].Stream != "stdout" || got[3].Text != "after" || got[3].Seq != 4 {
		t.Errorf("lines after a restart = %+v", got)
	}
	if _, ok := again.lookup("other"); ok {
		t.Error("a function with no log has one")
	}
}

func TestFunctionLogSaysWhenItsFileFails(t *testing.T) {
	t.Parallel()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := NewFunctionLog(filepath.Join(notADir, "dev", "hello.log"))
	l.Add("stdout", 1, "one")
	l.Add("stdout", 1, "two")
	got := l.Lines(LogQuery{})
	if len(got) != 3 || got[0].Text != "one" || got[1].Stream != "ferry" || !strings.Contains(got[1].Text, "kept in memory only") || got[2].Text != "two" {
		t.Errorf("lines = %+v; want the failure said once, and every line kept", got)
	}
}

func TestGatewayWritesAccessLines(t *testing.T) {
	t.Parallel()
	g := newGateway()
	fnLog := NewFunctionLog("")
	ok := echoServer(t, "ok")
	failing := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	g.setRoutes("dev", []gatewayRoute{
		{Path: "/hello", Function: "hello", Trigger: "hello-http", Backend: ok, Log: fnLog},
		{Path: "/broken", Function: "hello", Trigger: "broken-http", Backend: failing, Log: fnLog},
	})
	url := serveGateway(t, g)

	plain := do(t, "POST", url+"/dev/hello?secret=1", "", nil, strings.NewReader(`{}`)).seen(t)
	do(t, "POST", url+"/dev/hello", "", map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "ev-42", "Ce-Source": "/x", "Ce-Type": "t"}, nil)
	do(t, "GET", url+"/dev/broken", "", nil, nil)

	lines := fnLog.Lines(LogQuery{})
	if len(lines) != 3 {
		t.Fatalf("%d access lines, want one per call: %+v", len(lines), lines)
	}
	wantRe := []string{
		`^POST /dev/hello 200 \S+s ce-id=` + regexp.QuoteMeta(plain.Header.Get("Ce-Id")) + `$`,
		`^POST /dev/hello 200 \S+s ce-id=ev-42$`,
		`^GET /dev/broken 500 \S+s ce-id=\S+$`,
	}
	for i, l := range lines {
		if l.Stream != "access" || !regexp.MustCompile(wantRe[i]).MatchString(l.Text) {
			t.Errorf("access line %d = %s %q, want %s", i, l.Stream, l.Text, wantRe[i])
		}
		if strings.Contains(l.Text, "secret") {
			t.Errorf("the query reached the log: %q", l.Text)
		}
	}

	m := scrape(t, url)
	for sample, want := range map[string]float64{
		`ferry_trigger_deliveries_total{env="dev",trigger="hello-http",kind="http"}`:  2,
		`ferry_trigger_failures_total{env="dev",trigger="hello-http",kind="http"}`:    0,
		`ferry_trigger_deliveries_total{env="dev",trigger="broken-http",kind="http"}`: 1,
		`ferry_trigger_failures_total{env="dev",trigger="broken-http",kind="http"}`:   1,
	} {
		if got, ok := m.samples[sample]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", sample, got, ok, want)
		}
	}
	if m.types["ferry_trigger_deliveries_total"] != "counter" {
		t.Errorf("ferry_trigger_deliveries_total is a %q", m.types["ferry_trigger_deliveries_total"])
	}
}

// TestTriggerMetricsCount checks that a cron's ticks and a NATS message
// that fails and is retried move the counters the gateway serves.
func TestTriggerMetricsCount(t *testing.T) {
	t.Parallel()
	natsURL := startTestNATS(t)
	g := newGateway()
	url := serveGateway(t, g)
	l := &triggerLog{}
	tr := newTriggers(triggerConfig{Environment: "dev", NATSURL: natsURL, Log: l.log, Metrics: g.triggerStats})
	t.Cleanup(tr.stop)

	report, broken := newTriggerRecorder(t), newTriggerRecorder(t)
	broken.status = func(int) int { return http.StatusServiceUnavailable }
	attempts := int32(3)
	retry := &v1alpha1.RetryPolicy{Attempts: &attempts,
		Backoff: &metav1.Duration{Duration: 10 * time.Millisecond}, MaxBackoff: &metav1.Duration{Duration: 20 * time.Millisecond}}
	set := &manifests.Set{
		Functions:    []*v1alpha1.Function{testFunction("report", nil), testFunction("broken", nil)},
		CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("every-second", "report", "@every 1s", "")},
		NATSTriggers: []*v1alpha1.NATSTrigger{testNATSTrigger("jobs", "broken", "jobs.broken", retry)},
	}
	if err := tr.apply(t.Context(), set, map[string]backend{"report": report, "broken": broken}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("jobs.broken", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	const (
		ticks      = `ferry_trigger_ticks_total{env="dev",trigger="every-second",kind="cron"}`
		cronDeliv  = `ferry_trigger_deliveries_total{env="dev",trigger="every-second",kind="cron"}`
		natsDeliv  = `ferry_trigger_deliveries_total{env="dev",trigger="jobs",kind="nats"}`
		natsFail   = `ferry_trigger_failures_total{env="dev",trigger="jobs",kind="nats"}`
		natsRetry  = `ferry_trigger_retries_total{env="dev",trigger="jobs",kind="nats"}`
		natsTicks  = `ferry_trigger_ticks_total{env="dev",trigger="jobs",kind="nats"}`
		cronFailed = `ferry_trigger_failures_total{env="dev",trigger="every-second",kind="cron"}`
	)
	var m metricsText
	waitFor(t, hang, "two cron ticks and the NATS message's last failure", func() bool {
		m = scrape(t, url)
		return m.samples[ticks] >= 2 && m.samples[natsFail] >= 1
	})
	if m.samples[cronDeliv] < 1 || m.samples[cronFailed] != 0 {
		t.Errorf("cron: %v deliveries, %v failures; want at least 1 and 0", m.samples[cronDeliv], m.samples[cronFailed])
	}
	if m.samples[natsDeliv] != 1 || m.samples[natsFail] != 1 || m.samples[natsRetry] != 2 {
		t.Errorf("nats: %v deliveries, %v failures, %v retries; want 1, 1, 2", m.samples[natsDeliv], m.samples[natsFail], m.samples[natsRetry])
	}
	if n := len(broken.got()); n != 3 {
		t.Errorf("broken got %d attempts, want 3", n)
	}
	if _, ok := m.samples[natsTicks]; ok {
		t.Errorf("a NATS trigger has a ticks counter")
	}

	// Deleting the environment drops its counters.
	g.triggerStats.Forget("dev")
	if _, ok := scrape(t, url).samples[ticks]; ok {
		t.Error("the counters of a forgotten environment are still served")
	}
}

// TestFunctionLogAfterDelete: a line a stopping process writes after its
// environment was deleted stays in memory and makes no file again (the
// folder may be going away); a function started again writes its file.
func TestFunctionLogAfterDelete(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "logs")
	logs := newFunctionLogs(dir, "dev")
	l := logs.of("hello")
	l.Add("stdout", 1, "serving")
	logs.closeFiles()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	l.Add("stderr", 1, "on its way out")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a line after the delete made the log folder again: %v", err)
	}
	if got := l.Lines(LogQuery{}); len(got) != 2 || got[1].Text != "on its way out" {
		t.Fatalf("lines in memory = %+v", got)
	}
	logs.of("hello").Add("stdout", 2, "started again")
	if _, err := os.Stat(logPath(dir, "dev", "hello")); err != nil {
		t.Fatalf("a function started again writes no file: %v", err)
	}
}
