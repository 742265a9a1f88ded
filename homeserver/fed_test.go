package homeserver

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/keys"
	"github.com/mxmesh/mxmesh/homeserver/store"
	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// fedNet is a few nodes on one MemoryNetwork and one fake clock.
type fedNet struct {
	t     testing.TB
	net   *MemoryNetwork
	clock *clock.Fake
}

func newFedNet(t testing.TB) *fedNet {
	return &fedNet{t: t, net: NewMemoryNetwork(), clock: clock.NewFake(clock.Epoch)}
}

// node builds (or, with the same dir and seed, rebuilds) a node named name
// attached to the network. close stops it and closes its store.
func (fn *fedNet) node(name, dir string, seed uint64) (tn *testNode, close func()) {
	fn.t.Helper()
	return fn.nodeWith(name, dir, seed, nil)
}

// nodeWith is node with a configuration change.
func (fn *fedNet) nodeWith(name, dir string, seed uint64, mutate func(*Config)) (tn *testNode, close func()) {
	fn.t.Helper()
	return fn.nodeVia(name, dir, seed, mutate, nil)
}

// nodeVia is nodeWith whose outbound requests go through wrap (to watch or
// alter them); wrap nil is the network itself.
func (fn *fedNet) nodeVia(name, dir string, seed uint64, mutate func(*Config), wrap func(Remote) Remote) (tn *testNode, close func()) {
	t := fn.t
	t.Helper()
	cfg := DefaultConfig(name)
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	cfg.Dir = dir
	if mutate != nil {
		mutate(cfg)
	}
	st, err := store.Open(filepath.Join(dir, "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	remote := fn.net.Remote(name)
	if wrap != nil {
		remote = wrap(remote)
	}
	key, err := GenerateSigningKey(clock.SeededRNG(seed))
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Config: cfg, Store: st, SigningKey: key, Clock: fn.clock, RNG: clock.SeededRNG(seed + 1000),
		Remote: remote, NoiseKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	fn.net.Attach(n)
	closed := false
	close = func() {
		if closed {
			return
		}
		closed = true
		n.Stop()
		fn.net.Detach(name)
		st.Close()
	}
	t.Cleanup(close)
	return &testNode{Node: n, t: t, clock: fn.clock}, close
}

// settle runs the network and the timers due now until both are idle.
func (fn *fedNet) settle() {
	fn.t.Helper()
	for range 1000 {
		fn.net.Run(10000)
		if at, ok := fn.clock.Next(); ok && !at.After(fn.clock.Now()) {
			fn.clock.RunNext()
			continue
		}
		if fn.net.Pending() == 0 {
			return
		}
	}
	fn.t.Fatal("network still busy")
}

// signed dispatches a request into to as if sent by the server named
// origin with key (sig over destination dest), then settles the network.
func (fn *fedNet) signed(to *testNode, origin string, keyID string, key ed25519.PrivateKey, dest, method, uri string, body []byte) testResp {
	fn.t.Helper()
	h, err := xmatrix.Sign(xmatrix.Request{Method: method, URI: uri, Origin: origin, Destination: dest, Content: body}, keyID, key)
	if err != nil {
		fn.t.Fatal(err)
	}
	auth, err := h.Format()
	if err != nil {
		fn.t.Fatal(err)
	}
	return fn.raw(to, method, uri, auth, body)
}

// raw dispatches a request with the given Authorization header and settles.
func (fn *fedNet) raw(to *testNode, method, uri, auth string, body []byte) testResp {
	fn.t.Helper()
	path, rq, _ := strings.Cut(uri, "?")
	q, _ := url.ParseQuery(rq)
	req := &Request{Method: method, Path: path, Query: q, URI: uri, Body: body, Authorization: auth, RemoteIP: "192.0.2.9"}
	out := &testResp{}
	to.Dispatch(req, func(r Response) {
		raw, _ := marshalBody(r.Body)
		*out = testResp{Status: r.Status, Raw: raw, Answered: true, Body: map[string]any{}}
		_ = json.Unmarshal(raw, &out.Body)
	})
	fn.settle()
	return *out
}

// client sends a client-API request to tn and settles the network.
func (fn *fedNet) client(tn *testNode, method, path, token string, body any) testResp {
	fn.t.Helper()
	r, _ := tn.start(method, path, token, body)
	fn.settle()
	return *r
}

func TestFedServerKeysEndpoint(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	r := a.do("GET", "/_matrix/key/v2/server", "", nil)
	if r.Status != 200 {
		t.Fatalf("GET key/v2/server: %d %s", r.Status, r.Raw)
	}
	sk, err := keys.Verify(r.Raw, "a.test", fn.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !sk.VerifyKeys[a.key.ID].Equal(a.key.Public()) {
		t.Fatalf("published key %x, want %x", sk.VerifyKeys[a.key.ID], a.key.Public())
	}
	if len(sk.NoiseKey) != 32 {
		t.Fatalf("noise key binding missing: %s", r.Raw)
	}
}

func TestFedAuthentication(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	b.register("bob", "pw")
	uri := "/_matrix/federation/v1/query/profile?user_id=%40bob%3Ab.test"
	forger, _ := GenerateSigningKey(clock.SeededRNG(99))

	cases := []struct {
		name       string
		resp       func() testResp
		status     int
		code       string
		wantFetchA bool
	}{
		{"no header", func() testResp { return fn.raw(b, "GET", uri, "", nil) }, 401, ErrCodeUnauthorized, false},
		{"bearer token", func() testResp { return fn.raw(b, "GET", uri, "Bearer abc", nil) }, 401, ErrCodeUnauthorized, false},
		{"wrong destination", func() testResp {
			return fn.signed(b, "a.test", a.key.ID, a.key.Key, "c.test", "GET", uri, nil)
		}, 401, ErrCodeUnauthorized, false},
		{"forged signature", func() testResp {
			return fn.signed(b, "a.test", a.key.ID, forger.Key, "b.test", "GET", uri, nil)
		}, 401, ErrCodeForbidden, true},
		{"signature over another URI", func() testResp {
			h, _ := xmatrix.Sign(xmatrix.Request{Method: "GET", URI: "/_matrix/federation/v1/version", Origin: "a.test", Destination: "b.test"}, a.key.ID, a.key.Key)
			auth, _ := h.Format()
			return fn.raw(b, "GET", uri, auth, nil)
		}, 401, ErrCodeForbidden, false},
		{"unknown key ID", func() testResp {
			return fn.signed(b, "a.test", "ed25519:nope", a.key.Key, "b.test", "GET", uri, nil)
		}, 401, ErrCodeForbidden, false},
		{"unreachable origin", func() testResp {
			return fn.signed(b, "ghost.test", "ed25519:x", forger.Key, "b.test", "GET", uri, nil)
		}, 401, ErrCodeForbidden, false},
		{"valid", func() testResp {
			return fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "GET", uri, nil)
		}, 200, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := fn.net.Delivered
			r := tc.resp()
			if !r.Answered || r.Status != tc.status || r.str("errcode") != tc.code {
				t.Fatalf("got %v %d %s, want %d %s", r.Answered, r.Status, r.Raw, tc.status, tc.code)
			}
			if tc.wantFetchA && fn.net.Delivered != before+1 {
				t.Fatalf("%d deliveries, want one key fetch", fn.net.Delivered-before)
			}
		})
	}
	// The first fetch of a.test's keys was cached in SQLite: the valid
	// request needed no further fetch.
	if _, ok, _ := b.store.ServerKeys().Key("a.test", a.key.ID); !ok {
		t.Fatal("a.test's key is not in b's key store")
	}
}

func TestFedAuthExpiredKey(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	q := "/_matrix/federation/v1/query/profile?user_id=%40nobody%3Ab.test"
	if r := fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "GET", q, nil); r.Status != 404 {
		t.Fatalf("first request: %d %s (want 404 from the handler after auth)", r.Status, r.Raw)
	}
	// a.test's response is valid for a day. Past that, with a.test
	// unreachable, its key cannot be refreshed: requests are refused.
	fn.net.SetDown("a.test", true)
	fn.clock.Advance(keys.DefaultValidity + time.Minute)
	r := fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "GET", q, nil)
	wantErr(t, r, 401, ErrCodeForbidden)
	if !strings.Contains(r.str("error"), "expired") {
		t.Fatalf("error does not say the key expired: %s", r.Raw)
	}
	// Back up: the key is fetched again and the request goes through.
	fn.net.SetDown("a.test", false)
	fn.clock.Advance(keyRefetchInterval)
	if r := fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "GET", q, nil); r.Status != 404 {
		t.Fatalf("after refresh: %d %s", r.Status, r.Raw)
	}
}

