package build

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build/invoker"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// The contract test serves one function, written for each runtime, that
// answers the event it was called with, and sends the three the same
// requests: they must answer the same status, and their handlers must
// have seen the same event. Each echo answers the event as
// {id, type, source, time, subject, dataschema, datacontenttype,
// extensions, data}, absent attributes null and bytes data as base64 (as
// Go's encoding/json writes []byte). The event type test.fail makes the
// handler fail with "boom", test.sleep makes it sleep for two seconds, deaf
// to its deadline: every runtime answers 504 once it has ended.

// contractGoModule is the Go echo: it takes the data as the generated main
// decodes it, as JSON, and the event from the context.
var contractGoModule = map[string]string{
	"go.mod": "module example.com/contract\n\ngo 1.24\n",
	"echo/echo.go": `// Package echo answers the event it was called with.
package echo

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/ferrycd/ferry/build/fn"
)

func Handle(ctx context.Context, data json.RawMessage) (any, error) {
	e, _ := fn.FromContext(ctx)
	switch e.Type {
	case "test.fail":
		return nil, errors.New("boom")
	case "test.sleep":
		time.Sleep(2 * time.Second) // deaf to ctx, as a Python or Node.js handler is
		return "slept", nil
	}
	var at any
	if !e.Time.IsZero() {
		at = e.Time.Format(time.RFC3339Nano)
	}
	return map[string]any{
		"id": e.ID, "type": e.Type, "source": e.Source, "time": at,
		"subject": orNull(e.Subject), "dataschema": orNull(e.DataSchema), "datacontenttype": orNull(e.DataContentType),
		"extensions": e.Extensions, "data": data,
	}, nil
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}
`,
}

const contractPython = `import base64
import time


def handle(event, context):
    if event["type"] == "test.fail":
        raise RuntimeError("boom")
    if event["type"] == "test.sleep":
        time.sleep(2)
        return "slept"
    data = event["data"]
    if isinstance(data, bytes):
        data = base64.b64encode(data).decode("ascii")
    return {
        "id": event["id"], "type": event["type"], "source": event["source"], "time": event["time"],
        "subject": event.get("subject"), "dataschema": event.get("dataschema"),
        "datacontenttype": event.get("datacontenttype"), "extensions": event["extensions"], "data": data,
    }
`

const contractNode = `"use strict";

exports.handle = async (event) => {
  if (event.type === "test.fail") throw new Error("boom");
  if (event.type === "test.sleep") {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    return "slept";
  }
  const data = Buffer.isBuffer(event.data) ? event.data.toString("base64") : event.data;
  return {
    id: event.id, type: event.type, source: event.source, time: event.time,
    subject: event.subject ?? null, dataschema: event.dataschema ?? null,
    datacontenttype: event.datacontenttype ?? null, extensions: event.extensions, data,
  };
};
`

// contractRuntime is one runtime's echo, served twice: with the default
// FUNCTION_TIMEOUT and with FUNCTION_TIMEOUT=200ms.
type contractRuntime struct {
	name         string
	url, slowURL string
}

// contractCase is one request and what every runtime must answer.
type contractCase struct {
	name         string
	slow         bool // sent to the functions with FUNCTION_TIMEOUT=200ms
	method, path string
	header       []string // name, value, ...; added in order, so a name may repeat
	body         string
	status       int
	event        map[string]any // fields of the echoed event, after contractNormalise
	errorIs      string         // the whole error message, the same in every runtime
	errorHas     string         // part of the error message
	body200      string         // the whole answer, for answers that are not an event
	contentType  string         // the answer's Content-Type, for answers that are not an event
}

// contractCE returns the headers of a binary-mode CloudEvent with more
// added; of ce-id, ce-source and ce-type, those more sets are not set
// again.
func contractCE(more ...string) []string {
	h := []string{"ce-specversion", "1.0"}
	for _, kv := range [][2]string{{"ce-id", "e-1"}, {"ce-source", "/tests"}, {"ce-type", "test.echo"}} {
		if !contractHas(more, kv[0]) {
			h = append(h, kv[0], kv[1])
		}
	}
	return append(h, more...)
}

func contractHas(header []string, name string) bool {
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], name) {
			return true
		}
	}
	return false
}

