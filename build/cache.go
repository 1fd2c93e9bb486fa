package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrycd/ferry/internal/filelock"
)

// cache is the build cache on disk:
//
//	blobs/sha256/<hex>   layers, configs and manifests, by digest
//	images/<key>.json    a build's content key → the manifest digest it made
//	layers/<key>.json    a layer's inputs (dependencies) → the layer
//	bases/<hash>.json    a base image tag → the digest it resolved to
//	tools/<hash>.json    an installer (path, size, mtime) → its version
//	locks/<key>          a build in progress (flock), so two builds of one
//	                     key, in one process or two, build it once
//
// Every file is written to a temporary name and renamed into place, so a
// crash leaves either the old state or the new one; blobs are named by
// their digest, so two writers of one blob write the same bytes.
type cache struct {
	dir string
}

func openCache(dir string) (*cache, error) {
	for _, sub := range []string{"blobs/sha256", "images", "layers", "bases", "tools", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("build cache: %w", err)
		}
	}
	return &cache{dir: dir}, nil
}

func (c *cache) blobPath(h v1.Hash) string {
	return filepath.Join(c.dir, "blobs", h.Algorithm, h.Hex)
}

func (c *cache) hasBlob(h v1.Hash) bool {
	_, err := os.Stat(c.blobPath(h))
	return err == nil
}

func (c *cache) openBlob(h v1.Hash) func() (io.ReadCloser, error) {
	p := c.blobPath(h)
	return func() (io.ReadCloser, error) {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s is missing from the build cache (%s); build again", h, p)
		}
		return f, err
	}
}

// writeLayer writes a layer's compressed bytes as a blob and returns it.
func (c *cache) writeLayer(s *layerSpec, t time.Time, mt types.MediaType) (*builtLayer, error) {
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "layer-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	digest, diffID, size, err := s.write(tmp, t)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), c.blobPath(digest)); err != nil {
		return nil, err
	}
	return c.layer(layerRecord{Digest: digest, DiffID: diffID, Size: size, MediaType: mt}), nil
}

// layerRecord is what the cache remembers of a layer.
type layerRecord struct {
	Digest    v1.Hash         `json:"digest"`
	DiffID    v1.Hash         `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

func (c *cache) layer(r layerRecord) *builtLayer {
	return &builtLayer{digest: r.Digest, diffID: r.DiffID, size: r.Size, mediaType: r.MediaType, open: c.openBlob(r.Digest)}
}

// imageRecord is what the cache remembers of a build.
type imageRecord struct {
	Key      string  `json:"key"`
	Digest   v1.Hash `json:"digest"`
	Runtime  string  `json:"runtime"`
	Revision string  `json:"revision,omitempty"`
}

func (c *cache) getJSON(kind, key string, v any) (bool, error) {
	data, err := os.ReadFile(filepath.Join(c.dir, kind, key+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		// A record that does not parse is treated as absent: the build
		// that wrote it is redone, which writes it again.
		return false, nil
	}
	return true, nil
}

func (c *cache) putJSON(kind, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeFile(filepath.Join(c.dir, kind, key+".json"), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeFile writes a file atomically: a temporary file, synced, renamed.
func (c *cache) writeFile(dst string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "w-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// lock takes the lock of a key, waiting for another build of it, in this
// process or another, to end, or ctx to be done.
func (c *cache) lock(ctx context.Context, key string) (unlock func(), err error) {
	return filelock.Lock(ctx, filepath.Join(c.dir, "locks", key))
}
