package githubtest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v57/github"
)

// Server is the stand-in. Its zero value is not usable: call New.
type Server struct {
	// URL is the API's base URL, with a trailing slash.
	URL string

	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	nextID int64
	// tokens are the accepted tokens and when each expires (zero: never).
	tokens map[string]time.Time
	app    *App
	down   bool
	limits []Limit

	statuses       map[string][]*gh.RepoStatus // "owner/repo@sha"
	comments       map[string][]*gh.IssueComment
	commitComments map[string][]*gh.RepositoryComment // "owner/repo@sha"
	deployments    map[string][]*gh.Deployment        // "owner/repo"
	depStatuses    map[int64][]*gh.DeploymentStatus
	depRequests    map[int64]*gh.DeploymentRequest
	edits          map[int64]int
	permissions    map[string]string // "owner/repo/login"
	hidden         map[string]bool   // "owner/repo"
	pulls          map[string]*gh.PullRequest
	requests       []string
}

// App is a GitHub App the stand-in accepts: installation tokens are made
// for JWTs signed with Key's private half and whose iss is ID.
type App struct {
	ID             int64
	InstallationID int64
	Key            *rsa.PublicKey
	// TokenTTL is how long an installation token lives (default 1h, as
	// GitHub's do).
	TokenTTL time.Duration
	// Slug is the App's slug (default "ferry"): what it writes with an
	// installation token is by "SLUG[bot]".
	Slug string
}

// TokenLogin is the login of the user every personal access token
// belongs to: what ferry writes with a token is by this user.
const TokenLogin = "ferry-bot"

// Limit is one rate-limited answer: Status 403 with X-RateLimit-Remaining
// 0 and X-RateLimit-Reset (GitHub's primary limit), or 429 with
// Retry-After (its secondary one).
type Limit struct {
	Status int
	Wait   time.Duration
}

// New starts a stand-in, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{
		t:              t,
		tokens:         map[string]time.Time{},
		statuses:       map[string][]*gh.RepoStatus{},
		comments:       map[string][]*gh.IssueComment{},
		commitComments: map[string][]*gh.RepositoryComment{},
		deployments:    map[string][]*gh.Deployment{},
		depStatuses:    map[int64][]*gh.DeploymentStatus{},
		depRequests:    map[int64]*gh.DeploymentRequest{},
		edits:          map[int64]int{},
		permissions:    map[string]string{},
		hidden:         map[string]bool{},
		pulls:          map[string]*gh.PullRequest{},
	}
	mux := http.NewServeMux()
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, h)
	}
	route("POST /repos/{owner}/{repo}/statuses/{sha}", s.createStatus)
	// GET issues/comments/{id} and issues/{number}/comments overlap as
	// patterns: one route tells them apart.
	route("GET /repos/{owner}/{repo}/issues/{a}/{b}", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.PathValue("a") == "comments":
			r.SetPathValue("id", r.PathValue("b"))
			s.getComment(w, r)
		case r.PathValue("b") == "comments":
			r.SetPathValue("number", r.PathValue("a"))
			s.listComments(w, r)
		default:
			t.Errorf("github stand-in: unexpected %s %s", r.Method, r.URL.Path)
			notFound(w)
		}
	})
	route("POST /repos/{owner}/{repo}/issues/{number}/comments", s.createComment)
	route("PATCH /repos/{owner}/{repo}/issues/comments/{id}", s.editComment)
	route("GET /repos/{owner}/{repo}/comments/{id}", s.getCommitComment)
	route("POST /repos/{owner}/{repo}/commits/{sha}/comments", s.createCommitComment)
	route("GET /repos/{owner}/{repo}/deployments", s.listDeployments)
	route("POST /repos/{owner}/{repo}/deployments", s.createDeployment)
	route("POST /repos/{owner}/{repo}/deployments/{id}/statuses", s.createDeploymentStatus)
	route("GET /repos/{owner}/{repo}/collaborators/{login}/permission", s.permission)
	route("GET /repos/{owner}/{repo}/pulls/{number}", s.getPull)
	route("POST /app/installations/{id}/access_tokens", s.accessToken)
	route("GET /user", s.user)
	route("GET /app", s.getApp)
	// Anything else is a call GitHub does not have, or one the stand-in
	// was not taught: both are bugs the test must show.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("github stand-in: unexpected %s %s", r.Method, r.URL.Path)
		answer(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
	})
	s.srv = httptest.NewServer(s.guard(mux))
	s.URL = s.srv.URL + "/"
	t.Cleanup(s.srv.Close)
	return s
}

