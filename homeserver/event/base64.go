package event

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// EncodeBase64 is unpadded standard base64 (appendices.md "Unpadded
// Base64"), used for hashes and signatures.
func EncodeBase64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// EncodeBase64URL is unpadded URL-safe base64 (RFC 4648 §5), used for event
// IDs from room version 4 on (rooms/v4.md "Event IDs").
func EncodeBase64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// DecodeBase64 decodes standard or URL-safe base64, padded or not, as the
// appendix asks decoders to ("SHOULD accept input with or without padding").
// Mixing the two alphabets, whitespace and misplaced padding are errors.
func DecodeBase64(s string) ([]byte, error) {
	trimmed := strings.TrimRight(s, "=")
	if pad := len(s) - len(trimmed); pad > 0 && (pad > 2 || len(s)%4 != 0) {
		return nil, fmt.Errorf("decode base64: bad padding")
	}
	std, url := false, false
	for i := 0; i < len(trimmed); i++ {
		c := trimmed[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '+' || c == '/':
			std = true
		case c == '-' || c == '_':
			url = true
		default:
			return nil, fmt.Errorf("decode base64: invalid character %q at offset %d", c, i)
		}
	}
	if std && url {
		return nil, fmt.Errorf("decode base64: mixes standard and URL-safe alphabets")
	}
	enc := base64.RawStdEncoding
	if url {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(trimmed)
	if err != nil {
		return nil, fmt.Errorf("decode base64: %w", err)
	}
	return b, nil
}
