package stateres

import (
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// forEachVersion runs a scenario in every supported room version.
func forEachVersion(t *testing.T, f func(t *testing.T, v *event.RoomVersion)) {
	for _, v := range event.SupportedVersions() {
		t.Run("v"+v.ID, func(t *testing.T) { f(t, v) })
	}
}

// Bob (50) bans Evelyn, who never joined, while Alice concurrently demotes
// Bob to 0. Bob's ban carries the earlier timestamp, but the reverse
// topological power ordering puts Alice's (more powerful) power levels
// first, and the ban then fails.
func TestBanVersusPowerLevels(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		a, b := f.clone(), f.clone()
		ban := r.send(b, "BAN_EVELYN", bob, "m.room.member", evelyn, member("ban"))
		pl := r.send(a, "PL_DEMOTE_BOB", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 0}))
		if ban.OriginServerTS() >= pl.OriginServerTS() {
			t.Fatal("scenario needs the ban to be older")
		}
		got := r.resolve(a, b)
		r.expect(t, got, map[auth.StateKey]string{plKey: pl.ID(), memberKey(evelyn): ""})
	})
}

// The same race where Alice does not demote Bob: the ban stands.
func TestBanWithoutDemotionStands(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		a, b := f.clone(), f.clone()
		ban := r.send(b, "BAN_EVELYN", bob, "m.room.member", evelyn, member("ban"))
		tp := r.send(a, "TOPIC_ALICE", alice, "m.room.topic", "", topic("hi"))
		got := r.resolve(a, b)
		r.expect(t, got, map[auth.StateKey]string{memberKey(evelyn): ban.ID(), topicKey: tp.ID()})
	})
}

// Bob bans Evelyn while she joins the public room. The ban is a power
// event, resolved before her join, which then fails — whichever is older.
func TestBanVersusJoinRace(t *testing.T) {
	for _, banFirst := range []bool{true, false} {
		name := "join_older"
		if banFirst {
			name = "ban_older"
		}
		t.Run(name, func(t *testing.T) {
			forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
				r, f := newRoom(t, v, map[string]int64{bob: 50})
				r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
				a, b := f.clone(), f.clone()
				var ban *event.Event
				if banFirst {
					ban = r.send(a, "BAN_EVELYN", bob, "m.room.member", evelyn, member("ban"))
					r.send(b, "JOIN_EVELYN", evelyn, "m.room.member", evelyn, member("join"))
				} else {
					r.send(b, "JOIN_EVELYN", evelyn, "m.room.member", evelyn, member("join"))
					ban = r.send(a, "BAN_EVELYN", bob, "m.room.member", evelyn, member("ban"))
				}
				got := r.resolve(a, b)
				r.expect(t, got, map[auth.StateKey]string{memberKey(evelyn): ban.ID()})
			})
		})
	}
}

// Evelyn, already in the invite-only room, changes her display name while
// Bob kicks her: the kick wins, since her profile change (a join) is not
// authorised once she has left.
func TestKickVersusProfileChange(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		r.send(f, "JOIN_EVELYN", evelyn, "m.room.member", evelyn, member("join"))
		r.send(f, "JR_INVITE", alice, "m.room.join_rules", "", map[string]any{"join_rule": "invite"})
		a, b := f.clone(), f.clone()
		kick := r.send(a, "KICK_EVELYN", bob, "m.room.member", evelyn, member("leave"))
		r.send(b, "RENAME_EVELYN", evelyn, "m.room.member", evelyn,
			map[string]any{"membership": "join", "displayname": "Eve"})
		got := r.resolve(a, b)
		r.expect(t, got, map[auth.StateKey]string{memberKey(evelyn): kick.ID()})
	})
}

// Alice sets a topic; then, concurrently, Bob (50) changes it and Alice
// demotes Bob. Bob's topic is no longer authorised, so the topic goes back
// to Alice's.
func TestTopicReset(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		t1 := r.send(f, "T1_ALICE", alice, "m.room.topic", "", topic("one"))
		a, b := f.clone(), f.clone()
		r.send(a, "T2_BOB", bob, "m.room.topic", "", topic("two"))
		pl := r.send(b, "PL_DEMOTE_BOB", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 0}))
		got := r.resolve(a, b)
		r.expect(t, got, map[auth.StateKey]string{topicKey: t1.ID(), plKey: pl.ID()})
	})
}

