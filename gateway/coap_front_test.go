package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
	"github.com/mxmesh/mxmesh/noise"
)

// frontDoorServer runs a real node behind the CoAP front door on a
// loopback UDP port: under Noise (accepting clients) unless plain.
type frontDoorServer struct {
	node *homeserver.Node
	post func(func()) error
	udp  *UDPServer
	name string
	key  noise.KeyToken
}

func startFrontDoor(t testing.TB, plain bool, coapCfg coap.Config) *frontDoorServer {
	t.Helper()
	cfg := homeserver.DefaultConfig("coap.test")
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	cfg.Dir = t.TempDir()
	st, err := store.Open(filepath.Join(cfg.Dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	rng := clock.SeededRNG(11)
	key, err := homeserver.GenerateSigningKey(rng)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := noise.GenerateKeyPair(rng)
	if err != nil {
		t.Fatal(err)
	}
	loop := homeserver.NewLoop()
	node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key,
		Clock: clock.Real(), RNG: clock.SeededRNG(12), Loop: loop})
	if err != nil {
		t.Fatal(err)
	}
	go loop.Run()
	udp, err := ListenCoAPFrontDoor(CoAPFrontDoorListenConfig{Addr: "127.0.0.1:0", Plain: plain,
		ServerName: cfg.ServerName, Static: kp, SigningKey: key.Key, AcceptClients: true,
		Door: CoAPFrontDoorConfig{Node: node, Post: loop.Post, MaxSyncWait: 3 * time.Second}, CoAP: coapCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		udp.Close()
		_ = loop.Post(node.Stop)
		<-loop.Close()
		st.Close()
	})
	return &frontDoorServer{node: node, post: loop.Post, udp: udp, name: cfg.ServerName, key: noise.NewKeyToken(cfg.ServerName, kp.Public, key.Key)}
}

