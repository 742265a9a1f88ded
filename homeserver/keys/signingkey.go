package keys

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SigningKey is one of our ed25519 Matrix signing keys. Spec:
// server-server-api "Retrieving server keys"; key IDs are "ed25519:"
// followed by a version of [a-zA-Z0-9_].
type SigningKey struct {
	// ID is the full key ID, e.g. "ed25519:a_Xy3k".
	ID  string
	Key ed25519.PrivateKey
}

// Public is the verify key.
func (k *SigningKey) Public() ed25519.PublicKey { return k.Key.Public().(ed25519.PublicKey) }

// GenerateSigningKey makes a new key from rand (a node RNG or the OS
// CSPRNG): a 32-byte seed, then 3 bytes for the version "a_" + base64.
func GenerateSigningKey(rand io.Reader) (*SigningKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	var v [3]byte
	if _, err := io.ReadFull(rand, v[:]); err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	version := "a_" + strings.NewReplacer("-", "_", "+", "_", "/", "_").Replace(base64.RawURLEncoding.EncodeToString(v[:]))
	return &SigningKey{ID: "ed25519:" + version, Key: ed25519.NewKeyFromSeed(seed)}, nil
}

// MarshalText is the key file format Synapse and Dendrite also use:
// "ed25519 VERSION UNPADDED-BASE64-SEED\n".
func (k *SigningKey) MarshalText() ([]byte, error) {
	alg, version, ok := strings.Cut(k.ID, ":")
	if !ok || alg != "ed25519" || len(k.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("marshal signing key: not an ed25519 key")
	}
	return []byte(alg + " " + version + " " + base64.RawStdEncoding.EncodeToString(k.Key.Seed()) + "\n"), nil
}

// ParseSigningKey reads the key file format written by MarshalText.
func ParseSigningKey(data []byte) (*SigningKey, error) {
	fields := strings.Fields(string(data))
	if len(fields) != 3 || fields[0] != "ed25519" {
		return nil, errors.New("parse signing key: want \"ed25519 VERSION BASE64SEED\"")
	}
	id := "ed25519:" + fields[1]
	if err := checkKeyID(id); err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(fields[2], "="))
	if err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("parse signing key: seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return &SigningKey{ID: id, Key: ed25519.NewKeyFromSeed(seed)}, nil
}
