package homeserver

import (
	"crypto/ed25519"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/noise"
)

func testPeerToken(t *testing.T, name string) string {
	t.Helper()
	rng := clock.SeededRNG(5)
	kp, err := noise.GenerateKeyPair(rng)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rng.Read(seed)
	return noise.NewKeyToken(name, kp.Public, ed25519.NewKeyFromSeed(seed)).String()
}

func TestConfigMeshPeers(t *testing.T) {
	c := DefaultConfig("a.example")
	c.Mesh.PlainCoAPAddr = "127.0.0.1:5684"
	c.Mesh.Peers = []MeshPeer{{Name: "b.example", Addr: "192.0.2.7:5683", Key: testPeerToken(t, "b.example"), Mutual: true}}
	data, err := c.MarshalCommented()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("parse written config: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got.Mesh, c.Mesh) {
		t.Fatalf("mesh round trip:\n got %+v\nwant %+v", got.Mesh, c.Mesh)
	}
	for _, tc := range []struct {
		mod  func(c *Config)
		want string
	}{
		{func(c *Config) { c.Mesh.PlainCoAPAddr = "0.0.0.0:5683" }, "loopback"},
		{func(c *Config) { c.Mesh.Peers[0].Name = "c.example" }, "does not bind"},
		{func(c *Config) { c.Mesh.Peers[0].Key = "mxk1:AAAA" }, "bytes"},
		{func(c *Config) { c.Mesh.Peers[0].Addr = "192.0.2.7" }, "addr"},
		{func(c *Config) { c.Mesh.Peers = append(c.Mesh.Peers, c.Mesh.Peers[0]) }, "pinned twice"},
	} {
		bad := *c
		bad.Mesh.Peers = append([]MeshPeer(nil), c.Mesh.Peers...)
		tc.mod(&bad)
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
}

// TestConfigMeshLink: mesh.link survives the commented config and gives
// the CoAP link parameters; a bad duration or MTU is a config error.
func TestConfigMeshLink(t *testing.T) {
	c := DefaultConfig("a.example")
	if p, err := c.Mesh.Link.Params(); err != nil || p != (coap.LinkParams{}) {
		t.Fatalf("default link %+v, %v: want a fast link", p, err)
	}
	c.Mesh.Link = MeshLink{BitRate: 1200, FrameTime: "250ms", Latency: "40ms", MTU: 255}
	data, err := c.MarshalCommented()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("parse written config: %v\n%s", err, data)
	}
	p, err := got.Mesh.Link.Params()
	if want := (coap.LinkParams{BitRate: 1200, FrameTime: 250 * time.Millisecond, Latency: 40 * time.Millisecond, MTU: 255}); err != nil || p != want {
		t.Fatalf("link %+v, %v; want %+v", p, err, want)
	}
	for _, bad := range []MeshLink{{FrameTime: "soon"}, {Latency: "-1s"}, {MTU: 20}, {BitRate: -5}} {
		c.Mesh.Link = bad
		data, _ := c.MarshalCommented()
		if _, err := ParseConfig(data); err == nil || !strings.Contains(err.Error(), "mesh.link") {
			t.Errorf("%+v: %v, want a mesh.link error", bad, err)
		}
	}
}
