package homeserver

import (
	"encoding/json"
	"testing"
)

// FuzzDispatch throws arbitrary requests at the platform and the account
// endpoints: every request must be answered exactly once, with a JSON
// body, and never with a 500 (which would mean a handler panicked or
// failed on bad input instead of rejecting it).
func FuzzDispatch(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/_matrix/client/v3/register", `{"username":"a","password":"p","auth":{"type":"m.login.dummy"}}`},
		{"POST", "/_matrix/client/v3/register", `{"username":"A B","auth":{"type":"m.login.dummy"}}`},
		{"POST", "/_matrix/client/v3/login", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"@a:test.local"},"password":"p"}`},
		{"POST", "/_matrix/client/v3/login", `{"type":"m.login.password","user":"@:"}`},
		{"GET", "/_matrix/client/v3/register/available?username=%00", ""},
		{"POST", "/_synapse/admin/v1/register", `{"nonce":"x","mac":"zz"}`},
		{"DELETE", "/_matrix/client/v3/devices/%2F", `{"auth":{"type":"m.login.password"}}`},
		{"PUT", "/_matrix/client/v3/devices/X", `{"display_name":5}`},
		{"GET", "//", ""},
		{"GET", "", ""},
	} {
		f.Add(seed.method, seed.path, seed.body, true)
	}
	tn := newTestNode(f, func(c *Config) { c.Registration.SharedSecret = "s" })
	_, tok, _ := tn.register("fuzzer", "pw")
	f.Fuzz(func(t *testing.T, method, path, body string, auth bool) {
		req := &Request{Method: method, Path: path, Body: []byte(body), RemoteIP: "192.0.2.9"}
		if auth {
			req.AccessToken = tok
		}
		answers := 0
		var resp Response
		tn.Dispatch(req, func(r Response) { answers++; resp = r })
		if answers != 1 {
			t.Fatalf("%s %q answered %d times", method, path, answers)
		}
		if resp.Status == 500 || resp.Status < 200 || resp.Status > 599 {
			t.Fatalf("%s %q %q: status %d %v", method, path, body, resp.Status, resp.Body)
		}
		if _, err := json.Marshal(resp.Body); err != nil {
			t.Fatalf("body does not marshal: %v", err)
		}
		// Keep the fuzzer's own token alive for the next input.
		if method == "POST" && (path == "/_matrix/client/v3/logout" || path == "/_matrix/client/v3/logout/all" ||
			path == "/_matrix/client/v3/delete_devices" || path == "/_matrix/client/v3/account/password") {
			_, tok, _ = tn.register(tn.randomLocalpart(), "pw")
		}
	})
}

// FuzzHierarchyToken: any string either fails to parse or round-trips.
func FuzzHierarchyToken(f *testing.F) {
	for _, s := range []string{"h0_10_0", "h20_3_1", "h1_2_1junk", "", "h-1_0_0", "h01_2_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := parseHierarchyToken(s)
		if !ok {
			return
		}
		if tok.String() != s || tok.skip < 0 || tok.maxDepth < 0 {
			t.Fatalf("%q parsed as %+v", s, tok)
		}
	})
}
