package stateres

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

var randomUsers = []string{alice, bob, carol, dave, evelyn, "@frank:example.org"}

// randomRoom builds a room whose members all joined, then 2–4 forks, each
// branching from the base or from an earlier fork and doing a few random
// state changes (topics, power levels, join rules, joins, leaves, kicks,
// bans), authorised or not.
func randomRoom(t *testing.T, v *event.RoomVersion, rng *rand.Rand) (*room, []*fork) {
	levels := map[string]int64{}
	for _, u := range randomUsers[1:] {
		levels[u] = []int64{0, 0, 50, 75}[rng.IntN(4)]
	}
	r, base := newRoom(t, v, levels)
	for _, u := range randomUsers[1:] {
		r.send(base, "JOIN_"+u, u, "m.room.member", u, member("join"))
	}
	forks := []*fork{base}
	n := 2 + rng.IntN(3)
	var out []*fork
	for i := 0; i < n; i++ {
		f := forks[rng.IntN(len(forks))].clone()
		steps := 1 + rng.IntN(5)
		for s := 0; s < steps; s++ {
			sender := randomUsers[rng.IntN(len(randomUsers))]
			target := randomUsers[rng.IntN(len(randomUsers))]
			name := fmt.Sprintf("F%dS%d", i, s)
			switch rng.IntN(6) {
			case 0:
				r.send(f, name+"_TOPIC", sender, "m.room.topic", "", topic(name))
			case 1:
				l := map[string]int64{}
				for _, u := range randomUsers[1:] {
					l[u] = []int64{0, 10, 50, 75}[rng.IntN(4)]
				}
				r.send(f, name+"_PL", sender, "m.room.power_levels", "", r.powerLevels(l))
			case 2:
				jr := []string{"public", "invite"}[rng.IntN(2)]
				r.send(f, name+"_JR", sender, "m.room.join_rules", "", map[string]any{"join_rule": jr})
			case 3:
				r.send(f, name+"_JOIN", target, "m.room.member", target, member("join"))
			case 4:
				r.send(f, name+"_LEAVE", sender, "m.room.member", target, member("leave"))
			case 5:
				r.send(f, name+"_BAN", sender, "m.room.member", target, member("ban"))
			}
		}
		forks = append(forks, f)
		out = append(out, f)
	}
	return r, out
}

// The result must not depend on the order of the state sets, and adding a
// duplicate of a set must not change it.
func TestResolveIgnoresInputOrder(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		for seed := uint64(1); seed <= 25; seed++ {
			rng := rand.New(clock.SeededRNG(seed))
			r, forks := randomRoom(t, v, rng)
			sets := make([]map[auth.StateKey]string, len(forks))
			for i, f := range forks {
				sets[i] = f.state
			}
			want, err := Resolve(v, sets, r.fetch)
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			for trial := 0; trial < 6; trial++ {
				shuffled := append([]map[auth.StateKey]string(nil), sets...)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				if trial%2 == 1 {
					shuffled = append(shuffled, shuffled[rng.IntN(len(shuffled))])
				}
				got, err := Resolve(v, shuffled, r.fetch)
				if err != nil {
					t.Fatalf("seed %d trial %d: %v", seed, trial, err)
				}
				if !maps.Equal(got, want) {
					t.Fatalf("seed %d trial %d: result depends on input order:\n got %v\nwant %v", seed, trial, got, want)
				}
			}
		}
	})
}

// Resolving one state set, or the same set twice, gives it back.
func TestResolveSingleSet(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, forks := randomRoom(t, v, rand.New(clock.SeededRNG(99)))
		s := forks[0].state
		for _, sets := range [][]map[auth.StateKey]string{{s}, {s, s}} {
			got, err := Resolve(v, sets, r.fetch)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, s) {
				t.Errorf("Resolve(%d copies) = %v, want %v", len(sets), got, s)
			}
		}
		got, err := Resolve(v, nil, r.fetch)
		if err != nil || len(got) != 0 {
			t.Errorf("Resolve(no sets) = %v, %v; want empty state", got, err)
		}
	})
}

// The conflicted state keys always resolve to one of the input events or to
// nothing, and unconflicted keys keep their event.
func TestResolveResultComesFromInputs(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		for seed := uint64(100); seed < 115; seed++ {
			r, forks := randomRoom(t, v, rand.New(clock.SeededRNG(seed)))
			got := r.resolve(forks...)
			for k, id := range got {
				ev := r.events[id]
				if ev == nil || keyOf(ev) != k {
					t.Fatalf("seed %d: key %v resolved to %s, which is not an event for that key", seed, k, id)
				}
			}
			for k, id := range forks[0].state {
				same := true
				for _, f := range forks[1:] {
					same = same && f.state[k] == id
				}
				if same && got[k] != id {
					t.Fatalf("seed %d: unconflicted %v = %s, resolved to %s", seed, k, r.name(id), r.name(got[k]))
				}
			}
		}
	})
}
