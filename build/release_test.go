package build

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/test/testreg"
)

// TestRelease builds a repository into a release, pulls the release back by
// digest from each registry, and finds every image pinned in it.
func TestRelease(t *testing.T) {
	for regName, reg := range registries(t) {
		t.Run(regName, func(t *testing.T) {
			src, set := loadRepo(t, filepath.Join("..", "examples", "python"))
			b := newTestBuilder(t, reg, "", nil)
			res, err := b.Release(context.Background(), src, set, testInfo)
			if err != nil {
				t.Fatal(err)
			}
			rel := res.Release
			if !strings.HasPrefix(rel.Ref, reg+"/test@sha256:") || rel.Ref != reg+"/test@"+rel.Digest.String() {
				t.Fatalf("release ref %s", rel.Ref)
			}
			pulled, err := PullRelease(context.Background(), rel.Ref)
			if err != nil {
				t.Fatal(err)
			}
			if pulled.Digest != rel.Digest || !bytes.Equal(pulled.Manifest, rel.Manifest) || pulled.Revision != testInfo.Revision || pulled.SourceURL != testInfo.SourceURL {
				t.Fatalf("pulled %+v\nwant %+v", pulled, rel)
			}
			imgs := pulled.FunctionImages()
			if len(imgs) != 1 || imgs[0].Function != "hello" || imgs[0].Image != res.Images[0].Ref {
				t.Fatalf("images %v, built %v", imgs, res.Images[0])
			}
			// The release is deployable from its bytes: the images it pins
			// are pulled by digest and valid.
			pull(t, imgs[0].Image)
			// The rendered manifest is the repository's, plus the image.
			plain, err := manifests.Render(set)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(rel.Manifest, []byte("image: "+res.Images[0].Ref)) || bytes.Equal(plain, rel.Manifest) {
				t.Fatalf("release manifest:\n%s", rel.Manifest)
			}
			// Same inputs, same release id, from the cache.
			again, err := b.Release(context.Background(), src, set, testInfo)
			if err != nil {
				t.Fatal(err)
			}
			if again.Release.Digest != rel.Digest || !again.Images[0].Cached {
				t.Fatalf("a second release of the same commit: %s (cached %v), first %s", again.Release.Digest, again.Images[0].Cached, rel.Digest)
			}
			// A function image is not a release.
			if _, err := PullRelease(context.Background(), res.Images[0].Ref); err == nil || !strings.Contains(err.Error(), "not a ferry release") {
				t.Fatalf("pulling an image as a release: %v", err)
			}
		})
	}
}

// TestNoReleaseWhenAFunctionFails: one broken function out of two means
// no release artifact reaches the registry, and both builds are reported.
func TestNoReleaseWhenAFunctionFails(t *testing.T) {
	reg := testreg.Embedded(t, "").Addr
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ferry.yaml": `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: good}
spec: {runtime: python, source: good}
---
apiVersion: ferry.dev/v1alpha1
kind: Function
metadata: {name: bad}
spec: {runtime: python, source: bad}
`,
		"good/main.py":         "def handle(event, context):\n    return 1\n",
		"bad/main.py":          "def handle(event, context):\n    return 2\n",
		"bad/requirements.txt": "--no-index\nnot-there==9\n",
	})
	src, set := loadRepo(t, dir)
	rec := &requests{}
	_, err := newTestBuilder(t, reg, "", rec).Release(context.Background(), src, set, testInfo)
	if err == nil || !strings.Contains(err.Error(), "function bad") || !strings.Contains(err.Error(), "no release was pushed") {
		t.Fatalf("err = %v", err)
	}
	for _, w := range rec.writes() {
		if strings.HasPrefix(w, "PUT /v2/test/manifests/") || strings.HasPrefix(w, "POST /v2/test/blobs/") {
			t.Errorf("release written despite the failure: %s", w)
		}
	}
	if rec.count("PUT /v2/test/good/manifests/") != 1 {
		t.Errorf("the good function was not pushed: %v", rec.writes())
	}
}

// TestLoadReleaseRefusesUnpinned: a release must pin every image by digest.
func TestLoadReleaseRefusesUnpinned(t *testing.T) {
	_, set := loadRepo(t, filepath.Join("..", "examples", "python"))
	for _, img := range []string{"127.0.0.1:5000/test/hello:latest", "127.0.0.1:5000/test/hello@sha256:abc"} {
		pinned, err := set.Pin(map[string]string{"hello": img})
		if err != nil {
			t.Fatal(err)
		}
		data, err := manifests.Render(pinned)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := manifests.LoadRelease(context.Background(), data); err == nil || !strings.Contains(err.Error(), "pinned by digest") {
			t.Errorf("%s: err = %v", img, err)
		}
	}
	if _, err := set.Pin(map[string]string{}); err == nil {
		t.Error("pinned a set with a function left out")
	}
}
