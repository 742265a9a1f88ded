package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver"
)

// meshServeDir initialises a node named name with its CoAP/Noise listener
// on coapAddr, open registration and cheap password hashing.
func meshServeDir(t *testing.T, name, coapAddr string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	var out, errb bytes.Buffer
	if code := run([]string{"init", "--dir", dir, "--server-name", name, "--client-addr", "127.0.0.1:0",
		"--federation-addr", "127.0.0.1:0", "--coap-addr", coapAddr, "--open-registration"}, nil, &out, &errb); code != 0 {
		t.Fatalf("init %s: exit %d: %s", name, code, errb.String())
	}
	conf := filepath.Join(dir, homeserver.ConfigFile)
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, bytes.Replace(text, []byte("bcrypt_cost: 10"), []byte("bcrypt_cost: 4"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestServeMeshFederation: two `mxmesh serve` nodes that pinned each other
// with `mxmesh peer add --mutual` federate over their CoAP/Noise sockets.
// Their server names resolve nowhere, so HTTPS federation cannot be what
// carries the invite, the join and the message.
func TestServeMeshFederation(t *testing.T) {
	addrA, addrB := freeUDPPort(t), freeUDPPort(t)
	dirA, dirB := meshServeDir(t, "a.mesh", addrA), meshServeDir(t, "b.mesh", addrB)
	for _, p := range []struct{ dir, name, addr, other string }{{dirA, "b.mesh", addrB, dirB}, {dirB, "a.mesh", addrA, dirA}} {
		var out, errb bytes.Buffer
		if code := run([]string{"peer", "add", "--dir", p.dir, p.name, p.addr, showKey(t, p.other)["key"], "--mutual"}, nil, &out, &errb); code != 0 {
			t.Fatalf("peer add: exit %d: %s", code, errb.String())
		}
	}
	urlA, _, logsA, _ := startServe(t, dirA)
	urlB, _, logsB, _ := startServe(t, dirB)
	defer func() {
		if t.Failed() {
			t.Logf("a.mesh:\n%s\nb.mesh:\n%s", logsA.String(), logsB.String())
		}
	}()

	call := func(base string, want int, method, path, token string, body any) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			rd = bytes.NewReader(j)
		}
		req, err := http.NewRequest(method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c := http.Client{Timeout: time.Minute}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return out
	}
	register := func(base, user string) (string, string) {
		r := call(base, 200, "POST", "/_matrix/client/v3/register", "",
			map[string]any{"username": user, "password": "wonderland", "auth": map[string]string{"type": "m.login.dummy"}})
		return r["user_id"].(string), r["access_token"].(string)
	}
	_, alice := register(urlA, "alice")
	bob, bobTok := register(urlB, "bob")
	room := call(urlA, 200, "POST", "/_matrix/client/v3/createRoom", alice, map[string]any{})["room_id"].(string)
	call(urlA, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/invite", alice, map[string]string{"user_id": bob})
	call(urlB, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), bobTok, map[string]any{})
	call(urlA, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/send/m.room.message/1", alice,
		map[string]string{"msgtype": "m.text", "body": "hello over the mesh"})

	since := ""
	var bodies []string
	for range 60 {
		q := "?timeout=2000"
		if since != "" {
			q += "&since=" + url.QueryEscape(since)
		}
		var sy struct {
			NextBatch string `json:"next_batch"`
			Rooms     struct {
				Join map[string]struct {
					Timeline struct {
						Events []struct {
							Content struct {
								Body string `json:"body"`
							} `json:"content"`
						} `json:"events"`
					} `json:"timeline"`
				} `json:"join"`
			} `json:"rooms"`
		}
		j, _ := json.Marshal(call(urlB, 200, "GET", "/_matrix/client/v3/sync"+q, bobTok, nil))
		if err := json.Unmarshal(j, &sy); err != nil {
			t.Fatal(err)
		}
		since = sy.NextBatch
		for _, ev := range sy.Rooms.Join[room].Timeline.Events {
			bodies = append(bodies, ev.Content.Body)
		}
		if slices.Contains(bodies, "hello over the mesh") {
			return
		}
	}
	t.Fatalf("b.mesh never synced the message; saw %q", bodies)
}