// txnBody builds a transaction body.
func txnBody(origin string, pdus, edus int) []byte {
	t := map[string]any{"origin": origin, "origin_server_ts": 1}
	p := make([]any, pdus)
	for i := range p {
		p[i] = map[string]any{"room_id": "!r:" + origin, "type": "m.room.message", "content": map[string]any{"i": i}}
	}
	e := make([]any, edus)
	for i := range e {
		e[i] = map[string]any{"edu_type": "org.test", "content": map[string]any{"i": i}}
	}
	t["pdus"], t["edus"] = p, e
	b, _ := json.Marshal(t)
	return b
}

func TestFedInboundTransactionChecks(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	var got []string
	b.Federation().HandleEDU("org.test", func(origin string, content json.RawMessage) error {
		got = append(got, origin+" "+string(content))
		return nil
	})
	send := func(txn string, body []byte) testResp {
		return fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "PUT", "/_matrix/federation/v1/send/"+txn, body)
	}
	wantErr(t, send("t1", txnBody("a.test", MaxTxnPDUs+1, 0)), 400, ErrCodeTooLarge)
	wantErr(t, send("t2", txnBody("a.test", 0, MaxTxnEDUs+1)), 400, ErrCodeTooLarge)
	wantErr(t, send("t3", txnBody("c.test", 0, 1)), 403, ErrCodeForbidden)
	wantErr(t, send("t4", []byte(`{"origin":"a.test","edus":[]}`)), 400, ErrCodeBadJSON)
	huge := txnBody("a.test", 0, 1)
	huge = append(huge[:len(huge)-1], []byte(`,"pad":"`+strings.Repeat("x", int(b.cfg.MaxRequestBytes))+`"}`)...)
	wantErr(t, send("t6", huge), 413, ErrCodeTooLarge)
	if len(got) != 0 {
		t.Fatalf("rejected transactions dispatched EDUs: %q", got)
	}

	// A full transaction is accepted, and replaying it answers the same
	// without dispatching again.
	body := txnBody("a.test", MaxTxnPDUs, MaxTxnEDUs)
	r1 := send("ok", body)
	if r1.Status != 200 {
		t.Fatalf("send: %d %s", r1.Status, r1.Raw)
	}
	if len(got) != MaxTxnEDUs || got[0] != `a.test {"i":0}` {
		t.Fatalf("EDUs dispatched: %d, first %q", len(got), got[0])
	}
	r2 := send("ok", body)
	if r2.Status != 200 || string(r2.Raw) != string(r1.Raw) {
		t.Fatalf("replay answered %d %s, want %s", r2.Status, r2.Raw, r1.Raw)
	}
	if len(got) != MaxTxnEDUs {
		t.Fatalf("replayed transaction dispatched again: %d EDUs", len(got))
	}
	// The same txnId from another origin is another transaction.
	c, _ := fn.node("c.test", t.TempDir(), 3)
	r3 := fn.signed(b, "c.test", c.key.ID, c.key.Key, "b.test", "PUT", "/_matrix/federation/v1/send/ok", txnBody("c.test", 0, 1))
	if r3.Status != 200 || len(got) != MaxTxnEDUs+1 {
		t.Fatalf("c.test's txn: %d %s, %d EDUs", r3.Status, r3.Raw, len(got))
	}
}

