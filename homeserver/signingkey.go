package homeserver

import (
	"io"

	"github.com/mxmesh/mxmesh/homeserver/keys"
)

// SigningKey is the server's ed25519 Matrix signing key: the type the key
// server publishes (keys.SigningKey), with its key-file format.
type SigningKey = keys.SigningKey

// GenerateSigningKey makes a new key from rand (the node RNG or the OS
// CSPRNG); see keys.GenerateSigningKey.
func GenerateSigningKey(rand io.Reader) (*SigningKey, error) { return keys.GenerateSigningKey(rand) }

// ParseSigningKey reads the key file format written by
// SigningKey.MarshalText; see keys.ParseSigningKey.
func ParseSigningKey(data []byte) (*SigningKey, error) { return keys.ParseSigningKey(data) }
