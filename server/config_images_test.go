package server

import (
	"strings"
	"testing"
)

// TestConfigAllowedImages: allowedImages takes registries and repository
// paths; a tag, a digest, a wildcard, a path without a registry and a
// duplicate are each refused, naming the entry.
func TestConfigAllowedImages(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
allowedImages:
- registry.example.com/team/
- 127.0.0.1:5000/vendor
- docker.io/library
`), "/srv/ferry", "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AllowedImages) != 3 || cfg.AllowedImages[1] != "127.0.0.1:5000/vendor" {
		t.Errorf("allowedImages: %q", cfg.AllowedImages)
	}

	_, err = ParseConfig([]byte(`
allowedImages:
- registry.example.com/team/
- team/app
- registry.example.com/team:v1
- registry.example.com/*
- registry.example.com/team
`), "/srv/ferry", "ferry-serve.yaml")
	if err == nil {
		t.Fatal("bad allowedImages entries were taken")
	}
	for _, want := range []string{
		`allowedImages[1]: "team/app" does not start with a registry host`,
		`allowedImages[2]: "registry.example.com/team:v1"`,
		`allowedImages[3]: "registry.example.com/*": a prefix is a registry and repository path, without a tag, digest or wildcard`,
		`allowedImages[4]: registry.example.com/team/ is allowedImages[0] again`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "allowedImages[0]:") {
		t.Errorf("a good entry was refused:\n%v", err)
	}
}
