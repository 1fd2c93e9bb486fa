package embedded

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/internal/filelock"
)

const (
	// defaultMaxLayerBytes bounds a layer's uncompressed tar stream: far
	// above any function's code and dependencies, far below a full disk.
	defaultMaxLayerBytes = 4 << 30
	// defaultMaxEntries bounds the entries of one image, all layers
	// together: a large node_modules has tens of thousands, so this only
	// stops an image made to exhaust the inode table.
	defaultMaxEntries = 1_000_000
	whiteoutPrefix    = ".wh."
	// whiteoutOpaque in a folder hides everything lower layers put there.
	whiteoutOpaque = ".wh..wh..opq"
	// whiteoutMeta starts aufs's own bookkeeping entries (.wh..wh.plnk
	// and the like), which mean nothing outside aufs.
	whiteoutMeta = ".wh..wh."
)

// errDigestMismatch is wrapped by the error of a manifest or layer whose
// bytes do not hash to the digest they were asked for.
var errDigestMismatch = errors.New("digest mismatch")

// images pulls images by digest and unpacks them under dir:
//
//	rootfs/<hex>/      the file system of the image whose manifest is
//	                   sha256:<hex>, there only once complete
//	rootfs/<hex>.json  its config, written before the folder is moved in
//	locks/<hex>        flock held by whoever unpacks that image
//	tmp/<hex>-*        a tree being unpacked, or left by a crash
//
// The folders are shared by every environment and every ferry process
// using dir; an unpacked tree is never changed again, so callers must
// not write into it.
type images struct {
	dir           string
	remote        []remote.Option
	maxLayerBytes int64
	maxEntries    int
}

// newImages returns the image cache in dir, creating its folders. The
// remote options (transport, keychain) are used for every pull.
func newImages(dir string, opts ...remote.Option) (*images, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image cache %s: %w", dir, err)
	}
	for _, sub := range []string{"rootfs", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("image cache %s: %w", abs, err)
		}
	}
	return &images{
		dir: abs,
		// Each answer of the registry is due within build's bound, so a
		// registry that never answers fails the deploy instead of holding
		// it; opts given may replace the transport.
		remote:        append([]remote.Option{remote.WithTransport(build.RegistryTransport(build.DefaultRegistryTimeout))}, opts...),
		maxLayerBytes: defaultMaxLayerBytes,
		maxEntries:    defaultMaxEntries,
	}, nil
}

// withMaxLayerBytes sets the limit of a layer's uncompressed size; for
// tests, before the first call to root.
func (s *images) withMaxLayerBytes(n int64) *images {
	s.maxLayerBytes = n
	return s
}

// withMaxEntries sets the limit of an image's entries; for tests, before
// the first call to root.
func (s *images) withMaxEntries(n int) *images {
	s.maxEntries = n
	return s
}

