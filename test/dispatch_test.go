package test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// seen is what a function standing in as an HTTP server received.
type seen struct {
	mu    sync.Mutex
	calls []http.Header
	body  []string
}

func (s *seen) server(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, r.Header.Clone())
		s.body = append(s.body, string(b))
		s.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, `{"said": "hello from the function"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (s *seen) got() ([]http.Header, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.calls...), append([]string(nil), s.body...)
}

// TestDispatchBinary runs `ferry dispatch --plan` as the cluster does: a
// NATS message reaches the functions the trigger's selector picks as a
// CloudEvent, /healthz answers while it runs, and SIGTERM drains it to a
// clean exit, its log JSON lines.
func TestDispatchBinary(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(ns.Shutdown)

	var a, b, other seen
	plan := map[string]any{
		"environment": "prod",
		"natsURL":     ns.ClientURL(),
		"natsTriggers": []any{map[string]any{
			"metadata": map[string]any{"name": "invoices"},
			"spec":     map[string]any{"topic": "billing.invoice", "functionSelector": map[string]any{"matchLabels": map[string]string{"team": "billing"}}},
		}},
		"functions":      map[string]string{"a": a.server(t, 200).URL, "b": b.server(t, 200).URL, "other": other.server(t, 200).URL},
		"functionLabels": map[string]map[string]string{"a": {"team": "billing"}, "b": {"team": "billing"}},
	}
	raw, _ := json.Marshal(plan)
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// A free port for --listen: the binary prints no address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := exec.Command(ferryBin, "dispatch", "--plan", planFile, "--listen", addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer 200 within a minute (%v); the log:\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("billing.invoice", []byte(`{"invoice": 7}`)); err != nil {
		t.Fatal(err)
	}
	for {
		ah, _ := a.got()
		bh, _ := b.got()
		if len(ah) > 0 && len(bh) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message did not reach both selected functions within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name, s := range map[string]*seen{"a": &a, "b": &b} {
		hs, bodies := s.got()
		if len(hs) != 1 || bodies[0] != `{"invoice": 7}` {
			t.Errorf("%s: %d calls, %q; want the message once", name, len(hs), bodies)
			continue
		}
		h := hs[0]
		if h.Get("Ce-Specversion") != "1.0" || h.Get("Ce-Type") != "dev.ferry.nats.message" ||
			h.Get("Ce-Source") != "/ferry/prod/nats/billing.invoice" || h.Get("Ce-Id") == "" {
			t.Errorf("%s: headers %v", name, h)
		}
	}
	if hs, _ := other.got(); len(hs) != 0 {
		t.Errorf("a function the selector does not pick got %d calls", len(hs))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("ferry dispatch after SIGTERM: %v; the log:\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("ferry dispatch did not exit within a minute of SIGTERM; the log:\n%s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("a log line that is not JSON: %q", l)
		}
	}
	if s := stderr.String(); !strings.Contains(s, "draining") || !strings.Contains(s, `"msg":"stopped"`) {
		t.Errorf("the log does not say the drain:\n%s", s)
	}
}

// TestFireBinary: `ferry fire` sends one CloudEvent and exits 0 on a 2xx
// answer, 1 with the answer printed otherwise.
func TestFireBinary(t *testing.T) {
	var ok, failing seen
	okURL, failURL := ok.server(t, http.StatusAccepted).URL, failing.server(t, http.StatusInternalServerError).URL

	r := ferry(t, "fire", "--url", okURL, "--type", "dev.ferry.cron.tick", "--source", "/ferry/prod/cron/nightly", "--data", `{"full": true}`)
	if r.code != 0 || !strings.Contains(r.stdout, "hello from the function") {
		t.Errorf("fire at a function answering 202: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	hs, bodies := ok.got()
	if len(hs) != 1 || bodies[0] != `{"full":true}` || hs[0].Get("Ce-Type") != "dev.ferry.cron.tick" ||
		hs[0].Get("Ce-Source") != "/ferry/prod/cron/nightly" || hs[0].Get("Content-Type") != "application/json" {
		t.Errorf("the function got %d calls: %v %q", len(hs), hs, bodies)
	}

	r = ferry(t, "fire", "--url", failURL, "--type", "t", "--source", "/s")
	if r.code == 0 || !strings.Contains(r.stdout, "hello from the function") || !strings.Contains(r.stderr, "answered 500") {
		t.Errorf("fire at a function answering 500: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := ferry(t, "fire", "--url", okURL, "--type", "t"); r.code == 0 || !strings.Contains(r.stderr, "source") {
		t.Errorf("fire without --source: exit %d, %s", r.code, r.stderr)
	}
}
