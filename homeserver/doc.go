// Package homeserver is an mxmesh node: the Matrix Client-Server and
// Server-Server (federation) APIs defined once, served by whichever front door
// (HTTP in gateway, CoAP/Noise) translates requests into it.
//
// # Runtime model
//
// A Node owns all of its state and is driven from one loop (DESIGN.md "The
// runtime model"). Nothing in a Node is locked; every call into it comes
// from that loop:
//
//   - Real mode: a Loop goroutine (loop.go) runs posted functions in
//     order; CPU-heavy work that touches no node state (bcrypt) runs
//     beside it through Node.Offload and posts its continuation back. Front
//     doors call Node.Handle, which posts Dispatch into the loop and waits
//     for the Response (or for the request context to end, which cancels
//     the Call inside the loop). Timers from Node.AfterFunc post their
//     callbacks into the loop.
//   - Tests and the simulator: one driver calls Node.Dispatch directly and
//     moves a clock.Fake; timer callbacks run inside Fake.Advance.
//
// The node reads time only from its clock.Clock and randomness only from
// its RNG (access tokens are 256 bits from it), so a seeded run is
// reproducible byte for byte.
//
// # Request flow and the route table
//
// The route table is built once in New from routeGroups (routes.go): one
// function per area (info, accounts, rooms, federation, e2ee) returns its
// Routes (api.go: Method, Pattern with {name} segments, Auth mode,
// Unlimited) and keeps its per-node state as a module (Node.SetModule;
// the rooms module is roomsModule in room.go, room federation is fedRooms
// in fedroom.go). Node.Intercept puts a handler in front of a local one
// (used to answer questions about other servers' users over federation).
//
// Dispatch(req, reply) → size check (413 M_TOO_LARGE beyond
// max_request_bytes) → route match on the percent-encoded path split at
// "/" (404 M_UNRECOGNIZED for an unknown path, 405 M_UNRECOGNIZED for a
// known path with another method) → access token (401 M_MISSING_TOKEN /
// M_UNKNOWN_TOKEN) → token bucket, per user for authenticated calls and
// per remote IP for the rest, failed token checks included (429
// M_LIMIT_EXCEEDED with retry_after_ms; routes marked Unlimited and admins
// are exempt) → Route.Handle. The handler answers
// with Call.Reply or Call.Fail, at once or later from inside the loop
// (long-poll waiters register Call.OnCancel to clean up if the client
// leaves first). Errors follow client-server-api "Standard error response":
// {"errcode": "M_…", "error": "…"}.
//
// # Accounts
//
// Spec sections implemented here (client-server-api): "Account
// registration and management" (/register with m.login.dummy user-
// interactive auth, /register/available, password change, deactivation),
// "Login" (m.login.password with m.id.user identifiers, logout,
// logout/all, whoami), "Device management" (list/get/update/delete with
// m.login.password UIA), "User-Interactive Authentication API", and
// Synapse's shared-secret registration (/_synapse/admin/v1/register:
// HMAC-SHA1 over nonce NUL user NUL password NUL admin|notadmin, keyed by
// the configured secret).
//
// Passwords are bcrypt hashes; access tokens are stored as their SHA-256.
// Each device has exactly one access token.
//
// NOTSPEC: refresh tokens are not issued (refresh_token is never returned);
// access tokens do not expire.
//
// # Rooms and sync
//
// room*.go, sync*.go, messages.go. Every event this node creates goes
// through roomBatch.append (room.go): prev_events from the forward
// extremities, auth events chosen by the rules, hashed, signed, checked
// with auth.Check, then stored in one transaction with the rest of the
// request (store.RoomTx). Room state is kept as state groups
// (store.InsertStateGroup, stored as deltas against a parent group): each
// event row records the group before and after it, and the room's current
// state is a group too. roomsModule caches each room's state, extremities
// and newest position (roomCache) and the membership rows of every room.
//
// One stream counter orders everything a client syncs: timeline events,
// receipts, account data, to-device messages, device list changes. A sync
// token is "s" POS ["_" TYPING] (sync_token.go); positions are persisted
// with their rows, so tokens survive restarts. Events from other servers
// that are not part of the timeline (auth chains, state fetched for a
// join or a gap, soft-failed events: outliers) get negative positions
// counting down from the smallest one stored (fedRooms.negPos), and so do
// events backfilled from other servers when a user pages back past the
// oldest one here (fedroom_backfill.go): the timeline grows downwards into
// negative positions, and /messages tokens can be negative ("s-17");
// outliers stay flagged and out of every timeline.
//
// Long-poll /sync (sync.go) registers a syncWaiter per pending request with
// a timer for its timeout; roomsModule.write wakes the waiters of every
// user a committed batch concerns (joined and invited members of rooms
// with new events, targets of membership changes) once the batch's cache
// updates are applied, whether the events were made here or received over
// federation. Typing, receipts and account data wake them too.
//
// History visibility (visibility.go) is judged event by event against
// the state before each event, for users (/messages, /sync, /event,
// /context, relations, search) and for other servers (events they may
// not see are served redacted). Relations and the text of messages are
// indexed as events are stored (store/relations.go, store/search.go):
// relations.go serves /relations and the bundled aggregations in
// unsigned, threads.go /threads, search.go /search. The space hierarchy
// is room_hierarchy.go. slidingsync*.go serves simplified sliding sync
// (MSC4186, for Element X) on the same long-poll waiters and timeline
// helpers as /sync.
//
// # Federation
//
// Spec: server-server-api. The node reaches other servers only through
// the Remote it is given (Options.Remote; DESIGN.md "The runtime model"):
//
//	Remote.Do(dest, OutboundRequest{Method, URI, Body, Unsigned}, done)
//
// Do returns at once; done(OutboundResponse{Status, Body}, err) runs later
// inside the loop (never inside Do). err is nil for 2xx, a *RemoteError
// for other answers, anything else for transport failures. The Remote signs
// with X-Matrix. Implementations: gateway.FederationRemote (HTTPS with
// server discovery and TLS; answers posted into the Loop) and
// MemoryNetwork (in process, FIFO-queued, driven by Step/Run: tests and
// the simulator). A node without a Remote fails every request.
//
// Inbound: routes with Auth AuthFederation are rate limited per remote IP
// (rate_limit.federation_per_ip) before anything else, then
// authenticated in Dispatch before the handler runs: xmatrix.Verify with
// destination = our server name, keys from a keys.Cache over SQLite
// (store.ServerKeys); then limited per origin
// (rate_limit.federation_per_origin; 429 M_LIMIT_EXCEEDED, ratelimit.go).
// An unknown or expired key makes the node fetch the origin's
// /_matrix/key/v2/server through the Remote (one fetch per server in
// flight; after a failure the server is not asked again for a minute,
// doubling up to an hour; fetches that inbound requests start share a
// budget of 60 a minute), then ask the configured key_notaries in order,
// and retry; the call waits in the loop meanwhile. A request whose transport already
// authenticated the server (Request.PeerServer, a Noise session) needs no
// X-Matrix; one it carries must name the same origin. Failures: 401
// M_UNAUTHORIZED (no/malformed header, other destination) or 401
// M_FORBIDDEN (unknown/expired key, bad signature). Call.Origin is the
// authenticated server.
//
// Endpoints here: /_matrix/key/v2/server (with the Noise key binding when
// Options.NoiseKey is set), /_matrix/key/v2/query (notary: POST and GET;
// missing servers are fetched first), /_matrix/federation/v1/version,
// /.well-known/matrix/server and /client (when configured),
// /_matrix/federation/v1/send/{txnId}, query/profile, query/directory,
// publicRooms, user/devices, user/keys/query and user/keys/claim. Client
// requests about other servers' users and aliases (GET
// /profile/@u:remote, GET /directory/room/#a:remote) are answered over
// federation through Node.Intercept in front of the local handlers; joins
// and knocks by another server's alias look it up the same way,
// /publicRooms?server=S asks S's directory, and the space hierarchy
// (room_hierarchy.go) asks a remote space's servers for its summary.
//
// Room federation (fedroom*.go): every PDU received, from a transaction,
// a join's state and auth chain, get_missing_events or backfill, runs the
// receive pipeline of fedroom_receive.go in the spec's order (format,
// signatures, content hash, auth events, state before, soft failure), one
// room at a time in arrival order (fedRooms.queue); checked events are
// stored by fedroom_store.go, resolving state with stateres when the
// extremities fork. fedroom_join.go is the client side (make/send join,
// invite, leave, knock), fedroom_serve.go the server side of the room
// endpoints.
//
// PeerServer: a front door whose transport authenticates the other server
// (gateway's CoAP front door over a pinned Noise session) sets
// Request.PeerServer; Dispatch then accepts federation requests from that
// server without X-Matrix (serverkeys.go).
//
// Seams for the room half of federation (Node.Federation()):
//
//   - SetPDUHandler(h): h(origin, pdu, done) receives each PDU of an
//     inbound transaction, in order, and calls done(eventID, err) once.
//     Without a handler each PDU is answered with an error; a PDU whose
//     event ID cannot be computed (room unknown here) is left out of the
//     answer.
//   - HandleEDU(type, h): EDU handlers (m.typing, m.receipt, m.presence,
//     m.device_list_update, m.signing_key_update, m.direct_to_device),
//     each checking that what it is about belongs to the origin.
//   - SendPDU(dests, pdu) / SendEDU(dests, type, content): queue for
//     delivery; SetCatchUp(h): h(dest) runs when a destination answers
//     again after failures, to queue the forward extremities.
//   - Do / DoJSON: one-off requests (make_join, get_missing_events, …);
//     EventKey: an event signing key, fetched when unknown.
//   - ServerAllowed(aclContent, server): m.room.server_acl evaluation.
//
// Outbound queues (fed_queue.go, fed_send.go, store/outbound.go): every PDU/EDU is a row in federation_outbound (SQLite)
// per destination, so queues survive restarts. One transaction in flight
// per destination, at most 50 PDUs and 100 EDUs; its ID is derived from
// the seqs it carries, so a retry reuses it and the receiver answers
// without applying twice. Failures back off exponentially (5 s doubling to
// 1 h, random in [d/2, d) from the node RNG, on the node clock; state in
// federation_destinations). An inbound transaction from a backed-off
// destination retries it at once. EDUs for a destination that is down are
// capped: typing and presence at 100 (oldest dropped), the others (device
// lists, to-device, receipts) are kept but not queued beyond 1 MiB.
//
// Inbound transactions: the body's origin must equal the X-Matrix origin
// (403), at most 50 PDUs and 100 EDUs (400 M_TOO_LARGE), PDUs of at most
// 65536 bytes (per-PDU error). (origin, txnId) answers are kept 24 h:
// a replay gets the same answer and nothing is re-applied; a copy arriving
// while the first is still processed waits for its answer.
//
// NOTSPEC: a transaction body is bounded by max_request_bytes (1 MiB by
// default) like every request, below the 50 × 64 KiB the PDU limits allow.
//
// # End-to-end encryption and media
//
// e2ee.go (device and one-time keys, device lists), e2ee_xsign.go
// (cross-signing keys and signatures), todevice.go and presence.go serve
// the key management and per-device streams of client-server-api
// "End-to-End Encryption", locally and over federation; each file's
// comment gives its protocol; keybackup.go is server-side key backup
// (/room_keys). media*.go is the content repository (uploads, downloads,
// thumbnails, remote media over federation), the one place whose bytes
// live in files beside the database (DIR/media/).
//
// # Other client modules
//
// pushers.go and pushers_send.go: pushers and notifications to push
// gateways, evaluated when a write batch commits and sent through the
// Pusher seam (Options.Pusher; like Remote, its answers complete inside
// the loop; gateway.PushClient in real mode). user_directory.go (user
// search), ignore.go (m.ignored_user_list), report.go (event and room
// reports), room_upgrade.go (tombstones and predecessors) and timestamp.go
// (timestamp_to_event, client and federation) each give their protocol.
package homeserver
