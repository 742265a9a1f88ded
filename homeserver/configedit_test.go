package homeserver

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/noise"
)

// peerFor returns a pin of name with a key of its own (seed).
func peerFor(t testing.TB, name, addr string, seed uint64) MeshPeer {
	t.Helper()
	rng := clock.SeededRNG(seed)
	kp, err := noise.GenerateKeyPair(rng)
	if err != nil {
		t.Fatal(err)
	}
	s := make([]byte, ed25519.SeedSize)
	rng.Read(s)
	return MeshPeer{Name: name, Addr: addr, Key: noise.NewKeyToken(name, kp.Public, ed25519.NewKeyFromSeed(s)).String()}
}

// The file `mxmesh init` writes, edited in place, is byte for byte the
// file the template renders with the pins.
func TestEditMeshPeersTemplate(t *testing.T) {
	c := DefaultConfig("a.test")
	data, err := c.MarshalCommented()
	if err != nil {
		t.Fatal(err)
	}
	b, d := peerFor(t, "b.test", "192.0.2.2:5683", 2), peerFor(t, "d.test", "[2001:db8::4]:5683", 4)
	b.Mutual = true
	for _, p := range []MeshPeer{b, d} {
		out, replaced, err := editMeshPeers(data, p, false)
		if err != nil || replaced {
			t.Fatalf("pin %s: %v (replaced %v)", p.Name, err, replaced)
		}
		c.Mesh.Peers = append(c.Mesh.Peers, p)
		want, _ := c.MarshalCommented()
		if string(out) != string(want) {
			t.Fatalf("pin %s:\n%s\nwant\n%s", p.Name, out, want)
		}
		data = out
	}
	// Re-pin b where it stands.
	b2 := b
	b2.Addr, b2.Mutual = "192.0.2.22:5683", false
	out, replaced, err := editMeshPeers(data, b2, true)
	if err != nil || !replaced {
		t.Fatalf("re-pin: %v (replaced %v)", err, replaced)
	}
	c.Mesh.Peers[0] = b2
	if want, _ := c.MarshalCommented(); string(out) != string(want) {
		t.Fatalf("re-pin:\n%s\nwant\n%s", out, want)
	}
}

// A hand-edited file keeps every comment and blank line, its quoting and
// its indentation; only the pin's lines change.
func TestEditMeshPeersKeepsLayout(t *testing.T) {
	b, c, e := peerFor(t, "b.test", "192.0.2.2:5683", 2), peerFor(t, "c.test", "192.0.2.3:5683", 3), peerFor(t, "e.test", "192.0.2.5:5683", 5)
	r := strings.NewReplacer("KEYB", b.Key, "KEYC", c.Key, "KEYE", e.Key)
	for _, tc := range []struct {
		name    string
		in      string
		p       MeshPeer
		replace bool
		want    string
	}{{
		name: "empty flow sequence with a comment",
		in: `# my node
server_name: "a.test"   # do not change

mesh:
    # who may talk
    accept_clients: false
    peers: []    # none yet

    link:   {bit_rate: 1200}
log_level: debug
`,
		p: b,
		want: `# my node
server_name: "a.test"   # do not change

mesh:
    # who may talk
    accept_clients: false
    peers: # none yet
      - name: b.test
        addr: 192.0.2.2:5683
        key: KEYB
        mutual: false

    link:   {bit_rate: 1200}
log_level: debug
`,
	}, {
		name: "append to items at the key's column, comments between",
		in: `server_name: a.test
mesh:
  peers:
  # first
  - name: b.test
    addr: '192.0.2.2:5683'   # the hill
    key: KEYB

  # the end of the list
# a foot comment
  link:
    mtu: 200
`,
		p: c,
		want: `server_name: a.test
mesh:
  peers:
  # first
  - name: b.test
    addr: '192.0.2.2:5683'   # the hill
    key: KEYB
  - name: c.test
    addr: 192.0.2.3:5683
    key: KEYC
    mutual: false

  # the end of the list
# a foot comment
  link:
    mtu: 200
`,
	}, {
		name: "replace the middle item, dash on its own line",
		in: `server_name: a.test
mesh:
  peers:
    - name: b.test
      addr: 192.0.2.2:5683
      key: KEYB
    # c moved
    -
      name: c.test
      addr: 192.0.2.99:5683
      key: KEYC
      mutual: true
    # keep me
    - {name: e.test, addr: "192.0.2.5:5683", key: KEYE}
`,
		p:       c,
		replace: true,
		want: `server_name: a.test
mesh:
  peers:
    - name: b.test
      addr: 192.0.2.2:5683
      key: KEYB
    # c moved
    - name: c.test
      addr: 192.0.2.3:5683
      key: KEYC
      mutual: false
    # keep me
    - {name: e.test, addr: "192.0.2.5:5683", key: KEYE}
`,
	}, {
		name: "no peers key",
		in:   "server_name: a.test\r\nmesh:\r\n   # tofu\r\n   trust_on_first_use: true\r\n",
		p:    b,
		want: "server_name: a.test\r\nmesh:\r\n   peers:\r\n     - name: b.test\r\n       addr: 192.0.2.2:5683\r\n       key: KEYB\r\n       mutual: false\r\n   # tofu\r\n   trust_on_first_use: true\r\n",
	}, {
		name: "no mesh section, no final line break",
		in:   "server_name: a.test # me",
		p:    b,
		want: "server_name: a.test # me\n\nmesh:\n  peers:\n    - name: b.test\n      addr: 192.0.2.2:5683\n      key: KEYB\n      mutual: false\n",
	}, {
		name: "empty mesh",
		in:   "mesh: {}  # later\nserver_name: a.test\n",
		p:    b,
		want: "mesh: # later\n  peers:\n    - name: b.test\n      addr: 192.0.2.2:5683\n      key: KEYB\n      mutual: false\nserver_name: a.test\n",
	}, {
		name: "null peers",
		in:   "server_name: a.test\nmesh:\n  peers: ~\n",
		p:    b,
		want: "server_name: a.test\nmesh:\n  peers:\n    - name: b.test\n      addr: 192.0.2.2:5683\n      key: KEYB\n      mutual: false\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			in, want := r.Replace(tc.in), r.Replace(tc.want)
			out, _, err := editMeshPeers([]byte(in), tc.p, tc.replace)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != want {
				t.Fatalf("got\n%s\nwant\n%s", out, want)
			}
		})
	}
}

