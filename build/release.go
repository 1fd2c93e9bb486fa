package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferrycd/ferry/manifests"
)

// Media types of ferry's release artifact. The manifest is an OCI image
// manifest whose artifactType and config say it is a ferry release, so a
// registry stores it as any other artifact and no runtime mistakes it for
// an image it could run.
const (
	// ReleaseArtifactType is the artifact's type.
	ReleaseArtifactType = "application/vnd.ferry.release.v1"
	// ReleaseConfigMediaType is the config: a JSON summary of the release.
	ReleaseConfigMediaType types.MediaType = "application/vnd.ferry.release.config.v1+json"
	// ReleaseManifestMediaType is the one layer: the rendered manifest.
	ReleaseManifestMediaType types.MediaType = "application/vnd.ferry.release.manifest.v1+yaml"
)

// Release is an immutable bundle: the canonical rendered manifest of a
// repository at a commit with every function's image pinned by digest.
// Its ID is the digest of its artifact in the registry.
type Release struct {
	// Ref is REPO@sha256:..., where the artifact is.
	Ref string
	// Digest is the release id.
	Digest v1.Hash
	// Manifest is the rendered manifest, as Render prints it.
	Manifest []byte
	// Set is Manifest loaded.
	Set *manifests.Set
	// SourceURL and Revision say where the release was built from.
	SourceURL, Revision string
}

// releaseConfig is the artifact's config: what a registry browser shows
// without reading the layer.
type releaseConfig struct {
	Source    string            `json:"source,omitempty"`
	Revision  string            `json:"revision,omitempty"`
	Functions map[string]string `json:"functions"`
}

// maxReleaseManifest bounds the rendered manifest a pull accepts: the
// loader's own limit on one file.
const maxReleaseManifest = manifests.MaxFileSize

