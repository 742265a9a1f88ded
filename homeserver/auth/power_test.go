package auth

import (
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

func msg(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

var senderJoinedCases = []ruleCase{
	{name: "MemberSends", rule: "5", rule12: "6", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(dave, "m.room.message", nil, msg("hi"))
	}},
	{name: "StrangerSends", rule: "5", rule12: "6", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(eve, "m.room.message", nil, msg("hi"))
	}},
	{name: "InvitedSends", rule: "5", rule12: "6", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(carol, TypeMember, sp(eve), member(Invite))
		return r.check(eve, "m.room.message", nil, msg("hi"))
	}},
	{name: "LeftMemberSendsState", rule: "5", rule12: "6", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(carol, TypeMember, sp(carol), member(Leave))
		return r.check(carol, "m.room.topic", sp(""), map[string]any{"topic": "x"})
	}},
}

func TestRule_5_SenderMustBeJoined(t *testing.T) { runCases(t, senderJoinedCases) }

var tpiEventCases = []ruleCase{
	{name: "AtInviteLevel", rule: "6.1", rule12: "7.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeThirdPartyInvite, sp("tok"), map[string]any{"display_name": "e", "public_key": "AAAA"})
	}},
	{
		// The invite level decides, not events["m.room.third_party_invite"].
		name: "InviteLevelOverridesEventsLevel", rule: "6.1", rule12: "7.1",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := modRoom(t, v)
			r.setLevels(map[string]any{"users": map[string]any{carol: 50}, "invite": 50,
				"events": map[string]any{TypeThirdPartyInvite: 100}})
			return r.check(carol, TypeThirdPartyInvite, sp("tok"), map[string]any{"display_name": "e", "public_key": "AAAA"})
		},
	},
	{name: "BelowInviteLevel", rule: "6.1", rule12: "7.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(dave, TypeThirdPartyInvite, sp("tok"), map[string]any{"display_name": "e", "public_key": "AAAA"})
	}},
}

func TestRule_6_ThirdPartyInviteEvent(t *testing.T) { runCases(t, tpiEventCases) }

var requiredLevelCases = []ruleCase{
	{name: "StateAtStateDefault", rule: "7", rule12: "8", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, "m.room.topic", sp(""), map[string]any{"topic": "x"})
	}},
	{name: "StateBelowStateDefault", rule: "7", rule12: "8", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(dave, "m.room.topic", sp(""), map[string]any{"topic": "x"})
	}},
	{name: "EventsOverridesStateDefault", rule: "7", rule12: "8", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50}, "events": map[string]any{"m.room.topic": 0}})
		return r.check(dave, "m.room.topic", sp(""), map[string]any{"topic": "x"})
	}},
	{name: "MessageBelowEventsDefault", rule: "7", rule12: "8", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50}, "events_default": 10})
		return r.check(dave, "m.room.message", nil, msg("hi"))
	}},
	{
		// The redact level (50) is not an auth rule: dave (0) may send a
		// redaction; whether it applies is CheckRedaction's business.
		name: "RedactionIgnoresRedactLevel", rule: "7", rule12: "8",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := modRoom(t, v)
			target := r.send(bob, "m.room.message", nil, msg("hi"))
			e := r.buildProto(event.Proto{Sender: dave, Type: TypeRedaction, Content: map[string]any{}, Redacts: target.ID()}, "a.test")
			return Check(e, r.state)
		},
	},
	{name: "RedactionBelowEventsLevel", rule: "7", rule12: "8", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50}, "events": map[string]any{TypeRedaction: 75}})
		target := r.send(bob, "m.room.message", nil, msg("hi"))
		e := r.buildProto(event.Proto{Sender: carol, Type: TypeRedaction, Content: map[string]any{}, Redacts: target.ID()}, "c.test")
		return Check(e, r.state)
	}},
	{name: "NoPowerLevelsStateDefaultIs50", rule: "7", rule12: "8", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := newRoom(t, v, nil)
		r.send(alice, TypeMember, sp(alice), member(Join))
		r.send(alice, TypeJoinRules, sp(""), map[string]any{"join_rule": JoinRulePublic})
		r.send(bob, TypeMember, sp(bob), member(Join))
		return r.check(bob, "m.room.topic", sp(""), map[string]any{"topic": "x"})
	}},
	{name: "NoPowerLevelsCreatorSendsState", rule: "7", rule12: "8", run: func(t testing.TB, v *event.RoomVersion) error {
		r := newRoom(t, v, nil)
		r.send(alice, TypeMember, sp(alice), member(Join))
		return r.check(alice, "m.room.topic", sp(""), map[string]any{"topic": "x"})
	}},
}

