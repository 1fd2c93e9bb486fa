package embedded

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/ferrycd/ferry/environments"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrycd/ferry/internal/httpstatus"
)

// The gateway's forwarder. Every function is ferry's own invoker on a
// loopback port speaking plain HTTP/1.1, so the gateway does not need a
// general proxy: it writes the request on a kept-alive connection and reads
// the answer on the handler's own goroutine. httputil.ReverseProxy with
// http.Transport hands each call to two more goroutines (the connection's
// read and write loops); on a small machine those hand-offs, and the
// threads they wake, cost more than the forwarding itself (the gateway
// benchmark in test/bench measured 0.33x of direct throughput with them).
//
// What it does not do, on purpose: protocol upgrades (WebSocket) and
// trailers. A function answers a call; the Upgrade header is not passed on,
// so no function ever switches protocols behind the gateway.

const (
	// poolIdleTimeout closes a connection idle this long: before the
	// invokers' own 2 minutes, so a call never races their close.
	poolIdleTimeout = 90 * time.Second
	// maxIdlePerHost connections are kept per instance; a busy function
	// keeps up to Scale.Concurrency (100 by default) busy at once.
	maxIdlePerHost = 256
	// replayLimit is the largest body read before forwarding, so the call
	// can be sent again when a kept-alive connection turns out closed.
	// Larger bodies stream, and such a call fails with 502 instead.
	replayLimit = 64 << 10
	dialTimeout = 5 * time.Second
)

