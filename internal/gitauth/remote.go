package gitauth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// sshDialTimeout bounds connecting to an SSH server: go-git's SSH dial
// does not follow the context.
const sshDialTimeout = 30 * time.Second

// urlForms is what a URL may be, for messages.
const urlForms = "give a local path, file://, https:// or ssh:// URL (or user@host:path)"

// Credentials authenticate to a remote: Username and Password over HTTPS
// (a token as the password), SSHKey (a PEM private key, which Password
// decrypts if it is encrypted) over SSH.
type Credentials struct {
	Username, Password string
	SSHKey             string
}

// Use is what ferry does with a remote, which decides what Check accepts
// and what messages ask for.
type Use struct {
	// Push is set when ferry pushes to the remote, not only fetches: the
	// credentials then need write access, git:// (which hosts serve
	// read-only) is refused, and so is plain http to another machine,
	// which would carry what ferry pushes in the clear.
	Push bool
	// Holder is what the user gives the credentials to, as advice names
	// it: "give the source a username and a token". Default "ferry".
	Holder string
}

// Remote is a Git repository, checked and ready for go-git.
type Remote struct {
	// url is what go-git talks to: the URL given, with a local path made
	// absolute.
	url string
	// protocol is go-git's: file, http, https, ssh or git.
	protocol string
	use      Use
	// basic authenticates over HTTP(S); nil without credentials.
	basic *githttp.BasicAuth
	// keys authenticates over SSH; nil for other protocols.
	keys *gitssh.PublicKeys
	// hostPort is the SSH server, as known_hosts names it.
	hostPort string
}

// Check parses the URL u and creds for use and returns how to reach the
// repository. The error says what to change, and never shows a password.
func Check(u string, creds Credentials, use Use) (*Remote, error) {
	if use.Holder == "" {
		use.Holder = "ferry"
	}
	if strings.TrimSpace(u) != u || u == "" || strings.ContainsAny(u, "\x00\n\r") {
		return nil, fmt.Errorf("url %q: %s", u, urlForms)
	}
	ep, err := transport.NewEndpoint(u)
	if err != nil {
		return nil, fmt.Errorf("url %q does not parse: %w; %s", u, err, urlForms)
	}
	r := &Remote{url: u, protocol: ep.Protocol, use: use}
	hasCreds := creds.Username != "" || creds.Password != ""
	switch {
	case ep.Protocol == "file":
		// NewEndpoint made a local path absolute; keep that one, since
		// ferry may be started from elsewhere next time.
		if !strings.HasPrefix(u, "file://") {
			r.url = ep.Path
		} else if ep.Host != "" && ep.Host != "localhost" {
			return nil, fmt.Errorf("url %q names a host; a file:// URL is file:///absolute/path", u)
		}
		if hasCreds || creds.SSHKey != "" {
			return nil, fmt.Errorf("url %q is a local repository, which takes no credentials; remove the username, password and SSH key", u)
		}
	case ep.Protocol == "git" && !use.Push:
		if hasCreds || creds.SSHKey != "" {
			return nil, errors.New("git:// takes no credentials; use https:// with a username and token, or ssh:// with a key")
		}
	case ep.Protocol == "http" || ep.Protocol == "https":
		if err := checkHTTP(u, ep, creds, use); err != nil {
			return nil, err
		}
		if hasCreds {
			user := creds.Username
			if user == "" {
				// Hosts take a token as the password and ignore the
				// user, but some refuse an empty one.
				user = "git"
			}
			r.basic = &githttp.BasicAuth{Username: user, Password: creds.Password}
		}
	case ep.Protocol == "ssh":
		if err := r.setSSH(u, ep, creds); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("url %q: %s:// is not supported; %s", u, ep.Protocol, urlForms)
	}
	return r, nil
}

