package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pollInterval is how often the registry is asked whether it is up: short
// against a start that takes a fraction of a second.
const pollInterval = 50 * time.Millisecond

func main() {
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for the registry to answer GET /v2/")
	arch := flag.String("arch", runtime.GOARCH, "architecture written in the image's config")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: emptybase [-wait D] [-arch ARCH] HOST:PORT/REPO:TAG")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	out, err := run(context.Background(), flag.Arg(0), *arch, *wait)
	if err != nil {
		fmt.Fprintln(os.Stderr, "emptybase:", err)
		os.Exit(1)
	}
	fmt.Println(out)
}

func run(ctx context.Context, target, arch string, wait time.Duration) (string, error) {
	ref, err := name.NewTag(target, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("%q is not an image tag HOST:PORT/REPO:TAG: %w", target, err)
	}
	if err := waitForRegistry(ctx, ref.Context().Registry, wait); err != nil {
		return "", err
	}
	img, err := emptyImage(arch)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing the empty base to %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(digest.String()).String(), nil
}

// emptyImage is an OCI image with no layers whose config names linux/arch.
func emptyImage(arch string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	return mutate.ConfigFile(img, cfg)
}

// waitForRegistry asks reg for GET /v2/ until it answers 200 or wait has
// passed, and says which when it gives up.
func waitForRegistry(ctx context.Context, reg name.Registry, wait time.Duration) error {
	url := fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr())
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(wait)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("the registry at %s did not answer GET /v2/ within %s (last: %w)", reg.RegistryStr(), wait, last)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(pollInterval):
		}
	}
}
