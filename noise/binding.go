package noise

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
)

// bindingContext separates identity-binding signatures from every other use
// of a server's Matrix signing key (which otherwise signs canonical JSON,
// and never starts with this byte string).
const bindingContext = "mxmesh noise static key v1\x00"

// bindingLen is the encoded size of a binding for a server name of n bytes.
func bindingLen(n int) int { return 1 + n + ed25519.PublicKeySize + ed25519.SignatureSize }

// BindingMessage returns the bytes a server signs with its Matrix ed25519
// signing key to bind its Noise static public key to its server name:
//
//	"mxmesh noise static key v1" 0x00 | len(name) (1 B) | name | static key (32 B)
//
// Publish the signature (for example beside the key in the server's
// /_matrix/key/v2/server response) so peers can check it before pinning.
func BindingMessage(serverName string, noiseStatic []byte) []byte {
	m := make([]byte, 0, len(bindingContext)+1+len(serverName)+len(noiseStatic))
	m = append(m, bindingContext...)
	m = append(m, byte(len(serverName)))
	m = append(m, serverName...)
	return append(m, noiseStatic...)
}

// SignBinding signs the binding of noiseStatic to serverName.
func SignBinding(serverName string, noiseStatic []byte, signingKey ed25519.PrivateKey) []byte {
	return ed25519.Sign(signingKey, BindingMessage(serverName, noiseStatic))
}

// VerifyBinding checks a binding signature made by SignBinding.
func VerifyBinding(serverName string, noiseStatic []byte, signingKey ed25519.PublicKey, sig []byte) bool {
	if len(signingKey) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(signingKey, BindingMessage(serverName, noiseStatic), sig)
}

// binding is a decoded identity binding carried in a handshake payload.
type binding struct {
	name    string
	signing ed25519.PublicKey
	sig     []byte
}

// appendBinding encodes: len(name) (1 B) | name | ed25519 key (32 B) | signature (64 B).
func appendBinding(dst []byte, name string, signing ed25519.PublicKey, sig []byte) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	dst = append(dst, signing...)
	return append(dst, sig...)
}

// parseBinding decodes a binding from the front of p and returns the rest.
func parseBinding(p []byte) (binding, []byte, error) {
	if len(p) < 1 {
		return binding{}, nil, fmt.Errorf("identity binding: empty: %w", ErrMalformed)
	}
	n := int(p[0])
	if n == 0 || len(p) < bindingLen(n) {
		return binding{}, nil, fmt.Errorf("identity binding: %d bytes for a %d-byte name: %w", len(p), n, ErrMalformed)
	}
	p = p[1:]
	b := binding{name: string(p[:n])}
	p = p[n:]
	b.signing = bytes.Clone(p[:ed25519.PublicKeySize])
	p = p[ed25519.PublicKeySize:]
	b.sig = p[:ed25519.SignatureSize]
	return b, p[ed25519.SignatureSize:], nil
}
