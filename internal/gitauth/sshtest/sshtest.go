package sshtest

import (
	"bytes"
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

	"golang.org/x/crypto/ssh"
)

// Server is a Git SSH server on 127.0.0.1, serving the bare repositories
// at the absolute paths clients name.
type Server struct {
	t          testing.TB
	ln         net.Listener
	authorized ssh.PublicKey
	hostKey    atomic.Pointer[ssh.Signer]
	wg         sync.WaitGroup
}

// NewServer starts a server that accepts the key authorized, with a new
// host key, until the test ends.
func NewServer(t testing.TB, authorized ssh.PublicKey) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, ln: ln, authorized: authorized}
	s.ChangeHostKey()
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// ChangeHostKey gives the server a new host key and returns it.
func (s *Server) ChangeHostKey() ssh.PublicKey {
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

// URL is the ssh:// URL of the repository at the absolute path dir.
func (s *Server) URL(dir string) string {
	return "ssh://git@" + s.ln.Addr().String() + dir
}

// KnownHost is the server as a known_hosts line names it: [127.0.0.1]:port.
func (s *Server) KnownHost() string {
	return "[" + strings.Replace(s.ln.Addr().String(), ":", "]:", 1)
}

func (s *Server) serve(conn net.Conn) {
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
		s.wg.Go(func() { session(ch, reqs) })
	}
}

// session runs the one Git command the client asks for.
func session(ch ssh.Channel, reqs <-chan *ssh.Request) {
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
		if prog != "git-upload-pack" && prog != "git-receive-pack" || !filepath.IsAbs(repo) {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		code := run(ch, prog, repo)
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{code}))
		return
	}
}

// run pipes prog's input and output through the channel and returns its
// exit status. The host's git settings are kept out, as in every test
// that runs git.
func run(ch ssh.Channel, prog, repo string) uint32 {
	cmd := exec.Command(prog, repo)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
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
	// Not waited for: the client may close the channel after the
	// command exits.
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

// NewKey returns a new ed25519 private key as PEM, encrypted with
// passphrase unless it is "", and its public key.
func NewKey(t testing.TB, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), sshPub
}
