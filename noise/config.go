package noise

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"time"

	fnoise "github.com/flynn/noise"

	"github.com/mxmesh/mxmesh/coap"
)

// Defaults for the zero values of Config's durations and limits.
const (
	DefaultHandshakeTimeout  = 5 * time.Second // the minimum; see DeriveTimers
	DefaultHandshakeAttempts = 5
	DefaultRekeyAfter        = time.Hour
	DefaultNoReplyTimeout    = 15 * time.Second
	DefaultKeepaliveTimeout  = 10 * time.Second
	DefaultHandshakeRate     = 50 // message-1s per second before cookies are required
	DefaultSourceRate        = 5  // message-1s per second per source address
	DefaultMaxQueued         = 16 // plaintexts queued per peer behind a handshake
	DefaultMaxClients        = 1024

	// rekeyAfterMessages: start a new handshake once a session sent this
	// many packets; rejectAfterMessages: never use a counter this high (the
	// replay window also refuses it). Both far below 2^64-1, which the Noise
	// spec (§5.1) reserves.
	rekeyAfterMessages  = 1 << 60
	rejectAfterMessages = 1 << 62

	maxSources     = 4096 // per-source rate-limit entries kept
	maxPendingXX   = 256  // responder XX handshakes awaiting message 3
	maxKKHintPeers = 4    // DH attempts for one KK key hint
	cookieUseFor   = cookieSecretLifetime - 10*time.Second
)

// prologue is mixed into every handshake (Noise spec §6), binding it to
// this protocol and version.
var prologue = []byte("mxmesh-noise-v1")

// suite is Noise_*_25519_ChaChaPoly_BLAKE2s (Noise spec §12).
var suite = fnoise.NewCipherSuite(fnoise.DH25519, fnoise.CipherChaChaPoly, fnoise.HashBLAKE2s)

// Address is the caller's opaque datagram address. It must be comparable
// (sessions and rate limits are keyed by it) and give bytes for the cookie
// MAC. netip.AddrPort satisfies it; the zero value means "unknown".
type Address interface {
	comparable
	AppendBinary(b []byte) ([]byte, error)
}

// KeyPair is an X25519 Noise static key pair.
type KeyPair struct {
	Private []byte // 32 bytes
	Public  []byte // 32 bytes
}

// GenerateKeyPair makes a Noise static key pair from rng.
func GenerateKeyPair(rng io.Reader) (KeyPair, error) {
	k, err := suite.GenerateKeypair(rng)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate noise key: %w", err)
	}
	return KeyPair{Private: k.Private, Public: k.Public}, nil
}

// Peer is one entry of the peer table: a pin of a server name to its keys.
type Peer[A Address] struct {
	// Name is the peer's Matrix server name.
	Name string
	// NoiseKey is the peer's 32-byte Noise static public key. Nil means
	// not known yet: the first handshake is Noise_XX, allowed only with
	// Config.TrustOnFirstUse or a known SigningKey.
	NoiseKey []byte
	// SigningKey is the peer's Matrix ed25519 signing key. When set, any
	// identity binding the peer presents must be signed by it.
	SigningKey ed25519.PublicKey
	// Addr is where to send the first handshake; the zero value means
	// unknown (the peer must contact us first). It follows the peer as
	// authenticated packets arrive from new addresses.
	Addr A
	// Mutual says the peer has pinned our key too, so Noise_KK (no identity
	// binding, smaller first message) is used instead of Noise_IK.
	Mutual bool
}

