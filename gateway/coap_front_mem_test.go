package gateway

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
	"github.com/mxmesh/mxmesh/noise"
)

// memFrontDoor is the front door as the simulator runs it: the node
// without a loop (the front door calls it directly), CoAPNodes under
// Noise joined by a simulated link, everything on one fake clock.
type memFrontDoor struct {
	t      *testing.T
	clk    *clock.Fake
	link   *simLink
	cli    *simNode
	server string
	token  string
	door   *CoAPFrontDoor
}

func newMemFrontDoor(t *testing.T, seed uint64, loss float64) *memFrontDoor {
	clk := clock.NewFake(clock.Epoch)
	rng := clock.SeededRNG(seed)
	cfg := homeserver.DefaultConfig("coap.test") // as over UDP: the room ID is in the path
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	cfg.Dir = t.TempDir()
	st, err := store.Open(filepath.Join(cfg.Dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := homeserver.GenerateSigningKey(rng)
	if err != nil {
		t.Fatal(err)
	}
	node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key, Clock: clk, RNG: clock.SeededRNG(rng.Uint64())})
	if err != nil {
		t.Fatal(err)
	}
	door, err := NewCoAPFrontDoor(CoAPFrontDoorConfig{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	srvID := newTestIdent(t, rng, cfg.ServerName, 1)
	srvID.sign = key.Key
	cliID := newTestIdent(t, rng, clientBindingName, 2)
	srvNoise, err := noise.New(noise.Config[netip.AddrPort]{ServerName: srvID.name, Static: srvID.kp, SigningKey: srvID.sign,
		AcceptClients: true, Random: clock.SeededRNG(rng.Uint64()), ExpectsReply: coap.ExpectsReply})
	if err != nil {
		t.Fatal(err)
	}
	cliNoise, err := noise.New(noise.Config[netip.AddrPort]{ServerName: cliID.name, Static: cliID.kp, SigningKey: cliID.sign,
		Random: clock.SeededRNG(rng.Uint64()), ExpectsReply: coap.ExpectsReply, Peers: []noise.Peer[netip.AddrPort]{{Name: srvID.name, NoiseKey: srvID.kp.Public,
			SigningKey: key.Public(), Addr: srvID.addr}}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := NewCoAPNode(CoAPNodeConfig{CoAP: coap.Config{RNG: clock.SeededRNG(rng.Uint64())}, Noise: srvNoise, Fallback: door})
	if err != nil {
		t.Fatal(err)
	}
	cn, err := NewCoAPNode(CoAPNodeConfig{CoAP: coap.Config{RNG: clock.SeededRNG(rng.Uint64())}, Noise: cliNoise})
	if err != nil {
		t.Fatal(err)
	}
	m := &memFrontDoor{t: t, clk: clk, server: srvID.name, door: door}
	m.link = &simLink{errorf: t.Errorf, clk: clk, r: rand.New(clock.SeededRNG(rng.Uint64())), nodes: map[netip.AddrPort]*simNode{},
		delay: 50 * time.Millisecond, loss: loss, counters: map[nonceKey]uint64{}, secured: true}
	m.link.add(srvID.addr, sn)
	m.cli = m.link.add(cliID.addr, cn)
	return m
}

// start sends one API request from the client; the returned pointer is
// set when the answer arrives.
func (m *memFrontDoor) start(method, path string, body any) **coap.Event {
	m.t.Helper()
	var payload []byte
	if body != nil {
		j, _ := json.Marshal(body)
		payload, _, _ = codec.Encode(nil, j, codec.TableMSC3079)
	}
	code := map[string]codes.Code{"GET": codes.GET, "POST": codes.POST, "PUT": codes.PUT}[method]
	req := newAPIRequest(code, path, payload, ContentFormatCBOR)
	if m.token != "" {
		req.Options = req.Options.Add(message.Option{ID: OptionAuthorization, Value: []byte(m.token)})
		m.token = "" // sticky: sent once (MSC3079)
	}
	got := new(*coap.Event)
	if _, err := m.cli.node.Send(m.clk.Now(), m.server, req, coap.SendOptions{}, func(ev coap.Event) { *got = &ev }); err != nil {
		m.t.Fatal(err)
	}
	m.cli.flush()
	return got
}

// finish runs virtual time until got is answered and decodes the JSON
// into out.
func (m *memFrontDoor) finish(got **coap.Event, out any) {
	m.t.Helper()
	for *got == nil {
		if !m.clk.RunNext() {
			m.t.Fatal("the link went idle before the answer")
		}
	}
	if (*got).Err != nil {
		m.t.Fatal((*got).Err)
	}
	resp, err := decodeAPIResponse((*got).Msg)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := resp.Err(); err != nil {
		m.t.Fatal(err)
	}
	if err := json.Unmarshal(resp.JSON, out); err != nil {
		m.t.Fatal(err)
	}
}

func (m *memFrontDoor) call(method, path string, body any, out any) {
	m.t.Helper()
	m.finish(m.start(method, path, body), out)
}

// run is the scenario: register, create a room, send "hello", sync it
// back, then a long-poll that a message sent 5 s later (virtual time)
// wakes. It returns the link's datagram count and bytes, and the bytes of
// the steady-state "send hello".
func (m *memFrontDoor) run() (datagrams, bytes, helloBytes int) {
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	m.call("POST", "/_matrix/client/v3/register", map[string]any{"username": "alice", "password": "wonderland",
		"auth": map[string]string{"type": "m.login.dummy"}}, &reg)
	m.token = reg.AccessToken
	var room struct {
		RoomID string `json:"room_id"`
	}
	m.call("POST", "/_matrix/client/v3/createRoom", map[string]any{}, &room)
	var sent struct {
		EventID string `json:"event_id"`
	}
	m.call("PUT", sendPath(room.RoomID, "warm"), map[string]string{"msgtype": "m.text", "body": "warm"}, &sent)
	var sy syncResp
	m.call("GET", "/_matrix/client/v3/sync", nil, &sy)
	before := m.link.bytes
	m.call("PUT", sendPath(room.RoomID, "1"), map[string]string{"msgtype": "m.text", "body": "hello"}, &sent)
	helloBytes = m.link.bytes - before
	var back syncResp
	m.call("GET", "/_matrix/client/v3/sync?since="+sy.NextBatch, nil, &back)
	if got := back.bodies(room.RoomID); !slices.Equal(got, []string{"hello"}) {
		m.t.Fatalf("sync back %q", got)
	}
	poll := m.start("GET", "/_matrix/client/v3/sync?timeout=600000&since="+back.NextBatch, nil)
	t0 := m.clk.Now()
	m.clk.AdvanceTo(t0.Add(5 * time.Second))
	if *poll != nil {
		m.t.Fatal("the long-poll answered before anything happened")
	}
	m.call("PUT", sendPath(room.RoomID, "2"), map[string]string{"msgtype": "m.text", "body": "later"}, &sent)
	var woke syncResp
	m.finish(poll, &woke)
	if got := woke.bodies(room.RoomID); !slices.Equal(got, []string{"later"}) {
		m.t.Fatalf("woken sync %q", got)
	}
	return m.link.sent, m.link.bytes, helloBytes
}

// TestCoAPFrontDoorInMemory runs the front door as the simulator does, on
// a link that loses 20 % of datagrams: the scenario completes, the
// steady-state "send hello" costs what it costs over real sockets when
// nothing is lost, and the same seed gives the same run.
func TestCoAPFrontDoorInMemory(t *testing.T) {
	clean := newMemFrontDoor(t, 1, 0)
	n0, b0, hello := clean.run()
	t.Logf("scenario on a clean link: %d datagrams, %d B", n0, b0)
	if hello != wantHelloRequest+wantHelloResponse {
		t.Errorf("send hello in memory: %d B, over UDP %d B", hello, wantHelloRequest+wantHelloResponse)
	}
	n1, b1, _ := newMemFrontDoor(t, 7, 0.2).run()
	n2, b2, _ := newMemFrontDoor(t, 7, 0.2).run()
	if n1 != n2 || b1 != b2 {
		t.Fatalf("same seed, different runs: %d datagrams/%d B, then %d/%d B", n1, b1, n2, b2)
	}
	t.Logf("scenario over a 20 %% lossy link: %d datagrams, %d B", n1, b1)
}

// TestObserveSyncIdleCost measures, in virtual time, what an idle /sync
// observation costs for an hour (re-registrations every Max-Age, Noise
// keepalives and rekeys), and checks that a message sent afterwards is
// still pushed.
func TestObserveSyncIdleCost(t *testing.T) {
	m := newMemFrontDoor(t, 3, 0)
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	m.call("POST", "/_matrix/client/v3/register", map[string]any{"username": "alice", "password": "wonderland",
		"auth": map[string]string{"type": "m.login.dummy"}}, &reg)
	m.token = reg.AccessToken
	var room struct {
		RoomID string `json:"room_id"`
	}
	m.call("POST", "/_matrix/client/v3/createRoom", map[string]any{}, &room)
	var sy syncResp
	m.call("GET", "/_matrix/client/v3/sync", nil, &sy)

	req := newAPIRequest(codes.GET, "/_matrix/client/v3/sync?since="+sy.NextBatch, nil, ContentFormatCBOR)
	req.Options, _, _ = req.Options.SetObserve(make([]byte, 4), 0)
	var evs []coap.Event
	if _, err := m.cli.node.Send(m.clk.Now(), m.server, req, coap.SendOptions{}, func(ev coap.Event) { evs = append(evs, ev) }); err != nil {
		t.Fatal(err)
	}
	m.cli.flush()
	for len(evs) == 0 {
		if !m.clk.RunNext() {
			t.Fatal("no answer to the registration")
		}
	}
	if !evs[0].HasObserve || evs[0].Msg.Code != codes.Content {
		t.Fatalf("registration answer %+v", evs[0])
	}
	n0, b0 := m.link.sent, m.link.bytes
	m.clk.Advance(time.Hour)
	idleN, idleB := m.link.sent-n0, m.link.bytes-b0
	t.Logf("idle /sync observation, 1 hour: %d datagrams, %d B (Max-Age %v)", idleN, idleB, DefaultObserveMaxAge)
	// Re-registrations every 5 min (12 an hour, each a request, an
	// immediate empty /sync and Noise framing) stay far below 60 s ones.
	if idleB > 12*1000 {
		t.Errorf("idle hour cost %d B", idleB)
	}
	var sent struct {
		EventID string `json:"event_id"`
	}
	seen := len(evs)
	m.call("PUT", sendPath(room.RoomID, "late"), map[string]string{"msgtype": "m.text", "body": "after an hour"}, &sent)
	for !slices.ContainsFunc(evs[seen:], func(ev coap.Event) bool {
		r, err := decodeAPIResponse(ev.Msg)
		var p syncResp
		return err == nil && json.Unmarshal(r.JSON, &p) == nil && slices.Contains(p.bodies(room.RoomID), "after an hour")
	}) {
		if !m.clk.RunNext() {
			t.Fatalf("the message was not pushed (%d events)", len(evs)-seen)
		}
	}
}
