package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyEnv is the variable that gives the key, 32 bytes in base64.
const KeyEnv = "FERRY_SECRET_KEY"

// KeyFile is the key's file in the data folder, used when KeyEnv is unset.
const KeyFile = "secret.key"

// prefix marks a sealed value; the version lets a later ferry change the
// scheme and still open what this one sealed.
const prefix = "sealed:v1:"

// keySize is AES-256's.
const keySize = 32

// Box seals and opens values with one key.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("the secret key is %d bytes; it must be %d (make one with: head -c 32 /dev/urandom | base64)", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Load returns the Box of ferry's key: from KeyEnv when it is set, else
// from dataDir/secret.key, which it creates (mode 0600) when missing. It
// says where the key came from, for the start-up log (never the key).
func Load(dataDir string) (*Box, string, error) {
	if v, ok := os.LookupEnv(KeyEnv); ok {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return nil, "", fmt.Errorf("%s is not base64: %w; give 32 random bytes in base64 (head -c 32 /dev/urandom | base64)", KeyEnv, err)
		}
		b, err := New(key)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", KeyEnv, err)
		}
		// why: processes ferry starts inherit its environment; they have
		// no use for the key.
		os.Unsetenv(KeyEnv)
		return b, "$" + KeyEnv, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path)
	}
	if err != nil {
		return nil, "", err
	}
	b, err := New(key)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return b, path, nil
}

func readKeyFile(path string) ([]byte, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; remove it, or set %s", path, KeyEnv)
	}
	if info.Mode().Perm()&0o077 != 0 {
		// why: a key others can read protects nothing; refusing makes the
		// operator notice rather than quietly tightening it.
		return nil, fmt.Errorf("%s has mode %v; others may read it: chmod 600 %s", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the secret key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64: %w; restore it from a backup (the secrets sealed with it cannot be opened otherwise)", path, err)
	}
	return key, nil
}

// createKeyFile writes a new random key. O_EXCL makes two ferries starting
// at once agree on one key: the loser reads the winner's.
func createKeyFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the secret key: %w", err)
	}
	key := make([]byte, keySize)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the secret key: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing the secret key %s: %w", path, err)
	}
	return key, nil
}

// Seal returns plain sealed for the place named by where (the associated
// data): "sealed:v1:" and the nonce and ciphertext in base64. An empty
// value stays empty, so "no secret" is still visible.
func (b *Box) Seal(plain, where string) string {
	if plain == "" {
		return ""
	}
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce)
	out := b.aead.Seal(nonce, nonce, []byte(plain), []byte(where))
	return prefix + base64.RawStdEncoding.EncodeToString(out)
}

// Open returns the value that Seal sealed for where. It fails for a value
// sealed with another key or for another place, and for one that is not
// sealed at all.
func (b *Box) Open(sealed, where string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", fmt.Errorf("%s: the stored value is not sealed", where)
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", fmt.Errorf("%s: the sealed value is damaged; give the secret again", where)
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(where))
	if err != nil {
		return "", fmt.Errorf("%s: the sealed value does not open with this key: was %s or %s changed? Restore the key, or give the secret again", where, KeyEnv, KeyFile)
	}
	return string(plain), nil
}

// IsSealed reports whether v is in Seal's form.
func IsSealed(v string) bool { return strings.HasPrefix(v, prefix) }