// Two authorised topic changes on two forks, based on the same power
// levels: the later one wins; equal timestamps fall back to event ID order.
func TestTopicBasic(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		a, b := f.clone(), f.clone()
		r.send(a, "T2_BOB", bob, "m.room.topic", "", topic("two"))
		t3 := r.send(b, "T3_ALICE", alice, "m.room.topic", "", topic("three"))
		r.expect(t, r.resolve(a, b), map[auth.StateKey]string{topicKey: t3.ID()})
		r.expect(t, r.resolve(b, a), map[auth.StateKey]string{topicKey: t3.ID()})

		// Same timestamp: the greater event ID is applied last and wins.
		c, d := f.clone(), f.clone()
		x := r.sendAt(c, 999999, "TX", bob, "m.room.topic", "", topic("x"))
		y := r.sendAt(d, 999999, "TY", alice, "m.room.topic", "", topic("y"))
		want := x.ID()
		if y.ID() > x.ID() {
			want = y.ID()
		}
		r.expect(t, r.resolve(c, d), map[auth.StateKey]string{topicKey: want})
	})
}

// Mainline ordering beats timestamps: Bob's topic cites newer power levels
// than Alice's concurrent topic, so it is applied after hers even though
// hers is later by the clock.
func TestMainlineOrdering(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		a, b := f.clone(), f.clone()
		pl := r.send(a, "PL2", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 50, carol: 10}))
		t2 := r.send(a, "T2_BOB", bob, "m.room.topic", "", topic("two"))
		t3 := r.send(b, "T3_ALICE", alice, "m.room.topic", "", topic("three"))
		if t3.OriginServerTS() <= t2.OriginServerTS() {
			t.Fatal("scenario needs Alice's topic to be later")
		}
		got := r.resolve(a, b)
		r.expect(t, got, map[auth.StateKey]string{topicKey: t2.ID(), plKey: pl.ID()})
	})
}

// Alice makes the room invite-only while Evelyn joins it: the join rules are
// a power event, resolved first, and Evelyn's join is then refused.
func TestJoinRuleEvasion(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, nil)
		a, b := f.clone(), f.clone()
		jr := r.send(a, "JR_INVITE", alice, "m.room.join_rules", "", map[string]any{"join_rule": "invite"})
		r.send(b, "JOIN_EVELYN", evelyn, "m.room.member", evelyn, member("join"))
		got := r.resolve(a, b)
		r.expect(t, got, map[auth.StateKey]string{jrKey: jr.ID(), memberKey(evelyn): ""})
	})
}

// Bob (50) raises Carol to 50 while Alice demotes Bob to 0: Alice's power
// levels go first and Bob's, re-checked against them, fail.
func TestOfftopicPowerLevels(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		r.send(f, "JOIN_CAROL", carol, "m.room.member", carol, member("join"))
		a, b := f.clone(), f.clone()
		r.send(b, "PL_BOB_RAISES_CAROL", bob, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 50, carol: 50}))
		pl := r.send(a, "PL_ALICE_DEMOTES_BOB", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 0}))
		// Carol then uses her new power on Bob's fork.
		r.send(b, "T_CAROL", carol, "m.room.topic", "", topic("carol was here"))
		got := r.resolve(a, b)
		r.expect(t, got, map[auth.StateKey]string{plKey: pl.ID(), topicKey: ""})
	})
}

// Three forks with a conflicted power level chain, resolved in every order
// of the inputs.
func TestThreeForks(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 50, carol: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		r.send(f, "JOIN_CAROL", carol, "m.room.member", carol, member("join"))
		r.send(f, "JOIN_DAVE", dave, "m.room.member", dave, member("join"))
		a, b, c := f.clone(), f.clone(), f.clone()
		pl := r.send(a, "PL_ALICE", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 50, carol: 0}))
		r.send(b, "KICK_BY_CAROL", carol, "m.room.member", dave, member("leave"))
		tp := r.send(c, "T_BOB", bob, "m.room.topic", "", topic("bob"))
		want := map[auth.StateKey]string{plKey: pl.ID(), memberKey(dave): f.state[memberKey(dave)], topicKey: tp.ID()}
		for _, order := range [][]*fork{{a, b, c}, {a, c, b}, {b, a, c}, {b, c, a}, {c, a, b}, {c, b, a}} {
			r.expect(t, r.resolve(order...), want)
		}
	})
}

