package homeserver

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// testNode is a node on a fake clock with a seeded RNG, driven directly
// through Dispatch: no loop, no sockets.
type testNode struct {
	*Node
	t     testing.TB
	clock *clock.Fake
}

// newTestNode builds a node named "test.local" with open registration, no
// rate limits and the cheapest bcrypt cost; mutate may change the config.
func newTestNode(t testing.TB, mutate func(*Config)) *testNode {
	t.Helper()
	cfg := DefaultConfig("test.local")
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	cfg.Dir = t.TempDir()
	if mutate != nil {
		mutate(cfg)
	}
	st, err := store.Open(filepath.Join(cfg.Dir, "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rng := clock.SeededRNG(1)
	key, err := GenerateSigningKey(rng)
	if err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(clock.Epoch)
	n, err := New(Options{Config: cfg, Store: st, SigningKey: key, Clock: fc, RNG: rng})
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{Node: n, t: t, clock: fc}
}

// testResp is a decoded response.
type testResp struct {
	Status int
	Body   map[string]any
	Raw    []byte
	// Answered is false when the handler has not replied (yet).
	Answered bool
}

// str returns a top-level string field.
func (r testResp) str(key string) string { s, _ := r.Body[key].(string); return s }

// do sends one request. path may carry a query string. body may be nil, a
// string (sent as is) or anything json.Marshal takes.
func (tn *testNode) do(method, path, token string, body any) testResp {
	tn.t.Helper()
	r, _ := tn.start(method, path, token, body)
	return *r
}

// start dispatches a request and returns a pointer filled in when (if) the
// handler replies, plus the Call.
func (tn *testNode) start(method, path, token string, body any) (*testResp, *Call) {
	tn.t.Helper()
	req := &Request{Method: method, AccessToken: token, RemoteIP: "192.0.2.1"}
	p, q, _ := strings.Cut(path, "?")
	req.Path = p
	vals, err := url.ParseQuery(q)
	if err != nil {
		tn.t.Fatal(err)
	}
	req.Query = vals
	switch b := body.(type) {
	case nil:
	case string:
		req.Body = []byte(b)
	case []byte:
		req.Body = b
	default:
		if req.Body, err = json.Marshal(b); err != nil {
			tn.t.Fatal(err)
		}
	}
	out := &testResp{}
	c := tn.Dispatch(req, func(r Response) {
		if out.Answered {
			tn.t.Errorf("%s %s answered twice", method, path)
		}
		out.Answered = true
		out.Status = r.Status
		raw, err := json.Marshal(r.Body)
		if err != nil {
			tn.t.Errorf("%s %s: response body does not marshal: %v", method, path, err)
		}
		out.Raw = raw
		out.Body = map[string]any{}
		_ = json.Unmarshal(raw, &out.Body)
	})
	return out, c
}

// register creates an account with m.login.dummy and returns its token.
func (tn *testNode) register(user, password string) (userID, token, deviceID string) {
	tn.t.Helper()
	r := tn.do("POST", "/_matrix/client/v3/register", "", map[string]any{
		"username": user, "password": password, "auth": map[string]string{"type": "m.login.dummy"},
	})
	if r.Status != 200 {
		tn.t.Fatalf("register %s: %d %s", user, r.Status, r.Raw)
	}
	return r.str("user_id"), r.str("access_token"), r.str("device_id")
}

// wantErr checks status and errcode.
func wantErr(t *testing.T, r testResp, status int, code string) {
	t.Helper()
	if !r.Answered {
		t.Fatalf("no answer, want %d %s", status, code)
	}
	if r.Status != status || r.str("errcode") != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
}
