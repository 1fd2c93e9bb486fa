package build

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// These tests run the real go command and the binaries it writes. A cold
// build cache compiles the standard library once (about a minute on two
// cores); after that each binary is a link of a second or two.

// goCompileT compiles b, filling in Out, and fails the test on error.
func goCompileT(t *testing.T, b goBuild) string {
	t.Helper()
	if b.Out == "" {
		b.Out = filepath.Join(t.TempDir(), "function")
	}
	if b.Handler == "" {
		b.Handler = "Handle"
	}
	if err := b.compile(t.Context()); err != nil {
		t.Fatalf("compile(%s, %s): %v", b.Source, b.Handler, err)
	}
	return b.Out
}

// goCompileAll compiles the builds in parallel and returns their binaries.
func goCompileAll(t *testing.T, builds ...goBuild) []string {
	t.Helper()
	bins := make([]string, len(builds))
	errs := make(chan error, len(builds))
	for i, b := range builds {
		bins[i] = filepath.Join(t.TempDir(), fmt.Sprintf("function-%d", i))
		b.Out = bins[i]
		go func() {
			if err := b.compile(t.Context()); err != nil {
				errs <- fmt.Errorf("compile(%s, %s): %w", b.Source, b.Handler, err)
				return
			}
			errs <- nil
		}()
	}
	for range builds {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return bins
}

// goFunction is a running function binary.
type goFunction struct {
	url    string
	cmd    *exec.Cmd
	stderr bytes.Buffer // read only after exited is closed
	exited chan struct{}
	err    error // of Wait, set before exited is closed
}

// goStart runs bin on a free port and waits until /healthz answers.
func goStart(t *testing.T, bin string, env ...string) *goFunction {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	f := &goFunction{url: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
	f.cmd = exec.Command(bin)
	f.cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	f.cmd.Env = append(f.cmd.Env, env...)
	f.cmd.Stderr = &f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.err = f.cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.exited
	})
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-f.exited:
			t.Fatalf("function exited before it was healthy: %v\n%s", f.err, f.stderr.String())
		default:
		}
		resp, err := http.Get(f.url + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ok" {
				return f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("function not healthy after a minute: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and asserts a clean exit.
func (f *goFunction) stop(t *testing.T) {
	t.Helper()
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.exited:
	case <-time.After(time.Minute):
		t.Fatal("function still running a minute after SIGTERM")
	}
	if f.err != nil {
		t.Fatalf("function exited with %v after SIGTERM, want status 0\n%s", f.err, f.stderr.String())
	}
}

// goReply is one HTTP answer.
type goReply struct {
	status      int
	contentType string
	body        string
}

// call sends a request to the function; headers alternate name, value.
func (f *goFunction) call(t *testing.T, method, path, body string, headers ...string) goReply {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
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
	return goReply{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// ceHeaders are the headers of a binary-mode CloudEvent, plus more.
func ceHeaders(id, contentType string, more ...string) []string {
	return append([]string{
		"ce-specversion", "1.0", "ce-id", id, "ce-source", "/tests", "ce-type", "dev.ferry.test",
		"Content-Type", contentType,
	}, more...)
}

func (r goReply) want(t *testing.T, status int, contentType, body string) {
	t.Helper()
	if r.status != status || r.contentType != contentType || r.body != body {
		t.Errorf("got %d %q %s\nwant %d %q %s", r.status, r.contentType, r.body, status, contentType, body)
	}
}

func (r goReply) wantError(t *testing.T, status int, contains string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if r.status != status || r.contentType != "application/json" || json.Unmarshal([]byte(r.body), &e) != nil || !strings.Contains(e.Error, contains) {
		t.Errorf("got %d %q %s\nwant %d {\"error\": \"...%s...\"}", r.status, r.contentType, r.body, status, contains)
	}
}

// metric returns the value of one sample line of /metrics.
func (f *goFunction) metric(t *testing.T, sample string) string {
	t.Helper()
	r := f.call(t, http.MethodGet, "/metrics", "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.contentType, "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %q", r.status, r.contentType)
	}
	for line := range strings.Lines(r.body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			return v
		}
	}
	t.Fatalf("/metrics has no sample %s:\n%s", sample, r.body)
	return ""
}

// goCopyDir copies a folder of the repository into a new temp folder.
func goCopyDir(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// goWriteTree writes files (path → content) under a new temp folder.
func goWriteTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestGoExample builds examples/go twice, from the repository and from a
// copy elsewhere, checks the binaries are the same static executable, and
// serves the contract with it.
func TestGoExample(t *testing.T) {
	t.Parallel()
	bins := goCompileAll(t,
		goBuild{Src: os.DirFS("../examples/go"), Source: "hello", Handler: "Handle"},
		goBuild{Src: os.DirFS(goCopyDir(t, "../examples/go")), Source: "hello", Handler: "Handle"},
	)

	t.Run("reproducible", func(t *testing.T) {
		a, err := os.ReadFile(bins[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(bins[1])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("two builds of examples/go from different folders differ (%d and %d bytes)", len(a), len(b))
		}
	})

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bins[0])
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("binary has a PT_INTERP program header: it is dynamically linked")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("binary needs shared libraries %v", libs)
		}
		if info, err := os.Stat(bins[0]); err != nil || info.Mode().Perm() != 0o755 {
			t.Errorf("binary mode = %v, %v; want 0755", info.Mode(), err)
		}
	})

	f := goStart(t, bins[1], "FUNCTION_NAME=hello")
	calls := 0
	call := func(t *testing.T, method, path, body string, headers ...string) goReply {
		calls++
		return f.call(t, method, path, body, headers...)
	}

	t.Run("cloudevent", func(t *testing.T) {
		call(t, http.MethodPost, "/", `{"name":"ferry","n":[1,2]}`, ceHeaders("e-1", "application/json")...).
			want(t, 200, "application/json", `{"message":"hello from go","echo":{"name":"ferry","n":[1,2]}}`)
	})
	t.Run("plain text", func(t *testing.T) {
		call(t, http.MethodPost, "/anything", "hi <you>", "Content-Type", "text/plain; charset=utf-8").
			want(t, 200, "application/json", `{"message":"hello from go","echo":"hi <you>"}`)
	})
	t.Run("text by its charset", func(t *testing.T) {
		call(t, http.MethodPost, "/", "caf\xe9 \x80\xff", "Content-Type", "text/plain; charset=ISO-8859-1").
			want(t, 200, "application/json", "{\"message\":\"hello from go\",\"echo\":\"café \u0080ÿ\"}")
		call(t, http.MethodPost, "/", "\xa3", "Content-Type", `text/csv; Charset="latin1"`).
			want(t, 200, "application/json", `{"message":"hello from go","echo":"£"}`)
		call(t, http.MethodPost, "/", "caf\xe9!", "Content-Type", "text/plain; charset=us-ascii").
			want(t, 200, "application/json", "{\"message\":\"hello from go\",\"echo\":\"caf\ufffd!\"}")
		// Any other charset is UTF-8, with U+FFFD for each maximal
		// ill-formed subsequence, as in Python and Node.js.
		for _, charset := range []string{"zlib", "idna", "utf-16", "windows-1252", ""} {
			call(t, http.MethodPost, "/", "\xef\xbb\xbfa\xe2\x82b\xf0\x80\x80c\xed\xa0\x80d\xf4\x8f\xbf", "Content-Type", "text/plain; charset="+charset).
				want(t, 200, "application/json", "{\"message\":\"hello from go\",\"echo\":\"\ufeffa\ufffdb\ufffd\ufffd\ufffdc\ufffd\ufffd\ufffdd\ufffd\"}")
		}
	})
	t.Run("HEAD /healthz and /metrics", func(t *testing.T) {
		f.call(t, http.MethodHead, "/healthz", "").want(t, 200, "text/plain; charset=utf-8", "")
		f.call(t, http.MethodHead, "/metrics", "").want(t, 200, "text/plain; version=0.0.4; charset=utf-8", "")
		call(t, http.MethodPut, "/metrics", `"put"`).want(t, 200, "application/json", `{"message":"hello from go","echo":"put"}`)
	})
	t.Run("plain JSON without content type", func(t *testing.T) {
		call(t, http.MethodPut, "/", `[true]`).
			want(t, 200, "application/json", `{"message":"hello from go","echo":[true]}`)
	})
	t.Run("empty body is null", func(t *testing.T) {
		call(t, http.MethodGet, "/", "").
			want(t, 200, "application/json", `{"message":"hello from go","echo":null}`)
	})
	t.Run("bytes are base64", func(t *testing.T) {
		call(t, http.MethodPost, "/", "\x00\x01", "Content-Type", "application/octet-stream").
			want(t, 200, "application/json", `{"message":"hello from go","echo":"AAE="}`)
	})
	t.Run("specversion 0.3", func(t *testing.T) {
		h := ceHeaders("e-2", "application/json")
		h[1] = "0.3"
		call(t, http.MethodPost, "/", `{}`, h...).wantError(t, 400, `ce-specversion "0.3"`)
	})
	t.Run("missing ce-source", func(t *testing.T) {
		call(t, http.MethodPost, "/", `{}`, "ce-specversion", "1.0", "ce-id", "e-3", "ce-type", "t").wantError(t, 400, "ce-source")
	})
	t.Run("bad ce-time", func(t *testing.T) {
		call(t, http.MethodPost, "/", `{}`, ceHeaders("e-4", "application/json", "ce-time", "yesterday")...).wantError(t, 400, "ce-time")
	})
	t.Run("invalid JSON", func(t *testing.T) {
		call(t, http.MethodPost, "/", `{"a":`, ceHeaders("e-5", "application/json")...).wantError(t, 400, "not valid JSON")
		call(t, http.MethodPost, "/", "\xef\xbb\xbf{}", ceHeaders("e-5", "application/json")...).wantError(t, 400, "not valid JSON")
		call(t, http.MethodPost, "/", "\"caf\xe9\"", ceHeaders("e-5", "application/json")...).wantError(t, 400, "not UTF-8")
	})
	t.Run("JSON nesting", func(t *testing.T) {
		call(t, http.MethodPost, "/", strings.Repeat("[", 200000), ceHeaders("e-6", "application/json")...).
			wantError(t, 400, "nests deeper than 512 arrays and objects")
		call(t, http.MethodPost, "/", strings.Repeat("[", 513)+strings.Repeat("]", 513), ceHeaders("e-6", "application/json")...).
			wantError(t, 400, "nests deeper than 512 arrays and objects")
		deep := strings.Repeat("[", 511) + `"[[\"{{\\"` + strings.Repeat("]", 511)
		call(t, http.MethodPost, "/", deep, ceHeaders("e-6", "application/json")...).
			want(t, 200, "application/json", `{"message":"hello from go","echo":`+deep+`}`)
		// Without a Content-Type, JSON too deep is bytes.
		tooDeep := strings.Repeat("[", 513) + strings.Repeat("]", 513)
		call(t, http.MethodPost, "/", tooDeep).
			want(t, 200, "application/json", `{"message":"hello from go","echo":"`+base64.StdEncoding.EncodeToString([]byte(tooDeep))+`"}`)
	})
	t.Run("ce-time", func(t *testing.T) {
		for _, ts := range []string{"2024-05-01t12:00:00Z", "2024-05-01T12:00:00z", "2016-12-31T23:59:60Z", "2023-02-29T12:00:00Z",
			"2024-05-01T12:00:00,5Z", "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+01:60", "2024-05-01T12:00:00."} {
			call(t, http.MethodPost, "/", `{}`, ceHeaders("e-7", "application/json", "ce-time", ts)...).wantError(t, 400, `ce-time "`+ts+`"`)
		}
		call(t, http.MethodPost, "/", `{}`, ceHeaders("e-7", "application/json", "ce-time", "2024-02-29T23:59:59.1234567891+23:59")...).
			want(t, 200, "application/json", `{"message":"hello from go","echo":{}}`)
	})
	t.Run("body over 6 MiB", func(t *testing.T) {
		call(t, http.MethodPost, "/", strings.Repeat("x", 6<<20+1), "Content-Type", "text/plain").wantError(t, 413, "6 MiB")
		call(t, http.MethodPost, "/", `"`+strings.Repeat("x", 6<<20-2)+`"`, "Content-Type", "application/json").want(t, 200, "application/json",
			`{"message":"hello from go","echo":"`+strings.Repeat("x", 6<<20-2)+`"}`)
	})
	t.Run("metrics", func(t *testing.T) {
		label := `{function="hello"}`
		for sample, want := range map[string]string{
			"function_calls_total" + label:                                 fmt.Sprint(calls),
			"function_failures_total" + label:                              "0",
			"function_duration_seconds_count" + label:                      fmt.Sprint(calls),
			`function_duration_seconds_bucket{function="hello",le="+Inf"}`: fmt.Sprint(calls),
		} {
			if got := f.metric(t, sample); got != want {
				t.Errorf("%s = %s, want %s", sample, got, want)
			}
		}
		r := f.call(t, http.MethodGet, "/metrics", "")
		var les []string
		for _, m := range regexp.MustCompile(`function_duration_seconds_bucket\{function="hello",le="([^"]+)"\}`).FindAllStringSubmatch(r.body, -1) {
			les = append(les, m[1])
		}
		if got, want := strings.Join(les, " "), "0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf"; got != want {
			t.Errorf("buckets le = %s, want %s", got, want)
		}
		for _, line := range []string{"# TYPE function_calls_total counter", "# TYPE function_failures_total counter", "# TYPE function_duration_seconds histogram"} {
			if !strings.Contains(r.body, line+"\n") {
				t.Errorf("/metrics lacks %q", line)
			}
		}
	})
	t.Run("sigterm", func(t *testing.T) { f.stop(t) })
}