// Release implements Builder: it builds every function, at most jobs at
// once, and pushes the release only when every build succeeded. Every
// function is built even when one fails, so one run reports every
// failure.
func (b *builder) Release(ctx context.Context, src fs.FS, set *manifests.Set, info Info) (*ReleaseResult, error) {
	images := make([]*Image, len(set.Functions))
	errs := make([]error, len(set.Functions))
	var g errgroup.Group
	g.SetLimit(b.opts.jobs)
	for i, f := range set.Functions {
		g.Go(func() error {
			images[i], errs[i] = b.Build(ctx, src, f, info)
			return nil
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w\nno release was pushed", err)
	}
	pinned := map[string]string{}
	for _, img := range images {
		pinned[img.Function] = img.Ref
	}
	rel, err := pushRelease(ctx, b.repo, set, pinned, info, b.remote)
	if err != nil {
		return nil, err
	}
	return &ReleaseResult{Images: images, Release: rel}, nil
}

// PushRelease renders set with the images pinned and pushes it to repo as
// a release artifact. The artifact's bytes depend only on the rendered
// manifest, the source URL and the revision, so pushing the same release
// twice gives the same id.
func PushRelease(ctx context.Context, repo string, set *manifests.Set, images map[string]string, info Info, opts ...Option) (*Release, error) {
	o, err := newOptions(opts...)
	if err != nil {
		return nil, err
	}
	r, err := parseRepo(repo, o.insecure)
	if err != nil {
		return nil, err
	}
	return pushRelease(ctx, r, set, images, info, o.remoteOptions(insecureHost(o, r.Registry)))
}

func pushRelease(ctx context.Context, repo name.Repository, set *manifests.Set, images map[string]string, info Info, opts []remote.Option) (*Release, error) {
	pinned, err := set.Pin(images)
	if err != nil {
		return nil, err
	}
	rendered, err := manifests.Render(pinned)
	if err != nil {
		return nil, err
	}
	// Loading what was rendered proves the release is deployable from its
	// bytes alone before anyone relies on it.
	loaded, err := manifests.LoadRelease(ctx, rendered)
	if err != nil {
		return nil, fmt.Errorf("the release does not load back: %w", err)
	}
	cfg, err := json.Marshal(releaseConfig{Source: info.SourceURL, Revision: info.Revision, Functions: images})
	if err != nil {
		return nil, err
	}
	layer := static.NewLayer(rendered, ReleaseManifestMediaType)
	config := static.NewLayer(cfg, ReleaseConfigMediaType)
	ld, err := descriptorOf(layer, ReleaseManifestMediaType)
	if err != nil {
		return nil, err
	}
	ld.Annotations = map[string]string{"org.opencontainers.image.title": manifests.ReleaseFile}
	cd, err := descriptorOf(config, ReleaseConfigMediaType)
	if err != nil {
		return nil, err
	}
	ann := map[string]string{}
	if info.SourceURL != "" {
		ann["org.opencontainers.image.source"] = info.SourceURL
	}
	if info.Revision != "" {
		ann["org.opencontainers.image.revision"] = info.Revision
	}
	if len(ann) == 0 {
		ann = nil
	}
	m := releaseManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ReleaseArtifactType,
		Config:        cd,
		Layers:        []v1.Descriptor{ld},
		Annotations:   ann,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	digest, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	ref := repo.Digest(digest.String())
	// One pusher for the three writes, so the registry is pinged and
	// authenticated once, and the two blobs go up side by side: a release
	// is pushed after every build, so its round trips are on the path of
	// every edit.
	pusher, err := remote.NewPusher(opts...)
	if err != nil {
		return nil, err
	}
	var g errgroup.Group
	for _, l := range []v1.Layer{config, layer} {
		g.Go(func() error { return pusher.Upload(ctx, repo, l) })
	}
	if err := g.Wait(); err != nil {
		return nil, registryError("pushing the release to", repo, err)
	}
	if err := pusher.Put(ctx, ref, rawManifest{raw: raw, mediaType: types.OCIManifestSchema1}); err != nil {
		return nil, registryError("pushing the release", ref, err)
	}
	return &Release{Ref: ref.String(), Digest: digest, Manifest: rendered, Set: loaded, SourceURL: info.SourceURL, Revision: info.Revision}, nil
}

// PullRelease fetches a release by reference (REPO@sha256:... or a tag),
// checks that it is a ferry release and that its bytes match their
// digests, and loads its manifest: everything needed to deploy it.
func PullRelease(ctx context.Context, ref string, opts ...Option) (*Release, error) {
	o, err := newOptions(opts...)
	if err != nil {
		return nil, err
	}
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("release %q: %w; give it as HOST:PORT/REPO@sha256:<digest>", ref, err)
	}
	// why: the registry timeout bounds the start of each answer only, so a
	// registry that trickles a body would hold the pull (and a deploy, or
	// ferry's start, waiting on it) for good. A release is small, so its
	// whole pull is bounded by its answers' bounds and retries.
	pctx, cancel := context.WithTimeout(ctx, o.pullBound())
	defer cancel()
	ctxOpts := append(o.remoteOptions(insecureHost(o, r.Context().Registry)), remote.WithContext(pctx))
	desc, err := remote.Get(r, ctxOpts...)
	if err != nil {
		return nil, registryError("pulling the release", r, err)
	}
	if d, ok := r.(name.Digest); ok && d.DigestStr() != desc.Digest.String() {
		return nil, fmt.Errorf("release %s: the registry answered %s for it; the registry is not to be trusted", ref, desc.Digest)
	}
	var m releaseManifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("release %s: its manifest does not parse: %w", ref, err)
	}
	if m.ArtifactType != ReleaseArtifactType || m.Config.MediaType != ReleaseConfigMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != ReleaseManifestMediaType {
		return nil, fmt.Errorf("release %s: not a ferry release (artifact type %q, config %q); give a release digest that ferry build printed", ref, m.ArtifactType, m.Config.MediaType)
	}
	if m.Layers[0].Size > maxReleaseManifest {
		return nil, fmt.Errorf("release %s: its manifest is %d bytes, more than %d", ref, m.Layers[0].Size, maxReleaseManifest)
	}
	l, err := remote.Layer(r.Context().Digest(m.Layers[0].Digest.String()), ctxOpts...)
	if err != nil {
		return nil, registryError("pulling the release", r, err)
	}
	rendered, err := readVerified(l, m.Layers[0])
	if err != nil {
		if pctx.Err() != nil && ctx.Err() == nil {
			return nil, registryError("pulling the release", r, pctx.Err())
		}
		return nil, fmt.Errorf("release %s: %w", ref, err)
	}
	cancel()
	set, err := manifests.LoadRelease(ctx, rendered)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", ref, err)
	}
	rel := &Release{Ref: r.Context().Digest(desc.Digest.String()).String(), Digest: desc.Digest, Manifest: rendered, Set: set}
	rel.SourceURL = m.Annotations["org.opencontainers.image.source"]
	rel.Revision = m.Annotations["org.opencontainers.image.revision"]
	return rel, nil
}

// readVerified reads a blob and checks it against its descriptor.
func readVerified(l v1.Layer, d v1.Descriptor) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, err
	}
	got, _, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != d.Size || got != d.Digest {
		return nil, fmt.Errorf("blob %s does not match its digest (got %s, %d bytes)", d.Digest, got, len(data))
	}
	return data, nil
}

// releaseManifest is an OCI image manifest with the artifactType field of
// image-spec 1.1.
type releaseManifest struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }

func descriptorOf(l v1.Layer, mt types.MediaType) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	n, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}, nil
}

// FunctionImages lists a release's images by function, sorted by name.
func (r *Release) FunctionImages() []FunctionImage {
	var out []FunctionImage
	for _, f := range r.Set.Functions {
		out = append(out, FunctionImage{Function: f.Name, Image: f.Spec.Image})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out
}

// FunctionImage is one function's pinned image.
type FunctionImage struct {
	Function, Image string
}
