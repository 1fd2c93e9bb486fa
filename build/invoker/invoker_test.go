package invoker_test

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build/invoker"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

func TestFiles(t *testing.T) {
	for runtime, want := range map[string]struct{ path, contains string }{
		v1alpha1.RuntimePython: {"ferry/invoker/ferry_invoker.py", "def main():"},
		v1alpha1.RuntimeNodeJS: {"ferry/invoker/ferry_invoker.js", "async function main()"},
	} {
		files, err := invoker.Files(runtime)
		if err != nil {
			t.Fatalf("Files(%q): %v", runtime, err)
		}
		if len(files) != 1 || !bytes.Contains(files[want.path], []byte(want.contains)) {
			t.Errorf("Files(%q) = %d files %v, want only %s holding %q", runtime, len(files), keysOf(files), want.path, want.contains)
		}
		// The caller owns what Files returns: changing it must not change the next answer.
		files[want.path][0] = '!'
		again, _ := invoker.Files(runtime)
		if again[want.path][0] == '!' {
			t.Errorf("Files(%q) shares its bytes between calls", runtime)
		}
	}
}

func TestEntrypoint(t *testing.T) {
	for runtime, want := range map[string][]string{
		v1alpha1.RuntimePython: {"python3", "/ferry/invoker/ferry_invoker.py"},
		v1alpha1.RuntimeNodeJS: {"node", "/ferry/invoker/ferry_invoker.js"},
	} {
		got, err := invoker.Entrypoint(runtime)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Entrypoint(%q) = %q, %v; want %q", runtime, got, err, want)
		}
		files, _ := invoker.Files(runtime)
		if _, ok := files[strings.TrimPrefix(got[len(got)-1], "/")]; !ok {
			t.Errorf("Entrypoint(%q) runs %s, which Files does not hold (%v)", runtime, got[len(got)-1], keysOf(files))
		}
	}
}

func TestUnsupportedRuntimes(t *testing.T) {
	for _, runtime := range []string{v1alpha1.RuntimeGo, "ruby", ""} {
		_, filesErr := invoker.Files(runtime)
		_, entrypointErr := invoker.Entrypoint(runtime)
		for name, err := range map[string]error{"Files": filesErr, "Entrypoint": entrypointErr} {
			if err == nil {
				t.Errorf("%s(%q): no error", name, runtime)
				continue
			}
			for _, want := range []string{strconv.Quote(runtime), "python", "nodejs"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s(%q) = %q; want it to name %s", name, runtime, err, want)
				}
			}
		}
	}
}

func ExampleEntrypoint() {
	entrypoint, _ := invoker.Entrypoint("nodejs")
	fmt.Println(entrypoint)
	// Output: [node /ferry/invoker/ferry_invoker.js]
}

// interpreted describes, for one runtime, the fixture in testdata/<runtime>
// and what its handlers answer.
type interpreted struct {
	runtime string
	// modules is a folder of the fixture copied to dependencies, a path of the
	// image layout. why: a folder named node_modules is ignored by many
	// global gitignores, so the fixture must not hold one.
	modules, dependencies string
	// handler echoes the event and context (testdata/README.md);
	// asyncHandler does the same asynchronously.
	handler, asyncHandler string
	// context is what handler reports for FUNCTION_NAME=echo,
	// FUNCTION_TIMEOUT=1m30s and FUNCTION_MEMORY=256Mi; defaultContext
	// what asyncHandler reports for FUNCTION_NAME=async and neither of the
	// others.
	context, defaultContext map[string]any
	greeting                string // what the dependency says
	// broken handlers, and what stderr must say when the invoker refuses them.
	broken map[string][]string
	// example is the repository's example function and its handler.
	example, exampleHandler string
}

var interpretedRuntimes = []interpreted{
	{
		runtime:        v1alpha1.RuntimePython,
		dependencies:   "deps",
		handler:        "app.handlers.handle",
		asyncHandler:   "app.handlers.handle_async",
		context:        map[string]any{"function_name": "echo", "timeout": 90.0, "memory": "256Mi"},
		defaultContext: map[string]any{"function_name": "async", "timeout": 30.0, "memory": "128Mi"},
		greeting:       "hello from deps",
		broken: map[string][]string{
			"nosuch.handle":         {`"nosuch.handle"`, "no module nosuch", filepath.Join("function", "nosuch.py")},
			"app.handlers.nosuch":   {`"app.handlers.nosuch"`, "has no attribute nosuch", filepath.Join("app", "handlers.py")},
			"app.handlers.greeting": {`"app.handlers.greeting"`, "not a function"},
			"json.dumps":            {`"json.dumps"`, "Python already has a module of that name"},
			"main":                  {`"main" is not module.function`},
		},
		example:        "../../examples/python/hello",
		exampleHandler: "main.handle",
	},
	{
		runtime:        v1alpha1.RuntimeNodeJS,
		modules:        "modules",
		dependencies:   "node_modules",
		handler:        "lib/handlers.handle",
		asyncHandler:   "esm.handle",
		context:        map[string]any{"functionName": "echo", "timeout": 90000.0, "memory": "256Mi"},
		defaultContext: map[string]any{"functionName": "async", "timeout": 30000.0, "memory": "128Mi"},
		greeting:       "hello from node_modules",
		broken: map[string][]string{
			"nosuch.handle":       {`"nosuch.handle"`, "there is no nosuch.js", filepath.Join("function", "nosuch.js")},
			"lib/handlers.nosuch": {`"lib/handlers.nosuch"`, "nosuch is not exported (exports: handle, echo)", filepath.Join("lib", "handlers.js")},
			"../escape.handle":    {`"../escape.handle"`, "outside the function's folder"},
			"index":               {`"index" is not file.export`},
		},
		example:        "../../examples/nodejs/hello",
		exampleHandler: "index.handler",
	},
}