// AddToken makes token a valid personal access token.
func (s *Server) AddToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = time.Time{}
}

// SetApp makes the stand-in accept app's JWTs and installation tokens.
func (s *Server) SetApp(app App) {
	if app.TokenTTL == 0 {
		app.TokenTTL = time.Hour
	}
	if app.Slug == "" {
		app.Slug = "ferry"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app = &app
}

// ExpireTokens makes every installation token expire now: the next
// request with one answers 401, as GitHub does.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok, exp := range s.tokens {
		if !exp.IsZero() {
			s.tokens[tok] = time.Now().Add(-time.Second)
		}
	}
}

// Down makes every request answer 502 Bad Gateway until Down(false).
func (s *Server) Down(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// RateLimit makes the next requests answer the limits, one each.
func (s *Server) RateLimit(limits ...Limit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = append(s.limits, limits...)
}

// Hide makes owner/repo answer 404, as GitHub does a repository that is
// gone or that the token may not see.
func (s *Server) Hide(owner, repo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hidden[owner+"/"+repo] = true
}

// SetPermission sets login's permission on owner/repo (admin, maintain,
// write, triage, read, none).
func (s *Server) SetPermission(owner, repo, login, permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.permissions[owner+"/"+repo+"/"+strings.ToLower(login)] = permission
}

// SetPull makes pull request n of owner/repo exist with these commits.
func (s *Server) SetPull(owner, repo string, n int, head, merge string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls[fmt.Sprintf("%s/%s#%d", owner, repo, n)] = &gh.PullRequest{
		Number: gh.Int(n), State: gh.String("open"),
		Head:           &gh.PullRequestBranch{SHA: gh.String(head), Ref: gh.String("feature")},
		MergeCommitSHA: gh.String(merge),
	}
}

// SetPullAuthor makes login the author of pull request n of owner/repo
// (SetPull made it).
func (s *Server) SetPullAuthor(owner, repo string, n int, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pulls[fmt.Sprintf("%s/%s#%d", owner, repo, n)]; p != nil {
		p.User = &gh.User{Login: gh.String(login)}
	}
}

// ClosePull closes pull request n of owner/repo (SetPull made it).
func (s *Server) ClosePull(owner, repo string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pulls[fmt.Sprintf("%s/%s#%d", owner, repo, n)]; p != nil {
		p.State = gh.String("closed")
	}
}

// AddComment puts a comment by login on issue (or pull request) n, as a
// person would, and returns it.
func (s *Server) AddComment(owner, repo string, n int, login, body string) *gh.IssueComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addComment(owner, repo, n, login, body)
}

// AddCommitComment puts a comment by login on commit sha.
func (s *Server) AddCommitComment(owner, repo, sha, login, body string) *gh.RepositoryComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id()
	c := &gh.RepositoryComment{
		ID: gh.Int64(id), CommitID: gh.String(sha), Body: gh.String(body), User: &gh.User{Login: gh.String(login)},
		HTMLURL: gh.String(fmt.Sprintf("https://github.com/%s/%s/commit/%s#commitcomment-%d", owner, repo, sha, id)),
	}
	k := owner + "/" + repo + "@" + sha
	s.commitComments[k] = append(s.commitComments[k], c)
	return c
}

// DeleteComment deletes an issue comment, as a person would.
func (s *Server) DeleteComment(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, cs := range s.comments {
		s.comments[k] = slices.DeleteFunc(cs, func(c *gh.IssueComment) bool { return c.GetID() == id })
	}
}

// Statuses returns the statuses posted for sha, oldest first.
func (s *Server) Statuses(owner, repo, sha string) []*gh.RepoStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.statuses[owner+"/"+repo+"@"+sha])
}

