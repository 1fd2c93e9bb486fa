package promote

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/testreg"
)

var (
	dig1 = "sha256:" + strings.Repeat("1", 64)
	dig2 = "sha256:" + strings.Repeat("2", 64)
)

// TestImagePrefixAllows: a prefix matches whole path segments of the
// repository, on its own registry only, never as a raw string prefix.
func TestImagePrefixAllows(t *testing.T) {
	for _, c := range []struct {
		prefix, ref string
		want        bool
	}{
		{"reg.io/team/", "reg.io/team/app@" + dig1, true},
		{"reg.io/team", "reg.io/team/app@" + dig1, true},
		{"reg.io/team", "reg.io/team/../evil/app@" + dig1, false},
		{"reg.io/team", "reg.io/team/./app@" + dig1, false},
		{"reg.io/team", "reg.io/team//app@" + dig1, false},
		{"reg.io/team", "reg.io/team/sub/app@" + dig1, true},
		{"reg.io/team", "reg.io/team@" + dig1, true},
		{"reg.io/team", "reg.io/teamevil/x@" + dig1, false},
		{"reg.io/team/", "reg.io/teamevil/x@" + dig1, false},
		{"reg.io/team", "reg.io/tea@" + dig1, false},
		{"reg.io/a/b", "reg.io/a/bc/x@" + dig1, false},
		{"reg.io/a/b", "reg.io/a@" + dig1, false},
		{"reg.io/team", "reg.io.evil.com/team/app@" + dig1, false},
		{"reg.io/team", "evil.com/reg.io/team/app@" + dig1, false},
		{"reg.io/team", "other.io/team/app@" + dig1, false},
		{"reg.io/team", "reg.io:5000/team/app@" + dig1, false},
		{"reg.io:5000/team", "reg.io:5000/team/app@" + dig1, true},
		{"reg.io:5000/team", "reg.io:50001/team/app@" + dig1, false},
		{"reg.io", "reg.io/anything/at/all@" + dig1, true},
		{"reg.io/", "reg.io.evil.com/x@" + dig1, false},
		{"REG.io/team", "reg.io/team/app@" + dig1, true},
		{"reg.io/team", "REG.IO/team/app@" + dig1, true},
		{"reg.io/team", "reg.io/team/app:v1@" + dig1, true},
		{"docker.io/library", "ubuntu@" + dig1, true},
		{"index.docker.io/library", "docker.io/library/ubuntu@" + dig1, true},
		{"docker.io/library", "libraryevil/ubuntu@" + dig1, false},
		{"127.0.0.1:5000/team", "127.0.0.1:5000/team/app@" + dig1, true},
		{"localhost:5000", "localhost:5000/app@" + dig1, true},
	} {
		p, err := ParseImagePrefix(c.prefix)
		if err != nil {
			t.Errorf("ParseImagePrefix(%q): %v", c.prefix, err)
			continue
		}
		ref, err := name.NewDigest(c.ref)
		if err != nil {
			t.Fatalf("the test's reference %q: %v", c.ref, err)
		}
		if got := p.Allows(ref); got != c.want {
			t.Errorf("%q allows %q: %v, want %v", c.prefix, c.ref, got, c.want)
		}
	}
}

