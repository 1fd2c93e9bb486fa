package gitauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
)

// Explain says what each transport failure means and what to do, asking
// for write access where ferry pushes, and naming what holds the
// credentials; what it does not know it leaves as it is, on one line.
func TestExplain(t *testing.T) {
	key, pub := sshtest.NewKey(t, "")
	fp := ssh.FingerprintSHA256(pub)
	remote := func(u string, creds Credentials, use Use) *Remote {
		t.Helper()
		r, err := Check(u, creds, use)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	anon := func(use Use) *Remote { return remote("https://host/x.git", Credentials{}, use) }
	withKey := func(use Use) *Remote { return remote("ssh://host/x.git", Credentials{SSHKey: key}, use) }
	local := func(use Use) *Remote { return remote("/srv/x.git", Credentials{}, use) }
	// go-git wraps what it gets; the exporter adds the step.
	wrap := func(err error) error { return fmt.Errorf("pushing: %w", err) }
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		name           string
		r              *Remote
		err            error
		reason, advice string
	}{
		{"no credentials", anon(fetch), transport.ErrAuthenticationRequired,
			"authentication required", "give the source a username and a token (as its password) that may read the repository"},
		{"no credentials to push", anon(push), wrap(transport.ErrAuthenticationRequired),
			"authentication required", "give the exporter a username and a token (as its password) that may push to the repository"},
		{"refused", remote("https://host/x.git", Credentials{Password: "pw"}, fetch), transport.ErrAuthenticationRequired,
			"authentication failed: the username and password (or token) were refused", "check them, and that the token has not expired"},
		{"denied", anon(fetch), transport.ErrAuthorizationFailed,
			"access denied", "give the source credentials that may read the repository"},
		{"denied to push", anon(push), wrap(transport.ErrAuthorizationFailed),
			"access denied", "give the exporter credentials that may push to the repository"},
		{"not found", anon(fetch), transport.ErrRepositoryNotFound,
			"repository not found", "check the URL; a host may also answer this to credentials that may not read a private repository"},
		{"not found to push", anon(push), wrap(transport.ErrRepositoryNotFound),
			"repository not found", "check the URL, and create the repository (an empty one will do); a host may also answer this to credentials that may not read a private repository"},
		{"key refused", withKey(fetch), errors.New("ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain"),
			"the server refused the SSH key " + fp, "add its public key to the repository's deploy keys, or give the source a key the server accepts"},
		{"key refused to push", withKey(push), wrap(errors.New("ssh: handshake failed: ssh: unable to authenticate")),
			"the server refused the SSH key " + fp, "add its public key to the repository's deploy keys with write access, or give the exporter a key the server accepts"},
		{"certificate", anon(fetch), wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			"tls: failed to verify certificate: x509: certificate signed by unknown authority", "this machine does not trust the server's certificate; add its CA to the system's trusted certificates"},
		{"dns", anon(fetch), wrap(&net.DNSError{Err: "no such host", Name: "nohost.example", IsNotFound: true}),
			"lookup nohost.example: no such host", "check the host name in the URL"},
		{"unreachable", anon(fetch), wrap(opErr),
			"dial tcp: connection refused", "the server cannot be reached; check the URL and that the server is up"},
		{"refused, unwrapped", anon(push), errors.New("pushing: dial tcp 127.0.0.1:1:\n connect: connection refused"),
			"pushing: dial tcp 127.0.0.1:1: connect: connection refused", "the server cannot be reached; check the URL and that the server is up"},
		{"no git", local(fetch), exec.ErrNotFound,
			exec.ErrNotFound.Error(), "install git: ferry reads a local repository with git-upload-pack"},
		{"no git to push", local(push), wrap(exec.ErrNotFound),
			"pushing: " + exec.ErrNotFound.Error(), "install git: ferry pushes to a local repository with git-receive-pack"},
		{"local", local(fetch), errors.New("repository does not exist"),
			"repository does not exist", "check that the path is a Git repository ferry may read"},
		{"local to push", local(push), errors.New("repository does not exist"),
			"repository does not exist", "check that the path is a bare Git repository ferry may write to"},
	} {
		reason, advice, known := c.r.Explain(c.err)
		if reason != c.reason || advice != c.advice || !known {
			t.Errorf("%s: Explain = %q, %q, %v\nwant %q, %q, true", c.name, reason, advice, known, c.reason, c.advice)
		}
	}

	reason, advice, known := anon(push).Explain(errors.New("pushing: command error on refs/heads/main:\n  protected branch"))
	if known || advice != "" || reason != "pushing: command error on refs/heads/main: protected branch" {
		t.Errorf("an unknown failure: Explain = %q, %q, %v; want it on one line, not known", reason, advice, known)
	}
	if strings.Contains(reason, "\n") {
		t.Errorf("reason %q spans lines", reason)
	}
}
