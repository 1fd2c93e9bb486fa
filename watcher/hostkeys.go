package watcher

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// hostKeys pins SSH servers' host keys in a known_hosts file: a host the
// file lists must show a key it lists; a host it does not list is trusted
// on first use and added. A store.Source has no field for host keys, and
// asking the operator for one before the first fetch would make every SSH
// source fail until they did; trust on first use still catches a server
// that changes its key afterwards, which is when an attack would show.
// An operator who wants no first-use trust puts the keys in the file
// beforehand (ssh-keyscan). The file is shared by all sources, since a
// host's key does not depend on the repository.
type hostKeys struct {
	file string
	log  func(format string, args ...any)
	// mu serialises reading and appending the file across fetches.
	mu sync.Mutex
}

// hostKeyChangedError is a server whose key is not the one pinned.
type hostKeyChangedError struct {
	host, file, got string
	want            []string
}

func (e *hostKeyChangedError) Error() string {
	return fmt.Sprintf("the SSH host key of %s changed: it shows %s, but %s pins %v; if the server's key really changed, delete its line from %s and sync again",
		e.host, e.got, e.file, e.want, e.file)
}

// db reads the file, creating it empty when missing.
func (h *hostKeys) db() (*knownhosts.HostKeyDB, error) {
	if _, err := os.Stat(h.file); os.IsNotExist(err) {
		if err := os.MkdirAll(filepath.Dir(h.file), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(h.file, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		f.Close()
	}
	db, err := knownhosts.NewDB(h.file)
	if err != nil {
		return nil, fmt.Errorf("reading the SSH known hosts %s: %w; fix or delete the file", h.file, err)
	}
	return db, nil
}

// config returns, for the server at hostPort, the host key algorithms to
// offer (those of its pinned keys, so that a server with several keys
// shows the pinned one; none when it is unknown) and the callback that
// checks its key.
func (h *hostKeys) config(hostPort string) ([]string, ssh.HostKeyCallback, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	db, err := h.db()
	if err != nil {
		return nil, nil, err
	}
	return db.HostKeyAlgorithms(hostPort), h.check, nil
}

// check is the host key callback: it reads the file again, since another
// fetch may have pinned the host meanwhile.
func (h *hostKeys) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
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
		h.log("watcher: trusting the SSH host key %s %s of %s on first use (pinned in %s)", key.Type(), fingerprint(key), hostname, h.file)
		return nil
	case knownhosts.IsHostKeyChanged(err):
		changed := &hostKeyChangedError{host: hostname, file: h.file, got: key.Type() + " " + fingerprint(key)}
		for _, k := range db.HostKeys(hostname) {
			changed.want = append(changed.want, k.Type()+" "+fingerprint(k))
		}
		return changed
	default:
		return err
	}
}
