package homeserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// remoteWatch counts a node's outbound key fetches and the 429 answers
// its requests get.
type remoteWatch struct {
	keyFetches, limited int
}

func (w *remoteWatch) wrap(r Remote) Remote { return watchedRemote{r, w} }

type watchedRemote struct {
	Remote
	w *remoteWatch
}

func (r watchedRemote) Do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	if req.URI == "/_matrix/key/v2/server" {
		r.w.keyFetches++
	}
	r.Remote.Do(dest, req, func(resp OutboundResponse, err error) {
		if resp.Status == 429 {
			r.w.limited++
		}
		done(resp, err)
	})
}

const limitsProfileURI = "/_matrix/federation/v1/query/profile?user_id=%40nobody%3Ab.test"

// A flood of federation requests with made-up origins from one address is
// cut off by the per-IP bucket before any signature check: past the burst
// it costs the node no key fetch.
func TestFedFloodLimitedPerIP(t *testing.T) {
	fn := newFedNet(t)
	var w remoteWatch
	b, _ := fn.nodeVia("b.test", t.TempDir(), 2, func(c *Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.FederationPerIP = BucketConfig{PerSecond: 1, Burst: 20}
	}, w.wrap)
	forger, _ := GenerateSigningKey(clock.SeededRNG(99))
	var unauthorized, limited int
	for i := range 100 {
		r := fn.signed(b, fmt.Sprintf("forger%d.test", i), forger.ID, forger.Key, "b.test", "GET", limitsProfileURI, nil)
		switch {
		case r.Status == 401:
			unauthorized++
		case r.Status == 429 && r.str("errcode") == ErrCodeLimitExceeded && r.Body["retry_after_ms"] == float64(1000):
			limited++
		default:
			t.Fatalf("request %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if unauthorized != 20 || limited != 80 {
		t.Fatalf("%d refused as unauthorized, %d limited; want 20 and 80", unauthorized, limited)
	}
	if w.keyFetches != 20 {
		t.Fatalf("%d key fetches, want 20 (one per request let through)", w.keyFetches)
	}
	// Another address has its own bucket; the first refills.
	r := fn.raw(b, "GET", limitsProfileURI, "X-Matrix origin=forger0.test,key=\"ed25519:x\",sig=\"x\"", nil)
	wantErr(t, r, 429, ErrCodeLimitExceeded)
	fn.clock.Advance(time.Second)
	if r := fn.signed(b, "forger100.test", forger.ID, forger.Key, "b.test", "GET", limitsProfileURI, nil); r.Status != 401 {
		t.Fatalf("after refill: %d %s, want 401", r.Status, r.Raw)
	}
}

// Once authenticated, each origin has its own bucket.
func TestFedLimitedPerOrigin(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	c, _ := fn.node("c.test", t.TempDir(), 3)
	b, _ := fn.nodeWith("b.test", t.TempDir(), 2, func(c *Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.FederationPerOrigin = BucketConfig{PerSecond: 1, Burst: 5}
	})
	for range 5 {
		wantErr(t, fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "GET", limitsProfileURI, nil), 404, ErrCodeNotFound)
	}
	r := fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "GET", limitsProfileURI, nil)
	wantErr(t, r, 429, ErrCodeLimitExceeded)
	if r.Body["retry_after_ms"] != float64(1000) {
		t.Fatalf("retry_after_ms: %s", r.Raw)
	}
	// The same address, another origin: not limited.
	wantErr(t, fn.signed(b, "c.test", c.key.ID, c.key.Key, "b.test", "GET", limitsProfileURI, nil), 404, ErrCodeNotFound)
	fn.clock.Advance(time.Second)
	wantErr(t, fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "GET", limitsProfileURI, nil), 404, ErrCodeNotFound)
}

