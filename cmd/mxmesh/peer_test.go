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
	// The pin is replaced where it stands.
	if len(cfg.Mesh.Peers) != 2 || cfg.Mesh.Peers[1].Name != "c.test" || cfg.Mesh.Peers[0].Addr != "192.0.2.9:5683" || cfg.Mesh.Peers[0].Mutual {
		t.Fatalf("pins after replace %+v", cfg.Mesh.Peers)
	}
}

// peer add edits an operator's config in place: comments, blank lines,
// quoting and indentation stay, only the pin's lines are added or
// replaced, and a refused pin leaves the file as it was.
func TestPeerAddKeepsHandEditedConfig(t *testing.T) {
	a, b, c := initNamed(t, "a.test"), initNamed(t, "b.test"), initNamed(t, "c.test")
	keyA, keyC := showKey(t, a)["key"], showKey(t, c)["key"]
	conf := filepath.Join(b, homeserver.ConfigFile)
	hand := `# b.test -- edited by hand, keep my notes!
server_name: 'b.test'
coap_addr: "127.0.0.1:5999"    # the radio

mesh:
    # pins go here
    peers:      # none yet

    # slow radio
    link: {bit_rate: 9600, latency: 300ms}

log_level: debug   # while testing
`
	if err := os.WriteFile(conf, []byte(hand), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(conf, 0o640); err != nil {
		t.Fatal(err)
	}
	peerAdd := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"peer", "add", "--dir", b}, args...), nil, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := peerAdd("a.test", "192.0.2.1:5683", keyA); code != 0 {
		t.Fatalf("peer add: exit %d: %s", code, out)
	}
	entry := func(name, addr, key string, mutual bool) string {
		m := "false"
		if mutual {
			m = "true"
		}
		return "      - name: " + name + "\n        addr: " + addr + "\n        key: " + key + "\n        mutual: " + m + "\n"
	}
	withPins := func(pins ...string) string {
		return strings.Replace(hand, "    peers:      # none yet\n", "    peers:      # none yet\n"+strings.Join(pins, ""), 1)
	}
	check := func(want string) {
		t.Helper()
		got, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("config now\n%s\nwant\n%s", got, want)
		}
		if fi, _ := os.Stat(conf); fi.Mode().Perm() != 0o640 {
			t.Fatalf("config mode %v, want 0640 kept", fi.Mode())
		}
	}
	check(withPins(entry("a.test", "192.0.2.1:5683", keyA, false)))
	if code, out := peerAdd("c.test", "192.0.2.3:5683", keyC, "--mutual"); code != 0 {
		t.Fatalf("peer add c: exit %d: %s", code, out)
	}
	check(withPins(entry("a.test", "192.0.2.1:5683", keyA, false), entry("c.test", "192.0.2.3:5683", keyC, true)))
	if code, out := peerAdd("a.test", "[2001:db8::1]:5683", keyA, "--replace", "--mutual"); code != 0 || !strings.Contains(out, "re-pinned") {
		t.Fatalf("peer add --replace: exit %d: %s", code, out)
	}
	want := withPins(entry("a.test", "'[2001:db8::1]:5683'", keyA, true), entry("c.test", "192.0.2.3:5683", keyC, true))
	check(want)
	// Refused: each leaves the file byte for byte.
	for _, args := range [][]string{
		{"a.test", "192.0.2.1:5683", keyA},              // already pinned
		{"d.test", "192.0.2.4:5683", keyC},              // c's token under another name
		{"d.test", "192.0.2.4:5683", "mxk1:abc"},        // truncated
		{"d.test", "192.0.2.4", keyC},                   // no port
		{"c.test", "192.0.2.4:5683", keyA, "--replace"}, // a's token for c
	} {
		if code, out := peerAdd(args...); code == 0 {
			t.Fatalf("peer add %q: exit 0: %s", args, out)
		}
		check(want)
	}
	if cfg, err := homeserver.LoadConfig(b); err != nil || cfg.Mesh.Link.BitRate != 9600 || cfg.LogLevel != "debug" || len(cfg.Mesh.Peers) != 2 {
		t.Fatalf("config after edits: %+v, %v", cfg, err)
	}
}
