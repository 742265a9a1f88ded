package auth

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

func TestAuthStateKeys(t *testing.T) {
	raw := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	create, pl, jr := createKey, powerLevelsKey, joinRulesKey
	m := func(u string) StateKey { return StateKey{TypeMember, u} }
	tests := []struct {
		name                  string
		typ, stateKey, sender string
		content               any
		want10, want12        []StateKey
	}{
		{"Create", TypeCreate, "", alice, map[string]any{}, nil, nil},
		{"Message", "m.room.message", "", bob, msg("hi"), []StateKey{create, pl, m(bob)}, []StateKey{pl, m(bob)}},
		{"Topic", "m.room.topic", "", bob, map[string]any{}, []StateKey{create, pl, m(bob)}, []StateKey{pl, m(bob)}},
		{"OwnJoin", TypeMember, bob, bob, member(Join), []StateKey{create, pl, m(bob), jr}, []StateKey{pl, m(bob), jr}},
		{"Invite", TypeMember, eve, carol, member(Invite), []StateKey{create, pl, m(carol), m(eve), jr}, []StateKey{pl, m(carol), m(eve), jr}},
		{"Kick", TypeMember, eve, carol, member(Leave), []StateKey{create, pl, m(carol), m(eve)}, []StateKey{pl, m(carol), m(eve)}},
		// "Auth events selection": join_rules for join, invite or knock.
		{"Knock", TypeMember, eve, eve, member(Knock), []StateKey{create, pl, m(eve), jr}, []StateKey{pl, m(eve), jr}},
		{"ThirdPartyInvite", TypeMember, eve, alice,
			map[string]any{"membership": Invite, "third_party_invite": map[string]any{"signed": map[string]any{"token": "tok"}}},
			[]StateKey{create, pl, m(alice), m(eve), jr, {TypeThirdPartyInvite, "tok"}},
			[]StateKey{pl, m(alice), m(eve), jr, {TypeThirdPartyInvite, "tok"}}},
		{"RestrictedJoin", TypeMember, eve, eve,
			map[string]any{"membership": Join, "join_authorised_via_users_server": carol},
			[]StateKey{create, pl, m(eve), jr, m(carol)}, []StateKey{pl, m(eve), jr, m(carol)}},
		// "Auth events selection": the authorising user's membership is
		// selected only when membership is join.
		{"AuthoriserOnLeave", TypeMember, eve, eve,
			map[string]any{"membership": Leave, "join_authorised_via_users_server": carol},
			[]StateKey{create, pl, m(eve)}, []StateKey{pl, m(eve)}},
		{"AuthoriserOnInvite", TypeMember, eve, carol,
			map[string]any{"membership": Invite, "join_authorised_via_users_server": dave},
			[]StateKey{create, pl, m(carol), m(eve), jr}, []StateKey{pl, m(carol), m(eve), jr}},
		{"BadContent", TypeMember, eve, eve, "not an object", []StateKey{create, pl, m(eve)}, []StateKey{pl, m(eve)}},
	}
	for _, tc := range tests {
		for _, v := range versions {
			t.Run(tc.name+"/v"+v.ID, func(t *testing.T) {
				want := tc.want10
				if v.RoomIDFromCreate {
					want = tc.want12
				}
				got := AuthStateKeys(v, tc.typ, tc.stateKey, tc.sender, raw(tc.content))
				if !slices.Equal(got, want) {
					t.Fatalf("got %v, want %v", got, want)
				}
			})
		}
	}
}

func TestSelectAuthEvents(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.ID, func(t *testing.T) {
			r := modRoom(t, v)
			content := json.RawMessage(`{"membership":"invite"}`)
			got, err := SelectAuthEvents(v, TypeMember, eve, carol, content, r.state)
			if err != nil {
				t.Fatal(err)
			}
			want := []*event.Event{r.state[powerLevelsKey], r.state[StateKey{TypeMember, carol}], r.state[joinRulesKey]}
			if !v.RoomIDFromCreate {
				want = append([]*event.Event{r.create}, want...)
			}
			if !slices.Equal(ids(got...), ids(want...)) {
				t.Fatalf("got %v, want %v", ids(got...), ids(want...))
			}
			if _, err := SelectAuthEvents(v, TypeMember, eve, carol, json.RawMessage(`[1]`), r.state); err == nil {
				t.Fatal("content that is not an object: no error")
			}
			delete(r.state, createKey)
			_, err = SelectAuthEvents(v, "m.room.message", "", bob, json.RawMessage(`{}`), r.state)
			if v.RoomIDFromCreate && err != nil {
				t.Fatalf("v12 needs no create event to select: %v", err)
			}
			if !v.RoomIDFromCreate && err == nil {
				t.Fatal("no create event in state: no error")
			}
		})
	}
	if _, err := SelectAuthEvents(nil, "m.room.message", "", bob, nil, State{}); err == nil {
		t.Fatal("nil room version: no error")
	}
}

