package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
)

// polishPipeline: dev by itself, staging by itself after dev, prod after
// one approval by bob. Staging checks the greeting once.
const polishPipeline = `---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - name: staging
    auto: true
    verify:
    - {name: greets, http: {path: /hello, expectStatus: 200}}
  - name: prod
    approval: {required: 1, approvers: [bob]}
`

// polishServe starts ferry serve watching a new copy of the Python
// example with pipeline appended to its ferry.yaml; alice deploys and
// approves, bob approves. It returns the server, the working copy, and
// a function that runs the CLI against the server as a token.
func polishServe(t *testing.T, name, pipeline string) (*serveProc, string, func(token string, args ...string) result) {
	t.Helper()
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, name, func(dir string) {
		f, err := os.OpenFile(filepath.Join(dir, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(pipeline)
		f.Close()
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: %s, url: %q, branch: main, interval: 1s}`, name, url))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, fmt.Sprintf(`- {name: alice, token: %s, roles: [deployer, approver], email: alice@example.com}
- {name: bob, token: %s, roles: [approver]}
`, aliceToken, bobToken)...)
	if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	return p, work, func(token string, args ...string) result {
		t.Helper()
		return ferry(t, append(args, "--server", p.api, "--token", token)...)
	}
}

// newRelease waits until env runs a release other than not.
func newRelease(t *testing.T, p *serveProc, env, not string) string {
	t.Helper()
	c := p.client(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if rel := liveRelease(t, c, env); rel != not {
			return rel
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs %s:\n%s", env, not, p.output)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var imageDigestRE = regexp.MustCompile(`image: \S+@sha256:([0-9a-f]{64})`)

// TestShortIDs names releases and images by the 12 characters the tables
// print: ferry releases, promote, rollback --to and rollback --function
// F --to take them; a prefix two releases share lists both, one no
// release has says so.
func TestShortIDs(t *testing.T) {
	p, work, cli := polishServe(t, "ids", `---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - name: staging
    approval: {required: 1}
`)
	c := p.client(t)
	waitIn(t, p, "dev", "hello from python", 120*time.Second)
	r1 := newRelease(t, p, "dev", "")
	// why: staging has one open promotion per release; the one ferry
	// opened for r1 is rejected so that r1 can be asked for by hand.
	auto := promotionOf(t, p, c, r1, "staging", "pending")
	if r := cli(bobToken, "reject", fmt.Sprint(auto.ID), "--comment", "asked for by hand below"); r.code != 0 || !strings.Contains(r.stdout, "nothing more happens to it") {
		t.Fatalf("ferry reject %d: %d\n%s%s", auto.ID, r.code, r.stdout, r.stderr)
	}
	commitGreeting(t, work, "", "hello again")
	waitIn(t, p, "dev", "hello again", 90*time.Second)
	r2 := newRelease(t, p, "dev", r1)
	hex1, hex2 := strings.TrimPrefix(r1, "sha256:"), strings.TrimPrefix(r2, "sha256:")
	short1 := store.Short(r1)

	// ferry releases PREFIX prints that release's manifest.
	if r := cli(aliceToken, "releases", short1); r.code != 0 || !strings.Contains(r.stdout, "# release "+r1) {
		t.Fatalf("ferry releases %s: %d\n%s%s", short1, r.code, r.stdout, r.stderr)
	}
	// The table prints those 12 characters; -o wide the whole id.
	if r := cli(aliceToken, "releases"); r.code != 0 || !strings.Contains(r.stdout, "\n"+short1+" ") || wholeDigestRE.MatchString(r.stdout) {
		t.Errorf("ferry releases: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "releases", "-o", "wide"); r.code != 0 || !strings.Contains(r.stdout, r1) {
		t.Errorf("ferry releases -o wide: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// promote by prefix: staging waits for an approval, then deploys.
	r := cli(aliceToken, "promote", short1, "--to", "staging")
	if r.code != 0 || !strings.Contains(r.stdout, short1+" into staging") || !strings.Contains(r.stdout, "next: promotion") ||
		!strings.Contains(r.stdout, "is waiting for 1 more approval from an approver other than alice") {
		t.Fatalf("ferry promote %s --to staging: %d\n%s%s", short1, r.code, r.stdout, r.stderr)
	}
	var id int64
	if _, err := fmt.Sscanf(r.stdout, "promotion %d:", &id); err != nil {
		t.Fatalf("no promotion number in %q: %v", r.stdout, err)
	}
	// why: either, as the promoter may finish before the answer is made.
	if r := cli(bobToken, "approve", fmt.Sprint(id)); r.code != 0 || !strings.Contains(r.stdout, "staging") || !strings.Contains(r.stdout, " now") && !strings.Contains(r.stdout, "is live in staging") {
		t.Fatalf("ferry approve %d: %d\n%s%s", id, r.code, r.stdout, r.stderr)
	}
	waitIn(t, p, "staging", "hello from python", 60*time.Second)

	// rollback --to PREFIX.
	if r := cli(aliceToken, "rollback", "dev", "--to", short1); r.code != 0 || !strings.Contains(r.stdout, "dev now runs "+short1+" (was "+store.Short(r2)+")") {
		t.Fatalf("ferry rollback dev --to %s: %d\n%s%s", short1, r.code, r.stdout, r.stderr)
	}
	waitIn(t, p, "dev", "hello from python", 30*time.Second)

	// rollback --function hello --to DIGEST-PREFIX: r2's image of hello,
	// named by its first 12 hex characters.
	rel2, err := c.Release(t.Context(), r2)
	if err != nil {
		t.Fatal(err)
	}
	m := imageDigestRE.FindStringSubmatch(rel2.Manifest)
	if m == nil {
		t.Fatalf("no image digest in release %s:\n%s", r2, rel2.Manifest)
	}
	if r := cli(aliceToken, "rollback", "dev", "--function", "hello", "--to", m[1][:12]); r.code != 0 {
		t.Fatalf("ferry rollback dev --function hello --to %s: %d\n%s%s", m[1][:12], r.code, r.stdout, r.stderr)
	}
	waitIn(t, p, "dev", "hello again", 30*time.Second)

	// A prefix no release has, and one too short to mean anything.
	unknown := "0000" + strings.Repeat("f", 8)
	if strings.HasPrefix(hex1, unknown) || strings.HasPrefix(hex2, unknown) {
		t.Skip("a release id starts with the unknown prefix; a one in 2^48 chance")
	}
	if r := cli(aliceToken, "promote", unknown, "--to", "staging"); r.code == 0 || !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "no release id starts with "+unknown) {
		t.Errorf("ferry promote %s: %d\n%s%s", unknown, r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "rollback", "dev", "--to", "abc"); r.code == 0 || !strings.Contains(r.stderr, "at least 4 hex characters") {
		t.Errorf("ferry rollback --to abc: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "rollback", "dev", "--function", "hello", "--to", unknown); r.code == 0 || !strings.Contains(r.stderr, "no image of hello") {
		t.Errorf("ferry rollback --function hello --to %s: %d\n%s%s", unknown, r.code, r.stdout, r.stderr)
	}

	// An ambiguous prefix: a release that shares r1's first 12 characters
	// (recorded beside ferry serve, as a pull would) makes it name two.
	twin := "sha256:" + hex1[:12] + strings.Repeat("0", 52)
	if twin == r1 {
		twin = "sha256:" + hex1[:12] + strings.Repeat("1", 52)
	}
	st, err := store.Open(t.Context(), filepath.Join(filepath.Dir(p.cmd.Args[3]), "data", "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = st.PutRelease(t.Context(), store.Release{ID: twin, Source: "ids", Commit: "twin", Ref: "reg/ids@" + twin, Kind: store.ReleasePulled})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"promote", short1, "--to", "staging"}, {"releases", short1}, {"rollback", "dev", "--to", short1}} {
		r := cli(aliceToken, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "ambiguous") ||
			!strings.Contains(r.stderr, hex1) || !strings.Contains(r.stderr, strings.TrimPrefix(twin, "sha256:")) {
			t.Errorf("ferry %s with a prefix two releases share: %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	// One more character than they share names r1 alone again.
	if r := cli(aliceToken, "releases", hex1[:13]); hex1[12] != '0' && hex1[12] != '1' && (r.code != 0 || !strings.Contains(r.stdout, "# release "+r1)) {
		t.Errorf("ferry releases %s: %d\n%s%s", hex1[:13], r.code, r.stdout, r.stderr)
	}
	if _, err := c.Release(t.Context(), short1); err == nil {
		t.Error("the API named one release by an ambiguous prefix")
	} else if se, ok := err.(*server.StatusError); !ok || se.Code != 409 {
		t.Errorf("the API's answer to an ambiguous prefix: %v, want 409", err)
	}
}
