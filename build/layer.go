package build

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	kgzip "github.com/klauspost/compress/gzip"
)

// gzipLevel is pinned: the compressed bytes, and so the layer digest,
// depend on it, and on the compressor, klauspost/compress's gzip, pinned
// in go.mod (a new version of it means a new BuilderVersion). Level 1
// compresses a Go binary about four times faster than level 6 for a few
// percent more bytes, and that compressor twice as fast again as the
// standard library's: compressing is on the path of every edit.
const gzipLevel = gzip.BestSpeed

// maxLayerFile bounds one file put into a layer; a function's folder
// holding a file this large is almost certainly a mistake (a dataset, a
// build output), and it would be in every pull.
const maxLayerFile = 1 << 30

// layerFile is one entry of a layer to write.
type layerFile struct {
	// Path inside the image, without a leading slash.
	Path string
	// Dir marks a folder.
	Dir bool
	// Exec marks an executable file.
	Exec bool
	// Open returns the content, of Size bytes.
	Open func() (io.ReadCloser, error)
	Size int64
	// Sum, when set, is the sha256 (hex) the content must have: the build
	// hashed the file when it computed its key, and a file changed since
	// must not go into an image filed under that key.
	Sum string
}

// layerSpec is the content of one layer: files at paths, written in a
// form that depends on nothing but the paths, the bytes and the exec bit.
type layerSpec struct {
	files map[string]layerFile
}

func newLayerSpec() *layerSpec { return &layerSpec{files: map[string]layerFile{}} }

// add puts a file or folder at p, and every missing parent folder.
func (s *layerSpec) add(f layerFile) {
	f.Path = strings.TrimPrefix(path.Clean("/"+f.Path), "/")
	if f.Path == "" {
		return
	}
	for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
		if _, ok := s.files[dir]; !ok {
			s.files[dir] = layerFile{Path: dir, Dir: true}
		}
	}
	s.files[f.Path] = f
}

// addBytes puts data at p.
func (s *layerSpec) addBytes(p string, data []byte, exec bool) {
	s.add(layerFile{Path: p, Exec: exec, Size: int64(len(data)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(string(data))), nil
	}})
}

// addFS puts the entries of a source walk under prefix.
func (s *layerSpec) addFS(fsys fs.FS, prefix string, e sourceFile) {
	p := path.Join(prefix, e.Path)
	if e.Dir {
		s.add(layerFile{Path: p, Dir: true})
		return
	}
	real := e.Real
	s.add(layerFile{Path: p, Exec: e.Exec, Size: e.Size, Sum: e.Sum, Open: func() (io.ReadCloser, error) { return fsys.Open(real) }})
}

// addDir puts the host folder dir under prefix, for what a package
// manager installed. A symlink is replaced by what it points to when that
// is inside boundary (npm links a local "file:" dependency into
// node_modules), and refused when it is not, so that nothing from
// elsewhere on the build machine reaches the image and the image holds no
// link that an extractor could follow out of its root.
func (s *layerSpec) addDir(dir, prefix, boundary string) error {
	boundary, err := filepath.EvalSymlinks(boundary)
	if err != nil {
		return err
	}
	return s.addHostTree(dir, prefix, boundary, 0)
}

// maxLinkDepth bounds folders reached through links inside links.
const maxLinkDepth = 16

func (s *layerSpec) addHostTree(dir, prefix, boundary string, depth int) error {
	s.add(layerFile{Path: prefix, Dir: true})
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		target := path.Join(prefix, e.Name())
		real := p
		if e.Type()&fs.ModeSymlink != 0 {
			r, err := filepath.EvalSymlinks(p)
			if err != nil {
				// why not "p: err": err names the element that failed,
				// often p itself.
				return fmt.Errorf("the link %s leads nowhere ferry can read; remove it or make it point inside the function's folder: %w", p, err)
			}
			if r != boundary && !strings.HasPrefix(r, boundary+string(filepath.Separator)) {
				return fmt.Errorf("%s links to %s, outside the function's folder; ferry will not copy it into the image", p, r)
			}
			real = r
		}
		info, err := os.Stat(real)
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			d := depth
			if real != p {
				if d++; d > maxLinkDepth {
					return fmt.Errorf("%s: links nested more than %d deep (a loop?)", p, maxLinkDepth)
				}
			}
			if err := s.addHostTree(real, target, boundary, d); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			file := real
			s.add(layerFile{Path: target, Exec: info.Mode()&0o111 != 0, Size: info.Size(), Open: func() (io.ReadCloser, error) { return os.Open(file) }})
		}
	}
	return nil
}