// Comments returns the comments of issue n, oldest first.
func (s *Server) Comments(owner, repo string, n int) []*gh.IssueComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*gh.IssueComment
	for _, c := range s.comments[fmt.Sprintf("%s/%s#%d", owner, repo, n)] {
		cp := *c
		out = append(out, &cp)
	}
	return out
}

// Edits counts the edits of comment id.
func (s *Server) Edits(id int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.edits[id]
}

// CommitComments returns the comments on commit sha, oldest first.
func (s *Server) CommitComments(owner, repo, sha string) []*gh.RepositoryComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commitComments[owner+"/"+repo+"@"+sha])
}

// Deployments returns owner/repo's deployments, oldest first.
func (s *Server) Deployments(owner, repo string) []*gh.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deployments[owner+"/"+repo])
}

// DeploymentRequest returns the request that made deployment id (its
// transient_environment and production_environment, which a deployment
// does not show).
func (s *Server) DeploymentRequest(id int64) *gh.DeploymentRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.depRequests[id]
}

// DeploymentStatuses returns deployment id's statuses, oldest first.
func (s *Server) DeploymentStatuses(id int64) []*gh.DeploymentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.depStatuses[id])
}

// Requests returns "METHOD PATH" of every request that reached a handler.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) id() int64 {
	s.nextID++
	return 1000 + s.nextID
}

func (s *Server) addComment(owner, repo string, n int, login, body string) *gh.IssueComment {
	id := s.id()
	now := gh.Timestamp{Time: time.Now()}
	c := &gh.IssueComment{
		ID: gh.Int64(id), Body: gh.String(body), User: &gh.User{Login: gh.String(login)},
		CreatedAt: &now, UpdatedAt: &now,
		HTMLURL:  gh.String(fmt.Sprintf("https://github.com/%s/%s/pull/%d#issuecomment-%d", owner, repo, n, id)),
		URL:      gh.String(fmt.Sprintf("%srepos/%s/%s/issues/comments/%d", s.URL, owner, repo, id)),
		IssueURL: gh.String(fmt.Sprintf("%srepos/%s/%s/issues/%d", s.URL, owner, repo, n)),
	}
	k := fmt.Sprintf("%s/%s#%d", owner, repo, n)
	s.comments[k] = append(s.comments[k], c)
	return c
}

// guard checks what every request must carry, and answers outages and
// rate limits before any handler.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ua := r.Header.Get("User-Agent"); ua == "" {
			s.t.Errorf("github stand-in: %s %s without a User-Agent (GitHub refuses those)", r.Method, r.URL.Path)
		}
		if a := r.Header.Get("Accept"); !acceptable(a) {
			s.t.Errorf("github stand-in: %s %s: Accept %q, want application/vnd.github+json (or a v3 or preview media type)", r.Method, r.URL.Path, a)
		}
		if r.Method != http.MethodGet && r.ContentLength != 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			s.t.Errorf("github stand-in: %s %s: Content-Type %q, want application/json", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		s.mu.Lock()
		down := s.down
		var limit *Limit
		if !down && len(s.limits) > 0 {
			limit = &s.limits[0]
			s.limits = s.limits[1:]
		}
		s.mu.Unlock()
		switch {
		case down:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("<html>502 Bad Gateway</html>"))
			return
		case limit != nil:
			s.limited(w, *limit)
			return
		}
		if r.URL.Path != "/app" && !strings.HasPrefix(r.URL.Path, "/app/") && !s.authorized(w, r) {
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		hidden := false
		if parts := strings.SplitN(r.URL.Path, "/", 5); len(parts) >= 4 && parts[1] == "repos" {
			hidden = s.hidden[parts[2]+"/"+parts[3]]
		}
		s.mu.Unlock()
		if hidden {
			notFound(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// mediaTypeRE is GitHub's media types: application/vnd.github+json, the
// v3 one and the previews go-github still asks for on some calls.
var mediaTypeRE = regexp.MustCompile(`^application/vnd\.github(\.[a-z0-9-]+)?(\+json)?$`)

func acceptable(accept string) bool {
	if accept == "" {
		return false
	}
	for _, a := range strings.Split(accept, ",") {
		if !mediaTypeRE.MatchString(strings.TrimSpace(a)) {
			return false
		}
	}
	return true
}

func (s *Server) limited(w http.ResponseWriter, l Limit) {
	secs := int((l.Wait + time.Second - 1) / time.Second)
	switch l.Status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		answer(w, l.Status, map[string]string{"message": "You have exceeded a secondary rate limit."})
	default:
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Used", "5000")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(l.Wait).Unix(), 10))
		answer(w, http.StatusForbidden, map[string]string{"message": "API rate limit exceeded."})
	}
}

// authorized accepts "Bearer TOKEN" and "token TOKEN" with a token it
// knows, not expired; GitHub answers 401 Bad credentials otherwise.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	s.mu.Lock()
	exp, known := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !ok || tok == "":
		s.t.Errorf("github stand-in: %s %s without a token (Authorization %q)", r.Method, r.URL.Path, h)
	case !known:
		s.t.Errorf("github stand-in: %s %s with an unknown token", r.Method, r.URL.Path)
	case !exp.IsZero() && time.Now().After(exp):
		// Not a test failure: a client is expected to meet it and recover.
	default:
		return true
	}
	answer(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
	return false
}

// decode reads the body strictly into v: a field go-github's type does
// not have is a shape GitHub does not document.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.t.Errorf("github stand-in: %s %s: body: %v", r.Method, r.URL.Path, err)
		answer(w, http.StatusBadRequest, map[string]string{"message": "Problems parsing JSON"})
		return false
	}
	return true
}

