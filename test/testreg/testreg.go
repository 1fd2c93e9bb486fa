package testreg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferrycd/ferry/build/registry"
)

const (
	// rootModule is the module whose go.mod marks the repository root,
	// where hack/tool.sh lives.
	rootModule = "github.com/ferrycd/ferry"
	// startTimeout bounds how long a registry process may take to answer
	// GET /v2/ once started; it answers within a second on a quiet
	// machine, but tests run many packages at once.
	startTimeout = 30 * time.Second
	// stopTimeout bounds the graceful shutdown of an embedded registry.
	stopTimeout = 10 * time.Second
	// portAttempts is how many free ports Process tries: a port found
	// free can be taken by another test before the registry binds it.
	portAttempts = 3
)

// Server is a running registry.
type Server struct {
	// Addr is the registry's host:port, such as 127.0.0.1:41234. Image
	// references start with it.
	Addr string
	// Stop stops the registry now, for tests of a registry that goes
	// down. It may be called more than once; the test's cleanup calls it
	// too.
	Stop func()

	t     testing.TB
	mu    sync.Mutex
	stop  func() // stops what runs now; nil when stopped
	start func(addr string) (string, func(), error)
}

// Restart stops the registry and starts it again on the same data, on
// the same port if it is still free (else on a new one: read Addr
// again). Images pushed before are served after.
func (s *Server) Restart() {
	s.t.Helper()
	s.halt()
	s.mu.Lock()
	defer s.mu.Unlock()
	addr, stop, err := s.start(s.Addr)
	if err != nil {
		s.t.Logf("testreg: %s is taken, restarting on another port: %v", s.Addr, err)
		addr, stop, err = s.start("127.0.0.1:0")
	}
	if err != nil {
		s.t.Fatalf("testreg: restart: %v", err)
	}
	s.Addr, s.stop = addr, stop
}

func (s *Server) halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

func newServer(t testing.TB, start func(addr string) (string, func(), error)) *Server {
	t.Helper()
	s := &Server{t: t, start: start}
	s.Stop = s.halt
	addr, stop, err := start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("testreg: %v", err)
	}
	s.Addr, s.stop = addr, stop
	t.Cleanup(s.halt)
	return s
}

// Embedded starts ferry's embedded registry on a free loopback port with
// its data in dir (a new t.TempDir() if dir is empty), serves it until
// the test ends, and logs its warnings with t.Log.
func Embedded(t testing.TB, dir string) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return newServer(t, func(addr string) (string, func(), error) {
		return startEmbedded(t, addr, dir)
	})
}

func startEmbedded(t testing.TB, addr, dir string) (string, func(), error) {
	log := &testLog{t: t}
	r, err := registry.New(context.Background(), registry.Config{Addr: addr, Dir: dir, Log: log})
	if err != nil {
		return "", nil, err
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve() }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("testreg: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("testreg: registry %s: %v", r.Addr(), err)
		}
		log.close()
	}
	return r.Addr(), stop, nil
}

// testLog passes the embedded registry's log to t.Log until the
// registry stops, and drops what comes after, when t.Log may no longer
// be called.
type testLog struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Logf("registry: %s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (l *testLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
}

// Credentials are a user name and password.
type Credentials struct {
	Username, Password string
}

// ProcessOptions configure Process.
type ProcessOptions struct {
	// Htpasswd, if its Username is set, turns on basic authentication
	// with this as the only user: requests without it get 401.
	Htpasswd Credentials
	// Dir is the registry's storage folder; empty means a new
	// t.TempDir().
	Dir string
}

