package build

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where ferry's own image keeps the executable, and who runs it: the
// same unprivileged user as a function's image, so the controller's
// Deployment can require runAsNonRoot without naming a user.
const (
	selfPath = "ferry"
	selfUser = imageUser
)

// ErrDynamic is an executable that needs the host's dynamic loader: it
// would not start in an image that holds nothing but itself.
var ErrDynamic = errors.New("the executable is dynamically linked")

// PushSelf pushes the running ferry executable as an image to repo
// (HOST[:PORT]/PATH) by digest and returns REPO@sha256:...; see
// PushExecutable.
func PushSelf(ctx context.Context, repo string, opts ...Option) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding ferry's own executable: %w", err)
	}
	return PushExecutable(ctx, exe, repo, opts...)
}

// PushExecutable pushes exe, a statically linked Linux executable, as an
// image to repo by digest and returns REPO@sha256:.... The image is one
// layer holding /ferry, with /ferry as its entrypoint, run as user 65532;
// every time in it is the epoch, so the same executable gives the same
// digest on every push from any machine. A dynamically linked executable
// is refused (ErrDynamic): scratch has no loader.
func PushExecutable(ctx context.Context, exe, repo string, opts ...Option) (string, error) {
	o, err := newOptions(opts...)
	if err != nil {
		return "", err
	}
	r, err := parseRepo(repo, o.insecure)
	if err != nil {
		return "", err
	}
	arch, err := staticArch(exe)
	if err != nil {
		return "", err
	}
	work, err := os.MkdirTemp("", "ferry-self-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	img, err := executableImage(exe, arch, work)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	ref := r.Digest(digest.String())
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	remoteOpts := append(o.remoteOptions(insecureHost(o, r.Registry)), remote.WithContext(pctx))
	if err := remote.Write(ref, img, remoteOpts...); err != nil {
		return "", registryError("pushing ferry's image", ref, err)
	}
	return ref.String(), nil
}

// executableImage makes the image of exe for arch, writing its layer
// under work.
func executableImage(exe, arch, work string) (v1.Image, error) {
	spec := newLayerSpec()
	if err := spec.addHostFile(selfPath, exe, true); err != nil {
		return nil, err
	}
	layer, err := writeTempLayer(work, spec, sharedLayerTime, types.OCILayer)
	if err != nil {
		return nil, fmt.Errorf("writing the layer of %s: %w", exe, err)
	}
	created := v1.Time{Time: sharedLayerTime}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: created, CreatedBy: "ferry image push", Comment: "ferry " + BuilderVersion},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Config.Entrypoint = []string{"/" + selfPath}
	cfg.Config.User = selfUser
	return mutate.ConfigFile(img, cfg)
}

// writeTempLayer writes s into a file under work, for a layer that is
// used once.
func writeTempLayer(work string, s *layerSpec, t time.Time, mt types.MediaType) (v1.Layer, error) {
	f, err := os.CreateTemp(work, "layer-*")
	if err != nil {
		return nil, err
	}
	digest, diffID, size, err := s.write(f, t)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	path := f.Name()
	return &builtLayer{digest: digest, diffID: diffID, size: size, mediaType: mt, open: func() (io.ReadCloser, error) { return os.Open(path) }}, nil
}

// elfArch maps an ELF machine to the image platform's architecture.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// staticArch checks that exe is a Linux executable that needs no dynamic
// loader (no PT_INTERP program header) and returns its architecture.
func staticArch(exe string) (string, error) {
	f, err := elf.Open(exe)
	if err != nil {
		return "", fmt.Errorf("%s is not a Linux executable (%w); ferry's image holds the Linux build of ferry: build it with GOOS=linux CGO_ENABLED=0 and push from that", exe, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s: %w (it needs the host's loader, which the image does not have); build ferry with CGO_ENABLED=0 (and without -race) and push from that build", exe, ErrDynamic)
		}
	}
	arch, ok := elfArch[f.Machine]
	if !ok {
		return "", fmt.Errorf("%s is built for %s, which ferry's image does not know; build ferry for amd64 or arm64", exe, f.Machine)
	}
	return arch, nil
}