// checkHTTP checks an http(s) URL and the credentials given with it.
func checkHTTP(u string, ep *transport.Endpoint, creds Credentials, use Use) error {
	switch {
	case ep.Host == "":
		return fmt.Errorf("url %q has no host", u)
	case ep.User != "" || ep.Password != "":
		return fmt.Errorf("url %q holds credentials; give them as the username and password instead, so that they are never shown", redactURL(u))
	case creds.SSHKey != "":
		return fmt.Errorf("an SSH key is for ssh:// URLs; for %s give a username and password (or token)", u)
	case ep.Protocol == "http" && !isLoopback(ep.Host) && use.Push:
		// A push would carry the password, and what it pushes, in the
		// clear; on this machine nobody can read them on the way.
		return fmt.Errorf("url %q is plain http to another machine; use https:// (plain http is only for a server on this machine)", u)
	case ep.Protocol == "http" && !isLoopback(ep.Host) && (creds.Username != "" || creds.Password != ""):
		return fmt.Errorf("url %q is plain http, which would send the password unencrypted; use https://", u)
	}
	return nil
}

// setSSH checks an ssh URL and sets r's key and server.
func (r *Remote) setSSH(u string, ep *transport.Endpoint, creds Credentials) error {
	if ep.Host == "" {
		return fmt.Errorf("url %q has no host", u)
	}
	if ep.Password != "" {
		return fmt.Errorf("url %q holds a password; over ssh ferry authenticates with the SSH key", redactURL(u))
	}
	if creds.SSHKey == "" {
		access := " (a deploy key)"
		if r.use.Push {
			access = " with write access (a deploy key that may push)"
		}
		return fmt.Errorf("url %q needs an SSH key: give %s a PEM private key whose public key the Git host accepts%s", u, r.use.Holder, access)
	}
	user := ep.User
	if user == "" {
		user = creds.Username
	}
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, []byte(creds.SSHKey), creds.Password)
	if err != nil {
		return fmt.Errorf("the SSH key does not parse: %w; give a PEM private key (for an encrypted one, its passphrase as the password)", err)
	}
	r.keys = keys
	port := ep.Port
	if port == 0 {
		port = 22
	}
	// ep.Host is bracketed already when it is an IPv6 address.
	r.hostPort = fmt.Sprintf("%s:%d", ep.Host, port)
	return nil
}

// URL is what go-git fetches from or pushes to, and what messages show:
// the URL given, a local path made absolute. It holds no password.
func (r *Remote) URL() string { return r.url }

// SameAccess reports whether r and o reach the same repository with the
// same credentials.
func (r *Remote) SameAccess(o *Remote) bool {
	if r.url != o.url || (r.basic == nil) != (o.basic == nil) || (r.keys == nil) != (o.keys == nil) {
		return false
	}
	if r.basic != nil && *r.basic != *o.basic {
		return false
	}
	if r.keys != nil && (r.keys.User != o.keys.User ||
		string(r.keys.Signer.PublicKey().Marshal()) != string(o.keys.Signer.PublicKey().Marshal())) {
		return false
	}
	return true
}

// Auth is go-git's authentication for r, nil when it needs none. Over SSH
// hk checks the server's host key, and the dial gives up after 30 s.
func (r *Remote) Auth(hk *HostKeys) (transport.AuthMethod, error) {
	switch {
	case r.basic != nil:
		return r.basic, nil
	case r.keys != nil:
		algos, err := hk.algorithms(r.hostPort)
		if err != nil {
			return nil, err
		}
		a := &sshAuth{PublicKeys: *r.keys}
		a.HostKeyCallback = hk.check
		a.HostKeyAlgorithms = algos
		return a, nil
	}
	return nil, nil
}

// sshAuth is go-git's public-key authentication with a dial timeout.
type sshAuth struct {
	gitssh.PublicKeys
}

func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = sshDialTimeout
	return cfg, nil
}

// isLoopback reports whether host (an endpoint's, IPv6 bracketed) is this
// machine, where plain http exposes nothing.
func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a URL's user information.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User("REDACTED")
	return u.String()
}
