package embedded

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// The dispatchers' own tests are in environments/dispatch; these helpers
// serve the tests of their wiring to the gateway (overdue_triggers_test.go,
// secretlog_test.go, logs_test.go).

// triggerCall is one request a test function received.
type triggerCall struct {
	ce          map[string]string // ce-* headers, lower case
	contentType string
	body        string
}

// triggerRecorder is a real HTTP server standing in for a function: it records
// every request and answers what status says (200 when nil).
type triggerRecorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []triggerCall
	status func(n int) int // n counts calls from 1
}

func newTriggerRecorder(t *testing.T) *triggerRecorder {
	r := &triggerRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rec := triggerCall{ce: map[string]string{}, contentType: req.Header.Get("Content-Type"), body: string(body)}
		for k, v := range req.Header {
			if strings.HasPrefix(strings.ToLower(k), "ce-") {
				rec.ce[strings.ToLower(k)] = v[0]
			}
		}
		if req.Method != http.MethodPost || req.URL.Path != "/" {
			rec.ce["bad-request"] = req.Method + " " + req.URL.Path
		}
		r.mu.Lock()
		r.calls = append(r.calls, rec)
		n, status := len(r.calls), r.status
		r.mu.Unlock()
		code := http.StatusOK
		if status != nil {
			code = status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *triggerRecorder) got() []triggerCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]triggerCall(nil), r.calls...)
}

// acquire implements backend with the triggerRecorder's server.
func (r *triggerRecorder) acquire(context.Context) (string, bool, func(), error) {
	return r.srv.URL, false, func() {}, nil
}

// triggerLog collects what the triggers report.
type triggerLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *triggerLog) log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *triggerLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newTestTriggers(t *testing.T, natsURL string) (*triggers, *triggerLog) {
	l := &triggerLog{}
	tr := newTriggers(triggerConfig{Environment: "dev", NATSURL: natsURL, Log: l.log})
	t.Cleanup(tr.stop)
	return tr, l
}

func testFunction(name string, lbls map[string]string) *v1alpha1.Function {
	return &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func testCronTrigger(name, function, schedule, data string) *v1alpha1.CronTrigger {
	ct := &v1alpha1.CronTrigger{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ct.Spec.Function = function
	ct.Spec.Schedule = schedule
	if data != "" {
		ct.Spec.Data = &runtime.RawExtension{Raw: []byte(data)}
	}
	return ct
}

func testNATSTrigger(name, function, subject string, retry *v1alpha1.RetryPolicy) *v1alpha1.NATSTrigger {
	nt := &v1alpha1.NATSTrigger{ObjectMeta: metav1.ObjectMeta{Name: name}}
	nt.Spec.Function = function
	nt.Spec.Topic = subject
	nt.Spec.Retry = retry
	return nt
}

func startTestNATS(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}
