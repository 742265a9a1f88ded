// Package coap is mxmesh's CoAP message layer: a sans-I/O endpoint for the
// Constrained Application Protocol over datagrams (RFC 7252), with
// block-wise transfer (RFC 7959) and Observe (RFC 7641), tuned for slow,
// lossy links.
//
// # Wire format (RFC 7252 §3)
//
// Messages are encoded and decoded with go-coap v3's message and udp/coder
// packages; Decode adds the checks of RFC 7252 §4.1–4.3 that the codec
// leaves to its caller.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Ver| T |  TKL  |      Code     |          Message ID           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Token (TKL bytes: 0–2 from us, up to 8 accepted)            |
//	|   Options: 4-bit delta | 4-bit length, extended by 1 or 2      |
//	|   bytes (13 → +13, 14 → +269), then the value (§3.1)          |
//	|   0xFF payload marker, then the payload (absent if empty)     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Ver is 1; T is CON 0, NON 1, ACK 2, RST 3; Code is class.detail (3+5
// bits). An empty ACK is 4 bytes; a confirmable POST to a 2-byte path with
// no token is 7 (4 header + 1 option header + 2 value), plus 1 + n with an
// n-byte payload. Block1/Block2 values are NUM<<4 | M<<3 | SZX, block size
// 2^(SZX+4) (RFC 7959 §2.2); Observe values are 24-bit sequence numbers
// (RFC 7641 §2, §4.4).
//
// # The endpoint
//
// Endpoint is client and server at once. It reads no clock and touches no
// socket: the caller passes the time into Receive, Send, Respond, Notify and
// Tick, sends the datagrams Outgoing returns, handles Events, and calls Tick
// at NextDeadline. Timers fire in (deadline, creation) order, and jitter
// comes from an injected RNG, so a run is a function of its inputs.
//
//   - Messaging (RFC 7252 §4): a CON is retransmitted until ACK or RST,
//     at most MAX_RETRANSMIT times; received CON and NON Message IDs are
//     remembered per peer for EXCHANGE_LIFETIME and NON_LIFETIME, and a
//     duplicate gets the same reply again without reaching the
//     application (§4.5). A CON Empty message (ping) is answered with RST;
//     a malformed CON with a 4-byte RST — never more than it carried.
//   - Requests and responses (§5.2): an answer given before the server's
//     ACK delay (DefaultAckDelay on any link: it waits for the
//     application, not the link) rides on the ACK (piggy-backed); after
//     it, an empty ACK goes out and the answer follows as its own CON
//     (separate response), so the requester's RTT samples measure the
//     link, not the server's work. An unknown critical option is answered
//     4.02 (§5.4.1).
//   - NSTART (§4.7): at most NSTART confirmable messages per peer await
//     their ACK; the rest queue in order. Configurable above 1.
//   - PROBING_RATE (§4.7): a peer that has sent nothing for
//     MAX_TRANSMIT_SPAN while a CON or NON request of ours awaited its
//     answer is unresponsive; until it speaks again, traffic to it is
//     paid from a token bucket (PROBING_RATE, one MTU deep) and new CONs
//     and NON messages wait for it (probing.go).
//   - Tokens (§5.3.1): the shortest unused value of a rolling 16-bit counter
//     per peer: 0, 1 or 2 bytes. NOTSPEC: tokens are not random; RFC 7252
//     asks for randomness against off-path spoofing, which the Noise layer
//     below (authenticated, encrypted) already excludes. Plain mode is for
//     loopback debugging only.
//   - Block-wise (RFC 7959): a request body larger than a block is sent as
//     Block1 blocks with up to NSTART in flight; the final block goes out
//     once every earlier one was acknowledged with 2.31, so the server
//     holds a complete body when it sees M=0. The server reassembles blocks
//     in any order. A response body larger than a block is kept for
//     EXCHANGE_LIFETIME and served block by block, with an ETag and Size2;
//     the client, knowing Size2, keeps NSTART block requests in flight
//     (one block ahead without Size2) and reassembles the blocks in
//     whatever order they come. A server asking for smaller blocks
//     (§2.3) is followed.
//   - Request-Tag (RFC 9175 §3): each Block1 transfer carries the
//     shortest tag value (absent, empty, 1 byte, ...) that no running or
//     recently ended transfer to the peer holds, in every block and in the
//     Block2 requests for its answer; the server keys reassembly on it, so
//     blocks of two bodies never mix (requesttag.go).
//   - Observe (RFC 7641): a GET with Observe 0 registers; the answer and
//     each notification carry the resource's 24-bit sequence number. The
//     client delivers only fresh notifications (§3.4) and re-registers when
//     Max-Age passes without one (§3.3.1); the server sends NON
//     notifications but a CON at least every 24 hours (§4.5), replaces an
//     unacknowledged CON notification with the newer one (§4.5.2), and
//     drops an observer on RST or timeout. A notification larger than one
//     block carries an ETag and is fetched whole before it is delivered
//     (RFC 7959 §2.6); a client fetching one that a newer notification
//     replaced drops it and waits for the newer. NotifyObserver reports
//     each notification's fate (NotificationDone): delivered once
//     acknowledged and every block served, else why not, so that a
//     per-client resource can send deltas without losing one.
//   - State is bounded: per-peer limits on outstanding messages, a peer
//     cap (Config.MaxPeers), and a peer with no traffic or state for
//     EXCHANGE_LIFETIME is forgotten; unanswered requests expire after
//     EXCHANGE_LIFETIME.
//   - Congestion control: per peer, CoCoA (draft-ietf-core-cocoa-03)
//     estimates the RTO from exchanges that needed no retransmission
//     (strong, K=4) and from those that needed one or two (weak, K=1,
//     measured from the first transmission), blends them into the overall
//     RTO (½ strong, ¼ weak), ages stale estimates and backs off by a
//     variable factor (3 below, 1.5 above the middle band, else 2).
//
// # Timers derived from the link (RFC 7252 §4.8)
//
// RFC 7252's ACK_TIMEOUT of 2 s is too short where one frame is seconds on
// the air. Derive computes the parameters from LinkParams (bit rate B in
// bit/s, per-frame time F, one-way latency L, MTU M bytes) and NSTART N:
//
//	AirTime(n)        = F + 8·n/B
//	RTT_link          = 2·L + (N+1)·AirTime(M)    (N requests queued ahead of one reply)
//	ACK_TIMEOUT       = max(2 s, 2·RTT_link)
//	MAX_LATENCY       = max(100 s, 2·RTT_link)
//	PROCESSING_DELAY  = ACK_TIMEOUT
//	MAX_TRANSMIT_SPAN = ACK_TIMEOUT·(2^MAX_RETRANSMIT − 1)·ACK_RANDOM_FACTOR
//	MAX_TRANSMIT_WAIT = ACK_TIMEOUT·(2^(MAX_RETRANSMIT+1) − 1)·ACK_RANDOM_FACTOR
//	EXCHANGE_LIFETIME = MAX_TRANSMIT_SPAN + 2·MAX_LATENCY + PROCESSING_DELAY
//	NON_LIFETIME      = MAX_TRANSMIT_SPAN + MAX_LATENCY
//	PROBING_RATE      = min(1 byte/s, 1 % of B/8), PROBING_BURST = M
//
// With the zero LinkParams these are exactly RFC 7252's defaults (2 s,
// 45 s, 93 s, 247 s, 145 s, 1 byte/s). ACK_TIMEOUT seeds CoCoA's RTO, and the
// thresholds of CoCoA's backoff and aging scale with it.
package coap