// goSigsModule is a user module with one handler per supported signature.
var goSigsModule = map[string]string{
	"go.mod": "module example.com/sigs\n\ngo 1.24\n",
	"sigs/sigs.go": `// Package sigs has one handler per signature ferry accepts.
package sigs

import (
	"context"
	"errors"

	"github.com/ferrycd/ferry/build/fn"
)

// Event answers the event it was called with.
func Event(ctx context.Context, e fn.Event) (any, error) {
	var data any
	if err := e.DecodeData(&data); err != nil {
		return nil, err
	}
	from, ok := fn.FromContext(ctx)
	return map[string]any{
		"id": e.ID, "source": e.Source, "type": e.Type, "specversion": e.SpecVersion,
		"subject": e.Subject, "time": e.Time, "ext": e.Extensions, "data": data,
		"inContext": ok && from.ID == e.ID,
	}, nil
}

type Order struct {
	Item string ` + "`json:\"item\"`" + `
	Qty  int    ` + "`json:\"qty\"`" + `
}

type Receipt struct {
	Item    string ` + "`json:\"item\"`" + `
	Total   int    ` + "`json:\"total\"`" + `
	EventID string ` + "`json:\"event\"`" + `
}

// Price takes its data decoded into a struct and answers a struct.
func Price(ctx context.Context, o Order) (Receipt, error) {
	e, ok := fn.FromContext(ctx)
	if !ok {
		return Receipt{}, errors.New("no event in the context")
	}
	return Receipt{Item: o.Item, Total: 3 * o.Qty, EventID: e.ID}, nil
}

// Bytes takes the raw body and answers bytes, or fails as asked.
func Bytes(ctx context.Context, data []byte) (any, error) {
	switch string(data) {
	case "fail":
		return nil, errors.New("failing as asked")
	case "panic":
		panic("panicking as asked")
	case "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return append([]byte("got:"), data...), nil
}
`,
}

