package server

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/ferrycd/ferry/internal/gitauth"
	"github.com/ferrycd/ferry/store"
)

// checkAPISource checks a source given through the API before anything of
// it is written to the store: its URL must be https://, ssh:// or
// user@host:path (plain http:// only to this machine), or a local
// repository under one of roots (the configuration's localRoots, resolved);
// and its URL and credentials must suit each other. A local path is
// returned with its symlinks resolved, which is what is stored and
// fetched, so a link cannot later lead elsewhere.
//
// why: whoever holds an admin token is not thereby allowed to read this
// machine's files; a local repository is something the operator opts into,
// folder by folder.
func checkAPISource(src store.Source, roots []string) (store.Source, error) {
	u := src.URL
	if strings.TrimSpace(u) != u || strings.ContainsAny(u, "\x00\n\r") {
		return src, fmt.Errorf("source %s: url %q: give an https:// or ssh:// URL, or user@host:path", src.Name, u)
	}
	ep, err := transport.NewEndpoint(u)
	if err != nil {
		return src, fmt.Errorf("source %s: url %q does not parse: %w", src.Name, u, err)
	}
	switch ep.Protocol {
	case "https", "ssh":
	case "http":
		if !isLoopbackHost(ep.Host) {
			return src, fmt.Errorf("source %s: url %q is plain http to another machine; use https:// (plain http is only for a server on this machine)", src.Name, u)
		}
	case "file":
		real, err := localUnder(src.Name, u, ep, roots)
		if err != nil {
			return src, err
		}
		src.URL = real
	default:
		return src, fmt.Errorf("source %s: url %q: %s:// is not accepted; give an https:// or ssh:// URL, or user@host:path", src.Name, u, ep.Protocol)
	}
	creds := gitauth.Credentials{Username: src.Username, Password: src.Password, SSHKey: src.SSHKey}
	if _, err := gitauth.Check(src.URL, creds, gitauth.Use{Holder: "the source"}); err != nil {
		return src, fmt.Errorf("source %s: %w", src.Name, err)
	}
	return src, nil
}

// localUnder resolves a local path or file:// URL and checks that it lies
// under one of roots. Symlinks are resolved before the check, so neither a
// link nor ".." can lead out of a root.
func localUnder(name, u string, ep *transport.Endpoint, roots []string) (string, error) {
	if len(roots) == 0 {
		return "", fmt.Errorf("source %s: url %q is a local repository, which the API accepts only under a folder listed in localRoots of ferry serve's configuration (none is); add the folder there, or give an https:// or ssh:// URL", name, u)
	}
	p := u
	if strings.HasPrefix(u, "file://") {
		if ep.Host != "" && ep.Host != "localhost" {
			return "", fmt.Errorf("source %s: url %q names a host; a file:// URL is file:///absolute/path", name, u)
		}
		p = ep.Path
	} else if !filepath.IsAbs(u) {
		return "", fmt.Errorf("source %s: url %q is a relative path, which means nothing to the server; give an absolute path under %s", name, u, strings.Join(roots, " or "))
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(p))
	if err != nil {
		return "", fmt.Errorf("source %s: url %q: %w; give a repository under %s", name, u, err, strings.Join(roots, " or "))
	}
	for _, root := range roots {
		if rel, err := filepath.Rel(root, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return real, nil
		}
	}
	return "", fmt.Errorf("source %s: url %q is %s, which is not under localRoots (%s); give a repository under one, or add its folder to localRoots in ferry serve's configuration", name, u, real, strings.Join(roots, ", "))
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
