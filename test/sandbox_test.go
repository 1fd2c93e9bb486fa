package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/test/gitserver"
)

// TestSandboxHostile commits a function and a test command that try to
// reach what ferry holds (test/testdata/hostile/spy/attack.py), runs them
// under a real ferry serve, and checks that every attempt failed: each
// prints its own answer (attempt -> the error it met), and the test also
// looks from the host at the function's user and where its port listens.
func TestSandboxHostile(t *testing.T) {
	srv := gitserver.Start(t, "git-user", "git-password")
	url := srv.Create(t, "hostile")
	work := t.TempDir()
	if err := os.CopyFS(work, os.DirFS(filepath.Join(root, "test", "testdata", "hostile"))); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "a hostile function")
	gitserver.Git(t, work, "remote", "add", "origin", srv.PushURL(url))
	gitserver.Git(t, work, "push", "-q", "origin", "main")

	secret := "hostile-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: hostile, url: %q, branch: main, interval: 1s, webhookSecret: $HOSTILE_SECRET, username: git-user, password: $GIT_PASSWORD}`, url))
	p := startServe(t, cfg, "GIT_PASSWORD=git-password", "HOSTILE_SECRET="+secret)
	dataDir := filepath.Join(filepath.Dir(cfg.path), "data")
	ferryPid := p.cmd.Process.Pid
	apiPort := strings.TrimPrefix(cfg.api, "http://127.0.0.1:")

	// The first commit deploys the function; its test ran with no targets.
	spyURL := p.gw + "/dev/spy"
	var answer map[string]any
	deadline := time.Now().Add(120 * time.Second)
	targets := map[string]any{"dataDir": dataDir, "ferryPid": ferryPid, "secret": secret, "apiPort": apiPort}
	for {
		code, body := postJSON(t, spyURL, targets)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hostile function was not deployed within 120 s (last %d %s)\n%s\nruns:\n%s", code, body, p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data folder: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	// A file of a function's rootfs in the image cache, by its host path.
	var rootfsFile string
	filepath.WalkDir(filepath.Join(dataDir, "images"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "attack.py" {
			rootfsFile = p
			return fs.SkipAll
		}
		return nil
	})
	if rootfsFile == "" {
		t.Fatalf("no unpacked rootfs under %s", dataDir)
	}
	targets["otherRootfsFile"] = rootfsFile

	// The test command: a second commit tells it where ferry is.
	b, _ := json.Marshal(targets)
	if err := os.WriteFile(filepath.Join(work, "spy", "targets.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "aim at this ferry")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	commit := strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
	testAnswer := waitTestAttempts(t, p, commit)
	t.Logf("the test command's answer:\n%s", indent(testAnswer))
	checkAllFailed(t, "test command", testAnswer, secret)

	// The function, called through the gateway.
	targets["function"] = true
	code, body := postJSON(t, spyURL, targets)
	if code != 200 {
		t.Fatalf("POST %s = %d %s", spyURL, code, body)
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("the function's answer %s: %v", body, err)
	}
	t.Logf("the function's answer:\n%s", indent(answer))
	checkAllFailed(t, "function", answer, secret)

	// What it bound on every address of its own network is not reachable
	// from the host.
	if port, ok := answer["listenPort"].(float64); ok {
		for _, host := range hostAddrs(t) {
			addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
			if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
				c.Close()
				t.Errorf("the port the function bound on 0.0.0.0 in its network is reachable at %s from the host", addr)
			} else {
				t.Logf("dialing the function's own 0.0.0.0 port at %s: %v", addr, err)
			}
		}
	} else {
		t.Errorf("the function did not say which port it bound: %v", answer["listen on every address"])
	}

	// From the host: the function runs as 65532, and its socket listens on
	// loopback only.
	pids := descendants(ferryPid, "ferry_invoker.py")
	if len(pids) == 0 {
		t.Fatal("no function process under ferry")
	}
	for _, pid := range pids {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		uid := statusField(status, "Uid")
		t.Logf("function process %d: Uid %s", pid, uid)
		if want := strings.Repeat(strconv.Itoa(sandbox.DefaultUID)+"\t", 4); uid+"\t" != want {
			t.Errorf("function process %d runs as Uid %q, want 65532 everywhere", pid, uid)
		}
		listens := listeningSockets(t, pid)
		if len(listens) == 0 {
			t.Errorf("function process %d holds no listening socket of the host's network", pid)
		}
		for _, l := range listens {
			t.Logf("function process %d listens on %s (host's /proc/net)", pid, l)
			if !strings.HasPrefix(l, "127.0.0.1:") {
				t.Errorf("function process %d listens on %s, not loopback", pid, l)
			}
		}
	}

	r := ferry(t, "status", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "sandbox: bwrap") {
		t.Errorf("ferry status does not show the sandbox: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func postJSON(t *testing.T, url string, v any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// waitTestAttempts waits for the run of commit and returns what its test
// command answered (the ATTEMPTS line of its log).
func waitTestAttempts(t *testing.T, p *serveProc, commit string) map[string]any {
	t.Helper()
	c := p.client(t)
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		runs, err := c.Runs(t.Context(), "hostile", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs.Items {
			if r.Commit != commit || r.Status == "queued" || r.Status == "running" {
				continue
			}
			lines, err := c.Logs(t.Context(), r.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				if _, js, ok := strings.Cut(l.Text, "ATTEMPTS "); ok {
					var m map[string]any
					if err := json.Unmarshal([]byte(js), &m); err != nil {
						t.Fatalf("the test command's answer %s: %v", js, err)
					}
					if r.Status != "succeeded" {
						t.Errorf("run %d of the hostile commit %s: %s", r.ID, r.Status, r.Reason)
					}
					return m
				}
			}
			t.Fatalf("run %d (%s) logged no answer:\n%s", r.ID, r.Status, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no run of %s ended within 120 s:\n%s", commit, p.runsReport(t))
	return nil
}

// checkAllFailed asserts that no attempt got through, that the answer
// never holds the secret, and that the code ran as 65532.
func checkAllFailed(t *testing.T, who string, answer map[string]any, secret string) {
	t.Helper()
	attempts := 0
	for k, v := range answer {
		s, ok := v.(string)
		if !ok {
			continue
		}
		attempts++
		if strings.HasPrefix(s, "OK") {
			t.Errorf("%s: %q got through: %s", who, k, s)
		}
	}
	if attempts < 15 {
		t.Errorf("%s: only %d attempts answered", who, attempts)
	}
	b, _ := json.Marshal(answer)
	if strings.Contains(string(b), secret) {
		t.Errorf("%s: its answer holds ferry's secret", who)
	}
	if uid, _ := answer["uid"].(float64); int(uid) != sandbox.DefaultUID {
		t.Errorf("%s ran as uid %v, want %d", who, answer["uid"], sandbox.DefaultUID)
	}
}

func indent(v any) string {
	b, _ := json.MarshalIndent(v, "  ", "  ")
	return "  " + string(b)
}

// hostAddrs are the host's IPv4 addresses, loopback included.
func hostAddrs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// descendants are the processes under pid whose command line holds word.
func descendants(pid int, word string) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		pp, _ := strconv.Atoi(statusField(status, "PPid"))
		parent[n] = pp
	}
	var out []int
	for n := range parent {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n))
		if !bytes.Contains(cmdline, []byte(word)) || bytes.HasPrefix(cmdline, []byte("/usr/bin/bwrap")) {
			continue
		}
		for a := parent[n]; a > 1; a = parent[a] {
			if a == pid {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

func statusField(status []byte, name string) string {
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// listeningSockets are the addresses, as the host's /proc/net/tcp{,6}
// show them, of the listening sockets process pid holds.
func listeningSockets(t *testing.T, pid int) []string {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			out = append(out, procNetAddr(f[1]))
		}
	}
	return out
}

// procNetAddr reads /proc/net/tcp's HEXIP:HEXPORT (IPv4, little-endian
// words; IPv6 shown as its hex).
func procNetAddr(s string) string {
	h, port, _ := strings.Cut(s, ":")
	pn, _ := strconv.ParseUint(port, 16, 16)
	if len(h) == 8 {
		v, _ := strconv.ParseUint(h, 16, 32)
		return fmt.Sprintf("%d.%d.%d.%d:%d", v&0xff, v>>8&0xff, v>>16&0xff, v>>24, pn)
	}
	return "[" + h + "]:" + strconv.Itoa(int(pn))
}

// TestSandboxNoneIsLoud: an operator who turns the sandbox off is told so
// on every start, and ferry status shows it.
func TestSandboxNoneIsLoud(t *testing.T) {
	cfg := writeServeConfig(t, "  []")
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.path, append(b, "sandbox: none\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	if out := p.output.String(); !strings.Contains(out, "WARNING: sandbox: none") {
		t.Errorf("ferry serve did not warn that the sandbox is off:\n%s", out)
	}
	r := ferry(t, "status", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "sandbox: none (repository code runs as ferry!)") {
		t.Errorf("ferry status: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