// root returns the folder holding the unpacked file system of the image
// ref (HOST/REPO@sha256:..., which must be pinned by digest: a tag is
// refused), and its config. An image is unpacked once: later calls, from
// any goroutine or another process using the same dir, return the same
// folder without pulling.
func (s *images) root(ctx context.Context, ref string) (string, *v1.ConfigFile, error) {
	d, h, err := pinnedRef(ref)
	if err != nil {
		return "", nil, err
	}
	tree := filepath.Join(s.dir, "rootfs", h.Hex)
	if cfg, ok := cachedTree(tree); ok {
		return tree, cfg, nil
	}
	unlock, err := s.lock(ctx, h.Hex)
	if err != nil {
		return "", nil, fmt.Errorf("image %s: waiting for another unpack of it: %w", ref, err)
	}
	defer unlock()
	// Whoever held the lock may have unpacked it meanwhile.
	if cfg, ok := cachedTree(tree); ok {
		return tree, cfg, nil
	}
	if err := s.clearPartial(h.Hex); err != nil {
		return "", nil, fmt.Errorf("image %s: %w", ref, err)
	}
	cfg, err := s.unpack(ctx, d, h, tree)
	if err != nil {
		return "", nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return tree, cfg, nil
}

// pinnedRef parses ref, which must name its image by a sha256 digest:
// what runs must be exactly what was released, and a tag can move.
func pinnedRef(ref string) (name.Digest, v1.Hash, error) {
	d, err := name.NewDigest(ref)
	if err != nil {
		return name.Digest{}, v1.Hash{}, fmt.Errorf("image %q is not pinned by digest (want HOST/REPO@sha256:<hex>; ferry runs images by digest only, since a tag can move): %w", ref, err)
	}
	h, err := v1.NewHash(d.DigestStr())
	if err != nil || h.Algorithm != "sha256" || len(h.Hex) != sha256.Size*2 || strings.Trim(h.Hex, "0123456789abcdef") != "" {
		// The hex names folders, so it must be exactly what sha256 gives.
		return name.Digest{}, v1.Hash{}, fmt.Errorf("image %q: digest %q is not sha256:<64 lower-case hex>", ref, d.DigestStr())
	}
	return d, h, nil
}

// cachedTree returns the config of the tree if it is complete: the tree
// is renamed into place after its config is written, so both are there.
func cachedTree(tree string) (*v1.ConfigFile, bool) {
	fi, err := os.Stat(tree)
	if err != nil || !fi.IsDir() {
		return nil, false
	}
	raw, err := os.ReadFile(tree + ".json")
	if err != nil {
		return nil, false
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, false
	}
	return cfg, true
}

// lock takes the image's lock, waiting for another unpacker of it, in
// this process or another, to finish, or ctx to be done.
func (s *images) lock(ctx context.Context, hexDigest string) (unlock func(), err error) {
	return filelock.Lock(ctx, filepath.Join(s.dir, "locks", hexDigest))
}

// clearPartial removes what an unpacker of the image that crashed left:
// its temporary trees, a config without a tree, a tree without a config.
// The caller holds the image's lock, so nobody else is writing them.
func (s *images) clearPartial(hexDigest string) error {
	left, err := filepath.Glob(filepath.Join(s.dir, "tmp", hexDigest+"*"))
	if err != nil {
		return err
	}
	tree := filepath.Join(s.dir, "rootfs", hexDigest)
	for _, p := range append(left, tree, tree+".json") {
		if err := removeUnpacked(p); err != nil {
			return fmt.Errorf("remove what an interrupted unpack left: %w", err)
		}
	}
	return nil
}

// unpack pulls the image and unpacks it into a temporary tree, which is
// moved to tree only when every layer is in.
func (s *images) unpack(ctx context.Context, d name.Digest, h v1.Hash, tree string) (*v1.ConfigFile, error) {
	// why: each answer and each stop of a body is bounded already; this
	// bounds a registry that trickles the image for ever.
	ctx, cancel := context.WithTimeout(ctx, build.ImageTransferBound)
	defer cancel()
	desc, err := remote.Get(d, append(s.remote, remote.WithContext(ctx))...)
	if err != nil {
		err = fmt.Errorf("pull manifest: %w", err)
		if manifestMismatch(err) {
			err = environments.RefusedImage(err)
		}
		return nil, err
	}
	// go-containerregistry checks this when it pulls by digest; the cache
	// is keyed by it, so it is checked here too, whatever the library does.
	if sum := sha256.Sum256(desc.Manifest); hex.EncodeToString(sum[:]) != h.Hex {
		return nil, environments.RefusedImage(fmt.Errorf("manifest: %w: the registry served a manifest whose digest is sha256:%x", errDigestMismatch, sum))
	}
	if !desc.MediaType.IsImage() {
		return nil, environments.RefusedImage(fmt.Errorf("manifest media type %s is not an image manifest (for an index, pin the digest of the image of one platform)", desc.MediaType))
	}
	img, err := desc.Image()
	if err != nil {
		return nil, environments.RefusedImage(fmt.Errorf("manifest: %w", err))
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pull config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, environments.RefusedImage(fmt.Errorf("config: %w", err))
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, environments.RefusedImage(fmt.Errorf("manifest: %w", err))
	}

	tmp := filepath.Join(s.dir, "tmp")
	work, err := os.MkdirTemp(tmp, h.Hex+"-")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			_ = removeUnpacked(work)
		}
	}()
	u, err := newUnpacker(work, s.maxLayerBytes, s.maxEntries)
	if err != nil {
		return nil, err
	}
	defer u.close()
	for i, l := range layers {
		digest, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if err := u.layer(ctx, l, digest); err != nil {
			return nil, fmt.Errorf("layer %d of %d (%s): %w", i+1, len(layers), digest, err)
		}
	}
	if err := u.finish(); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(tmp, tree+".json", raw); err != nil {
		return nil, err
	}
	if err := os.Rename(work, tree); err != nil {
		_ = os.Remove(tree + ".json")
		return nil, err
	}
	done = true
	return cfg, nil
}