// contractEvent is the echo of a CloudEvent from contractCE, fields changed.
func contractEvent(extra ...any) map[string]any {
	e := map[string]any{
		"id": "e-1", "type": "test.echo", "source": "/tests", "time": nil, "subject": nil, "dataschema": nil,
		"datacontenttype": nil, "extensions": map[string]any{}, "data": nil,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i].(string)] = extra[i+1]
	}
	return e
}

// contractPlain is the echo of a plain request, after contractNormalise.
func contractPlain(extra ...any) map[string]any {
	e := contractEvent("id", "<fresh>", "type", "dev.ferry.http.request", "source", "/", "time", "<now>")
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i].(string)] = extra[i+1]
	}
	return e
}

func contractB64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// contractNesting is JSON of n arrays, each inside the one before.
func contractNesting(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// contractNormalise makes echoes from the three runtimes comparable: a
// plain request's fresh id becomes "<fresh>" and its current time "<now>";
// a ce-time becomes the same instant in UTC as Go writes it.
func contractNormalise(e map[string]any) error {
	if e["type"] == "dev.ferry.http.request" {
		if id, ok := e["id"].(string); !ok || id == "" {
			return fmt.Errorf("a plain request's event has id %v", e["id"])
		}
		e["id"] = "<fresh>"
		ts, _ := e["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || time.Since(at).Abs() > time.Minute {
			return fmt.Errorf("a plain request's event has time %v, not the current time", e["time"])
		}
		e["time"] = "<now>"
		return nil
	}
	if ts, ok := e["time"].(string); ok {
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return fmt.Errorf("the event's time %q is not RFC 3339: %v", ts, err)
		}
		e["time"] = at.UTC().Format(time.RFC3339Nano)
	}
	return nil
}

