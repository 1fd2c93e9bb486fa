package gitauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/ferrycd/ferry/internal/gitauth/sshtest"
)

// What the watcher and the exporter pass.
var (
	fetch = Use{Holder: "the source"}
	push  = Use{Push: true, Holder: "the exporter"}
)

// Check refuses URLs and credentials it cannot use, saying what to change
// and never showing a password; fetching and pushing differ only where
// writing needs more.
func TestCheckRefuses(t *testing.T) {
	key, _ := sshtest.NewKey(t, "")
	for _, c := range []struct {
		name  string
		url   string
		creds Credentials
		uses  []Use
		want  string
	}{
		{"no url", "", Credentials{}, []Use{fetch, push}, "give a local path, file://, https:// or ssh:// URL (or user@host:path)"},
		{"spaces", " https://host/x.git", Credentials{}, []Use{fetch, push}, "give a local path"},
		{"line break", "https://host/x.git\n/y", Credentials{}, []Use{fetch, push}, "give a local path"},
		{"ftp", "ftp://host/x.git", Credentials{}, []Use{fetch, push}, "ftp:// is not supported"},
		{"git to push", "git://host/x.git", Credentials{}, []Use{push}, "git:// is not supported"},
		{"git with creds", "git://host/x.git", Credentials{Password: "pw"}, []Use{fetch}, "git:// takes no credentials"},
		{"https without host", "https:///x.git", Credentials{}, []Use{fetch, push}, "has no host"},
		{"password in url", "https://bob:pw@host/x.git", Credentials{}, []Use{fetch, push}, `url "https://REDACTED@host/x.git" holds credentials; give them as the username and password instead`},
		{"key for https", "https://host/x.git", Credentials{SSHKey: key}, []Use{fetch, push}, "an SSH key is for ssh:// URLs; for https://host/x.git give a username and password (or token)"},
		{"password over http", "http://git.example.com/x.git", Credentials{Password: "pw"}, []Use{fetch}, "is plain http, which would send the password unencrypted; use https://"},
		{"push over http", "http://git.example.com/x.git", Credentials{}, []Use{push}, "is plain http to another machine; use https://"},
		{"ssh without key", "git@github.com:org/app.git", Credentials{}, []Use{fetch},
			`url "git@github.com:org/app.git" needs an SSH key: give the source a PEM private key whose public key the Git host accepts (a deploy key)`},
		{"ssh without key to push", "ssh://git@github.com/org/app.git", Credentials{}, []Use{push},
			"needs an SSH key: give the exporter a PEM private key whose public key the Git host accepts with write access (a deploy key that may push)"},
		{"ssh without host", "ssh:///x.git", Credentials{SSHKey: key}, []Use{fetch, push}, "has no host"},
		{"ssh password in url", "ssh://bob:pw@host/x.git", Credentials{SSHKey: key}, []Use{fetch, push}, "holds a password; over ssh ferry authenticates with the SSH key"},
		{"ssh bad key", "ssh://git@github.com/org/app.git", Credentials{SSHKey: "not a key"}, []Use{fetch, push}, "the SSH key does not parse"},
		{"local with creds", "/srv/git/app.git", Credentials{Username: "bob"}, []Use{fetch, push}, `url "/srv/git/app.git" is a local repository, which takes no credentials`},
		{"file with key", "file:///srv/git/app.git", Credentials{SSHKey: key}, []Use{fetch, push}, "takes no credentials"},
		{"file with host", "file://host/srv/app.git", Credentials{}, []Use{fetch, push}, "a file:// URL is file:///absolute/path"},
	} {
		for _, use := range c.uses {
			_, err := Check(c.url, c.creds, use)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s (push %v): Check = %v, want %q", c.name, use.Push, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("%s: the error shows the password: %v", c.name, err)
			}
		}
	}
}

