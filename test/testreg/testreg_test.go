package testreg_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ferrycd/ferry/test/testreg"
)

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ref is img's reference by digest in repository repo on addr.
func ref(t *testing.T, addr, repo string, img v1.Image) name.Digest {
	t.Helper()
	dig, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.NewDigest(fmt.Sprintf("%s/%s@%s", addr, repo, dig))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushPull pushes a random image to addr and pulls it back whole.
func pushPull(t *testing.T, addr string, opts ...remote.Option) name.Digest {
	t.Helper()
	img := randomImage(t)
	r := ref(t, addr, "testreg/image", img)
	opts = append(opts, remote.WithContext(t.Context()))
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", r, err)
	}
	pull(t, r, opts...)
	return r
}

func pull(t *testing.T, r name.Digest, opts ...remote.Option) {
	t.Helper()
	got, err := remote.Image(r, append(opts, remote.WithContext(t.Context()))...)
	if err != nil {
		t.Fatalf("pull %s: %v", r, err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("pulled %s is not a valid image: %v", r, err)
	}
}

// rehome is r on another registry address.
func rehome(t *testing.T, r name.Digest, addr string) name.Digest {
	t.Helper()
	moved, err := name.NewDigest(addr + "/" + r.RepositoryStr() + "@" + r.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	return moved
}

func TestEmbedded(t *testing.T) {
	s := testreg.Embedded(t, "")
	r := pushPull(t, s.Addr)

	s.Restart()
	pull(t, rehome(t, r, s.Addr))
}

func TestProcess(t *testing.T) {
	s := testreg.Process(t, testreg.ProcessOptions{})
	r := pushPull(t, s.Addr)

	s.Restart()
	pull(t, rehome(t, r, s.Addr))

	s.Stop()
	s.Stop() // a second Stop does nothing
	if resp, err := http.Get("http://" + s.Addr + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("registry still answers after Stop: %s", resp.Status)
	}
}

func TestEmbeddedStop(t *testing.T) {
	s := testreg.Embedded(t, "")
	s.Stop()
	if resp, err := http.Get("http://" + s.Addr + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("registry still answers after Stop: %s", resp.Status)
	}
}

// unauthorized fails the test unless err is the registry's 401. A HEAD
// request's 401 has no body; a GET's also carries the code UNAUTHORIZED.
func unauthorized(t *testing.T, err error, wantCode bool) {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %v, want 401 Unauthorized", err)
	}
	if !wantCode {
		return
	}
	for _, d := range terr.Errors {
		if d.Code == transport.UnauthorizedErrorCode {
			return
		}
	}
	t.Errorf("401 %q does not carry the code %s", err, transport.UnauthorizedErrorCode)
}

var user = testreg.Credentials{Username: "ferry", Password: "correct horse battery staple"}

func TestProcessHtpasswd(t *testing.T) {
	s := testreg.Process(t, testreg.ProcessOptions{Htpasswd: user})
	img := randomImage(t)
	r := ref(t, s.Addr, "testreg/private", img)

	err := remote.Write(r, img, remote.WithContext(t.Context()))
	unauthorized(t, err, false)

	auth := authn.FromConfig(authn.AuthConfig{Username: user.Username, Password: user.Password})
	pushed := pushPull(t, s.Addr, remote.WithAuth(auth))

	_, err = remote.Get(pushed, remote.WithContext(t.Context()))
	unauthorized(t, err, true)
}

func TestProcessDockerConfig(t *testing.T) {
	s := testreg.Process(t, testreg.ProcessOptions{Htpasswd: user})
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	writeDockerConfig := func(password string) {
		t.Helper()
		auth := base64.StdEncoding.EncodeToString([]byte(user.Username + ":" + password))
		b, err := json.Marshal(map[string]any{"auths": map[string]any{s.Addr: map[string]string{"auth": auth}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keychain := remote.WithAuthFromKeychain(authn.DefaultKeychain)

	writeDockerConfig(user.Password)
	pushPull(t, s.Addr, keychain)

	writeDockerConfig("wrong " + user.Password)
	img := randomImage(t)
	err := remote.Write(ref(t, s.Addr, "testreg/private", img), img, keychain, remote.WithContext(t.Context()))
	unauthorized(t, err, false)
}