func TestRule_7_RequiredPowerLevel(t *testing.T) { runCases(t, requiredLevelCases) }

var atStateKeyCases = []ruleCase{
	{name: "OwnUserIDStateKey", rule: "8", rule12: "9", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, "org.example.status", sp(carol), map[string]any{"s": "busy"})
	}},
	{name: "OtherUserIDStateKey", rule: "8", rule12: "9", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, "org.example.status", sp(dave), map[string]any{"s": "busy"})
	}},
	{name: "AtPrefixNotUserID", rule: "8", rule12: "9", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, "org.example.status", sp("@"), map[string]any{"s": "busy"})
	}},
	{name: "NoAtPrefix", rule: "8", rule12: "9", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, "org.example.status", sp("x@y"), map[string]any{"s": "busy"})
	}},
}

func TestRule_8_AtStateKey(t *testing.T) { runCases(t, atStateKeyCases) }

// carolLevels has carol (level 50) send power levels whose content is the
// room's current content (users {carol: 50} plus alice in v10/11) edited.
func carolLevels(r *room, content map[string]any) error {
	return r.check(carol, TypePowerLevels, sp(""), r.levels(content))
}

func users(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

var powerLevelsCases = []ruleCase{
	{name: "IntegerLevels", rule: "9.1", rule12: "10.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "ban": 50})
	}},
	{name: "StringLevel", rule: "9.1", rule12: "10.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "ban": "50"})
	}},
	{name: "NullLevel", rule: "9.1", rule12: "10.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "kick": nil, "state_default": true})
	}},
	{name: "IntegerEventsAndNotifications", rule: "9.2", rule12: "10.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50,
			"events": map[string]any{"m.room.name": 50}, "notifications": map[string]any{"room": 50}})
	}},
	{name: "StringEventsLevel", rule: "9.2", rule12: "10.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "events": map[string]any{"m.room.name": "50"}})
	}},
	{name: "NotificationsNotObject", rule: "9.2", rule12: "10.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "notifications": 50})
	}},
	// Rule 9.2 (v12: 10.2): null is "present and not an object"; Synapse
	// rejects it too (not a Mapping). Regression: null used to read as {}.
	{name: "Rule_9_2_NullEvents", rule: "9.2", rule12: "10.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "events": nil})
	}},
	{name: "Rule_9_2_NullNotifications", rule: "9.2", rule12: "10.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "notifications": nil})
	}},
	// Rule 9.3 (v12: 10.3): likewise for users.
	{name: "Rule_9_3_NullUsers", rule: "9.3", rule12: "10.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypePowerLevels, sp(""), map[string]any{"users": nil, "users_default": 0})
	}},
	{name: "UsersValid", rule: "9.3", rule12: "10.3", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50, dave, 10, "@historic(user):[::1]:8448", 0), "invite": 50})
	}},
	{name: "UsersKeyNotUserID", rule: "9.3", rule12: "10.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50, "dave", 10), "invite": 50})
	}},
	{name: "UsersValueNotInteger", rule: "9.3", rule12: "10.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50, dave, "10"), "invite": 50})
	}},
	{name: "UsersNotObject", rule: "9.3", rule12: "10.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypePowerLevels, sp(""), map[string]any{"users": []any{carol}})
	}},
	{name: "NoCreatorsInUsers", rule12: "10.4", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(alice, TypePowerLevels, sp(""), map[string]any{"users": users(bob, 100)})
	}},
	{name: "CreatorInUsers", rule12: "10.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(alice, TypePowerLevels, sp(""), map[string]any{"users": users(alice, 100)})
	}},
	{name: "AdditionalCreatorInUsers", rule12: "10.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := newRoom(t, v, map[string]any{"additional_creators": []any{bob}})
		r.send(alice, TypeMember, sp(alice), member(Join))
		return r.check(alice, TypePowerLevels, sp(""), map[string]any{"users": users(bob, 50)})
	}},
	{
		// No previous power levels: anything goes, even levels above the
		// sender's own.
		name: "FirstPowerLevels", rule: "9.4", rule12: "10.5",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, nil)
			r.send(alice, TypeMember, sp(alice), member(Join))
			return r.check(alice, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(bob, 1000), "ban": 1000}))
		},
	},
	{name: "SameContentWithPreviousPowerLevels", rule: "9.4", reject: true, err: "9.5.2", only: []*event.RoomVersion{event.V10, event.V11},
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, nil)
			r.send(alice, TypeMember, sp(alice), member(Join))
			r.setLevels(nil)
			return r.check(alice, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(bob, 1000), "ban": 1000}))
		}},
	{
		// v12: the same event from a creator passes, previous levels or not.
		name: "CreatorUnboundedWithPreviousPowerLevels", rule12: "10.5",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, nil)
			r.send(alice, TypeMember, sp(alice), member(Join))
			r.setLevels(nil)
			return r.check(alice, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(bob, 1000), "ban": 1000}))
		},
	},
	{name: "SameContentWithPreviousPowerLevels", rule12: "10.5", reject: true, err12: "10.10.1",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := modRoom(t, v)
			return carolLevels(r, map[string]any{"users": users(carol, 50, bob, 1000), "invite": 50})
		}},
	{name: "LowerNamedLevelWithinOwn", rule: "9.5.1", rule12: "10.6.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 0})
	}},
	{name: "ChangeNamedLevelAboveOwn", rule: "9.5.1", rule12: "10.6.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50), "invite": 50, "ban": 75})
		return carolLevels(r, map[string]any{"users": users(carol, 50), "invite": 50, "ban": 50})
	}},
	{name: "RemoveNamedLevelAboveOwn", rule: "9.5.1", rule12: "10.6.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50), "invite": 50, "ban": 75})
		return carolLevels(r, map[string]any{"users": users(carol, 50), "invite": 50})
	}},
	{name: "AddNamedLevelAtOwn", rule: "9.5.2", rule12: "10.6.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "kick": 50})
	}},
	{name: "AddNamedLevelAboveOwn", rule: "9.5.2", rule12: "10.6.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "kick": 60})
	}},
	{name: "RaiseNamedLevelAboveOwn", rule: "9.5.2", rule12: "10.6.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 51})
	}},
	{name: "ChangeEventLevelWithinOwn", rule: "9.6.1", rule12: "10.7.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50), "invite": 50, "events": map[string]any{"m.room.topic": 50}})
		return carolLevels(r, map[string]any{"users": users(carol, 50), "invite": 50, "events": map[string]any{"m.room.topic": 10}})
	}},
	{name: "ChangeEventLevelAboveOwn", rule: "9.6.1", rule12: "10.7.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50), "invite": 50, "events": map[string]any{"m.room.tombstone": 100}})
		return carolLevels(r, map[string]any{"users": users(carol, 50), "invite": 50, "events": map[string]any{"m.room.tombstone": 50}})
	}},
	{name: "RemoveNotificationLevelAboveOwn", rule: "9.6.1", rule12: "10.7.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50), "invite": 50, "notifications": map[string]any{"room": 100}})
		return carolLevels(r, map[string]any{"users": users(carol, 50), "invite": 50, "notifications": map[string]any{}})
	}},
	{name: "AddEventLevelAtOwn", rule: "9.7.1", rule12: "10.8.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "events": map[string]any{"m.room.name": 50}})
	}},
	{name: "AddEventLevelAboveOwn", rule: "9.7.1", rule12: "10.8.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "events": map[string]any{"m.room.name": 60}})
	}},
	{name: "AddNotificationLevelAboveOwn", rule: "9.7.1", rule12: "10.8.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50, "notifications": map[string]any{"room": 60}})
	}},
	{name: "ChangeLowerUser", rule: "9.8.1", rule12: "10.9.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50, dave, 10), "invite": 50})
		return carolLevels(r, map[string]any{"users": users(carol, 50, dave, 40), "invite": 50})
	}},
	{name: "DemoteSelf", rule: "9.8.1", rule12: "10.9.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 10), "invite": 50})
	}},
	{name: "ChangeEqualUser", rule: "9.8.1", rule12: "10.9.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50, bob, 50), "invite": 50})
		return carolLevels(r, map[string]any{"users": users(carol, 50, bob, 10), "invite": 50})
	}},
	{name: "RemoveEqualUser", rule: "9.8.1", rule12: "10.9.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": users(carol, 50, bob, 50), "invite": 50})
		return carolLevels(r, map[string]any{"users": users(carol, 50), "invite": 50})
	}},
	{name: "GrantUpToOwn", rule: "9.9.1", rule12: "10.10.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50, dave, 50), "invite": 50})
	}},
	{name: "GrantAboveOwn", rule: "9.9.1", rule12: "10.10.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50, dave, 60), "invite": 50})
	}},
	{name: "PromoteSelf", rule: "9.9.1", rule12: "10.10.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 60), "invite": 50})
	}},
	{name: "Unchanged", rule: "9.10", rule12: "10.11", run: func(t testing.TB, v *event.RoomVersion) error {
		return carolLevels(modRoom(t, v), map[string]any{"users": users(carol, 50), "invite": 50})
	}},
	{name: "OtherEventAllowed", rule: "10", rule12: "11", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(dave, "m.room.message", nil, msg("hi"))
	}},
}