// builtLayer is a layer written to the cache: its compressed bytes are a
// blob there, and its digests are known without reading them again.
type builtLayer struct {
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
	open           func() (io.ReadCloser, error)
}

var _ v1.Layer = (*builtLayer)(nil)

func (l *builtLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *builtLayer) DiffID() (v1.Hash, error)             { return l.diffID, nil }
func (l *builtLayer) Size() (int64, error)                 { return l.size, nil }
func (l *builtLayer) MediaType() (types.MediaType, error)  { return l.mediaType, nil }
func (l *builtLayer) Compressed() (io.ReadCloser, error)   { return l.open() }
func (l *builtLayer) Uncompressed() (io.ReadCloser, error) { return gunzip(l.open) }

func gunzip(open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, rc}, nil
}

// write writes the layer as a reproducible gzipped tar into w and returns
// the digests of the compressed and uncompressed streams.
//
// Entries are sorted by path; every entry has mtime t, uid and gid 0, no
// owner names, mode 0755 for folders and executables and 0644 for other
// files; the tar is PAX with no access or change times, and the gzip header
// carries no name and no time. Nothing about the machine or the checkout
// reaches the bytes.
func (s *layerSpec) write(w io.Writer, t time.Time) (digest, diffID v1.Hash, size int64, err error) {
	zsum := sha256.New()
	counter := &countWriter{w: io.MultiWriter(w, zsum)}
	zw, err := kgzip.NewWriterLevel(counter, gzipLevel)
	if err != nil {
		return v1.Hash{}, v1.Hash{}, 0, err
	}
	// No time in the gzip header: the field is zero only when set to the
	// epoch (this compressor writes the zero time.Time as a date in 2042).
	zw.ModTime = time.Unix(0, 0)
	tsum := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, tsum))
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	t = t.UTC().Truncate(time.Second)
	for _, p := range paths {
		f := s.files[p]
		if err := writeEntry(tw, f, t); err != nil {
			return v1.Hash{}, v1.Hash{}, 0, fmt.Errorf("%s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return v1.Hash{}, v1.Hash{}, 0, err
	}
	if err := zw.Close(); err != nil {
		return v1.Hash{}, v1.Hash{}, 0, err
	}
	return hashOf(zsum), hashOf(tsum), counter.n, nil
}

func writeEntry(tw *tar.Writer, f layerFile, t time.Time) error {
	hdr := &tar.Header{
		Name:    f.Path,
		ModTime: t,
		Mode:    0o644,
		Format:  tar.FormatPAX,
	}
	switch {
	case f.Dir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		hdr.Mode = 0o755
		return tw.WriteHeader(hdr)
	case f.Exec:
		hdr.Mode = 0o755
	}
	if f.Size > maxLayerFile {
		return fmt.Errorf("is %d bytes, more than the %d a function's file may have; keep data out of the function's folder", f.Size, maxLayerFile)
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = f.Size
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, sum), io.LimitReader(rc, f.Size+1))
	if err != nil {
		return err
	}
	if n != f.Size || (f.Sum != "" && fmt.Sprintf("%x", sum.Sum(nil)) != f.Sum) {
		return fmt.Errorf("changed while the build read it; build again")
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

// addHostFile puts the host file src at p.
func (s *layerSpec) addHostFile(p, src string, exec bool) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	s.add(layerFile{Path: p, Exec: exec, Size: info.Size(), Open: func() (io.ReadCloser, error) { return os.Open(src) }})
	return nil
}
