package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestRunNATSTrigger: `ferry run --nats URL` connects the repository's
// NATSTrigger to that server, and a message published there reaches the
// function as a CloudEvent.
func TestRunNATSTrigger(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(ns.Shutdown)

	dir := t.TempDir()
	files := map[string]string{
		"ferry.yaml": `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: sink}
spec:
  runtime: python
  handler: main.handle
  source: sink
---
apiVersion: ferry.dev/v1alpha1
kind: NATSTrigger
metadata: {name: orders}
spec:
  function: sink
  topic: orders.created
`,
		// The function runs in the sandbox, which no host folder reaches:
		// what it saw goes to its log.
		"sink/main.py": `import json, sys


def handle(event, context):
    print("SEEN " + json.dumps({"type": event["type"], "data": event["data"]}), flush=True)
    return {"ok": True}
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	_, dataDir, output := startRun(t, dir, "--nats", ns.ClientURL())
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg := nats.NewMsg("orders.created")
	msg.Header.Set("Content-Type", "application/json")
	msg.Data = []byte(`{"order":7}`)
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	logFile := filepath.Join(dataDir, "logs", "local", "sink.log")
	for {
		b, _ := os.ReadFile(logFile)
		var seen []string
		for _, line := range strings.Split(string(b), "\n") {
			if _, ev, ok := strings.Cut(line, " stdout SEEN "); ok {
				seen = append(seen, ev)
			}
		}
		if len(seen) > 0 {
			if len(seen) != 1 || !strings.Contains(seen[0], `"data": {"order": 7}`) {
				t.Fatalf("the function saw %q, want the message once", seen)
			}
			return
		}
		if time.Now().After(deadline) {
			logs := ferry(t, "logs", "sink", "--data", dataDir)
			t.Fatalf("the message did not reach the function within 60 s:\n%s\nits log:\n%s%s", output, logs.stdout, logs.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
