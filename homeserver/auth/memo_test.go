package auth

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// reparse returns a fresh copy of e, with no memo values stored on it.
func reparse(t testing.TB, e *event.Event) *event.Event {
	t.Helper()
	c, err := event.Parse(e.JSON(), e.Version())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// memoCases are events covering each decoded content the memos keep, built
// in a modRoom (alice creator, carol 50, dave 0, bob joined; public).
func memoCases(r *room) []*event.Event {
	return []*event.Event{
		r.build(dave, "m.room.message", nil, msg("hi")),
		r.build(eve, TypeMember, sp(eve), member(Join)),
		r.build(eve, TypeMember, sp(eve), map[string]any{"membership": Join, "join_authorised_via_users_server": carol}),
		r.build(eve, TypeMember, sp(eve), map[string]any{"membership": Join, "join_authorised_via_users_server": 7}),
		r.build(carol, TypeMember, sp(eve), member(Invite)),
		r.build(dave, TypeMember, sp(eve), member(Invite)),
		r.build(carol, TypeMember, sp(eve), map[string]any{"membership": Invite,
			"third_party_invite": map[string]any{"signed": map[string]any{"token": "tok", "mxid": eve}}}),
		r.build(carol, TypeMember, sp(dave), member(Leave)),
		r.build(carol, TypeMember, sp(dave), member(Ban)),
		r.build(dave, TypeMember, sp(bob), member(Ban)),
		r.build(eve, TypeMember, sp(eve), member(Knock)),
		r.build(eve, TypeMember, sp(eve), map[string]any{"membership": 3}),
		r.build(carol, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(carol, 50, dave, 10), "invite": 50})),
		r.build(carol, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(carol, 50, dave, 60)})),
		r.build(carol, TypePowerLevels, sp(""), r.levels(map[string]any{"users": map[string]any{"not-a-user": 1}})),
		r.build(carol, TypePowerLevels, sp(""), map[string]any{"ban": "50"}),
		r.build(dave, "m.room.topic", sp(""), map[string]any{"topic": "t"}),
	}
}

// Decoding content once per event must not change any outcome: checking an
// event whose memos are stored (warm) gives what checking a fresh copy
// against fresh state (cold) gives, and AppendAuthStateKeys agrees with
// AuthStateKeys on the raw content.
func TestMemoisedMatchesFresh(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.ID, func(t *testing.T) {
			r := modRoom(t, v)
			for i, e := range memoCases(r) {
				cold := NewState()
				for k, se := range r.state {
					cold[k] = reparse(t, se)
				}
				want := fmt.Sprint(Check(reparse(t, e), cold))
				for pass := range 2 {
					if got := fmt.Sprint(Check(e, r.state)); got != want {
						t.Errorf("case %d (%s) pass %d: Check = %s, fresh copy gives %s", i, e, pass, got, want)
					}
				}
				sk, _ := e.StateKey()
				wantKeys := AuthStateKeys(v, e.Type(), sk, e.Sender(), e.Content())
				prefix := []StateKey{powerLevelsKey}
				for pass := range 2 {
					if got := AppendAuthStateKeys(nil, e); !slices.Equal(got, wantKeys) {
						t.Errorf("case %d (%s) pass %d: AppendAuthStateKeys = %v, AuthStateKeys = %v", i, e, pass, got, wantKeys)
					}
					got := AppendAuthStateKeys(slices.Clone(prefix), e)
					if !slices.Equal(got, append(slices.Clone(prefix), wantKeys...)) {
						t.Errorf("case %d (%s): appending to %v gives %v", i, e, prefix, got)
					}
				}
			}
		})
	}
}

// Once an event's content and the state's content are decoded, checking a
// message or a join allocates nothing; a power-levels change allocates only
// its sorted key list.
func TestCheckAllocs(t *testing.T) {
	for _, v := range versions {
		r := modRoom(t, v)
		for _, c := range []struct {
			name string
			ev   *event.Event
			max  float64
		}{
			{"Message", r.build(dave, "m.room.message", nil, msg("hello")), 0},
			{"Join", r.build(eve, TypeMember, sp(eve), member(Join)), 0},
			{"Kick", r.build(carol, TypeMember, sp(dave), member(Leave)), 0},
			{"PowerLevels", r.build(carol, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(carol, 50, dave, 10), "invite": 50})), 1},
		} {
			if err := Check(c.ev, r.state); err != nil {
				t.Fatalf("v%s %s rejected: %v", v.ID, c.name, err)
			}
			if n := testing.AllocsPerRun(50, func() { _ = Check(c.ev, r.state) }); n != c.max {
				t.Errorf("v%s %s: Check allocates %v times, want %v", v.ID, c.name, n, c.max)
			}
		}
		ev := r.build(carol, TypeMember, sp(eve), member(Invite))
		buf := make([]StateKey, 0, maxAuthStateKeys)
		AppendAuthStateKeys(buf, ev)
		if n := testing.AllocsPerRun(50, func() { buf = AppendAuthStateKeys(buf[:0], ev) }); n != 0 {
			t.Errorf("v%s: AppendAuthStateKeys into a buffer allocates %v times, want 0", v.ID, n)
		}
	}
}

// Events are shared between goroutines (Event is safe for concurrent
// readers); the first decoding of their content may then happen in several
// at once. Every goroutine must get the sequential answers. Run with -race.
func TestCheckConcurrentFirstUse(t *testing.T) {
	r := modRoom(t, event.V12)
	cases := memoCases(r)
	want := make([]string, len(cases))
	for i, e := range cases {
		want[i] = fmt.Sprint(Check(reparse(t, e), r.state))
	}
	fresh := make([]*event.Event, len(cases))
	for i, e := range cases {
		fresh[i] = reparse(t, e)
	}
	state := NewState()
	for k, se := range r.state {
		state[k] = reparse(t, se)
	}
	const goroutines = 4
	got := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for _, e := range fresh {
				got[g] = append(got[g], fmt.Sprint(Check(e, state)))
			}
		})
	}
	wg.Wait()
	for g := range goroutines {
		if !slices.Equal(got[g], want) {
			t.Fatalf("goroutine %d: %q, want %q", g, got[g], want)
		}
	}
}