var contractCases = []contractCase{{
	name: "binary CloudEvent with JSON data",
	header: contractCE("ce-time", "2024-05-01T14:00:00.5+02:00", "ce-subject", "order-7", "ce-dataschema", "https://example.com/s",
		"ce-traceparent", "00-abc-01", "ce-tenant", "acme%2Feu", "Content-Type", "application/json"),
	body:   `{"name":"ferry","sizes":[1,2.5],"ok":true,"none":null,"text":"caf\u00e9 ☕"}`,
	status: 200,
	event: contractEvent("time", "2024-05-01T12:00:00.5Z", "subject", "order-7", "dataschema", "https://example.com/s",
		"datacontenttype", "application/json", "extensions", map[string]any{"traceparent": "00-abc-01", "tenant": "acme/eu"},
		"data", map[string]any{"name": "ferry", "sizes": []any{1.0, 2.5}, "ok": true, "none": nil, "text": "café ☕"}),
}, {
	name:   "plain GET",
	method: http.MethodGet,
	status: 200,
	event:  contractPlain(),
}, {
	name:   "plain POST of text in latin1",
	path:   "/orders?page=2",
	header: []string{"Content-Type", "text/plain; charset=latin1"},
	body:   "caf\xe9 \xa3 \x80",
	status: 200,
	event:  contractPlain("datacontenttype", "text/plain; charset=latin1", "data", "café £ \u0080"),
}, {
	name:   "text in US-ASCII",
	header: []string{"Content-Type", `text/plain; charset="US-ASCII"`},
	body:   "caf\xe9",
	status: 200,
	event:  contractPlain("datacontenttype", `text/plain; charset="US-ASCII"`, "data", "caf\ufffd"),
}, {
	name:   "text in a charset no runtime decodes by is UTF-8",
	header: []string{"Content-Type", "text/plain; charset=zlib"},
	body:   "caf\xc3\xa9 \xff",
	status: 200,
	event:  contractPlain("datacontenttype", "text/plain; charset=zlib", "data", "café \ufffd"),
}, {
	name:   "ill-formed UTF-8 text",
	header: []string{"Content-Type", "text/markdown"},
	body:   "\xef\xbb\xbfa\xe2\x82b\xf0\x80\x80c\xed\xa0\x80d\xf4\x8f\xbf",
	status: 200,
	event:  contractPlain("datacontenttype", "text/markdown", "data", "\ufeffa\ufffdb\ufffd\ufffd\ufffdc\ufffd\ufffd\ufffdd\ufffd"),
}, {
	name:   "JSON without Content-Type",
	method: http.MethodPut,
	body:   `{"a":[1,"x"]}`,
	status: 200,
	event:  contractPlain("data", map[string]any{"a": []any{1.0, "x"}}),
}, {
	name:   "not JSON and no Content-Type is bytes",
	body:   "hello",
	status: 200,
	event:  contractPlain("data", contractB64("hello")),
}, {
	name:   "bytes",
	header: contractCE("Content-Type", "application/octet-stream"),
	body:   "\x00\x01\xfe",
	status: 200,
	event:  contractEvent("datacontenttype", "application/octet-stream", "data", contractB64("\x00\x01\xfe")),
}, {
	name:   "POST /healthz is an invocation",
	path:   "/healthz",
	header: []string{"Content-Type", "text/plain"},
	body:   "ping",
	status: 200,
	event:  contractPlain("datacontenttype", "text/plain", "data", "ping"),
}, {
	name:        "GET /healthz",
	method:      http.MethodGet,
	path:        "/healthz",
	status:      200,
	body200:     "ok",
	contentType: "text/plain; charset=utf-8",
}, {
	name:        "HEAD /healthz",
	method:      http.MethodHead,
	path:        "/healthz",
	status:      200,
	contentType: "text/plain; charset=utf-8",
}, {
	name:        "HEAD /metrics",
	method:      http.MethodHead,
	path:        "/metrics",
	status:      200,
	contentType: "text/plain; version=0.0.4; charset=utf-8",
}, {
	name:   "of a repeated ce-* header the first counts",
	header: contractCE("ce-id", "first", "ce-id", "second", "ce-tenant", "acme", "ce-tenant", "globex"),
	status: 200,
	event:  contractEvent("id", "first", "extensions", map[string]any{"tenant": "acme"}),
}, {
	name:     "ce-specversion 0.3",
	header:   []string{"ce-specversion", "0.3", "ce-id", "e-1", "ce-source", "/tests", "ce-type", "test.echo"},
	status:   400,
	errorHas: "ce-specversion",
}, {
	name:     "missing ce-id",
	header:   []string{"ce-specversion", "1.0", "ce-source", "/tests", "ce-type", "test.echo"},
	status:   400,
	errorHas: "ce-id",
}, {
	name:     "missing ce-type",
	header:   []string{"ce-specversion", "1.0", "ce-id", "e-1", "ce-source", "/tests"},
	status:   400,
	errorHas: "ce-type",
}, {
	name:     "JSON 200,000 arrays deep",
	header:   contractCE("Content-Type", "application/json"),
	body:     strings.Repeat("[", 200000),
	status:   400,
	errorHas: "nests deeper than 512",
}, {
	name:     "JSON 513 deep",
	header:   contractCE("Content-Type", "application/vnd.ferry+json"),
	body:     contractNesting(513),
	status:   400,
	errorHas: "nests deeper than 512",
}, {
	name:   "JSON 512 deep",
	header: contractCE("Content-Type", "application/json"),
	body:   strings.Repeat("[", 511) + `"[{\"\\"` + strings.Repeat("]", 511),
	status: 200,
}, {
	name:   "JSON too deep and no Content-Type is bytes",
	body:   contractNesting(513),
	status: 200,
	event:  contractPlain("data", contractB64(contractNesting(513))),
}, {
	name:     "invalid JSON",
	header:   contractCE("Content-Type", "application/json"),
	body:     `{"a":`,
	status:   400,
	errorHas: "not valid JSON",
}, {
	name:     "JSON with a byte order mark",
	header:   contractCE("Content-Type", "application/json"),
	body:     "\xef\xbb\xbf{}",
	status:   400,
	errorHas: "not valid JSON",
}, {
	name:     "JSON that is not UTF-8",
	header:   contractCE("Content-Type", "application/json"),
	body:     "\"caf\xe9\"",
	status:   400,
	errorHas: "not valid JSON",
}, {
	name:     "NaN is not JSON",
	header:   contractCE("Content-Type", "application/json"),
	body:     `[NaN]`,
	status:   400,
	errorHas: "not valid JSON",
}, {
	name:    "the handler fails",
	header:  contractCE("ce-type", "test.fail"),
	status:  500,
	errorIs: "boom",
}, {
	name:    "the handler times out",
	slow:    true,
	header:  contractCE("ce-type", "test.sleep"),
	status:  504,
	errorIs: "timed out: the handler did not answer within FUNCTION_TIMEOUT 200ms",
}}