// manifestMismatch reports whether go-containerregistry refused a
// manifest whose bytes do not hash to the digest pulled: it says so only
// in words, which TestImagesRootRefusesCorruptManifest keeps in sight.
func manifestMismatch(err error) bool {
	return strings.Contains(err.Error(), "does not match requested digest")
}

// writeFileAtomic writes data to dst through a temporary file in tmp, so
// that dst is either absent or complete.
func writeFileAtomic(tmp, dst string, data []byte) error {
	f, err := os.CreateTemp(tmp, filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// removeUnpacked removes a tree, even one whose folders have lost the
// owner's write or search bit from the image's modes.
func removeUnpacked(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	// WalkDir calls the function for a folder before reading it, so each
	// folder is opened up before its entries are needed.
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// unpacker applies an image's layers, in order, to one tree.
type unpacker struct {
	root          *os.Root // every write goes through it, a second fence around the checks
	maxLayerBytes int64
	maxEntries    int
	entries       int
	// dirs are the folders' modes and times, applied once every layer is
	// in: a folder without the write bit must still take its entries.
	dirs map[string]dirMeta
	// layerSeen holds the entries of the layer being applied and their
	// folders; its whiteouts hide only what lower layers put there.
	layerSeen map[string]bool
}

type dirMeta struct {
	mode  fs.FileMode
	mtime time.Time // zero for a folder made only to hold an entry
}

func newUnpacker(dir string, maxLayerBytes int64, maxEntries int) (*unpacker, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &unpacker{
		root:          r,
		maxLayerBytes: maxLayerBytes,
		maxEntries:    maxEntries,
		dirs:          map[string]dirMeta{},
		layerSeen:     map[string]bool{},
	}, nil
}

func (u *unpacker) close() { u.root.Close() }

// decompressors of the layer media types ferry unpacks.
var decompressors = map[types.MediaType]func(io.Reader) (io.ReadCloser, error){
	types.DockerLayer:             gunzip,
	types.OCILayer:                gunzip,
	types.OCILayerZStd:            unzstd,
	types.DockerUncompressedLayer: func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil },
	types.OCIUncompressedLayer:    func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil },
}

func gunzip(r io.Reader) (io.ReadCloser, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return zr, nil
}

func unzstd(r io.Reader) (io.ReadCloser, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return zr.IOReadCloser(), nil
}

// compressedLimit bounds a layer's compressed size given the limit of its
// uncompressed size: neither gzip nor zstd makes data grow by more than a
// fraction of a percent, plus headers.
func compressedLimit(maxLayerBytes int64) int64 {
	return maxLayerBytes + maxLayerBytes/64 + 1<<20
}

// layer applies one layer, whose blob must hash to digest.
func (u *unpacker) layer(ctx context.Context, l v1.Layer, digest v1.Hash) error {
	if digest.Algorithm != "sha256" {
		return environments.RefusedImage(fmt.Errorf("digest algorithm %s is not supported (sha256 only)", digest.Algorithm))
	}
	mt, err := l.MediaType()
	if err != nil {
		return err
	}
	decompress, ok := decompressors[mt]
	if !ok {
		return environments.RefusedImage(fmt.Errorf("media type %s is not supported (gzip, zstd or uncompressed tar layers only)", mt))
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	if size > compressedLimit(u.maxLayerBytes) {
		return environments.RefusedImage(fmt.Errorf("its compressed size %d bytes is over the limit of %d bytes uncompressed", size, u.maxLayerBytes))
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	defer rc.Close()
	blob := &blobReader{r: rc, h: sha256.New(), want: digest, size: size}
	if err := u.apply(ctx, blob, decompress); err != nil {
		// A corrupt blob may first show as a broken stream or a strange
		// entry; reading it to its end tells which.
		verr := blob.verify()
		switch {
		case errors.Is(verr, errDigestMismatch):
			return environments.RefusedImage(verr)
		case verr != nil || ctx.Err() != nil || hostFailure(err):
			return err // the pull or this machine failed, not the image
		}
		// why: the blob is whole and hashes to its digest, so what failed
		// is what the image holds: a name, a link, a size the unpacker
		// refuses, or a stream that is not a tar.
		return environments.RefusedImage(err)
	}
	return nil
}

// hostFailure reports whether err comes from this machine's file system
// (a full disk, a permission) rather than from a layer's content.
func hostFailure(err error) bool {
	var pe *fs.PathError
	var le *os.LinkError
	var se *os.SyscallError
	return errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &se)
}

// apply reads the layer's tar stream and applies its entries, then reads
// the blob to its end so that its digest is checked.
func (u *unpacker) apply(ctx context.Context, blob *blobReader, decompress func(io.Reader) (io.ReadCloser, error)) error {
	zr, err := decompress(blob)
	if err != nil {
		return err
	}
	defer zr.Close()
	stream := &layerSizeReader{r: zr, max: u.maxLayerBytes}
	tr := tar.NewReader(stream)
	clear(u.layerSeen)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if last == "" {
				return fmt.Errorf("read tar stream: %w", err)
			}
			return fmt.Errorf("read tar stream after entry %q: %w", last, err)
		}
		last = hdr.Name
		u.entries++
		if u.entries > u.maxEntries {
			return fmt.Errorf("entry %q: the image has more than %d entries (the limit)", hdr.Name, u.maxEntries)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return fmt.Errorf("read past the tar stream's end: %w", err)
	}
	return blob.verify()
}

// entry applies one tar entry.
func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // the reader has taken what it needs from it
	case tar.TypeChar, tar.TypeBlock:
		return errors.New("device files are refused: a function's image needs none, and one would give access to the host's device")
	case tar.TypeFifo:
		return errors.New("FIFOs are refused: a function's image needs none")
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
	default:
		return fmt.Errorf("tar entry type %q is not supported (files, folders, symbolic and hard links only)", hdr.Typeflag)
	}
	p, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if base := path.Base(p); strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(p)
	}
	if p == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the image's root must be a folder")
		}
		// The root keeps its own mode, which no image may take away.
		return nil
	}
	if err := u.parents(p, true); err != nil {
		return err
	}
	u.layerSeen[p] = true
	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(p, hdr)
	case tar.TypeReg:
		return u.file(p, hdr, r)
	case tar.TypeSymlink:
		return u.symlink(p, hdr.Linkname)
	default:
		return u.hardlink(p, hdr.Linkname)
	}
}