// TestGoSignatures builds one user module (which imports the SDK without
// requiring it) with three handlers and calls each.
func TestGoSignatures(t *testing.T) {
	t.Parallel()
	src := os.DirFS(goWriteTree(t, goSigsModule))
	bins := goCompileAll(t,
		goBuild{Src: src, Source: "sigs", Handler: "Event"},
		goBuild{Src: src, Source: "sigs", Handler: "Price"},
		goBuild{Src: src, Source: "sigs", Handler: "Bytes"},
	)

	t.Run("fn.Event", func(t *testing.T) {
		t.Parallel()
		f := goStart(t, bins[0], "FUNCTION_NAME=event")
		r := f.call(t, http.MethodPost, "/", `{"k":"v"}`, ceHeaders("e-1", "application/json",
			"ce-time", "2026-11-01T12:00:00Z", "ce-subject", "orders/1",
			"ce-traceparent", "00-abc-def-01", "ce-note", "caf%C3%A9%20au%20lait")...)
		r.want(t, 200, "application/json", `{"data":{"k":"v"},"ext":{"note":"café au lait","traceparent":"00-abc-def-01"},"id":"e-1","inContext":true,"source":"/tests","specversion":"1.0","subject":"orders/1","time":"2026-11-01T12:00:00Z","type":"dev.ferry.test"}`)

		r = f.call(t, http.MethodPost, "/x", "plain words", "Content-Type", "text/plain")
		r.wantError(t, 500, `content type "text/plain", not JSON`)

		// JSON data is checked before the handler is called, whatever it takes.
		f.call(t, http.MethodPost, "/", strings.Repeat("[", 200000), ceHeaders("e-2", "application/json")...).
			wantError(t, 400, "nests deeper than 512 arrays and objects")

		// Of a repeated ce-* header the first counts.
		req, _ := http.NewRequest(http.MethodPost, f.url+"/", strings.NewReader(`1`))
		for _, kv := range [][2]string{{"ce-specversion", "1.0"}, {"ce-id", "first"}, {"ce-id", "second"}, {"ce-source", "/s"},
			{"ce-type", "t"}, {"ce-tenant", "acme"}, {"ce-tenant", "globex"}, {"Content-Type", "application/json"}} {
			req.Header.Add(kv[0], kv[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var dup struct {
			ID  string
			Ext map[string]string
		}
		if err := json.Unmarshal(body, &dup); err != nil || dup.ID != "first" || dup.Ext["tenant"] != "acme" {
			t.Errorf("repeated ce-* headers became %s", body)
		}

		r = f.call(t, http.MethodPost, "/", "")
		var got struct {
			ID, Source, Type string
			Ext              map[string]string
			InContext        bool
		}
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 {
			t.Fatalf("plain request: %d %s", r.status, r.body)
		}
		if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(got.ID) ||
			got.Source != "/" || got.Type != "dev.ferry.http.request" || got.Ext == nil || !got.InContext {
			t.Errorf("plain request became event %+v", got)
		}
		f.stop(t)
	})

	t.Run("struct", func(t *testing.T) {
		t.Parallel()
		f := goStart(t, bins[1], "FUNCTION_NAME=price")
		f.call(t, http.MethodPost, "/", `{"item":"tea","qty":2}`, ceHeaders("e-7", "application/json")...).
			want(t, 200, "application/json", `{"item":"tea","total":6,"event":"e-7"}`)
		f.call(t, http.MethodPost, "/", "", ceHeaders("e-8", "application/json")...).
			want(t, 200, "application/json", `{"item":"","total":0,"event":"e-8"}`)
		f.call(t, http.MethodPost, "/", `{"qty":"many"}`, ceHeaders("e-9", "application/json")...).
			wantError(t, 400, "sigs.Order")
		f.call(t, http.MethodPost, "/", `tea`, "Content-Type", "text/plain").wantError(t, 400, "sigs.Order")
		if got := f.metric(t, `function_failures_total{function="price"}`); got != "0" {
			t.Errorf("failures = %s, want 0: a request the handler never saw is not its failure", got)
		}
		f.stop(t)
	})

	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		f := goStart(t, bins[2], "FUNCTION_NAME=bytes", "FUNCTION_TIMEOUT=300ms")
		f.call(t, http.MethodPost, "/", `{"a":1}`, "Content-Type", "application/json").want(t, 200, "application/octet-stream", `got:{"a":1}`)
		f.call(t, http.MethodPost, "/", "abc", "Content-Type", "text/plain; charset=latin1").want(t, 200, "application/octet-stream", "got:abc")
		// A []byte handler gets the body as sent, but JSON content must be JSON, as in every runtime.
		f.call(t, http.MethodPost, "/", "abc", "Content-Type", "application/json").wantError(t, 400, "not valid JSON")
		f.call(t, http.MethodPost, "/", "fail").wantError(t, 500, "failing as asked")
		f.call(t, http.MethodPost, "/", "panic").wantError(t, 500, "panicking as asked")
		// The handler returns ctx.Err() at the deadline: the answer says it timed out.
		start := time.Now()
		f.call(t, http.MethodPost, "/", "slow").want(t, 504, "application/json", `{"error":"timed out: the handler did not answer within FUNCTION_TIMEOUT 300ms"}`)
		if d := time.Since(start); d > 30*time.Second { // a hang bound: the handler waits for ctx
			t.Errorf("a 300ms FUNCTION_TIMEOUT answered after %v", d)
		}
		for sample, want := range map[string]string{
			`function_calls_total{function="bytes"}`:    "6",
			`function_failures_total{function="bytes"}`: "3",
		} {
			if got := f.metric(t, sample); got != want {
				t.Errorf("%s = %s, want %s", sample, got, want)
			}
		}
		f.stop(t)
		if !strings.Contains(f.stderr.String(), "panicking as asked") {
			t.Errorf("stderr does not log the panic:\n%s", f.stderr.String())
		}
	})

	t.Run("bad FUNCTION_TIMEOUT", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(bins[2])
		cmd.Env = append(os.Environ(), "FUNCTION_TIMEOUT=soon", "PORT=0")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `FUNCTION_TIMEOUT "soon"`) {
			t.Errorf("FUNCTION_TIMEOUT=soon: %v %s", err, out)
		}
	})
}