func TestPowerLevel(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.ID, func(t *testing.T) {
			r := newRoom(t, v, map[string]any{"additional_creators": []any{bob}})
			if v != event.V12 {
				// additional_creators means nothing before v12.
				r = newRoom(t, v, nil)
			}
			r.send(alice, TypeMember, sp(alice), member(Join))
			creatorWant := int64(100)
			if v.CreatorsHaveInfinitePower {
				creatorWant = math.MaxInt64
			}
			if got := PowerLevel(r.state, alice); got != creatorWant {
				t.Errorf("creator without power levels: got %d, want %d", got, creatorWant)
			}
			if got := PowerLevel(r.state, dave); got != 0 {
				t.Errorf("other user without power levels: got %d, want 0", got)
			}
			r.send(alice, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(carol, 42), "users_default": 7}))
			if got := PowerLevel(r.state, carol); got != 42 {
				t.Errorf("listed user: got %d, want 42", got)
			}
			if got := PowerLevel(r.state, dave); got != 7 {
				t.Errorf("users_default: got %d, want 7", got)
			}
			if got := PowerLevel(r.state, alice); got != creatorWant {
				t.Errorf("creator with power levels: got %d, want %d", got, creatorWant)
			}
			bobWant := int64(7)
			if v.CreatorsHaveInfinitePower {
				bobWant = math.MaxInt64
			}
			if got := PowerLevel(r.state, bob); got != bobWant {
				t.Errorf("additional creator: got %d, want %d", got, bobWant)
			}
		})
	}
	if got := PowerLevel(nil, alice); got != 0 {
		t.Errorf("nil state: got %d", got)
	}
}

func TestPowerLevelV10ContentCreator(t *testing.T) {
	r := newRoom(t, event.V10, map[string]any{"creator": carol})
	if got := PowerLevel(r.state, carol); got != 100 {
		t.Errorf("content.creator: got %d, want 100", got)
	}
	if got := PowerLevel(r.state, alice); got != 0 {
		t.Errorf("create sender in v10: got %d, want 0", got)
	}
}

