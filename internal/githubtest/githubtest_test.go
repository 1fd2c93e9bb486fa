package githubtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	gh "github.com/google/go-github/v57/github"
)

// recordingTB keeps the stand-in's complaints instead of failing.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) complaints() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errs, "\n")
}

func client(t *testing.T, s *Server) *gh.Client {
	s.AddToken("tok")
	c := gh.NewClient(nil).WithAuthToken("tok")
	c.BaseURL.Host, c.BaseURL.Scheme, c.BaseURL.Path = strings.TrimPrefix(strings.TrimSuffix(s.URL, "/"), "http://"), "http", "/"
	return c
}

func TestAcceptsWhatGitHubDocuments(t *testing.T) {
	s := New(t) // a complaint fails this test
	c := client(t, s)
	ctx := context.Background()
	sha := strings.Repeat("a", 40)
	if _, _, err := c.Repositories.CreateStatus(ctx, "o", "r", sha, &gh.RepoStatus{State: gh.String("pending"), Context: gh.String("ferry/build")}); err != nil {
		t.Fatal(err)
	}
	cm, _, err := c.Issues.CreateComment(ctx, "o", "r", 3, &gh.IssueComment{Body: gh.String("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Issues.EditComment(ctx, "o", "r", cm.GetID(), &gh.IssueComment{Body: gh.String("hello")}); err != nil {
		t.Fatal(err)
	}
	if got := s.Comments("o", "r", 3); len(got) != 1 || got[0].GetBody() != "hello" || s.Edits(cm.GetID()) != 1 {
		t.Errorf("comments %v, %d edits; want one, edited once to hello", got, s.Edits(cm.GetID()))
	}
	if st := s.Statuses("o", "r", sha); len(st) != 1 || st[0].GetState() != "pending" {
		t.Errorf("statuses %v", st)
	}
}

func TestComplainsAboutTheUndocumented(t *testing.T) {
	cases := []struct {
		name, method, path, auth, body, want string
	}{
		{"unknown path", "GET", "/repos/o/r/hooks", "Bearer tok", "", "unexpected GET /repos/o/r/hooks"},
		{"wrong method", "PUT", "/repos/o/r/statuses/" + strings.Repeat("a", 40), "Bearer tok", `{"state":"success"}`, "unexpected PUT"},
		{"bad state", "POST", "/repos/o/r/statuses/" + strings.Repeat("a", 40), "Bearer tok", `{"state":"done"}`, `state "done" is not one of`},
		{"unknown field", "POST", "/repos/o/r/statuses/" + strings.Repeat("a", 40), "Bearer tok", `{"state":"success","colour":"green"}`, "unknown field"},
		{"short sha", "POST", "/repos/o/r/statuses/abc", "Bearer tok", `{"state":"success"}`, "not a full 40-hex commit"},
		{"long description", "POST", "/repos/o/r/statuses/" + strings.Repeat("a", 40), "Bearer tok", `{"state":"success","description":"` + strings.Repeat("x", 141) + `"}`, "at most 140"},
		{"no token", "POST", "/repos/o/r/issues/1/comments", "", `{"body":"x"}`, "without a token"},
		{"unknown token", "POST", "/repos/o/r/issues/1/comments", "token nope", `{"body":"x"}`, "unknown token"},
		{"deployment without required_contexts", "POST", "/repos/o/r/deployments", "Bearer tok", `{"ref":"main"}`, "required_contexts is missing"},
		{"deployment status bad state", "POST", "/repos/o/r/deployments/1/statuses", "Bearer tok", `{"state":"live"}`, `state "live" is not one of`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			s := New(rec)
			s.AddToken("tok")
			req, _ := http.NewRequest(tc.method, strings.TrimSuffix(s.URL, "/")+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Accept", "application/vnd.github+json")
			req.Header.Set("User-Agent", "test")
			req.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("answered %d, want a refusal", resp.StatusCode)
			}
			if got := rec.complaints(); !strings.Contains(got, tc.want) {
				t.Errorf("complaints %q, want one saying %q", got, tc.want)
			}
		})
	}
}
