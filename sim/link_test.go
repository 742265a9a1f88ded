package sim

import (
	"crypto/sha256"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
)

type arrival struct {
	at time.Duration
	to int
	n  int
}

// linkSim is a Sim with servers a, b, c and the given links, no nodes:
// datagrams reaching their destination are recorded.
func linkSim(t *testing.T, specs ...LinkSpec) (*Sim, *[]arrival) {
	t.Helper()
	s := &Sim{clk: clock.NewFake(clock.Epoch), start: clock.Epoch, rng: rand.New(clock.SeededRNG(1)), trace: sha256.New(),
		byAddr: map[netip.AddrPort]int{}, byName: map[string]int{}}
	for i, name := range []string{"a", "b", "c"} {
		s.eps = append(s.eps, &endpoint{s: s, idx: i, name: name, server: true})
		s.byName[name] = i
	}
	for i, ls := range specs {
		l := &link{s: s, idx: i, spec: ls, ends: [2]int{s.byName[ls.Between[0]], s.byName[ls.Between[1]]}}
		l.dirs = [2]*linkDir{{l: l, d: 0}, {l: l, d: 1}}
		s.links = append(s.links, l)
	}
	s.route()
	var got []arrival
	s.onArrive = func(idx int, p packet) { got = append(got, arrival{s.elapsed(), idx, len(p.data)}) }
	return s, &got
}

// send offers n bytes from endpoint src to dst at scenario time at.
func (s *Sim) sendAt(at time.Duration, src, dst, n int) {
	s.clk.AfterFunc(at-s.elapsed(), func() {
		s.eps[src].next[dst].enqueue(packet{src: src, dst: dst, data: make([]byte, n)})
	})
}

func (s *Sim) runAll() {
	for s.clk.RunNext() {
	}
}

func TestLinkSerialisationAndQueueing(t *testing.T) {
	// 1200 bit/s: 150 bytes take 1 s on the air, then 100 ms of latency.
	s, got := linkSim(t, LinkSpec{Between: []string{"a", "b"}, Bitrate: 1200, Latency: Duration(100 * time.Millisecond), Queue: 2})
	for range 4 { // one on the air, two queued, one dropped
		s.sendAt(0, 0, 1, 150)
	}
	s.runAll()
	want := []arrival{{1100 * time.Millisecond, 1, 150}, {2100 * time.Millisecond, 1, 150}, {3100 * time.Millisecond, 1, 150}}
	if !slices.Equal(*got, want) {
		t.Fatalf("arrivals %v, want %v", *got, want)
	}
	st := s.links[0].dirs[0].stats
	if st.Offered != 4 || st.QueueDrops != 1 || st.Sent != 3 || st.SentBytes != 450 || st.Delivered != 3 || st.Airtime != 3*time.Second || st.MaxQueue != 2 {
		t.Fatalf("stats %+v", st)
	}
	if back := s.links[0].dirs[1].stats; back != (LinkStats{}) {
		t.Fatalf("reverse direction counted %+v", back)
	}
}

func TestLinkHalfDuplex(t *testing.T) {
	for _, half := range []bool{false, true} {
		s, got := linkSim(t, LinkSpec{Between: []string{"a", "b"}, Bitrate: 800, HalfDuplex: half})
		s.sendAt(0, 0, 1, 100) // 1 s each
		s.sendAt(0, 1, 0, 100)
		s.runAll()
		last := (*got)[len(*got)-1].at
		if want := map[bool]time.Duration{false: time.Second, true: 2 * time.Second}[half]; last != want {
			t.Errorf("half duplex %v: last arrival at %v, want %v", half, last, want)
		}
	}
}

func TestLinkDutyCycleAndAirtimeLimit(t *testing.T) {
	// Radio on for the first 10 s of every minute: a datagram offered at
	// 15 s waits for 60 s.
	s, got := linkSim(t, LinkSpec{Between: []string{"a", "b"}, Bitrate: 800,
		DutyCycle: &DutyCycle{Period: Duration(time.Minute), On: Duration(10 * time.Second)}})
	s.sendAt(15*time.Second, 0, 1, 100)
	s.runAll()
	if want := []arrival{{61 * time.Second, 1, 100}}; !slices.Equal(*got, want) {
		t.Fatalf("duty cycle: %v, want %v", *got, want)
	}
	// 10 % airtime: after 1 s on the air, 9 s of silence.
	s, got = linkSim(t, LinkSpec{Between: []string{"a", "b"}, Bitrate: 800, MaxAirtime: 0.1})
	s.sendAt(0, 0, 1, 100)
	s.sendAt(0, 0, 1, 100)
	s.runAll()
	if want := []arrival{{time.Second, 1, 100}, {11 * time.Second, 1, 100}}; !slices.Equal(*got, want) {
		t.Fatalf("airtime limit: %v, want %v", *got, want)
	}
}

func TestLinkPartitionMTUAndLoss(t *testing.T) {
	s, got := linkSim(t, LinkSpec{Between: []string{"a", "b"}, Bitrate: 8000, MTU: 200,
		Down: []Window{{From: Duration(10 * time.Second), To: Duration(20 * time.Second)}}})
	s.sendAt(0, 0, 1, 100)
	s.sendAt(0, 0, 1, 300) // over the MTU
	s.sendAt(15*time.Second, 0, 1, 100)
	s.sendAt(25*time.Second, 0, 1, 100)
	s.runAll()
	if len(*got) != 2 {
		t.Fatalf("arrivals %v", *got)
	}
	st := s.links[0].dirs[0].stats
	if st.Oversize != 1 || st.LostDown != 1 || st.Delivered != 2 || st.Sent != 3 {
		t.Fatalf("stats %+v", st)
	}

	s, got = linkSim(t, LinkSpec{Between: []string{"a", "b"}, Loss: 0.3, Duplicate: 0.1})
	for i := range 1000 {
		s.sendAt(time.Duration(i)*time.Millisecond, 0, 1, 10)
	}
	s.runAll()
	st = s.links[0].dirs[0].stats
	if st.Lost < 230 || st.Lost > 370 || st.Delivered != 1000-st.Lost+st.Duplicated || len(*got) != st.Delivered {
		t.Fatalf("30 %% loss, 10 %% duplication over 1000 datagrams: %+v, %d arrivals", st, len(*got))
	}
}

func TestRoutingThroughServers(t *testing.T) {
	// a — b — c: a reaches c through b, each hop taking its own airtime.
	s, got := linkSim(t, LinkSpec{Between: []string{"a", "b"}, Bitrate: 800}, LinkSpec{Between: []string{"b", "c"}, Bitrate: 1600})
	s.sendAt(0, 0, 2, 100)
	s.runAll()
	if want := []arrival{{1500 * time.Millisecond, 2, 100}}; !slices.Equal(*got, want) {
		t.Fatalf("arrivals %v, want %v", *got, want)
	}
	// A client does not forward: with b a client, c is unreachable from a.
	s, _ = linkSim(t, LinkSpec{Between: []string{"a", "b"}}, LinkSpec{Between: []string{"b", "c"}})
	s.eps[1].server = false
	s.route()
	if s.eps[0].next[2] != nil || s.eps[0].next[1] == nil {
		t.Fatal("routed through a client")
	}
}