// entryName cleans a tar entry's name. Names that climb out of the root
// or are absolute are refused rather than mended: an image that holds
// them was not made by a tool that means well.
func entryName(n string) (string, error) {
	switch {
	case n == "":
		return "", errors.New("the entry has no name")
	case strings.IndexByte(n, 0) >= 0:
		return "", errors.New("the name holds a NUL byte")
	case strings.HasPrefix(n, "/"):
		return "", errors.New("absolute names are refused: entries must be relative to the image's root")
	}
	depth := 0
	for e := range strings.SplitSeq(n, "/") {
		switch e {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return "", errors.New("the name climbs out of the image's root with ..")
			}
		default:
			depth++
		}
	}
	return path.Clean(n), nil
}

// parents checks that every folder above p is a folder and none is a
// symbolic link, so nothing is ever written through a link. With create,
// missing folders are made and marked as part of this layer; without it,
// a missing one makes parents return fs.ErrNotExist.
func (u *unpacker) parents(p string, create bool) error {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	at := ""
	for e := range strings.SplitSeq(dir, "/") {
		at = path.Join(at, e)
		fi, err := u.root.Lstat(at)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := u.root.Mkdir(at, 0o755); err != nil {
				return err
			}
			u.dirs[at] = dirMeta{mode: 0o755}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("its folder %s is a symbolic link, and nothing is written through a link", at)
		case !fi.IsDir():
			return fmt.Errorf("its folder %s is not a folder", at)
		}
		if create {
			u.layerSeen[at] = true
		}
	}
	return nil
}