// TestInterpretedInvokers runs each invoker under the host's interpreter,
// laid out as in an image, and talks to it over HTTP.
func TestInterpretedInvokers(t *testing.T) {
	t.Parallel()
	for _, rt := range interpretedRuntimes {
		t.Run(rt.runtime, func(t *testing.T) {
			t.Parallel()
			root := layOut(t, rt)
			t.Run("events", func(t *testing.T) { t.Parallel(); testEvents(t, rt, root) })
			t.Run("metrics", func(t *testing.T) { t.Parallel(); testMetrics(t, rt, root) })
			t.Run("async", func(t *testing.T) { t.Parallel(); testAsync(t, rt, root) })
			t.Run("sigterm", func(t *testing.T) { t.Parallel(); testSIGTERM(t, rt, root) })
			t.Run("timeout", func(t *testing.T) { t.Parallel(); testTimeout(t, rt, root) })
			t.Run("bad FUNCTION_TIMEOUT", func(t *testing.T) { t.Parallel(); testBadTimeout(t, rt, root) })
			t.Run("connections", func(t *testing.T) { t.Parallel(); testConnections(t, rt, root) })
			t.Run("broken handlers", func(t *testing.T) { t.Parallel(); testBrokenHandlers(t, rt, root) })
			t.Run("example", func(t *testing.T) { t.Parallel(); testExample(t, rt, root) })
		})
	}
}

// ce returns the headers of a binary-mode CloudEvent of the given type,
// with extra headers added (or, with an empty value, removed).
func ce(eventType string, extra ...string) map[string]string {
	h := map[string]string{"ce-specversion": "1.0", "ce-id": "evt-1", "ce-source": "/tests", "ce-type": eventType}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(h, extra[i])
		} else {
			h[extra[i]] = extra[i+1]
		}
	}
	return h
}

// anyID and anyTime stand for the fresh id and the current time of an
// event made from a plain request.
const (
	anyID   = "<any id>"
	anyTime = "<any time>"
)

func plainEvent(data map[string]any, extra ...any) map[string]any {
	e := map[string]any{"id": anyID, "type": "dev.ferry.http.request", "source": "/", "time": anyTime, "extensions": map[string]any{}, "data": data}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i].(string)] = extra[i+1]
	}
	return e
}

func kind(k string, v any) map[string]any { return map[string]any{"kind": k, "value": v} }