// invalid fails the test and answers 422, as GitHub does a bad field.
func (s *Server) invalid(w http.ResponseWriter, r *http.Request, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.t.Errorf("github stand-in: %s %s: %s", r.Method, r.URL.Path, msg)
	answer(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed: " + msg})
}

func answer(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func created(w http.ResponseWriter, location string, v any) {
	w.Header().Set("Location", location)
	answer(w, http.StatusCreated, v)
}

func notFound(w http.ResponseWriter) {
	answer(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

func (s *Server) pathInt(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	n, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || n <= 0 {
		s.t.Errorf("github stand-in: %s %s: %s %q is not a positive number", r.Method, r.URL.Path, name, r.PathValue(name))
		notFound(w)
		return 0, false
	}
	return n, true
}

func repoKey(r *http.Request) string { return r.PathValue("owner") + "/" + r.PathValue("repo") }

func (s *Server) isSHA(w http.ResponseWriter, r *http.Request, sha string) bool {
	if len(sha) != 40 {
		s.invalid(w, r, "sha %q is not a full 40-hex commit", sha)
		return false
	}
	if _, err := hex.DecodeString(sha); err != nil {
		s.invalid(w, r, "sha %q is not hexadecimal", sha)
		return false
	}
	return true
}

// createStatus: POST /repos/{owner}/{repo}/statuses/{sha}.
func (s *Server) createStatus(w http.ResponseWriter, r *http.Request) {
	var st gh.RepoStatus
	if !s.decode(w, r, &st) || !s.isSHA(w, r, r.PathValue("sha")) {
		return
	}
	switch {
	case !slices.Contains([]string{"error", "failure", "pending", "success"}, st.GetState()):
		s.invalid(w, r, "state %q is not one of error, failure, pending, success", st.GetState())
		return
	case len(st.GetDescription()) > 140:
		s.invalid(w, r, "description is %d characters; GitHub takes at most 140", len(st.GetDescription()))
		return
	case st.ID != nil || st.CreatedAt != nil || st.Creator != nil:
		s.invalid(w, r, "a status request carries only state, target_url, description and context")
		return
	}
	if st.Context == nil {
		st.Context = gh.String("default")
	}
	s.mu.Lock()
	st.ID = gh.Int64(s.id())
	now := gh.Timestamp{Time: time.Now()}
	st.CreatedAt, st.UpdatedAt = &now, &now
	k := repoKey(r) + "@" + r.PathValue("sha")
	s.statuses[k] = append(s.statuses[k], &st)
	s.mu.Unlock()
	created(w, fmt.Sprintf("%srepos/%s/statuses/%s", s.URL, repoKey(r), r.PathValue("sha")), st)
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	n, ok := s.pathInt(w, r, "number")
	if !ok {
		return
	}
	s.mu.Lock()
	all := slices.Clone(s.comments[fmt.Sprintf("%s#%d", repoKey(r), n)])
	s.mu.Unlock()
	page, per := 1, 30
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		per = min(v, 100)
	}
	from := min((page-1)*per, len(all))
	to := min(from+per, len(all))
	if to < len(all) {
		next := *r.URL
		q := next.Query()
		q.Set("page", strconv.Itoa(page+1))
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, strings.TrimSuffix(s.URL, "/"), next.RequestURI()))
	}
	answer(w, http.StatusOK, all[from:to])
}

func (s *Server) createComment(w http.ResponseWriter, r *http.Request) {
	n, ok := s.pathInt(w, r, "number")
	if !ok {
		return
	}
	var c gh.IssueComment
	if !s.decode(w, r, &c) {
		return
	}
	if c.GetBody() == "" || c.ID != nil || c.User != nil {
		s.invalid(w, r, "a comment request carries only a body, which is required")
		return
	}
	if len(c.GetBody()) > 65536 {
		s.invalid(w, r, "body is %d characters; GitHub takes at most 65536", len(c.GetBody()))
		return
	}
	s.mu.Lock()
	nc := s.addComment(r.PathValue("owner"), r.PathValue("repo"), int(n), s.actor(r), c.GetBody())
	cp := *nc
	s.mu.Unlock()
	created(w, cp.GetURL(), cp)
}

func (s *Server) findComment(r *http.Request, id int64) *gh.IssueComment {
	for k, cs := range s.comments {
		if !strings.HasPrefix(k, repoKey(r)+"#") {
			continue
		}
		for _, c := range cs {
			if c.GetID() == id {
				return c
			}
		}
	}
	return nil
}

func (s *Server) getComment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathInt(w, r, "id")
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.findComment(r, id)
	var cp gh.IssueComment
	if c != nil {
		cp = *c
	}
	s.mu.Unlock()
	if c == nil {
		notFound(w)
		return
	}
	answer(w, http.StatusOK, cp)
}