// Check accepts what ferry can reach, and sets go-git's authentication
// from the credentials.
func TestCheckAccepts(t *testing.T) {
	key, pub := sshtest.NewKey(t, "")
	for _, c := range []struct {
		name     string
		url      string
		creds    Credentials
		uses     []Use
		basic    *githttp.BasicAuth
		sshUser  string
		hostPort string
	}{
		{"https anonymous", "https://host/x.git", Credentials{}, []Use{fetch, push}, nil, "", ""},
		{"https token", "https://host/x.git", Credentials{Password: "tok"}, []Use{fetch, push}, &githttp.BasicAuth{Username: "git", Password: "tok"}, "", ""},
		{"https user", "https://host/x.git", Credentials{Username: "bob", Password: "pw"}, []Use{fetch, push}, &githttp.BasicAuth{Username: "bob", Password: "pw"}, "", ""},
		{"http anonymous to fetch", "http://git.example.com/x.git", Credentials{}, []Use{fetch}, nil, "", ""},
		{"http to this machine", "http://127.0.0.1:3000/x.git", Credentials{Password: "pw"}, []Use{fetch, push}, &githttp.BasicAuth{Username: "git", Password: "pw"}, "", ""},
		{"http to localhost", "http://localhost:3000/x.git", Credentials{Password: "pw"}, []Use{fetch, push}, &githttp.BasicAuth{Username: "git", Password: "pw"}, "", ""},
		{"http to ::1", "http://[::1]:3000/x.git", Credentials{Password: "pw"}, []Use{fetch, push}, &githttp.BasicAuth{Username: "git", Password: "pw"}, "", ""},
		{"git to fetch", "git://host/x.git", Credentials{}, []Use{fetch}, nil, "", ""},
		{"ssh", "ssh://host/x.git", Credentials{SSHKey: key}, []Use{fetch, push}, nil, "git", "host:22"},
		{"ssh user from url", "ssh://deploy@host:2222/x.git", Credentials{Username: "bob", SSHKey: key}, []Use{fetch, push}, nil, "deploy", "host:2222"},
		{"ssh user from creds", "ssh://host/x.git", Credentials{Username: "bob", SSHKey: key}, []Use{fetch, push}, nil, "bob", "host:22"},
		{"scp-like", "git@github.com:org/app.git", Credentials{SSHKey: key}, []Use{fetch, push}, nil, "git", "github.com:22"},
		{"ssh to ipv6", "ssh://git@[::1]:2222/x.git", Credentials{SSHKey: key}, []Use{fetch, push}, nil, "git", "[::1]:2222"},
	} {
		for _, use := range c.uses {
			r, err := Check(c.url, c.creds, use)
			if err != nil {
				t.Errorf("%s (push %v): %v", c.name, use.Push, err)
				continue
			}
			if r.URL() != c.url {
				t.Errorf("%s: URL() = %q, want %q", c.name, r.URL(), c.url)
			}
			if (r.basic == nil) != (c.basic == nil) || r.basic != nil && *r.basic != *c.basic {
				t.Errorf("%s: basic auth %+v, want %+v", c.name, r.basic, c.basic)
			}
			if (r.keys != nil) != (c.sshUser != "") {
				t.Errorf("%s: SSH keys %v, want them for user %q", c.name, r.keys, c.sshUser)
				continue
			}
			if r.keys != nil {
				if r.keys.User != c.sshUser || r.hostPort != c.hostPort || string(r.keys.Signer.PublicKey().Marshal()) != string(pub.Marshal()) {
					t.Errorf("%s: SSH as %s to %s, want %s to %s with the key given", c.name, r.keys.User, r.hostPort, c.sshUser, c.hostPort)
				}
			}
		}
	}
}

// An encrypted key needs its passphrase as the password.
func TestCheckEncryptedKey(t *testing.T) {
	key, pub := sshtest.NewKey(t, "open sesame")
	_, err := Check("ssh://host/x.git", Credentials{SSHKey: key}, fetch)
	if err == nil || !strings.Contains(err.Error(), "for an encrypted one, its passphrase as the password") {
		t.Errorf("Check without the passphrase = %v, want it to ask for the passphrase", err)
	}
	r, err := Check("ssh://host/x.git", Credentials{SSHKey: key, Password: "open sesame"}, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.keys.Signer.PublicKey().Marshal()) != string(pub.Marshal()) {
		t.Error("the decrypted key is not the one given")
	}
}

// A local path is made absolute, since ferry may run from elsewhere later;
// a file:// URL stays as it is.
func TestCheckLocalPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	r, err := Check("repo.git", Credentials{}, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "repo.git"); r.URL() != want {
		t.Errorf("URL() = %q, want %q", r.URL(), want)
	}
	r, err = Check("file://"+dir, Credentials{}, push)
	if err != nil || r.URL() != "file://"+dir {
		t.Errorf("Check(file://%s) = %v, %v; want the URL kept", dir, r, err)
	}
}