// nested is n arrays, each inside the one before, as JSON decodes them.
func nested(n int) []any {
	v := []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

// wrap is v inside n arrays, each inside the one before, as JSON decodes
// them.
func wrap(n int, v any) []any {
	w := []any{v}
	for range n - 1 {
		w = []any{w}
	}
	return w
}

// ceEvent is the event ce(eventType) makes, with fields added or changed.
func ceEvent(eventType string, data map[string]any, extra ...any) map[string]any {
	e := map[string]any{"id": "evt-1", "type": eventType, "source": "/tests", "time": nil, "extensions": map[string]any{}, "data": data}
	for i := 0; i+1 < len(extra); i += 2 {
		e[extra[i].(string)] = extra[i+1]
	}
	return e
}

func testEvents(t *testing.T, rt interpreted, root string) {
	p := startInvoker(t, rt, root, rt.handler, "FUNCTION_NAME=echo", "FUNCTION_TIMEOUT=1m30s", "FUNCTION_MEMORY=256Mi")
	tests := []struct {
		name         string
		method, path string
		header       map[string]string
		added        []string // more headers, name and value, added after header's
		body         string
		wantStatus   int
		wantEvent    map[string]any // the event the handler echoes
		wantError    string         // part of {"error"} in the answer
		wantBody     string         // the whole answer
		wantType     string         // the answer's Content-Type
	}{{
		name:   "binary CloudEvent with JSON data",
		header: ce("test.echo", "ce-time", "2024-05-01T12:00:00Z", "ce-subject", "order-7", "ce-traceparent", "00-4bf92f-00f067-01", "ce-tenant", "acme%2Feu", "Content-Type", "application/json"),
		body:   `{"name":"ferry","sizes":[1,2]}`,
		wantEvent: map[string]any{
			"id": "evt-1", "type": "test.echo", "source": "/tests", "time": "2024-05-01T12:00:00Z", "subject": "order-7",
			"datacontenttype": "application/json",
			// ce-tenant is percent-decoded, as the CloudEvents HTTP binding says.
			"extensions": map[string]any{"traceparent": "00-4bf92f-00f067-01", "tenant": "acme/eu"},
			"data":       kind("object", map[string]any{"name": "ferry", "sizes": []any{1.0, 2.0}}),
		},
	}, {
		name:   "text data arrives as a string",
		header: ce("test.echo", "ce-dataschema", "https://example.com/schema", "Content-Type", "text/plain; charset=utf-8"),
		body:   "héllo, ferry",
		wantEvent: map[string]any{
			"id": "evt-1", "type": "test.echo", "source": "/tests", "time": nil, "extensions": map[string]any{},
			"dataschema": "https://example.com/schema", "datacontenttype": "text/plain; charset=utf-8",
			"data": kind("string", "héllo, ferry"),
		},
	}, {
		name:   "other data arrives as bytes",
		header: ce("test.echo", "Content-Type", "application/octet-stream"),
		body:   "\x00\x01\xfe",
		wantEvent: map[string]any{
			"id": "evt-1", "type": "test.echo", "source": "/tests", "time": nil, "extensions": map[string]any{},
			"datacontenttype": "application/octet-stream", "data": kind("bytes", "0001fe"),
		},
	}, {
		name:   "+json data is decoded",
		header: ce("test.echo", "Content-Type", "application/vnd.ferry+json"),
		body:   `[1,"two"]`,
		wantEvent: map[string]any{
			"id": "evt-1", "type": "test.echo", "source": "/tests", "time": nil, "extensions": map[string]any{},
			"datacontenttype": "application/vnd.ferry+json", "data": kind("array", []any{1.0, "two"}),
		},
	}, {
		name:      "plain request with JSON and no Content-Type",
		body:      `{"a":1}`,
		wantEvent: plainEvent(kind("object", map[string]any{"a": 1.0})),
	}, {
		name:      "plain GET without a body",
		method:    http.MethodGet,
		wantEvent: plainEvent(kind("null", nil)),
	}, {
		name:      "plain request with text that is not JSON and no Content-Type",
		path:      "/orders?page=2",
		body:      "hello",
		wantEvent: plainEvent(kind("bytes", "68656c6c6f")),
	}, {
		name:      "POST to /healthz is an invocation",
		path:      "/healthz",
		header:    map[string]string{"Content-Type": "text/plain"},
		body:      "ping",
		wantEvent: plainEvent(kind("string", "ping"), "datacontenttype", "text/plain"),
	}, {
		name:       "GET /healthz",
		method:     http.MethodGet,
		path:       "/healthz",
		wantStatus: http.StatusOK,
		wantBody:   "ok",
		wantType:   "text/plain; charset=utf-8",
	}, {
		name:       "HEAD /healthz is the health check",
		method:     http.MethodHead,
		path:       "/healthz",
		wantStatus: http.StatusOK,
		wantType:   "text/plain; charset=utf-8",
	}, {
		name:       "HEAD /metrics is the metrics",
		method:     http.MethodHead,
		path:       "/metrics?x=1",
		wantStatus: http.StatusOK,
		wantType:   "text/plain; version=0.0.4; charset=utf-8",
	}, {
		name:      "PUT /metrics is an invocation",
		method:    http.MethodPut,
		path:      "/metrics",
		wantEvent: plainEvent(kind("null", nil)),
	}, {
		name:      "DELETE /healthz is an invocation",
		method:    http.MethodDelete,
		path:      "/healthz",
		wantEvent: plainEvent(kind("null", nil)),
	}, {
		name:      "of a repeated ce-* header the first counts",
		header:    ce("test.echo", "ce-id", ""),
		added:     []string{"ce-id", "first", "ce-id", "second", "ce-tenant", "acme", "ce-tenant", "globex"},
		wantEvent: ceEvent("test.echo", kind("null", nil), "id", "first", "extensions", map[string]any{"tenant": "acme"}),
	}, {
		name:      "ISO-8859-1 text",
		header:    ce("test.echo", "Content-Type", "text/plain; charset=ISO-8859-1"),
		body:      "caf\xe9 \x80\xff",
		wantEvent: ceEvent("test.echo", kind("string", "café \u0080ÿ"), "datacontenttype", "text/plain; charset=ISO-8859-1"),
	}, {
		name:      "latin1 text, quoted",
		header:    ce("test.echo", "Content-Type", `text/csv; Charset="latin1"`),
		body:      "\xa3",
		wantEvent: ceEvent("test.echo", kind("string", "£"), "datacontenttype", `text/csv; Charset="latin1"`),
	}, {
		name:      "US-ASCII text",
		header:    ce("test.echo", "Content-Type", "text/plain; charset=us-ascii"),
		body:      "caf\xe9!",
		wantEvent: ceEvent("test.echo", kind("string", "caf\ufffd!"), "datacontenttype", "text/plain; charset=us-ascii"),
	}, {
		// zlib and idna are Python codecs, of bytes and of domain names.
		name:      "a charset that is no text encoding is UTF-8 (zlib)",
		header:    ce("test.echo", "Content-Type", "text/plain; charset=zlib"),
		body:      "caf\xc3\xa9 \xff",
		wantEvent: ceEvent("test.echo", kind("string", "café \ufffd"), "datacontenttype", "text/plain; charset=zlib"),
	}, {
		name:      "a charset that is no text encoding is UTF-8 (idna)",
		header:    ce("test.echo", "Content-Type", "text/plain; charset=idna"),
		body:      "xn--caf-dma",
		wantEvent: ceEvent("test.echo", kind("string", "xn--caf-dma"), "datacontenttype", "text/plain; charset=idna"),
	}, {
		name:      "a charset other than the three is UTF-8 (utf-16)",
		header:    ce("test.echo", "Content-Type", "text/plain; charset=utf-16"),
		body:      "hi",
		wantEvent: ceEvent("test.echo", kind("string", "hi"), "datacontenttype", "text/plain; charset=utf-16"),
	}, {
		name:      "a charset other than the three is UTF-8 (windows-1252)",
		header:    ce("test.echo", "Content-Type", "text/plain; charset=windows-1252"),
		body:      "\x80",
		wantEvent: ceEvent("test.echo", kind("string", "\ufffd"), "datacontenttype", "text/plain; charset=windows-1252"),
	}, {
		name:      "ill-formed UTF-8 gets one U+FFFD per maximal subsequence; a byte order mark stays",
		header:    ce("test.echo", "Content-Type", "text/plain"),
		body:      "\xef\xbb\xbfa\xe2\x82b\xf0\x80\x80c\xed\xa0\x80d\xf4\x8f\xbf",
		wantEvent: ceEvent("test.echo", kind("string", "\ufeffa\ufffdb\ufffd\ufffd\ufffdc\ufffd\ufffd\ufffdd\ufffd"), "datacontenttype", "text/plain"),
	}, {
		name:       "JSON 200,000 arrays deep",
		header:     ce("test.echo", "Content-Type", "application/json"),
		body:       strings.Repeat("[", 200000),
		wantStatus: http.StatusBadRequest,
		wantError:  "nests deeper than 512 arrays and objects",
	}, {
		name:       "JSON 513 deep",
		header:     ce("test.echo", "Content-Type", "application/json"),
		body:       strings.Repeat(`{"a":[`, 256) + `{"b":"[[[["}` + strings.Repeat("]}", 256),
		wantStatus: http.StatusBadRequest,
		wantError:  "nests deeper than 512 arrays and objects",
	}, {
		name:      "JSON 512 deep",
		header:    ce("test.echo", "Content-Type", "application/json"),
		body:      strings.Repeat("[", 512) + strings.Repeat("]", 512),
		wantEvent: ceEvent("test.echo", kind("array", nested(512)), "datacontenttype", "application/json"),
	}, {
		name:      "brackets in JSON strings do not nest",
		header:    ce("test.echo", "Content-Type", "application/json"),
		body:      strings.Repeat("[", 511) + `"[[\"{{\\"` + strings.Repeat("]", 511),
		wantEvent: ceEvent("test.echo", kind("array", wrap(511, `[["{{\`)), "datacontenttype", "application/json"),
	}, {
		name:      "JSON too deep and no Content-Type is bytes",
		body:      strings.Repeat("[", 513) + strings.Repeat("]", 513),
		wantEvent: plainEvent(kind("bytes", strings.Repeat("5b", 513)+strings.Repeat("5d", 513))),
	}, {
		name:       "JSON with a byte order mark",
		header:     ce("test.echo", "Content-Type", "application/json"),
		body:       "\xef\xbb\xbf{}",
		wantStatus: http.StatusBadRequest,
		wantError:  "not valid JSON",
	}, {
		name:       "JSON that is not UTF-8",
		header:     ce("test.echo", "Content-Type", "application/json"),
		body:       "\"caf\xe9\"",
		wantStatus: http.StatusBadRequest,
		wantError:  "not valid JSON",
	}, {
		name:      "ce-time with a long fraction and an offset",
		header:    ce("test.echo", "ce-time", "2024-02-29T23:59:59.1234567891+23:59"),
		wantEvent: ceEvent("test.echo", kind("null", nil), "time", "2024-02-29T23:59:59.1234567891+23:59"),
	}, {
		name:       "ce-time with a lower-case t",
		header:     ce("test.echo", "ce-time", "2024-05-01t12:00:00Z"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-time "2024-05-01t12:00:00Z"`,
	}, {
		name:       "ce-time with a lower-case z",
		header:     ce("test.echo", "ce-time", "2024-05-01T12:00:00z"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-time "2024-05-01T12:00:00z"`,
	}, {
		name:       "ce-time with a leap second",
		header:     ce("test.echo", "ce-time", "2016-12-31T23:59:60Z"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-time "2016-12-31T23:59:60Z"`,
	}, {
		name:       "ce-time on a day the month has not",
		header:     ce("test.echo", "ce-time", "2023-02-29T12:00:00Z"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-time "2023-02-29T12:00:00Z"`,
	}, {
		name:       "ce-time with a comma before the fraction",
		header:     ce("test.echo", "ce-time", "2024-05-01T12:00:00,5Z"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-time "2024-05-01T12:00:00,5Z"`,
	}, {
		name:       "ce-time with offset +24:00",
		header:     ce("test.echo", "ce-time", "2024-05-01T12:00:00+24:00"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-time "2024-05-01T12:00:00+24:00"`,
	}, {
		name:       "ce-specversion 0.3",
		header:     ce("test.echo", "ce-specversion", "0.3"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-specversion "0.3"`,
	}, {
		name:       "missing ce-id",
		header:     ce("test.echo", "ce-id", ""),
		wantStatus: http.StatusBadRequest,
		wantError:  "ce-id is missing",
	}, {
		name:       "missing ce-source",
		header:     ce("test.echo", "ce-source", ""),
		wantStatus: http.StatusBadRequest,
		wantError:  "ce-source is missing",
	}, {
		name:       "missing ce-type",
		header:     ce("test.echo", "ce-type", ""),
		wantStatus: http.StatusBadRequest,
		wantError:  "ce-type is missing",
	}, {
		name:       "ce-time that is not RFC 3339",
		header:     ce("test.echo", "ce-time", "yesterday"),
		wantStatus: http.StatusBadRequest,
		wantError:  `ce-time "yesterday"`,
	}, {
		name:       "JSON Content-Type on a body that is not JSON",
		header:     ce("test.echo", "Content-Type", "application/json"),
		body:       "{",
		wantStatus: http.StatusBadRequest,
		wantError:  "not valid JSON",
	}, {
		name:       "body over 6 MiB",
		header:     ce("test.echo", "Content-Type", "application/octet-stream"),
		body:       strings.Repeat("x", 6<<20+1),
		wantStatus: http.StatusRequestEntityTooLarge,
		wantError:  "6 MiB",
	}, {
		name:       "handler raises",
		header:     ce("test.fail", "Content-Type", "text/plain"),
		body:       "disk full",
		wantStatus: http.StatusInternalServerError,
		wantBody:   `{"error":"boom: disk full"}`,
	}, {
		name:       "result that is not JSON",
		header:     ce("test.unserialisable"),
		wantStatus: http.StatusInternalServerError,
		wantError:  "the result of " + rt.handler + " is not JSON serialisable",
	}, {
		name:       "bytes result",
		header:     ce("test.bytes"),
		wantStatus: http.StatusOK,
		wantBody:   "\x00raw\xff",
		wantType:   "application/octet-stream",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := cmp.Or(tt.method, http.MethodPost)
			status, header, body := p.do(t, method, cmp.Or(tt.path, "/"), tt.header, tt.body, tt.added...)
			wantStatus := cmp.Or(tt.wantStatus, http.StatusOK)
			if status != wantStatus {
				t.Fatalf("%s: status %d, want %d; body %.300s", method, status, wantStatus, body)
			}
			if method == http.MethodHead && len(body) > 0 {
				t.Errorf("HEAD answered a body: %.300s", body)
			}
			wantType := cmp.Or(tt.wantType, "application/json")
			if got := header.Get("Content-Type"); got != wantType {
				t.Errorf("Content-Type %q, want %q", got, wantType)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if tt.wantError != "" {
				var answer struct{ Error string }
				if err := json.Unmarshal(body, &answer); err != nil || !strings.Contains(answer.Error, tt.wantError) {
					t.Errorf("body %s, want an error containing %q", body, tt.wantError)
				}
			}
			if tt.wantEvent == nil {
				return
			}
			var echo struct {
				Event    map[string]any
				Context  map[string]any
				Greeting string
			}
			if err := json.Unmarshal(body, &echo); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if id, ok := echo.Event["id"].(string); tt.wantEvent["id"] == anyID && ok && id != "" {
				echo.Event["id"] = anyID
			}
			if ts, ok := echo.Event["time"].(string); tt.wantEvent["time"] == anyTime && ok {
				if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && time.Since(at).Abs() < time.Minute {
					echo.Event["time"] = anyTime
				}
			}
			if !reflect.DeepEqual(echo.Event, tt.wantEvent) {
				t.Errorf("the handler got event\n%.2000v\nwant\n%.2000v", echo.Event, tt.wantEvent)
			}
			if !reflect.DeepEqual(echo.Context, rt.context) {
				t.Errorf("the handler got context %v, want %v", echo.Context, rt.context)
			}
			if echo.Greeting != rt.greeting {
				t.Errorf("the dependency says %q, want %q", echo.Greeting, rt.greeting)
			}
		})
	}
}

// testMetrics makes calls of each kind and checks /metrics counts them.
func testMetrics(t *testing.T, rt interpreted, root string) {
	p := startInvoker(t, rt, root, rt.handler, `FUNCTION_NAME=metrics "m"`)
	sent := map[string]struct {
		header map[string]string
		status int
		times  int
	}{
		"ok":       {ce("test.echo"), http.StatusOK, 3},
		"failure":  {ce("test.fail"), http.StatusInternalServerError, 2},
		"refused":  {ce("test.echo", "ce-specversion", "0.3"), http.StatusBadRequest, 1},
		"not JSON": {ce("test.unserialisable"), http.StatusInternalServerError, 1},
	}
	for name, s := range sent {
		for range s.times {
			if status, _, body := p.do(t, http.MethodPost, "/", s.header, ""); status != s.status {
				t.Fatalf("%s call: status %d, want %d; body %s", name, status, s.status, body)
			}
		}
	}
	status, header, body := p.do(t, http.MethodGet, "/metrics", nil, "")
	if status != http.StatusOK || header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("GET /metrics: %d %q", status, header.Get("Content-Type"))
	}
	m := parseMetrics(t, body)
	for family, kind := range map[string]string{
		"function_calls_total": "counter", "function_failures_total": "counter", "function_duration_seconds": "histogram",
	} {
		if m.types[family] != kind || m.help[family] == "" {
			t.Errorf("%s: TYPE %q and HELP %q, want TYPE %s and a HELP line", family, m.types[family], m.help[family], kind)
		}
	}
	// Every invocation counts, a refused one too; 5xx answers are failures.
	label := `function="metrics \"m\""`
	for sample, want := range map[string]float64{
		"function_calls_total{" + label + "}":                       7,
		"function_failures_total{" + label + "}":                    3,
		"function_duration_seconds_count{" + label + "}":            7,
		"function_duration_seconds_bucket{" + label + `,le="+Inf"}`: 7,
	} {
		if got, ok := m.samples[sample]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", sample, got, ok, want)
		}
	}
	if sum := m.samples["function_duration_seconds_sum{"+label+"}"]; sum <= 0 || sum > 5 {
		t.Errorf("function_duration_seconds_sum = %v, want a small positive number", sum)
	}
	wantBounds := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	if !slices.Equal(m.bounds, wantBounds) {
		t.Errorf("bucket bounds %q, want %q", m.bounds, wantBounds)
	}
	var last float64
	for _, le := range m.bounds {
		n := m.samples["function_duration_seconds_bucket{"+label+`,le="`+le+`"}`]
		if n < last {
			t.Errorf("bucket le=%s holds %v, fewer than the one before (%v): buckets must be cumulative", le, n, last)
		}
		last = n
	}
}

type metricsText struct {
	types, help map[string]string
	samples     map[string]float64 // by name and labels as written
	bounds      []string           // le of the function_duration_seconds buckets, in order
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$`)
	leLabel    = regexp.MustCompile(`le="([^"]*)"`)
)

func parseMetrics(t *testing.T, text []byte) metricsText {
	t.Helper()
	m := metricsText{types: map[string]string{}, help: map[string]string{}, samples: map[string]float64{}}
	scanner := bufio.NewScanner(bytes.NewReader(text))
	for scanner.Scan() {
		line := scanner.Text()
		if fields := strings.SplitN(line, " ", 4); len(fields) == 4 && fields[0] == "#" {
			switch fields[1] {
			case "TYPE":
				m.types[fields[2]] = fields[3]
			case "HELP":
				m.help[fields[2]] = fields[3]
			}
			continue
		}
		match := sampleLine.FindStringSubmatch(line)
		if match == nil {
			t.Fatalf("metrics line %q is not a sample; the whole text:\n%s", line, text)
		}
		v, err := strconv.ParseFloat(match[2], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m.samples[match[1]] = v
		if le := leLabel.FindStringSubmatch(match[1]); le != nil && strings.HasPrefix(match[1], "function_duration_seconds_bucket{") {
			m.bounds = append(m.bounds, le[1])
		}
	}
	return m
}

// testAsync calls an async handler, several calls at once, with the
// context's defaults.
func testAsync(t *testing.T, rt interpreted, root string) {
	p := startInvoker(t, rt, root, rt.asyncHandler, "FUNCTION_NAME=async")
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			id := fmt.Sprintf("async-%d", i)
			status, _, body, err := p.request(http.MethodPost, "/", ce("test.echo", "ce-id", id, "Content-Type", "application/json"), strconv.Itoa(i))
			if err != nil {
				t.Error(err)
				return
			}
			var echo struct {
				Event   map[string]any
				Context map[string]any
			}
			if err := json.Unmarshal(body, &echo); status != http.StatusOK || err != nil {
				t.Errorf("call %d: status %d, body %s", i, status, body)
				return
			}
			if echo.Event["id"] != id || !reflect.DeepEqual(echo.Event["data"], kind("number", float64(i))) {
				t.Errorf("call %d: the handler got event %v", i, echo.Event)
			}
			if !reflect.DeepEqual(echo.Context, rt.defaultContext) {
				t.Errorf("call %d: the handler got context %v, want %v", i, echo.Context, rt.defaultContext)
			}
		})
	}
	wg.Wait()
}

// testSIGTERM stops an invoker during a call: the call must finish and the
// process exit 0. The call takes longer than 5 seconds, but less than
// FUNCTION_TIMEOUT and a second: the invoker must wait that long.
func testSIGTERM(t *testing.T, rt interpreted, root string) {
	p := startInvoker(t, rt, root, rt.handler, "FUNCTION_TIMEOUT=6500ms")
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, _, body, err := p.request(http.MethodPost, "/", ce("test.sleep", "Content-Type", "application/json"), "5.5")
		answered <- answer{status, body, err}
	}()
	p.waitStderr(t, "sleeping") // the call is in the handler
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if a := <-answered; a.err != nil || a.status != http.StatusOK {
		t.Errorf("the call in flight at SIGTERM: status %d, body %s, error %v; want 200", a.status, a.body, a.err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("after SIGTERM the invoker exited %d, want 0; stderr:\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "SIGTERM") {
		t.Errorf("stderr does not mention SIGTERM:\n%s", p.stderr)
	}
}

// testTimeout calls handlers that take longer than FUNCTION_TIMEOUT: the
// invoker says on stderr at the deadline that the handler still runs,
// answers 504 only once the handler has ended (ferry's gateway frees the
// call's slot on that answer), counts a failure, and goes on serving. A
// handler that cannot be stopped (a sync Python one, any Node.js one)
// sleeps sleep seconds, so its answer cannot come sooner; Python's async
// handler is cancelled at the deadline instead.
func testTimeout(t *testing.T, rt interpreted, root string) {
	const sleep = 1500 * time.Millisecond
	for _, handler := range []string{rt.handler, rt.asyncHandler} {
		t.Run(handler, func(t *testing.T) {
			t.Parallel()
			cancelled := handler == "app.handlers.handle_async"
			p := startInvoker(t, rt, root, handler, "FUNCTION_TIMEOUT=300ms", "FUNCTION_NAME=slow")
			start := time.Now()
			status, _, body := p.do(t, http.MethodPost, "/", ce("test.sleep", "Content-Type", "application/json"), strconv.FormatFloat(sleep.Seconds(), 'f', -1, 64))
			took := time.Since(start)
			const want = `{"error":"timed out: the handler did not answer within FUNCTION_TIMEOUT 300ms"}`
			if status != http.StatusGatewayTimeout || string(body) != want {
				t.Errorf("a call past FUNCTION_TIMEOUT answered %d %s, want 504 %s", status, body, want)
			}
			// why: lower bounds only: the answer waits for the handler's end.
			// Half the sleep, as a timer may fire a little early (libuv's
			// cached loop time), is still far past the 300ms timeout.
			if took < 300*time.Millisecond || (!cancelled && took < sleep/2) {
				t.Errorf("a call past a 300ms FUNCTION_TIMEOUT answered after %v, before its handler (sleeping %v) ended", took, sleep)
			}
			p.waitStderr(t, "did not answer event evt-1 within FUNCTION_TIMEOUT 300ms")
			if status, _, body := p.do(t, http.MethodPost, "/", ce("test.echo"), ""); status != http.StatusOK {
				t.Errorf("the call after a timeout answered %d %s", status, body)
			}
			_, _, text := p.do(t, http.MethodGet, "/metrics", nil, "")
			m := parseMetrics(t, text)
			for sample, want := range map[string]float64{`function_calls_total{function="slow"}`: 2, `function_failures_total{function="slow"}`: 1} {
				if got := m.samples[sample]; got != want {
					t.Errorf("%s = %v, want %v", sample, got, want)
				}
			}
		})
	}
}

// testBadTimeout starts invokers with a FUNCTION_TIMEOUT that is not a
// positive Go duration: each must exit 1 naming the variable, as ferry's Go
// main does.
func testBadTimeout(t *testing.T, rt interpreted, root string) {
	for _, timeout := range []string{"soon", "30", "0", "-5s", "1.5.s"} {
		t.Run(timeout, func(t *testing.T) {
			t.Parallel()
			p := launchInvoker(t, rt, root, rt.handler, freePort(t), "FUNCTION_TIMEOUT="+timeout)
			if code := p.wait(t); code != 1 {
				t.Errorf("FUNCTION_TIMEOUT=%s: the invoker exited %d, want 1; stderr:\n%s", timeout, code, p.stderr)
			}
			if want := `FUNCTION_TIMEOUT "` + timeout + `" is not a positive Go duration`; !strings.Contains(p.stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, p.stderr)
			}
		})
	}
}

// testConnections checks the invoker closes connections as ferry's Go main
// does: one that sends no request, or its headers too slowly, after 10s;
// a kept-alive one idle for longer than that stays open. The three run at
// once, not as parallel subtests, so that their waits overlap.
func testConnections(t *testing.T, rt interpreted, root string) {
	p := startInvoker(t, rt, root, rt.handler)
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// closedAfter reads until the invoker closes conn, answering 408 or not.
	closedAfter := func(what string, conn net.Conn, start time.Time) {
		// why: the lower bound is the timeout; the upper one only catches a hang.
		conn.SetReadDeadline(start.Add(110 * time.Second))
		answer, err := io.ReadAll(conn)
		took := time.Since(start)
		if err != nil || took < 9*time.Second || took > 100*time.Second {
			t.Errorf("%s: the invoker closed the connection after %v (%v), answering %q; want after 10s", what, took, err, answer)
		}
		if len(answer) > 0 && !bytes.HasPrefix(answer, []byte("HTTP/1.1 408 ")) {
			t.Errorf("%s: the invoker answered %q", what, answer)
		}
	}
	silent, slow, idle := dial(), dial(), dial()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { closedAfter("a connection without a request", silent, start) })
	wg.Go(func() {
		go func() {
			io.WriteString(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
			for range 200 {
				time.Sleep(500 * time.Millisecond)
				if _, err := io.WriteString(slow, "X-Slow: 1\r\n"); err != nil {
					return
				}
			}
		}()
		closedAfter("a request whose headers come slowly", slow, start)
	})
	wg.Go(func() {
		r := bufio.NewReader(idle)
		for i := range 2 {
			if i == 1 {
				time.Sleep(11 * time.Second) // longer than the header timeout
			}
			idle.SetDeadline(time.Now().Add(time.Minute))
			if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Errorf("kept-alive connection, request %d: %v", i+1, err)
				return
			}
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Errorf("kept-alive connection, request %d: %v", i+1, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Errorf("kept-alive connection, request %d: %d %q", i+1, resp.StatusCode, body)
			}
		}
	})
	wg.Wait()
}

