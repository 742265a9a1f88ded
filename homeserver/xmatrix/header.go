package xmatrix

import (
	"fmt"
	"strings"
)

// Scheme is the authorization scheme name. Spec: server-server-api
// "Request Authentication".
const Scheme = "X-Matrix"

// MaxHeaderLen bounds the Authorization header value ParseHeader accepts.
//
// NOTSPEC: the spec sets no limit; real headers are about 200 bytes (two
// server names, a key ID and an 86-character signature).
const MaxHeaderLen = 4096

// Header is one X-Matrix Authorization header.
type Header struct {
	// Origin is the sending server's name.
	Origin string
	// Destination is the receiving server's name; empty when the sender
	// left it out (allowed for senders older than spec v1.3).
	Destination string
	// KeyID is the signing key's ID including the algorithm, e.g.
	// "ed25519:a_b1".
	KeyID string
	// Sig is the unpadded base64 ed25519 signature.
	Sig string
}

// Format returns the header value as the spec asks senders to write it: one
// space after the scheme, lower-case parameter names, every value quoted
// (with `"` and `\` backslash-escaped). It fails for values that cannot be
// carried in a quoted string (control characters other than tab) and for
// empty origin, key or sig.
func (h Header) Format() (string, error) {
	if h.Origin == "" || h.KeyID == "" || h.Sig == "" {
		return "", fmt.Errorf("format X-Matrix header: origin, key and sig are required")
	}
	var b strings.Builder
	b.Grow(len(Scheme) + 40 + len(h.Origin) + len(h.Destination) + len(h.KeyID) + len(h.Sig))
	b.WriteString(Scheme)
	b.WriteByte(' ')
	params := [...]struct{ name, value string }{
		{"origin", h.Origin}, {"destination", h.Destination}, {"key", h.KeyID}, {"sig", h.Sig},
	}
	first := true
	for _, p := range params {
		if p.value == "" { // only destination may be empty
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(p.name)
		b.WriteString(`="`)
		for i := 0; i < len(p.value); i++ {
			c := p.value[i]
			if !isQDText(c) && c != '"' && c != '\\' {
				return "", fmt.Errorf("format X-Matrix header: %s contains byte 0x%02x", p.name, c)
			}
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
	return b.String(), nil
}

// ParseHeader parses an Authorization header value with the X-Matrix
// scheme (RFC 7235 §2.1 credentials with auth-params). Errors wrap
// ErrUnauthorized.
func ParseHeader(s string) (Header, error) {
	var h Header
	if len(s) > MaxHeaderLen {
		return h, fmt.Errorf("%w: Authorization header is %d bytes, limit %d", ErrUnauthorized, len(s), MaxHeaderLen)
	}
	s = strings.TrimLeft(s, " \t")
	if len(s) < len(Scheme) || !strings.EqualFold(s[:len(Scheme)], Scheme) {
		return h, fmt.Errorf("%w: Authorization scheme is not %s", ErrUnauthorized, Scheme)
	}
	rest := s[len(Scheme):]
	if rest == "" || rest[0] != ' ' {
		return h, fmt.Errorf("%w: no space after %s", ErrUnauthorized, Scheme)
	}
	seen := map[string]bool{}
	p := paramParser{s: rest}
	for {
		name, value, ok, err := p.next()
		if err != nil {
			return Header{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		if !ok {
			break
		}
		name = strings.ToLower(name)
		var dst *string
		switch name {
		case "origin":
			dst = &h.Origin
		case "destination":
			dst = &h.Destination
		case "key":
			dst = &h.KeyID
		case "sig":
			dst = &h.Sig
		default:
			continue // unknown parameters are ignored (spec)
		}
		if seen[name] {
			return Header{}, fmt.Errorf("%w: parameter %q given twice", ErrUnauthorized, name)
		}
		seen[name] = true
		*dst = value
	}
	switch {
	case h.Origin == "":
		return Header{}, fmt.Errorf("%w: X-Matrix header has no origin", ErrUnauthorized)
	case h.KeyID == "":
		return Header{}, fmt.Errorf("%w: X-Matrix header has no key", ErrUnauthorized)
	case h.Sig == "":
		return Header{}, fmt.Errorf("%w: X-Matrix header has no sig", ErrUnauthorized)
	case seen["destination"] && h.Destination == "":
		return Header{}, fmt.Errorf("%w: X-Matrix header has an empty destination", ErrUnauthorized)
	}
	return h, nil
}

// paramParser walks a comma-separated auth-param list (RFC 7235 §2.1,
// with the RFC 7230 §7 list rule that allows empty elements):
//
//	auth-param = token BWS "=" BWS ( token / quoted-string )
type paramParser struct {
	s string
	i int
}

func (p *paramParser) skipWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// next returns the next parameter; ok is false at the end of the list.
func (p *paramParser) next() (name, value string, ok bool, err error) {
	for {
		p.skipWS()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++ // empty list element
			continue
		}
		break
	}
	if p.i == len(p.s) {
		return "", "", false, nil
	}
	start := p.i
	for p.i < len(p.s) && isTChar(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", "", false, fmt.Errorf("expected a parameter name at offset %d", p.i)
	}
	name = p.s[start:p.i]
	p.skipWS()
	if p.i == len(p.s) || p.s[p.i] != '=' {
		return "", "", false, fmt.Errorf("parameter %q has no '='", name)
	}
	p.i++
	p.skipWS()
	if p.i < len(p.s) && p.s[p.i] == '"' {
		p.i++
		var b strings.Builder
		closed := false
		for p.i < len(p.s) {
			c := p.s[p.i]
			p.i++
			if c == '"' {
				closed = true
				break
			}
			if c == '\\' {
				if p.i == len(p.s) {
					break
				}
				c = p.s[p.i]
				p.i++
				if !isQuotedPair(c) {
					return "", "", false, fmt.Errorf("parameter %q escapes byte 0x%02x", name, c)
				}
			} else if !isQDText(c) {
				return "", "", false, fmt.Errorf("parameter %q contains byte 0x%02x", name, c)
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", "", false, fmt.Errorf("parameter %q has an unterminated quoted string", name)
		}
		value = b.String()
	} else {
		start := p.i
		// Colons are allowed unquoted for older senders (spec).
		for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == ':') {
			p.i++
		}
		if p.i == start {
			return "", "", false, fmt.Errorf("parameter %q has no value", name)
		}
		value = p.s[start:p.i]
	}
	p.skipWS()
	if p.i < len(p.s) {
		if p.s[p.i] != ',' {
			return "", "", false, fmt.Errorf("unexpected byte %q after parameter %q", p.s[p.i], name)
		}
		p.i++
	}
	return name, value, true, nil
}

// isTChar reports whether c is a token character (RFC 7230 §3.2.6).
func isTChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isQDText reports whether c may appear unescaped in a quoted string
// (RFC 7230 §3.2.6: HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text).
func isQDText(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) || c >= 0x80
}

// isQuotedPair reports whether c may follow a backslash (RFC 7230 §3.2.6:
// HTAB, SP, VCHAR, obs-text).
func isQuotedPair(c byte) bool {
	return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7E) || c >= 0x80
}