func TestFedInboundPDUResults(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	_, tok, _ := b.register("bob", "pw")
	cr := b.do("POST", "/_matrix/client/v3/createRoom", tok, map[string]any{})
	if cr.Status != 200 {
		t.Fatalf("createRoom: %d %s", cr.Status, cr.Raw)
	}
	roomID := cr.str("room_id")
	b.Federation().SetPDUHandler(nil) // the path of a node without room federation
	pdu := []byte(`{"room_id":"` + roomID + `","type":"m.room.message","sender":"@x:a.test","content":{},"origin_server_ts":5,"depth":3,"prev_events":[],"auth_events":[]}`)
	big := []byte(`{"room_id":"` + roomID + `","type":"m.room.message","content":{"b":"` + strings.Repeat("x", maxPDUBytes) + `"}}`)
	body, _ := json.Marshal(map[string]any{"origin": "a.test", "origin_server_ts": 1, "pdus": []json.RawMessage{pdu, big}})
	send := func() testResp {
		return fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "PUT", "/_matrix/federation/v1/send/p1", body)
	}
	r := send()
	if r.Status != 200 {
		t.Fatalf("send: %d %s", r.Status, r.Raw)
	}
	var ans struct {
		PDUs map[string]struct{ Error string } `json:"pdus"`
	}
	if err := json.Unmarshal(r.Raw, &ans); err != nil || len(ans.PDUs) != 2 {
		t.Fatalf("answer %s: want two named results", r.Raw)
	}
	for id, res := range ans.PDUs {
		if !strings.HasPrefix(id, "$") || res.Error == "" {
			t.Fatalf("result %s: %+v", id, res)
		}
	}
	// With a PDU handler installed, PDUs reach it in order.
	var seen []string
	b.Federation().SetPDUHandler(func(origin string, raw json.RawMessage, done func(string, error)) {
		seen = append(seen, origin)
		fn.clock.AfterFunc(0, func() { done("$id"+fmt.Sprint(len(seen)), nil) })
	})
	body2, _ := json.Marshal(map[string]any{"origin": "a.test", "pdus": []json.RawMessage{pdu, pdu}})
	r2 := fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", "PUT", "/_matrix/federation/v1/send/p2", body2)
	if len(seen) != 2 || string(r2.Raw) != `{"pdus":{"$id1":{},"$id2":{}}}` {
		t.Fatalf("handler saw %d PDUs; answer %d %s", len(seen), r2.Status, r2.Raw)
	}
}

