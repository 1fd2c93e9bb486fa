package gitauth

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// HostKeys pins SSH servers' host keys in a known_hosts file: a listed
// host must show a listed key; an unlisted one is trusted on first use
// and added (see the package documentation for why). One HostKeys per
// file: it serialises reading and appending the file among the fetches
// and pushes that share it, and a host's key does not depend on the
// repository.
type HostKeys struct {
	file string
	log  func(format string, args ...any)
	// mu serialises reading and appending the file.
	mu sync.Mutex
}

// NewHostKeys pins host keys in file, made (with its folder) when
// missing. log hears each key trusted on first use; nil is silent.
func NewHostKeys(file string, log func(format string, args ...any)) *HostKeys {
	if log == nil {
		log = func(string, ...any) {}
	}
	return &HostKeys{file: file, log: log}
}

// hostKeyChangedError is a server whose key is not the pinned one.
type hostKeyChangedError struct {
	host, file, got string
	want            []string
}

func (e *hostKeyChangedError) Error() string {
	return fmt.Sprintf("the SSH host key of %s changed: it shows %s, but %s pins %v; if the server's key really changed, delete its line from %s",
		e.host, e.got, e.file, e.want, e.file)
}

// db reads the file, creating it empty when missing.
func (h *HostKeys) db() (*knownhosts.HostKeyDB, error) {
	if _, err := os.Stat(h.file); os.IsNotExist(err) {
		if err := os.MkdirAll(filepath.Dir(h.file), 0o755); err != nil {
			return nil, fmt.Errorf("creating the SSH known hosts %s: %w", h.file, err)
		}
		f, err := os.OpenFile(h.file, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating the SSH known hosts %s: %w", h.file, err)
		}
		f.Close()
	}
	db, err := knownhosts.NewDB(h.file)
	if err != nil {
		return nil, fmt.Errorf("reading the SSH known hosts %s: %w; fix or delete the file", h.file, err)
	}
	return db, nil
}

// algorithms returns the host key algorithms to offer the server at
// hostPort: those of its pinned keys, so that a server with several keys
// shows the pinned one; none when it is not pinned yet.
func (h *HostKeys) algorithms(hostPort string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	db, err := h.db()
	if err != nil {
		return nil, err
	}
	return db.HostKeyAlgorithms(hostPort), nil
}

// check is the host key callback: it reads the file again, since another
// fetch or push may have pinned the host meanwhile.
func (h *HostKeys) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	db, err := h.db()
	if err != nil {
		return err
	}
	err = db.HostKeyCallback()(hostname, remote, key)
	switch {
	case err == nil:
		return nil
	case knownhosts.IsHostUnknown(err):
		f, err := os.OpenFile(h.file, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("pinning the SSH host key of %s in %s: %w", hostname, h.file, err)
		}
		// Only the name the URL gives: a host behind several addresses
		// keeps one key.
		_, werr := fmt.Fprintln(f, knownhosts.Line([]string{hostname}, key))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("pinning the SSH host key of %s in %s: %w", hostname, h.file, werr)
		}
		h.log("trusting the SSH host key %s %s of %s on first use (pinned in %s)", key.Type(), ssh.FingerprintSHA256(key), hostname, h.file)
		return nil
	case knownhosts.IsHostKeyChanged(err):
		changed := &hostKeyChangedError{host: hostname, file: h.file, got: key.Type() + " " + ssh.FingerprintSHA256(key)}
		for _, k := range db.HostKeys(hostname) {
			changed.want = append(changed.want, k.Type()+" "+ssh.FingerprintSHA256(k))
		}
		return changed
	default:
		return err
	}
}