// contractTimes are ce-time values and whether every runtime takes them.
var contractTimes = map[string]bool{
	"2024-05-01T12:00:00Z":                 true,
	"2024-02-29T23:59:59.1234567891+23:59": true,
	"2000-02-29T00:00:00-00:00":            true,
	"0000-01-01T00:00:00Z":                 true,
	"2024-05-01t12:00:00Z":                 false,
	"2024-05-01T12:00:00z":                 false,
	"2016-12-31T23:59:60Z":                 false,
	"2023-02-29T12:00:00Z":                 false,
	"1900-02-29T12:00:00Z":                 false,
	"2024-04-31T12:00:00Z":                 false,
	"2024-05-01T12:00:00,5Z":               false,
	"2024-05-01T12:00:00.Z":                false,
	"2024-05-01T12:00:00+24:00":            false,
	"2024-05-01T12:00:00+01:60":            false,
	"2024-05-01T12:00:00+0100":             false,
	"2024-05-01T12:00:00":                  false,
	"2024-05-01 12:00:00Z":                 false,
	"2024-05-01T1:00:00Z":                  false,
	"yesterday":                            false,
}

// TestContract runs contractCases against the Go main, the Python invoker
// and the Node.js invoker.
func TestContract(t *testing.T) {
	t.Parallel()
	runtimes := contractStart(t)

	cases := contractCases
	for ts, ok := range contractTimes {
		c := contractCase{name: "ce-time " + ts, header: contractCE("ce-time", ts), status: 400, errorHas: "ce-time"}
		if ok {
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatalf("%s: %v", ts, err)
			}
			c = contractCase{name: c.name, header: c.header, status: 200, event: contractEvent("time", at.UTC().Format(time.RFC3339Nano))}
		}
		cases = append(cases, c)
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			echoes := map[string]map[string]any{}
			errs := map[string]string{}
			for _, rt := range runtimes {
				url := rt.url
				if c.slow {
					url = rt.slowURL
				}
				start := time.Now()
				status, contentType, body, err := contractDo(c, url)
				took := time.Since(start)
				if err != nil {
					t.Errorf("%s: %v", rt.name, err)
					continue
				}
				if status != c.status {
					t.Errorf("%s: status %d, want %d; body %.300s", rt.name, status, c.status, body)
					continue
				}
				if c.contentType != "" && contentType != c.contentType {
					t.Errorf("%s: Content-Type %q, want %q", rt.name, contentType, c.contentType)
				}
				switch {
				case c.method == http.MethodHead:
					if len(body) > 0 {
						t.Errorf("%s: HEAD answered a body: %.300s", rt.name, body)
					}
				case c.body200 != "":
					if string(body) != c.body200 {
						t.Errorf("%s: body %q, want %q", rt.name, body, c.body200)
					}
				case status == http.StatusOK:
					var e map[string]any
					if err := json.Unmarshal(body, &e); err != nil || contentType != "application/json" {
						t.Errorf("%s: answered %q %.300s (%v), want an event as JSON", rt.name, contentType, body, err)
						continue
					}
					if err := contractNormalise(e); err != nil {
						t.Errorf("%s: %v", rt.name, err)
						continue
					}
					echoes[rt.name] = e
				default:
					var answer struct {
						Error *string `json:"error"`
					}
					if err := json.Unmarshal(body, &answer); err != nil || answer.Error == nil || contentType != "application/json" {
						t.Errorf("%s: answered %q %.300s, want {\"error\": ...}", rt.name, contentType, body)
						continue
					}
					errs[rt.name] = *answer.Error
					if c.errorIs != "" && *answer.Error != c.errorIs {
						t.Errorf("%s: error %q, want %q", rt.name, *answer.Error, c.errorIs)
					}
					if !strings.Contains(*answer.Error, c.errorHas) {
						t.Errorf("%s: error %q does not say %q", rt.name, *answer.Error, c.errorHas)
					}
				}
				// why: a lower bound only: the answer waits for the handler's
				// end. Half its sleep, as a timer may fire a little early, is
				// still far past the 200ms timeout.
				if c.slow && took < time.Second {
					t.Errorf("%s: answered after %v, before the handler's two seconds ended", rt.name, took)
				}
			}
			if c.event != nil {
				for name, e := range echoes {
					if !reflect.DeepEqual(e, c.event) {
						t.Errorf("%s: the handler got\n%v\nwant\n%v", name, e, c.event)
					}
				}
			}
			contractSame(t, echoes)
			if c.errorIs != "" {
				contractSame(t, errs)
			}
		})
	}
}