func TestFedOutboundTransactions(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	var got []int
	b.Federation().HandleEDU("org.test", func(origin string, content json.RawMessage) error {
		if origin != "a.test" {
			t.Errorf("origin %s", origin)
		}
		var c struct{ I int }
		_ = json.Unmarshal(content, &c)
		got = append(got, c.I)
		return nil
	})
	// 120 EDUs queued in one go (the first send starts at once with the
	// first EDU; the rest wait for it) go out in order.
	for i := range 120 {
		if err := a.Federation().SendEDU([]string{"b.test", "a.test"}, "org.test", map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	fn.settle()
	if len(got) != 120 {
		t.Fatalf("b got %d EDUs", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("EDU %d is %d: out of order", i, v)
		}
	}
	// One key fetch plus three transactions: 1 EDU, then 100, then 19.
	if fn.net.Delivered != 4 {
		t.Fatalf("%d deliveries, want 4", fn.net.Delivered)
	}
	if n, _ := a.Federation().QueueLen("b.test"); n != 0 {
		t.Fatalf("%d items still queued", n)
	}
	if n, _ := a.Federation().QueueLen("a.test"); n != 0 {
		t.Fatalf("queued %d items for ourselves", n)
	}
}

func TestFedQueueSurvivesRestart(t *testing.T) {
	fn := newFedNet(t)
	dirA := t.TempDir()
	a, closeA := fn.node("a.test", dirA, 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	var got []string
	b.Federation().HandleEDU("org.test", func(_ string, content json.RawMessage) error {
		got = append(got, string(content))
		return nil
	})
	fn.net.SetDown("b.test", true)
	if err := a.Federation().SendEDU([]string{"b.test"}, "org.test", "one"); err != nil {
		t.Fatal(err)
	}
	fn.settle()
	st, _ := a.store.Destination("b.test")
	if st.Failures != 1 {
		t.Fatalf("failures %d, want 1", st.Failures)
	}
	wait := time.UnixMilli(st.RetryAtTS).Sub(fn.clock.Now())
	if wait < retryBase/2 || wait >= retryBase {
		t.Fatalf("first retry in %v, want in [%v, %v)", wait, retryBase/2, retryBase)
	}
	// The retry fails too: the backoff doubles.
	fn.clock.Advance(wait)
	fn.settle()
	st, _ = a.store.Destination("b.test")
	if st.Failures != 2 {
		t.Fatalf("failures %d, want 2", st.Failures)
	}
	wait = time.UnixMilli(st.RetryAtTS).Sub(fn.clock.Now())
	if wait < retryBase || wait >= 2*retryBase {
		t.Fatalf("second retry in %v, want in [%v, %v)", wait, retryBase, 2*retryBase)
	}
	if err := a.Federation().SendEDU([]string{"b.test"}, "org.test", "two"); err != nil {
		t.Fatal(err)
	}

	// Restart a.test: the queue and its backoff come back from SQLite.
	closeA()
	a, _ = fn.node("a.test", dirA, 1)
	fn.net.SetDown("b.test", false)
	if n, _ := a.Federation().QueueLen("b.test"); n != 2 {
		t.Fatalf("after restart %d items queued, want 2", n)
	}
	fn.clock.Advance(wait - time.Millisecond)
	fn.settle()
	if len(got) != 0 {
		t.Fatalf("delivered before the backoff ended: %q", got)
	}
	caughtUp := ""
	a.Federation().SetCatchUp(func(dest string) { caughtUp = dest })
	fn.clock.Advance(time.Millisecond)
	fn.settle()
	if strings.Join(got, ",") != `"one","two"` {
		t.Fatalf("delivered %q", got)
	}
	if caughtUp != "b.test" {
		t.Fatalf("catch-up hook ran for %q", caughtUp)
	}
	if st, _ := a.store.Destination("b.test"); st.Failures != 0 {
		t.Fatalf("failures %d after success", st.Failures)
	}
}

func TestFedInboundWakesBackoff(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	n := 0
	b.Federation().HandleEDU("org.test", func(string, json.RawMessage) error { n++; return nil })
	a.Federation().HandleEDU("org.test", func(string, json.RawMessage) error { return nil })
	fn.net.SetDown("b.test", true)
	_ = a.Federation().SendEDU([]string{"b.test"}, "org.test", 1)
	fn.settle()
	fn.net.SetDown("b.test", false)
	// b.test sends a.test a transaction: a.test retries at once.
	_ = b.Federation().SendEDU([]string{"a.test"}, "org.test", 2)
	fn.settle()
	if n != 1 {
		t.Fatalf("a.test did not retry when b.test came back (%d EDUs)", n)
	}
}

func TestFedRemoteProfileAndAlias(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	_, tokA, _ := a.register("alice", "pw")
	_, tokB, _ := b.register("bob", "pw")
	if r := b.do("PUT", "/_matrix/client/v3/profile/@bob:b.test/displayname", tokB, map[string]string{"displayname": "Bob B"}); r.Status != 200 {
		t.Fatalf("set displayname: %d %s", r.Status, r.Raw)
	}
	r := fn.client(a, "GET", "/_matrix/client/v3/profile/@bob:b.test", tokA, nil)
	if r.Status != 200 || r.str("displayname") != "Bob B" {
		t.Fatalf("remote profile: %d %s", r.Status, r.Raw)
	}
	r = fn.client(a, "GET", "/_matrix/client/v3/profile/@bob:b.test/displayname", "", nil)
	if r.Status != 200 || r.str("displayname") != "Bob B" {
		t.Fatalf("remote displayname: %d %s", r.Status, r.Raw)
	}
	wantErr(t, fn.client(a, "GET", "/_matrix/client/v3/profile/@bob:b.test/avatar_url", tokA, nil), 404, ErrCodeNotFound)
	wantErr(t, fn.client(a, "GET", "/_matrix/client/v3/profile/@nobody:b.test", tokA, nil), 404, ErrCodeNotFound)
	wantErr(t, fn.client(a, "GET", "/_matrix/client/v3/profile/@x:gone.test", tokA, nil), 502, ErrCodeUnknown)
	// Local profiles are still served locally.
	if r := fn.client(a, "GET", "/_matrix/client/v3/profile/@alice:a.test", tokA, nil); r.Status != 200 {
		t.Fatalf("local profile: %d %s", r.Status, r.Raw)
	}

	cr := b.do("POST", "/_matrix/client/v3/createRoom", tokB, map[string]any{"room_alias_name": "lobby"})
	if cr.Status != 200 {
		t.Fatalf("createRoom: %d %s", cr.Status, cr.Raw)
	}
	r = fn.client(a, "GET", "/_matrix/client/v3/directory/room/%23lobby:b.test", tokA, nil)
	if r.Status != 200 || r.str("room_id") != cr.str("room_id") {
		t.Fatalf("remote alias: %d %s", r.Status, r.Raw)
	}
	if s, _ := r.Body["servers"].([]any); len(s) == 0 || s[0] != "b.test" {
		t.Fatalf("servers: %s", r.Raw)
	}
	wantErr(t, fn.client(a, "GET", "/_matrix/client/v3/directory/room/%23none:b.test", tokA, nil), 404, ErrCodeNotFound)
}

func TestFedQueries(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	b.register("bob", "pw")
	do := func(method, uri string, body any) testResp {
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		return fn.signed(b, "a.test", a.key.ID, a.key.Key, "b.test", method, uri, raw)
	}
	r := do("GET", "/_matrix/federation/v1/user/devices/@bob:b.test", nil)
	if r.Status != 200 || r.str("user_id") != "@bob:b.test" {
		t.Fatalf("user/devices: %d %s", r.Status, r.Raw)
	}
	if d, _ := r.Body["devices"].([]any); len(d) != 1 {
		t.Fatalf("user/devices: %s", r.Raw)
	}
	wantErr(t, do("GET", "/_matrix/federation/v1/user/devices/@bob:a.test", nil), 404, ErrCodeNotFound)
	r = do("POST", "/_matrix/federation/v1/user/keys/query", map[string]any{"device_keys": map[string]any{"@bob:b.test": []string{}, "@x:c.test": []string{}}})
	if r.Status != 200 || string(r.Raw) != `{"device_keys":{"@bob:b.test":{}}}` {
		t.Fatalf("keys/query: %d %s", r.Status, r.Raw)
	}
	r = do("POST", "/_matrix/federation/v1/user/keys/claim", map[string]any{"one_time_keys": map[string]any{"@bob:b.test": map[string]string{"D": "signed_curve25519"}}})
	if r.Status != 200 || string(r.Raw) != `{"one_time_keys":{}}` {
		t.Fatalf("keys/claim: %d %s", r.Status, r.Raw)
	}
	wantErr(t, do("POST", "/_matrix/federation/v1/user/keys/claim", map[string]any{}), 400, ErrCodeBadJSON)
	r = do("GET", "/_matrix/federation/v1/publicRooms", nil)
	if r.Status != 200 {
		t.Fatalf("publicRooms: %d %s", r.Status, r.Raw)
	}
	wantErr(t, do("GET", "/_matrix/federation/v1/query/profile?user_id=%40bob%3Ab.test&field=bogus", nil), 400, ErrCodeInvalidParam)
	wantErr(t, do("GET", "/_matrix/federation/v1/query/profile", nil), 400, ErrCodeMissingParam)
}

func TestFedNotaryQuery(t *testing.T) {
	fn := newFedNet(t)
	_, _ = fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	c, _ := fn.node("c.test", t.TempDir(), 3)
	body := []byte(`{"server_keys":{"c.test":{},"b.test":{},"gone.test":{}}}`)
	r := fn.raw(b, "POST", "/_matrix/key/v2/query", "", body)
	if r.Status != 200 {
		t.Fatalf("key query: %d %s", r.Status, r.Raw)
	}
	got, err := keys.ParseQueryResponse(r.Raw, "b.test", keys.Criteria{"c.test": nil, "b.test": nil, "gone.test": nil},
		func(id string) (ed25519.PublicKey, bool) { return b.key.Public(), id == b.key.ID })
	if err != nil {
		t.Fatal(err)
	}
	if len(got["c.test"]) != 1 || !got["c.test"][0].VerifyKeys[c.key.ID].Equal(c.key.Public()) {
		t.Fatalf("c.test's keys not answered: %s", r.Raw)
	}
	if len(got["b.test"]) != 1 || len(got["gone.test"]) != 0 {
		t.Fatalf("answer %s", r.Raw)
	}
	// The GET form answers from the cache without fetching again.
	before := fn.net.Delivered
	r = fn.raw(b, "GET", "/_matrix/key/v2/query/c.test", "", nil)
	if r.Status != 200 || fn.net.Delivered != before || !strings.Contains(string(r.Raw), c.key.ID) {
		t.Fatalf("GET key query: %d %s (%d deliveries)", r.Status, r.Raw, fn.net.Delivered-before)
	}
}

func TestFedVersionAndWellKnown(t *testing.T) {
	a := newTestNode(t, func(c *Config) {
		c.WellKnownServer = "fed.example.org:443"
		c.WellKnownClient = "https://matrix.example.org"
	})
	r := a.do("GET", "/_matrix/federation/v1/version", "", nil)
	if s, _ := r.Body["server"].(map[string]any); r.Status != 200 || s["name"] != softwareName {
		t.Fatalf("version: %d %s", r.Status, r.Raw)
	}
	if r := a.do("GET", "/.well-known/matrix/server", "", nil); r.str("m.server") != "fed.example.org:443" {
		t.Fatalf("well-known server: %d %s", r.Status, r.Raw)
	}
	if r := a.do("GET", "/.well-known/matrix/client", "", nil); !strings.Contains(string(r.Raw), `"base_url":"https://matrix.example.org"`) {
		t.Fatalf("well-known client: %d %s", r.Status, r.Raw)
	}
	b := newTestNode(t, nil)
	wantErr(t, b.do("GET", "/.well-known/matrix/server", "", nil), 404, ErrCodeNotFound)
	wantErr(t, b.do("GET", "/.well-known/matrix/client", "", nil), 404, ErrCodeNotFound)
	if _, err := ParseConfig([]byte("server_name: a.test\nwell_known_client: ftp://x\n")); err == nil {
		t.Fatal("bad well_known_client accepted")
	}
}

func TestNoRemoteFails(t *testing.T) {
	a := newTestNode(t, nil)
	_, tok, _ := a.register("alice", "pw")
	r, _ := a.start("GET", "/_matrix/client/v3/profile/@x:elsewhere.test", tok, nil)
	if r.Answered {
		t.Fatal("answered inside Do")
	}
	a.clock.Advance(0)
	wantErr(t, *r, 502, ErrCodeUnknown)
}

func TestServerAllowed(t *testing.T) {
	acl := `{"allow":["*.example.org","good.test","?.one"],"deny":["bad.example.org","*.evil"],"allow_ip_literals":false}`
	cases := []struct {
		acl, server string
		want        bool
	}{
		{"", "anything.test", true},
		{acl, "matrix.example.org", true},
		{acl, "matrix.example.org:8448", true},
		{acl, "MATRIX.Example.org", true},
		{acl, "bad.example.org", false},
		{acl, "bad.example.org:443", false},
		{acl, "good.test", true},
		{acl, "x.good.test", false},
		{acl, "a.one", true},
		{acl, "ab.one", false},
		{acl, "x.evil", false},
		{acl, "1.2.3.4", false},
		{acl, "[::1]:8448", false},
		{`{"allow":["*"]}`, "1.2.3.4:8448", true},
		{`{"allow":["*"],"deny":["1.2.3.*"]}`, "1.2.3.4:8448", false},
		{`{"deny":["x"]}`, "y", false},
		{`{}`, "y", false},
		{`{"allow":"*"}`, "y", false},
		{`{"allow":["*"],"deny":[5,"y"]}`, "y", false},
		{`[1]`, "y", true},
		{`{"allow":["a*a*a*a*a*a*a*b"]}`, strings.Repeat("a", 200), false},
	}
	for _, tc := range cases {
		if got := ServerAllowed(json.RawMessage(tc.acl), tc.server); got != tc.want {
			t.Errorf("ServerAllowed(%s, %q) = %v, want %v", tc.acl, tc.server, got, tc.want)
		}
	}
}

func TestFedRefusedTransactionDropped(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	got := 0
	b.Federation().HandleEDU("org.test", func(string, json.RawMessage) error { got++; return nil })
	// A PDU over the body limit: b.test answers 413; a.test drops that
	// batch instead of retrying it for ever, and the next item goes out.
	big := json.RawMessage(`{"room_id":"!r:a.test","content":{"x":"` + strings.Repeat("x", int(b.cfg.MaxRequestBytes)) + `"}}`)
	if err := a.Federation().SendPDU([]string{"b.test"}, big); err != nil {
		t.Fatal(err)
	}
	fn.settle()
	if err := a.Federation().SendEDU([]string{"b.test"}, "org.test", 1); err != nil {
		t.Fatal(err)
	}
	fn.settle()
	if n, _ := a.Federation().QueueLen("b.test"); n != 0 || got != 1 {
		t.Fatalf("%d items left, %d EDUs delivered", n, got)
	}
	if st, _ := a.store.Destination("b.test"); st.Failures != 0 {
		t.Fatalf("refusal counted as a failure: %+v", st)
	}
}

func TestFedKeysThroughNotary(t *testing.T) {
	fn := newFedNet(t)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	c, _ := fn.node("c.test", t.TempDir(), 3)
	wrong, _ := GenerateSigningKey(clock.SeededRNG(77))
	a, _ := fn.nodeWith("a.test", t.TempDir(), 1, func(cfg *Config) {
		cfg.KeyNotaries = []KeyNotary{
			// A notary whose pinned key is wrong is skipped.
			{ServerName: "b.test", VerifyKeys: map[string]string{b.key.ID: event.EncodeBase64(wrong.Public())}},
			{ServerName: "gone.test", VerifyKeys: map[string]string{"ed25519:x": event.EncodeBase64(wrong.Public())}},
			{ServerName: "b.test", VerifyKeys: map[string]string{b.key.ID: event.EncodeBase64(b.key.Public())}},
		}
	})
	// b.test learns c.test's keys; then c.test goes quiet.
	if r := fn.raw(b, "GET", "/_matrix/key/v2/query/c.test", "", nil); r.Status != 200 {
		t.Fatalf("prime b.test: %d %s", r.Status, r.Raw)
	}
	fn.net.SetDown("c.test", true)
	q := "/_matrix/federation/v1/query/profile?user_id=%40x%3Aa.test"
	r := fn.signed(a, "c.test", c.key.ID, c.key.Key, "a.test", "GET", q, nil)
	if r.Status != 404 || r.str("errcode") != ErrCodeNotFound {
		t.Fatalf("request from c.test verified through the notary: %d %s", r.Status, r.Raw)
	}
	if _, ok, _ := a.store.ServerKeys().Key("c.test", c.key.ID); !ok {
		t.Fatal("c.test's key not cached from the notary")
	}
	// A forged request from c.test still fails: the notary vouches for
	// c.test's real key only.
	forger, _ := GenerateSigningKey(clock.SeededRNG(78))
	wantErr(t, fn.signed(a, "c.test", c.key.ID, forger.Key, "a.test", "GET", q, nil), 401, ErrCodeForbidden)
}

func TestKeyNotaryConfig(t *testing.T) {
	cfg := DefaultConfig("a.test")
	cfg.KeyNotaries = []KeyNotary{{ServerName: "n.test", VerifyKeys: map[string]string{"ed25519:k": event.EncodeBase64(make([]byte, 32))}}}
	text, err := cfg.MarshalCommented()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(back.KeyNotaries) != 1 || back.KeyNotaries[0].VerifyKeys["ed25519:k"] != cfg.KeyNotaries[0].VerifyKeys["ed25519:k"] {
		t.Fatalf("round trip: %+v", back.KeyNotaries)
	}
	for _, bad := range []string{
		"server_name: a.test\nkey_notaries: [{server_name: n.test}]\n",
		"server_name: a.test\nkey_notaries: [{server_name: n.test, verify_keys: {\"ed25519:k\": \"short\"}}]\n",
		"server_name: a.test\nkey_notaries: [{server_name: \"bad name\", verify_keys: {}}]\n",
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestFedPeerServerOrigin(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	b.register("bob", "pw")
	uri := "/_matrix/federation/v1/query/profile?user_id=%40bob%3Ab.test"
	do := func(peer, auth string) testResp {
		path, rq, _ := strings.Cut(uri, "?")
		q, _ := url.ParseQuery(rq)
		out := &testResp{}
		b.Dispatch(&Request{Method: "GET", Path: path, Query: q, URI: uri, PeerServer: peer, Authorization: auth}, func(r Response) {
			raw, _ := marshalBody(r.Body)
			*out = testResp{Status: r.Status, Raw: raw, Answered: true, Body: map[string]any{}}
			_ = json.Unmarshal(raw, &out.Body)
		})
		fn.settle()
		return *out
	}
	if r := do("a.test", ""); r.Status != 200 {
		t.Fatalf("Noise-authenticated peer: %d %s", r.Status, r.Raw)
	}
	h, _ := xmatrix.Sign(xmatrix.Request{Method: "GET", URI: uri, Origin: "a.test", Destination: "b.test"}, a.key.ID, a.key.Key)
	auth, _ := h.Format()
	if r := do("a.test", auth); r.Status != 200 {
		t.Fatalf("peer with matching X-Matrix: %d %s", r.Status, r.Raw)
	}
	wantErr(t, do("c.test", auth), 401, ErrCodeUnauthorized)
}
