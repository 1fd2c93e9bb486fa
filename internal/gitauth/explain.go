package gitauth

import (
	"crypto/tls"
	"errors"
	"net"
	"os/exec"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh"
)

// Explain turns err, from fetching from or pushing to r, into what went
// wrong (reason, on one line) and what to do (advice; "" when the reason
// says it all). known is false when err is none of the failures it knows:
// reason is then err's message on one line, and advice "".
//
// It knows failures of the transport only; the caller says first what
// only it can tell, such as its context's deadline or a missing branch.
func (r *Remote) Explain(err error) (reason, advice string, known bool) {
	reason = oneLine(err.Error())
	msg := err.Error()
	var hostKey *hostKeyChangedError
	var netErr *net.OpError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &hostKey):
		reason = hostKey.Error()
	case errors.Is(err, transport.ErrAuthenticationRequired) && r.basic == nil:
		reason = "authentication required"
		advice = "give " + r.use.Holder + " a username and a token (as its password) that may " + r.access() + " the repository"
	case errors.Is(err, transport.ErrAuthenticationRequired):
		reason = "authentication failed: the username and password (or token) were refused"
		advice = "check them, and that the token has not expired"
	case errors.Is(err, transport.ErrAuthorizationFailed):
		reason = "access denied"
		advice = "give " + r.use.Holder + " credentials that may " + r.access() + " the repository"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		reason = "repository not found"
		advice = "check the URL"
		if r.use.Push {
			advice += ", and create the repository (an empty one will do)"
		}
		advice += "; a host may also answer this to credentials that may not read a private repository"
	case r.keys != nil && strings.Contains(msg, "unable to authenticate"):
		reason = "the server refused the SSH key " + ssh.FingerprintSHA256(r.keys.Signer.PublicKey())
		advice = "add its public key to the repository's deploy keys"
		if r.use.Push {
			advice += " with write access"
		}
		advice += ", or give " + r.use.Holder + " a key the server accepts"
	case errors.As(err, &certErr):
		reason = oneLine(certErr.Error())
		advice = "this machine does not trust the server's certificate; add its CA to the system's trusted certificates"
	case errors.As(err, &dnsErr):
		reason = oneLine(dnsErr.Error())
		advice = "check the host name in the URL"
	case errors.As(err, &netErr):
		reason = oneLine(netErr.Error())
		advice = "the server cannot be reached; check the URL and that the server is up"
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(msg, "connection refused"):
		advice = "the server cannot be reached; check the URL and that the server is up"
	case r.protocol == "file" && errors.Is(err, exec.ErrNotFound) && r.use.Push:
		advice = "install git: ferry pushes to a local repository with git-receive-pack"
	case r.protocol == "file" && errors.Is(err, exec.ErrNotFound):
		advice = "install git: ferry reads a local repository with git-upload-pack"
	case r.protocol == "file" && r.use.Push:
		advice = "check that the path is a bare Git repository ferry may write to"
	case r.protocol == "file":
		advice = "check that the path is a Git repository ferry may read"
	default:
		return reason, "", false
	}
	return reason, advice, true
}

// access is what the credentials must allow, for advice.
func (r *Remote) access() string {
	if r.use.Push {
		return "push to"
	}
	return "read"
}

// oneLine collapses a message's white space, so that a status or a log
// line shows it on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
