package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// fedNode is a real mxmesh node serving federation over TLS on loopback,
// named "127.0.0.1:<port>", sending through FederationRemote.
type fedNode struct {
	Name string
	Node *homeserver.Node
	Loop *homeserver.Loop
	// URL is the HTTPS base URL (self-signed certificate).
	URL string
	cl  *http.Client
}

// startFedNode runs a node until the test ends.
func startFedNode(t *testing.T) *fedNode {
	t.Helper()
	dir := t.TempDir()
	port := fedFreePort(t)
	name := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := homeserver.DefaultConfig(name)
	cfg.Dir = dir
	cfg.ClientAddr = ""
	cfg.FederationAddr = name
	cfg.FederationTLSInsecure = true
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	certPEM, keyPEM, err := SelfSignedCert(name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Path(cfg.TLSCert), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Path(cfg.TLSKey), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := homeserver.GenerateSigningKey(clock.SystemRNG())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&testLogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	client, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: name, KeyID: key.ID, Key: key.Key, InsecureSkipVerify: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	loop := homeserver.NewLoop()
	remote := NewFederationRemote(client, loop, log)
	n, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key, Logger: log, Loop: loop, Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(n, log)
	if _, err := srv.ListenTLS(name, cfg.Path(cfg.TLSCert), cfg.Path(cfg.TLSKey)); err != nil {
		t.Fatal(err)
	}
	loopDone := make(chan struct{})
	go func() { loop.Run(); close(loopDone) }()
	srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = loop.Post(n.Stop)
		_ = srv.Shutdown(ctx)
		<-loop.Close()
		<-loopDone
		remote.Close()
		st.Close()
	})
	return &fedNode{Name: name, Node: n, Loop: loop, URL: "https://" + name,
		cl: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
}

// testLogWriter sends node logs to t.Log (shown for failed tests).
type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// clientCall makes a client-API request to base and decodes the answer.
func clientCall(t *testing.T, cl *http.Client, method, base, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// registerOn creates a user on our node and returns its access token.
func (f *fedNode) register(t *testing.T, user string) string {
	t.Helper()
	status, out := clientCall(t, f.cl, "POST", f.URL, "/_matrix/client/v3/register", "",
		map[string]any{"username": user, "password": "pw-" + user, "auth": map[string]string{"type": "m.login.dummy"}})
	tok, _ := out["access_token"].(string)
	if status != 200 || tok == "" {
		t.Fatalf("register %s: %d %v", user, status, out)
	}
	return tok
}

// TestDendriteQueriesOurProfile: a Dendrite user asks Dendrite for the
// profile of one of our users; Dendrite fetches our keys and queries us
// over federation (GET /_matrix/federation/v1/query/profile, X-Matrix
// signed, verified by us with Dendrite's keys fetched through our Remote).
func TestDendriteQueriesOurProfile(t *testing.T) {
	d := startDendrite(t)
	us := startFedNode(t)
	tok := us.register(t, "alice")
	if status, out := clientCall(t, us.cl, "PUT", us.URL, "/_matrix/client/v3/profile/@alice:"+us.Name+"/displayname", tok,
		map[string]string{"displayname": "Alice on the mesh"}); status != 200 {
		t.Fatalf("set displayname: %d %v", status, out)
	}
	bobTok := d.registerAndLogin(t, "bob", "bobpassword")
	status, out := clientCall(t, nil, "GET", d.ClientURL, "/_matrix/client/v3/profile/"+url.PathEscape("@alice:"+us.Name), bobTok, nil)
	if status != 200 || out["displayname"] != "Alice on the mesh" {
		t.Fatalf("Dendrite's answer for our user's profile: %d %v", status, out)
	}
	status, out = clientCall(t, nil, "GET", d.ClientURL, "/_matrix/client/v3/profile/"+url.PathEscape("@nobody:"+us.Name), bobTok, nil)
	if status != 404 {
		t.Fatalf("Dendrite's answer for a user we do not have: %d %v", status, out)
	}
}

// TestOurClientQueriesDendriteProfile: our client asks our node for a
// Dendrite user's profile; our node queries Dendrite over federation.
func TestOurClientQueriesDendriteProfile(t *testing.T) {
	d := startDendrite(t)
	us := startFedNode(t)
	bobTok := d.registerAndLogin(t, "bob", "bobpassword")
	bob := "@bob:" + d.Name
	if status, out := clientCall(t, nil, "PUT", d.ClientURL, "/_matrix/client/v3/profile/"+url.PathEscape(bob)+"/displayname", bobTok,
		map[string]string{"displayname": "Bob on Dendrite"}); status != 200 {
		t.Fatalf("set displayname on dendrite: %d %v", status, out)
	}
	tok := us.register(t, "alice")
	status, out := clientCall(t, us.cl, "GET", us.URL, "/_matrix/client/v3/profile/"+url.PathEscape(bob), tok, nil)
	if status != 200 || out["displayname"] != "Bob on Dendrite" {
		t.Fatalf("our answer for a Dendrite user's profile: %d %v", status, out)
	}
	status, out = clientCall(t, us.cl, "GET", us.URL, "/_matrix/client/v3/profile/"+url.PathEscape(bob)+"/displayname", tok, nil)
	if status != 200 || out["displayname"] != "Bob on Dendrite" {
		t.Fatalf("displayname: %d %v", status, out)
	}
	status, out = clientCall(t, us.cl, "GET", us.URL, "/_matrix/client/v3/profile/"+url.PathEscape("@nobody:"+d.Name), tok, nil)
	if status != 404 {
		t.Fatalf("unknown Dendrite user: %d %v", status, out)
	}
}

// TestDendriteAcceptsOurTransaction: a transaction from our persisted
// queue (one presence EDU about our user) is sent to Dendrite over HTTPS
// and accepted; the queue drains.
func TestDendriteAcceptsOurTransaction(t *testing.T) {
	d := startDendrite(t)
	us := startFedNode(t)
	us.register(t, "alice")
	inLoop := func(f func()) {
		done := make(chan struct{})
		if err := us.Loop.Post(func() { f(); close(done) }); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	var err error
	inLoop(func() {
		err = us.Node.Federation().SendEDU([]string{d.Name}, "m.presence", map[string]any{"push": []any{
			map[string]any{"user_id": "@alice:" + us.Name, "presence": "online", "last_active_ago": 0, "currently_active": true},
		}})
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		var qerr error
		inLoop(func() { n, qerr = us.Node.Federation().QueueLen(d.Name) })
		if qerr != nil {
			t.Fatal(qerr)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction to Dendrite not delivered within 60 s (%d queued)", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var st store.DestinationState
	inLoop(func() { st, err = us.Node.Store().Destination(d.Name) })
	if err != nil || st.Failures != 0 {
		t.Fatalf("destination state %+v, %v", st, err)
	}
}
