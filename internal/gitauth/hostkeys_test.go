package gitauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
)

// dial makes an SSH connection to r's server with the client config that
// Auth gives go-git.
func dial(t *testing.T, r *Remote, hk *HostKeys) error {
	t.Helper()
	a, err := r.Auth(hk)
	if err != nil {
		return err
	}
	cfg, err := a.(*sshAuth).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", r.hostPort, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

// Against a real SSH server: the host key is pinned on first use and
// logged, checked afterwards (also by a HostKeys made again on the same
// file, as after a restart), and a changed key is refused, naming both
// keys and the file.
func TestHostKeysOverSSH(t *testing.T) {
	key, pub := sshtest.NewKey(t, "")
	srv := sshtest.NewServer(t, pub)
	first := srv.ChangeHostKey()
	r, err := Check(srv.URL("/x.git"), Credentials{SSHKey: key}, fetch)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "new", "known_hosts")
	var mu sync.Mutex
	var logged strings.Builder
	hk := NewHostKeys(file, func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&logged, format+"\n", args...)
	})

	if err := dial(t, r, hk); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	known, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(known), srv.KnownHost()+" ssh-ed25519 ") || strings.Count(string(known), "\n") != 1 {
		t.Errorf("known_hosts = %q, %v; want the server's key pinned", known, err)
	}
	if err := dial(t, r, hk); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	mu.Lock()
	got := logged.String()
	mu.Unlock()
	if strings.Count(got, "on first use") != 1 || !strings.Contains(got, "trusting the SSH host key ssh-ed25519 SHA256:") {
		t.Errorf("log:\n%s\nwant the key trusted on first use once", got)
	}
	again := NewHostKeys(file, nil)
	if algos, err := again.algorithms(r.hostPort); err != nil || len(algos) != 1 || algos[0] != ssh.KeyAlgoED25519 {
		t.Errorf("algorithms of the pinned server = %v, %v; want its key's", algos, err)
	}
	if err := dial(t, r, again); err != nil {
		t.Fatalf("connection after a restart: %v", err)
	}

	newKey := srv.ChangeHostKey()
	err = dial(t, r, hk)
	var changed *hostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("connection after the host key changed: %v, want a hostKeyChangedError", err)
	}
	msg := changed.Error()
	for _, want := range []string{"the SSH host key of " + r.hostPort, "it shows ssh-ed25519 " + ssh.FingerprintSHA256(newKey),
		file + " pins [ssh-ed25519 " + ssh.FingerprintSHA256(first) + "]", "delete its line from " + file} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if reason, advice, known := r.Explain(fmt.Errorf("fetching: %w", err)); !known || reason != msg || advice != "" {
		t.Errorf("Explain = %q, %q, %v; want the error's own words", reason, advice, known)
	}
}

// Fetches of several sources that reach one unknown host at once pin its
// key once.
func TestHostKeysConcurrentFirstUse(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	hk := NewHostKeys(file, nil)
	key := newHostKey(t)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := hk.check("127.0.0.1:2222", addr, key); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	known, err := os.ReadFile(file)
	if err != nil || strings.Count(string(known), "\n") != 1 || !strings.HasPrefix(string(known), "[127.0.0.1]:2222 ssh-ed25519 ") {
		t.Errorf("known_hosts = %q, %v; want one line", known, err)
	}
}

// A known_hosts file that does not parse, or cannot be made, is an error
// that names it.
func TestHostKeysFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(bad, []byte("this is not a known_hosts line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewHostKeys(bad, nil).algorithms("host:22")
	if err == nil || !strings.Contains(err.Error(), "reading the SSH known hosts "+bad) || !strings.Contains(err.Error(), "fix or delete the file") {
		t.Errorf("a broken file: %v", err)
	}
	// A link to a file in a folder that is not there: the link's folder
	// is, so nothing makes the file's.
	link := filepath.Join(dir, "linked_known_hosts")
	if err := os.Symlink(filepath.Join(dir, "missing", "known_hosts"), link); err != nil {
		t.Fatal(err)
	}
	err = NewHostKeys(link, nil).check("host:22", &net.TCPAddr{}, newHostKey(t))
	if err == nil || !strings.Contains(err.Error(), "creating the SSH known hosts "+link) {
		t.Errorf("a file that cannot be made: %v", err)
	}
}

// newHostKey is a new ed25519 public key.
func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