func (s *Server) editComment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathInt(w, r, "id")
	if !ok {
		return
	}
	var in gh.IssueComment
	if !s.decode(w, r, &in) {
		return
	}
	if in.GetBody() == "" || in.ID != nil {
		s.invalid(w, r, "an edit carries only a body, which is required")
		return
	}
	s.mu.Lock()
	c := s.findComment(r, id)
	var cp gh.IssueComment
	if c != nil {
		c.Body = in.Body
		s.edits[id]++
		now := gh.Timestamp{Time: time.Now()}
		c.UpdatedAt = &now
		cp = *c
	}
	s.mu.Unlock()
	if c == nil {
		notFound(w) // deleted, or never there
		return
	}
	answer(w, http.StatusOK, cp)
}

func (s *Server) getCommitComment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathInt(w, r, "id")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, cs := range s.commitComments {
		if !strings.HasPrefix(k, repoKey(r)+"@") {
			continue
		}
		for _, c := range cs {
			if c.GetID() == id {
				answer(w, http.StatusOK, c)
				return
			}
		}
	}
	notFound(w)
}

func (s *Server) createCommitComment(w http.ResponseWriter, r *http.Request) {
	var c gh.RepositoryComment
	if !s.decode(w, r, &c) || !s.isSHA(w, r, r.PathValue("sha")) {
		return
	}
	if c.GetBody() == "" || c.ID != nil || c.User != nil {
		s.invalid(w, r, "a commit comment request needs a body and carries no id or user")
		return
	}
	s.mu.Lock()
	id := s.id()
	c.ID, c.CommitID, c.User = gh.Int64(id), gh.String(r.PathValue("sha")), &gh.User{Login: gh.String(s.actor(r))}
	k := repoKey(r) + "@" + r.PathValue("sha")
	s.commitComments[k] = append(s.commitComments[k], &c)
	s.mu.Unlock()
	created(w, fmt.Sprintf("%srepos/%s/comments/%d", s.URL, repoKey(r), id), c)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	var out []*gh.Deployment
	// GitHub lists the newest first.
	ds := s.deployments[repoKey(r)]
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		if (q.Get("sha") == "" || d.GetSHA() == q.Get("sha")) && (q.Get("environment") == "" || d.GetEnvironment() == q.Get("environment")) &&
			(q.Get("ref") == "" || d.GetRef() == q.Get("ref")) && (q.Get("task") == "" || d.GetTask() == q.Get("task")) {
			out = append(out, d)
		}
	}
	s.mu.Unlock()
	answer(w, http.StatusOK, out)
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	var d gh.DeploymentRequest
	if !s.decode(w, r, &d) {
		return
	}
	switch {
	case d.GetRef() == "":
		s.invalid(w, r, "ref is required")
		return
	case d.RequiredContexts == nil:
		// GitHub would check every status context and answer 409 while
		// one is pending: ferry deploys what it verified itself.
		s.invalid(w, r, "required_contexts is missing (GitHub then waits for every status context)")
		return
	case d.GetTransientEnvironment() && d.GetProductionEnvironment():
		s.invalid(w, r, "an environment is not both transient and production")
		return
	}
	if d.Environment == nil {
		d.Environment = gh.String("production")
	}
	if d.Task == nil {
		d.Task = gh.String("deploy")
	}
	s.mu.Lock()
	id := s.id()
	now := gh.Timestamp{Time: time.Now()}
	dep := &gh.Deployment{
		ID: gh.Int64(id), SHA: d.Ref, Ref: d.Ref, Task: d.Task, Environment: d.Environment, Description: d.Description,
		CreatedAt: &now, UpdatedAt: &now, Creator: &gh.User{Login: gh.String("ferry-bot")},
		URL:           gh.String(fmt.Sprintf("%srepos/%s/deployments/%d", s.URL, repoKey(r), id)),
		StatusesURL:   gh.String(fmt.Sprintf("%srepos/%s/deployments/%d/statuses", s.URL, repoKey(r), id)),
		RepositoryURL: gh.String(fmt.Sprintf("%srepos/%s", s.URL, repoKey(r))),
	}
	if b, err := json.Marshal(d.Payload); err == nil && d.Payload != nil {
		dep.Payload = b
	}
	s.deployments[repoKey(r)] = append(s.deployments[repoKey(r)], dep)
	s.depRequests[id] = &d
	cp := *dep
	s.mu.Unlock()
	created(w, cp.GetURL(), cp)
}

