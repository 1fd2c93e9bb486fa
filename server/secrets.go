package server

import (
	"fmt"
	"os"
	"strings"

	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/store"
)

// How a source's secrets are kept in the store. None is ever in the clear:
//
//   - a secret given through the API is sealed (seal.Box), always, whatever
//     it looks like;
//   - a configuration's $VAR stays the reference "env:$VAR", read from
//     ferry's environment each time the value is needed;
//   - a configuration's sshKeyFile stays the path "file:PATH", read when
//     the key is needed;
//   - a secret written out in the configuration is sealed like the API's.
//
// References are honoured only on sources of the configuration: a source
// added through the API with the password "env:$FERRY_SECRET_KEY" must not
// make ferry send its own environment to that source's server.
const (
	envRef  = "env:"
	fileRef = "file:"
)

// configSecret is how a configured secret is stored: a reference when it
// names a variable, else the value, which secrets.protect seals.
func configSecret(v string) string {
	if strings.Contains(v, "$") {
		return envRef + v
	}
	return v
}

// secretValue reads a secret of the configuration outside sources (GitHub
// token and key, notification URLs and secrets) once, at start: "env:VAR"
// (or "env:$VAR", "env:${VAR}") from ferry's environment, "file:PATH" from
// a file relative to the configuration, its surrounding blanks and last
// newline dropped, $VAR expanded, anything else as written. Unlike
// sources' secrets, nothing of it is stored.
func (c *Config) secretValue(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, envRef):
		name := strings.Trim(strings.TrimPrefix(strings.TrimPrefix(v, envRef), "$"), "{}")
		val, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("$%s is not set in ferry's environment; export it before ferry serve starts", name)
		}
		return val, nil
	case strings.HasPrefix(v, fileRef):
		b, err := os.ReadFile(c.path(strings.TrimPrefix(v, fileRef)))
		if err != nil {
			return "", fmt.Errorf("%v; give a readable file", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return expand(v)
}

// secrets seals and reveals sources' secrets with ferry's key.
type secrets struct {
	box *seal.Box
}

// field is one secret of a source.
type secretField struct {
	name string
	get  func(*store.Source) *string
}

var sourceSecrets = []secretField{
	{"webhookSecret", func(s *store.Source) *string { return &s.WebhookSecret }},
	{"password", func(s *store.Source) *string { return &s.Password }},
	{"sshKey", func(s *store.Source) *string { return &s.SSHKey }},
}

// where names a secret for the seal's associated data, so a sealed value
// moved to another source or field does not open.
func where(src, field string) string { return "source/" + src + "/" + field }

func isRef(v string) bool { return strings.HasPrefix(v, envRef) || strings.HasPrefix(v, fileRef) }

// protect returns src as the store may keep it: every secret sealed,
// except a configuration source's references.
func (k *secrets) protect(src store.Source) store.Source {
	for _, f := range sourceSecrets {
		p := f.get(&src)
		if *p == "" || (src.FromConfig && isRef(*p)) {
			continue
		}
		*p = k.box.Seal(*p, where(src.Name, f.name))
	}
	return src
}

// sealClear seals what an older ferry stored in the clear and reports
// whether anything changed; what is sealed or a reference stays.
func (k *secrets) sealClear(src store.Source) (store.Source, bool) {
	changed := false
	for _, f := range sourceSecrets {
		p := f.get(&src)
		if *p == "" || seal.IsSealed(*p) || (src.FromConfig && isRef(*p)) {
			continue
		}
		*p = k.box.Seal(*p, where(src.Name, f.name))
		changed = true
	}
	return src, changed
}

// reveal returns src with its secrets' values, for the watcher and the
// webhook receivers, which need them; the result is never stored.
func (k *secrets) reveal(src store.Source) (store.Source, error) {
	for _, f := range sourceSecrets {
		p := f.get(&src)
		v := *p
		switch {
		case seal.IsSealed(v):
			plain, err := k.box.Open(v, where(src.Name, f.name))
			if err != nil {
				return src, fmt.Errorf("source %s: %w", src.Name, err)
			}
			*p = plain
		case src.FromConfig && strings.HasPrefix(v, envRef):
			plain, err := expand(strings.TrimPrefix(v, envRef))
			if err != nil {
				return src, fmt.Errorf("source %s: %s: %w", src.Name, f.name, err)
			}
			*p = plain
		case src.FromConfig && strings.HasPrefix(v, fileRef):
			b, err := os.ReadFile(strings.TrimPrefix(v, fileRef))
			if err != nil {
				return src, fmt.Errorf("source %s: sshKeyFile: %w", src.Name, err)
			}
			*p = string(b)
		}
	}
	return src, nil
}