// Key fetches started by requests are bounded: one in flight per server,
// none again while a server's backoff runs after a failure, and at most
// keyFetchesPerMinute new ones a minute in all (notary queries included).
func TestFedKeyFetchesBounded(t *testing.T) {
	fn := newFedNet(t)
	var w remoteWatch
	b, _ := fn.nodeVia("b.test", t.TempDir(), 2, func(c *Config) { c.RateLimit.Enabled = true }, w.wrap)
	forger, _ := GenerateSigningKey(clock.SeededRNG(99))
	forged := func(origin string) testResp {
		return fn.signed(b, origin, forger.ID, forger.Key, "b.test", "GET", limitsProfileURI, nil)
	}

	// Concurrent requests naming one unknown origin share one fetch.
	var answers []int
	for range 5 {
		h, err := signedHeader("same.test", forger, "b.test", "GET", limitsProfileURI)
		if err != nil {
			t.Fatal(err)
		}
		path, q, _ := cutURI(limitsProfileURI)
		b.Dispatch(&Request{Method: "GET", Path: path, Query: q, URI: limitsProfileURI, Authorization: h, RemoteIP: "192.0.2.9"},
			func(r Response) { answers = append(answers, r.Status) })
	}
	fn.settle()
	if len(answers) != 5 || w.keyFetches != 1 {
		t.Fatalf("answers %v, %d key fetches; want 5 answers and 1 fetch", answers, w.keyFetches)
	}

	// A notary query for unknown servers spends the same budget.
	servers := map[string]any{}
	for i := range 31 {
		servers[fmt.Sprintf("notary%d.test", i)] = map[string]any{}
	}
	if r := fn.client(b, "POST", "/_matrix/key/v2/query", "", map[string]any{"server_keys": servers}); r.Status != 200 {
		t.Fatalf("key query: %d %s", r.Status, r.Raw)
	}
	if w.keyFetches != 32 {
		t.Fatalf("%d key fetches after the notary query, want 32", w.keyFetches)
	}
	for i := range 100 {
		wantErr(t, forged(fmt.Sprintf("forger%d.test", i)), 401, ErrCodeForbidden)
	}
	if w.keyFetches != keyFetchesPerMinute {
		t.Fatalf("%d key fetches, want the budget of %d", w.keyFetches, keyFetchesPerMinute)
	}

	// Negative cache: forger0.test failed at T; asking again within a
	// minute fetches nothing, at T+1m it is fetched (and fails again), and
	// then not before T+3m.
	for _, step := range []struct {
		advance time.Duration
		fetch   bool
	}{{0, false}, {time.Minute, true}, {time.Minute, false}, {time.Minute, true}} {
		fn.clock.Advance(step.advance)
		before := w.keyFetches
		wantErr(t, forged("forger0.test"), 401, ErrCodeForbidden)
		if got := w.keyFetches - before; got != map[bool]int{false: 0, true: 1}[step.fetch] {
			t.Fatalf("at %v: %d key fetches, want fetch=%v", fn.clock.Now().Sub(clock.Epoch), got, step.fetch)
		}
	}
}

// Normal federation stays far below the default limits: three servers
// with rate limiting on, a conversation and a late joiner's backfill, and
// no request is answered 429.
func TestFedDefaultLimitsDoNotThrottleRooms(t *testing.T) {
	fn := newFedNet(t)
	var w remoteWatch
	on := func(c *Config) { c.RateLimit.Enabled = true }
	a, _ := fn.nodeVia("a.test", t.TempDir(), 1, on, w.wrap)
	b, _ := fn.nodeVia("b.test", t.TempDir(), 2, on, w.wrap)
	c, _ := fn.nodeVia("c.test", t.TempDir(), 3, on, w.wrap)
	alice, bob, carol := fn.user(a, "alice"), fn.user(b, "bob"), fn.user(c, "carol")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{}).str("room_id")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	var want []string
	for i := range 60 {
		u := alice
		if i%3 == 2 {
			u = bob
		}
		want = append(want, fmt.Sprintf("m%d", i))
		fn.say(u, roomID, want[i])
	}
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": carol.id})
	fn.call(c, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), carol.token, map[string]any{})
	if got := fn.bodies(carol, roomID); !sameList(got, want) {
		t.Fatalf("carol sees %d messages, want %d", len(got), len(want))
	}
	if w.limited != 0 {
		t.Fatalf("%d federation requests answered 429 under the default limits", w.limited)
	}
}