// backendConn is one kept-alive connection to an instance.
type backendConn struct {
	host     string
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

// connPool keeps idle connections per instance host (127.0.0.1:PORT).
type connPool struct {
	mu      sync.Mutex
	idle    map[string][]*backendConn
	sweeper *time.Timer
}

func newConnPool() *connPool {
	return &connPool{idle: map[string][]*backendConn{}}
}

// get returns an idle connection to host, newest first, or dials one;
// reused tells which.
func (p *connPool) get(ctx context.Context, host string) (c *backendConn, reused bool, err error) {
	p.mu.Lock()
	if conns := p.idle[host]; len(conns) > 0 {
		c = conns[len(conns)-1]
		conns[len(conns)-1] = nil
		p.idle[host] = conns[:len(conns)-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	return &backendConn{
		host: host,
		conn: conn,
		br:   bufio.NewReaderSize(conn, 4<<10),
		bw:   bufio.NewWriterSize(conn, 4<<10),
	}, false, nil
}

// put keeps c for the next call to its host.
func (p *connPool) put(c *backendConn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.idle[c.host]
	if len(conns) >= maxIdlePerHost {
		c.conn.Close()
		return
	}
	p.idle[c.host] = append(conns, c)
	if p.sweeper == nil {
		p.sweeper = time.AfterFunc(poolIdleTimeout/3, p.sweep)
	}
}

// sweep closes connections idle too long: those of a stopped instance are
// never asked for again, and would otherwise stay open.
func (p *connPool) sweep() {
	cutoff := time.Now().Add(-poolIdleTimeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	for host, conns := range p.idle {
		// conns is oldest first: put appends.
		n := 0
		for n < len(conns) && conns[n].lastUsed.Before(cutoff) {
			conns[n].conn.Close()
			n++
		}
		if n == len(conns) {
			delete(p.idle, host)
		} else if n > 0 {
			p.idle[host] = append(conns[:0], conns[n:]...)
		}
	}
	if len(p.idle) == 0 {
		p.sweeper = nil
		return
	}
	p.sweeper.Reset(poolIdleTimeout / 3)
}

// closeAll closes every idle connection.
func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for host, conns := range p.idle {
		for _, c := range conns {
			c.conn.Close()
		}
		delete(p.idle, host)
	}
}

// hopHeaders are not passed on in either direction (RFC 9110 7.6.1), with
// Expect, which the gateway's own server answers, and Upgrade.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Expect":              true,
}

// outgoing is the request a call sends to its instance.
type outgoing struct {
	in     *http.Request
	body   io.Reader // nil: none; else the body, possibly read ahead
	length int64     // of body; -1 sends it chunked
	replay bool      // body can be sent again
	extra  []string  // header lines (name, value pairs) to add
}

// errNoResponse marks a kept-alive connection that was closed before it
// answered anything: the call may go again on a new one.
var errNoResponse = errors.New("the connection closed before any answer")

// forward sends c's request to its instance and copies the answer to
// c.sw. Errors before the answer's status is written come back, for the
// caller to turn into 413, 502, 504 or 499; after it, the connection to
// the client is aborted, as its answer can no longer be made whole.
func (g *gateway) forward(c *call, r *http.Request, host string) error {
	out, err := prepare(c, r)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		bc, reused, err := g.pool.get(c.ctx, host)
		if err != nil {
			return err
		}
		err = g.roundTrip(c, bc, out)
		if errors.Is(err, errNoResponse) && reused && out.replay && attempt == 0 {
			continue // a connection closed while idle: try once on a fresh one
		}
		return err
	}
}

// prepare works out the body and headers of r's outgoing request.
func prepare(c *call, r *http.Request) (*outgoing, error) {
	out := &outgoing{in: r}
	switch {
	case r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody:
		out.replay = true
	case r.ContentLength > 0 && r.ContentLength <= replayLimit:
		// why: read first, so a stale connection can be retried, and so a
		// small body goes out with its headers in one write.
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		out.body, out.length, out.replay = bytes.NewReader(buf), r.ContentLength, true
	default:
		out.body, out.length = r.Body, r.ContentLength
	}

	clientIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		clientIP = ""
	}
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 && clientIP != "" {
		clientIP = strings.Join(prior, ", ") + ", " + clientIP
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	out.extra = append(out.extra, "X-Forwarded-Proto", proto)
	if r.Host != "" { // a trigger's call has none
		out.extra = append(out.extra, "X-Forwarded-Host", r.Host)
	}
	if clientIP != "" {
		out.extra = append(out.extra, "X-Forwarded-For", clientIP)
	}
	if !environments.IsEvent(r.Header) {
		// A plain request becomes a binary-mode CloudEvent; a CloudEvent
		// passes as it is.
		c.ceID = newEventID()
		ev := environments.Event{ID: c.ceID, Source: c.route.source, Type: ceTypeHTTP,
			Extensions: map[string]string{"httpmethod": r.Method, "httppath": r.URL.Path, "httpquery": r.URL.RawQuery}}
		ev.EachHeader(func(name, value string) { out.extra = append(out.extra, name, value) })
	}
	return out, nil
}

// skipHeader reports whether the client's header name stays behind: hop
// by hop, named by Connection, or one the gateway sets itself.
func skipHeader(name string, connection []string) bool {
	if hopHeaders[name] {
		return true
	}
	switch name {
	case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Host", "Content-Length":
		return true
	}
	for _, v := range connection {
		for f := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == name {
				return true
			}
		}
	}
	return false
}

