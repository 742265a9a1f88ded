package noise

import (
	"crypto/subtle"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

// Labels of the keys derived from a responder's static key (the scheme of
// the WireGuard paper §5.4.4, with our own labels).
const (
	labelMAC1   = "mxmesh mac1"
	labelCookie = "mxmesh cookie"
)

// cookieSecretLifetime is how long a cookie secret lives; a cookie is valid
// until its secret rotates (WireGuard uses the same 2 minutes).
const cookieSecretLifetime = 2 * time.Minute

// deriveKey is BLAKE2s-256(label | static). For XX, where the initiator
// does not know the responder's key yet, static is 32 zero bytes.
func deriveKey(label string, static []byte) [32]byte {
	h, _ := blake2s.New256(nil) // unkeyed: cannot fail
	h.Write([]byte(label))
	h.Write(static)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// mac128 is keyed BLAKE2s with a 16-byte output (RFC 7693).
func mac128(key []byte, msg []byte) [macLen]byte {
	h, err := blake2s.New128(key)
	if err != nil {
		panic("noise: BLAKE2s-128 key of invalid length") // keys are fixed-size here
	}
	h.Write(msg)
	var m [macLen]byte
	h.Sum(m[:0])
	return m
}

func macEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// cookieJar makes and checks the stateless address cookies of a responder.
// A cookie is BLAKE2s-128 keyed with a secret that rotates every
// cookieSecretLifetime, over the source address bytes.
type cookieJar struct {
	secret  [32]byte
	born    time.Time
	started bool
}

func (j *cookieJar) rotate(now time.Time, rng io.Reader) error {
	if j.started && now.Sub(j.born) < cookieSecretLifetime && !now.Before(j.born) {
		return nil
	}
	if _, err := io.ReadFull(rng, j.secret[:]); err != nil {
		return fmt.Errorf("rotate cookie secret: %w", err)
	}
	j.born, j.started = now, true
	return nil
}

// cookie computes the cookie of addr under the current secret.
func (j *cookieJar) cookie(addr []byte) [macLen]byte { return mac128(j.secret[:], addr) }

// sealCookieReply builds a cookie reply to a message 1 whose mac1 is mac1:
// type | receiver index (2 B) | nonce (24 B) | XChaCha20-Poly1305(cookie, ad = mac1).
func sealCookieReply(dst []byte, index uint16, key *[32]byte, cookie, mac1 []byte, rng io.Reader) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("cookie reply: %w", err)
	}
	dst = append(dst, typeCookie)
	dst = putIndex(dst, index)
	start := len(dst)
	dst = append(dst, make([]byte, xNonceLen)...)
	if _, err := io.ReadFull(rng, dst[start:]); err != nil {
		return nil, fmt.Errorf("cookie reply nonce: %w", err)
	}
	return aead.Seal(dst, dst[start:start+xNonceLen], cookie, mac1), nil
}

// openCookieReply decrypts the cookie from a cookie reply (already checked
// for length and type).
func openCookieReply(p []byte, key *[32]byte, mac1 []byte) ([macLen]byte, error) {
	var c [macLen]byte
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return c, fmt.Errorf("cookie reply: %w", err)
	}
	nonce := p[3 : 3+xNonceLen]
	if _, err := aead.Open(c[:0], nonce, p[3+xNonceLen:], mac1); err != nil {
		return c, fmt.Errorf("cookie reply: %w", ErrAuth)
	}
	return c, nil
}

// tokenBucket is a rate limiter driven by the caller's time: rate tokens
// per second, at most burst stored. The zero value is empty.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time, rate float64, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens += d.Seconds() * rate
		if b.tokens > burst {
			b.tokens = burst
		}
	}
	if !now.Before(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket would be back at burst by now (so an
// idle entry can be forgotten).
func (b *tokenBucket) full(now time.Time, rate, burst float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}
