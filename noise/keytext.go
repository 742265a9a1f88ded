package noise

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// Text forms of keys, for files and for operators to copy.
//
// Key file (MarshalText, ParseKeyPair): one line
//
//	"x25519 " | private key, standard base64 without padding (43 chars) | "\n"
//
// in the style of the Matrix signing key file ("ed25519 KEYID SEED"). The
// public key is derived from the private one (RFC 7748 §6.1).
//
// Key token (KeyToken.String, ParseKeyToken): everything a peer needs to pin
// a server, as one word that survives shells, YAML and chat:
//
//	"mxk1:" | URL-safe base64 without padding (RFC 4648 §5) of
//	    Noise static public key (32 B) | ed25519 signing public key (32 B) | binding signature (64 B)
//
// 128 bytes, 176 characters. The signature is SignBinding's over the
// server name and the Noise key, so whoever pins the token under a name
// can check (KeyToken.Verify) that the name is the one the key's owner
// signed: a token pasted under the wrong name is refused.

const (
	keyFilePrefix = "x25519 "
	// KeyTokenPrefix starts every key token; the digit is its version.
	KeyTokenPrefix = "mxk1:"
	keyTokenLen    = keyLen + ed25519.PublicKeySize + ed25519.SignatureSize
)

// ErrBadKey is wrapped by the parsers below.
var ErrBadKey = errors.New("noise: bad key text")

// MarshalText encodes the key pair as a key file line.
func (k KeyPair) MarshalText() ([]byte, error) {
	if len(k.Private) != keyLen {
		return nil, fmt.Errorf("marshal noise key: private key of %d bytes, want 32", len(k.Private))
	}
	return []byte(keyFilePrefix + base64.RawStdEncoding.EncodeToString(k.Private) + "\n"), nil
}

// ParseKeyPair decodes a key file line written by MarshalText.
func ParseKeyPair(text []byte) (KeyPair, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(string(text)), keyFilePrefix)
	if !ok {
		return KeyPair{}, fmt.Errorf("parse noise key: want %q and a base64 key: %w", strings.TrimSpace(keyFilePrefix), ErrBadKey)
	}
	priv, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(s), "="))
	if err != nil || len(priv) != keyLen {
		return KeyPair{}, fmt.Errorf("parse noise key: want 32 bytes of base64: %w", ErrBadKey)
	}
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		return KeyPair{}, fmt.Errorf("parse noise key: %v: %w", err, ErrBadKey)
	}
	return KeyPair{Private: priv, Public: pub}, nil
}

// KeyToken is what pinning a server takes: its Noise static key, its
// Matrix signing key, and the binding signature tying the first to the
// server's name (SignBinding).
type KeyToken struct {
	NoiseKey   []byte
	SigningKey ed25519.PublicKey
	Binding    []byte
}

// NewKeyToken builds the token a server publishes for itself.
func NewKeyToken(serverName string, noiseKey []byte, signingKey ed25519.PrivateKey) KeyToken {
	return KeyToken{NoiseKey: bytes.Clone(noiseKey), SigningKey: signingKey.Public().(ed25519.PublicKey),
		Binding: SignBinding(serverName, noiseKey, signingKey)}
}

// String is the token's text form ("mxk1:…").
func (t KeyToken) String() string {
	b := make([]byte, 0, keyTokenLen)
	b = append(b, t.NoiseKey...)
	b = append(b, t.SigningKey...)
	b = append(b, t.Binding...)
	return KeyTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseKeyToken decodes a token's text form. It checks lengths only; call
// Verify with the server name to check the signature.
func ParseKeyToken(s string) (KeyToken, error) {
	body, ok := strings.CutPrefix(strings.TrimSpace(s), KeyTokenPrefix)
	if !ok {
		return KeyToken{}, fmt.Errorf("parse key token: does not start with %q: %w", KeyTokenPrefix, ErrBadKey)
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return KeyToken{}, fmt.Errorf("parse key token: %v: %w", err, ErrBadKey)
	}
	if len(b) != keyTokenLen {
		return KeyToken{}, fmt.Errorf("parse key token: %d bytes, want %d: %w", len(b), keyTokenLen, ErrBadKey)
	}
	return KeyToken{NoiseKey: b[:keyLen:keyLen], SigningKey: ed25519.PublicKey(b[keyLen : keyLen+ed25519.PublicKeySize : keyLen+ed25519.PublicKeySize]),
		Binding: b[keyLen+ed25519.PublicKeySize:]}, nil
}

// Verify checks that the token's signing key signed its Noise key for
// serverName.
func (t KeyToken) Verify(serverName string) error {
	if !VerifyBinding(serverName, t.NoiseKey, t.SigningKey, t.Binding) {
		return fmt.Errorf("key token: signature does not bind its noise key to %q: %w", serverName, ErrBadKey)
	}
	return nil
}