// TestParseImagePrefixRefuses: a prefix names a registry and a
// repository path; anything else is refused with what to write.
func TestParseImagePrefixRefuses(t *testing.T) {
	for prefix, want := range map[string]string{
		"":                         "would allow every image",
		"/":                        "would allow every image",
		"team/app":                 "does not start with a registry host",
		"ubuntu":                   "does not start with a registry host",
		"reg.io/team:v1":           "not a repository path",
		"reg.io/team@" + dig1:      "without a tag, digest or wildcard",
		"reg.io/*":                 "without a tag, digest or wildcard",
		"reg.io/team*":             "without a tag, digest or wildcard",
		"reg.io//x":                "not a repository path",
		"reg.io/../x":              "not a repository path",
		"reg.io/./x":               "not a repository path",
		"reg.io/Team":              "not a repository path",
		"reg.io/team app":          "without a tag, digest or wildcard",
		"https://reg.io/team":      "does not start with a registry host",
		"reg.io:notaport/team/app": "",
	} {
		_, err := ParseImagePrefix(prefix)
		if err == nil {
			t.Errorf("ParseImagePrefix(%q) took it", prefix)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseImagePrefix(%q) = %q, want it to say %q", prefix, err, want)
		}
	}
	_, err := ParseImagePrefixes([]string{"reg.io/team", "team", "reg.io/ok/", "reg.io/x:y"})
	if err == nil || !strings.Contains(err.Error(), "allowedImages[1]") || !strings.Contains(err.Error(), "allowedImages[3]") || strings.Contains(err.Error(), "allowedImages[0]") {
		t.Errorf("ParseImagePrefixes = %v, want allowedImages[1] and [3] named, only", err)
	}
	if _, err := newEngine(Config{Store: openStore(t), Target: noTarget, Environments: []Environment{{Name: "dev"}}, AllowedImages: []string{"reg.io/x:y"}}); err == nil || !strings.Contains(err.Error(), "allowedImages[0]") {
		t.Errorf("a promoter with a bad allowedImages entry: %v", err)
	}
}