// signedHeader is an X-Matrix Authorization header for a request from
// origin signed with key.
func signedHeader(origin string, key *SigningKey, dest, method, uri string) (string, error) {
	h, err := xmatrix.Sign(xmatrix.Request{Method: method, URI: uri, Origin: origin, Destination: dest}, key.ID, key.Key)
	if err != nil {
		return "", err
	}
	return h.Format()
}

// cutURI splits a request URI into path and query.
func cutURI(uri string) (string, url.Values, error) {
	path, raw, _ := strings.Cut(uri, "?")
	q, err := url.ParseQuery(raw)
	return path, q, err
}

// queuedEDUs counts the EDUs waiting in tn's queue for dest, by type.
func queuedEDUs(t *testing.T, tn *testNode, dest string) map[string]int {
	t.Helper()
	_, edus, err := tn.store.OutboundBatch(dest, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, it := range edus {
		var e struct {
			Type string `json:"edu_type"`
		}
		if err := json.Unmarshal(it.JSON, &e); err != nil {
			t.Fatal(err)
		}
		out[e.Type]++
	}
	return out
}

// A destination that is down: its typing EDUs are capped oldest-first,
// to-device EDUs are all kept up to the byte bound (the rest are not
// queued), PDUs are all kept; when it is back everything queued arrives.
func TestFedEDUQueueBounded(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	a := alice.tn
	f := a.Federation()
	bobDevice := fn.call(bob.tn, 200, "GET", v3+"/account/whoami", bob.token, nil).str("device_id")
	txn := 0
	toDevice := func(i int) {
		txn++
		fn.call(a, 200, "PUT", fmt.Sprintf(v3+"/sendToDevice/m.test/limits%d", txn), alice.token,
			map[string]any{"messages": map[string]any{bob.id: map[string]any{bobDevice: map[string]any{"i": i}}}})
	}
	fn.net.SetDown("b.test", true)

	toDevice(0)
	_, edus, err := a.store.OutboundBatch("b.test", 0, 10)
	if err != nil || len(edus) != 1 {
		t.Fatalf("queue after one to-device message: %d EDUs, %v", len(edus), err)
	}
	// Room for ten messages of this size (i < 10 keeps the size).
	f.maxEDUBytes = 10*len(edus[0].JSON) + len(edus[0].JSON)/2
	for i := range 300 {
		fn.call(a, 200, "PUT", roomPath(roomID, "/typing/"+url.PathEscape(alice.id)), alice.token,
			map[string]any{"typing": i%2 == 0, "timeout": 30000})
		if i < 19 {
			toDevice(i + 1)
		}
		if i%100 == 0 {
			fn.say(alice, roomID, fmt.Sprint("while down ", i))
		}
	}
	if q := queuedEDUs(t, a, "b.test"); q["m.typing"] != maxQueuedLossyEDUs || q["m.direct_to_device"] != 10 {
		t.Fatalf("queued for the down destination: %v; want %d m.typing and 10 m.direct_to_device", q, maxQueuedLossyEDUs)
	}
	if n, _ := f.QueueLen("b.test"); n < maxQueuedLossyEDUs+10 {
		t.Fatalf("queue length %d", n)
	}

	fn.net.SetDown("b.test", false)
	for range 30 {
		fn.clock.Advance(time.Minute)
		fn.run()
	}
	if n, _ := f.QueueLen("b.test"); n != 0 {
		t.Fatalf("%d items still queued after the destination came back", n)
	}
	var got []float64
	for _, ev := range toDeviceEvents(syncOf(t, bob.tn, bob.token, "")) {
		c, _ := ev["content"].(map[string]any)
		got = append(got, c["i"].(float64))
	}
	if fmt.Sprint(got) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("bob got to-device messages %v, want 0–9 in order", got)
	}
	if b := fn.bodies(bob, roomID); !sameList(b, []string{"while down 0", "while down 100", "while down 200"}) {
		t.Fatalf("bob sees %q", b)
	}
	// Drained: the byte bound admits new EDUs again.
	toDevice(10)
	if q := queuedEDUs(t, a, "b.test"); q["m.direct_to_device"] != 0 {
		t.Fatalf("new to-device message not delivered: %v", q)
	}
	evs := toDeviceEvents(syncOf(t, bob.tn, bob.token, ""))
	if c, _ := evs[len(evs)-1]["content"].(map[string]any); c["i"] != float64(10) {
		t.Fatalf("bob did not get the to-device message sent after the queue drained: %v", evs)
	}
}

