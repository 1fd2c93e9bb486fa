package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Builder turns functions into images in a registry, and a repository's
// functions into a release.
type Builder interface {
	// Build builds one function of the repository tree src, pushes its
	// image by digest, and returns it. A build whose inputs are known
	// returns the image it made before, once the registry is seen to
	// still hold it. Its errors start with "function NAME: ".
	Build(ctx context.Context, src fs.FS, f *v1alpha1.Function, info Info) (*Image, error)
	// Release builds every function of set in parallel and, only when all
	// of them succeed, pushes the release artifact that pins their images.
	Release(ctx context.Context, src fs.FS, set *manifests.Set, info Info) (*ReleaseResult, error)
}

// BuilderVersion changes whenever ferry's builder would make different
// bytes from the same inputs. It is part of every build's content key, so
// an upgrade never returns an image the new builder would not make.
const BuilderVersion = "5"

// builderVersion is what keys use; a variable so a test can prove that a
// new version misses the cache.
var builderVersion = BuilderVersion

// Info is what a build records about where its source came from.
type Info struct {
	// SourceURL is the repository's URL, for the
	// org.opencontainers.image.source annotation.
	SourceURL string
	// Revision is the commit, for org.opencontainers.image.revision.
	Revision string
	// Time is the commit's time: every file's mtime and the image's
	// created time, so the bytes do not depend on when they were built.
	// SOURCE_DATE_EPOCH, when set in the environment, overrides it.
	Time time.Time
	// Progress, when set, is told what each build is doing. It is called
	// from many goroutines at once.
	Progress func(Progress)
}

// Phase is a step of one function's build, as Progress reports it.
type Phase string

// The phases a build reports, in order.
const (
	PhaseBuilding Phase = "building"
	PhaseCached   Phase = "cached"
	PhasePushing  Phase = "pushing"
	PhaseDone     Phase = "done"
	PhaseFailed   Phase = "failed"
)

// Progress is one step of one function's build.
type Progress struct {
	Function string
	Phase    Phase
	// Pushed and Total are bytes, while pushing.
	Pushed, Total int64
}

// Image is a function's built image.
type Image struct {
	Function string
	// Ref is HOST/REPO/NAME@sha256:..., the image pinned by digest.
	Ref    string
	Digest v1.Hash
	// Key is the content key of the build's inputs.
	Key string
	// Cached is set when nothing was built: the key was known.
	Cached bool
}

// ReleaseResult is a release pushed to the registry.
type ReleaseResult struct {
	Images  []*Image
	Release *Release
}

// Bases are the base images per runtime, as references. DefaultBases
// documents what an unconfigured builder uses.
type Bases map[string]string

// Scratch is the base that means none: the image holds only ferry's layers.
const Scratch = "scratch"

// DefaultBases: a Go function is a static binary and needs nothing under
// it; Python and Node.js functions get the official slim images of a
// current release, resolved to a digest the first time they are used.
// Where no base can be pulled, configure Scratch: such an image runs only
// on the embedded target, with the host's interpreter.
var DefaultBases = Bases{
	v1alpha1.RuntimeGo:     Scratch,
	v1alpha1.RuntimePython: "python:3.12-slim",
	v1alpha1.RuntimeNodeJS: "node:22-slim",
}

// Option configures a builder.
type Option func(*options) error

type options struct {
	cacheDir    string
	bases       Bases
	insecure    bool
	keychain    authn.Keychain
	platform    v1.Platform
	jobs        int
	backoff     backoffPolicy
	transport   transportWrapper
	goEnv       []string
	refreshBase bool
	sandbox     *sandbox.Sandbox

	// registryTimeout bounds the wait for each registry answer.
	registryTimeout time.Duration
}

// WithCacheDir puts the build cache in dir (default: the user's cache
// folder, ferry/build).
func WithCacheDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("build: the cache folder is empty")
		}
		o.cacheDir = dir
		return nil
	}
}

// WithBase sets the base image of a runtime: a reference by tag (resolved
// to its digest once), by digest, or Scratch.
func WithBase(runtimeName, ref string) Option {
	return func(o *options) error {
		if _, ok := DefaultBases[runtimeName]; !ok {
			return fmt.Errorf("build: no runtime %q; use go, python or nodejs", runtimeName)
		}
		if ref != Scratch {
			if _, err := name.ParseReference(ref); err != nil {
				return fmt.Errorf("build: base image for %s: %w", runtimeName, err)
			}
		}
		o.bases[runtimeName] = ref
		return nil
	}
}

// WithInsecure allows plain HTTP to registries that are not on loopback.
// Loopback registries always may use it.
func WithInsecure(insecure bool) Option {
	return func(o *options) error { o.insecure = insecure; return nil }
}

// WithKeychain sets where registry credentials come from (default: the
// Docker config file, authn.DefaultKeychain).
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) error { o.keychain = k; return nil }
}

// WithPlatform sets the platform images are built for (default linux and
// the host's architecture, so the embedded target can run them).
func WithPlatform(p v1.Platform) Option {
	return func(o *options) error { o.platform = p; return nil }
}

// WithJobs bounds how many functions build at once (default: the number of
// CPUs: compiles and installs are CPU bound, so more only adds memory).
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("build: jobs must be at least 1, not %d", n)
		}
		o.jobs = n
		return nil
	}
}

