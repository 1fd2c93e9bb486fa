package embedded

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/build/invoker"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/test/testreg"
)

// entryTime is every test entry's mtime.
var entryTime = time.Unix(1_700_000_000, 0)

// tarEntry is one entry of a test layer.
type tarEntry struct {
	typ  byte
	name string
	mode int64
	body string
	link string
	size int64 // for a file, when body is empty: that many zero bytes
}

func dirEntry(name string, mode int64) tarEntry {
	return tarEntry{typ: tar.TypeDir, name: name, mode: mode}
}

func fileEntry(name, body string, mode int64) tarEntry {
	return tarEntry{typ: tar.TypeReg, name: name, mode: mode, body: body}
}

func symlinkEntry(name, target string) tarEntry {
	return tarEntry{typ: tar.TypeSymlink, name: name, mode: 0o777, link: target}
}

func hardlinkEntry(name, target string) tarEntry {
	return tarEntry{typ: tar.TypeLink, name: name, mode: 0o644, link: target}
}

// tarBytes writes the entries as a tar stream, with owners that are not
// the test's, which the unpacker must ignore.
func tarBytes(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Typeflag: e.typ, Name: e.name, Mode: e.mode, Linkname: e.link,
			ModTime: entryTime, Uid: 4321, Gid: 4321, Devmajor: 1, Devminor: 3,
		}
		body := []byte(e.body)
		if e.typ == tar.TypeReg {
			if e.size > 0 {
				body = make([]byte, e.size)
			}
			hdr.Size = int64(len(body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipLayer is a gzip-compressed layer of the entries.
func gzipLayer(t testing.TB, entries ...tarEntry) v1.Layer {
	t.Helper()
	return openerLayer(t, tarBytes(t, entries...))
}

func openerLayer(t testing.TB, b []byte, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tarLayer is an uncompressed layer of the entries.
func tarLayer(t testing.TB, entries ...tarEntry) v1.Layer {
	t.Helper()
	return static.NewLayer(tarBytes(t, entries...), types.OCIUncompressedLayer)
}

// pushImage pushes an image of the layers to reg/repo by digest and
// returns its reference.
func pushImage(t testing.TB, reg, repo string, layers ...v1.Layer) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.NewRepository(reg + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	ref := r.Digest(d.String())
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref.String()
}

// newTestImages returns an image cache in a new folder.
func newTestImages(t testing.TB, opts ...remote.Option) (*images, string) {
	t.Helper()
	dir := t.TempDir()
	// Runs before TempDir's own clean-up, which cannot empty a folder
	// unpacked read-only when the test does not run as root.
	t.Cleanup(func() { _ = removeUnpacked(dir) })
	s, err := newImages(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// describeTree walks root and describes each entry: its kind, its
// permission bits, and a file's content or a link's target.
func describeTree(t testing.TB, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = "link -> " + target
		case fi.IsDir():
			got[rel] = fmt.Sprintf("dir %04o", fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = fmt.Sprintf("file %04o %s", fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// diffTrees reports the entries that differ between want and got.
func diffTrees(t testing.TB, got, want map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: got %q, want %q", k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected entry %q", k, got[k])
		}
	}
}

// assertNothingLeft fails unless the cache holds no tree, config or
// temporary file.
func assertNothingLeft(t testing.TB, dir string) {
	t.Helper()
	for _, sub := range []string{"rootfs", "tmp"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			t.Errorf("%s/%s is left behind", sub, e.Name())
		}
	}
}

func TestImagesRootUnpacksLayers(t *testing.T) {
	reg := testreg.Embedded(t, "")
	ref := pushImage(t, reg.Addr, "good",
		gzipLayer(t,
			dirEntry("bin/", 0o755),
			fileEntry("bin/tool", "#!tool", 0o4755),
			dirEntry("etc/", 0o750),
			fileEntry("etc/conf", "a", 0o644),
			fileEntry("etc/old", "old", 0o644),
			dirEntry("opq/", 0o755),
			fileEntry("opq/lower", "x", 0o644),
			dirEntry("opq/sub/", 0o755),
			fileEntry("opq/sub/deep", "y", 0o644),
			fileEntry("lib/libx.so.1", "elf", 0o644), // lib/ comes without a header
			symlinkEntry("lib/libx.so", "libx.so.1"),
			hardlinkEntry("hard", "etc/conf"),
			dirEntry("tmp/", 0o1777),
			fileEntry("./ferry/x", "x", 0o2755),
		),
		tarLayer(t,
			fileEntry("etc/.wh.old", "", 0o644),
			dirEntry("opq/", 0o755),
			fileEntry("opq/.wh..wh..opq", "", 0o644),
			fileEntry("opq/new", "n", 0o644),
			fileEntry("etc/conf", "b", 0o600),
			hardlinkEntry("bin/tool2", "bin/tool"),
			symlinkEntry("etc/link", "../lib/libx.so"),
			dirEntry("ro/", 0o555),
			fileEntry("ro/f", "r", 0o444),
		),
	)
	s, dir := newTestImages(t)
	tree, cfg, err := s.root(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "rootfs", strings.TrimPrefix(ref[strings.Index(ref, "@"):], "@sha256:")); tree != want {
		t.Errorf("root = %s, want %s", tree, want)
	}
	if cfg == nil || len(cfg.RootFS.DiffIDs) != 2 {
		t.Errorf("config = %+v, want one with 2 diff ids", cfg)
	}
	diffTrees(t, describeTree(t, tree), map[string]string{
		"bin":           "dir 0755",
		"bin/tool":      "file 0755 #!tool", // setuid dropped
		"bin/tool2":     "file 0755 #!tool",
		"etc":           "dir 0750",
		"etc/conf":      "file 0600 b",
		"etc/link":      "link -> ../lib/libx.so",
		"ferry":         "dir 0755",
		"ferry/x":       "file 0755 x", // setgid dropped
		"hard":          "file 0644 a", // the lower layer's file, which etc/conf no longer is
		"lib":           "dir 0755",
		"lib/libx.so":   "link -> libx.so.1",
		"lib/libx.so.1": "file 0644 elf",
		"opq":           "dir 0755",
		"opq/new":       "file 0644 n",
		"ro":            "dir 0555",
		"ro/f":          "file 0444 r",
		"tmp":           "dir 0777", // sticky dropped
	})
	a, errA := os.Stat(filepath.Join(tree, "bin/tool"))
	b, errB := os.Stat(filepath.Join(tree, "bin/tool2"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("bin/tool2 is not a hard link of bin/tool (%v, %v)", errA, errB)
	}
	for _, p := range []string{"etc/conf", "etc"} {
		if fi, err := os.Stat(filepath.Join(tree, p)); err != nil || !fi.ModTime().Equal(entryTime) {
			t.Errorf("%s: mtime %v (%v), want %v", p, fi.ModTime(), err, entryTime)
		}
	}
	if _, err := os.Stat(tree + ".json"); err != nil {
		t.Errorf("config beside the tree: %v", err)
	}
}

func TestImagesRootUnpacksZstd(t *testing.T) {
	reg := testreg.Embedded(t, "")
	l := openerLayer(t, tarBytes(t, fileEntry("z", "zstd", 0o644)),
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	ref := pushImage(t, reg.Addr, "zstd", l)
	s, _ := newTestImages(t)
	tree, _, err := s.root(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	diffTrees(t, describeTree(t, tree), map[string]string{"z": "file 0644 zstd"})
}

func TestImagesRootFunctionImage(t *testing.T) {
	ctx := t.Context()
	reg := testreg.Embedded(t, "")
	src := os.DirFS("../../examples/python")
	set, err := manifests.Load(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build.New(reg.Addr+"/t", build.WithCacheDir(t.TempDir()), build.WithBase("python", build.Scratch))
	if err != nil {
		t.Fatal(err)
	}
	img, err := b.Build(ctx, src, set.Function("hello"), build.Info{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestImages(t)
	tree, cfg, err := s.root(ctx, img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"ferry/invoker/ferry_invoker.py", "ferry/function/main.py"} {
		if fi, err := os.Stat(filepath.Join(tree, p)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v", p, err)
		}
	}
	want, err := invoker.Entrypoint("python")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", cfg.Config.Entrypoint, want)
	}
}

// blobGets counts GET requests for blobs, by path.
type blobGets struct {
	inner http.RoundTripper
	mu    sync.Mutex
	paths map[string]int
}

func (c *blobGets) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
		c.mu.Lock()
		c.paths[req.URL.Path]++
		c.mu.Unlock()
	}
	return c.inner.RoundTrip(req)
}

func TestImagesRootUnpacksOnce(t *testing.T) {
	reg := testreg.Embedded(t, "")
	layers := []v1.Layer{
		gzipLayer(t, fileEntry("a", "1", 0o644)),
		gzipLayer(t, fileEntry("b", "2", 0o644)),
	}
	ref := pushImage(t, reg.Addr, "once", layers...)
	gets := &blobGets{inner: remote.DefaultTransport, paths: map[string]int{}}
	s, dir := newTestImages(t, remote.WithTransport(gets))

	const callers = 8
	trees := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { trees[i], _, errs[i] = s.root(t.Context(), ref) })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if trees[i] != trees[0] {
			t.Errorf("caller %d got %s, caller 0 got %s", i, trees[i], trees[0])
		}
	}
	for _, l := range layers {
		d, _ := l.Digest()
		if n := gets.paths["/v2/once/blobs/"+d.String()]; n != 1 {
			t.Errorf("layer %s: %d GETs, want 1", d, n)
		}
	}
	// The two layers and the config, each once.
	if len(gets.paths) != 3 {
		t.Errorf("blob GETs %v, want the 2 layers and the config", gets.paths)
	}
	diffTrees(t, describeTree(t, trees[0]), map[string]string{"a": "file 0644 1", "b": "file 0644 2"})

	// Another cache on the same folder needs no registry.
	reg.Stop()
	other, err := newImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree, cfg, err := other.root(t.Context(), ref)
	if err != nil {
		t.Fatalf("with the registry stopped: %v", err)
	}
	if tree != trees[0] || cfg == nil || len(cfg.RootFS.DiffIDs) != 2 {
		t.Errorf("with the registry stopped: %s, %+v; want %s and the config", tree, cfg, trees[0])
	}
}

func TestImagesRootRefusesHostileLayers(t *testing.T) {
	reg := testreg.Embedded(t, "")
	cases := []struct {
		name     string
		layers   func(t *testing.T) []v1.Layer
		maxBytes int64
		maxEnts  int
		want     []string // each in the error
	}{{
		name:   "dotdot",
		layers: oneLayer(fileEntry("../escape", "x", 0o644)),
		want:   []string{`"../escape"`, "climbs out"},
	}, {
		name:   "absolute",
		layers: oneLayer(fileEntry("/abs", "x", 0o644)),
		want:   []string{`"/abs"`, "absolute"},
	}, {
		name:   "dotdot inside",
		layers: oneLayer(fileEntry("a/../../x", "x", 0o644)),
		want:   []string{`"a/../../x"`, "climbs out"},
	}, {
		name:   "char device",
		layers: oneLayer(tarEntry{typ: tar.TypeChar, name: "dev/null", mode: 0o666}),
		want:   []string{`"dev/null"`, "device"},
	}, {
		name:   "block device",
		layers: oneLayer(tarEntry{typ: tar.TypeBlock, name: "dev/sda", mode: 0o660}),
		want:   []string{`"dev/sda"`, "device"},
	}, {
		name:   "fifo",
		layers: oneLayer(tarEntry{typ: tar.TypeFifo, name: "pipe", mode: 0o644}),
		want:   []string{`"pipe"`, "FIFO"},
	}, {
		name:   "absolute symlink",
		layers: oneLayer(symlinkEntry("etc", "/etc")),
		want:   []string{`"etc"`, `"/etc"`, "absolute"},
	}, {
		name:   "symlink up",
		layers: oneLayer(symlinkEntry("up", "../..")),
		want:   []string{`"up"`, "climbs out"},
	}, {
		name:   "symlink up from a folder",
		layers: oneLayer(symlinkEntry("a/b/up", "../../../x")),
		want:   []string{`"a/b/up"`, "climbs out"},
	}, {
		name:   "symlink dotdot after a name",
		layers: oneLayer(dirEntry("sub/", 0o755), symlinkEntry("l", "sub/../x")),
		want:   []string{`"l"`, ".. after a name"},
	}, {
		name:   "write through symlink",
		layers: oneLayer(dirEntry("sub/", 0o755), symlinkEntry("a", "sub"), fileEntry("a/x", "x", 0o644)),
		want:   []string{`"a/x"`, "symbolic link"},
	}, {
		name: "write through symlink of a lower layer",
		layers: func(t *testing.T) []v1.Layer {
			return []v1.Layer{
				gzipLayer(t, dirEntry("sub/", 0o755), symlinkEntry("a", "sub")),
				gzipLayer(t, fileEntry("a/etc/passwd", "x", 0o644)),
			}
		},
		want: []string{`"a/etc/passwd"`, "symbolic link"},
	}, {
		name:   "whiteout through symlink",
		layers: oneLayer(dirEntry("sub/", 0o755), fileEntry("sub/f", "x", 0o644), symlinkEntry("a", "sub"), fileEntry("a/.wh.f", "", 0o644)),
		want:   []string{`"a/.wh.f"`, "symbolic link"},
	}, {
		name:   "whiteout of the parent",
		layers: oneLayer(fileEntry("a/.wh...", "", 0o644)),
		want:   []string{`"a/.wh..."`, "names no entry"},
	}, {
		name:   "hard link out",
		layers: oneLayer(hardlinkEntry("h", "../x")),
		want:   []string{`"h"`, `"../x"`, "climbs out"},
	}, {
		name:   "hard link to a symlink",
		layers: oneLayer(fileEntry("f", "x", 0o644), symlinkEntry("s", "f"), hardlinkEntry("h", "s")),
		want:   []string{`"h"`, "not a regular file"},
	}, {
		name:   "hard link to nothing",
		layers: oneLayer(hardlinkEntry("h", "missing")),
		want:   []string{`"h"`, "no such entry"},
	}, {
		name:     "layer over the size limit",
		layers:   oneLayer(tarEntry{typ: tar.TypeReg, name: "big", mode: 0o644, size: 64 << 10}, fileEntry("small", "x", 0o644)),
		maxBytes: 1024,
		want:     []string{`"big"`, "larger than 1024 bytes"},
	}, {
		name:    "too many entries",
		layers:  oneLayer(fileEntry("1", "", 0o644), fileEntry("2", "", 0o644), fileEntry("3", "", 0o644)),
		maxEnts: 2,
		want:    []string{`"3"`, "more than 2 entries"},
	}, {
		name: "unsupported compression",
		layers: func(t *testing.T) []v1.Layer {
			return []v1.Layer{static.NewLayer(tarBytes(t, fileEntry("x", "", 0o644)), "application/vnd.oci.image.layer.v1.tar+bzip2")}
		},
		want: []string{"tar+bzip2", "not supported"},
	}}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layers := c.layers(t)
			ref := pushImage(t, reg.Addr, fmt.Sprintf("hostile%d", i), layers...)
			s, dir := newTestImages(t)
			if c.maxBytes > 0 {
				s.withMaxLayerBytes(c.maxBytes)
			}
			if c.maxEnts > 0 {
				s.withMaxEntries(c.maxEnts)
			}
			tree, _, err := s.root(t.Context(), ref)
			if err == nil {
				t.Fatalf("unpacked to %s; want it refused", tree)
			}
			t.Log(err)
			if !errors.Is(err, environments.ErrRefusedImage) {
				t.Errorf("error %q is not an environments.ErrRefusedImage (the API would answer 500, not 422)", err)
			}
			d, _ := layers[len(layers)-1].Digest()
			for _, w := range append(c.want, ref, d.String()) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			assertNothingLeft(t, dir)
		})
	}
}

// oneLayer returns a gzip layer of the entries.
func oneLayer(entries ...tarEntry) func(t *testing.T) []v1.Layer {
	return func(t *testing.T) []v1.Layer { return []v1.Layer{gzipLayer(t, entries...)} }
}

func TestImagesRootRefusesCorruptBlob(t *testing.T) {
	for _, c := range []struct {
		name    string
		corrupt func([]byte) []byte
		want    string
	}{
		{"same size", func(b []byte) []byte {
			out := bytes.Clone(b)
			for i := range out {
				out[i] ^= 0xff
			}
			return out
		}, "digest mismatch"},
		{"other tar", func([]byte) []byte {
			return tarBytes(t, fileEntry("x", "not the layer", 0o644))
		}, ""}, // the registry's size check or the digest check: either refuses
	} {
		t.Run(c.name, func(t *testing.T) {
			regDir := t.TempDir()
			reg := testreg.Embedded(t, regDir)
			l := gzipLayer(t, fileEntry("x", "the layer", 0o644))
			ref := pushImage(t, reg.Addr, "corrupt", l)
			d, _ := l.Digest()
			blob := filepath.Join(regDir, "docker/registry/v2/blobs/sha256", d.Hex[:2], d.Hex, "data")
			b, err := os.ReadFile(blob)
			if err != nil {
				t.Fatalf("the layer's blob in the registry: %v", err)
			}
			if err := os.WriteFile(blob, c.corrupt(b), 0o644); err != nil {
				t.Fatal(err)
			}
			s, dir := newTestImages(t)
			_, _, err = s.root(t.Context(), ref)
			if err == nil {
				t.Fatal("a corrupt blob was unpacked")
			}
			t.Log(err)
			if !errors.Is(err, environments.ErrRefusedImage) {
				t.Errorf("error %q is not an environments.ErrRefusedImage", err)
			}
			if c.want != "" && !errors.Is(err, errDigestMismatch) {
				t.Errorf("error %q is not a digest mismatch", err)
			}
			if !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name layer %s and %q", err, d, c.want)
			}
			assertNothingLeft(t, dir)
		})
	}
}

func TestImagesRootRefusesCorruptManifest(t *testing.T) {
	regDir := t.TempDir()
	reg := testreg.Embedded(t, regDir)
	ref := pushImage(t, reg.Addr, "corrupt", gzipLayer(t, fileEntry("x", "the layer", 0o644)))
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	h := strings.TrimPrefix(d.DigestStr(), "sha256:")
	blob := filepath.Join(regDir, "docker/registry/v2/blobs/sha256", h[:2], h, "data")
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("the manifest's blob in the registry: %v", err)
	}
	// Still a valid manifest of the same image, but not the bytes pinned.
	b = bytes.Replace(b, []byte("{"), []byte("{ "), 1)
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, dir := newTestImages(t)
	_, _, err = s.root(t.Context(), ref)
	if err == nil {
		t.Fatal("a manifest that does not match its digest was accepted")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "does not match") && !errors.Is(err, errDigestMismatch) {
		t.Errorf("error %q does not say the manifest does not match its digest", err)
	}
	if !errors.Is(err, environments.ErrRefusedImage) {
		t.Errorf("error %q is not an environments.ErrRefusedImage", err)
	}
	assertNothingLeft(t, dir)
}

// TestImagesRootRefusesIndex: an index is not one image to run; it is
// refused as such, not failed as if the registry were down.
func TestImagesRootRefusesIndex(t *testing.T) {
	reg := testreg.Embedded(t, "")
	img, err := mutate.AppendLayers(empty.Image, gzipLayer(t, fileEntry("x", "x", 0o644)))
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(reg.Addr + "/multi@" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	s, dir := newTestImages(t)
	_, _, err = s.root(t.Context(), ref.String())
	if err == nil || !strings.Contains(err.Error(), "not an image manifest") || !errors.Is(err, environments.ErrRefusedImage) {
		t.Errorf("root(an index) = %v, want a refusal saying it is not an image manifest", err)
	}
	assertNothingLeft(t, dir)
}

func TestImagesRootRefusesTag(t *testing.T) {
	s, _ := newTestImages(t)
	for _, ref := range []string{"127.0.0.1:5000/x:latest", "127.0.0.1:5000/x", "127.0.0.1:5000/x@sha256:abc"} {
		_, _, err := s.root(t.Context(), ref)
		if err == nil || !strings.Contains(err.Error(), "pinned by digest") {
			t.Errorf("root(%s) = %v, want a refusal of a ref not pinned by digest", ref, err)
		}
	}
}

func TestImagesRootWaitsForLockUntilCancelled(t *testing.T) {
	s, dir := newTestImages(t)
	hexDigest := strings.Repeat("ab", 32)
	// Another process (a second cache on the same folder) is unpacking.
	holder, err := newImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := holder.lock(t.Context(), hexDigest)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = s.root(ctx, "127.0.0.1:1/x@sha256:"+hexDigest)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("root = %v, want the context's error", err)
	}
	if time.Since(start) > 30*time.Second { // a hang bound: the context ended after 100ms
		t.Errorf("root returned %s after the context ended", time.Since(start))
	}
}