// The room cache holds at most maxRooms rooms; evicted rooms reload from
// the store with their state, extremities and positions, so reads and
// writes go on as before.
func TestRoomCacheBounded(t *testing.T) {
	tn := newTestNode(t, nil)
	rs := roomsOf(tn.Node)
	rs.maxRooms = 4
	_, tok, _ := tn.register("alice", "pw")
	var rooms []string
	for i := range 12 {
		r := tn.do("POST", v3+"/createRoom", tok, map[string]any{"name": fmt.Sprint("room ", i)})
		if r.Status != 200 {
			t.Fatalf("createRoom %d: %d %s", i, r.Status, r.Raw)
		}
		rooms = append(rooms, r.str("room_id"))
	}
	for round := range 3 {
		for i, id := range rooms {
			if r := tn.do("PUT", roomPath(id, fmt.Sprintf("/send/m.room.message/r%d-%d", round, i)), tok,
				map[string]string{"msgtype": "m.text", "body": fmt.Sprint(round, " in ", i)}); r.Status != 200 {
				t.Fatalf("send: %d %s", r.Status, r.Raw)
			}
			if r := tn.do("PUT", roomPath(id, "/state/m.room.topic"), tok, map[string]string{"topic": fmt.Sprint(round, " of ", i)}); r.Status != 200 {
				t.Fatalf("topic: %d %s", r.Status, r.Raw)
			}
			if len(rs.byID) > rs.maxRooms {
				t.Fatalf("%d rooms cached, bound %d", len(rs.byID), rs.maxRooms)
			}
		}
	}
	for i, id := range rooms {
		r := tn.do("GET", roomPath(id, "/state/m.room.topic"), tok, nil)
		if r.Status != 200 || r.str("topic") != fmt.Sprint("2 of ", i) {
			t.Fatalf("room %d topic: %d %s", i, r.Status, r.Raw)
		}
		r = tn.do("GET", roomPath(id, "/messages?dir=b&limit=100"), tok, nil)
		var bodies []string
		chunk, _ := r.Body["chunk"].([]any)
		for _, e := range chunk {
			ev, _ := e.(map[string]any)
			if c, _ := ev["content"].(map[string]any); ev["type"] == "m.room.message" {
				bodies = append(bodies, c["body"].(string))
			}
		}
		if want := []string{fmt.Sprint("2 in ", i), fmt.Sprint("1 in ", i), fmt.Sprint("0 in ", i)}; !sameList(bodies, want) {
			t.Fatalf("room %d messages %q, want %q", i, bodies, want)
		}
	}
	s := syncOf(t, tn, tok, "")
	if join, _ := s.Body["rooms"].(map[string]any)["join"].(map[string]any); len(join) != len(rooms) {
		t.Fatalf("sync shows %d joined rooms, want %d", len(join), len(rooms))
	}

	// A room with PDUs in flight is not evicted.
	fr := fedRoomsOf(tn.Node)
	busy := rooms[0]
	if _, err := rs.room(busy); err != nil {
		t.Fatal(err)
	}
	fr.queue[busy] = []*pduJob{{roomID: busy}}
	for _, id := range rooms[1:] {
		if _, err := rs.room(id); err != nil {
			t.Fatal(err)
		}
	}
	delete(fr.queue, busy)
	if rs.byID[busy] == nil {
		t.Fatal("room with PDUs in flight was evicted")
	}
}

