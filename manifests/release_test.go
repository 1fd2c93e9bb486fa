package manifests

import (
	"context"
	"io/fs"
	"strings"
	"testing"
)

const pinnedImage = "127.0.0.1:5000/team/fn@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestImageIsFerrys: a repository may not set spec.image; a release must,
// by digest; and a release loads back from its rendered bytes alone.
func TestImageIsFerrys(t *testing.T) {
	manifest := pyFunction + "  image: " + pinnedImage + "\n"
	_, errs := loadFS(t, repo(manifest, nil))
	if len(errs) != 1 || errs[0].Field != "spec.image" || !strings.Contains(errs[0].Message, "set by ferry") {
		t.Fatalf("errors %v", ErrorList(errs))
	}

	set := mustLoad(t, pyFunction, nil)
	pinned, err := set.Pin(map[string]string{"fn": pinnedImage})
	if err != nil {
		t.Fatal(err)
	}
	if set.Function("fn").Spec.Image != "" {
		t.Fatal("Pin changed the set it was given")
	}
	data, err := Render(pinned)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := LoadRelease(context.Background(), data)
	if err != nil {
		t.Fatalf("LoadRelease: %v\n%s", err, data)
	}
	if rel.Function("fn").Spec.Image != pinnedImage {
		t.Fatalf("image %q", rel.Function("fn").Spec.Image)
	}
	again, err := Render(rel)
	if err != nil || string(again) != string(data) {
		t.Fatalf("a release does not render back to its bytes: %v\n%s\n%s", err, data, again)
	}

	// Unpinned, or pinned by tag, is refused with the position.
	for _, bad := range []string{"", "127.0.0.1:5000/team/fn:v1"} {
		text := strings.Replace(string(data), pinnedImage, bad, 1)
		if bad == "" {
			text = strings.Replace(string(data), "image: "+pinnedImage, "test: null", 1)
		}
		_, err := LoadRelease(context.Background(), []byte(text))
		list := Errors(err)
		if len(list) != 1 || list[0].Field != "spec.image" || list[0].File != ReleaseFile {
			t.Errorf("image %q: %v", bad, err)
		}
	}
	if _, err := set.Pin(map[string]string{"fn": pinnedImage, "other": pinnedImage}); err == nil {
		t.Error("pinned an image for an undeclared function")
	}
}

// TestWalkSource follows links inside the repository, reports loops and
// escapes, and skips .git.
func TestWalkSource(t *testing.T) {
	fsys := repo(pyFunction, map[string]string{
		"shared/util.py": "X = 1\n",
		"fn/shared":      "->../shared",
		"fn/.git/HEAD":   "ref\n",
		"fn/sub/b.txt":   "b\n",
	})
	var got []string
	err := WalkSource(context.Background(), fsys, "fn", func(e SourceEntry) error {
		got = append(got, e.Path+"="+e.Real)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "., fn; main.py, fn/main.py; shared, shared; shared/util.py, shared/util.py; sub, fn/sub; sub/b.txt, fn/sub/b.txt"
	if strings.Join(got, "; ") != strings.ReplaceAll(strings.ReplaceAll(want, ", ", "="), "; ", "; ") {
		t.Fatalf("walk %v", got)
	}
	for name, extra := range map[string]map[string]string{
		"loop":   {"fn/up": "->.."},
		"escape": {"fn/out": "->../../etc"},
		"dangle": {"fn/gone": "->nothing"},
	} {
		err := WalkSource(context.Background(), repo(pyFunction, extra), "fn", func(SourceEntry) error { return nil })
		if err == nil {
			t.Errorf("%s: walked", name)
		}
	}
	var _ fs.FS = fsys
}