// TestGoNoModule builds a folder with no go.mod above it, whose file is a
// symlink to a file elsewhere in the repository.
func TestGoNoModule(t *testing.T) {
	t.Parallel()
	src := fstest.MapFS{
		"lib/size.go": {Data: []byte("package size\n\nfunc count(b []byte) int { return len(b) }\n")},
		"fn/count.go": {Mode: fs.ModeSymlink, Data: []byte("../lib/size.go")},
		"fn/size.go": {Data: []byte(`package size

import "context"

func Handle(ctx context.Context, data []byte) (any, error) {
	return map[string]int{"size": count(data)}, nil
}
`)},
	}
	f := goStart(t, goCompileT(t, goBuild{Src: src, Source: "fn"}))
	f.call(t, http.MethodPost, "/", "four").want(t, 200, "application/json", `{"size":4}`)
}

// TestGoSDKRequirement builds a module that requires a ferry release
// ferry cannot download: the workspace SDK must win, offline. The module
// also replaces a dependency by a folder inside it, and its handler is at
// the repository root.
func TestGoSDKRequirement(t *testing.T) {
	t.Parallel()
	dir := goWriteTree(t, map[string]string{
		"go.mod":                     "module example.com/withsdk\n\ngo 1.22\n\nrequire (\n\tgithub.com/ferrycd/ferry v0.1.0\n\texample.com/greet v1.0.0\n)\n\nreplace example.com/greet => ./third_party/greet\n",
		"third_party/greet/go.mod":   "module example.com/greet\n\ngo 1.22\n",
		"third_party/greet/greet.go": "package greet\n\nfunc Hi(name string) string { return \"hi \" + name }\n",
		"handler.go": `package withsdk

import (
	"context"

	"example.com/greet"
	"github.com/ferrycd/ferry/build/fn"
)

func Handle(ctx context.Context, e fn.Event) (any, error) {
	var in struct{ Name string }
	if err := e.DecodeData(&in); err != nil {
		return nil, err
	}
	return greet.Hi(in.Name), nil
}
`,
	})
	bin := goCompileT(t, goBuild{Src: os.DirFS(dir), Source: ".", Env: []string{"GOPROXY=off", "GOFLAGS=-mod=mod"}})
	f := goStart(t, bin)
	f.call(t, http.MethodPost, "/", `{"Name":"sdk"}`, ceHeaders("e-1", "application/json")...).want(t, 200, "application/json", `"hi sdk"`)
}

