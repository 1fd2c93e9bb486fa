package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
	"github.com/ferrycd/ferry/test/testreg"
)

// The tests run against two registries: ferry's embedded one and
// distribution's own registry as a separate process.
func registries(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"embedded": testreg.Embedded(t, "").Addr,
		"process":  testreg.Process(t, testreg.ProcessOptions{}).Addr,
	}
}

// TestBuildRuns builds each example, checks the image, and runs what it
// holds: the Go binary on its own, the Python and Node.js invokers with the
// host's interpreters, called over HTTP with a CloudEvent.
func TestBuildRuns(t *testing.T) {
	for regName, reg := range registries(t) {
		t.Run(regName, func(t *testing.T) {
			for _, rt := range []string{"go", "python", "nodejs"} {
				t.Run(rt, func(t *testing.T) {
					src, set := loadRepo(t, filepath.Join("..", "examples", rt))
					b := newTestBuilder(t, reg, "", nil)
					img, err := b.Build(context.Background(), src, set.Function("hello"), testInfo)
					if err != nil {
						t.Fatal(err)
					}
					if img.Cached || !strings.HasPrefix(img.Ref, reg+"/test/hello@sha256:") {
						t.Fatalf("image %+v", img)
					}
					pulled := pull(t, img.Ref)
					ann := annotations(t, pulled)
					if ann["org.opencontainers.image.revision"] != testInfo.Revision || ann["org.opencontainers.image.source"] != testInfo.SourceURL || ann[AnnotationRuntime] != rt {
						t.Errorf("annotations %v", ann)
					}
					cfg, err := pulled.ConfigFile()
					if err != nil {
						t.Fatal(err)
					}
					if !cfg.Created.Time.Equal(commitTime) || cfg.Config.User != imageUser {
						t.Errorf("config created %v user %q", cfg.Created, cfg.Config.User)
					}
					root := extract(t, pulled)
					var cmd *exec.Cmd
					switch rt {
					case "go":
						if ann[AnnotationHostInterpreter] != "" {
							t.Errorf("a Go image needs no interpreter: %v", ann)
						}
						cmd = exec.Command(filepath.Join(root, goBinary))
					default:
						if ann[AnnotationHostInterpreter] == "" {
							t.Errorf("a %s image on scratch must say it needs the host's interpreter: %v", rt, ann)
						}
						ep := cfg.Config.Entrypoint
						if len(ep) != 2 {
							t.Fatalf("entrypoint %v", ep)
						}
						cmd = exec.Command(ep[0], filepath.Join(root, ep[1]))
						cmd.Env = append(os.Environ(), "FERRY_HANDLER="+configEnv(t, pulled, "FERRY_HANDLER"))
					}
					url := serve(t, cmd)
					got := invoke(t, url, `{"n":1}`)
					want := map[string]any{"message": "hello from " + rt, "echo": map[string]any{"n": float64(1)}}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("reply %v, want %v", got, want)
					}
				})
			}
		})
	}
}

// TestReproducible builds the same source from two checkouts with
// different file modes and mtimes, with separate caches, and gets the
// same digests.
func TestReproducible(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	for _, rt := range []string{"go", "python", "nodejs"} {
		t.Run(rt, func(t *testing.T) {
			example := filepath.Join("..", "examples", rt)
			a := copyTree(t, example, 0o600, commitTime.AddDate(-1, 0, 0))
			bdir := copyTree(t, example, 0o664, commitTime.AddDate(0, 0, 3))
			var digests []string
			for _, dir := range []string{a, bdir} {
				src, set := loadRepo(t, dir)
				img, err := newTestBuilder(t, reg, "", nil).Build(context.Background(), src, set.Function("hello"), testInfo)
				if err != nil {
					t.Fatal(err)
				}
				if img.Cached {
					t.Fatal("separate caches cannot hit")
				}
				pull(t, img.Ref)
				digests = append(digests, img.Digest.String())
			}
			if digests[0] != digests[1] {
				t.Fatalf("two checkouts built %s and %s", digests[0], digests[1])
			}
		})
	}
	t.Run("SOURCE_DATE_EPOCH", func(t *testing.T) {
		src, set := loadRepo(t, filepath.Join("..", "examples", "python"))
		t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
		img, err := newTestBuilder(t, reg, "", nil).Build(context.Background(), src, set.Function("hello"), testInfo)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := pull(t, img.Ref).ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Created.Unix() != 1700000000 {
			t.Fatalf("created %v", cfg.Created)
		}
	})
}