// replace removes the entry at p, if any, as an entry of a higher layer
// replaces one of a lower layer; a folder goes with all it holds.
func (u *unpacker) replace(p string) error {
	fi, err := u.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return u.remove(p, fi.IsDir())
}

func (u *unpacker) remove(p string, isDir bool) error {
	if err := u.root.RemoveAll(p); err != nil {
		return err
	}
	if isDir {
		for d := range u.dirs {
			if d == p || strings.HasPrefix(d, p+"/") {
				delete(u.dirs, d)
			}
		}
	}
	return nil
}

// perm keeps an entry's permission bits and drops setuid, setgid and
// sticky: a function runs as the user of ferry, and must not hand out
// another's rights.
func perm(hdr *tar.Header) fs.FileMode {
	return fs.FileMode(hdr.Mode) & fs.ModePerm
}

func (u *unpacker) mkdir(p string, hdr *tar.Header) error {
	fi, err := u.root.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
		// A folder in a higher layer merges with the lower one.
	case err == nil:
		if err := u.remove(p, false); err != nil {
			return err
		}
		fallthrough
	case errors.Is(err, fs.ErrNotExist):
		if err := u.root.Mkdir(p, 0o755); err != nil {
			return err
		}
	default:
		return err
	}
	u.dirs[p] = dirMeta{mode: perm(hdr), mtime: hdr.ModTime}
	return nil
}

func (u *unpacker) file(p string, hdr *tar.Header, r io.Reader) error {
	if err := u.replace(p); err != nil {
		return err
	}
	// O_EXCL and O_NOFOLLOW: the name was just freed, so anything there
	// now is not ours to write to.
	f, err := u.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm(hdr)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return u.root.Chtimes(p, hdr.ModTime, hdr.ModTime)
}

func (u *unpacker) symlink(p, target string) error {
	if err := linkInside(p, target); err != nil {
		return err
	}
	if err := u.replace(p); err != nil {
		return err
	}
	return u.root.Symlink(target, p)
}

// linkInside checks that a symbolic link at p to target points inside
// the root wherever the root is. Absolute targets are refused, and so
// is .. after a name: the name may be a link itself, and .. then climbs
// from where that leads, which a check of the text cannot follow. What
// is left, leading .. from the link's folder (a real folder, as nothing
// is written through links) then names, stays inside when the leading
// .. do.
func linkInside(p, target string) error {
	switch {
	case target == "":
		return errors.New("symbolic link with an empty target")
	case path.IsAbs(target):
		return fmt.Errorf("symbolic link to %q: absolute targets are refused, since they point outside the image's root on the host", target)
	}
	depth := 0
	if dir := path.Dir(p); dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	named := false
	for e := range strings.SplitSeq(target, "/") {
		switch e {
		case "", ".":
		case "..":
			if named {
				return fmt.Errorf("symbolic link to %q: .. after a name is refused (the name may be a link, and .. would climb from where it leads)", target)
			}
			if depth--; depth < 0 {
				return fmt.Errorf("symbolic link to %q climbs out of the image's root from %s", target, path.Dir(p))
			}
		default:
			named = true
		}
	}
	return nil
}