func TestIsPowerEvent(t *testing.T) {
	r := modRoom(t, event.V11)
	tests := []struct {
		name string
		ev   *event.Event
		want bool
	}{
		{"PowerLevels", r.state[powerLevelsKey], true},
		{"JoinRules", r.state[joinRulesKey], true},
		{"Kick", r.build(carol, TypeMember, sp(dave), member(Leave)), true},
		{"Ban", r.build(carol, TypeMember, sp(dave), member(Ban)), true},
		{"OwnLeave", r.build(dave, TypeMember, sp(dave), member(Leave)), false},
		{"Join", r.state[StateKey{TypeMember, bob}], false},
		{"Invite", r.build(carol, TypeMember, sp(eve), member(Invite)), false},
		{"Topic", r.build(carol, "m.room.topic", sp(""), map[string]any{"topic": "x"}), false},
		{"Message", r.build(carol, "m.room.message", nil, msg("x")), false},
		{"JoinRulesWithStateKey", r.build(alice, TypeJoinRules, sp("x"), map[string]any{"join_rule": "public"}), false},
		{"NonStatePowerLevels", r.build(alice, TypePowerLevels, nil, map[string]any{}), false},
		{"Nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPowerEvent(tc.ev); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckRedaction(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.ID, func(t *testing.T) {
			r := modRoom(t, v)
			bobMsg := r.send(bob, "m.room.message", nil, msg("hi"))
			redact := func(sender string, target *event.Event) *event.Event {
				return r.buildProto(event.Proto{Sender: sender, Type: TypeRedaction, Content: map[string]any{"reason": "x"}, Redacts: target.ID()}, domainOf(sender))
			}
			// Same server as the original's sender, level 0.
			if err := CheckRedaction(redact("@bob2:b.test", bobMsg), bobMsg, r.state); err != nil {
				t.Errorf("same-server redaction: %v", err)
			}
			// Other server, at the redact level.
			if err := CheckRedaction(redact(carol, bobMsg), bobMsg, r.state); err != nil {
				t.Errorf("moderator redaction: %v", err)
			}
			// Other server, below the redact level.
			err := CheckRedaction(redact(dave, bobMsg), bobMsg, r.state)
			if !errors.Is(err, ErrForbidden) || ruleOf(t, err) != "redaction" {
				t.Errorf("redaction by level 0 on another server: got %v", err)
			}
			// A redaction of a different event.
			other := r.send(dave, "m.room.message", nil, msg("x"))
			if err := CheckRedaction(redact(carol, other), bobMsg, r.state); err == nil {
				t.Error("redaction of another event applied")
			}
			// Not a redaction.
			if err := CheckRedaction(other, bobMsg, r.state); err == nil {
				t.Error("non-redaction applied")
			}
			if err := CheckRedaction(nil, bobMsg, r.state); err == nil {
				t.Error("nil redaction applied")
			}
			// The redaction level itself comes from power levels.
			r.setLevels(map[string]any{"users": users(carol, 50), "redact": 0})
			if err := CheckRedaction(redact(dave, bobMsg), bobMsg, r.state); err != nil {
				t.Errorf("redact level 0: %v", err)
			}
		})
	}
}

func TestRuleError(t *testing.T) {
	err := error(&RuleError{Rule: "4.3.2", Reason: "sender does not match state_key"})
	if !errors.Is(err, ErrForbidden) {
		t.Fatal("RuleError does not unwrap to ErrForbidden")
	}
	for _, s := range []string{"4.3.2", "sender does not match state_key"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not mention %q", err.Error(), s)
		}
	}
	if err := Check(nil, State{}); !errors.Is(err, ErrForbidden) {
		t.Errorf("nil event: %v", err)
	}
}

func TestNewState(t *testing.T) {
	r := modRoom(t, event.V11)
	m := r.build(dave, "m.room.message", nil, msg("x"))
	pl1 := r.state[powerLevelsKey]
	r.setLevels(map[string]any{"kick": 10})
	pl2 := r.state[powerLevelsKey]
	s := NewState(r.create, pl1, m, nil, pl2)
	if len(s) != 2 || s[createKey] != r.create || s[powerLevelsKey] != pl2 {
		t.Fatalf("got %v", s)
	}
}

func TestValidUserID(t *testing.T) {
	good := []string{"@a:b", "@alice:example.org", "@alice:example.org:8448", "@a:1.2.3.4", "@a:[::1]", "@a:[::1]:80",
		"@Historic(ID)!:x.org", "@" + strings.Repeat("a", 240) + ":b.org"}
	bad := []string{"", "@", "@:b", "alice:b", "@alice", "@alice:", "@al ice:b", "@a:b:", "@a:b:123456", "@a:b:x1",
		"@a:[::1", "@a:[zz]", "@a:ex_ample.org", "@" + strings.Repeat("a", 250) + ":b.org", "@a\x7f:b"}
	for _, s := range good {
		if !validUserID(s) {
			t.Errorf("validUserID(%q) = false", s)
		}
	}
	for _, s := range bad {
		if validUserID(s) {
			t.Errorf("validUserID(%q) = true", s)
		}
	}
}

func TestCheckCreateOfOtherVersion(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.ID, func(t *testing.T) {
			r := basicRoom(t, v)
			e := r.build(bob, "m.room.message", nil, msg("hi"))
			other := event.V11
			if v == event.V11 {
				other = event.V10
			}
			r.state[createKey] = createEvent(t, other, nil)
			want := "2.4"
			if v.RoomIDFromCreate {
				want = "2"
			}
			if got := ruleOf(t, Check(e, r.state)); got != want {
				t.Fatalf("got rule %q, want %q", got, want)
			}
		})
	}
}
