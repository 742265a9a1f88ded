package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
	"github.com/mxmesh/mxmesh/noise"
)

// meshWorld is a set of homeserver nodes federating over the mesh
// transport: over real loopback UDP sockets (udpMesh) or in memory on a
// fake clock over a simulated link (memMesh). One scenario runs on both
// (STYLE.md habit 10).
type meshWorld interface {
	// dispatch hands req to node i and waits for its answer.
	dispatch(t *testing.T, i int, req *homeserver.Request) homeserver.Response
	// linkBytes is what crossed the link so far: datagrams and bytes (UDP
	// payload: Noise, CoAP, body) in both directions, once every datagram
	// sent has been received or lost.
	linkBytes(t *testing.T) (datagrams, bytes uint64)
	// fallbackUsed counts requests the chooser sent to the non-mesh
	// transport.
	fallbackUsed() int64
	// meshStats sums the nodes' MeshRemote counters.
	meshStats() MeshStats
}

func sumStats(remotes ...*MeshRemote) MeshStats {
	var s MeshStats
	for _, r := range remotes {
		st := r.Stats()
		s.Packed += st.Packed
		s.Mismatched += st.Mismatched
		s.Renegotiated += st.Renegotiated
	}
	return s
}

func (w *udpMesh) meshStats() MeshStats {
	var rs []*MeshRemote
	for _, n := range w.nodes {
		rs = append(rs, n.mesh)
	}
	return sumStats(rs...)
}

func (w *memMesh) meshStats() MeshStats {
	var rs []*MeshRemote
	for _, n := range w.nodes {
		rs = append(rs, n.mesh)
	}
	return sumStats(rs...)
}

// meshIdent is one server's identity: names, keys, and its peers' pins.
type meshIdent struct {
	name string
	key  *homeserver.SigningKey
	kp   noise.KeyPair
	addr netip.AddrPort // memMesh only; udpMesh learns it on listen
}

func newMeshIdents(t *testing.T, rng *rand.ChaCha8, names ...string) []meshIdent {
	var ids []meshIdent
	for i, name := range names {
		key, err := homeserver.GenerateSigningKey(rng)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := noise.GenerateKeyPair(rng)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, meshIdent{name: name, key: key, kp: kp,
			addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 5683)})
	}
	return ids
}

func (id meshIdent) pin(mutual bool) noise.Peer[netip.AddrPort] {
	return noise.Peer[netip.AddrPort]{Name: id.name, NoiseKey: id.kp.Public, SigningKey: id.key.Public(), Addr: id.addr, Mutual: mutual}
}

func meshNodeConfig(t *testing.T, name string) *homeserver.Config {
	cfg := homeserver.DefaultConfig(name)
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	cfg.Dir = t.TempDir()
	return cfg
}

