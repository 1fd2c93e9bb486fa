package sandbox

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// findOrSkip returns the bwrap sandbox; a machine without bubblewrap
// fails the test, since hack/deps.sh installs it.
func findOrFail(t *testing.T) *Sandbox {
	t.Helper()
	s, err := Find(context.Background(), ModeBwrap, NetworkNone)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	return s
}

// TestConfined runs a shell in the sandbox that tries what repository code
// must not do, and checks every try failed and what it may do works.
func TestConfined(t *testing.T) {
	s := findOrFail(t)
	secretDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, "secret"), []byte("s3cr3t"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "ferry", "function"), 0o755)
	os.WriteFile(filepath.Join(root, "ferry", "function", "code"), []byte("code"), 0o644)
	script := `
id -u; id -g
cat /ferry/function/code; echo
cat ` + filepath.Join(secretDir, "secret") + ` 2>/dev/null && echo READ-SECRET
touch /ferry/function/x 2>/dev/null && echo WROTE-ROOT
touch /usr/x 2>/dev/null && echo WROTE-USR
echo tmp > /tmp/t && cat /tmp/t
kill -0 1 2>/dev/null && echo SIGNALLED-1
ls /proc | grep -c '^[0-9]'
echo "env:$FERRY_SECRET_FOR_TEST:$PATH"
grep sandbox /etc/passwd | cut -d: -f3
cat /sys/class/net/*/address 2>/dev/null | wc -l
`
	c, err := s.Command(Spec{Root: root, Program: "sh", Args: []string{"-c", script}, Env: []string{"PATH=" + SystemPath}, Dir: "/ferry/function"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FERRY_SECRET_FOR_TEST", "leaked")
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		t.Fatalf("run: %v\n%s%s", err, out.String(), errOut.String())
	}
	got := out.String()
	t.Logf("the sandboxed shell said:\n%s%s", got, errOut.String())
	bads := []string{"READ-SECRET", "WROTE-ROOT", "WROTE-USR", "leaked"}
	if os.Geteuid() == 0 {
		// why: pid 1 is the sandbox's own bwrap; as root it is root's, out
		// of reach. Run by a developer it is theirs, and signalling it ends
		// only this sandbox.
		bads = append(bads, "SIGNALLED-1")
	}
	for _, bad := range bads {
		if strings.Contains(got, bad) {
			t.Errorf("the sandbox allowed %s", bad)
		}
	}
	got = strings.Replace(got, "SIGNALLED-1\n", "", 1)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	want := []string{"65532", "65532", "code", "tmp"}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Fatalf("line %d: want %q, got %q", i, w, lines)
		}
	}
	// pid 1 (bwrap), the shell, ls and grep: nothing of the host.
	if n := lines[4]; n == "" || len(n) > 1 {
		t.Errorf("the sandbox sees %s processes; want a handful of its own", n)
	}
	if lines[5] != "env::"+SystemPath {
		t.Errorf("environment leaked or PATH wrong: %q", lines[5])
	}
	if lines[6] != "65532" {
		t.Errorf("passwd has no sandbox user: %q", lines[6])
	}
}

func TestFindRefusesUnknownMode(t *testing.T) {
	if _, err := Find(context.Background(), "docker", ""); err == nil || !strings.Contains(err.Error(), "bwrap, none or auto") {
		t.Fatalf("want an error listing the modes, got %v", err)
	}
	if _, err := Find(context.Background(), ModeBwrap, "bridge"); err == nil || !strings.Contains(err.Error(), "none or host") {
		t.Fatalf("want an error listing the networks, got %v", err)
	}
}

func TestNoneRunsOnHostPaths(t *testing.T) {
	s, err := Find(context.Background(), ModeNone, "")
	if err != nil || s.Enabled() {
		t.Fatalf("none: %v %v", s, err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "ferry"), 0o755)
	c, err := s.Command(Spec{Root: root, Program: "pwd", Dir: "/ferry"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Output()
	if err != nil || strings.TrimSpace(string(out)) != filepath.Join(root, "ferry") {
		t.Fatalf("pwd: %q %v", out, err)
	}
}

// BenchmarkStart is the sandbox's own start: bubblewrap with a scratch
// image's mounts running /bin/true, until it has exited.
func BenchmarkStart(b *testing.B) {
	s, err := Find(context.Background(), ModeBwrap, NetworkNone)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c, err := s.Command(Spec{Program: "true"})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// probeSource prints who runs it: its name, uid and effective
// capabilities. Static, so it runs in an image with nothing else.
const probeSource = `package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	status, _ := os.ReadFile("/proc/self/status")
	caps := ""
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "CapEff:") {
			caps = strings.TrimSpace(strings.TrimPrefix(l, "CapEff:"))
		}
	}
	fmt.Printf("%s uid=%d caps=%s\n", filepath.Base(os.Args[0]), os.Getuid(), caps)
}
`

// TestImageSetprivNeverRuns gives the sandbox, as root, an image with a
// /usr of its own whose setpriv is hostile (it would run with root's uid
// and the capabilities to change it): the host's setpriv must drop to the
// user, and the image's never run.
func TestImageSetprivNeverRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the drop by setpriv happens only when ferry runs as root")
	}
	s := findOrFail(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(probeSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module probe\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	bin := filepath.Join(root, "usr", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "probe"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	probe, err := os.ReadFile(filepath.Join(bin, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "setpriv"), probe, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := s.Command(Spec{Root: root, Program: "/usr/bin/probe", Env: []string{"PATH=" + SystemPath}})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		t.Fatalf("run: %v\n%s%s", err, out.String(), errOut.String())
	}
	got := strings.TrimSpace(out.String())
	t.Logf("the image's program said: %s", got)
	if want := "probe uid=65532 caps=0000000000000000"; got != want {
		t.Errorf("the image ran as %q, want %q (the image's own setpriv must never run)", got, want)
	}
}
