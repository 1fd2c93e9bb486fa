package promote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// What a rollback may deploy: only what ferry built or was told to
// allow. An image is admitted when ferry recorded a build of it for the
// source of the release it goes into (the builds of the store), or when
// its repository is under a prefix of Config.AllowedImages. A release
// the store does not hold comes only from ferry's own release repository
// or from under a prefix, and every image it names is admitted as above.
// The check is made before anything is pulled, so a refused reference
// costs no request to its registry.

// ImagePrefix is one entry of Config.AllowedImages: a registry
// (HOST[:PORT]) and optionally a repository path under it. It matches on
// whole path segments, so reg.io/team allows reg.io/team/app but not
// reg.io/teamevil/app.
type ImagePrefix struct {
	registry string // lower case; docker.io is index.docker.io
	path     string // "" for the whole registry; no leading or trailing /
}

// ParseImagePrefix reads an allowedImages entry such as
// registry.example.com/team/ (the trailing / is optional).
func ParseImagePrefix(s string) (ImagePrefix, error) {
	trimmed := strings.TrimSuffix(s, "/")
	switch {
	case trimmed == "":
		return ImagePrefix{}, errors.New("an empty prefix would allow every image; name a registry and repository, e.g. registry.example.com/team/")
	case strings.ContainsAny(trimmed, "@*? \t"):
		return ImagePrefix{}, fmt.Errorf("%q: a prefix is a registry and repository path, without a tag, digest or wildcard (e.g. registry.example.com/team/)", s)
	}
	host, path, _ := strings.Cut(trimmed, "/")
	if !hostRE.MatchString(host) || (host != "localhost" && !strings.ContainsAny(host, ".:")) {
		return ImagePrefix{}, fmt.Errorf("%q does not start with a registry host, HOST or HOST:PORT (e.g. registry.example.com/team/; Docker Hub is docker.io/library/…)", s)
	}
	reg, err := name.NewRegistry(strings.ToLower(host))
	if err != nil {
		return ImagePrefix{}, fmt.Errorf("%q: %v", s, err)
	}
	if path != "" {
		for seg := range strings.SplitSeq(path, "/") {
			// why: a tag (":v1"), an empty, "." or ".." segment is no
			// repository path, and would match nothing or too much.
			if !segmentRE.MatchString(seg) {
				return ImagePrefix{}, fmt.Errorf("%q: %q is not a repository path (lower-case letters and digits, separated by . _ - within a segment and / between them)", s, path)
			}
		}
	}
	return ImagePrefix{registry: reg.RegistryStr(), path: path}, nil
}

var (
	// hostRE is a registry host with an optional port: DNS labels, or
	// an IPv4 address.
	hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[0-9]{1,5})?$`)
	// segmentRE is one path component of a repository name, as the OCI
	// distribution specification defines it.
	segmentRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)
)

// String is the prefix as written in the configuration, normalised.
func (p ImagePrefix) String() string {
	if p.path == "" {
		return p.registry + "/"
	}
	return p.registry + "/" + p.path + "/"
}

// Allows reports whether the repository of ref is under p, on whole
// path segments.
func (p ImagePrefix) Allows(ref name.Reference) bool {
	repo := ref.Context()
	if strings.ToLower(repo.RegistryStr()) != p.registry {
		return false
	}
	path := repo.RepositoryStr()
	// why: a registry may clean "team/../evil" into "evil" (and follow
	// "team//x" elsewhere); only a path of proper segments is matched.
	for _, seg := range strings.Split(path, "/") {
		if !segmentRE.MatchString(seg) {
			return false
		}
	}
	return p.path == "" || path == p.path || strings.HasPrefix(path, p.path+"/")
}

// ParseImagePrefixes reads Config.AllowedImages; the error names each
// bad entry.
func ParseImagePrefixes(list []string) ([]ImagePrefix, error) {
	var out []ImagePrefix
	var errs []error
	for i, s := range list {
		p, err := ParseImagePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowedImages[%d]: %w", i, err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// pinnedImage parses an image reference that must carry a digest: a tag
// can move, so what it names is never admitted.
func pinnedImage(ref string) (name.Digest, error) {
	d, err := name.NewDigest(ref)
	if err != nil || !digestRE.MatchString(d.DigestStr()) {
		return name.Digest{}, invalid("%q is not an image by digest; give HOST/REPO@sha256:<64 hex digits> (ferry runs images by digest only, since a tag can move)", ref)
	}
	return d, nil
}

// allowedImage returns the prefix of AllowedImages ref is under, if any.
func (e *engine) allowedImage(ref name.Reference) (ImagePrefix, bool) {
	for _, p := range e.allow {
		if p.Allows(ref) {
			return p, true
		}
	}
	return ImagePrefix{}, false
}

// builtFor reports whether ferry recorded a build of image d for source:
// the same digest in the same repository.
func (e *engine) builtFor(ctx context.Context, source string, d name.Digest) (bool, error) {
	if source == "" {
		return false, nil
	}
	builds, err := e.st.BuildsWithDigest(ctx, source, d.DigestStr())
	if err != nil {
		return false, err
	}
	for _, b := range builds {
		bd, err := name.NewDigest(b.Image)
		if err == nil && sameRepository(bd.Context(), d.Context()) {
			return true, nil
		}
	}
	return false, nil
}

func sameRepository(a, b name.Repository) bool {
	return strings.EqualFold(a.RegistryStr(), b.RegistryStr()) && a.RepositoryStr() == b.RepositoryStr()
}

// admitImage refuses an image that ferry did not build for source and
// that no prefix of AllowedImages covers; what it returns says how to
// get it admitted.
func (e *engine) admitImage(ctx context.Context, source, image string) error {
	d, err := pinnedImage(image)
	if err != nil {
		return err
	}
	if ok, err := e.builtFor(ctx, source, d); err != nil || ok {
		return err
	}
	if _, ok := e.allowedImage(d); ok {
		return nil
	}
	if source == "" {
		source = "(none recorded)"
	}
	return forbidden("image %s was never built by ferry for source %s and is not under allowedImages; build it from a commit of the source, or add its repository to allowedImages in ferry serve's configuration", image, source)
}

// admitSet admits every function image of a release of source.
func (e *engine) admitSet(ctx context.Context, id, source string, set *manifests.Set) error {
	for _, f := range set.Functions {
		if err := e.admitImage(ctx, source, f.Spec.Image); err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				return &Error{Code: pe.Code, Message: fmt.Sprintf("release %s, function %s: %s", store.Short(id), f.Name, pe.Message)}
			}
			return err
		}
	}
	return nil
}

// admitReleaseRef refuses to pull a release from anywhere but ferry's own
// release repository (Config.Repo) or a repository under AllowedImages.
func (e *engine) admitReleaseRef(ref string) error {
	d, err := name.NewDigest(ref)
	if err != nil || !digestRE.MatchString(d.DigestStr()) {
		return invalid("%q is not a release reference; give sha256:<64 hex digits> or REPO@sha256:…", ref)
	}
	if e.cfg.Repo != "" {
		if own, err := name.NewRepository(e.cfg.Repo); err == nil && sameRepository(own, d.Context()) {
			return nil
		}
	}
	if _, ok := e.allowedImage(d); ok {
		return nil
	}
	return forbidden("release %s is not in ferry's release repository %s and its repository is not under allowedImages; give a release id ferry made (ferry releases lists them), or add its repository to allowedImages in ferry serve's configuration", ref, cmp.Or(e.cfg.Repo, "(none)"))
}