func openStore(t *testing.T, cfg *homeserver.Config) *store.Store {
	st, err := store.Open(filepath.Join(cfg.Dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// failingRemote is the chooser's non-mesh transport in these tests: it
// counts and fails every request, so that a test sees if anything meant
// for a mesh peer went elsewhere.
type failingRemote struct {
	post  func(func()) error
	count atomic.Int64
}

func (r *failingRemote) Do(dest string, req homeserver.OutboundRequest, done func(homeserver.OutboundResponse, error)) {
	r.count.Add(1)
	_ = r.post(func() {
		done(homeserver.OutboundResponse{}, fmt.Errorf("test: %s %s is not a mesh peer", dest, req.URI))
	})
}

// ---- real loopback UDP ----

type udpMeshNode struct {
	id   meshIdent
	node *homeserver.Node
	loop *homeserver.Loop
	udp  *UDPServer
	mesh *MeshRemote
}

type udpMesh struct {
	nodes    []*udpMeshNode
	fallback []*failingRemote
}

// coapSlowLink makes ACK_TIMEOUT long (about 20 s) and the server's ACK
// delay longer, so that on a loaded machine no request is retransmitted
// and every answer rides on its ACK: byte counts stay exact.
var coapSlowLink = coap.Config{AckDelay: 30 * time.Second, Link: coap.LinkParams{Latency: 5 * time.Second}}

// newUDPMesh starts one node per name, each like `mxmesh serve` (a node
// loop, the CoAP/Noise front door on a loopback port, a RemoteChooser over
// that same socket), every pair pinning each other mutually. mutate, if
// set, adjusts node i's listener before it starts.
func newUDPMesh(t *testing.T, names []string, mutate func(i int, c *CoAPFrontDoorListenConfig)) *udpMesh {
	rng := clock.SeededRNG(41)
	ids := newMeshIdents(t, rng, names...)
	w := &udpMesh{}
	for i, id := range ids {
		cfg := meshNodeConfig(t, id.name)
		st := openStore(t, cfg)
		loop := homeserver.NewLoop()
		var peers []string
		for _, o := range ids {
			if o.name != id.name {
				peers = append(peers, o.name)
			}
		}
		mesh, err := NewMeshRemote(MeshRemoteConfig{Peers: peers, Post: loop.Post})
		if err != nil {
			t.Fatal(err)
		}
		fb := &failingRemote{post: loop.Post}
		chooser, err := NewRemoteChooser(mesh, fb)
		if err != nil {
			t.Fatal(err)
		}
		node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: id.key, Clock: clock.Real(),
			RNG: clock.SeededRNG(rng.Uint64()), Loop: loop, Remote: chooser, NoiseKey: id.kp.Public})
		if err != nil {
			t.Fatal(err)
		}
		mesh.SetRoomContexts(node.MeshRoomContext)
		go loop.Run()
		lc := CoAPFrontDoorListenConfig{Addr: "127.0.0.1:0", ServerName: id.name, Static: id.kp, SigningKey: id.key.Key,
			Door: CoAPFrontDoorConfig{Node: node, Post: loop.Post, MaxSyncWait: 30 * time.Second}, CoAP: coapSlowLink}
		if mutate != nil {
			mutate(i, &lc)
		}
		udp, err := ListenCoAPFrontDoor(lc)
		if err != nil {
			t.Fatal(err)
		}
		mesh.Attach(udp.Go)
		t.Cleanup(func() {
			mesh.Attach(nil)
			udp.Close()
			_ = loop.Post(node.Stop)
			<-loop.Close()
			st.Close()
		})
		ids[i].addr = udp.Addr()
		w.nodes = append(w.nodes, &udpMeshNode{id: ids[i], node: node, loop: loop, udp: udp, mesh: mesh})
		w.fallback = append(w.fallback, fb)
	}
	// Pin every peer at its bound address, as `mxmesh peer add` does.
	for _, n := range w.nodes {
		for _, o := range w.nodes {
			if o == n {
				continue
			}
			var err error
			if rerr := n.udp.Run(context.Background(), func(c *CoAPNode, _ time.Time) { err = c.nz.AddPeer(o.id.pin(true)) }); rerr != nil {
				t.Fatal(rerr)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func (w *udpMesh) dispatch(t *testing.T, i int, req *homeserver.Request) homeserver.Response {
	t.Helper()
	n := w.nodes[i]
	ch := make(chan homeserver.Response, 1)
	if err := n.loop.Post(func() { n.node.Dispatch(req, func(r homeserver.Response) { ch <- r }) }); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s %s on %s: no answer", req.Method, req.Path, n.id.name)
		return homeserver.Response{}
	}
}

func (w *udpMesh) linkBytes(t *testing.T) (datagrams, bytes uint64) {
	t.Helper()
	// First every outbound federation queue drains: its items are deleted
	// when the answer has arrived, so no exchange is half counted.
	for i := 0; ; i++ {
		queued := 0
		for _, n := range w.nodes {
			ch := make(chan int, 1)
			if err := n.loop.Post(func() {
				sum := 0
				for _, o := range w.nodes {
					if o != n {
						l, _ := n.node.Federation().QueueLen(o.id.name)
						sum += l
					}
				}
				ch <- sum
			}); err != nil {
				t.Fatal(err)
			}
			queued += <-ch
		}
		if queued == 0 {
			break
		}
		if i > 2000 {
			t.Fatalf("federation queues never drained: %d items", queued)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; ; i++ {
		var sum Traffic
		for _, n := range w.nodes {
			tr := n.udp.Traffic()
			sum.SentDatagrams += tr.SentDatagrams
			sum.RecvDatagrams += tr.RecvDatagrams
			sum.SentBytes += tr.SentBytes
		}
		if sum.SentDatagrams == sum.RecvDatagrams {
			return sum.SentDatagrams, sum.SentBytes
		}
		if i > 2000 {
			t.Fatalf("traffic never settled: %+v", sum)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *udpMesh) fallbackUsed() int64 {
	var n int64
	for _, f := range w.fallback {
		n += f.count.Load()
	}
	return n
}

// ---- in memory, fake clock ----

type memMeshNode struct {
	id   meshIdent
	node *homeserver.Node
	sim  *simNode
	mesh *MeshRemote
	door int // requests the front door translated
	// frames are the headers of the mesh frames the front door got and
	// sent, in order (a request's, then its answer's).
	frames []meshFrameSeen
}

// meshFrameSeen is a mesh frame through a front door: in a request (in) or
// an answer, and the code of that answer.
type meshFrameSeen struct {
	in   bool
	code codes.Code
	h    codec.FrameHeader
}

// seeFrame records m's frame header when m carries a mesh frame.
func (mn *memMeshNode) seeFrame(in bool, m coap.Message) {
	if cf, err := m.Options.ContentFormat(); err == nil && cf == ContentFormatMeshFrame {
		h, _ := codec.ParseFrameHeader(m.Payload)
		mn.frames = append(mn.frames, meshFrameSeen{in: in, code: m.Code, h: h})
	}
}

type memMesh struct {
	clk      *clock.Fake
	link     *simLink
	nodes    []*memMeshNode
	fallback []*failingRemote
}

// memMeshOptions adjusts newMemMesh.
type memMeshOptions struct {
	loss float64
	// pins says whether node i pins node j (default: everyone, mutually).
	pins func(i, j int) bool
	tofu func(i int) bool
	// noPacking sends every PDU context-free; contexts, if set, replaces
	// the node's own room contexts for packing.
	noPacking bool
	contexts  func(n *homeserver.Node) RoomContexts
	// frames, if set, limits node i's codec tables and dictionaries (its
	// MeshRemote and front door); nil means the latest.
	frames func(i int) *codec.FrameOptions
}

// newMemMesh builds the same nodes as newUDPMesh without sockets or
// goroutines: single-driver homeserver nodes and CoAPNodes under Noise on
// a simLink, all driven by one fake clock and one seed.
func newMemMesh(t *testing.T, seed uint64, names []string, o memMeshOptions) *memMesh {
	clk := clock.NewFake(clock.Epoch)
	rng := clock.SeededRNG(seed)
	ids := newMeshIdents(t, rng, names...)
	if o.pins == nil {
		o.pins = func(i, j int) bool { return true }
	}
	post := func(f func()) error { clk.AfterFunc(0, f); return nil }
	w := &memMesh{clk: clk}
	w.link = &simLink{errorf: t.Errorf, clk: clk, r: rand.New(clock.SeededRNG(rng.Uint64())), nodes: map[netip.AddrPort]*simNode{},
		delay: 50 * time.Millisecond, loss: o.loss, counters: map[nonceKey]uint64{}, secured: true}
	for i, id := range ids {
		cfg := meshNodeConfig(t, id.name)
		st := openStore(t, cfg)
		t.Cleanup(func() { st.Close() })
		var pins []noise.Peer[netip.AddrPort]
		var peers []string
		for j, other := range ids {
			if j != i && o.pins(i, j) {
				pins = append(pins, other.pin(o.pins(j, i)))
				peers = append(peers, other.name)
			}
		}
		mn := &memMeshNode{id: id}
		var frames *codec.FrameOptions
		if o.frames != nil {
			frames = o.frames(i)
		}
		mesh, err := NewMeshRemote(MeshRemoteConfig{Peers: peers, Post: post, Frames: frames, Run: func(f func(*CoAPNode, time.Time)) error {
			clk.AfterFunc(0, func() { f(mn.sim.node, clk.Now()); mn.sim.flush() })
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		fb := &failingRemote{post: post}
		chooser, err := NewRemoteChooser(mesh, fb)
		if err != nil {
			t.Fatal(err)
		}
		node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: id.key, Clock: clk,
			RNG: clock.SeededRNG(rng.Uint64()), Remote: chooser, NoiseKey: id.kp.Public})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Stop)
		switch {
		case o.contexts != nil:
			mesh.SetRoomContexts(o.contexts(node))
		case !o.noPacking:
			mesh.SetRoomContexts(node.MeshRoomContext)
		}
		door, err := NewCoAPFrontDoor(CoAPFrontDoorConfig{Node: node, MaxSyncWait: 30 * time.Second, Frames: frames})
		if err != nil {
			t.Fatal(err)
		}
		nz, err := noise.New(noise.Config[netip.AddrPort]{ServerName: id.name, Static: id.kp, SigningKey: id.key.Key,
			Peers: pins, TrustOnFirstUse: o.tofu != nil && o.tofu(i), Random: clock.SeededRNG(rng.Uint64()), ExpectsReply: coap.ExpectsReply})
		if err != nil {
			t.Fatal(err)
		}
		// Late answers (the node answers after its own federation
		// requests) must leave at once, as UDPServer's loop sends them.
		fallback := CoAPHandlerFunc(func(req *CoAPRequest, reply func(coap.Message)) {
			mn.door++
			mn.seeFrame(true, req.Msg)
			door.ServeCoAP(req, func(m coap.Message) { mn.seeFrame(false, m); reply(m); mn.sim.flush() })
		})
		cn, err := NewCoAPNode(CoAPNodeConfig{CoAP: coap.Config{RNG: clock.SeededRNG(rng.Uint64())}, Noise: nz, Fallback: fallback})
		if err != nil {
			t.Fatal(err)
		}
		mn.node, mn.mesh = node, mesh
		mn.sim = w.link.add(id.addr, cn)
		w.nodes = append(w.nodes, mn)
		w.fallback = append(w.fallback, fb)
	}
	return w
}

func (w *memMesh) dispatch(t *testing.T, i int, req *homeserver.Request) homeserver.Response {
	t.Helper()
	var got *homeserver.Response
	w.nodes[i].node.Dispatch(req, func(r homeserver.Response) { got = &r })
	limit := w.clk.Now().Add(time.Hour)
	for got == nil {
		if !w.clk.RunNext() || w.clk.Now().After(limit) {
			t.Fatalf("%s %s on %s: no answer (virtual time %v)", req.Method, req.Path, w.nodes[i].id.name, w.clk.Now().Sub(clock.Epoch))
		}
	}
	return *got
}

// linkBytes runs the clock until no datagram is in flight (timers further
// out, such as keepalives, are left alone).
func (w *memMesh) linkBytes(t *testing.T) (datagrams, bytes uint64) {
	w.clk.Advance(250 * time.Millisecond) // the link delivers within 250 ms
	return uint64(w.link.sent), uint64(w.link.bytes)
}

func (w *memMesh) fallbackUsed() int64 {
	var n int64
	for _, f := range w.fallback {
		n += f.count.Load()
	}
	return n
}

// ---- the scenario ----

// meshCall makes a client API request (target: path and query) and
// decodes the JSON answer; want 0 accepts any status.
func meshCall(t *testing.T, w meshWorld, i int, want int, method, target, token string, body any) (int, map[string]any) {
	t.Helper()
	path, rawQuery, _ := strings.Cut(target, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatal(err)
	}
	req := &homeserver.Request{Method: method, Path: path, Query: q, AccessToken: token}
	if body != nil {
		if req.Body, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	resp := w.dispatch(t, i, req)
	j, err := json.Marshal(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal(j, &out)
	if want != 0 && resp.Status != want {
		t.Fatalf("%s %s on node %d: %d %s, want %d", method, target, i, resp.Status, j, want)
	}
	return resp.Status, out
}

func meshRegister(t *testing.T, w meshWorld, i int, user string) (id, token string) {
	t.Helper()
	_, r := meshCall(t, w, i, 200, "POST", "/_matrix/client/v3/register", "",
		map[string]any{"username": user, "password": "wonderland", "auth": map[string]string{"type": "m.login.dummy"}})
	id, _ = r["user_id"].(string)
	token, _ = r["access_token"].(string)
	return id, token
}

// meshSyncUntil long-polls /sync on node i from since until fn accepts the
// message bodies of roomID seen so far, and returns them.
func meshSyncUntil(t *testing.T, w meshWorld, i int, token, roomID string, fn func(bodies []string) bool) ([]string, []string) {
	t.Helper()
	var bodies, ids []string
	since := ""
	// NOTE: a PDU received over federation does not wake a /sync
	// long-poll today (it returns at its timeout), so the polls are short.
	for range 60 {
		target := "/_matrix/client/v3/sync?timeout=2000"
		if since != "" {
			target += "&since=" + url.QueryEscape(since)
		}
		_, r := meshCall(t, w, i, 200, "GET", target, token, nil)
		since, _ = r["next_batch"].(string)
		rooms, _ := r["rooms"].(map[string]any)
		join, _ := rooms["join"].(map[string]any)
		room, _ := join[roomID].(map[string]any)
		tl, _ := room["timeline"].(map[string]any)
		evs, _ := tl["events"].([]any)
		for _, e := range evs {
			ev, _ := e.(map[string]any)
			if ev["type"] != "m.room.message" {
				continue
			}
			c, _ := ev["content"].(map[string]any)
			b, _ := c["body"].(string)
			id, _ := ev["event_id"].(string)
			bodies, ids = append(bodies, b), append(ids, id)
		}
		if fn(bodies) {
			return bodies, ids
		}
	}
	t.Fatalf("node %d never synced the wanted messages; has %q", i, bodies)
	return nil, nil
}

// meshScenarioResult is what the scenario measured.
type meshScenarioResult struct {
	helloDatagrams, helloBytes uint64
	totalDatagrams, totalBytes uint64
	stats                      MeshStats
}

// runMeshScenario: alice on node 0 creates a room and invites bob on node
// 1; bob joins through the mesh (invite, make_join, send_join, server keys
// all over CoAP/Noise); alice says "warm", then "hello"; bob's /sync on
// node 1 shows both, and the PDU node 1 stored carries node 0's valid
// signature. It measures the datagrams that carried "hello".
func runMeshScenario(t *testing.T, w meshWorld, names []string) meshScenarioResult {
	alice, aliceTok := meshRegister(t, w, 0, "alice")
	bob, bobTok := meshRegister(t, w, 1, "bob")
	_, r := meshCall(t, w, 0, 200, "POST", "/_matrix/client/v3/createRoom", aliceTok, map[string]any{"name": "mesh"})
	roomID, _ := r["room_id"].(string)
	meshCall(t, w, 0, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/invite", aliceTok, map[string]string{"user_id": bob})
	meshCall(t, w, 1, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bobTok, map[string]any{})
	_, m := meshCall(t, w, 0, 200, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/state/m.room.member/"+url.PathEscape(bob), aliceTok, nil)
	if m["membership"] != "join" {
		t.Fatalf("%s sees bob as %v", names[0], m)
	}
	send := func(txn, body string) {
		meshCall(t, w, 0, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+txn, aliceTok,
			map[string]string{"msgtype": "m.text", "body": body})
	}
	send("w", "warm")
	meshSyncUntil(t, w, 1, bobTok, roomID, func(b []string) bool { return slices.Contains(b, "warm") })

	d0, b0 := w.linkBytes(t)
	send("h", "hello")
	bodies, ids := meshSyncUntil(t, w, 1, bobTok, roomID, func(b []string) bool { return slices.Contains(b, "hello") })
	d1, b1 := w.linkBytes(t)
	helloID := ids[slices.Index(bodies, "hello")]

	// The PDU node 1 stored verifies against node 0's key (which node 1
	// fetched over the mesh to accept it).
	resp := w.dispatch(t, 1, &homeserver.Request{Method: "GET", Path: "/_matrix/federation/v1/event/" + url.PathEscape(helloID), PeerServer: names[0]})
	if resp.Status != 200 {
		t.Fatalf("event %s on %s: %d %v", helloID, names[1], resp.Status, resp.Body)
	}
	j, _ := json.Marshal(resp.Body)
	var txn struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	if err := json.Unmarshal(j, &txn); err != nil || len(txn.PDUs) != 1 {
		t.Fatalf("event answer %s: %v", j, err)
	}
	_, create := meshCall(t, w, 1, 200, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/state/m.room.create/", bobTok, nil)
	rv, err := event.LookupVersion(fmt.Sprint(create["room_version"]))
	if err != nil {
		t.Fatal(err)
	}
	key := meshKeyOf(w, 0)
	if err := event.VerifyEventSignature(txn.PDUs[0], rv, names[0], key.ID, key.Public()); err != nil {
		t.Fatalf("hello PDU on %s: %v", names[1], err)
	}
	if got := w.fallbackUsed(); got != 0 {
		t.Fatalf("%d requests went to the non-mesh transport", got)
	}
	_ = alice
	return meshScenarioResult{helloDatagrams: d1 - d0, helloBytes: b1 - b0, totalDatagrams: d1, totalBytes: b1, stats: w.meshStats()}
}

func meshKeyOf(w meshWorld, i int) *homeserver.SigningKey {
	switch w := w.(type) {
	case *udpMesh:
		return w.nodes[i].id.key
	case *memMesh:
		return w.nodes[i].id.key
	}
	return nil
}

// Budgets of the federation transaction that carries one "hello" PDU
// from node 0 to node 1 over a warm Noise session, request and answer
// (UDP payload; BENCHMARKS.md "Federation over the mesh"): packed against
// the shared room state, and context-free.
const (
	wantMeshHelloBytesUnpacked = 456
	wantMeshHelloDatagrams     = 2
	wantMeshHelloBytes         = 263
)

// TestMeshFederationLoopback: two nodes, as `mxmesh serve` runs them, over
// real loopback UDP.
func TestMeshFederationLoopback(t *testing.T) {
	names := []string{"a.mesh", "b.mesh"}
	w := newUDPMesh(t, names, nil)
	res := runMeshScenario(t, w, names)
	t.Logf("loopback: hello transaction %d datagrams, %d B; whole scenario %d datagrams, %d B",
		res.helloDatagrams, res.helloBytes, res.totalDatagrams, res.totalBytes)
	// Real time may widen the packed timestamp delta (1–3 B of CBOR) and
	// the transaction ID by a byte or two.
	res.helloBytes -= min(res.helloBytes, 4)
	checkHelloBudget(t, res)
}

func checkHelloBudget(t *testing.T, res meshScenarioResult) {
	t.Helper()
	if res.stats.Packed == 0 || res.stats.Mismatched != 0 {
		t.Errorf("packing: %+v; want packed transactions that all rebuilt", res.stats)
	}
	if res.helloDatagrams != wantMeshHelloDatagrams || res.helloBytes > wantMeshHelloBytes {
		t.Errorf("hello transaction: %d datagrams, %d B; want %d datagrams, ≤ %d B",
			res.helloDatagrams, res.helloBytes, wantMeshHelloDatagrams, wantMeshHelloBytes)
	}
}

// TestMeshFederationInMemory runs the same scenario on a fake clock: on a
// clean link (the byte budget holds exactly as over sockets) and on one
// that loses 10 % of datagrams, twice with the same seed (same bytes).
func TestMeshFederationInMemory(t *testing.T) {
	names := []string{"a.mesh", "b.mesh"}
	cw := newMemMesh(t, 7, names, memMeshOptions{})
	clean := runMeshScenario(t, cw, names)
	t.Logf("clean link: hello transaction %d datagrams, %d B; whole scenario %d datagrams, %d B",
		clean.helloDatagrams, clean.helloBytes, clean.totalDatagrams, clean.totalBytes)
	checkHelloBudget(t, clean)
	t.Logf("clean link: hello datagram sizes %v", cw.link.sizes[clean.totalDatagrams-clean.helloDatagrams:clean.totalDatagrams])
	lossy := runMeshScenario(t, newMemMesh(t, 8, names, memMeshOptions{loss: 0.1}), names)
	again := runMeshScenario(t, newMemMesh(t, 8, names, memMeshOptions{loss: 0.1}), names)
	t.Logf("10 %% loss: whole scenario %d datagrams, %d B", lossy.totalDatagrams, lossy.totalBytes)
	plain := runMeshScenario(t, newMemMesh(t, 7, names, memMeshOptions{noPacking: true}), names)
	t.Logf("clean link, PDUs context-free: hello transaction %d datagrams, %d B; whole scenario %d datagrams, %d B",
		plain.helloDatagrams, plain.helloBytes, plain.totalDatagrams, plain.totalBytes)
	if plain.helloBytes > wantMeshHelloBytesUnpacked || plain.stats.Packed != 0 {
		t.Errorf("context-free hello transaction: %d B, %+v; want ≤ %d B, nothing packed", plain.helloBytes, plain.stats, wantMeshHelloBytesUnpacked)
	}
	if lossy != again {
		t.Errorf("same seed, different runs: %+v and %+v", lossy, again)
	}
}
