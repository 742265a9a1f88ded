package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// accountsTestServer runs a real node behind the HTTP front door on a
// loopback port, with open registration and cheap bcrypt. It returns the
// base URL.
func accountsTestServer(t testing.TB, mutate func(*homeserver.Config)) string {
	t.Helper()
	cfg := homeserver.DefaultConfig("gw.test")
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	cfg.Dir = t.TempDir()
	if mutate != nil {
		mutate(cfg)
	}
	st, err := store.Open(filepath.Join(cfg.Dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := homeserver.GenerateSigningKey(clock.SeededRNG(3))
	if err != nil {
		t.Fatal(err)
	}
	loop := homeserver.NewLoop()
	node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key,
		Clock: clock.Real(), RNG: clock.SeededRNG(4), Loop: loop})
	if err != nil {
		t.Fatal(err)
	}
	go loop.Run()
	srv := NewHTTPServer(node, nil)
	addr, err := srv.ListenPlain("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		_ = loop.Post(node.Stop)
		<-loop.Close()
		st.Close()
	})
	return "http://" + addr.String()
}

func TestMautrixAccounts(t *testing.T) {
	base := accountsTestServer(t, nil)
	ctx := context.Background()
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Versions(ctx); err != nil {
		t.Fatalf("versions: %v", err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if reg.UserID != "@alice:gw.test" || reg.AccessToken == "" {
		t.Fatalf("register response %+v", reg)
	}
	_, err = cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "x"})
	if !errors.Is(err, mautrix.MUserInUse) {
		t.Fatalf("second register: %v, want M_USER_IN_USE", err)
	}
	_, err = cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:   "wrong"})
	if !errors.Is(err, mautrix.MForbidden) {
		t.Fatalf("bad password: %v, want M_FORBIDDEN", err)
	}
	login, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:   "wonderland", InitialDeviceDisplayName: "mautrix test", StoreCredentials: true})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	who, err := cli.Whoami(ctx)
	if err != nil || who.UserID != "@alice:gw.test" || who.DeviceID != login.DeviceID {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	devs, err := cli.GetDevicesInfo(ctx)
	if err != nil || len(devs.Devices) != 2 {
		t.Fatalf("devices: %+v %v", devs, err)
	}
	if _, err := cli.Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if _, err := cli.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Fatalf("whoami after logout: %v, want M_UNKNOWN_TOKEN", err)
	}
	// The registration token still works until logout/all.
	cli.AccessToken = reg.AccessToken
	if _, err := cli.Whoami(ctx); err != nil {
		t.Fatalf("registration token: %v", err)
	}
	if _, err := cli.LogoutAll(ctx); err != nil {
		t.Fatalf("logout/all: %v", err)
	}
	if _, err := cli.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
		t.Fatalf("whoami after logout/all: %v", err)
	}
}

func TestHTTPTranslation(t *testing.T) {
	base := accountsTestServer(t, func(c *homeserver.Config) { c.MaxRequestBytes = 1000 })
	do := func(method, path string, hdr map[string]string, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// CORS preflight and headers on ordinary answers.
	resp, _ := do("OPTIONS", "/_matrix/client/v3/login", nil, "")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body := do("GET", "/_matrix/client/v3/nowhere", nil, "")
	if resp.StatusCode != 404 || !strings.Contains(body, "M_UNRECOGNIZED") || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("404: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = do("DELETE", "/_matrix/client/v3/login", nil, "")
	if resp.StatusCode != 405 || !strings.Contains(body, "M_UNRECOGNIZED") {
		t.Fatalf("405: %d %s", resp.StatusCode, body)
	}
	// Too large: refused with 413 whether or not Content-Length announces it.
	big := `{"username":"` + strings.Repeat("a", 2000) + `"}`
	resp, body = do("POST", "/_matrix/client/v3/register", nil, big)
	if resp.StatusCode != 413 || !strings.Contains(body, "M_TOO_LARGE") {
		t.Fatalf("413: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", base+"/_matrix/client/v3/register", io.MultiReader(bytes.NewReader([]byte(big))))
	req.ContentLength = -1
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 413 {
		t.Fatalf("chunked 413: %d", r2.StatusCode)
	}
	// Tokens: Authorization header and the query parameter both work.
	resp, body = do("POST", "/_matrix/client/v3/register", nil, `{"username":"tok","password":"pw","auth":{"type":"m.login.dummy"}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	tok := body[strings.Index(body, `"access_token":"`)+16:]
	tok = tok[:strings.IndexByte(tok, '"')]
	if resp, body := do("GET", "/_matrix/client/v3/account/whoami", map[string]string{"Authorization": "Bearer " + tok}, ""); resp.StatusCode != 200 {
		t.Fatalf("bearer: %d %s", resp.StatusCode, body)
	}
	if resp, body := do("GET", "/_matrix/client/v3/account/whoami?access_token="+tok, nil, ""); resp.StatusCode != 200 {
		t.Fatalf("query token: %d %s", resp.StatusCode, body)
	}
	if resp, body := do("GET", "/_matrix/client/v3/account/whoami", nil, ""); resp.StatusCode != 401 || !strings.Contains(body, "M_MISSING_TOKEN") {
		t.Fatalf("no token: %d %s", resp.StatusCode, body)
	}
}

func TestHTTPRateLimitHeader(t *testing.T) {
	base := accountsTestServer(t, func(c *homeserver.Config) {
		c.RateLimit = homeserver.RateLimitConfig{Enabled: true,
			PerIP:   homeserver.BucketConfig{PerSecond: 0.5, Burst: 1},
			PerUser: homeserver.BucketConfig{PerSecond: 1, Burst: 1}}
	})
	var last *http.Response
	for i := 0; i < 2; i++ {
		resp, err := http.Get(base + "/_matrix/client/v3/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("second request: %d Retry-After=%q", last.StatusCode, last.Header.Get("Retry-After"))
	}
}
