package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SecretSize is the size of the cluster secret: an AES-256 key for the
// memberlist keyring, and the root of the transport's peer authentication.
const SecretSize = 32

// ErrSecret: a secret file is unusable (wrong size, encoding, or readable by others).
var ErrSecret = errors.New("bad cluster secret")

// NewSecret returns a fresh random secret.
func NewSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("new secret: %w", err)
	}
	return b, nil
}

// FormatSecret is the text of a secret file: standard base64 and a newline.
func FormatSecret(secret []byte) string {
	return base64.StdEncoding.EncodeToString(secret) + "\n"
}

// ParseSecret decodes the text of a secret file.
func ParseSecret(text string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %v", ErrSecret, err)
	}
	if len(b) != SecretSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d (make one with `migrated keygen`)", ErrSecret, len(b), SecretSize)
	}
	return b, nil
}

// ReadSecretFile reads a secret file written by `migrated keygen`. Like
// ssh with a private key, it refuses a file that other users can read.
func ReadSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by every user (mode %v): chmod 600 it", ErrSecret, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	s, err := ParseSecret(string(b))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	return s, nil
}