// Config configures an Endpoint.
type Config[A Address] struct {
	// ServerName is our Matrix server name (1–255 bytes).
	ServerName string
	// Static is our Noise static key pair.
	Static KeyPair
	// SigningKey is our Matrix ed25519 signing key; it signs the binding of
	// Static.Public to ServerName once, at New.
	SigningKey ed25519.PrivateKey
	// Peers is the initial peer table.
	Peers []Peer[A]
	// TrustOnFirstUse accepts peers that are not in the table, and lets us
	// contact peers whose Noise key is unknown, pinning what their identity
	// binding shows (reported as EventLearned).
	TrustOnFirstUse bool
	// AcceptClients accepts initiators that claim a name starting with
	// ClientPrefix as clients, whatever their key: they are named
	// ClientName(key), so a client never passes for a Matrix server, and
	// nothing is learned or reported (trust on first use does not apply).
	// A low-bandwidth client authenticates the server (it pinned our key)
	// and then itself with an access token inside the session. At most
	// MaxClients are kept; the least recently heard one is forgotten first.
	AcceptClients bool
	// MaxClients bounds the client peers kept; default 1024.
	MaxClients int
	// Random supplies ephemeral keys, session indices, cookie secrets and
	// nonces. Required; use clock.SystemRNG in production.
	Random io.Reader
	// Logger receives debug and info records; nil discards them.
	Logger *slog.Logger

	// Link describes the link towards the peers, as for the CoAP layer
	// above; the zero value is a fast link. HandshakeTimeout,
	// NoReplyTimeout and KeepaliveTimeout left zero are derived from it
	// (DeriveTimers), so that a slow link is not swamped by retries.
	Link coap.LinkParams
	// ExpectsReply says whether the peer will answer a plaintext; nil
	// means every one is answered. A packet that expects none (a CoAP ACK,
	// RST or NON) neither starts the no-reply timer when sent nor makes
	// the receiver owe a keepalive, so a quiet link carries no keepalive
	// after each exchange. Both ends must use the same rule.
	ExpectsReply func(plaintext []byte) bool

	HandshakeTimeout  time.Duration // retry message 1 after this; default from Link (5 s on a fast link)
	HandshakeAttempts int           // give up after this many message 1s; default 5
	RekeyAfter        time.Duration // new handshake after this session age; default 1 h
	RejectAfter       time.Duration // never use a session older than this; default 2×RekeyAfter
	NoReplyTimeout    time.Duration // re-handshake when sent packets get no answer this long; default from Link (15 s on a fast link)
	KeepaliveTimeout  time.Duration // send an empty packet if we received but sent nothing this long; default from Link (10 s on a fast link), negative disables
	HandshakeRate     float64       // message-1s per second accepted without cookies (burst = 2×); default 50
	SourceRate        float64       // message-1s per second per source (burst = 2×); default 5
	MaxQueued         int           // plaintexts queued per peer during a handshake; default 16
}

// Timers are the link-dependent timers of an Endpoint.
type Timers struct {
	Handshake time.Duration // Config.HandshakeTimeout
	NoReply   time.Duration // Config.NoReplyTimeout
	Keepalive time.Duration // Config.KeepaliveTimeout
}

// DeriveTimers scales the handshake retry, no-reply and keepalive timers
// to a link, from the ACK_TIMEOUT the CoAP layer derives for it
// (coap.Derive: 2 s on a fast link, twice the link round trip with a
// full frame each way on a slow one):
//
//	Handshake = max(5 s, ACK_TIMEOUT)     a message 1 and 2 round trip
//	Keepalive = max(10 s, ACK_TIMEOUT)
//	NoReply   = max(15 s, 3·ACK_TIMEOUT)  after the peer's keepalive had time to arrive
//
// On a fast link these are the WireGuard-like defaults (5 s, 10 s, 15 s);
// below about 1 kbit/s they stretch, so retries never outpace what the
// link drains.
func DeriveTimers(l coap.LinkParams) (Timers, error) {
	p, err := coap.Derive(l, 0, 0)
	if err != nil {
		return Timers{}, fmt.Errorf("noise: derive timers: %w", err)
	}
	return Timers{
		Handshake: max(DefaultHandshakeTimeout, p.AckTimeout),
		Keepalive: max(DefaultKeepaliveTimeout, p.AckTimeout),
		NoReply:   max(DefaultNoReplyTimeout, 3*p.AckTimeout),
	}, nil
}

func (c *Config[A]) setDefaults() error {
	t, err := DeriveTimers(c.Link)
	if err != nil {
		return err
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = t.Handshake
	}
	if c.HandshakeAttempts <= 0 {
		c.HandshakeAttempts = DefaultHandshakeAttempts
	}
	if c.RekeyAfter <= 0 {
		c.RekeyAfter = DefaultRekeyAfter
	}
	if c.RejectAfter <= c.RekeyAfter {
		c.RejectAfter = 2 * c.RekeyAfter
	}
	if c.NoReplyTimeout <= 0 {
		c.NoReplyTimeout = t.NoReply
	}
	if c.KeepaliveTimeout == 0 {
		c.KeepaliveTimeout = t.Keepalive
	}
	if c.HandshakeRate <= 0 {
		c.HandshakeRate = DefaultHandshakeRate
	}
	if c.SourceRate <= 0 {
		c.SourceRate = DefaultSourceRate
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.MaxClients <= 0 {
		c.MaxClients = DefaultMaxClients
	}
	return nil
}