// SameAccess tells a remote reached the same way from one that needs a
// new fetch.
func TestSameAccess(t *testing.T) {
	key, _ := sshtest.NewKey(t, "")
	other, _ := sshtest.NewKey(t, "")
	check := func(u string, creds Credentials) *Remote {
		t.Helper()
		r, err := Check(u, creds, fetch)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := check("https://host/x.git", Credentials{Username: "bob", Password: "pw"})
	sshBase := check("ssh://host/x.git", Credentials{SSHKey: key})
	for _, c := range []struct {
		name string
		a, b *Remote
		same bool
	}{
		{"same https", base, check("https://host/x.git", Credentials{Username: "bob", Password: "pw"}), true},
		{"other url", base, check("https://host/y.git", Credentials{Username: "bob", Password: "pw"}), false},
		{"other password", base, check("https://host/x.git", Credentials{Username: "bob", Password: "new"}), false},
		{"no credentials", base, check("https://host/x.git", Credentials{}), false},
		{"same ssh", sshBase, check("ssh://host/x.git", Credentials{SSHKey: key}), true},
		{"other key", sshBase, check("ssh://host/x.git", Credentials{SSHKey: other}), false},
		{"other user", sshBase, check("ssh://host/x.git", Credentials{Username: "bob", SSHKey: key}), false},
	} {
		if got := c.a.SameAccess(c.b); got != c.same {
			t.Errorf("%s: SameAccess = %v, want %v", c.name, got, c.same)
		}
	}
}

// Auth is nothing without credentials, basic auth over HTTPS, and over SSH
// the key with the host key check and a dial timeout.
func TestAuth(t *testing.T) {
	hk := NewHostKeys(filepath.Join(t.TempDir(), "known_hosts"), nil)
	anon, _ := Check("https://host/x.git", Credentials{}, fetch)
	if a, err := anon.Auth(hk); a != nil || err != nil {
		t.Errorf("Auth without credentials = %v, %v; want nil", a, err)
	}
	basic, _ := Check("https://host/x.git", Credentials{Password: "tok"}, fetch)
	if a, err := basic.Auth(hk); err != nil || a != basic.basic {
		t.Errorf("Auth over https = %v, %v; want the basic auth", a, err)
	}
	key, _ := sshtest.NewKey(t, "")
	r, _ := Check("ssh://host/x.git", Credentials{SSHKey: key}, push)
	a, err := r.Auth(hk)
	if err != nil {
		t.Fatal(err)
	}
	sa, ok := a.(*sshAuth)
	if !ok {
		t.Fatalf("Auth over ssh = %T, want *sshAuth", a)
	}
	cfg, err := sa.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != sshDialTimeout || cfg.HostKeyCallback == nil || cfg.User != "git" {
		t.Errorf("SSH client config: timeout %v, user %q, host key callback set %v", cfg.Timeout, cfg.User, cfg.HostKeyCallback != nil)
	}
	// The known hosts file was made, empty.
	if b, err := os.ReadFile(hk.file); err != nil || len(b) != 0 {
		t.Errorf("known_hosts = %q, %v; want an empty file", b, err)
	}
}

// No URL makes Check panic, and no error shows the password given with
// the URL. (A password inside the URL is hidden by the checks that look
// for one; a URL refused earlier, such as one without a host, is shown as
// given.)
func FuzzCheck(f *testing.F) {
	for _, u := range []string{"https://host/x.git", "http://git.example.com/x.git", "ssh://git@host:22/x.git", "git@host:x.git", "/srv/x.git", "file:///x", "http://[::1]/x", "git://h/x", "ftp://h", ""} {
		f.Add(u, "bob", true)
	}
	const password = "Zq9-the-password-Zq9"
	f.Fuzz(func(t *testing.T, u, user string, push bool) {
		_, err := Check(u, Credentials{Username: user, Password: password}, Use{Push: push})
		if err != nil && !strings.Contains(u, password) && !strings.Contains(user, password) && strings.Contains(err.Error(), password) {
			t.Errorf("Check(%q) shows the password: %v", u, err)
		}
	})
}