func TestRule_9_PowerLevels(t *testing.T) { runCases(t, powerLevelsCases) }

var creatorCases = []ruleCase{
	{
		// v12: creators outrank everyone; even another creator cannot kick
		// or ban them.
		name: "CreatorCannotBeKicked", rule12: "5.5.5", reject: true,
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, map[string]any{"additional_creators": []any{bob}})
			r.send(alice, TypeMember, sp(alice), member(Join))
			r.send(alice, TypeJoinRules, sp(""), map[string]any{"join_rule": JoinRulePublic})
			r.send(bob, TypeMember, sp(bob), member(Join))
			return r.check(bob, TypeMember, sp(alice), member(Leave))
		},
	},
	{name: "AdditionalCreatorKicksOthers", rule12: "5.5.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := newRoom(t, v, map[string]any{"additional_creators": []any{bob}})
		r.send(alice, TypeMember, sp(alice), member(Join))
		r.send(alice, TypeJoinRules, sp(""), map[string]any{"join_rule": JoinRulePublic})
		r.send(bob, TypeMember, sp(bob), member(Join))
		r.send(alice, TypePowerLevels, sp(""), map[string]any{"users": users(carol, 1<<53-1)})
		r.send(carol, TypeMember, sp(carol), member(Join))
		return r.check(bob, TypeMember, sp(carol), member(Ban))
	}},
	{
		// Before v12 the creator is only as powerful as power levels say.
		name: "CreatorDemotedCanBeKicked", rule: "4.5.4",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := basicRoom(t, v)
			r.send(alice, TypePowerLevels, sp(""), map[string]any{"users": users(bob, 100)})
			return r.check(bob, TypeMember, sp(alice), member(Leave))
		},
	},
}

func TestCreatorsPower(t *testing.T) { runCases(t, creatorCases) }