// roundTrip writes out on bc and copies the answer to c.sw. bc goes back
// to the pool after a clean exchange, and is closed otherwise.
func (g *gateway) roundTrip(c *call, bc *backendConn, out *outgoing) (err error) {
	clean := false
	defer func() {
		if !clean {
			bc.conn.Close()
		}
	}()
	deadline, _ := c.ctx.Deadline()
	if err := bc.conn.SetDeadline(deadline); err != nil {
		return err
	}
	// why: a client that leaves, or a switch that cancels, ends the call
	// at once, not at its deadline. cut keeps it from touching a
	// connection already handed to awaitEnd.
	var cut struct {
		sync.Mutex
		handed bool
	}
	stop := context.AfterFunc(c.ctx, func() {
		cut.Lock()
		defer cut.Unlock()
		if !cut.handed {
			bc.conn.SetDeadline(time.Unix(1, 0))
		}
	})
	defer stop()

	if err := writeRequest(bc.bw, bc.host, out); err != nil {
		return wrapWriteErr(err, out)
	}
	if err := bc.bw.Flush(); err != nil {
		return wrapWriteErr(err, out)
	}

	// why: ReadResponse reports a close before the status line as a cut
	// answer; Peek tells the two apart, as only the first may go again.
	if _, err := bc.br.Peek(1); err != nil {
		if isClosed(err) {
			return errNoResponse
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline passed, or the client left, before the function
			// answered: its handler still runs, and keeps the call's slot.
			cut.Lock()
			cut.handed = true
			cut.Unlock()
			clean = true // awaitEnd's now
			c.handedOff = true
			ov, _ := c.route.Backend.(overrunner)
			go awaitEnd(g.pool, bc, out.in.Method, deadline, c.route.stats, ov, c.url, c.release)
		}
		return err
	}
	// why: the gateway answers timeouts, by its own clock: an answer read
	// at or after the deadline is late, whatever it says, and the caller
	// gets 504 (forwardError), even when the connection's deadline timer
	// has not fired yet on a busy machine (the race that once let an
	// invoker's 500 through). The invoker's FUNCTION_TIMEOUT, the same
	// length, starts later (when the request reaches it) and its answer
	// waits for the handler's end, so its timeout answer arrives after
	// this deadline; and it is a 504 itself, so even a timer that fires
	// early (libuv's cached loop time can) cannot hand a caller a 500.
	if !time.Now().Before(deadline) {
		return os.ErrDeadlineExceeded
	}
	method := out.in.Method
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(bc.br, &http.Request{Method: method})
		if err != nil {
			return err
		}
		// why: an interim answer (100, 103) is not the call's answer;
		// without Upgrade sent, a 101 is a broken function.
		if resp.StatusCode >= 200 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return errors.New("the function switched protocols, which the gateway does not carry")
		}
	}

	h := c.sw.Header()
	connection := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if !skipHeader(k, connection) {
			h[k] = vv
		}
	}
	if c.route.Untrusted {
		delete(h, "Set-Cookie")
		delete(h, "Set-Cookie2")
		h["Content-Security-Policy"] = []string{untrustedCSP}
	}
	if resp.ContentLength >= 0 && method != http.MethodHead {
		h["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	c.sw.WriteHeader(resp.StatusCode)

	// From here on the client has the status: a failure can only cut the
	// answer short.
	if err := copyBody(&c.sw, resp); err != nil {
		resp.Body.Close()
		panic(http.ErrAbortHandler)
	}
	resp.Body.Close()
	if resp.Close || bc.br.Buffered() > 0 {
		return nil // the function closes, or sent more than it should
	}
	if err := bc.conn.SetDeadline(time.Time{}); err != nil {
		return nil
	}
	if !stop() {
		return nil // the deadline of the cancelled call may have been set
	}
	clean = true
	g.pool.put(bc)
	return nil
}

// writeRequest writes out as an HTTP/1.1 request to host.
func writeRequest(w *bufio.Writer, host string, out *outgoing) error {
	r := out.in
	w.WriteString(r.Method)
	w.WriteString(" /")
	if r.URL.RawQuery != "" {
		w.WriteByte('?')
		w.WriteString(r.URL.RawQuery)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	connection := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipHeader(k, connection) {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(w, k, v)
		}
	}
	for i := 0; i < len(out.extra); i += 2 {
		writeHeaderLine(w, out.extra[i], out.extra[i+1])
	}
	switch {
	case out.body == nil:
		if methodHasBody(r.Method) {
			w.WriteString("Content-Length: 0\r\n")
		}
		_, err := w.WriteString("\r\n")
		return err
	case out.length >= 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(out.length, 10))
		w.WriteString("\r\n\r\n")
		if br, ok := out.body.(*bytes.Reader); ok {
			br.Seek(0, io.SeekStart) // a retry sends it again
		}
		buf := copyBufferPool.Get().(*[]byte)
		defer copyBufferPool.Put(buf)
		n, err := io.CopyBuffer(w, io.LimitReader(out.body, out.length), *buf)
		if err == nil && n < out.length {
			err = io.ErrUnexpectedEOF
		}
		return err
	default:
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(w)
		buf := copyBufferPool.Get().(*[]byte)
		defer copyBufferPool.Put(buf)
		if _, err := io.CopyBuffer(cw, out.body, *buf); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		_, err := w.WriteString("\r\n")
		return err
	}
}

