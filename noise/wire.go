package noise

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Packet types: the first byte of every datagram (see the package doc).
const (
	// shortIndexMax is the largest session index carried in the one-byte
	// transport header (first byte 0x00–0x7F).
	shortIndexMax = 0x7F
	// maxIndex is the largest session index: 14 bits in the two-byte
	// transport header (first byte 0x80–0xBF).
	maxIndex = 0x3FFF

	typeIK1    byte = 0xC1 // IK message 1, initiator → responder
	typeKK1    byte = 0xC2 // KK message 1
	typeXX1    byte = 0xC3 // XX message 1
	typeIK2    byte = 0xC4 // IK message 2, responder → initiator
	typeKK2    byte = 0xC5 // KK message 2
	typeXX2    byte = 0xC6 // XX message 2
	typeXX3    byte = 0xC7 // XX message 3, initiator → responder
	typeCookie byte = 0xC8 // cookie reply, responder → initiator
	// flagMAC2 is or-ed into a message-1 type when a cookie MAC follows mac1.
	flagMAC2 byte = 0x10
)

// Sizes in bytes.
const (
	tagLen       = 16 // ChaCha20-Poly1305 tag (RFC 8439 §2.8)
	keyLen       = 32 // X25519 public key (RFC 7748 §5)
	macLen       = 16 // mac1, mac2 and cookie: BLAKE2s-128 (RFC 7693)
	hintLen      = 4  // KK initiator key hint
	timestampLen = 8  // message-1 timestamp, big-endian Unix nanoseconds
	xNonceLen    = 24 // XChaCha20-Poly1305 nonce of the cookie reply

	// maxCounterBytes is the longest explicit counter: 3 varint groups, 21 bits.
	maxCounterBytes = 3
	// cookieReplyLen: type, receiver index, nonce, encrypted cookie.
	cookieReplyLen = 1 + 2 + xNonceLen + macLen + tagLen
	// xx1PadLen pads XX message 1 so that it is exactly as long as a cookie
	// reply: the responder may then always answer it with one.
	xx1PadLen = cookieReplyLen - (1 + 2 + keyLen + macLen)
)

// Errors callers may branch on. Every error returned by Open wraps one of
// these, so a caller can count drops by cause.
var (
	// ErrMalformed: the datagram does not parse (length, type, varint).
	ErrMalformed = errors.New("noise: malformed packet")
	// ErrUnknownSession: the receiver index names no live session or handshake.
	ErrUnknownSession = errors.New("noise: unknown session index")
	// ErrReplay: the counter was already seen, or is older than the window.
	ErrReplay = errors.New("noise: replayed or too old counter")
	// ErrAuth: a MAC, AEAD tag or handshake message failed to verify.
	ErrAuth = errors.New("noise: authentication failed")
	// ErrRefused: the handshake authenticated but the peer is not allowed
	// (pin mismatch, bad identity binding, unknown peer without TOFU).
	ErrRefused = errors.New("noise: peer refused")
	// ErrRateLimited: the source exceeded its handshake rate.
	ErrRateLimited = errors.New("noise: rate limited")
	// ErrCookieSent: the endpoint is under load (or the answer would be
	// larger than the request) and answered with a cookie challenge instead.
	ErrCookieSent = errors.New("noise: answered with a cookie challenge")
	// ErrUnknownPeer: Seal was called for a server name that is not in the
	// peer table.
	ErrUnknownPeer = errors.New("noise: unknown peer")
	// ErrSessionExhausted: the session reached its counter limit and no
	// new session is available yet.
	ErrSessionExhausted = errors.New("noise: session exhausted")
)

// appendTransportHeader appends the header of a transport packet: the
// receiver's session index (one or two bytes) and the explicit counter.
func appendTransportHeader(dst []byte, index uint16, counter uint64) []byte {
	if index <= shortIndexMax {
		dst = append(dst, byte(index))
	} else {
		dst = append(dst, 0x80|byte(index>>8), byte(index))
	}
	return appendCounter(dst, counter)
}

// appendCounter appends the explicit counter: the full value as one varint
// group while it is below 128, otherwise its low 14 bits as two groups.
// Groups are little-endian 7-bit, high bit = more follows (LEB128).
func appendCounter(dst []byte, c uint64) []byte {
	if c < 0x80 {
		return append(dst, byte(c))
	}
	return append(dst, byte(c)|0x80, byte(c>>7)&0x7F)
}

// parseTransportHeader splits a transport packet. It returns the receiver
// index, the truncated counter and its width in bits (0 means the counter is
// exact), and the header length.
func parseTransportHeader(p []byte) (index uint16, trunc uint64, bits uint, n int, err error) {
	if len(p) < 2+tagLen {
		return 0, 0, 0, 0, fmt.Errorf("transport packet of %d bytes: %w", len(p), ErrMalformed)
	}
	b := p[0]
	switch {
	case b <= shortIndexMax:
		index, n = uint16(b), 1
	case b < 0xC0:
		index, n = uint16(b&0x3F)<<8|uint16(p[1]), 2
		if index <= shortIndexMax {
			return 0, 0, 0, 0, fmt.Errorf("non-canonical index %d: %w", index, ErrMalformed)
		}
	default:
		return 0, 0, 0, 0, fmt.Errorf("type 0x%02x is not transport: %w", b, ErrMalformed)
	}
	var groups uint
	for {
		if n >= len(p) || groups == maxCounterBytes {
			return 0, 0, 0, 0, fmt.Errorf("counter varint: %w", ErrMalformed)
		}
		c := p[n]
		n++
		trunc |= uint64(c&0x7F) << (7 * groups)
		groups++
		if c&0x80 == 0 {
			break
		}
	}
	if len(p)-n < tagLen {
		return 0, 0, 0, 0, fmt.Errorf("transport packet shorter than its tag: %w", ErrMalformed)
	}
	if groups > 1 {
		bits = 7 * groups
	}
	return index, trunc, bits, n, nil
}

// reconstructCounter expands a counter truncated to bits bits to the value
// nearest to next, the counter the receiver expects next. This is the
// packet-number decoding of RFC 9000 Appendix A.3. bits == 0 means the
// counter was sent in full.
func reconstructCounter(next, trunc uint64, bits uint) uint64 {
	if bits == 0 {
		return trunc
	}
	win := uint64(1) << bits
	hwin := win / 2
	mask := win - 1
	cand := (next &^ mask) | trunc
	switch {
	case cand+hwin <= next && cand < (1<<62)-win:
		return cand + win
	case cand > next+hwin && cand >= win:
		return cand - win
	}
	return cand
}

// putIndex and getIndex write handshake indices: two bytes, big-endian.
func putIndex(dst []byte, i uint16) []byte { return binary.BigEndian.AppendUint16(dst, i) }

func getIndex(p []byte) uint16 { return binary.BigEndian.Uint16(p) }
