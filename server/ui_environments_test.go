package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// envsUIFixture is the dashboard over the stack (ui_stack_test.go) with
// dev, staging and prod and no gates; one and two are two releases of
// examples/python whose hello answers "one" and "two", so their images
// differ.
type envsUIFixture struct {
	*uiStack
	one, two *build.Release
	builder  build.Builder
	dir      string
}

var envsUINames = []string{"dev", "staging", "prod"}

func newEnvsUIFixture(t *testing.T) *envsUIFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	b, repo := exampleBuilder(t)
	f := &envsUIFixture{dir: dir, builder: b}
	f.one = envsUIBuild(t, b, filepath.Join(dir, "one"), "one", "c1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.two = envsUIBuild(t, b, filepath.Join(dir, "two"), "two", "c2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	f.uiStack = newUIStack(t, uiStackConfig{
		config: "environments:\n- {name: dev}\n- {name: staging}\n- {name: prod}\n",
		tokens: fixtureTokens,
		repo:   repo,
	})
	for _, e := range envsUINames {
		if err := f.st.PutEnvironment(ctx, store.Environment{Name: e, Target: "embedded", Updated: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// envsUIBuild builds examples/python, copied to dir with hello answering
// message, at commit.
func envsUIBuild(t *testing.T, b build.Builder, dir, message, commit string) *build.Release {
	t.Helper()
	ctx := context.Background()
	if err := os.CopyFS(dir, os.DirFS("../examples/python")); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "hello", "main.py")
	code, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(main, []byte(strings.Replace(string(code), `"hello from python"`, fmt.Sprintf("%q", message), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := build.LocalSource(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifests.Load(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Release(ctx, src, set, build.Info{SourceURL: "https://git.example.com/demo", Revision: commit})
	if err != nil {
		t.Fatal(err)
	}
	return res.Release
}

// deploy applies rel to env and records it as a pipeline run's deploy
// step does: the release and its builds, then the deployment.
func (f *envsUIFixture) deploy(env string, rel *build.Release) {
	f.t.Helper()
	ctx := context.Background()
	tg, err := f.envs.target(env)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := tg.Apply(ctx, rel); err != nil {
		f.t.Fatal(err)
	}
	f.record(env, rel)
}

// record puts rel and a succeeded deployment of it to env in the store,
// without applying it.
func (f *envsUIFixture) record(env string, rel *build.Release) store.Deployment {
	f.t.Helper()
	ctx := context.Background()
	if _, _, err := f.st.PutRelease(ctx, store.Release{ID: rel.Digest.String(), Source: "demo", Commit: rel.Revision, Ref: rel.Ref, Manifest: rel.Manifest}); err != nil {
		f.t.Fatal(err)
	}
	var builds []store.Build
	for _, fn := range rel.Set.Functions {
		builds = append(builds, store.Build{Source: "demo", Commit: rel.Revision, Function: fn.Name, Key: rel.Revision, Image: fn.Spec.Image})
	}
	if err := f.st.PutBuilds(ctx, builds); err != nil {
		f.t.Fatal(err)
	}
	d, err := f.st.RecordDeployment(ctx, store.Deployment{Environment: env, Release: rel.Digest.String(), Actor: "ferry", Status: store.DeploymentSucceeded})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// environment is env as the API tells it.
func (f *envsUIFixture) environment(env string) EnvironmentView {
	f.t.Helper()
	e, err := f.client(viewerSecret).Environment(context.Background(), env)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// envsUIImage is the image of function fn in release rel.
func envsUIImage(t *testing.T, rel *build.Release, fn string) string {
	t.Helper()
	f := rel.Set.Function(fn)
	if f == nil || f.Spec.Image == "" {
		t.Fatalf("release %s has no function %s", rel.Digest, fn)
	}
	return f.Spec.Image
}

// envsUIElement is the first element whose start tag matches start (a
// regular expression matched against the tag), up to its matching end
// tag; "" when there is none.
func envsUIElement(body, start string) string {
	re := regexp.MustCompile(`<(` + `[a-z0-9]+` + `)\b[^>]*` + start + `[^>]*>`)
	loc := re.FindStringSubmatchIndex(body)
	if loc == nil {
		return ""
	}
	name := body[loc[2]:loc[3]]
	open := regexp.MustCompile(`<` + name + `\b`)
	closeTag := "</" + name + ">"
	depth, i := 0, loc[0]
	for i < len(body) {
		o := open.FindStringIndex(body[i+1:])
		c := strings.Index(body[i+1:], closeTag)
		if c < 0 {
			return body[loc[0]:]
		}
		if o != nil && o[0] < c {
			depth++
			i += 1 + o[0]
			continue
		}
		i += 1 + c
		if depth == 0 {
			return body[loc[0] : i+len(closeTag)]
		}
		depth--
	}
	return body[loc[0]:]
}

func TestUIEnvironmentsMatrix(t *testing.T) {
	f := newEnvsUIFixture(t)
	f.deploy("dev", f.one)
	f.deploy("dev", f.two)
	f.deploy("staging", f.one)
	// A later try that failed: dev still runs two, and says so.
	if _, err := f.st.RecordDeployment(context.Background(), store.Deployment{Environment: "dev", Release: f.one.Digest.String(), Actor: "ivy", Status: store.DeploymentFailed, Reason: "the gateway refused"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client(deployerSecret).Freeze(context.Background(), "prod", "release freeze for the audit"); err != nil {
		t.Fatal(err)
	}
	b := signInAt(t, f.ui, viewerSecret)
	a := b.get("/environments")
	if a.code != 200 {
		t.Fatalf("matrix: %d\n%s", a.code, a.body)
	}
	matrix := envsUIElement(a.body, `id="matrix"`)
	if matrix == "" {
		t.Fatalf("no table#matrix:\n%s", a.body)
	}
	// The columns are the environments in pipeline order.
	heads := regexp.MustCompile(`<th scope="col" data-env="([a-z]+)"`).FindAllStringSubmatch(matrix, -1)
	var order []string
	for _, h := range heads {
		order = append(order, h[1])
	}
	if strings.Join(order, ",") != "dev,staging,prod" {
		t.Errorf("columns %q, want dev,staging,prod", order)
	}
	prod := envsUIElement(matrix, `data-env="prod"`)
	if !strings.Contains(prod, `class="badge frozen" title="release freeze for the audit"`) || !strings.Contains(prod, `<span class="sr">: release freeze for the audit</span>`) {
		t.Errorf("prod's header shows no frozen badge with its reason:\n%s", prod)
	}
	dev := envsUIElement(matrix, `scope="col" data-env="dev"`)
	if !strings.Contains(dev, shortHex(f.two.Digest.String())) || !strings.Contains(dev, shortHex(f.two.Revision)) {
		t.Errorf("dev's header names neither its release %s nor its commit:\n%s", shortHex(f.two.Digest.String()), dev)
	}
	if !strings.Contains(dev, `<div class="s-error env-meta" title="the gateway refused">release <span class="mono">`+shortHex(f.one.Digest.String())+`</span> failed to deploy`) {
		t.Errorf("dev's header does not say that its last deployment failed:\n%s", dev)
	}

	for _, c := range []struct {
		env     string
		rel     *build.Release
		differs bool
	}{{"dev", f.two, false}, {"staging", f.one, true}} {
		img := envsUIImage(t, c.rel, "hello")
		cell := envsUIElement(matrix, fmt.Sprintf(`data-env="%s" data-fn="hello"`, c.env))
		if cell == "" {
			t.Fatalf("no cell for hello in %s:\n%s", c.env, matrix)
		}
		for _, want := range []string{
			`<code class="digest" title="` + img + `">` + shortHex(img) + `</code>`,
			`<button type="button" class="copy" data-copy="` + img + `" aria-label="Copy hello's image in ` + c.env + `">`,
			shortHex(c.rel.Revision), "ferry",
		} {
			if !strings.Contains(cell, want) {
				t.Errorf("hello in %s lacks %s:\n%s", c.env, want, cell)
			}
		}
		if got := strings.Contains(cell, `class="differs"`); got != c.differs {
			t.Errorf("hello in %s marked as differing from the environment before: %v, want %v", c.env, got, c.differs)
		}
	}
	if shortHex(envsUIImage(t, f.one, "hello")) == shortHex(envsUIImage(t, f.two, "hello")) {
		t.Fatal("the two releases' hello images are the same; the test cannot tell them apart")
	}
	// prod runs nothing: its cell says so.
	if cell := envsUIElement(matrix, `data-env="prod" data-fn="hello"`); !strings.Contains(cell, "—") || strings.Contains(cell, "digest") {
		t.Errorf("hello in prod, which runs nothing:\n%s", cell)
	}
}

func TestUIEnvironmentHistoryPages(t *testing.T) {
	f := newEnvsUIFixture(t)
	var ids []int64
	for i := range envHistoryPage + 5 {
		rel := f.one
		if i%2 == 1 {
			rel = f.two
		}
		ids = append(ids, f.record("staging", rel).ID)
	}
	b := signInAt(t, f.ui, viewerSecret)
	rows := regexp.MustCompile(`<tr data-deployment="(\d+)">`)
	var seen []string
	next := "/environments/staging"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatalf("more pages than %d deployments make", len(ids))
		}
		a := b.get(next)
		if a.code != 200 {
			t.Fatalf("%s: %d\n%s", next, a.code, a.body)
		}
		history := envsUIElement(a.body, `id="history"`)
		var page []string
		for _, m := range rows.FindAllStringSubmatch(history, -1) {
			page = append(page, m[1])
		}
		if len(page) == 0 || len(page) > envHistoryPage {
			t.Fatalf("%s lists %d deployments:\n%s", next, len(page), a.body)
		}
		seen = append(seen, page...)
		next = ""
		if m := regexp.MustCompile(`<a rel="next" href="([^"]+)"`).FindStringSubmatch(a.body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	var want []string
	for i := len(ids) - 1; i >= 0; i-- {
		want = append(want, fmt.Sprint(ids[i]))
	}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("the pages list %v, want every deployment newest first once: %v", seen, want)
	}
	// A viewer is offered no rollback.
	if a := b.get("/environments/staging"); strings.Contains(a.body, `id="rollback"`) {
		t.Errorf("a viewer is offered a rollback:\n%s", a.body)
	}
	if a := b.get("/environments/nowhere"); a.code != http.StatusNotFound {
		t.Errorf("an environment that does not exist: %d", a.code)
	}
}

func TestUIEnvironmentRollback(t *testing.T) {
	f := newEnvsUIFixture(t)
	three := envsUIBuild(t, f.builder, filepath.Join(f.dir, "three"), "three", "c3cccccccccccccccccccccccccccccccccccccc")
	f.deploy("dev", f.one)
	f.deploy("dev", f.two)
	f.deploy("dev", three)
	f.deploy("staging", f.one)
	one, two := f.one.Digest.String(), f.two.Digest.String()
	oneImg, twoImg, threeImg := envsUIImage(t, f.one, "hello"), envsUIImage(t, f.two, "hello"), envsUIImage(t, three, "hello")

	dan := signInAt(t, f.ui, deployerSecret)
	a := dan.get("/environments/dev")
	if !strings.Contains(a.body, `<a id="rollback" class="button secondary" href="/environments/dev/rollback">`) {
		t.Fatalf("a deployer is offered no rollback:\n%s", a.body)
	}
	// The confirmation names the release before and each function's
	// image it goes back to.
	a = dan.get("/environments/dev/rollback")
	if a.code != 200 {
		t.Fatalf("rollback page: %d\n%s", a.code, a.body)
	}
	to := envsUIElement(a.body, `id="rollback-to"`)
	if !strings.Contains(to, `title="`+two+`">`+shortHex(two)+`</code>`) || !strings.Contains(to, shortHex(f.two.Revision)) {
		t.Errorf("#rollback-to does not name the release before, %s at commit %s:\n%s", shortHex(two), shortHex(f.two.Revision), to)
	}
	fn := envsUIElement(to, `data-fn="hello"`)
	if !strings.Contains(fn, `<code class="digest" title="`+twoImg+`">`+shortHex(twoImg)+`</code>`) || !strings.Contains(fn, shortHex(threeImg)) {
		t.Errorf("hello's line names neither the image it goes back to (%s) nor the one it runs (%s):\n%s", shortHex(twoImg), shortHex(threeImg), fn)
	}
	form := envsUIElement(a.body, `id="rollback-form"`)
	if !strings.Contains(form, `name="release" value="`+two+`"`) || !strings.Contains(form, ">Roll back dev to "+shortHex(two)+"</button>") {
		t.Fatalf("the rollback form:\n%s", form)
	}
	// Further back, chosen by ?to=.
	a = dan.get("/environments/dev/rollback?to=" + url.QueryEscape(one))
	if fn := envsUIElement(envsUIElement(a.body, `id="rollback-to"`), `data-fn="hello"`); !strings.Contains(fn, `title="`+oneImg+`">`+shortHex(oneImg)+`</code>`) {
		t.Errorf("?to=%s: hello's line:\n%s", shortHex(one), fn)
	}
	form = envsUIElement(a.body, `id="rollback-form"`)
	if !strings.Contains(form, `name="release" value="`+one+`"`) || !strings.Contains(form, ">Roll back dev to "+shortHex(one)+"</button>") {
		t.Fatalf("the rollback form to %s:\n%s", shortHex(one), form)
	}

	// Refused, changing nothing: no CSRF token; a viewer's POST with a
	// valid one.
	if a := dan.post("/environments/dev/rollback", url.Values{"release": {one}}); a.code != http.StatusForbidden {
		t.Errorf("a rollback without CSRF token: %d", a.code)
	}
	vera := signInAt(t, f.ui, viewerSecret)
	if a := vera.get("/environments/dev"); strings.Contains(a.body, `id="rollback"`) {
		t.Errorf("a viewer is offered a rollback on the environment page")
	}
	a = vera.get("/environments/dev/rollback")
	if strings.Contains(a.body, `id="rollback-form"`) || !strings.Contains(a.body, "takes the deployer role") {
		t.Errorf("a viewer's rollback page:\n%s", a.body)
	}
	if a := vera.post("/environments/dev/rollback", url.Values{"release": {one}, "csrf": {vera.csrf("/environments/dev")}}); a.code != http.StatusForbidden {
		t.Errorf("a viewer's rollback: %d\n%s", a.code, a.body)
	}
	if e := f.environment("dev"); e.Release != three.Digest.String() || len(e.Functions) != 1 || e.Functions[0].Image != threeImg {
		t.Fatalf("a refused rollback changed dev: %+v", e)
	}

	// A rollback the promoter refuses comes back as the page's error.
	a = dan.post("/environments/dev/rollback", url.Values{"release": {"sha256:" + strings.Repeat("e", 64)}, "csrf": {dan.csrf("/environments/dev/rollback")}})
	if a.code != http.StatusSeeOther {
		t.Fatalf("a refused rollback: %d\n%s", a.code, a.body)
	}
	if a := dan.get("/environments/dev"); !strings.Contains(a.body, `<p class="flash bad" role="alert">`) || !strings.Contains(a.body, "eeeeeeeeeeee") {
		t.Errorf("a refused rollback shows no error:\n%s", a.body)
	}

	// The deployer's goes through: dev runs release one again.
	a = dan.post("/environments/dev/rollback", url.Values{"release": {one}, "csrf": {dan.csrf("/environments/dev/rollback")}})
	if a.code != http.StatusSeeOther || a.header.Get("Location") != "/environments/dev" {
		t.Fatalf("rollback: %d %q\n%s", a.code, a.header.Get("Location"), a.body)
	}
	e := f.environment("dev")
	if e.Release != one || len(e.Functions) != 1 || e.Functions[0].Image != oneImg || !e.Held {
		t.Errorf("dev after the rollback: %+v", e)
	}
	if code, body := envsUICall(t, f.gateway+"/dev/hello"); code != 200 || !strings.Contains(body, `"one"`) {
		t.Errorf("dev's hello after the rollback answers %d %s", code, body)
	}
	h, err := f.client(viewerSecret).History(context.Background(), "dev", 1, 0)
	if err != nil || len(h.Items) != 1 || h.Items[0].Kind != store.DeploymentRollback || h.Items[0].Actor != "dan" || h.Items[0].Release != one || h.Items[0].Previous != three.Digest.String() {
		t.Errorf("dev's history after the rollback: %+v, %v", h.Items, err)
	}
	a = dan.get("/environments/dev")
	if !strings.Contains(a.body, "dev rolled back to "+shortHex(one)) {
		t.Errorf("no message after the rollback:\n%s", a.body)
	}
	row := envsUIElement(envsUIElement(a.body, `id="history"`), fmt.Sprintf(`data-deployment="%d"`, h.Items[0].ID))
	if !strings.Contains(row, ">rollback</span>") || !strings.Contains(row, ">dan<") {
		t.Errorf("the rollback's history row:\n%s", row)
	}
	// Back again goes to two, not forth to three, which was rolled back
	// from: as the promoter chooses.
	a = dan.get("/environments/dev/rollback")
	if form := envsUIElement(a.body, `id="rollback-form"`); !strings.Contains(form, `name="release" value="`+two+`"`) {
		t.Errorf("the rollback form after the rollback:\n%s", form)
	}
	// Nothing to roll back to: staging ran one release only; prod none.
	if a := dan.get("/environments/staging/rollback"); strings.Contains(a.body, `id="rollback-form"`) || !strings.Contains(a.body, "ran no other release before "+shortHex(one)) {
		t.Errorf("staging's rollback page:\n%s", a.body)
	}
	if a := dan.get("/environments/prod/rollback"); strings.Contains(a.body, `id="rollback-form"`) || !strings.Contains(a.body, "prod runs no release yet") {
		t.Errorf("prod's rollback page:\n%s", a.body)
	}
}

// envsUICall GETs url, within a bound that only catches a hang.
func envsUICall(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