// MSC4297 problem A: one state set carries a stale join rules event. Both
// sets agree that Alice has since left, so room version 11, starting the
// first iterative auth checks from the unconflicted state, refuses both join
// rules events and the key vanishes; version 12 starts from an empty map,
// checks them against their own auth events, and keeps the newer one.
func TestStateResV21EmptyStart(t *testing.T) {
	for _, tc := range []struct {
		v       *event.RoomVersion
		wantNew bool
	}{{event.V11, false}, {event.V12, true}} {
		t.Run("v"+tc.v.ID, func(t *testing.T) {
			r, f := newRoom(t, tc.v, map[string]int64{bob: 100})
			r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
			stale := f.state[jrKey]
			jr := r.send(f, "JR_INVITE", alice, "m.room.join_rules", "", map[string]any{"join_rule": "invite"})
			r.send(f, "LEAVE_ALICE", alice, "m.room.member", alice, member("leave"))
			b := f.clone()
			b.state[jrKey] = stale
			got := r.resolve(f, b)
			want := ""
			if tc.wantNew {
				want = jr.ID()
			}
			r.expect(t, got, map[auth.StateKey]string{jrKey: want})
		})
	}
}

// MSC4297 problem B: Alice promotes Bob (PL1), Bob promotes Carol (PL2);
// one state set still names PL0 although its members' auth chains cite PL2.
// The auth difference misses PL1; room version 11 re-checks PL2 against PL0
// and falls back to PL0, while version 12's conflicted state subgraph brings
// PL1 in and keeps PL2.
func TestStateResV21ConflictedSubgraph(t *testing.T) {
	for _, tc := range []struct {
		v       *event.RoomVersion
		wantPL2 bool
	}{{event.V11, false}, {event.V12, true}} {
		t.Run("v"+tc.v.ID, func(t *testing.T) {
			r, f := newRoom(t, tc.v, nil)
			pl0 := f.state[plKey]
			r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
			r.send(f, "PL1", alice, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 50}))
			pl2 := r.send(f, "PL2", bob, "m.room.power_levels", "", r.powerLevels(map[string]int64{bob: 50, carol: 50}))
			r.send(f, "JOIN_CAROL", carol, "m.room.member", carol, member("join"))
			b := f.clone()
			b.state[plKey] = pl0
			got := r.resolve(f, b)
			want := pl0
			if tc.wantPL2 {
				want = pl2.ID()
			}
			r.expect(t, got, map[auth.StateKey]string{plKey: want})
		})
	}
}

// Reverse topological power ordering (rooms/fragments/v2-state-res.md,
// rooms/v12.md "Algorithm" step 1), as Synapse computes it: X grows from the
// power events only through auth_events links into the full conflicted set,
// and X is ordered over the direct auth_events links between its members.
//
// Bob (60) kicks Carol (K1); she rejoins (J2) and sets the topic, which both
// state sets share; Alice (100) kicks her again (K2), citing J2. The sets
// disagree on Carol's membership: K2 in one, K1 in the other. J2 is in both
// auth chains (through the topic), so in room versions 10 and 11 it is not
// in the full conflicted set and K2 reaches K1 only through it. Linked
// directly, K2 (Alice, more powerful) sorts first and Bob's K1, checked after
// it, wins; counting the path through J2 would put K1 first and let K2 win.
// In room version 12 J2 lies on a path between two conflicted events, joins
// the conflicted state subgraph and links K1 → J2 → K2.
func TestReverseTopologicalPowerOrderingDirectAuthEdges(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v *event.RoomVersion) {
		r, f := newRoom(t, v, map[string]int64{bob: 60, carol: 50})
		r.send(f, "JOIN_BOB", bob, "m.room.member", bob, member("join"))
		r.send(f, "JOIN_CAROL", carol, "m.room.member", carol, member("join"))
		k1 := r.send(f, "KICK1_CAROL", bob, "m.room.member", carol, member("leave"))
		r.send(f, "JOIN2_CAROL", carol, "m.room.member", carol, member("join"))
		r.send(f, "TOPIC_CAROL", carol, "m.room.topic", "", topic("back"))
		k2 := r.send(f, "KICK2_CAROL", alice, "m.room.member", carol, member("leave"))
		b := f.clone()
		b.state[memberKey(carol)] = k1.ID()
		got := r.resolve(f, b)
		want := k1.ID()
		if v.StateResV21 {
			want = k2.ID()
		}
		r.expect(t, got, map[auth.StateKey]string{memberKey(carol): want})
	})
}
