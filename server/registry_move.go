package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrycd/ferry/build"
)

// addressesFile, in the data folder, lists every
// address the registry has listened on, one a line. Releases are recorded
// by reference (HOST:PORT/ferry@sha256:…), so a release built before
// registryListen changed names an address nobody listens on any more;
// this record is how ferry knows that address was its own.
const addressesFile = "registry-addresses"

// registryMoves pulls releases of the embedded registry from where it
// listens now, whatever address they were recorded with: the storage is
// the same folder, and a digest names the same bytes anywhere (PullRelease
// and the image unpacker check them).
type registryMoves struct {
	current string          // HOST:PORT the registry listens on now
	past    map[string]bool // the addresses it listened on before
	opts    []build.Option
}

// recordRegistryAddress adds addr to the embedded registry's addresses in
// the data folder dir and returns what moved. A registry that is not embedded moves
// nowhere: pass an empty addr.
func recordRegistryAddress(dir, addr string, opts []build.Option) (*registryMoves, error) {
	m := &registryMoves{current: addr, past: map[string]bool{}, opts: opts}
	if addr == "" {
		return m, nil
	}
	path := filepath.Join(dir, addressesFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the embedded registry's past addresses: %w", err)
	}
	var known []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if a := strings.TrimSpace(sc.Text()); a != "" {
			known = append(known, a)
			if a != addr {
				m.past[a] = true
			}
		}
	}
	if !slices.Contains(known, addr) {
		known = append(known, addr)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, []byte(strings.Join(known, "\n")+"\n")); err != nil {
			return nil, fmt.Errorf("recording the embedded registry's address: %w", err)
		}
	}
	return m, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// here returns ref at the registry's current address when it names one
// of its past addresses; any other reference is returned as it is.
func (m *registryMoves) here(ref string) string {
	if len(m.past) == 0 {
		return ref
	}
	d, err := name.NewDigest(ref, name.Insecure)
	if err != nil || !m.past[d.RegistryStr()] {
		return ref
	}
	return m.current + "/" + d.RepositoryStr() + "@" + d.DigestStr()
}

// pull is build.PullRelease from where the embedded registry is now; the
// functions' images of the release are taken from there too.
func (m *registryMoves) pull(ctx context.Context, ref string) (*build.Release, error) {
	rel, err := build.PullRelease(ctx, m.here(ref), m.opts...)
	if err != nil {
		return nil, err
	}
	for _, f := range rel.Set.Functions {
		f.Spec.Image = m.here(f.Spec.Image)
	}
	return rel, nil
}

// restoreErrors remembers, per environment, the release that could not be
// started again at ferry's start and why, so that ferry status shows it
// rather than an environment with a release and no functions.
type restoreErrors struct {
	mu   sync.Mutex
	errs map[string]restoreError
}

type restoreError struct {
	release string
	err     error
}

func (r *restoreErrors) set(env, release string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs == nil {
		r.errs = map[string]restoreError{}
	}
	r.errs[env] = restoreError{release, err}
}

// get returns why env's recorded release is not running, when it is the
// release whose start failed.
func (r *restoreErrors) get(env, release string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.errs[env]; ok && e.release == release {
		return e.err
	}
	return nil
}