func TestEditMeshPeersRefuses(t *testing.T) {
	b, c := peerFor(t, "b.test", "192.0.2.2:5683", 2), peerFor(t, "c.test", "192.0.2.3:5683", 3)
	base := "server_name: a.test\nmesh:\n  peers:\n    - name: b.test\n      addr: 192.0.2.2:5683\n      key: " + b.Key + "\n"
	stolen := c
	stolen.Key = b.Key                                  // b's token under another name
	bAgain := peerFor(t, "f.test", "192.0.2.6:5683", 2) // b's keys, bound to another name
	noPort := c
	noPort.Addr = "192.0.2.3"
	for _, tc := range []struct {
		name, in string
		p        MeshPeer
		want     string
	}{
		{"already pinned", base, b, "already pinned"},
		{"token of another name", base, stolen, "does not bind"},
		{"same key twice", base, bAgain, "same noise key"},
		{"no port", base, noPort, "addr"},
		{"invalid file", base + "bogus_key: 1\n", c, "bogus_key"},
		{"not YAML", "server_name: [a.test\n", c, "YAML"},
		{"flow sequence", "server_name: a.test\nmesh: {peers: []}\n", c, "by hand"},
		{"two documents", "server_name: a.test\n---\nserver_name: b.test\n", c, "by hand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := editMeshPeers([]byte(tc.in), tc.p, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, _, err := editMeshPeers([]byte(base), b, false); !errors.Is(err, ErrAlreadyPinned) {
		t.Fatalf("err %v, want ErrAlreadyPinned", err)
	}
}

// PinMeshPeer replaces the file atomically, keeping its mode, and leaves
// it alone when the pin is refused.
func TestPinMeshPeerFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ConfigFile)
	in := "# hand written\nserver_name: a.test\n"
	if err := os.WriteFile(path, []byte(in), 0o640); err != nil {
		t.Fatal(err)
	}
	b := peerFor(t, "b.test", "192.0.2.2:5683", 2)
	if replaced, err := PinMeshPeer(dir, b, false); err != nil || replaced {
		t.Fatalf("pin: %v (replaced %v)", err, replaced)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode after pin: %v %v", fi.Mode(), err)
	}
	cfg, err := LoadConfig(dir)
	if err != nil || len(cfg.Mesh.Peers) != 1 || cfg.Mesh.Peers[0] != b {
		t.Fatalf("pins %+v (%v)", cfg.Mesh.Peers, err)
	}
	before, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(before), in) {
		t.Fatalf("the file lost its first lines:\n%s", before)
	}
	if _, err := PinMeshPeer(dir, b, false); !errors.Is(err, ErrAlreadyPinned) {
		t.Fatalf("pin again: %v", err)
	}
	bad := b
	bad.Key = "mxk1:abc"
	if _, err := PinMeshPeer(dir, bad, true); err == nil {
		t.Fatal("a truncated key token was pinned")
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Fatalf("a refused pin changed the file:\n%s", after)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files left behind: %v", ents)
	}
}

// FuzzEditMeshPeers: whatever the file, the editor does not panic, and an
// edit it makes adds the pin and keeps every line of the file, in order.
func FuzzEditMeshPeers(f *testing.F) {
	c := DefaultConfig("a.test")
	tmpl, _ := c.MarshalCommented()
	f.Add(string(tmpl))
	f.Add("server_name: a.test\nmesh:\n  peers:\n  - name: x.test\n    addr: 192.0.2.9:1\n    key: k\n")
	f.Add("server_name: a.test\nmesh:\n    peers: [] # none\n    link: {mtu: 300}\n")
	f.Add("mesh: ~\nserver_name: a.test")
	p := peerFor(f, "b.test", "192.0.2.2:5683", 2)
	f.Fuzz(func(t *testing.T, in string) { checkEdit(t, in, p) })
}

// checkEdit is the fuzz property for one input.
func checkEdit(t *testing.T, in string, p MeshPeer) {
	out, replaced, err := editMeshPeers([]byte(in), p, false)
	if err != nil {
		return
	}
	cfg, err := ParseConfig(out)
	if err != nil || replaced || len(cfg.Mesh.Peers) == 0 || cfg.Mesh.Peers[len(cfg.Mesh.Peers)-1] != p {
		t.Fatalf("edit of %q gave %q: %v", in, out, err)
	}
	// One line may lose an explicit empty value ("peers: []").
	rest, changed := string(out), false
	for line := range strings.Lines(in) {
		line = strings.TrimRight(line, "\r\n")
		i := strings.Index(rest, line)
		if i < 0 && !changed {
			changed = true
			line, _, _ = strings.Cut(line, ":")
			i = strings.Index(rest, line+":")
		}
		if i < 0 {
			t.Fatalf("edit of %q lost the line %q:\n%s", in, line, out)
		}
		rest = rest[i+len(line):]
	}
}