// Process starts distribution's own registry binary as a child process
// on a free loopback port, with filesystem storage, waits until GET /v2/
// answers, and kills it when the test ends. If it fails to start, the
// test fails with the process's output; if the test fails, the output is
// logged too.
func Process(t testing.TB, opts ProcessOptions) *Server {
	t.Helper()
	bin, err := registryBinary()
	if err != nil {
		t.Fatalf("testreg: %v", err)
	}
	work := t.TempDir()
	storage := opts.Dir
	if storage == "" {
		storage = filepath.Join(work, "data")
	}
	var htpasswd string
	if opts.Htpasswd.Username != "" {
		htpasswd = filepath.Join(work, "htpasswd")
		if err := writeHtpasswd(htpasswd, opts.Htpasswd); err != nil {
			t.Fatalf("testreg: %v", err)
		}
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	p := &process{
		t:        t,
		bin:      bin,
		work:     work,
		storage:  storage,
		htpasswd: htpasswd,
		secret:   hex.EncodeToString(secret),
	}
	t.Cleanup(p.logIfFailed)
	return newServer(t, p.start)
}

type process struct {
	t                  testing.TB
	bin, work, storage string
	htpasswd, secret   string

	mu      sync.Mutex
	runs    int
	outputs []*SyncBuffer // of every run, for logIfFailed
}

// start runs the registry on addr; port 0 means a free port, with a few
// tries in case another test takes it first.
func (p *process) start(addr string) (string, func(), error) {
	if !strings.HasSuffix(addr, ":0") {
		return p.run(addr)
	}
	var err error
	for range portAttempts {
		var free string
		if free, err = freeAddr(); err != nil {
			return "", nil, err
		}
		var stop func()
		if addr, stop, err = p.run(free); err == nil {
			return addr, stop, nil
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return "", nil, err
}

var errAddrInUse = errors.New("address already in use")

// run starts the registry on addr and waits until it answers.
func (p *process) run(addr string) (string, func(), error) {
	p.mu.Lock()
	p.runs++
	config := filepath.Join(p.work, fmt.Sprintf("config-%d.yml", p.runs))
	out := &SyncBuffer{}
	p.outputs = append(p.outputs, out)
	p.mu.Unlock()
	if err := p.writeConfig(config, addr); err != nil {
		return "", nil, err
	}

	cmd := exec.Command(p.bin, "serve", config)
	cmd.Env = registryEnv()
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", p.bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	if err := waitReady(addr, exited); err != nil {
		stop()
		output := out.String()
		if strings.Contains(output, "address already in use") {
			err = errAddrInUse
		} else if waitErr != nil {
			err = fmt.Errorf("%w (%v)", err, waitErr)
		}
		return "", nil, fmt.Errorf("registry process on %s: %w; its output:\n%s", addr, err, output)
	}
	return addr, stop, nil
}

// waitReady polls GET /v2/ until it answers 200 (open) or 401
// (authentication on), the process exits, or startTimeout passes.
func waitReady(addr string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	url := "http://" + addr + "/v2/"
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", startTimeout, err)
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeConfig writes the registry's config.yml. It is JSON, which YAML
// reads as it is, so no path needs quoting by hand.
func (p *process) writeConfig(path, addr string) error {
	type m = map[string]any
	cfg := m{
		"version": "0.1",
		"log": m{
			"level":     "warn",
			"accesslog": m{"disabled": true},
		},
		"storage": m{
			"filesystem":  m{"rootdirectory": p.storage},
			"delete":      m{"enabled": true},
			"redirect":    m{"disable": true},
			"cache":       m{"blobdescriptor": "inmemory"},
			"maintenance": m{"uploadpurging": m{"enabled": false}},
		},
		"http": m{
			"addr":   addr,
			"secret": p.secret,
		},
		"health": m{"storagedriver": m{"enabled": false}},
	}
	if p.htpasswd != "" {
		cfg["auth"] = m{"htpasswd": m{"realm": "testreg", "path": p.htpasswd}}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func (p *process) logIfFailed() {
	if !p.t.Failed() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, out := range p.outputs {
		if s := out.String(); s != "" {
			p.t.Logf("registry process, run %d, output:\n%s", i+1, s)
		}
	}
}

// registryEnv is the test's environment without the variables that
// would change the registry's configuration (REGISTRY_*) or send its
// traces somewhere (OTEL_*).
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
}

func writeHtpasswd(path string, c Credentials) error {
	if strings.ContainsAny(c.Username, ":\n") {
		return fmt.Errorf("htpasswd user %q: a user name cannot hold ':' or a newline", c.Username)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(c.Password), bcrypt.MinCost)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	return os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", c.Username, hash), 0o600)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

var binary struct {
	once sync.Once
	path string
	err  error
}

// registryBinary builds distribution's registry once per test binary
// (and once per version on the machine: hack/tool.sh caches it) and
// returns its path.
func registryBinary() (string, error) {
	binary.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			binary.err = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "hack", "tool.sh"), "--path", "registry")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			binary.err = fmt.Errorf("hack/tool.sh --path registry: %w\n%s", err, stderr.String())
			return
		}
		binary.path = strings.TrimSpace(string(out))
	})
	return binary.path, binary.err
}

// moduleRoot walks up from the working folder to the go.mod of
// rootModule.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == rootModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s in %s or above it; run the tests inside ferry's repository", rootModule, wd)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// SyncBuffer is a buffer that may be written and read at once: a
// process's output, as a test watches it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