func openStore(t *testing.T) *store.SQLite {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func noTarget(string) (environments.Target, error) { return nil, errors.New("no target in this test") }

// TestAdmitImage: an image is admitted when ferry recorded a build of it
// (same repository, same digest) for the source, or when allowedImages
// covers its repository; a tag never is.
func TestAdmitImage(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	check(t, st.PutBuilds(ctx, []store.Build{
		{Source: "demo", Commit: "c1", Function: "hello", Key: "k1", Image: "reg.ferry.test/ferry/hello@" + dig1},
		{Source: "other", Commit: "c1", Function: "hello", Key: "k2", Image: "reg.ferry.test/ferry/other@" + dig2},
	}))
	e, err := newEngine(Config{Store: st, Target: noTarget, Environments: []Environment{{Name: "dev"}},
		AllowedImages: []string{"vendor.example.com/team/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		source, image string
		code          ErrorCode // 0: admitted
		words         []string
	}{
		{"demo", "reg.ferry.test/ferry/hello@" + dig1, 0, nil},
		{"demo", "reg.ferry.test/ferry/hello:v1@" + dig1, 0, nil},
		{"demo", "vendor.example.com/team/app@" + dig2, 0, nil},
		{"demo", "vendor.example.com/team/deep/app@" + dig2, 0, nil},
		// The digest ferry built, but in a repository it never pushed to.
		{"demo", "evil.example.com/ferry/hello@" + dig1, Forbidden, []string{"image evil.example.com/ferry/hello@" + dig1 + " was never built by ferry for source demo", "is not under allowedImages", "add its repository to allowedImages"}},
		{"demo", "reg.ferry.test/ferry/hello2@" + dig1, Forbidden, []string{"never built by ferry for source demo"}},
		// Built, but for another source.
		{"demo", "reg.ferry.test/ferry/other@" + dig2, Forbidden, []string{"never built by ferry for source demo"}},
		{"other", "reg.ferry.test/ferry/other@" + dig2, 0, nil},
		{"", "reg.ferry.test/ferry/hello@" + dig1, Forbidden, []string{"(none recorded)"}},
		{"demo", "vendor.example.com/teamevil/app@" + dig2, Forbidden, []string{"is not under allowedImages"}},
		{"demo", "vendor.example.com/team-b/app@" + dig2, Forbidden, []string{"is not under allowedImages"}},
		// A tag can move: never admitted, under allowedImages or not.
		{"demo", "vendor.example.com/team/app:latest", Invalid, []string{"not an image by digest", "sha256"}},
		{"demo", "vendor.example.com/team/app", Invalid, []string{"not an image by digest"}},
		{"demo", "reg.ferry.test/ferry/hello", Invalid, []string{"not an image by digest"}},
		{"demo", "vendor.example.com/team/app@sha256:abc", Invalid, []string{"not an image by digest"}},
	} {
		err := e.admitImage(ctx, c.source, c.image)
		if c.code == 0 {
			if err != nil {
				t.Errorf("admitImage(%s, %s) = %v, want it admitted", c.source, c.image, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("admitImage(%s, %s) admitted it", c.source, c.image)
			continue
		}
		refused(t, err, c.code, c.words...)
	}

	// A release from anywhere but ferry's own release repository, or a
	// repository under allowedImages, is not even pulled.
	e.cfg.Repo = "reg.ferry.test/ferry/releases"
	for ref, ok := range map[string]bool{
		"reg.ferry.test/ferry/releases@" + dig1:        true,
		"vendor.example.com/team/releases@" + dig1:     true,
		"reg.ferry.test/ferry/releases2@" + dig1:       false,
		"reg.ferry.test/ferry/releases/sub@" + dig1:    false,
		"vendor.example.com/teamevil/releases@" + dig1: false,
	} {
		err := e.admitReleaseRef(ref)
		if ok && err != nil {
			t.Errorf("admitReleaseRef(%s) = %v", ref, err)
		}
		if !ok {
			refused(t, err, Forbidden, "not in ferry's release repository reg.ferry.test/ferry/releases", "allowedImages")
		}
	}
}

// TestRollbackAllowedImages pins a function to images ferry never built,
// pushed beside its own: refused until a prefix of AllowedImages covers
// their repository; one with a layer that climbs out of the image's root
// is refused by the target as ErrRefusedImage, and staging keeps what it
// ran.
func TestRollbackAllowedImages(t *testing.T) {
	host, _, _ := strings.Cut(shared.repo, "/")
	f := newFixture(t, func(c *Config) { c.AllowedImages = []string{host + "/vendor"} })
	cur := f.release(spec{message: "vendor base"})
	f.pipelineDeploy(cur)
	f.wait(f.promotion(cur, "staging").ID, StatusSucceeded)
	base := artifact(t, spec{message: "vendor base"}).Set.Function("hello").Spec.Image
	img := testreg.Pull(t, base)

	evil := testreg.Push(t, host+"/vendorevil/hello", img)
	_, err := f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: evil}, ann)
	refused(t, err, Forbidden, "image "+evil+" was never built by ferry for source demo and is not under allowedImages")
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: host + "/vendor/hello:latest"}, ann)
	refused(t, err, Invalid, "not an image by digest")
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: host + "/vendor/hello@sha256:" + strings.Repeat("a", 64)}, ann)
	refused(t, err, Invalid, "the registry has no such image")
	if ds := f.deployments("staging"); len(ds) != 1 || f.env("staging").Held {
		t.Fatalf("refused pins changed staging: %+v", ds)
	}

	// Climbing out of the root: the pin is admitted by its repository,
	// and the unpacker refuses what it holds.
	hostile := testreg.Push(t, host+"/vendor/hostile", testreg.AppendLayer(t, img, testreg.LayerEntry{Name: "../../etc/ferry-escape", Body: "x"}))
	_, err = f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: hostile}, ann)
	if !errors.Is(err, environments.ErrRefusedImage) || !strings.Contains(err.Error(), "climbs out") || !strings.Contains(err.Error(), "still runs release "+store.Short(cur.ID)) {
		t.Fatalf("a pin to an image climbing out of its root: %v; want ErrRefusedImage saying so", err)
	}
	f.answers("staging", "vendor base")
	if e := f.env("staging"); e.Release != cur.ID || e.Held {
		t.Errorf("staging after a refused image: %+v", e)
	}

	vendor := testreg.Push(t, host+"/vendor/hello", img)
	d := must[store.Deployment](t)(f.p.Rollback(f.ctx, "staging", RollbackTarget{Function: "hello", Image: vendor}, ann))
	st := must[*statusOf](t)(must[*envTarget](t)(f.targetOf("staging")).status(f.ctx))
	if st.images["hello"] != vendor || st.release != d.Release {
		t.Errorf("staging runs %+v, want hello on %s", st, vendor)
	}
	f.answers("staging", "vendor base")
}
