// Package noise is mxmesh's secure datagram layer: authenticated,
// encrypted sessions between Matrix servers over an unreliable datagram
// link (UDP, LoRa, a simulated link), built on the Noise Protocol
// Framework (revision 34, noiseprotocol.org/noise.html) through
// github.com/flynn/noise.
//
// It is sans-I/O. An Endpoint owns one node's peer table, sessions and
// denial-of-service state; the caller hands it received datagrams and the
// current time, and gets back datagrams to send, delivered plaintexts,
// events and its next deadline. It opens no socket, reads no clock, starts
// no goroutine and takes its randomness from Config.Random.
//
// # Usage
//
//	ep, _ := noise.New(noise.Config[netip.AddrPort]{ServerName: "a.example",
//		Static: kp, SigningKey: signingKey, Peers: pins, Random: clock.SystemRNG()})
//	// send:
//	pkt, to, err := ep.Seal(buf[:0], now, "b.example", coapMessage)
//	if len(pkt) > 0 { conn.WriteTo(pkt, to) }
//	// receive:
//	pt, from, err := ep.Open(buf[:0], now, srcAddr, datagram) // from == "": nothing to deliver
//	// after every Seal, Open and Tick:
//	for tx, ok := ep.PollTransmit(); ok; tx, ok = ep.PollTransmit() { conn.WriteTo(tx.Data, tx.To) }
//	for ev, ok := ep.PollEvent(); ok; ev, ok = ep.PollEvent() { ... } // e.g. persist EventLearned pins
//	// timers:
//	if d, ok := ep.NextDeadline(); ok { schedule ep.Tick(d) }
//
// See Example for a complete exchange between two endpoints.
//
// # Handshake patterns
//
// All handshakes use Noise_*_25519_ChaChaPoly_BLAKE2s (spec §12) with the
// prologue "mxmesh-noise-v1" (§6):
//
//   - Noise_IK when we know the peer's static key (it is pinned or was
//     learned): one round trip, and the first message carries application
//     data (§7.7, 0-RTT; see "Replays of message 1" below).
//   - Noise_KK when the peer table says the peer pinned our key too
//     (Peer.Mutual): no static key or identity binding on the wire, so the
//     smallest first message; it also carries application data.
//   - Noise_XX only on first contact, when we do not know the peer's key:
//     with Config.TrustOnFirstUse, or when the peer's Matrix signing key
//     is known (then the identity binding authenticates the new key).
//
// # Identity binding
//
// A Noise session is an authenticated Matrix server. A server signs, with
// its Matrix ed25519 signing key (RFC 8032), the message
//
//	"mxmesh noise static key v1" 0x00 | len(name) (1 B) | server name | Noise static public key (32 B)
//
// once (BindingMessage, SignBinding). Handshake payloads that reveal a
// static key to a peer that may not know it carry the binding
//
//	len(name) (1 B) | server name | ed25519 public key (32 B) | signature (64 B)
//
// IK message 1 carries the initiator's binding; XX messages 2 and 3 carry
// the responder's and the initiator's. IK message 2 and both KK messages
// carry none: there the peer's key was pinned, and the pin is the binding.
// A peer is refused (ErrRefused) when its binding does not verify, when
// its static key or signing key differs from the one pinned for its name,
// when its key is pinned to another name, or when it is unknown and trust
// on first use is off.
//
// # Clients
//
// With Config.AcceptClients an endpoint also accepts initiators that are
// not Matrix servers: low-bandwidth clients, which pin the server's key
// (from its key token, keytext.go) and authenticate themselves inside the
// session with a Matrix access token. A client claims, in its binding, a
// name starting with "~" (ClientPrefix), which no server name can; it is
// then named ClientName(its static key), "~" and 43 characters. A key
// once seen as a client is never accepted as a server, nor the reverse.
// Clients are not learned or reported, trust on first use does not apply
// to them, and at most MaxClients are kept, the least recently heard
// forgotten first.
//
// # Key file and key token
//
// See keytext.go: "x25519 BASE64" for the static key file, and the
// "mxk1:" token (Noise key | signing key | binding signature) that `mxmesh
// peer show` prints and `mxmesh peer add` pins.
//
// # Wire format
//
// The first byte of every datagram says what it is:
//
//	0x00–0x7F  transport, receiver session index = the byte (0–127)
//	0x80–0xBF  transport, receiver session index = (byte & 0x3F)<<8 | next byte (128–16383)
//	0xC1       IK message 1          0xD1  IK message 1 with mac2
//	0xC2       KK message 1          0xD2  KK message 1 with mac2
//	0xC3       XX message 1          0xD3  XX message 1 with mac2
//	0xC4       IK message 2          0xC5  KK message 2
//	0xC6       XX message 2          0xC7  XX message 3
//	0xC8       cookie reply          others: reserved, dropped as malformed
//
// Session indices are chosen at random by the receiver of the packets
// that carry them, from the one-byte range while it has room. Multi-byte
// integers are big-endian unless said otherwise.
//
// Transport packet (19 B of overhead at realistic counters):
//
//	index (1–2 B) | counter (1–2 B varint) | ChaCha20-Poly1305 ciphertext | tag (16 B)
//
// The counter is the sender's 64-bit per-session packet counter. The wire
// carries LEB128 groups (7 bits each, low first, high bit = more): one
// group holds the whole counter while it is below 128; after that the
// sender sends its low 14 bits in two groups. A receiver accepts up to
// three groups (21 bits) and rebuilds the full value as the one nearest to
// the counter it expects next (RFC 9000 Appendix A.3), so up to 8191
// packets may be lost in a row. The full counter is the AEAD nonce: 4 zero
// bytes | counter as 8 bytes little-endian (Noise spec §12.3); the header
// bytes are the associated data (RFC 8439 §2.8). The AEAD is used directly
// with the keys of Noise's Split(), since Noise's own CipherState assumes
// in-order delivery.
//
// The replay window (1984 packets, a ring of 64-bit blocks as in RFC 6479)
// is checked before decryption and updated only after the tag verifies.
// Counters from 2^62 on are refused, and a new handshake starts at 2^60,
// far below the 2^64−1 that Noise reserves (§5.1).
//
// Message 1 (initiator → responder):
//
//	IK: type | sender index (2 B) | e (32 B) | enc(s) (48 B) | enc(timestamp | binding | data) | mac1 (16 B) [| mac2 (16 B)]
//	KK: type | sender index (2 B) | hint (4 B) | e (32 B) | enc(timestamp | data) | mac1 (16 B) [| mac2 (16 B)]
//	XX: type | sender index (2 B) | e (32 B) | 8 zero bytes of padding | mac1 (16 B) [| mac2 (16 B)]
//
// enc(x) is x plus a 16-byte tag. The timestamp is 8 bytes: Unix
// nanoseconds in the low 63 bits, strictly increasing per peer, and in the
// top bit the rekey flag, set when the initiator still holds a working
// session with the responder (see "Session lifecycle"). The KK hint is the first 4
// bytes of BLAKE2s-256("mxmesh kk hint" | initiator static | responder
// static): it lets the responder pick the pinned key for the DH without
// trying them all. NOTSPEC: it reveals to an observer which pair of
// servers is talking (KK sends no static key, so Noise itself would not).
//
// Message 2 (responder → initiator): type | sender index (2 B) | receiver
// index (2 B) | e (32 B) | [XX: enc(s) (48 B)] | enc(payload). The
// payload is empty for IK and KK and the responder's binding for XX.
//
// XX message 3: type | receiver index (2 B) | enc(s) (48 B) | enc(binding | data).
//
// Sizes without payload (timestamp, binding, data), mac2 in brackets:
// IK message 1 = 115 B [131 B], KK message 1 = 71 B [87 B], IK and KK
// message 2 = 53 B. With the IK payload, a 9-byte server name and no
// data, IK message 1 is 229 B; KK message 1 is 79 B.
//
// # Denial of service
//
// This follows the WireGuard paper (Donenfeld, NDSS 2017, §5.3–5.4),
// with our own labels. Checks run cheapest first and no DH happens before
// all of them pass:
//
//  1. Length and type. Transport packets name a session index that must
//     exist; the counter must pass the replay window.
//  2. mac1 = BLAKE2s-128(key = BLAKE2s-256("mxmesh mac1" | responder
//     static), message up to mac1), proving the sender knows our public
//     key. XX initiators do not, and use 32 zero bytes instead.
//  3. Cookies. Under load (more than HandshakeRate message 1s per second)
//     a message 1 must carry mac2 = BLAKE2s-128(key = cookie, message up
//     to mac2), where cookie = BLAKE2s-128(key = secret, source address
//     bytes) and the secret is redrawn every 2 minutes. Without a valid
//     mac2 the answer is a cookie reply:
//     type | receiver index (2 B) | nonce (24 B) | XChaCha20-Poly1305(cookie, ad = mac1) (32 B) = 59 B,
//     encrypted under BLAKE2s-256("mxmesh cookie" | responder static) so
//     that only the sender of that message 1 can use it. The initiator
//     retries at once with mac2.
//  4. Per-source token bucket (SourceRate per second, burst 2×) on the
//     caller's time.
//
// No unauthenticated datagram is answered with more bytes than it carried:
// a cookie reply (59 B) goes only to message 1s of at least 59 B, IK and KK
// message 2 (53 B) answer message 1s of at least 71 B, and XX message 2,
// which is larger than XX message 1 (59 B), is sent only to a source that
// proved its address with mac2. Everything else gets no answer at all.
//
// # Replays of message 1
//
// Early data in message 1 can be replayed by an attacker (Noise spec
// §7.7). The responder keeps, per peer, the greatest message-1 timestamp
// it accepted and refuses older or equal ones (ErrReplay), which also
// stops a replay from tearing down the live session. NOTSPEC: after the
// responder restarts it has forgotten the timestamps, so a message 1
// recorded earlier can deliver its data once more; the layer above (CoAP
// message-ID deduplication) must tolerate a duplicate.
//
// # Session lifecycle
//
// Sessions are keyed by the peer's static key, never by address: an
// authenticated packet from a new address moves the peer there (roaming),
// and Seal returns where to send. A completed handshake makes the new
// session current and keeps the previous one for packets still in flight.
// Exception: when message 1 has the rekey flag and the responder's current
// session is still good, the responder keeps sending on it (message 2 may
// be lost, and the initiator can still read the old session) and switches
// when the first packet arrives on the new one; an initiator that
// completes a rekey with nothing queued sends an empty packet at once to
// confirm it. Without the flag (first contact, or the initiator lost its
// state) the responder switches at once, so its reply to the early data
// can be read.
//
//   - Message 1 is re-sent, as a fresh handshake, every HandshakeTimeout,
//     HandshakeAttempts times; then EventHandshakeFailed.
//   - HandshakeTimeout, KeepaliveTimeout and NoReplyTimeout follow the link
//     (Config.Link, DeriveTimers): 5 s, 10 s and 15 s on a fast link, as
//     WireGuard's; on a slow one ACK_TIMEOUT, ACK_TIMEOUT and
//     3·ACK_TIMEOUT, ACK_TIMEOUT being what the CoAP layer derives for the
//     same link (RFC 7252 §4.8 scaled, package coap).
//   - The initiator of a session rekeys (a new handshake) after RekeyAfter;
//     the responder halfway between RekeyAfter and RejectAfter; a session
//     is never used after RejectAfter or past its counter limit.
//   - Restart of the peer: its sessions are gone and it drops our packets
//     (nothing unauthenticated can be answered). When we sent and received
//     nothing authenticated for NoReplyTimeout, we start a new handshake.
//     A peer that received data but has nothing to send answers with an
//     empty keepalive (18 bytes) after KeepaliveTimeout, so a quiet peer
//     is not mistaken for a restarted one. With Config.ExpectsReply (the
//     gateway uses coap.ExpectsReply: only a CoAP CON is answered), a
//     packet that expects no answer (an ACK, RST or NON) starts no
//     no-reply timer and is owed no keepalive: an exchange that ended
//     with its ACK leaves a quiet link silent. A restarted peer that wants to talk
//     handshakes itself, and a valid, fresh message 1 from a pinned key
//     replaces our session at once.
//   - Both sides initiating at once: each answers the other's message 1
//     unless it has a handshake in flight and the greater static key; then
//     it delivers the early data but waits for its own handshake, which
//     the other side answers. Both end on the same session.
package noise