// testBrokenHandlers starts invokers whose handler cannot load: each must
// exit non-zero before serving, saying which handler and why.
func testBrokenHandlers(t *testing.T, rt interpreted, root string) {
	for handler, wants := range rt.broken {
		t.Run(handler, func(t *testing.T) {
			t.Parallel()
			p := launchInvoker(t, rt, root, handler, freePort(t))
			code := p.wait(t)
			stderr := p.stderr.String()
			if code == 0 {
				t.Errorf("the invoker exited 0, want non-zero; stderr:\n%s", stderr)
			}
			for _, want := range append(wants, "cannot load handler") {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stderr, "serving") {
				t.Errorf("the invoker served a handler it could not load:\n%s", stderr)
			}
		})
	}
}

// testExample serves the repository's example function through the
// invoker, as ferry's dev loop does, with FERRY_FUNCTION_DIR.
func testExample(t *testing.T, rt interpreted, root string) {
	dir, err := filepath.Abs(rt.example)
	if err != nil {
		t.Fatal(err)
	}
	p := startInvoker(t, rt, root, rt.exampleHandler, "FERRY_FUNCTION_DIR="+dir, "FUNCTION_NAME=hello")
	status, _, body := p.do(t, http.MethodPost, "/hello", ce("com.example.greet", "Content-Type", "application/json"), `{"name":"ferry"}`)
	want := `{"message":"hello from ` + rt.runtime + `","echo":{"name":"ferry"}}`
	if status != http.StatusOK || string(body) != want {
		t.Errorf("the example answered %d %s, want 200 %s", status, body, want)
	}
}