// contractSame checks every runtime answered the same value.
func contractSame[V any](t *testing.T, by map[string]V) {
	t.Helper()
	first, name := any(nil), ""
	for rt, v := range by {
		if first == nil {
			first, name = v, rt
			continue
		}
		if !reflect.DeepEqual(any(v), first) {
			t.Errorf("%s and %s differ:\n%s: %.1000v\n%s: %.1000v", name, rt, name, first, rt, v)
		}
	}
}

func contractDo(c contractCase, url string) (int, string, []byte, error) {
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(cmp.Or(c.method, http.MethodPost), url+cmp.Or(c.path, "/"), body)
	if err != nil {
		return 0, "", nil, err
	}
	for i := 0; i+1 < len(c.header); i += 2 {
		req.Header.Add(c.header[i], c.header[i+1])
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), answer, err
}

// contractStart serves the echo in every runtime, twice each.
func contractStart(t *testing.T) []contractRuntime {
	t.Helper()
	runtimes := []contractRuntime{{name: "go"}, {name: v1alpha1.RuntimePython}, {name: v1alpha1.RuntimeNodeJS}}
	for i := range runtimes[1:] {
		rt := &runtimes[i+1]
		root := contractLayOut(t, rt.name)
		rt.url = contractStartInterpreted(t, rt.name, root, "FUNCTION_NAME=contract")
		rt.slowURL = contractStartInterpreted(t, rt.name, root, "FUNCTION_NAME=contract", "FUNCTION_TIMEOUT=200ms")
	}
	bin := goCompileT(t, goBuild{Src: os.DirFS(goWriteTree(t, contractGoModule)), Source: "echo", Handler: "Handle"})
	runtimes[0].url = goStart(t, bin, "FUNCTION_NAME=contract").url
	runtimes[0].slowURL = goStart(t, bin, "FUNCTION_NAME=contract", "FUNCTION_TIMEOUT=200ms").url
	return runtimes
}

// contractLayOut lays out the runtime's invoker and the echo as in an
// image, under a folder that stands for /ferry, and returns that folder.
func contractLayOut(t *testing.T, runtime string) string {
	t.Helper()
	root := t.TempDir()
	files, err := invoker.Files(runtime)
	if err != nil {
		t.Fatal(err)
	}
	files["ferry/function/main.py"] = []byte(contractPython)
	files["ferry/function/index.js"] = []byte(contractNode)
	for name, content := range files {
		file := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(name, "ferry/")))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// contractStartInterpreted runs the runtime's invoker from root with the
// host's interpreter and returns its URL once it is healthy.
func contractStartInterpreted(t *testing.T, runtime, root string, env ...string) string {
	t.Helper()
	entrypoint, err := invoker.Entrypoint(runtime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath(entrypoint[0]); err != nil {
		t.Fatalf("%s is not installed (%v): the contract test needs it; run hack/deps.sh", entrypoint[0], err)
	}
	handler := map[string]string{v1alpha1.RuntimePython: "main.handle", v1alpha1.RuntimeNodeJS: "index.handle"}[runtime]
	port := freePort(t)
	cmd := exec.Command(entrypoint[0], filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(entrypoint[1], "/ferry/"))))
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "PORT" && name != "PYTHONPATH" && name != "NODE_PATH" && name != "NODE_OPTIONS" &&
			!strings.HasPrefix(name, "FUNCTION_") && !strings.HasPrefix(name, "FERRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("PORT=%d", port), "FERRY_HANDLER="+handler, "PYTHONDONTWRITEBYTECODE=1")
	cmd.Env = append(cmd.Env, env...)
	stderr := &contractLog{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ok" {
				return url
			}
		}
		select {
		case <-exited:
			t.Fatalf("the %s invoker exited before it was healthy:\n%s", runtime, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s invoker is not healthy after a minute: %v\n%s", runtime, err, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// contractLog is an invoker's output, safe to write and read at once.
type contractLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *contractLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *contractLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