func (s *Server) createDeploymentStatus(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathInt(w, r, "id")
	if !ok {
		return
	}
	var st gh.DeploymentStatusRequest
	if !s.decode(w, r, &st) {
		return
	}
	states := []string{"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
	switch {
	case !slices.Contains(states, st.GetState()):
		s.invalid(w, r, "state %q is not one of %s", st.GetState(), strings.Join(states, ", "))
		return
	case len(st.GetDescription()) > 140:
		s.invalid(w, r, "description is %d characters; GitHub takes at most 140", len(st.GetDescription()))
		return
	case st.EnvironmentURL != nil && !strings.HasPrefix(st.GetEnvironmentURL(), "http"):
		s.invalid(w, r, "environment_url %q is not an http(s) URL", st.GetEnvironmentURL())
		return
	}
	s.mu.Lock()
	var dep *gh.Deployment
	for _, d := range s.deployments[repoKey(r)] {
		if d.GetID() == id {
			dep = d
		}
	}
	if dep == nil {
		s.mu.Unlock()
		notFound(w)
		return
	}
	sid := s.id()
	now := gh.Timestamp{Time: time.Now()}
	ds := &gh.DeploymentStatus{
		ID: gh.Int64(sid), State: st.State, Description: st.Description, Environment: dep.Environment,
		EnvironmentURL: st.EnvironmentURL, LogURL: st.LogURL, CreatedAt: &now, UpdatedAt: &now,
		DeploymentURL: dep.URL, RepositoryURL: dep.RepositoryURL,
	}
	s.depStatuses[id] = append(s.depStatuses[id], ds)
	cp := *ds
	s.mu.Unlock()
	created(w, fmt.Sprintf("%srepos/%s/deployments/%d/statuses/%d", s.URL, repoKey(r), id, sid), cp)
}

// permission answers as GitHub does, whatever the case of the login.
func (s *Server) permission(w http.ResponseWriter, r *http.Request) {
	login := r.PathValue("login")
	s.mu.Lock()
	p, ok := s.permissions[repoKey(r)+"/"+strings.ToLower(login)]
	s.mu.Unlock()
	if !ok {
		// GitHub answers 404 for a user who is not a collaborator.
		answer(w, http.StatusNotFound, map[string]string{"message": fmt.Sprintf("%s is not a user", login)})
		return
	}
	// The REST answer folds maintain into write and triage into read;
	// role_name keeps the exact one.
	legacy := map[string]string{"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}[p]
	if legacy == "" {
		legacy = "none"
	}
	answer(w, http.StatusOK, map[string]any{"permission": legacy, "role_name": p, "user": map[string]any{"login": login}})
}

func (s *Server) getPull(w http.ResponseWriter, r *http.Request) {
	n, ok := s.pathInt(w, r, "number")
	if !ok {
		return
	}
	s.mu.Lock()
	p := s.pulls[fmt.Sprintf("%s#%d", repoKey(r), n)]
	s.mu.Unlock()
	if p == nil {
		notFound(w)
		return
	}
	answer(w, http.StatusOK, p)
}

// accessToken: POST /app/installations/{id}/access_tokens, with the
// App's JWT.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathInt(w, r, "id")
	if !ok {
		return
	}
	s.mu.Lock()
	app := s.app
	s.mu.Unlock()
	if app == nil {
		s.t.Errorf("github stand-in: an installation token asked for, but the test set no App")
		notFound(w)
		return
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		s.t.Errorf("github stand-in: installation token asked for without a Bearer JWT")
		answer(w, http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded"})
		return
	}
	if err := checkJWT(jwt, app, time.Now()); err != nil {
		s.t.Errorf("github stand-in: installation token asked for with a bad JWT: %v", err)
		answer(w, http.StatusUnauthorized, map[string]string{"message": err.Error()})
		return
	}
	if id != app.InstallationID {
		s.t.Errorf("github stand-in: installation %d asked for, the App's is %d", id, app.InstallationID)
		notFound(w)
		return
	}
	if r.ContentLength > 0 {
		var opts gh.InstallationTokenOptions
		if !s.decode(w, r, &opts) {
			return
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	tok := "ghs_" + hex.EncodeToString(b)
	exp := time.Now().Add(app.TokenTTL)
	s.mu.Lock()
	s.tokens[tok] = exp
	s.mu.Unlock()
	answer(w, http.StatusCreated, gh.InstallationToken{Token: gh.String(tok), ExpiresAt: &gh.Timestamp{Time: exp.UTC().Truncate(time.Second)}})
}

// actor is who a request writes as: the App's bot with an installation
// token, TokenLogin with a personal token. The caller holds s.mu.
func (s *Server) actor(r *http.Request) string {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, _ = strings.CutPrefix(h, "token ")
	}
	if exp := s.tokens[tok]; !exp.IsZero() && s.app != nil {
		return s.app.Slug + "[bot]"
	}
	return TokenLogin
}

// user: GET /user, the token's own user. An installation token has none:
// GitHub answers 403 "Resource not accessible by integration".
func (s *Server) user(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	login := s.actor(r)
	s.mu.Unlock()
	if strings.HasSuffix(login, "[bot]") {
		answer(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration"})
		return
	}
	answer(w, http.StatusOK, gh.User{Login: gh.String(login), ID: gh.Int64(1), Type: gh.String("User")})
}

// getApp: GET /app, the App the JWT is signed for.
func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	app := s.app
	s.mu.Unlock()
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if app == nil || !ok {
		s.t.Errorf("github stand-in: GET /app without an App or a Bearer JWT")
		answer(w, http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded"})
		return
	}
	if err := checkJWT(jwt, app, time.Now()); err != nil {
		s.t.Errorf("github stand-in: GET /app with a bad JWT: %v", err)
		answer(w, http.StatusUnauthorized, map[string]string{"message": err.Error()})
		return
	}
	answer(w, http.StatusOK, gh.App{ID: gh.Int64(app.ID), Slug: gh.String(app.Slug), Name: gh.String(app.Slug)})
}