// Rooms evicted between received PDUs reload transparently: a server
// keeping one room cached receives messages in five rooms interleaved.
func TestRoomCacheEvictionWithFederation(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	roomsOf(b.Node).maxRooms = 1
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	var rooms []string
	for range 5 {
		id := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{}).str("room_id")
		fn.call(a, 200, "POST", roomPath(id, "/invite"), alice.token, map[string]string{"user_id": bob.id})
		fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(id), bob.token, map[string]any{})
		rooms = append(rooms, id)
	}
	for round := range 4 {
		for i, id := range rooms {
			u := alice
			if round%2 == 1 {
				u = bob
			}
			fn.say(u, id, fmt.Sprint(round, " in ", i))
		}
	}
	for i, id := range rooms {
		want := []string{fmt.Sprint("0 in ", i), fmt.Sprint("1 in ", i), fmt.Sprint("2 in ", i), fmt.Sprint("3 in ", i)}
		if got := fn.bodies(bob, id); !sameList(got, want) {
			t.Fatalf("bob sees %q in room %d, want %q", got, i, want)
		}
		if got := fn.bodies(alice, id); !sameList(got, want) {
			t.Fatalf("alice sees %q in room %d, want %q", got, i, want)
		}
	}
	if n := len(roomsOf(b.Node).byID); n > 1 {
		t.Fatalf("b.test caches %d rooms, bound 1", n)
	}
}

// The queue bounds count what a restarted node finds queued.
func TestFedEDUQueueBoundAfterRestart(t *testing.T) {
	fn := newFedNet(t)
	aDir := t.TempDir()
	a, stopA := fn.node("a.test", aDir, 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{}).str("room_id")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	fn.net.SetDown("b.test", true)
	typing := func(tn *testNode, n int) {
		for i := range n {
			fn.call(tn, 200, "PUT", roomPath(roomID, "/typing/"+url.PathEscape(alice.id)), alice.token,
				map[string]any{"typing": i%2 == 0, "timeout": 30000})
		}
	}
	typing(a, 150)
	stopA()
	a2, _ := fn.node("a.test", aDir, 1)
	typing(a2, 50)
	if q := queuedEDUs(t, a2, "b.test"); q["m.typing"] != maxQueuedLossyEDUs {
		t.Fatalf("queued after a restart: %v, want %d m.typing", q, maxQueuedLossyEDUs)
	}
}

func TestConfigFederationLimits(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		ok   bool
	}{
		{"server_name: a.b\nrate_limit: {federation_per_ip: {per_second: 0, burst: 5}}\n", false},
		{"server_name: a.b\nrate_limit: {federation_per_origin: {per_second: 5, burst: 0}}\n", false},
		{"server_name: a.b\nrate_limit: {federation_per_origin: {per_second: 0, burst: 0}}\n", true},
		{"server_name: a.b\nrate_limit: {enabled: false, federation_per_ip: {per_second: 0, burst: 5}}\n", true},
	} {
		c, err := ParseConfig([]byte(tc.yaml))
		if (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok=%v", tc.yaml, err, tc.ok)
		}
		if err == nil && tc.ok && c.RateLimit.Enabled {
			if f := newBucketLimiter(true, c.RateLimit.FederationPerOrigin); f != nil {
				t.Errorf("%q: a zero bucket limits", tc.yaml)
			}
		}
	}
}