// WithRetry sets how registry calls are retried on temporary errors:
// attempts in all, the first wait, and the factor each wait grows by.
func WithRetry(attempts int, first time.Duration, factor float64) Option {
	return func(o *options) error {
		if attempts < 1 || first <= 0 || factor < 1 {
			return errors.New("build: retry needs attempts >= 1, a positive first wait and a factor >= 1")
		}
		o.backoff = backoffPolicy{steps: attempts, first: first, factor: factor}
		return nil
	}
}

// WithRegistryTimeout bounds the wait for a registry's answer to each
// request (default DefaultRegistryTimeout).
func WithRegistryTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("build: the registry timeout must be positive")
		}
		o.registryTimeout = d
		return nil
	}
}

// WithTransport wraps the HTTP transport used for registries; tests count
// requests with it.
func WithTransport(wrap func(inner httpRoundTripper) httpRoundTripper) Option {
	return func(o *options) error { o.transport = wrap; return nil }
}

// WithGoEnv adds environment variables to the go command that compiles Go
// functions (GOPROXY, GOFLAGS, ...).
func WithGoEnv(env ...string) Option {
	return func(o *options) error { o.goEnv = append(o.goEnv, env...); return nil }
}

// WithRefreshBases resolves base tags again instead of using the digest
// resolved before.
func WithRefreshBases(refresh bool) Option {
	return func(o *options) error { o.refreshBase = refresh; return nil }
}

// WithSandbox runs what a build does with the repository's files (the
// syntax check of Python and Node.js functions) in sb. Default: no
// sandbox; the check then runs as ferry, with the installers' clean
// environment, and parses without running anything.
func WithSandbox(sb *sandbox.Sandbox) Option {
	return func(o *options) error { o.sandbox = sb; return nil }
}

// New returns a Builder that pushes to repo (HOST[:PORT]/PATH): function F's
// image goes to repo/F, and releases to repo itself.
func New(repo string, opts ...Option) (Builder, error) {
	return newBuilder(repo, opts...)
}

// newOptions applies opts over the defaults.
func newOptions(opts ...Option) (*options, error) {
	o := &options{
		bases:    Bases{},
		keychain: authn.DefaultKeychain,
		platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		backoff:  defaultBackoff,

		registryTimeout: DefaultRegistryTimeout,
	}
	for k, v := range DefaultBases {
		o.bases[k] = v
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.jobs == 0 {
		o.jobs = runtime.GOMAXPROCS(0)
	}
	return o, nil
}

func newBuilder(repo string, opts ...Option) (*builder, error) {
	o, err := newOptions(opts...)
	if err != nil {
		return nil, err
	}
	if o.cacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("build: no cache folder: %w; set one with WithCacheDir", err)
		}
		o.cacheDir = filepath.Join(dir, "ferry", "build")
	}
	r, err := parseRepo(repo, o.insecure)
	if err != nil {
		return nil, err
	}
	c, err := openCache(o.cacheDir)
	if err != nil {
		return nil, err
	}
	return &builder{opts: o, repo: r, cache: c, remote: o.remoteOptions(insecureHost(o, r.Registry)), tools: &toolVersions{cache: c, known: map[string]string{}}}, nil
}

// insecureHost is the registry --insecure applies to: the one given, only.
func insecureHost(o *options, reg name.Registry) string {
	if !o.insecure {
		return ""
	}
	return reg.RegistryStr()
}

// parseRepo checks a registry repository given as HOST[:PORT]/PATH.
func parseRepo(repo string, insecure bool) (name.Repository, error) {
	if repo == "" {
		return name.Repository{}, errors.New("build: no registry; give one as HOST:PORT/REPO")
	}
	if strings.ContainsAny(repo, "@") || !strings.Contains(repo, "/") || strings.Contains(repo[strings.LastIndex(repo, "/"):], ":") {
		return name.Repository{}, fmt.Errorf("build: registry %q must be HOST[:PORT]/REPO, without a tag or digest", repo)
	}
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.NewRepository(repo, append(nopts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("build: registry %q: %w; give it as HOST:PORT/REPO in lower case", repo, err)
	}
	// A release names images in the form the manifest loader accepts;
	// check the repository makes such names before anything is pushed.
	if !manifests.IsPinnedImage(r.Name() + "/f@sha256:" + strings.Repeat("0", 64)) {
		return name.Repository{}, fmt.Errorf("build: registry %q: a release could not name images in it; give it as HOST[:PORT]/REPO with the path in lower case", repo)
	}
	return r, nil
}

// sourceDateEpoch returns SOURCE_DATE_EPOCH when it is set, the
// reproducible-builds convention for "the time to stamp on everything".
func sourceDateEpoch() (time.Time, bool, error) {
	s, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || s == "" {
		return time.Time{}, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), true, nil
}

// stamp is the time a build stamps on its files and config.
func stamp(info Info) (time.Time, error) {
	if t, ok, err := sourceDateEpoch(); ok || err != nil {
		return t, err
	}
	if info.Time.IsZero() {
		return time.Unix(0, 0).UTC(), nil
	}
	return info.Time.UTC().Truncate(time.Second), nil
}
