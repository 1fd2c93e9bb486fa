package sandbox

import (
	"bytes"
	"context"
	"os"
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
