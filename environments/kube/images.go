package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// imageChecks is how many images' manifests are read at once.
const imageChecks = 4

// checkImages reads each function's image manifest from the registry and
// refuses those build.CheckPortable refuses: an image built on scratch
// for Python or Node.js runs only with the host's interpreter, which no
// pod has. One error per function.
func (t *Target) checkImages(ctx context.Context, fns []*v1alpha1.Function) []error {
	errs := make([]error, len(fns))
	var g errgroup.Group
	g.SetLimit(imageChecks)
	for i, f := range fns {
		g.Go(func() error {
			ann, err := t.imageAnnotations(ctx, f.Spec.Image)
			if err != nil {
				errs[i] = fmt.Errorf("function %s: %w", f.Name, err)
				return nil
			}
			errs[i] = build.CheckPortable(f.Name, ann)
			return nil
		})
	}
	_ = g.Wait()
	return errs
}

// imageAnnotations are the annotations of the image manifest (or index)
// ref names by digest.
func (t *Target) imageAnnotations(ctx context.Context, ref string) (map[string]string, error) {
	d, err := name.NewDigest(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q is not pinned by digest (HOST/REPO@sha256:...): %w", ref, err)
	}
	desc, err := remote.Get(d,
		remote.WithContext(ctx),
		remote.WithTransport(build.RegistryTransport(t.cfg.RegistryTimeout)),
		remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w; the registry must answer ferry as it answers the cluster", ref, err)
	}
	// Both an image manifest and an index keep them at the top level.
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("image %s: its manifest does not parse: %w", ref, err)
	}
	return m.Annotations, nil
}
