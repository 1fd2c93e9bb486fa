package embedded

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend runs h and counts the connections the gateway opened.
func countingBackend(t *testing.T, h http.HandlerFunc) (*fakeBackend, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &fakeBackend{url: srv.URL}, &conns
}

func TestForwardKeepsConnections(t *testing.T) {
	t.Parallel()
	b, conns := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/k", Function: "k", Backend: b}})
	url := serveGateway(t, g)
	for i := range 20 {
		body := io.Reader(nil)
		if i%2 == 1 {
			body = strings.NewReader(`{"n":1}`)
		}
		if a := do(t, "POST", url+"/dev/k", "", nil, body); a.code != 200 || a.body != "ok" {
			t.Fatalf("call %d: %d %q", i, a.code, a.body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 calls one after another opened %d connections to the function, want 1", n)
	}
}

func TestForwardHopByHopHeaders(t *testing.T) {
	t.Parallel()
	b := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for _, h := range []string{"X-Secret", "Keep-Alive", "Upgrade", "Proxy-Authorization", "Te"} {
			if v := r.Header.Get(h); v != "" {
				w.Header().Set("X-Leaked", h+"="+v)
			}
		}
		w.Header().Set("Connection", "X-Back")
		w.Header().Set("X-Back", "hop")
		w.Header().Set("X-Kept", "end to end")
		w.Write(body)
	})
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/h", Function: "h", Backend: b}})
	url := serveGateway(t, g)

	// A chunked body (no Content-Length) goes on chunked and arrives whole.
	body := io.MultiReader(strings.NewReader("chunked "), strings.NewReader("body"))
	a := do(t, "POST", url+"/dev/h", "", map[string]string{
		"Connection":          "X-Secret",
		"X-Secret":            "for the gateway only",
		"Upgrade":             "websocket",
		"Proxy-Authorization": "Basic eDp5",
	}, body)
	if a.code != 200 || a.body != "chunked body" {
		t.Fatalf("answer %d %q", a.code, a.body)
	}
	if v := a.header.Get("X-Leaked"); v != "" {
		t.Errorf("the function saw the hop-by-hop header %s", v)
	}
	if v := a.header.Get("X-Back"); v != "" {
		t.Errorf("the client saw X-Back %q, which the function's Connection header named", v)
	}
	if v := a.header.Get("X-Kept"); v != "end to end" {
		t.Errorf("X-Kept = %q", v)
	}
}

// closingBackend answers each request on a connection and then closes it
// without saying so, as a function that restarted would.
func closingBackend(t *testing.T) (*fakeBackend, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	return &fakeBackend{url: "http://" + ln.Addr().String()}, &conns
}

func TestForwardRetriesAClosedConnection(t *testing.T) {
	t.Parallel()
	b, conns := closingBackend(t)
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/c", Function: "c", Backend: b}})
	url := serveGateway(t, g)
	for i := range 3 {
		if a := do(t, "POST", url+"/dev/c", "", nil, strings.NewReader("small")); a.code != 200 || a.body != "ok" {
			t.Fatalf("call %d: %d %q, want the call sent again on a new connection", i, a.code, a.body)
		}
		// why: the close must have reached the gateway's side before the
		// next call takes the connection from the pool.
		time.Sleep(20 * time.Millisecond)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 calls", n)
	}
}

func TestForwardStreamsTheAnswer(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	b := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-time.After(5 * time.Second):
		}
		io.WriteString(w, "data: two\n\n")
	})
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/s", Function: "s", Backend: b}})
	url := serveGateway(t, g)

	resp, err := http.Get(url + "/dev/s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	// The first event came while the function was still waiting.
	close(next)
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest %q, %v", rest, err)
	}
}

func TestForwardCutAnswerAborts(t *testing.T) {
	t.Parallel()
	b := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "only ten..")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the function dies mid-answer
	})
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/cut", Function: "cut", Backend: b}})
	url := serveGateway(t, g)

	// The gateway has the status, so it can only break the connection:
	// the client sees that, either before the header or in the body.
	resp, err := http.Get(url + "/dev/cut")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("a cut answer reached the client as whole: %d %q", resp.StatusCode, body)
	}
}

func TestForwardHead(t *testing.T) {
	t.Parallel()
	b := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("Content-Length", "5")
		if r.Method != http.MethodHead {
			io.WriteString(w, "hello")
		}
	})
	g := newGateway()
	g.setRoutes("dev", []gatewayRoute{{Path: "/h", Function: "h", Backend: b}})
	url := serveGateway(t, g)
	for range 2 { // the second one on the kept connection
		a := do(t, "HEAD", url+"/dev/h", "", nil, nil)
		if a.code != 200 || a.body != "" || a.header.Get("X-Method") != "HEAD" {
			t.Errorf("HEAD: %d %q %v", a.code, a.body, a.header)
		}
	}
	if a := do(t, "GET", url+"/dev/h", "", nil, nil); a.code != 200 || a.body != "hello" {
		t.Errorf("GET after HEAD: %d %q", a.code, a.body)
	}
}
