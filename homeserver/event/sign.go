package event

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
)

// ErrSignature is wrapped by VerifyJSON and VerifyEventSignature when the
// signature is absent or does not verify.
var ErrSignature = errors.New("signature check failed")

// KeyFromSeed returns the ed25519 private key for a 32-byte seed (RFC 8032
// §5.1.5), or nil if the seed is not 32 bytes; signing with a nil key
// fails with an error.
func KeyFromSeed(seed []byte) ed25519.PrivateKey {
	if len(seed) != ed25519.SeedSize {
		return nil
	}
	return ed25519.NewKeyFromSeed(seed)
}

// SignJSON signs a JSON object as appendices.md "Signing Details" defines:
// the canonical JSON of the object without "signatures" and "unsigned" is
// signed with key, the unpadded base64 signature is stored at
// signatures[serverName][keyID], and the whole object, "unsigned" included,
// is returned as canonical JSON. Existing signatures are kept.
func SignJSON(obj []byte, serverName, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	m, err := parseObject(obj)
	if err != nil {
		return nil, fmt.Errorf("sign JSON: %w", err)
	}
	if err := signValue(m, m, serverName, keyID, key); err != nil {
		return nil, fmt.Errorf("sign JSON: %w", err)
	}
	out, err := MarshalCanonical(m)
	if err != nil {
		return nil, fmt.Errorf("sign JSON: %w", err)
	}
	return out, nil
}

// signValue signs the canonical form of signed (minus signatures and
// unsigned) and stores the signature in target's "signatures" object,
// replacing target["signatures"] with a fresh map so the parsed input is
// not aliased.
func signValue(signed, target map[string]any, serverName, keyID string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if err := checkKeyID(keyID); err != nil {
		return err
	}
	if serverName == "" {
		return errors.New("empty server name")
	}
	msg, err := MarshalCanonical(without(signed, "signatures", "unsigned"))
	if err != nil {
		return err
	}
	sig := EncodeBase64(ed25519.Sign(key, msg))

	sigs := map[string]any{}
	if old, present := target["signatures"]; present {
		om, ok := old.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: \"signatures\" is not an object", ErrBadJSON)
		}
		for k, v := range om {
			sigs[k] = v
		}
	}
	entry := map[string]any{}
	if old, present := sigs[serverName]; present {
		om, ok := old.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: signatures[%q] is not an object", ErrBadJSON, serverName)
		}
		for k, v := range om {
			entry[k] = v
		}
	}
	entry[keyID] = sig
	sigs[serverName] = entry
	target["signatures"] = sigs
	return nil
}

// checkKeyID requires "ed25519:" followed by a non-empty name, the only
// signing algorithm the spec defines.
func checkKeyID(keyID string) error {
	name, ok := strings.CutPrefix(keyID, "ed25519:")
	if !ok || name == "" {
		return fmt.Errorf("key ID %q is not of the form ed25519:NAME", keyID)
	}
	return nil
}

// VerifyJSON checks signatures[serverName][keyID] of a JSON object against
// pub, following appendices.md "Checking for a Signature".
func VerifyJSON(obj []byte, serverName, keyID string, pub ed25519.PublicKey) error {
	m, err := parseObject(obj)
	if err != nil {
		return fmt.Errorf("verify JSON: %w", err)
	}
	if err := verifyValue(m, serverName, keyID, pub); err != nil {
		return fmt.Errorf("verify JSON: %w", err)
	}
	return nil
}

func verifyValue(m map[string]any, serverName, keyID string, pub ed25519.PublicKey) error {
	if err := checkKeyID(keyID); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key is %d bytes, want %d", ErrSignature, len(pub), ed25519.PublicKeySize)
	}
	sigs, _ := m["signatures"].(map[string]any)
	entry, _ := sigs[serverName].(map[string]any)
	if entry == nil {
		return fmt.Errorf("%w: no signatures from %s", ErrSignature, serverName)
	}
	s, _ := entry[keyID].(string)
	if s == "" {
		return fmt.Errorf("%w: no signature by %s %s", ErrSignature, serverName, keyID)
	}
	sig, err := DecodeBase64(s)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrSignature, len(sig), ed25519.SignatureSize)
	}
	msg, err := MarshalCanonical(without(m, "signatures", "unsigned"))
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w: bad signature by %s %s", ErrSignature, serverName, keyID)
	}
	return nil
}

// SignEvent signs an event as server-server-api.md "Adding hashes and
// signatures to outgoing events" says: the signature covers the event as room version v's redaction
// algorithm leaves it (so redacted copies keep verifying), and is added to
// the full event, which is returned as canonical JSON. The content hash
// must already be in place (Build does both).
func SignEvent(raw []byte, v *RoomVersion, serverName, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("sign event: no room version")
	}
	m, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	if err := signValue(redactValue(m, v), m, serverName, keyID, key); err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	out, err := MarshalCanonical(m)
	if err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	return out, nil
}

// VerifyEventSignature checks serverName's keyID signature on an event: the
// signature over the redacted form, as SignEvent makes it.
func VerifyEventSignature(raw []byte, v *RoomVersion, serverName, keyID string, pub ed25519.PublicKey) error {
	if v == nil {
		return fmt.Errorf("verify event signature: no room version")
	}
	m, err := parseObject(raw)
	if err != nil {
		return fmt.Errorf("verify event signature: %w", err)
	}
	if err := verifyValue(redactValue(m, v), serverName, keyID, pub); err != nil {
		return fmt.Errorf("verify event signature: %w", err)
	}
	return nil
}