func (s *frontDoorServer) dial(t testing.TB, plain bool) *CoAPClient {
	t.Helper()
	cfg := CoAPClientConfig{Server: s.udp.Addr(), ServerName: s.name, ServerKey: s.key}
	if plain {
		cfg.ServerKey = noise.KeyToken{}
	}
	c, err := DialCoAP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// call does one request and decodes a 2xx JSON answer into out.
func call(t testing.TB, c *CoAPClient, method, path string, body any, out any) *CoAPResponse {
	t.Helper()
	var j []byte
	if body != nil {
		var err error
		if j, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.Do(ctx, method, path, j)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil {
		if err := resp.Err(); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if err := json.Unmarshal(resp.JSON, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, resp.JSON)
		}
	}
	return resp
}

type syncResp struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					Type    string `json:"type"`
					Sender  string `json:"sender"`
					Content struct {
						Body string `json:"body"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

func (s *syncResp) bodies(room string) []string {
	var b []string
	for _, ev := range s.Rooms.Join[room].Timeline.Events {
		if ev.Type == "m.room.message" {
			b = append(b, ev.Content.Body)
		}
	}
	return b
}

// registerAndRoom registers alice, creates a room and returns its ID.
func registerAndRoom(t testing.TB, c *CoAPClient) string {
	t.Helper()
	return registerAndRoomAs(t, c, "alice")
}

func registerAndRoomAs(t testing.TB, c *CoAPClient, user string) string {
	t.Helper()
	var reg struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	call(t, c, "POST", "/_matrix/client/v3/register",
		map[string]any{"username": user, "password": "wonderland", "auth": map[string]string{"type": "m.login.dummy"}}, &reg)
	if reg.UserID != "@"+user+":coap.test" || reg.AccessToken == "" {
		t.Fatalf("register: %+v", reg)
	}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	call(t, c, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user}, "password": "wonderland"}, &login)
	c.SetAccessToken(login.AccessToken)
	var room struct {
		RoomID string `json:"room_id"`
	}
	call(t, c, "POST", "/_matrix/client/v3/createRoom", map[string]any{"name": "mesh"}, &room)
	if !strings.HasPrefix(room.RoomID, "!") {
		t.Fatalf("createRoom: %+v", room)
	}
	return room.RoomID
}

func sendPath(room, txn string) string {
	return fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s", room, txn)
}

// TestCoAPFrontDoorNoise: a client over Noise on real loopback UDP
// registers, logs in, creates a room, sends "hello" and syncs it back,
// then long-polls /sync across a separate response.
func TestCoAPFrontDoorNoise(t *testing.T) {
	s := startFrontDoor(t, false, coap.Config{})
	c := s.dial(t, false)
	var versions struct {
		Versions []string `json:"versions"`
	}
	call(t, c, "GET", "/_matrix/client/versions", nil, &versions)
	if len(versions.Versions) == 0 {
		t.Fatal("no versions")
	}
	room := registerAndRoom(t, c)
	var sent struct {
		EventID string `json:"event_id"`
	}
	call(t, c, "PUT", sendPath(room, "t1"), map[string]string{"msgtype": "m.text", "body": "hello"}, &sent)
	if !strings.HasPrefix(sent.EventID, "$") {
		t.Fatalf("send: %+v", sent)
	}
	var sy syncResp
	call(t, c, "GET", "/_matrix/client/v3/sync", nil, &sy)
	if got := sy.bodies(room); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("sync timeline %q", got)
	}

	// A long-poll that nothing wakes ends at the capped timeout (3 s here,
	// asked for 10 min): answered as a separate response, with nothing new.
	var idle syncResp
	call(t, c, "GET", "/_matrix/client/v3/sync?timeout=600000&since="+sy.NextBatch, nil, &idle)
	if len(idle.Rooms.Join) != 0 {
		t.Fatalf("idle sync returned rooms: %+v", idle.Rooms.Join)
	}
	// A long-poll woken by a new message.
	done := make(chan syncResp, 1)
	go func() {
		var woke syncResp
		call(t, c, "GET", "/_matrix/client/v3/sync?timeout=600000&since="+idle.NextBatch, nil, &woke)
		done <- woke
	}()
	c2 := s.dial(t, false) // a second client session, same account
	var login struct {
		AccessToken string `json:"access_token"`
	}
	call(t, c2, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": "alice"}, "password": "wonderland"}, &login)
	c2.SetAccessToken(login.AccessToken)
	var woke syncResp
	for i := 0; ; i++ {
		call(t, c2, "PUT", sendPath(room, fmt.Sprint("w", i)), map[string]string{"msgtype": "m.text", "body": "wake"}, &sent)
		woke = <-done
		if len(woke.bodies(room)) > 0 || i == 3 {
			break
		}
		// The capped poll ended before the message: poll again.
		go func() {
			var again syncResp
			call(t, c, "GET", "/_matrix/client/v3/sync?timeout=600000&since="+woke.NextBatch, nil, &again)
			done <- again
		}()
	}
	if got := woke.bodies(room); len(got) == 0 || got[0] != "wake" {
		t.Fatalf("woken sync timeline %q", got)
	}
}

// TestCoAPFrontDoorObserveSync: a client observes /sync over Noise; each
// message sent to the room arrives as a pushed /sync response, and a
// second observer (another session of the same account) gets its own.
func TestCoAPFrontDoorObserveSync(t *testing.T) {
	s := startFrontDoor(t, false, coap.Config{})
	c := s.dial(t, false)
	room := registerAndRoom(t, c)
	var sy syncResp
	call(t, c, "GET", "/_matrix/client/v3/sync", nil, &sy)

	pushed := make(chan syncResp, 16)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, stop, err := c.ObserveSync(ctx, "since="+sy.NextBatch, func(r *CoAPResponse) {
		var p syncResp
		if r.Status == 200 && json.Unmarshal(r.JSON, &p) == nil {
			pushed <- p
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var f syncResp
	if err := json.Unmarshal(first.JSON, &f); err != nil || first.Status != 200 || len(f.bodies(room)) != 0 {
		t.Fatalf("first answer %d %s", first.Status, first.JSON)
	}
	var got []string
	for i := range 3 {
		var sent struct {
			EventID string `json:"event_id"`
		}
		call(t, c, "PUT", sendPath(room, fmt.Sprint("o", i)), map[string]string{"msgtype": "m.text", "body": fmt.Sprint("pushed ", i)}, &sent)
		for len(got) <= i {
			select {
			case p := <-pushed:
				got = append(got, p.bodies(room)...)
			case <-ctx.Done():
				t.Fatalf("no notification for message %d (got %q)", i, got)
			}
		}
	}
	if fmt.Sprint(got) != "[pushed 0 pushed 1 pushed 2]" {
		t.Fatalf("pushed timeline %q", got)
	}
}

// TestCoAPFrontDoorTranslation checks the edges of the translation over
// plain loopback CoAP.
func TestCoAPFrontDoorTranslation(t *testing.T) {
	s := startFrontDoor(t, true, coap.Config{})
	c := s.dial(t, true)
	ctx := context.Background()
	// Unknown token → 4.01 with the Matrix errcode, in CBOR.
	c.SetAccessToken("nope")
	resp, err := c.Do(ctx, "GET", "/_matrix/client/v3/account/whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 401 || resp.Errcode != homeserver.ErrCodeUnknownToken {
		t.Fatalf("whoami with a bad token: %d %s %s", resp.Status, resp.Errcode, resp.JSON)
	}
	// The token is sticky: the next request omits it and still fails the
	// same way, not with M_MISSING_TOKEN.
	resp, _ = c.Do(ctx, "GET", "/_matrix/client/v3/account/whoami", nil)
	if resp.Errcode != homeserver.ErrCodeUnknownToken {
		t.Fatalf("second whoami: %d %s", resp.Status, resp.Errcode)
	}
	// An unknown path code → 4.04 M_UNRECOGNIZED.
	m, err := c.udp.Do(ctx, c.peer, coap.NewRequest(codes.GET, "/zz/1", nil))
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := decodeAPIResponse(m); r.Status != 404 || r.Errcode != homeserver.ErrCodeUnrecognized {
		t.Fatalf("unknown code: %d %s", r.Status, r.JSON)
	}
	// JSON in → JSON out (MSC3079: no CBOR unless accepted).
	req := coap.NewRequest(codes.POST, "/_matrix/client/v3/register", []byte(`{"username":"bob","password":"builder","auth":{"type":"m.login.dummy"}}`))
	req.Options, _, _ = req.Options.SetContentFormat(make([]byte, 2), ContentFormatJSON)
	m, err = c.udp.Do(ctx, c.peer, req)
	if err != nil {
		t.Fatal(err)
	}
	if cf, _ := m.Options.ContentFormat(); cf != ContentFormatJSON || !strings.Contains(string(m.Payload), `"user_id":"@bob:coap.test"`) {
		t.Fatalf("JSON register: %v %d %s", m.Code, cf, m.Payload)
	}
	// Unsupported content format (110, application/senml+json) → 4.15.
	req = coap.NewRequest(codes.POST, "/1", []byte("x"))
	req.Options, _, _ = req.Options.SetContentFormat(make([]byte, 2), 110)
	m, _ = c.udp.Do(ctx, c.peer, req)
	if HTTPStatus(m.Code) != 415 {
		t.Fatalf("senml body: %v", m.Code)
	}
	// A media body (text/plain, 0) reaches the node raw, and a JSON
	// endpoint refuses it as over HTTP.
	req = coap.NewRequest(codes.POST, "/1", []byte("x"))
	req.Options, _, _ = req.Options.SetContentFormat(make([]byte, 2), 0)
	m, _ = c.udp.Do(ctx, c.peer, req)
	if r, _ := decodeAPIResponse(m); r.Status != 400 || r.Errcode != homeserver.ErrCodeNotJSON {
		t.Fatalf("text/plain body to login: %d %s", r.Status, r.JSON)
	}
	// Bad CBOR → 4.00 M_NOT_JSON.
	req = coap.NewRequest(codes.POST, "/1", []byte{0xff})
	req.Options, _, _ = req.Options.SetContentFormat(make([]byte, 2), ContentFormatCBOR)
	m, _ = c.udp.Do(ctx, c.peer, req)
	if r, _ := decodeAPIResponse(m); r.Status != 400 || r.Errcode != homeserver.ErrCodeNotJSON {
		t.Fatalf("bad CBOR: %d %s", r.Status, r.JSON)
	}
	// Accept: something else → 4.06.
	req = coap.NewRequest(codes.GET, "/0", nil)
	req.Options, _, _ = req.Options.SetAccept(make([]byte, 2), 0)
	m, _ = c.udp.Do(ctx, c.peer, req)
	if HTTPStatus(m.Code) != 406 {
		t.Fatalf("Accept text/plain: %v", m.Code)
	}
}

// TestStickyTokenRecovery: the server forgets the token a client sent
// once (here: the front door restarts); the client's next request, which
// omits it, gets 401 M_MISSING_TOKEN and CoAPClient resends it at once.
func TestStickyTokenRecovery(t *testing.T) {
	s := startFrontDoor(t, true, coap.Config{})
	c := s.dial(t, true)
	registerAndRoom(t, c)
	var who struct {
		UserID string `json:"user_id"`
	}
	call(t, c, "GET", "/_matrix/client/v3/account/whoami", nil, &who)
	addr := s.udp.Addr()
	s.udp.Close()
	// The long ACK delay keeps answers piggy-backed, so the datagram count
	// below is exact.
	udp, err := ListenCoAPFrontDoor(CoAPFrontDoorListenConfig{Addr: addr.String(), Plain: true,
		Door: CoAPFrontDoorConfig{Node: s.node, Post: s.post}, CoAP: coap.Config{AckDelay: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	before := c.UDP().Traffic()
	who.UserID = ""
	call(t, c, "GET", "/_matrix/client/v3/account/whoami", nil, &who)
	if who.UserID != "@alice:coap.test" {
		t.Fatalf("whoami after the restart: %q", who.UserID)
	}
	if n := c.UDP().Traffic().SentDatagrams - before.SentDatagrams; n != 2 {
		t.Fatalf("%d requests, want 2 (without the token, then with it)", n)
	}
}

func TestStatusCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		method byte
		status int
		coap   string
		back   int
	}{
		{1, 200, "Content", 200}, {3, 200, "Changed", 200}, {4, 200, "Deleted", 200},
		{2, 201, "Created", 201}, {1, 400, "BadRequest", 400}, {1, 401, "Unauthorized", 401},
		{1, 403, "Forbidden", 403}, {1, 404, "NotFound", 404}, {1, 409, "Conflict", 409},
		{1, 413, "RequestEntityTooLarge", 413}, {1, 429, "TooManyRequests", 429},
		{1, 418, "BadRequest", 400}, {1, 500, "InternalServerError", 500}, {1, 503, "ServiceUnavailable", 503},
	} {
		c := statusCode(codes.Code(tc.method), tc.status)
		if c.String() != tc.coap || HTTPStatus(c) != tc.back {
			t.Errorf("%d: %v → %d, want %s → %d", tc.status, c, HTTPStatus(c), tc.coap, tc.back)
		}
	}
}

// TestUDPServerNoise: the UDPServer carries CoAP under Noise over real
// sockets, and drops what does not authenticate.
func TestUDPServerNoise(t *testing.T) {
	s := startFrontDoor(t, false, coap.Config{})
	c := s.dial(t, false)
	var v struct {
		Versions []string `json:"versions"`
	}
	call(t, c, "GET", "/_matrix/client/versions", nil, &v)
	// A plain CoAP client gets nothing from the Noise listener.
	plain, err := DialCoAP(CoAPClientConfig{Server: s.udp.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if _, err := plain.Do(short, "GET", "/_matrix/client/versions", nil); err == nil {
		t.Fatal("a plain request was answered by the Noise listener")
	}
	ctx := context.Background()
	var drops uint64
	if err := s.udp.Run(ctx, func(n *CoAPNode, _ time.Time) { drops = n.Drops() }); err != nil {
		t.Fatal(err)
	}
	if drops == 0 {
		t.Fatal("no drops counted")
	}
	tr := c.UDP().Traffic()
	if tr.SentDatagrams == 0 || tr.RecvDatagrams == 0 {
		t.Fatalf("client traffic %+v", tr)
	}
}

// settled waits until the server has counted every datagram the clients
// sent and the clients every one it sent (no timing is asserted; the
// socket readers just have to catch up), and returns the first client's
// counters.
func settled(t testing.TB, s *UDPServer, clients ...*CoAPClient) Traffic {
	t.Helper()
	for i := 0; ; i++ {
		var sum Traffic
		for _, c := range clients {
			ct := c.UDP().Traffic()
			sum.SentDatagrams += ct.SentDatagrams
			sum.RecvDatagrams += ct.RecvDatagrams
		}
		st := s.Traffic()
		if sum.SentDatagrams == st.RecvDatagrams && st.SentDatagrams == sum.RecvDatagrams {
			return clients[0].UDP().Traffic()
		}
		if i > 1000 {
			t.Fatalf("traffic never settled: clients %+v server %+v", sum, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSendHelloBytes measures, on the wire, what sending "hello" to a room
// costs a low-bandwidth client once its session is up: the datagrams'
// bytes (UDP payload: Noise header and tag, CoAP, body), request and
// response. The access token is not resent (MSC3079 stickiness) and the
// path is code 9. Bodies are MSC3079 CBOR, then mesh frames. It also
// reports (without asserting) the incremental /sync that brings "hello"
// back and a new session's first request.
func TestSendHelloBytes(t *testing.T) {
	// A long ACK delay makes every answer ride on the ACK however slow the
	// machine is, so the counts are exact.
	s := startFrontDoor(t, false, coap.Config{AckDelay: 30 * time.Second})
	var clients []*CoAPClient
	for _, tc := range []struct {
		name      string
		format    message.MediaType
		req, resp uint64
	}{
		// Request, 95 B: Noise 18 B (1 B index, 1 B counter, 16 B tag);
		// CoAP 77 B: header 4, token 1, Uri-Path "9" 2, room ID (29 chars)
		// 31, "m.room.message" 16, "1" 2, Content-Format 60 2, payload
		// marker 1, CBOR {27:"hello",28:"m.text"} 18.
		// Response, 74 B: Noise 18 B; CoAP header 4, token 1,
		// Content-Format 2, marker 1, CBOR {1:"$"+43 chars} 48.
		{"msc3079 cbor", ContentFormatCBOR, wantHelloRequest, wantHelloResponse},
		// Frames, 92 B + 64 B: Content-Format 65060 3 B and Accept 65060
		// 3 B, the body 11 B (mesh table: msgtype as a small integer); the
		// answer's Content-Format 3 B and body 37 B (the event ID as 32 raw
		// bytes).
		{"mesh frame", ContentFormatMeshFrame, wantHelloRequestFrame, wantHelloResponseFrame},
	} {
		cfg := CoAPClientConfig{Server: s.udp.Addr(), ServerName: s.name, ServerKey: s.key, Format: tc.format}
		c, err := DialCoAP(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		room := registerAndRoomAs(t, c, fmt.Sprint("user", len(clients)))
		var sent struct {
			EventID string `json:"event_id"`
		}
		call(t, c, "PUT", sendPath(room, "warm"), map[string]string{"msgtype": "m.text", "body": "warm"}, &sent)
		var sy syncResp
		call(t, c, "GET", "/_matrix/client/v3/sync", nil, &sy)

		measure := func(f func()) (out, back, nOut, nBack uint64) {
			settled(t, s.udp, clients...)
			before := c.UDP().Traffic()
			f()
			settled(t, s.udp, clients...)
			after := c.UDP().Traffic()
			return after.SentBytes - before.SentBytes, after.RecvBytes - before.RecvBytes,
				after.SentDatagrams - before.SentDatagrams, after.RecvDatagrams - before.RecvDatagrams
		}
		req, resp, n, m := measure(func() {
			call(t, c, "PUT", sendPath(room, "1"), map[string]string{"msgtype": "m.text", "body": "hello"}, &sent)
		})
		if n != 1 || m != 1 {
			t.Fatalf("%s: %d datagrams out, %d back; want 1 and 1", tc.name, n, m)
		}
		t.Logf("%s: send hello: request %d B, response %d B, total %d B (UDP payload; +28 B each for IPv4+UDP headers)", tc.name, req, resp, req+resp)
		if req != tc.req || resp != tc.resp {
			t.Errorf("%s: send hello: %d B + %d B, want %d B + %d B", tc.name, req, resp, tc.req, tc.resp)
		}
		var back syncResp
		req, resp, n, m = measure(func() { call(t, c, "GET", "/_matrix/client/v3/sync?since="+sy.NextBatch, nil, &back) })
		if got := back.bodies(room); len(got) != 1 || got[0] != "hello" {
			t.Fatalf("%s: incremental sync %q", tc.name, got)
		}
		t.Logf("%s: incremental sync bringing hello back: %d B out, %d B back, %d+%d datagrams", tc.name, req, resp, n, m)
	}

	fresh := s.dial(t, false)
	fresh.SetAccessToken(clients[0].token)
	call(t, fresh, "GET", "/_matrix/client/v3/account/whoami", nil, new(map[string]any))
	ft := settled(t, s.udp, append([]*CoAPClient{fresh}, clients...)...)
	t.Logf("new session, first request (whoami with token; IK handshake carries it): %d B out, %d B back, %d+%d datagrams",
		ft.SentBytes, ft.RecvBytes, ft.SentDatagrams, ft.RecvDatagrams)
}

// Measured sizes of the "send hello" exchange (BENCHMARKS.md).
const (
	wantHelloRequest       = 95
	wantHelloResponse      = 74
	wantHelloRequestFrame  = 92
	wantHelloResponseFrame = 64
)

// countingConn counts the bytes an HTTP client writes and reads.
type countingConn struct {
	net.Conn
	out, in *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

// TestSendHelloBytesHTTP is the reference for TestSendHelloBytes: the same
// "send hello" over the HTTP front door with Go's HTTP/1.1 client on a
// warm connection (plain TCP; TLS would add about 29 B per record).
// Reported, not asserted.
func TestSendHelloBytesHTTP(t *testing.T) {
	base := accountsTestServer(t, nil)
	var out, in atomic.Int64
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, out: &out, in: &in}, nil
	}}}
	do := func(method, path, token string, body any, dst any) {
		t.Helper()
		j, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(j))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(dst); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, err)
		}
	}
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	do("POST", "/_matrix/client/v3/register", "", map[string]any{"username": "alice", "password": "wonderland",
		"auth": map[string]string{"type": "m.login.dummy"}}, &reg)
	var room struct {
		RoomID string `json:"room_id"`
	}
	do("POST", "/_matrix/client/v3/createRoom", reg.AccessToken, map[string]any{"name": "mesh"}, &room)
	var sent struct {
		EventID string `json:"event_id"`
	}
	do("PUT", sendPath(room.RoomID, "warm"), reg.AccessToken, map[string]string{"msgtype": "m.text", "body": "warm"}, &sent)
	o, i := out.Load(), in.Load()
	do("PUT", sendPath(room.RoomID, "1"), reg.AccessToken, map[string]string{"msgtype": "m.text", "body": "hello"}, &sent)
	t.Logf("send hello over HTTP/1.1+JSON, warm connection: request %d B, response %d B (TCP payload)", out.Load()-o, in.Load()-i)
}

// FuzzCoAPFrontDoorTranslate: any request the CoAP engine can deliver
// translates into a node request or a 4.xx answer, never a panic.
func FuzzCoAPFrontDoorTranslate(f *testing.F) {
	cfg := homeserver.DefaultConfig("fuzz.test")
	cfg.Dir = f.TempDir()
	st, err := store.Open(filepath.Join(cfg.Dir, "db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	key, _ := homeserver.GenerateSigningKey(clock.SeededRNG(1))
	node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key, Clock: clock.NewFake(clock.Epoch), RNG: clock.SeededRNG(2)})
	if err != nil {
		f.Fatal(err)
	}
	door, err := NewCoAPFrontDoor(CoAPFrontDoorConfig{Node: node})
	if err != nil {
		f.Fatal(err)
	}
	send := coap.NewRequest(codes.PUT, "/9/!r:hs/m.room.message/1", []byte{0xa1, 0x18, 0x1b, 0x62, 'h', 'i'})
	send.Options, _, _ = send.Options.SetContentFormat(make([]byte, 2), ContentFormatCBOR)
	upload := newMediaRequest(codes.POST, "/_matrix/media/v3/upload?filename=a.md", "text/markdown", []byte("# a"), ContentFormatCBOR)
	for _, m := range []*coap.Message{send, upload, coap.NewRequest(codes.GET, "/7?timeout=99999999&since=s1", nil),
		coap.NewRequest(codes.POST, "/_matrix/client/v3/login", []byte(`{"type":"m.login.password"}`))} {
		var w coap.Wire
		w.Code, w.Options, w.Payload, w.Type = m.Code, m.Options, m.Payload, coap.CON
		data, err := coap.Encode(nil, &w)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var w coap.Wire
		if coap.Decode(data, &w) != nil || w.Code>>5 != 0 {
			return
		}
		r := &CoAPRequest{Peer: "127.0.0.1:1", Msg: coap.Message{Code: w.Code, Options: w.Options, Payload: w.Payload}}
		req, _, answer := door.translate(r)
		if (req == nil) == (answer == nil) {
			t.Fatalf("translate gave request %v and answer %v", req, answer)
		}
		if answer != nil && answer.Code>>5 != 4 {
			t.Fatalf("refusal with %v", answer.Code)
		}
		if req != nil && !strings.HasPrefix(req.Path, "/_matrix/") {
			t.Fatalf("path %q", req.Path)
		}
	})
}