// hardlink links p to an entry already unpacked, which must be a regular
// file: a hard link to a symbolic link would move the link's target to
// another folder, where it may point elsewhere.
func (u *unpacker) hardlink(p, target string) error {
	t, err := entryName(target)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", target, err)
	}
	if err := u.parents(t, false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hard link to %q: no such entry is unpacked before it", target)
		}
		return fmt.Errorf("hard link to %q: %w", target, err)
	}
	fi, err := u.root.Lstat(t)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hard link to %q: no such entry is unpacked before it", target)
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("hard link to %q: the target is not a regular file", target)
	}
	if t == p {
		return nil
	}
	if err := u.replace(p); err != nil {
		return err
	}
	return u.root.Link(t, p)
}

// whiteout applies an OCI whiteout at p: .wh.<name> removes name as
// lower layers left it, .wh..wh..opq empties its folder of what lower
// layers put there. The whiteout itself is not written.
func (u *unpacker) whiteout(p string) error {
	dir, base := path.Dir(p), path.Base(p)
	if base == whiteoutOpaque {
		// The folder is part of this layer, so it is made if missing.
		if err := u.parents(p, true); err != nil {
			return err
		}
		u.layerSeen[dir] = true
		return u.prune(dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	hidden := strings.TrimPrefix(base, whiteoutPrefix)
	if hidden == "" || hidden == "." || hidden == ".." {
		return fmt.Errorf("the whiteout %q names no entry", base)
	}
	if err := u.parents(p, false); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	target := path.Join(dir, hidden)
	if u.layerSeen[target] {
		return nil
	}
	return u.replace(target)
}

// prune removes from dir every entry this layer has not written, and
// looks into the folders it has.
func (u *unpacker) prune(dir string) error {
	f, err := u.root.Open(dir)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if !u.layerSeen[p] {
			if err := u.replace(p); err != nil {
				return err
			}
			continue
		}
		if fi, err := u.root.Lstat(p); err == nil && fi.IsDir() {
			if err := u.prune(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish gives the folders their modes and times, deepest first, so a
// folder that loses its search bit does so after everything inside it.
func (u *unpacker) finish() error {
	dirs := make([]string, 0, len(u.dirs))
	for d := range u.dirs {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	for _, d := range dirs {
		m := u.dirs[d]
		if fi, err := u.root.Lstat(d); err != nil || !fi.IsDir() {
			continue
		}
		if !m.mtime.IsZero() {
			if err := u.root.Chtimes(d, m.mtime, m.mtime); err != nil {
				return err
			}
		}
		if err := u.root.Chmod(d, m.mode); err != nil {
			return err
		}
	}
	return u.root.Chmod(".", 0o755)
}

// blobReader hashes a layer's compressed bytes as they are read and, at
// their end, fails unless they hash to the layer's digest.
type blobReader struct {
	r    io.Reader
	h    hash.Hash
	want v1.Hash
	size int64 // from the manifest
	n    int64
	err  error // once set, every later read returns it
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	if err == nil {
		return n, nil
	}
	// go-containerregistry fails the last read of a blob whose digest
	// differs, with an error of its own; with every byte in hand, this
	// says plainly what happened.
	if err == io.EOF || b.n == b.size {
		if got := hex.EncodeToString(b.h.Sum(nil)); got != b.want.Hex {
			err = fmt.Errorf("%w: the registry served %d bytes whose digest is sha256:%s, not %s; its copy of the blob is corrupt or was replaced", errDigestMismatch, b.n, got, b.want)
		}
	}
	b.err = err
	return n, err
}

// verify reads the blob to its end and returns nil if it matches its
// digest.
func (b *blobReader) verify() error {
	_, err := io.Copy(io.Discard, b)
	return err
}

// layerSizeReader fails a layer's uncompressed stream once it is longer
// than max: counted as read, since a header's size may lie.
type layerSizeReader struct {
	r      io.Reader
	n, max int64
}

func (l *layerSizeReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, fmt.Errorf("the layer is larger than %d bytes uncompressed (the limit)", l.max)
	}
	if room := l.max - l.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, fmt.Errorf("the layer is larger than %d bytes uncompressed (the limit)", l.max)
	}
	return n, err
}
