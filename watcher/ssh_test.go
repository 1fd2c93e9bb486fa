package watcher

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/store"
)

// sshServer is a Git SSH server: it accepts one public key and runs
// git-upload-pack for the repository a client asks for, as a Git host
// does.
type sshServer struct {
	t          *testing.T
	ln         net.Listener
	authorized ssh.PublicKey
	hostKey    atomic.Pointer[ssh.Signer]
	wg         sync.WaitGroup
}

func newSSHServer(t *testing.T, authorized ssh.PublicKey) *sshServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{t: t, ln: ln, authorized: authorized}
	s.setHostKey()
	s.wg.Go(s.serve)
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// setHostKey gives the server a new host key.
func (s *sshServer) setHostKey() ssh.PublicKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		s.t.Fatal(err)
	}
	s.hostKey.Store(&signer)
	return signer.PublicKey()
}

// url is the ssh:// URL of the repository at the absolute path dir.
func (s *sshServer) url(dir string) string {
	return "ssh://git@" + s.ln.Addr().String() + dir
}

func (s *sshServer) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.handle(conn) })
	}
}

func (s *sshServer) handle(conn net.Conn) {
	defer conn.Close()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), s.authorized.Marshal()) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(*s.hostKey.Load())
	sconn, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	defer sconn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.session(ch, reqs) })
	}
}

// session runs the one command a Git client asks for.
func (s *sshServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		prog, arg, _ := strings.Cut(payload.Command, " ")
		repo := strings.Trim(arg, "'")
		if prog != "git-upload-pack" || !filepath.IsAbs(repo) {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		code := s.run(ch, repo)
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{code}))
		return
	}
}

// run pipes git-upload-pack's input and output through the channel and
// returns its exit status.
func (s *sshServer) run(ch ssh.Channel, repo string) uint32 {
	cmd := exec.Command("git-upload-pack", repo)
	cmd.Env = gitEnv
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(ch.Stderr(), err)
		return 127
	}
	// Not waited for: it ends when the client closes the channel, which
	// may be after upload-pack exits.
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return uint32(exit.ExitCode())
		}
		return 1
	}
	return 0
}

// newSSHKey returns a new ed25519 private key as PEM and its public key.
func newSSHKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), sshPub
}

// Over SSH the right key fetches, and the server's host key is pinned on
// first use; a wrong key, and a changed host key, fail clearly.
func TestSSH(t *testing.T) {
	key, pub := newSSHKey(t)
	wrongKey, wrongPub := newSSHKey(t)
	srv := newSSHServer(t, pub)
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	head := repo.commit(nil)
	repo.push()
	url := srv.url(repo.bare)

	tw := startWatcher(t, Config{})
	tw.add(t, store.Source{Name: "good", URL: url, SSHKey: key})
	tw.sync(t, "good")
	if st, _ := tw.Status("good"); st.LastCommit != head || st.LastError != "" {
		t.Fatalf("with the right key: %+v", st)
	}
	known, err := os.ReadFile(filepath.Join(tw.dir, "known_hosts"))
	if err != nil || !strings.Contains(string(known), "["+strings.Replace(srv.ln.Addr().String(), ":", "]:", 1)+" ssh-ed25519 ") {
		t.Errorf("known_hosts = %q, %v; want the server's key pinned", known, err)
	}
	// A second fetch checks the pinned key, and a new commit arrives.
	second := repo.commit(nil)
	repo.push()
	tw.sync(t, "good")
	if st, _ := tw.Status("good"); st.LastCommit != second {
		t.Fatalf("second fetch over SSH: %+v", st)
	}

	tw.add(t, store.Source{Name: "wrong", URL: url, SSHKey: wrongKey})
	err = tw.Sync(context.Background(), "wrong")
	fp := ssh.FingerprintSHA256(wrongPub)
	if err == nil || !strings.Contains(err.Error(), "refused the SSH key "+fp) {
		t.Fatalf("Sync with a wrong key: %v, want it to say the key %s was refused", err, fp)
	}
	if st, _ := tw.Status("wrong"); st.Failures < 1 || !strings.Contains(st.LastError, "deploy keys") || st.LastCommit != "" {
		t.Errorf("status with a wrong key: %+v", st)
	}

	// The server's host key changes: refused, saying what to do.
	newKey := srv.setHostKey()
	err = tw.Sync(context.Background(), "good")
	if err == nil || !strings.Contains(err.Error(), "host key of") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(newKey)) ||
		!strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("Sync after the host key changed: %v, want a refusal naming the new key and the known_hosts file", err)
	}
	if st, _ := tw.Status("good"); st.LastCommit != second || st.Failures != 1 {
		t.Errorf("status after the host key changed: %+v", st)
	}
}

// An encrypted key is decrypted with the source's password.
func TestSSHEncryptedKey(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("open sesame"))
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	srv := newSSHServer(t, sshPub)
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	head := repo.commit(nil)
	repo.push()
	tw := startWatcher(t, Config{})
	src := store.Source{Name: "enc", URL: srv.url(repo.bare), SSHKey: string(pem.EncodeToMemory(block)), Branch: "main", Interval: time.Hour}
	if err := tw.Add(context.Background(), src); err == nil {
		t.Error("an encrypted key without its passphrase was accepted")
	}
	src.Password = "open sesame"
	tw.add(t, src)
	tw.sync(t, "enc")
	if st, _ := tw.Status("enc"); st.LastCommit != head {
		t.Errorf("status %+v", st)
	}
}