// TestGoModuleDependencies builds a module with a third-party dependency
// from the module cache, checked against the module's go.sum.
func TestGoModuleDependencies(t *testing.T) {
	t.Parallel()
	const mod = "github.com/robfig/cron/v3 v3.0.1"
	var sum []string
	if data, err := os.ReadFile("../go.sum"); err == nil {
		for line := range strings.Lines(string(data)) {
			if strings.HasPrefix(line, mod+" ") || strings.HasPrefix(line, mod+"/go.mod ") {
				sum = append(sum, line)
			}
		}
	}
	tool, err := loadGoTool(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cache := ""
	for _, kv := range tool.carry {
		if v, ok := strings.CutPrefix(kv, "GOMODCACHE="); ok {
			cache = v
		}
	}
	if len(sum) != 2 || cache == "" {
		t.Skipf("ferry's go.sum has no %s", mod)
	}
	if _, err := os.Stat(filepath.Join(cache, "cache/download/github.com/robfig/cron/v3/@v/v3.0.1.zip")); err != nil {
		t.Skipf("%s is not in the module cache", mod)
	}
	dir := goWriteTree(t, map[string]string{
		"go.mod": "module example.com/cronfn\n\ngo 1.22\n\nrequire " + mod + "\n",
		"go.sum": strings.Join(sum, ""),
		"next/next.go": `package next

import (
	"context"
	"time"

	"github.com/robfig/cron/v3"
)

func Handle(ctx context.Context, spec string) (any, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	return s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), nil
}
`,
	})
	f := goStart(t, goCompileT(t, goBuild{Src: os.DirFS(dir), Source: "next", Env: []string{"GOPROXY=off"}}))
	f.call(t, http.MethodPost, "/", `"0 3 * * *"`).want(t, 200, "application/json", `"2026-01-01T03:00:00Z"`)
	f.call(t, http.MethodPost, "/", `"bad"`).wantError(t, 500, "expected exactly 5 fields")
}

// TestGoCompileErrors checks that what goes wrong is said about the
// user's files, that Out is left alone, and that no workspace is left
// behind. It is not parallel because it points TMPDIR at its own folder.
func TestGoCompileErrors(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	const gomod = "module example.com/fns\n\ngo 1.22\n"
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name    string
		src     fstest.MapFS
		source  string
		handler string
		want    []string
	}{{
		name:   "compile error",
		source: "services/fns/hello",
		src: fstest.MapFS{
			"services/fns/go.mod": file(gomod),
			"services/fns/hello/hello.go": file(`package hello

import "context"

func Handle(ctx context.Context, data []byte) (any, error) {
	return x, nil
}
`)},
		want: []string{"\nservices/fns/hello/hello.go:6:9: undefined: x\n", "fix the Go compile errors above"},
	}, {
		name:   "wrong signature",
		source: "hello",
		src: fstest.MapFS{"go.mod": file(gomod), "hello/a.go": file("package hello\n"), "hello/hello.go": file(`package hello

// Handle takes the wrong things.
func Handle(name string) string { return "hi " + name }
`)},
		want: []string{"\nhello/hello.go:4:6: func Handle has the wrong signature: want func(context.Context, T) (any, error); compiler says: ", "fix the Go compile errors above"},
	}, {
		name:   "two results missing",
		source: "hello",
		src: fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file(`package hello

import "context"

func Handle(ctx context.Context, in []byte) error { return nil }
`)},
		want: []string{"\nhello/hello.go:5:6: func Handle has the wrong signature"},
	}, {
		name:   "handler is a var",
		source: "hello",
		src:    fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file("package hello\n\nvar Handle = 42\n")},
		want:   []string{"\nhello/hello.go:3:5: Handle is a var, not a func"},
	}, {
		name:    "missing handler",
		source:  "hello",
		handler: "Greet",
		src: fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file(`package hello

import "context"

func Handle(ctx context.Context, in []byte) (any, error) { return nil, nil }
`)},
		want: []string{"\nhello: package example.com/fns/hello has no exported func Greet"},
	}, {
		name:   "package main",
		source: ".",
		src: fstest.MapFS{"go.mod": file(gomod), "main.go": file(`package main

import "context"

func Handle(ctx context.Context, in []byte) (any, error) { return nil, nil }

func main() {}
`)},
		want: []string{"\nmain.go:1:9: package main cannot be a ferry function", "package fns"},
	}, {
		name:   "user error with no go.mod",
		source: "loose",
		src:    fstest.MapFS{"loose/h.go": file("package loose\n\nfunc Handle() { undefined() }\n")},
		want:   []string{"\nloose/h.go:3:17: undefined: undefined\n"},
	}, {
		name:   "generic handler",
		source: "hello",
		src: fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file(`package hello

import "context"

func Handle[T any](ctx context.Context, in T) (any, error) { return in, nil }
`)},
		want: []string{"\nhello/hello.go:5:6: func Handle is generic"},
	}, {
		name:   "folder without Go files",
		source: "hello",
		src:    fstest.MapFS{"go.mod": file(gomod), "hello/README.md": file("# hello\n")},
		want:   []string{"\nhello: there is no Go package in this folder"},
	}, {
		name:   "module newer than the toolchain",
		source: "hello",
		src:    fstest.MapFS{"go.mod": file("module example.com/fns\n\ngo 1.999\n"), "hello/hello.go": file("package hello\n")},
		want:   []string{"\ngo.mod: the module needs go >= 1.999, but ferry builds with go 1."},
	}, {
		name:   "replace outside the module",
		source: "fns/hello",
		src: fstest.MapFS{"fns/go.mod": file(gomod + "\nrequire example.com/lib v0.0.0\n\nreplace (\n\texample.com/lib => ../lib // shared\n)\n"),
			"fns/hello/hello.go": file("package hello\n"), "lib/go.mod": file("module example.com/lib\n")},
		want: []string{"fns/go.mod:8: replace example.com/lib => ../lib points outside the module"},
	}, {
		name:    "unexported handler",
		source:  "hello",
		handler: "handle",
		src:     fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file("package hello\n")},
		want:    []string{`Go handler "handle" is not the name of an exported func`},
	}, {
		name:   "symlink out of the repository",
		source: "hello",
		src: fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file("package hello\n"),
			"hello/secret.go": {Mode: fs.ModeSymlink, Data: []byte("../../etc/passwd")}},
		want: []string{"go function hello (handler Handle): reading .: hello/secret.go is a symlink to \"../../etc/passwd\", which leads outside the repository"},
	}, {
		name:   "absolute symlink source",
		source: "hello",
		src:    fstest.MapFS{"hello": {Mode: fs.ModeSymlink, Data: []byte("/etc")}},
		want:   []string{"hello is a symlink to \"/etc\", which leads outside the repository"},
	}, {
		name:   "symlink cycle",
		source: "hello",
		src: fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file("package hello\n"),
			"hello/loop": {Mode: fs.ModeSymlink, Data: []byte("..")}},
		want: []string{"hello/loop links back to a folder that holds it (a loop)"},
	}, {
		name:   "no such folder",
		source: "nowhere",
		src:    fstest.MapFS{"go.mod": file(gomod)},
		want:   []string{"go function nowhere (handler Handle): source folder nowhere is not in the repository"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "function")
			if err := os.WriteFile(out, []byte("previous build"), 0o755); err != nil {
				t.Fatal(err)
			}
			handler := tc.handler
			if handler == "" {
				handler = "Handle"
			}
			err := goBuild{Src: tc.src, Source: tc.source, Handler: handler, Out: out}.compile(t.Context())
			if err == nil {
				t.Fatal("compile succeeded")
			}
			msg := "\n" + err.Error() + "\n"
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, err)
				}
			}
			for _, leak := range []string{tmp, "ferry-go-build", "main/main.go"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error mentions the workspace (%s):\n%s", leak, err)
				}
			}
			if data, _ := os.ReadFile(out); string(data) != "previous build" {
				t.Errorf("a failed compile changed Out")
			}
		})
	}

	t.Run("module too large", func(t *testing.T) {
		defer func(max int64) { goMaxSourceBytes = max }(goMaxSourceBytes)
		goMaxSourceBytes = 1 << 20
		src := fstest.MapFS{"go.mod": file(gomod), "hello/hello.go": file("package hello\n"), "hello/big.txt": file(strings.Repeat("x", 1<<20+1))}
		err := goBuild{Src: src, Source: "hello", Handler: "Handle", Out: filepath.Join(t.TempDir(), "f")}.compile(t.Context())
		if err == nil || !strings.Contains(err.Error(), "the Go module in . is larger than") {
			t.Errorf("compile of a module over the cap: %v", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := goBuild{Src: os.DirFS("../examples/go"), Source: "hello", Handler: "Handle", Out: filepath.Join(t.TempDir(), "f")}.compile(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("compile with a cancelled context: %v", err)
		}
	})

	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("compile left %v in TMPDIR", names)
	}
}

func TestGoToolchain(t *testing.T) {
	t.Parallel()
	tool, err := loadGoTool(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v := tool.version
	cmd := exec.Command(goCommand, "env", "GOVERSION")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(out)); v != want {
		t.Errorf("loadGoTool().version = %q, want %q", v, want)
	}
}
