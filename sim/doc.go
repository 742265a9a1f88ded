// Package sim is the deterministic mesh simulator: real homeservers and
// low-bandwidth clients exchanging real datagrams over simulated links in
// virtual time (DESIGN.md "The runtime model").
//
// # Model
//
// One clock.Fake is the only clock and its timer heap the only event
// queue, ordered by (virtual time, creation sequence). Every node timer,
// link transmission, arrival and scenario action is an entry in it; Run
// pops entries until the scenario's duration and, after each instant,
// flushes every endpoint's outgoing datagrams in endpoint order. All
// randomness comes from one seed: the link model draws from its own
// ChaCha8 stream, and every key, node RNG and CoAP/Noise RNG is seeded from
// a master stream in scenario order. No goroutine, wall clock or map
// iteration order decides anything, so a seed gives the same run byte for
// byte.
//
// Nodes are the production code, driven without a loop:
//
//   - a server is a homeserver.Node with its own SQLite store (a temporary
//     directory per run, removed afterwards), a gateway.CoAPFrontDoor
//     behind a gateway.CoAPNode under Noise that accepts clients and pins
//     every other server (Noise_KK), and a gateway.MeshRemote as its
//     federation transport: each federation request a CoAP request over
//     the Noise session, crossing the simulated links like everything
//     else. The Noise handshake, keepalive and no-reply timers
//     (noise.DeriveTimers) come from coap.LinkParams of the endpoint's
//     slowest link; the CoAP timers towards each peer from the path to
//     that peer (coap.Config.PeerLink, pathParams: latencies, frame times
//     and per-bit times of the hops added up), so a server answers its
//     client on a fast link with that link's timers. The ACK delay is a
//     quarter of the fastest link's ACK timeout towards every peer: a
//     slow peer waits no longer for an answer that needs work across the
//     slow link, it gets an empty ACK and a separate response.
//   - a client is a user created directly in its server's store and logged
//     in without touching any link; it then speaks the client API over its
//     own CoAPNode and Noise session (MSC3079: path codes, the access token
//     in option 256 sent once, bodies as codec frames) and follows /sync
//     either by CoAP Observe (MSC3079 "HTTP long-polling -> CoAP
//     OBSERVE", the default) or by long-polling. It joins rooms it is
//     invited to unless told not to.
//
// # Links
//
// A link joins two endpoints and has two directions, each a drop-tail
// queue (Queue datagrams, default 64) in front of a transmitter. A
// datagram's airtime is FrameTime + 8·bytes/Bitrate; it arrives after
// queueing + airtime + Latency, unless it is lost (probability Loss), sent
// during a partition (Down windows: the sender cannot tell, so airtime is
// spent and the datagram lost) or larger than the MTU. Duplicate sends a
// second copy; Reorder adds a random extra delay of up to 2·Latency +
// airtime. HalfDuplex makes both directions share one channel. DutyCycle
// lets a transmission start only in the first On of every Period;
// MaxAirtime f keeps a sender silent for A·(1/f − 1) after a frame of
// airtime A (as regional duty-cycle rules for licence-free radio bands
// do). Every byte is counted per link and direction (LinkStats).
//
// Routing is static: each endpoint's next hop towards every other is found
// by breadth-first search over the links in file order, and only servers
// forward, so a three-server line carries a.mesh→c.mesh datagrams through
// b.mesh. NOTSPEC: mesh routing protocols (batman-adv, Babel, OLSR) find
// routes dynamically; a partition here does not reroute.
//
// # Scenario file
//
// YAML (gopkg.in/yaml.v3), parsed strictly: unknown or repeated fields and
// every validation error name their line.
//
//	name: two servers          # optional
//	seed: 1                    # optional; --seed overrides; 0 means 1
//	duration: 20m              # virtual time to run (Go duration syntax)
//	servers:
//	  - name: a.mesh           # a Matrix server name
//	clients:
//	  - user: alice            # localpart, unique in the scenario
//	    server: a.mesh
//	    sync: observe          # or poll
//	    no_auto_join: false
//	links:
//	  - name: lora             # optional label
//	    between: [a.mesh, b.mesh]   # servers, or a client and its server
//	    bitrate: 1200          # bit/s; 0 = no serialisation delay
//	    frame_time: 0s
//	    latency: 50ms
//	    loss: 0.1              # probabilities per datagram
//	    duplicate: 0
//	    reorder: 0
//	    queue: 64
//	    mtu: 0                 # 0 = unlimited
//	    half_duplex: true
//	    duty_cycle: {period: 1m, on: 10s}
//	    max_airtime: 0.01
//	    down: [{from: 4m, to: 9m}]
//	actions:
//	  - {at: 5s, user: alice, do: create_room, room: chat, invite: [bob]}
//	  - {at: 1m, user: bob, do: join, room: chat}
//	  - {at: 2m, user: alice, do: invite, room: chat, invite: [carol]}
//	  - {at: 5m, user: alice, do: send, room: chat, count: 10, every: 30s, text: hi}
//
// Rooms are named by labels; the room ID is learned when create_room is
// answered, and an action on a room that does not exist yet is recorded as
// a failure. Each message's body carries its number ("hi #3") so that
// receivers recognise it.
//
// # Measurements
//
// A message's expected recipients are the other clients whose join had
// been answered when it was sent; it is delivered to one when it appears
// in a /sync answer that client received, and its latency runs from the
// send action to then. Result gives the delivery ratio, latency p50/p95/max
// overall and per server pair, every link direction's counters and
// airtime utilisation, bytes on the air per delivery, failed actions, and
// the trace hash: SHA-256 over the transcript of link events in order,
// each kind (1 byte), virtual time since the start (ns, 8 bytes big
// endian), link index (2), direction (1), length (4) and, when a datagram
// is offered to a link, its bytes. testdata/golden.txt pins the hash of
// every example: same seed, same hash, or the test fails (rerun with
// -update when a change of datagrams is intended). WriteText prints the
// summary, WriteSVG a timeline of every transmission per link direction
// and the latency of every delivery.
package sim
