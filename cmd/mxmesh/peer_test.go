package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/noise"
)

func initNamed(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	var out, errb bytes.Buffer
	if code := run([]string{"init", "--dir", dir, "--server-name", name, "--coap-addr", "127.0.0.1:5999"}, nil, &out, &errb); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errb.String())
	}
	return dir
}

// showKey runs `peer show` and returns the printed fields.
func showKey(t *testing.T, dir string) map[string]string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"peer", "show", "--dir", dir}, nil, &out, &errb); code != 0 {
		t.Fatalf("peer show: exit %d: %s", code, errb.String())
	}
	f := map[string]string{}
	for line := range strings.Lines(out.String()) {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			f[k] = strings.TrimSpace(v)
		}
	}
	return f
}

func TestInitWritesNoiseKey(t *testing.T) {
	dir := initNamed(t, "a.test")
	text, err := os.ReadFile(filepath.Join(dir, "noise.key"))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := noise.ParseKeyPair(text)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "noise.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("noise.key mode %v", fi.Mode())
	}
	f := showKey(t, dir)
	if f["server_name"] != "a.test" || f["coap_addr"] != "udp 127.0.0.1:5999" {
		t.Fatalf("peer show: %q", f)
	}
	tok, err := noise.ParseKeyToken(f["key"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok.NoiseKey, kp.Public) || tok.Verify("a.test") != nil {
		t.Fatal("the printed token does not carry this node's key, signed for its name")
	}
	if !strings.Contains(f["signing_key"], "ed25519:") {
		t.Fatalf("signing_key %q", f["signing_key"])
	}
}

func TestPeerAdd(t *testing.T) {
	a, b, c := initNamed(t, "a.test"), initNamed(t, "b.test"), initNamed(t, "c.test")
	keyA, keyC := showKey(t, a)["key"], showKey(t, c)["key"]
	peerAdd := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"peer", "add", "--dir", b}, args...), nil, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := peerAdd("a.test", "192.0.2.1:5683", keyA, "--mutual"); code != 0 || !strings.Contains(out, "pinned a.test") {
		t.Fatalf("peer add: exit %d: %s", code, out)
	}
	cfg, err := homeserver.LoadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	want := homeserver.MeshPeer{Name: "a.test", Addr: "192.0.2.1:5683", Key: keyA, Mutual: true}
	if len(cfg.Mesh.Peers) != 1 || cfg.Mesh.Peers[0] != want {
		t.Fatalf("pins %+v", cfg.Mesh.Peers)
	}
	conf, _ := os.ReadFile(filepath.Join(b, homeserver.ConfigFile))
	if !strings.Contains(string(conf), "# Matrix server name") {
		t.Fatal("the rewritten config lost its comments")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"a.test", "192.0.2.1:5683", keyA}, "already pinned"},
		{[]string{"c.test", "192.0.2.3:5683", keyA}, "does not bind"},       // a's token under another name
		{[]string{"c.test", "192.0.2.3", keyC}, "addr"},                     // no port
		{[]string{"c.test", "192.0.2.3:5683", "mxk1:abc"}, "bytes"},         // truncated
		{[]string{"b.test", "192.0.2.3:5683", showKey(t, b)["key"]}, "own"}, // ourselves
		{[]string{"c.test", "192.0.2.3:5683"}, "usage"},
	} {
		if code, out := peerAdd(tc.args...); code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("peer add %q: exit %d: %s (want %q)", tc.args, code, out, tc.want)
		}
	}
	if code, out := peerAdd("c.test", "192.0.2.3:5683", keyC); code != 0 {
		t.Fatalf("peer add c: exit %d: %s", code, out)
	}
	if code, out := peerAdd("a.test", "192.0.2.9:5683", keyA, "--replace"); code != 0 || !strings.Contains(out, "re-pinned") {
		t.Fatalf("peer add --replace: exit %d: %s", code, out)
	}
	cfg, err = homeserver.LoadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mesh.Peers) != 2 || cfg.Mesh.Peers[0].Name != "c.test" || cfg.Mesh.Peers[1].Addr != "192.0.2.9:5683" || cfg.Mesh.Peers[1].Mutual {
		t.Fatalf("pins after replace %+v", cfg.Mesh.Peers)
	}
}
