package stateres

import (
	"fmt"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// Benchmark room shape: members in the room before the fork, and how many
// of them each fork touches.
const (
	benchMembers = 2000
	benchRenames = 150 // display name changes per fork
	benchKicks   = 50  // kicks by Bob on fork A, leaves on fork B
)

// bigRoom builds a room with benchMembers joined members and two forks that
// conflict on about 400 keys: display names on both, kicks against leaves,
// the topic, and the power levels.
func bigRoom(tb testing.TB, v *event.RoomVersion) (*room, *fork, *fork) {
	r, f := newRoom(tb, v, map[string]int64{bob: 50})
	r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
	users := make([]string, benchMembers)
	for i := range users {
		users[i] = fmt.Sprintf("@user%d:%s", i, testServer)
		r.send(f, "", users[i], "m.room.member", users[i], member("join"))
	}
	a, b := f.clone(), f.clone()
	for i := 0; i < benchRenames; i++ {
		u, w := users[i], users[benchRenames+i]
		r.send(a, "", u, "m.room.member", u, map[string]any{"membership": "join", "displayname": "a"})
		r.send(b, "", w, "m.room.member", w, map[string]any{"membership": "join", "displayname": "b"})
	}
	for i := 0; i < benchKicks; i++ {
		k, l := users[2*benchRenames+i], users[2*benchRenames+benchKicks+i]
		r.send(a, "", bob, "m.room.member", k, member("leave"))
		r.send(b, "", l, "m.room.member", l, member("leave"))
		// Both forks also touch one shared member each.
		s := users[2*benchRenames+2*benchKicks+i]
		r.send(a, "", bob, "m.room.member", s, member("ban"))
		r.send(b, "", s, "m.room.member", s, map[string]any{"membership": "join", "displayname": "s"})
	}
	r.send(a, "", bob, "m.room.topic", "", topic("from a"))
	r.send(b, "", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 50, carol: 50}))
	r.send(b, "", alice, "m.room.topic", "", topic("from b"))
	return r, a, b
}

func BenchmarkResolve(b *testing.B) {
	for _, v := range []*event.RoomVersion{event.V11, event.V12} {
		b.Run("v"+v.ID, func(b *testing.B) {
			r, fa, fb := bigRoom(b, v)
			sets := []map[auth.StateKey]string{fa.state, fb.state}
			_, conflicted := split(sets)
			for b.Loop() {
				if _, err := Resolve(v, sets, r.fetch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(fa.state)), "state-events")
			b.ReportMetric(float64(len(conflicted)), "conflicted")
		})
		// The loop above resolves the same *event.Event values again and
		// again, so after the first round the content the auth rules decode
		// is already stored on them (event.Memo), as it is for events a
		// server keeps in memory. Here every round gets freshly parsed
		// events (parsing is not timed): the cost of a first resolution.
		b.Run("v"+v.ID+"-cold", func(b *testing.B) {
			r, fa, fb := bigRoom(b, v)
			sets := []map[auth.StateKey]string{fa.state, fb.state}
			for b.Loop() {
				b.StopTimer()
				fresh := make(map[string]*event.Event, len(r.events))
				for id, ev := range r.events {
					c, err := event.Parse(ev.JSON(), v)
					if err != nil {
						b.Fatal(err)
					}
					fresh[id] = c
				}
				fetch := func(id string) (*event.Event, error) {
					if ev, ok := fresh[id]; ok {
						return ev, nil
					}
					return nil, fmt.Errorf("no event %s in the test room", id)
				}
				b.StartTimer()
				if _, err := Resolve(v, sets, fetch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The benchmark's room must resolve to what its construction implies, or the
// figure measures nothing: Bob's kicks and bans stand, the leaves and display
// names of both forks stand, Alice's power levels and her topic (later, same mainline
// position as Bob's) win.
func TestBigRoomResolution(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 2,000-member room")
	}
	v := event.V12
	r, fa, fb := bigRoom(t, v)
	got := r.resolve(fa, fb)
	if len(got) < benchMembers {
		t.Fatalf("resolved state has %d entries, want at least %d", len(got), benchMembers)
	}
	for i := 0; i < benchRenames; i++ {
		u := memberKey(fmt.Sprintf("@user%d:%s", i, testServer))
		w := memberKey(fmt.Sprintf("@user%d:%s", benchRenames+i, testServer))
		r.expect(t, got, map[auth.StateKey]string{u: fa.state[u], w: fb.state[w]})
	}
	for i := 0; i < benchKicks; i++ {
		k := memberKey(fmt.Sprintf("@user%d:%s", 2*benchRenames+i, testServer))
		l := memberKey(fmt.Sprintf("@user%d:%s", 2*benchRenames+benchKicks+i, testServer))
		s := memberKey(fmt.Sprintf("@user%d:%s", 2*benchRenames+2*benchKicks+i, testServer))
		r.expect(t, got, map[auth.StateKey]string{k: fa.state[k], l: fb.state[l], s: fa.state[s]})
	}
	r.expect(t, got, map[auth.StateKey]string{plKey: fb.state[plKey], topicKey: fb.state[topicKey]})
}
