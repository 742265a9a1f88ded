// Package gateway is the node's front doors and outbound transport.
//
// It translates between the outside world and the homeserver's one API
// surface (homeserver.Request / homeserver.Response):
//
//   - the HTTP(S) front door: Matrix clients and ordinary homeservers speak
//     HTTPS+JSON; each request becomes one homeserver.Request;
//   - the CoAP front door: low-bandwidth clients and mesh peers speak CoAP
//     (package coap) over UDP, secured by Noise (package noise), with CBOR
//     payloads (package codec); a plain-UDP mode without Noise is allowed on
//     loopback addresses only, for debugging with standard CoAP tools.
//
// # The CoAP front door (coap_front*.go)
//
// CoAPFrontDoor is the fallback handler of a CoAPNode (every path that is
// not a registered resource) and turns each CoAP request into one
// homeserver.Request, following MSC3079 (low-bandwidth client-server API):
//
//   - method: GET, POST, PUT, DELETE (RFC 7252 §5.8); others 4.05;
//   - path: the Uri-Path options, each percent-encoded as one segment, then
//     MSC3079 Appendix B path codes expanded by codec.ExpandPath ("/9/!r:hs/
//     m.room.message/1" is PUT …/rooms/!r:hs/send/m.room.message/1); full
//     /_matrix paths pass unchanged; an unknown code is 4.04 M_UNRECOGNIZED;
//   - query: one Uri-Query option per "name=value" (RFC 7252 §6.5);
//   - access token: CoAP option 256 (MSC3079 "Access Tokens"), a bare token
//     or "Bearer TOKEN". It is sticky: a request without it reuses the one
//     the same peer sent last. Under Noise the peer is the client's static
//     key, so the token survives re-handshakes of that key; in plain mode
//     it is the ip:port. NOTSPEC: MSC3079 asks clients to resend it on a
//     "new connection"; the Noise key already authenticates the client, so
//     the server keeps it per key (at most 4096, oldest forgotten first;
//     a forgotten client gets 401 M_MISSING_TOKEN and CoAPClient resends);
//   - body: Content-Format 60 (application/cbor) is CBOR with MSC3079's
//     integer keys (codec.TableMSC3079), decoded to JSON; 65060 is a codec
//     frame (a newer one than the door reads is 4.15, "Frame versions"
//     below); 65061 a packed transaction from a pinned server; 50 or none
//     is JSON; the media formats 0, 21, 22, 23, 41 and 42 (with option
//     65004 naming any other media type) are passed raw as a media upload
//     (coap_front_media.go); others 4.15;
//   - answer: CBOR (TableMSC3079, Content-Format 60) unless the client sent
//     Accept 50, or sent JSON without Accept (MSC3079: never CBOR to a JSON
//     request unless accepted); media comes back raw in its format;
//     an Accept other than 50/60/65060 is 4.06. The HTTP
//     status maps to a CoAP code as RFC 8075 §7 does (200 → 2.05 for GET,
//     2.04 for PUT/POST, 2.02 for DELETE; 4xx/5xx → the same class.detail
//     where CoAP has it, with 4.09 from RFC 8132 and 4.29 from RFC 8516,
//     else 4.00/5.00); MSC3079 has no table of its own, and the Matrix
//     errcode in the body carries the detail. A 429 carries Max-Age =
//     retry_after_ms in seconds, rounded up (RFC 8516 §2).
//
// Long-polling: a /sync timeout is capped at MaxSyncWait (20 s) so that a
// late answer goes out as a separate response (RFC 7252 §5.2.2: an empty
// ACK first, the answer as its own CON) well within EXCHANGE_LIFETIME.
// NOTSPEC: the client-server API lets the client choose any timeout. A GET
// /sync with Observe 0 (MSC3079 "CoAP OBSERVE", RFC 7641) is answered with
// an immediate /sync; then the front door long-polls the node on the
// observer's behalf and pushes every /sync response that moved on as a
// confirmable notification to that observer alone (the registration is
// keyed by peer and CoAP token), each exactly a /sync response with its
// next_batch. Large ones go block-wise (RFC 7959 §2.6). One notification
// is outstanding at a time: the next long-poll starts from a next_batch
// only once the client acknowledged that notification and fetched all
// its blocks (coap.NotificationDone), so a newer notification never
// replaces one whose events the client lacks; events arriving meanwhile
// come in the next notification. An undelivered notification is followed
// by one carrying everything since the last delivered next_batch. A
// re-registration with the same token continues from the last next_batch
// delivered. Answers
// and notifications carry Max-Age 5 min, so an idle observer re-registers
// rarely (RFC 7641 §3.3.1; BENCHMARKS.md). It stops
// when the observer is gone or a /sync fails (the error is the final
// notification).
//
// Security: the listener speaks Noise (package noise) with the server's
// static key; mesh servers are pinned (config "mesh.peers", `mxmesh peer
// add`), clients are accepted by key (noise.Config.AcceptClients) and
// authenticate with their access token. Plain CoAP (ListenCoAPFrontDoor
// with Plain) is for debugging with standard tools and binds loopback
// only. CoAPClient is the matching client (also behind `mxmesh client`).
//
// # Federation over the mesh (mesh_*.go)
//
// Homeservers federate with pinned mesh peers over the same CoAP/Noise
// socket that serves clients. RemoteChooser is the node's
// homeserver.Remote: a destination named in config "mesh.peers" goes
// through MeshRemote, every other server through FederationRemote (HTTPS,
// discovery, X-Matrix). One federation request is one CoAP exchange
// (MeshRequest, MeshResponse), inside one Noise transport packet per
// datagram:
//
//	UDP payload = index (1–2 B) | counter (1–2 B) | AEAD(CoAP message) | tag (16 B)
//	CoAP        = 4 B header (CON, method code: GET 0.01, POST 0.02, PUT 0.03, DELETE 0.04)
//	              | token (0–2 B)
//	              | Uri-Path (11): the codec path code, then each parameter
//	                percent-decoded ("~0", txnId for PUT /_matrix/federation/v1/send/{txnId};
//	                "~F" for query/profile; "~S" for /_matrix/key/v2/server; codec/paths.go)
//	              | Content-Format (12) 65060 when there is a body
//	              | Uri-Query (15): one "name=value" per query parameter
//	              | Accept (17) 65060
//	              | 0xFF | body: a codec frame (codec.EncodeFrame: mesh key table,
//	                zstd with the shipped dictionary when smaller); JSON that CBOR
//	                cannot carry (a float) goes as Content-Format 50 instead
//
// A GET of query/profile is 53 bytes of CoAP, an empty transaction
// 34 (mesh_wire_test.go has them byte by byte). The answer is the CoAP
// response code for the HTTP status (RFC 8075 §7, as for clients; 2.05,
// 2.04 and 2.02 read back as 200) with the JSON body as a frame; bodies
// larger than a block travel block-wise (RFC 7959). A non-2xx answer
// becomes a *homeserver.RemoteError carrying the Matrix errcode, a lost
// exchange (EXCHANGE_LIFETIME without an answer, or a refused handshake)
// a transport error: the node's per-destination queue retries as over
// HTTPS.
//
// Authentication: no X-Matrix header and no Authorization option are
// sent. The receiving front door sets homeserver.Request.PeerServer to the
// Noise peer's name when, and only when, the session's peer is a server
// whose Noise or signing key the operator pinned (noise.Endpoint.Pinned;
// CoAPRequest.Server): the identity binding in the handshake proved that
// server name's signing key signed the Noise key. Nothing in the CoAP
// message can set it. Clients ("~" names) and peers learned by trust on
// first use never get it, so federation routes answer them 401.
// NOTSPEC: the server-server API requires X-Matrix on
// every request; here the Noise session stands in for it, as the
// homeserver's federation auth allows (homeserver/serverkeys.go).
//
// PDU packing (mesh_pack.go). When the node gives MeshRemote its room
// state (homeserver.Node.MeshRoomContext), a PUT …/send/{txnId} whose
// first PDU is in a room the node holds goes out with Content-Format 65061
// (ContentFormatPackedTxn, NOTSPEC: experimental range) and this body:
//
//	CBOR array(3):
//	  [0] bytes  codec frame of the transaction without "pdus"
//	  [1] text   room ID of the packed PDUs
//	  [2] array  per PDU, in order: a packed PDU (codec.Pack's CBOR array),
//	             or a byte string holding a codec frame of a PDU that does
//	             not pack (another room, or not packable)
//
// The content format is the negotiated flag: the receiver accepts it only
// from a pinned server on the send path, and unpacks inside its node loop
// against its own state (codec package doc, "the shared-state contract":
// room version, the room's 1024 newest timeline events, depth and
// timestamp of stored events, auth-event selection at the current state,
// and the names interned against the room's joined members, their servers
// and the key IDs that signed their joins; homeserver/mesh_context.go). When a PDU does not rebuild (codec.ErrStateMismatch)
// it answers 4.09 with errcode ORG.MXMESH.STATE_MISMATCH and the sender
// resends the same transaction context-free at once; a peer that answers
// 4.15 without OptionFrameVersions (no packing) gets context-free
// transactions from then on. Packed PDUs are written in codec.TableMesh1,
// so nothing is packed for a peer that reads an older table.
//
// # Frame versions
//
// Each side's limit is the newest codec table and dictionary it reads
// (CoAPFrontDoorConfig.Frames, MeshRemoteConfig.Frames; default
// codec.FramesLatest). It travels in OptionFrameVersions (65002,
// NOTSPEC: experimental range, RFC 7252 §12.2; elective, so unknown to
// older peers without harm): one opaque byte, bits 7–4 the dictionary,
// bits 3–0 the table (codec.FrameOptions.VersionsByte).
//
//   - Requests: MeshRemote adds the option with its own limit only when
//     that limit is not codec.FramesBaseline (table 2, dictionary 1); a
//     request without it is taken to read the baseline. At the defaults no
//     byte is spent.
//   - Answers: the front door writes every frame of an answer (and its
//     errors) in the older of its own limit and the requester's, so never
//     newer than the requester reads.
//   - Refusal: a frame in a request (65060, or any frame inside a packed
//     transaction, or a packed transaction at all when the door reads no
//     mesh table) newer than the door's limit is answered 4.15 with
//     errcode M_NOT_JSON and OptionFrameVersions carrying the door's limit,
//     before the request is dispatched. The head of that answer, for a door
//     limited to table 1 and no dictionary, is
//     60 8f 0001 | c2 fe24 (Content-Format 65060) | e1 fcd1 01
//     (OptionFrameVersions = 0x01) (mesh_negotiate_test.go).
//   - Retry: MeshRemote records for that peer (by server name, so across
//     Noise sessions, until the process restarts) the older of its limit and
//     the peer's, resends the request once, context-free, in those versions
//     (MeshStats.Renegotiated), and writes every later request to that
//     peer in them directly: no extra round trip. A recorded peer is never
//     raised again: a peer that upgrades gets the older versions until
//     restart.
//
// CoAPClient always writes and reads codec.FramesLatest; MSC3079 clients
// (Content-Format 60) are unaffected.
//
// Measured (BENCHMARKS.md "Federation over the mesh"): a transaction with
// one signed "hello" PDU (packed: 95 B) and its answer cost 263 bytes of
// UDP payload in two datagrams on a warm session (185 B request, 78 B
// answer), 455 bytes context-free, against ≈ 1.7 KB over HTTPS+JSON.
//
// # Outbound HTTPS: federation and push gateways
//
// FederationRemote (fed_remote.go, fed_client.go, fed_discovery.go) sends
// the node's federation requests over HTTPS with X-Matrix signing, after
// server discovery (.well-known, SRV, port 8448) and with TLS verification
// unless disabled for tests; PushClient (push.go) posts notifications to
// push gateways. Both connect to hosts that users choose (server names in
// joins, directories, profiles, mxc:// URIs; pushers' URLs), so both check
// the address actually dialled (after DNS and SRV, no proxy) with one
// guard (addrguard.go): loopback, private, link-local, shared, reserved and
// documentation addresses are refused unless federation.allowed_ranges,
// federation.allow_private_addresses or push.allow_private_addresses say
// otherwise. Pinned mesh peers (CoAP/Noise) are configured by the operator
// and not guarded.
//
// The protocol engines in coap and noise are sans-I/O state machines; this
// package owns the sockets and the goroutines that feed them, and posts the
// resulting requests into the node loop. Endpoints are never defined here:
// they live once in package homeserver.
package gateway
