package stateres

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// conflictedRoom is a small room with two forks that disagree on the topic
// and the power levels. It also returns an event that is only in the auth
// chains, not in the state sets.
func conflictedRoom(t *testing.T, v *event.RoomVersion) (r *room, a, b *fork, chainOnly string) {
	r, f := newRoom(t, v, map[string]int64{bob: 50})
	chainOnly = r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join")).ID()
	r.send(f, "RENAME_BOB", bob, "m.room.member", bob, map[string]any{"membership": "join", "displayname": "B"})
	a, b = f.clone(), f.clone()
	r.send(a, "T_A", bob, "m.room.topic", "", topic("a"))
	r.send(b, "PL_B", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 0}))
	return r, a, b, chainOnly
}

func TestResolveErrors(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, a, b, chainOnly := conflictedRoom(t, v)
		other, of := newRoomAt(t, v, nil, "!other:"+testServer, 1e9)
		otherTopic := other.send(of, "OTHER_TOPIC", alice, "m.room.topic", "", topic("elsewhere"))
		msg, err := event.Build(event.Proto{RoomID: r.id, Sender: alice, Type: "m.room.message",
			Content: map[string]any{"body": "hi"}, PrevEvents: a.last, AuthEvents: []string{a.state[plKey]},
			Depth: 9, OriginServerTS: 1}, v, testServer, "ed25519:1", testKey)
		if err != nil {
			t.Fatal(err)
		}
		wrongVersion := event.V11
		if v == event.V11 {
			wrongVersion = event.V10
		}
		wr, wf := newRoom(t, wrongVersion, nil)

		pl0 := a.state[plKey]
		hide := func(hidden string) func(string) (*event.Event, error) {
			return func(id string) (*event.Event, error) {
				if id == hidden {
					return nil, errors.New("not in store")
				}
				return r.fetch(id)
			}
		}
		set := func(f *fork, k auth.StateKey, id string) map[auth.StateKey]string {
			s := maps.Clone(f.state)
			s[k] = id
			return s
		}
		all := func(m map[string]*event.Event) func(string) (*event.Event, error) {
			return func(id string) (*event.Event, error) {
				if ev, ok := m[id]; ok {
					return ev, nil
				}
				return r.fetch(id)
			}
		}
		tests := []struct {
			name  string
			v     *event.RoomVersion
			sets  []map[auth.StateKey]string
			fetch func(string) (*event.Event, error)
			want  error
		}{
			{"no version", nil, []map[auth.StateKey]string{a.state}, r.fetch, ErrBadInput},
			{"no fetch", v, []map[auth.StateKey]string{a.state}, nil, ErrBadInput},
			{"missing state event", v, []map[auth.StateKey]string{set(a, topicKey, "$nope"), b.state}, r.fetch, ErrMissingEvent},
			{"missing auth chain event", v, []map[auth.StateKey]string{a.state, b.state}, hide(chainOnly), ErrMissingEvent},
			{"fetch returns nil", v, []map[auth.StateKey]string{a.state, b.state},
				func(id string) (*event.Event, error) {
					if id == pl0 {
						return nil, nil
					}
					return r.fetch(id)
				}, ErrMissingEvent},
			{"fetch returns another event", v, []map[auth.StateKey]string{a.state, b.state},
				func(id string) (*event.Event, error) {
					if id == pl0 {
						return r.fetch(a.state[topicKey])
					}
					return r.fetch(id)
				}, ErrBadInput},
			{"event under the wrong key", v, []map[auth.StateKey]string{set(a, topicKey, pl0), b.state}, r.fetch, ErrBadInput},
			{"event of another room", v, []map[auth.StateKey]string{set(a, topicKey, otherTopic.ID()), b.state},
				all(other.events), ErrBadInput},
			{"non-state event", v, []map[auth.StateKey]string{set(a, auth.StateKey{Type: "m.room.message"}, msg.ID()), b.state},
				all(map[string]*event.Event{msg.ID(): msg}), ErrBadInput},
			{"event of another room version", v, []map[auth.StateKey]string{set(a, jrKey, wf.state[jrKey]), b.state},
				all(wr.events), ErrBadInput},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := Resolve(tc.v, tc.sets, tc.fetch)
				if !errors.Is(err, tc.want) {
					t.Fatalf("Resolve = %v, %v; want error %v", got, err, tc.want)
				}
				if got != nil {
					t.Errorf("Resolve returned a state with its error")
				}
			})
		}
	})
}

// kahn picks the smallest ready event at each step and refuses cycles.
func TestKahn(t *testing.T) {
	key := func(id string, first, ts int64) orderKey { return orderKey{first: first, ts: ts, id: id} }
	keys := map[string]orderKey{
		"$a": key("$a", 0, 5), "$b": key("$b", -100, 9), "$c": key("$c", 0, 5),
		"$d": key("$d", -50, 1), "$e": key("$e", -100, 1),
	}
	// a and d are roots; b needs a; c needs a and d; e needs c.
	parents := map[string][]string{"$b": {"$a"}, "$c": {"$a", "$d", "$outside"}, "$e": {"$c"}}
	got, err := kahn([]string{"$e", "$d", "$c", "$b", "$a"}, parents, keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"$d", "$a", "$b", "$c", "$e"}; !slices.Equal(got, want) {
		t.Errorf("kahn = %v, want %v", got, want)
	}

	parents["$a"] = []string{"$e"}
	if _, err := kahn([]string{"$a", "$b", "$c", "$d", "$e"}, parents, keys); !errors.Is(err, ErrAuthCycle) {
		t.Errorf("kahn with a cycle = %v, want ErrAuthCycle", err)
	}
}

// Event IDs are hashes, so an honest fetch cannot produce a cycle; a cache
// poisoned to serve one event under another's ID can, and every graph walk
// must report it rather than loop.
func TestAuthCycleDetected(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		pl0 := r.events[f.state[plKey]]
		pl1 := r.send(f, "PL1", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 10}))
		pl2 := r.send(f, "PL2", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 20}))
		tp := r.send(f, "T", alice, "m.room.topic", "", topic("t"))
		// Serve PL2 as PL0: PL1 → "PL0" (really PL2) → PL1.
		poisoned := func() *resolver {
			rr := &resolver{v: v, fetch: r.fetch, events: maps.Clone(r.events)}
			rr.events[pl0.ID()] = pl2
			rr.roomID = r.id
			return rr
		}
		if _, err := poisoned().powerSort([]string{pl1.ID(), pl0.ID()}, map[string]bool{pl1.ID(): true, pl0.ID(): true}); !errors.Is(err, ErrAuthCycle) {
			t.Errorf("powerSort = %v, want ErrAuthCycle", err)
		}
		if _, err := poisoned().conflictedSubgraph([]string{pl1.ID(), tp.ID()}); !errors.Is(err, ErrAuthCycle) {
			t.Errorf("conflictedSubgraph = %v, want ErrAuthCycle", err)
		}
		if _, err := poisoned().mainlineSort([]string{tp.ID()}, pl1.ID()); !errors.Is(err, ErrAuthCycle) {
			t.Errorf("mainlineSort = %v, want ErrAuthCycle", err)
		}
		if _, err := poisoned().mainlineSort([]string{tp.ID()}, ""); !errors.Is(err, ErrAuthCycle) {
			t.Errorf("mainline position = %v, want ErrAuthCycle", err)
		}
	})
}