// layOut lays the runtime out as in an image, under a fresh folder that
// stands for /ferry: invoker/ from Files, function/ and the dependencies
// from testdata/<runtime>. It returns that folder; the test fails when the
// runtime's interpreter is not installed.
func layOut(t *testing.T, rt interpreted) string {
	t.Helper()
	entrypoint, err := invoker.Entrypoint(rt.runtime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath(entrypoint[0]); err != nil {
		t.Fatalf("%s is not installed (%v): the invoker tests need it; run hack/deps.sh", entrypoint[0], err)
	}
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", rt.runtime))); err != nil {
		t.Fatal(err)
	}
	if rt.modules != "" {
		if err := os.Rename(filepath.Join(root, rt.modules), filepath.Join(root, rt.dependencies)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := invoker.Files(rt.runtime)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		file := inRoot(root, name)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// inRoot maps a path of the image's /ferry to the same path under root.
func inRoot(root, imagePath string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(imagePath, "/"), "ferry/")
	return filepath.Join(root, filepath.FromSlash(rel))
}

// process is an invoker the test started.
type process struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{} // closed once the process has exited
}

// startInvoker starts the invoker serving handler with env added to its
// environment, and waits until it answers /healthz.
func startInvoker(t *testing.T, rt interpreted, root, handler string, env ...string) *process {
	t.Helper()
	// why: on a socket the test opened, as ferry hands one over, so no
	// other process can take the port between choosing and binding it.
	p := launchInvoker(t, rt, root, handler, 0, env...)
	if err := p.waitHealthy(time.Minute); err != nil {
		t.Fatalf("%s invoker for %s: %v; stderr:\n%s", rt.runtime, handler, err, p.stderr)
	}
	return p
}

// hostEnv is the test's environment without what the invoker reads, so
// that the host's settings cannot change what the invoker sees.
func hostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "PORT" || name == "PYTHONPATH" || name == "NODE_PATH" || name == "NODE_OPTIONS" ||
			strings.HasPrefix(name, "FUNCTION_") || strings.HasPrefix(name, "FERRY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func launchInvoker(t *testing.T, rt interpreted, root, handler string, port int, env ...string) *process {
	t.Helper()
	entrypoint, err := invoker.Entrypoint(rt.runtime)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(entrypoint[0], inRoot(root, entrypoint[1]))
	var listenFD []string
	if port == 0 {
		// port 0: serve on a socket handed over as fd 3 (FERRY_LISTEN_FD).
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.(*net.TCPListener).File()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		port = l.Addr().(*net.TCPAddr).Port
		cmd.ExtraFiles = []*os.File{f}
		listenFD = []string{"FERRY_LISTEN_FD=3"}
	}
	cmd.Env = append(hostEnv(), "PORT="+strconv.Itoa(port), "FERRY_HANDLER="+handler,
		// why: the example is served from the repository, which must not get a __pycache__.
		"PYTHONDONTWRITEBYTECODE=1")
	cmd.Env = append(cmd.Env, listenFD...)
	cmd.Env = append(cmd.Env, env...)
	p := &process{cmd: cmd, url: "http://127.0.0.1:" + strconv.Itoa(port), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.stderr
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait returns the process's exit status once it has exited.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(time.Minute):
		t.Fatalf("the invoker has not exited after a minute; stderr:\n%s", p.stderr)
		return 0
	}
}

var client = &http.Client{Timeout: time.Minute}

func (p *process) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(p.url + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ok" {
				return nil
			}
			err = fmt.Errorf("GET /healthz: %d %q", resp.StatusCode, body)
		}
		if p.exited() {
			return fmt.Errorf("the invoker exited %d before it was healthy", p.cmd.ProcessState.ExitCode())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *process) waitStderr(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(p.stderr.String(), want); {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("stderr does not say %q:\n%s", want, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// do sends one request and returns the answer; an empty body sends none.
// added are more headers, name and value, added after header's.
func (p *process) do(t *testing.T, method, path string, header map[string]string, body string, added ...string) (int, http.Header, []byte) {
	t.Helper()
	status, h, answer, err := p.request(method, path, header, body, added...)
	if err != nil {
		t.Fatal(err)
	}
	return status, h, answer
}

// request is do for goroutines other than the test's, which must not call
// t.Fatal.
func (p *process) request(method, path string, header map[string]string, body string, added ...string) (int, http.Header, []byte, error) {
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.url+path, reader)
	if err != nil {
		return 0, nil, nil, err
	}
	for name, value := range header {
		req.Header.Set(name, value)
	}
	for i := 0; i+1 < len(added); i += 2 {
		req.Header.Add(added[i], added[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w; stderr:\n%s", method, path, err, p.stderr)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header, answer, nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func keysOf(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
