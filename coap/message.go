package coap

import (
	"errors"
	"fmt"
	"slices"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Wire is one CoAP message as it travels (RFC 7252 §3): go-coap's message
// type, whose MessageID and Type must be set (0–65535 and 0–3).
type Wire = message.Message

// Message types (RFC 7252 §3, §4).
const (
	CON = message.Confirmable
	NON = message.NonConfirmable
	ACK = message.Acknowledgement
	RST = message.Reset
)

// MaxTokenLen is the longest token this endpoint generates: tokens are 0–2
// bytes (the transport below authenticates peers, so tokens need no
// randomness; see the package doc). Received tokens may be up to 8 bytes
// (RFC 7252 §3).
const MaxTokenLen = 2

// ErrFormat marks a message format error (RFC 7252 §3, §4.2, §4.3).
var ErrFormat = errors.New("coap: message format error")

// maxDecodeOptions bounds the options one message may carry.
const maxDecodeOptions = 64

// Encode appends the encoding of m to dst (RFC 7252 §3) and returns the
// extended slice.
func Encode(dst []byte, m *Wire) ([]byte, error) {
	if m.Code == codes.Empty && (len(m.Token) > 0 || len(m.Options) > 0 || len(m.Payload) > 0) {
		return dst, fmt.Errorf("coap: encode: %w: empty message with token, options or payload", ErrFormat)
	}
	start := len(dst)
	for {
		n, err := coder.DefaultCoder.Encode(*m, dst[start:cap(dst)])
		switch {
		case err == nil:
			return dst[:start+n], nil
		case errors.Is(err, message.ErrTooSmall) && n > cap(dst)-start:
			dst = slices.Grow(dst[:start], n)
		default:
			return dst[:start], fmt.Errorf("coap: encode: %w", err)
		}
	}
}

// Decode parses one datagram into m, reusing m.Options' storage. Token,
// option values and payload alias data. Besides the codec's checks it
// enforces RFC 7252 §4.1–4.3: an Empty message carries nothing after the
// header, an ACK or RST carries no request, a NON is never Empty, a RST is
// always Empty, and codes of the reserved classes 1, 6 and 7 are refused.
func Decode(data []byte, m *Wire) error {
	if cap(m.Options) < 8 {
		m.Options = make(message.Options, 0, 8)
	}
	for {
		_, err := coder.DefaultCoder.Decode(data, m)
		if err == nil {
			break
		}
		if errors.Is(err, message.ErrOptionsTooSmall) && cap(m.Options) < maxDecodeOptions {
			m.Options = make(message.Options, 0, 2*cap(m.Options))
			continue
		}
		return fmt.Errorf("coap: decode: %w: %w", ErrFormat, err)
	}
	switch class := m.Code >> 5; {
	case class == 1 || class >= 6:
		return fmt.Errorf("coap: decode: %w: reserved code class %d.%02d", ErrFormat, class, m.Code&0x1f)
	case m.Code == codes.Empty && len(data) > 4:
		return fmt.Errorf("coap: decode: %w: empty message with %d bytes after the header", ErrFormat, len(data)-4)
	case m.Code == codes.Empty && m.Type == NON:
		return fmt.Errorf("coap: decode: %w: empty non-confirmable message", ErrFormat)
	case m.Type == RST && m.Code != codes.Empty:
		return fmt.Errorf("coap: decode: %w: reset carrying code %v", ErrFormat, m.Code)
	case m.Type == ACK && isRequest(m.Code):
		return fmt.Errorf("coap: decode: %w: acknowledgement carrying request %v", ErrFormat, m.Code)
	}
	// Options must come sorted from the codec; the engine relies on it.
	for i := 1; i < len(m.Options); i++ {
		if m.Options[i].ID < m.Options[i-1].ID {
			return fmt.Errorf("coap: decode: %w: options out of order", ErrFormat)
		}
	}
	return nil
}

func isRequest(c codes.Code) bool  { return c>>5 == 0 && c != codes.Empty }
func isResponse(c codes.Code) bool { return c>>5 >= 2 && c>>5 <= 5 }

// headerMID reads the Message ID and type of a datagram too broken to
// decode, so a confirmable one can still be rejected with a Reset (RFC 7252
// §4.2).
func headerMID(data []byte) (mid uint16, typ message.Type, ok bool) {
	if len(data) < 4 || data[0]>>6 != 1 {
		return 0, 0, false
	}
	return uint16(data[2])<<8 | uint16(data[3]), message.Type(data[0] >> 4 & 3), true
}

// Block is the value of a Block1 or Block2 option (RFC 7959 §2.2): block
// number, more flag and size exponent; the block size is 2^(SZX+4).
type Block struct {
	Num  uint32 // 0 … 2^20−1
	More bool
	SZX  uint8 // 0 … 6; 7 (BERT, RFC 8323) is refused on UDP
}

// Size is the block size in bytes.
func (b Block) Size() int { return 1 << (b.SZX + 4) }

// maxBlockNum is the largest block number a 3-byte option can carry.
const maxBlockNum = 1<<20 - 1

// Uint32 is the option's integer value: NUM<<4 | M<<3 | SZX.
func (b Block) Uint32() uint32 {
	v := b.Num<<4 | uint32(b.SZX)
	if b.More {
		v |= 8
	}
	return v
}

// ParseBlock decodes a Block1/Block2 option value (RFC 7959 §2.2).
func ParseBlock(v uint32) (Block, error) {
	b := Block{Num: v >> 4, More: v&8 != 0, SZX: uint8(v & 7)}
	if b.SZX == 7 {
		return b, fmt.Errorf("coap: block option: %w: SZX 7 is reserved on UDP", ErrFormat)
	}
	if b.Num > maxBlockNum {
		return b, fmt.Errorf("coap: block option: %w: block number %d too large", ErrFormat, b.Num)
	}
	return b, nil
}

// szxFor returns the largest SZX whose block size is at most n bytes.
func szxFor(n int) uint8 {
	szx := uint8(6)
	for szx > 0 && 1<<(szx+4) > n {
		szx--
	}
	return szx
}

// getBlock returns the block option id of m, if present.
func getBlock(opts message.Options, id message.OptionID) (Block, bool, error) {
	v, err := opts.GetUint32(id)
	if err != nil {
		if errors.Is(err, message.ErrOptionNotFound) {
			return Block{}, false, nil
		}
		return Block{}, false, fmt.Errorf("coap: option %v: %w: %w", id, ErrFormat, err)
	}
	b, err := ParseBlock(v)
	return b, err == nil, err
}

// uintOption builds an option carrying v in the minimal big-endian encoding
// (RFC 7252 §3.2).
func uintOption(id message.OptionID, v uint32) message.Option {
	var b [4]byte
	n, _ := message.EncodeUint32(b[:], v)
	return message.Option{ID: id, Value: append([]byte(nil), b[:n]...)}
}

// knownOptions are the options this endpoint understands; an unknown
// critical (odd-numbered) option in a request is answered 4.02 Bad Option
// (RFC 7252 §5.4.1).
var knownOptions = map[message.OptionID]bool{
	message.IfMatch: true, message.URIHost: true, message.ETag: true, message.IfNoneMatch: true,
	message.Observe: true, message.URIPort: true, message.LocationPath: true, message.URIPath: true,
	message.ContentFormat: true, message.MaxAge: true, message.URIQuery: true, message.Accept: true,
	message.LocationQuery: true, message.Block2: true, message.Block1: true, message.Size2: true,
	message.Size1: true, message.Echo: true, message.NoResponse: true, message.RequestTag: true,
}

func unknownCritical(opts message.Options) (message.OptionID, bool) {
	for _, o := range opts {
		if o.ID&1 == 1 && !knownOptions[o.ID] {
			return o.ID, true
		}
	}
	return 0, false
}

// ExpectsReply says whether the peer answers the datagram data: only a
// confirmable message does, with an ACK or RST (RFC 7252 §4.2); an ACK, a
// RST or a non-confirmable message gets nothing back at the message
// layer. Data that is not a CoAP message counts as expecting a reply.
// It fits noise.Config.ExpectsReply.
func ExpectsReply(data []byte) bool {
	_, typ, ok := headerMID(data)
	return !ok || typ == CON
}
