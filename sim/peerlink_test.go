package sim

import (
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/coap"
)

// TestPathParams: the CoAP timers towards a peer two hops away come from
// the whole path: latencies and frame times add up, per-bit times add up
// (800 and 1600 bit/s in series serialise like 533 bit/s, as the routed
// datagram in TestRoutingThroughServers shows), the smallest MTU holds;
// a neighbour gets its own link, an unknown peer none.
func TestPathParams(t *testing.T) {
	s, _ := linkSim(t,
		LinkSpec{Between: []string{"a", "b"}, Bitrate: 800, Latency: Duration(10 * time.Millisecond), FrameTime: Duration(time.Second), MTU: 255},
		LinkSpec{Between: []string{"b", "c"}, Bitrate: 1600, Latency: Duration(30 * time.Millisecond), FrameTime: Duration(2 * time.Second)})
	got, ok := s.pathParams(0, 2)
	want := coap.LinkParams{BitRate: 533, Latency: 40 * time.Millisecond, FrameTime: 3 * time.Second, MTU: 255}
	if !ok || got != want {
		t.Fatalf("a→c %+v, %v; want %+v", got, ok, want)
	}
	if got, ok := s.peerLink(2)("b"); !ok || got != (coap.LinkParams{BitRate: 1600, Latency: 30 * time.Millisecond, FrameTime: 2 * time.Second}) {
		t.Fatalf("c→b %+v, %v", got, ok)
	}
	if _, ok := s.peerLink(0)("nobody"); ok {
		t.Fatal("a link to an unknown peer")
	}
}
