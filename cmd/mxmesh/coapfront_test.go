package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/gateway"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/noise"
)

// freeUDPPort finds a loopback UDP port nobody uses right now.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// serveCoAP initialises a node with its CoAP/Noise listener and a plain
// debug listener on free ports, runs it as `mxmesh serve` does, and
// returns the directory and both addresses.
func serveCoAP(t *testing.T) (dir, noiseAddr, plainAddr string) {
	t.Helper()
	noiseAddr, plainAddr = freeUDPPort(t), freeUDPPort(t)
	dir = initTestDir(t, "--open-registration", "--coap-addr", noiseAddr)
	conf := filepath.Join(dir, homeserver.ConfigFile)
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text = bytes.Replace(text, []byte(`plain_coap_addr: ""`), []byte(`plain_coap_addr: "`+plainAddr+`"`), 1)
	text = bytes.Replace(text, []byte("bcrypt_cost: 10"), []byte("bcrypt_cost: 4"), 1)
	if err := os.WriteFile(conf, text, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- serve(ctx, dir, logs, func([]net.Addr) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
	})
	return dir, noiseAddr, plainAddr
}

func coapCall(t *testing.T, c *gateway.CoAPClient, method, path string, body any, out any) {
	t.Helper()
	var j []byte
	if body != nil {
		j, _ = json.Marshal(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.Do(ctx, method, path, j)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if err := resp.Err(); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if err := json.Unmarshal(resp.JSON, out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

// TestServeCoAPFrontDoor: a node started by serve answers a client that
// pinned it from `mxmesh peer show`, over CoAP/Noise on real UDP:
// register, log in, create a room, send "hello", sync it back.
func TestServeCoAPFrontDoor(t *testing.T) {
	dir, noiseAddr, _ := serveCoAP(t)
	f := showKey(t, dir)
	tok, err := noise.ParseKeyToken(f["key"])
	if err != nil {
		t.Fatal(err)
	}
	c, err := gateway.DialCoAP(gateway.CoAPClientConfig{Server: netip.MustParseAddrPort(noiseAddr),
		ServerName: f["server_name"], ServerKey: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reg struct {
		UserID string `json:"user_id"`
	}
	coapCall(t, c, "POST", "/_matrix/client/v3/register",
		map[string]any{"username": "alice", "password": "wonderland", "auth": map[string]string{"type": "m.login.dummy"}}, &reg)
	var login struct {
		AccessToken string `json:"access_token"`
	}
	coapCall(t, c, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": "alice"}, "password": "wonderland"}, &login)
	c.SetAccessToken(login.AccessToken)
	var room struct {
		RoomID string `json:"room_id"`
	}
	coapCall(t, c, "POST", "/_matrix/client/v3/createRoom", map[string]any{}, &room)
	var sent struct {
		EventID string `json:"event_id"`
	}
	coapCall(t, c, "PUT", "/_matrix/client/v3/rooms/"+room.RoomID+"/send/m.room.message/1",
		map[string]string{"msgtype": "m.text", "body": "hello"}, &sent)
	var sy struct {
		Rooms struct {
			Join map[string]struct {
				Timeline struct {
					Events []struct {
						EventID string `json:"event_id"`
						Content struct {
							Body string `json:"body"`
						} `json:"content"`
					} `json:"events"`
				} `json:"timeline"`
			} `json:"join"`
		} `json:"rooms"`
	}
	coapCall(t, c, "GET", "/_matrix/client/v3/sync", nil, &sy)
	found := false
	for _, ev := range sy.Rooms.Join[room.RoomID].Timeline.Events {
		found = found || ev.EventID == sent.EventID && ev.Content.Body == "hello"
	}
	if reg.UserID != "@alice:cli.test" || !found {
		t.Fatalf("register %q; hello not in the synced timeline: %+v", reg.UserID, sy.Rooms.Join)
	}

	// A client with the wrong key for the server never gets an answer.
	other, err := noise.ParseKeyToken(showKey(t, initNamed(t, "cli.test"))["key"])
	if err != nil {
		t.Fatal(err)
	}
	bad, err := gateway.DialCoAP(gateway.CoAPClientConfig{Server: netip.MustParseAddrPort(noiseAddr),
		ServerName: "cli.test", ServerKey: other})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := bad.Do(ctx, "GET", "/_matrix/client/versions", nil); err == nil {
		t.Fatal("answered a client that pinned another key")
	}
}

// TestServePlainCoAPLibcoap: libcoap's coap-client reaches
// /_matrix/client/versions through the plain (loopback) front door, by
// full path and by MSC3079 path code 0.
func TestServePlainCoAPLibcoap(t *testing.T) {
	bin, err := exec.LookPath("coap-client-notls")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("coap-client-notls not installed (apt-get install -y libcoap3-bin)")
		}
		t.Fatalf("coap-client-notls missing in CI: %v", err)
	}
	_, _, plainAddr := serveCoAP(t)
	for _, path := range []string{"/_matrix/client/versions", "/0"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, "-m", "get", "-A", "50", "-B", "10", "coap://"+plainAddr+path).Output()
		cancel()
		if err != nil {
			t.Fatalf("coap-client-notls %s: %v\n%s", path, err, out)
		}
		var v struct {
			Versions []string `json:"versions"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(out), &v); err != nil || len(v.Versions) == 0 || !strings.HasPrefix(v.Versions[0], "v1.") && !strings.HasPrefix(v.Versions[0], "r0") {
			t.Fatalf("%s via libcoap: %q (%v)", path, out, err)
		}
	}
}

// TestClientCLI: `mxmesh client` against a served node over CoAP/Noise:
// register, log in (password on stdin), create a room, send, sync, and an
// incremental sync that only shows what is new.
func TestClientCLI(t *testing.T) {
	dir, noiseAddr, _ := serveCoAP(t)
	key := showKey(t, dir)["key"]
	state := filepath.Join(t.TempDir(), "client.json")
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		base := []string{"client", "--server", noiseAddr, "--key", key, "--server-name", "cli.test", "--state", state, "-v"}
		code := run(append(base, args...), strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := cli("", "register", "carol", "--password", "secret-pw"); code != 0 || !strings.Contains(out, "@carol:cli.test") {
		t.Fatalf("register: %d %q %q", code, out, errs)
	}
	if code, out, errs := cli("secret-pw\n", "login", "carol"); code != 0 || !strings.Contains(out, "logged in as @carol:cli.test") {
		t.Fatalf("login: %d %q %q", code, out, errs)
	}
	code, out, errs := cli("", "create-room", "mesh")
	room := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(room, "!") {
		t.Fatalf("create-room: %d %q %q", code, out, errs)
	}
	code, out, errs = cli("", "send", room, "hello", "mesh")
	if code != 0 || !strings.HasPrefix(out, "$") || !strings.Contains(errs, "sent 1 datagrams") {
		t.Fatalf("send: %d %q %q", code, out, errs)
	}
	t.Logf("mxmesh client send (new session: handshake, token, request): %s", strings.TrimSpace(errs))
	if code, out, errs := cli("", "sync"); code != 0 || out != room+" @carol:cli.test: hello mesh\n" {
		t.Fatalf("sync: %d %q %q", code, out, errs)
	}
	cli("", "send", room, "second")
	if code, out, errs := cli("", "--frames", "sync", "--timeout", "1000"); code != 0 || out != room+" @carol:cli.test: second\n" {
		t.Fatalf("incremental sync: %d %q %q", code, out, errs)
	}
	if code, _, errs := cli("", "send", room); code != 2 {
		t.Fatalf("send without text: %d %q", code, errs)
	}
	var out2, errb bytes.Buffer
	if code := run([]string{"client", "--server", noiseAddr, "--key", key, "--server-name", "other.test", "sync"}, nil, &out2, &errb); code != 1 || !strings.Contains(errb.String(), "does not bind") {
		t.Fatalf("wrong server name: %d %q", code, errb.String())
	}
}

// TestServeCreatesMissingNoiseKey: a data directory from before the Noise
// key existed gets one on the next start, and the front door uses it.
func TestServeCreatesMissingNoiseKey(t *testing.T) {
	dir := initTestDir(t)
	if err := os.Remove(filepath.Join(dir, "noise.key")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- serve(ctx, dir, logs, func([]net.Addr) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "noise.key")); err != nil || !strings.Contains(logs.String(), "created noise key") {
		t.Fatalf("noise key not created: %v\n%s", err, logs.String())
	}
}
