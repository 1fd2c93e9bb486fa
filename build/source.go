package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/ferrycd/ferry/manifests"
)

// sourceFile is one entry of a function's source, as a build sees it.
type sourceFile struct {
	// Path is relative to the walked folder.
	Path string
	// Real is where to read it in the repository.
	Real string
	Dir  bool
	Exec bool
	Size int64
	// Sum is the sha256 of the content, hex.
	Sum string
}

// readSource walks dir in the repository and hashes every file. skip, if
// set, leaves out an entry (and, for a folder, what it holds).
func readSource(ctx context.Context, fsys fs.FS, dir string, skip func(rel string, isDir bool) bool) ([]sourceFile, error) {
	var out []sourceFile
	var skipped []string
	err := manifests.WalkSource(ctx, fsys, dir, func(e manifests.SourceEntry) error {
		for _, s := range skipped {
			if strings.HasPrefix(e.Path, s+"/") {
				return nil
			}
		}
		if e.Path != "." && skip != nil && skip(e.Path, e.Info.IsDir()) {
			if e.Info.IsDir() {
				skipped = append(skipped, e.Path)
			}
			return nil
		}
		f := sourceFile{Path: e.Path, Real: e.Real, Dir: e.Info.IsDir()}
		if !f.Dir {
			f.Exec = e.Info.Mode()&0o111 != 0
			sum, n, err := hashFile(fsys, e.Real)
			if err != nil {
				return err
			}
			f.Sum, f.Size = sum, n
		}
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func hashFile(fsys fs.FS, name string) (string, int64, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, maxLayerFile+1))
	if err != nil {
		return "", 0, err
	}
	if n > maxLayerFile {
		return "", 0, fmt.Errorf("%s is larger than %d bytes; keep data out of the function's folder", name, int64(maxLayerFile))
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// findFile returns the source entry at rel, if there is one.
func findFile(files []sourceFile, rel string) (sourceFile, bool) {
	i := sort.Search(len(files), func(i int) bool { return files[i].Path >= rel })
	if i < len(files) && files[i].Path == rel && !files[i].Dir {
		return files[i], true
	}
	return sourceFile{}, false
}

// keyBuilder accumulates a content key: each input on its own line, in a
// fixed order, so the key is a hash of a text anyone can reconstruct.
type keyBuilder struct {
	lines []string
}

func (k *keyBuilder) add(format string, args ...any) {
	k.lines = append(k.lines, fmt.Sprintf(format, args...))
}

func (k *keyBuilder) files(label string, files []sourceFile) {
	for _, f := range files {
		switch {
		case f.Dir:
			k.add("%s dir %q", label, f.Path)
		default:
			mode := "0644"
			if f.Exec {
				mode = "0755"
			}
			k.add("%s file %s %s %q", label, mode, f.Sum, f.Path)
		}
	}
}

func (k *keyBuilder) sum() string {
	h := sha256.New()
	for _, l := range k.lines {
		io.WriteString(h, l)
		io.WriteString(h, "\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// goModuleRoot finds the folder of the go.mod that holds dir, walking up
// to the repository root; ok is false when there is none.
func goModuleRoot(fsys fs.FS, dir string) (string, bool, error) {
	for d := path.Clean(dir); ; d = path.Dir(d) {
		info, err := fs.Stat(fsys, path.Join(d, "go.mod"))
		switch {
		case err == nil && info.Mode().IsRegular():
			return d, true, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return "", false, err
		}
		if d == "." {
			return "", false, nil
		}
	}
}
