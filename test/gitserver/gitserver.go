package gitserver

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Server serves the bare repositories under Root at URL/<name>.git.
type Server struct {
	Root string
	URL  string

	user, password string
}

// Start serves a new, empty folder of repositories until the test ends.
// With user set, every request must carry those basic-auth credentials.
func Start(t testing.TB, user, password string) *Server {
	t.Helper()
	root := t.TempDir()
	h, err := Handler(root, user, password)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Server{Root: root, URL: srv.URL, user: user, password: password}
}

// PushURL is url with the server's credentials in it, for a git client
// that has no other way to be given them.
func (s *Server) PushURL(url string) string {
	if s.user == "" {
		return url
	}
	return strings.Replace(url, "://", "://"+s.user+":"+s.password+"@", 1)
}

// Handler serves the bare repositories under root over Git's smart HTTP
// protocol; with user set, every request must carry those basic-auth
// credentials. The benchmarks serve it themselves.
func Handler(root, user, password string) (http.Handler, error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %w (is git installed?)", err)
	}
	h := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_CONFIG_NOSYSTEM=1",
		},
	}
	if user == "" {
		return h, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		// why: http-backend refuses pushes from anonymous users.
		r.Header.Set("Remote-User", u)
		h.ServeHTTP(w, r)
	}), nil
}

// Create makes the bare repository name.git and allows pushes to it over
// HTTP; it returns the repository's URL.
func (s *Server) Create(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(s.Root, name+".git")
	Git(t, "", "init", "-q", "--bare", "-b", "main", dir)
	Git(t, dir, "config", "http.receivepack", "true")
	return s.URL + "/" + name + ".git"
}

// Git runs git in dir with the host's configuration shut out and a fixed
// identity, and returns its output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=dev", "GIT_AUTHOR_EMAIL=dev@example.com",
		"GIT_COMMITTER_NAME=dev", "GIT_COMMITTER_EMAIL=dev@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