// methodHasBody: a request of these methods says its empty body's length,
// as Go's client does.
func methodHasBody(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

func writeHeaderLine(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(v)
	w.WriteString("\r\n")
}

// copyBody copies the answer's body to the client, flushing after every
// read when its length is unknown, so a streamed answer (server-sent
// events, say) reaches the client as the function writes it.
func copyBody(w *httpstatus.Writer, resp *http.Response) error {
	buf := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(buf)
	if resp.ContentLength >= 0 {
		_, err := io.CopyBuffer(w.ResponseWriter, resp.Body, *buf)
		return err
	}
	flusher, _ := w.ResponseWriter.(http.Flusher)
	for {
		n, err := resp.Body.Read(*buf)
		if n > 0 {
			if _, werr := w.ResponseWriter.Write((*buf)[:n]); werr != nil {
				return werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// wrapWriteErr tells a failure to read the client's body from a failure
// to write to the function.
func wrapWriteErr(err error, out *outgoing) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	if isClosed(err) && out.replay {
		return errNoResponse
	}
	return err
}

// isClosed: the peer had closed the connection before a byte of its
// answer came (io.EOF, not io.ErrUnexpectedEOF, which is an answer cut).
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// eventIDs numbers the CloudEvents the gateway makes of plain requests:
// a random prefix per process and a counter, unique for every source as
// the specification asks, without reading the random source per call.
var eventIDs struct {
	prefix string
	n      atomic.Uint64
}

func init() {
	var b [8]byte
	rand.Read(b[:])
	eventIDs.prefix = hex.EncodeToString(b[:]) + "-"
}

func newEventID() string {
	return eventIDs.prefix + strconv.FormatUint(eventIDs.n.Add(1), 10)
}

// overrunner is a backend that learns of the calls still running on its
// instance at url past their timeout, so it can restart a function they
// fill (instance.overran). end is called when such a call has ended;
// restarted says this call was the one that made the backend restart.
type overrunner interface {
	overran(url string) (end func(), restarted bool)
}

// lateAnswerTimeout bounds the reading of a late answer once it has
// begun: long enough for any answer on loopback, short enough that a
// function that stalls mid-answer does not keep a goroutine for long.
const lateAnswerTimeout = 10 * time.Second

// awaitEnd waits on bc for the answer to a call the gateway has stopped
// waiting for (its deadline passed, or its client left), and calls
// release when it comes: then the handler has ended, as the invokers
// answer a timed-out call only when its handler returns. A broken
// connection (the process died) releases it too. Past the deadline the
// call counts as overdue, in the metrics and to ov. The answer is read
// and dropped, so the connection can go back to the pool.
func awaitEnd(pool *connPool, bc *backendConn, method string, deadline time.Time, st *routeStats, ov overrunner, url string, release func()) {
	defer release()
	clean := false
	defer func() {
		if !clean {
			bc.conn.Close()
		}
	}()
	// why: a call whose client left is not late until its deadline.
	bc.conn.SetDeadline(deadline)
	_, err := bc.br.Peek(1)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		st.overdue.Add(1)
		defer st.overdue.Add(-1)
		if ov != nil {
			end, restarted := ov.overran(url)
			defer end()
			if restarted {
				st.restarts.Add(1)
			}
		}
		bc.conn.SetDeadline(time.Time{})
		_, err = bc.br.Peek(1)
	}
	if err != nil {
		return
	}
	bc.conn.SetDeadline(time.Now().Add(lateAnswerTimeout))
	for {
		resp, err := http.ReadResponse(bc.br, &http.Request{Method: method})
		if err != nil {
			return
		}
		if resp.StatusCode < 200 {
			continue
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.Close || bc.br.Buffered() > 0 || bc.conn.SetDeadline(time.Time{}) != nil {
			return
		}
		clean = true
		pool.put(bc)
		return
	}
}
