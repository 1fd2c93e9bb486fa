package watcher

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/ferrycd/ferry/store"
)

// remote is a source's repository, checked and ready for go-git.
type remote struct {
	// url is what go-git fetches: the source's URL, with a local path
	// made absolute.
	url string
	// display is the URL as messages show it.
	display string
	// protocol is go-git's: file, http, https, ssh or git.
	protocol string
	// basic authenticates over HTTP(S); nil without credentials.
	basic *githttp.BasicAuth
	// keys authenticates over SSH.
	keys *gitssh.PublicKeys
	// hostPort is the SSH server, as known_hosts names it.
	hostPort string
}

// sameAccess reports whether r and o reach the same repository with the
// same credentials, so that a source updated to o needs no fetch now.
func (r *remote) sameAccess(o *remote) bool {
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

// validName reports whether name is a DNS label, as the API requires of
// source names; it also makes a safe folder name for the mirror.
func validName(name string) bool {
	if name == "" || len(name) > 63 || name[0] < 'a' || name[0] > 'z' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkSource checks src and returns how to reach its repository. The
// error says what to change.
func checkSource(src store.Source) (*remote, error) {
	if !validName(src.Name) {
		return nil, fmt.Errorf("source name %q: use lower-case letters, digits and '-', starting with a letter, at most 63", src.Name)
	}
	if src.Interval <= 0 {
		return nil, fmt.Errorf("source %s: the poll interval must be positive, not %v; give one such as 1m", src.Name, src.Interval)
	}
	if err := checkBranch(src.Branch); err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	r, err := checkURL(src)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return r, nil
}

func checkBranch(b string) error {
	switch {
	case b == "":
		return fmt.Errorf("give the branch to watch, such as main")
	case strings.HasPrefix(b, "refs/"):
		return fmt.Errorf("branch %q: give the branch's name without refs/heads/, such as main", b)
	case strings.HasPrefix(b, "-") || plumbing.NewBranchReferenceName(b).Validate() != nil:
		return fmt.Errorf("branch %q is not a valid Git branch name", b)
	}
	return nil
}

// checkURL parses the source's URL and its credentials.
func checkURL(src store.Source) (*remote, error) {
	if strings.TrimSpace(src.URL) != src.URL || src.URL == "" || strings.ContainsAny(src.URL, "\x00\n\r") {
		return nil, fmt.Errorf("url %q: give a local path, file://, https:// or ssh:// URL (or user@host:path)", src.URL)
	}
	ep, err := transport.NewEndpoint(src.URL)
	if err != nil {
		return nil, fmt.Errorf("url %q does not parse: %w; give a local path, file://, https:// or ssh:// URL (or user@host:path)", src.URL, err)
	}
	r := &remote{url: src.URL, display: src.URL, protocol: ep.Protocol}
	creds := src.Username != "" || src.Password != ""
	switch ep.Protocol {
	case "file":
		// NewEndpoint made a local path absolute; ferry may run
		// from anywhere later, so the mirror keeps the absolute one.
		if !strings.HasPrefix(src.URL, "file://") {
			r.url, r.display = ep.Path, ep.Path
		} else if ep.Host != "" && ep.Host != "localhost" {
			return nil, fmt.Errorf("url %q names a host; a file:// URL is file:///absolute/path", src.URL)
		}
		if creds || src.SSHKey != "" {
			return nil, fmt.Errorf("a local repository takes no credentials; remove the username, password and SSH key")
		}
	case "git":
		if creds || src.SSHKey != "" {
			return nil, fmt.Errorf("git:// takes no credentials; use https:// with a username and token, or ssh:// with a key")
		}
	case "http", "https":
		if ep.Host == "" {
			return nil, fmt.Errorf("url %q has no host", src.URL)
		}
		if ep.User != "" || ep.Password != "" {
			return nil, fmt.Errorf("url %q holds credentials; put them in the source's username and password instead, so that they are never shown", redactURL(src.URL))
		}
		if src.SSHKey != "" {
			return nil, fmt.Errorf("an SSH key is for ssh:// URLs; for %s give a username and password (or token)", ep.Protocol)
		}
		if creds {
			if ep.Protocol == "http" && !isLoopback(ep.Host) {
				return nil, fmt.Errorf("url %q is plain http, which would send the password unencrypted; use https://", src.URL)
			}
			user := src.Username
			if user == "" {
				// Hosts take a token as the password and ignore the
				// user, but some refuse an empty one.
				user = "git"
			}
			r.basic = &githttp.BasicAuth{Username: user, Password: src.Password}
		}
	case "ssh":
		if ep.Host == "" {
			return nil, fmt.Errorf("url %q has no host", src.URL)
		}
		if ep.Password != "" {
			return nil, fmt.Errorf("url %q holds a password; ssh sources authenticate with the source's SSH key", redactURL(src.URL))
		}
		if src.SSHKey == "" {
			return nil, fmt.Errorf("an ssh URL needs an SSH key: give the source a PEM private key whose public key the Git host accepts (a deploy key)")
		}
		user := ep.User
		if user == "" {
			user = src.Username
		}
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, []byte(src.SSHKey), src.Password)
		if err != nil {
			return nil, fmt.Errorf("the SSH key does not parse: %w; give a PEM private key (for an encrypted one, its passphrase as the password)", err)
		}
		r.keys = keys
		port := ep.Port
		if port == 0 {
			port = 22
		}
		// ep.Host is bracketed already when it is an IPv6 address.
		r.hostPort = fmt.Sprintf("%s:%d", ep.Host, port)
	default:
		return nil, fmt.Errorf("url %q: %s:// is not supported; give a local path, file://, https:// or ssh:// URL", src.URL, ep.Protocol)
	}
	return r, nil
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

// fingerprint is the SHA256 fingerprint of an SSH key, as ssh-keygen -l
// and Git hosts show it.
func fingerprint(k ssh.PublicKey) string {
	return ssh.FingerprintSHA256(k)
}