// TestCodeEditPushesOnlyCode edits one file in a new commit and checks
// that the rebuild uploads one layer and the config, and puts one
// manifest: the invoker layer does not change with the commit.
func TestCodeEditPushesOnlyCode(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	dir := copyTree(t, filepath.Join("..", "examples", "python"), 0o644, commitTime)
	rec := &requests{}
	b := newTestBuilder(t, reg, "", rec)
	info := testInfo
	build := func() *Image {
		src, set := loadRepo(t, dir)
		img, err := b.Build(context.Background(), src, set.Function("hello"), info)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	first := build()
	if n := rec.count("POST "); n != 3 { // invoker, code, config
		t.Errorf("first build started %d uploads, want 3: %v", n, rec.writes())
	}
	rec.reset()
	if again := build(); !again.Cached || again.Digest != first.Digest {
		t.Fatalf("no-op rebuild: %+v", again)
	}
	if w := rec.writes(); len(w) != 0 {
		t.Errorf("a no-op rebuild wrote %v", w)
	}
	rec.reset()
	// The edit is a new commit: a later time and another revision.
	writeFiles(t, dir, map[string]string{"hello/main.py": "def handle(event, context):\n    return {'message': 'edited'}\n"})
	info = Info{SourceURL: testInfo.SourceURL, Revision: strings.Repeat("b", 40), Time: commitTime.Add(time.Hour)}
	edited := build()
	if edited.Cached || edited.Digest == first.Digest {
		t.Fatalf("edit not rebuilt: %+v", edited)
	}
	if n := rec.count("POST "); n != 2 { // code, config
		t.Errorf("the rebuild started %d uploads, want 2 (code layer and config): %v", n, rec.writes())
	}
	if n := rec.count("PUT /v2/test/hello/manifests/"); n != 1 {
		t.Errorf("the rebuild put %d manifests: %v", n, rec.writes())
	}
}

// TestCacheKey changes each input of the content key in turn and checks
// that the build misses, and that what did not change hits.
func TestCacheKey(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	// Two base images in the registry, to change the base digest.
	var bases []string
	for i := 0; i < 2; i++ {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		ref, _ := name.NewDigest(reg + "/bases/base@" + d.String())
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		bases = append(bases, ref.String())
	}
	cacheDir := t.TempDir()
	dir := copyTree(t, filepath.Join("..", "examples", "python"), 0o644, commitTime)
	build := func(opts ...Option) *Image {
		t.Helper()
		src, set := loadRepo(t, dir)
		img, err := newTestBuilder(t, reg, cacheDir, nil, opts...).Build(context.Background(), src, set.Function("hello"), testInfo)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	base := build()
	key := base.Key
	steps := []struct {
		name   string
		change func()
		opts   []Option
	}{
		{name: "file content", change: func() {
			writeFiles(t, dir, map[string]string{"hello/main.py": "def handle(event, context):\n    return 1\n"})
		}},
		{name: "file mode", change: func() {
			if err := os.Chmod(filepath.Join(dir, "hello", "main.py"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "new file", change: func() { writeFiles(t, dir, map[string]string{"hello/util.py": "X = 1\n"}) }},
		{name: "file name", change: func() {
			if err := os.Rename(filepath.Join(dir, "hello", "util.py"), filepath.Join(dir, "hello", "util2.py")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "handler", change: func() {
			writeFiles(t, dir, map[string]string{"hello/alt.py": "def run(event, context):\n    return 2\n"})
			edit(t, filepath.Join(dir, "ferry.yaml"), "handler: main.handle", "handler: alt.run")
		}},
		{name: "dependency lock added", change: func() { writeFiles(t, dir, map[string]string{"hello/requirements.txt": "--no-index\n"}) }},
		{name: "dependency lock changed", change: func() {
			writeFiles(t, dir, map[string]string{"hello/requirements.txt": "--no-index\n# pinned again\n"})
		}},
		{name: "base digest", opts: []Option{WithBase(v1alpha1.RuntimePython, bases[0])}},
		{name: "another base digest", opts: []Option{WithBase(v1alpha1.RuntimePython, bases[1])}},
		{name: "builder version", change: func() { builderVersion = "test-next" }},
		// Dependencies install only for the machine's own platform, so
		// they go before the platform changes.
		{name: "dependency lock removed", change: func() {
			if err := os.Remove(filepath.Join(dir, "hello", "requirements.txt")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "platform", opts: []Option{WithBase(v1alpha1.RuntimePython, bases[1]), WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"})}},
	}
	t.Cleanup(func() { builderVersion = BuilderVersion })
	var opts []Option
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		if s.opts != nil {
			opts = s.opts
		}
		img := build(opts...)
		if img.Cached || img.Key == key {
			t.Fatalf("%s: changed, yet the build hit the cache (%+v)", s.name, img)
		}
		if again := build(opts...); !again.Cached || again.Digest != img.Digest {
			t.Fatalf("%s: the same inputs again missed the cache (%+v)", s.name, again)
		}
		key = img.Key
	}
	// The runtime is part of the key: the same folder as Node.js.
	writeFiles(t, dir, map[string]string{"hello/index.js": "exports.handler = async () => 1;\n"})
	edit(t, filepath.Join(dir, "ferry.yaml"), "runtime: python", "runtime: nodejs")
	edit(t, filepath.Join(dir, "ferry.yaml"), "handler: alt.run", "handler: index.handler")
	edit(t, filepath.Join(dir, "ferry.yaml"), "command: [python3, -m, unittest, -v]", "command: [node, --test]")
	if img := build(opts...); img.Cached || img.Key == key {
		t.Fatalf("runtime: changed, yet the build hit the cache")
	}
}

func edit(t testing.TB, file, old, new string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", file, old)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCacheRestartAndRegistryLoss: a new builder on the same cache hits;
// a registry that lost the image makes the build run again.
func TestCacheRestartAndRegistryLoss(t *testing.T) {
	cacheDir := t.TempDir()
	src, set := loadRepo(t, filepath.Join("..", "examples", "python"))
	f := set.Function("hello")
	reg := testreg.Embedded(t, "").Addr
	first, err := newTestBuilder(t, reg, cacheDir, nil).Build(context.Background(), src, f, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newTestBuilder(t, reg, cacheDir, nil).Build(context.Background(), src, f, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || second.Digest != first.Digest {
		t.Fatalf("after a restart: %+v", second)
	}
	empty := testreg.Embedded(t, "").Addr
	third, err := newTestBuilder(t, empty, cacheDir, nil).Build(context.Background(), src, f, testInfo)
	if err != nil {
		t.Fatal(err)
	}
	if third.Cached || third.Digest != first.Digest {
		t.Fatalf("a registry without the image: %+v", third)
	}
	pull(t, third.Ref)
}

// TestConcurrentBuilds builds one function from many goroutines and two
// builders sharing a cache: one build runs, the rest wait and hit.
func TestConcurrentBuilds(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	cacheDir := t.TempDir()
	src, set := loadRepo(t, filepath.Join("..", "examples", "nodejs"))
	var mu sync.Mutex
	built := 0
	info := testInfo
	info.Progress = func(p Progress) {
		if p.Phase == PhaseBuilding {
			mu.Lock()
			built++
			mu.Unlock()
		}
	}
	builders := []*builder{newTestBuilder(t, reg, cacheDir, nil), newTestBuilder(t, reg, cacheDir, nil)}
	var wg sync.WaitGroup
	digests := make([]string, 6)
	for i := range digests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := builders[i%2].Build(context.Background(), src, set.Function("hello"), info)
			if err != nil {
				t.Error(err)
				return
			}
			digests[i] = img.Digest.String()
		}()
	}
	wg.Wait()
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Fatalf("digests differ: %v", digests)
		}
	}
	if built != 1 {
		t.Fatalf("%d builds ran, want 1", built)
	}
}

// TestBaseByTag: a base given by tag is pinned to its digest once; a build
// whose inputs are known needs nothing from the base's registry, which may
// be down.
func TestBaseByTag(t *testing.T) {
	baseReg := testreg.Process(t, testreg.ProcessOptions{})
	reg := testreg.Embedded(t, "").Addr
	base, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(baseReg.Addr + "/bases/python:3")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, base); err != nil {
		t.Fatal(err)
	}
	baseDigest, _ := base.Digest()
	cacheDir := t.TempDir()
	src, set := loadRepo(t, filepath.Join("..", "examples", "python"))
	build := func() *Image {
		t.Helper()
		img, err := newTestBuilder(t, reg, cacheDir, nil, WithBase(v1alpha1.RuntimePython, tag.String())).Build(context.Background(), src, set.Function("hello"), testInfo)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	first := build()
	pulled := pull(t, first.Ref)
	ann := annotations(t, pulled)
	if ann["org.opencontainers.image.base.digest"] != baseDigest.String() || ann[AnnotationHostInterpreter] != "" {
		t.Fatalf("annotations %v, base %s", ann, baseDigest)
	}
	layers, _ := pulled.Layers()
	if len(layers) != 3 { // the base's, invoker, code
		t.Fatalf("%d layers", len(layers))
	}
	// The tag moves; the pinned digest does not.
	moved, _ := random.Image(128, 1)
	if err := remote.Write(tag, moved); err != nil {
		t.Fatal(err)
	}
	baseReg.Stop()
	again := build()
	if !again.Cached || again.Digest != first.Digest {
		t.Fatalf("with the base's registry down: %+v", again)
	}
}

// TestRegistryNames: the registries a release can name are accepted, the
// ones it cannot are refused before anything is built.
func TestRegistryNames(t *testing.T) {
	for _, repo := range []string{"127.0.0.1:5000/team", "[::1]:5000/team", "Registry.Example.com/team/apps", "localhost:5000/a/b"} {
		if _, err := newBuilder(repo, WithCacheDir(t.TempDir())); err != nil {
			t.Errorf("%s: %v", repo, err)
		}
	}
	for _, repo := range []string{"127.0.0.1:5000", "127.0.0.1:5000/Team", "127.0.0.1:5000/team@sha256:00", "127.0.0.1:5000/team:v1"} {
		if _, err := newBuilder(repo, WithCacheDir(t.TempDir())); err == nil {
			t.Errorf("%s: accepted", repo)
		}
	}
}
