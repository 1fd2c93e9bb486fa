package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// baseImage is a runtime's base, pinned by digest. Only the digest is
// needed to plan a build (and to find it in the cache), so the image
// itself is fetched when a build actually runs: a cached build needs
// nothing from the base's registry.
type baseImage struct {
	ref    string // as configured; Scratch for none
	digest name.Digest
	pull   func(context.Context) (v1.Image, error)
}

func (b *baseImage) scratch() bool { return b.ref == Scratch }

func (b *baseImage) digestString() string {
	if b.scratch() {
		return Scratch
	}
	return b.digest.String()
}

// image fetches the base, or returns nil for scratch.
func (b *baseImage) image(ctx context.Context) (v1.Image, error) {
	if b.scratch() {
		return nil, nil
	}
	return b.pull(ctx)
}

// baseRecord is a tag resolved to a digest, remembered in the cache.
type baseRecord struct {
	Ref      string `json:"ref"`
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// resolveBase pins the runtime's base image. A tag is resolved to the
// digest of the image for the build's platform once and remembered, so
// every later build, online or not, uses the same base until the cache is
// cleared or bases are refreshed; a digest is used as it is.
func (b *builder) resolveBase(ctx context.Context, rt string) (*baseImage, error) {
	ref := b.opts.bases[rt]
	if ref == Scratch || ref == "" {
		return &baseImage{ref: Scratch}, nil
	}
	b.baseMu.Lock()
	defer b.baseMu.Unlock()
	if got, ok := b.bases[ref]; ok {
		return got, nil
	}
	bi, err := b.pinBase(ctx, rt, ref)
	if err != nil {
		return nil, err
	}
	if b.bases == nil {
		b.bases = map[string]*baseImage{}
	}
	b.bases[ref] = bi
	return bi, nil
}

func (b *builder) pinBase(ctx context.Context, rt, ref string) (*baseImage, error) {
	fail := func(err error) error {
		return fmt.Errorf("base image %s for %s: %w; build with --base %s=%s to use no base (the image then runs only on the embedded target)", ref, rt, err, rt, Scratch)
	}
	parsed, err := name.ParseReference(ref, b.nameOptions(ref)...)
	if err != nil {
		return nil, fail(err)
	}
	opts := append(b.remote, remote.WithContext(ctx))
	var pinned name.Digest
	if d, ok := parsed.(name.Digest); ok {
		pinned = d
	} else {
		sum := sha256.Sum256([]byte(parsed.Name() + " " + b.opts.platform.String()))
		key := hex.EncodeToString(sum[:])
		var rec baseRecord
		ok, err := b.cache.getJSON("bases", key, &rec)
		if err != nil {
			return nil, err
		}
		if ok && !b.opts.refreshBase {
			pinned, err = name.NewDigest(rec.Digest, b.nameOptions(rec.Digest)...)
			if err != nil {
				return nil, fail(err)
			}
		} else {
			img, err := remote.Image(parsed, opts...)
			if err != nil {
				return nil, fail(registryError("resolving", parsed, err))
			}
			h, err := img.Digest()
			if err != nil {
				return nil, fail(err)
			}
			pinned = parsed.Context().Digest(h.String())
			if err := b.cache.putJSON("bases", key, baseRecord{Ref: parsed.Name(), Platform: b.opts.platform.String(), Digest: pinned.String()}); err != nil {
				return nil, err
			}
		}
	}
	pull := func(ctx context.Context) (v1.Image, error) {
		img, err := remote.Image(pinned, append(b.remote, remote.WithContext(ctx))...)
		if err != nil {
			return nil, fail(registryError("pulling", pinned, err))
		}
		return img, nil
	}
	return &baseImage{ref: parsed.Name(), digest: pinned, pull: pull}, nil
}
