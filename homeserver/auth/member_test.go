package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// joinRulesRoom is modRoom with the given join rule.
func joinRulesRoom(t testing.TB, v *event.RoomVersion, rule string) *room {
	r := modRoom(t, v)
	r.send(alice, TypeJoinRules, sp(""), map[string]any{"join_rule": rule})
	return r
}

// restrictedJoin builds eve's join to r authorised by authoriser, signed
// by eve's server and, if cosigner is not empty, by cosigner too.
func restrictedJoin(r *room, authoriser, cosigner string) *event.Event {
	e := r.build(eve, TypeMember, sp(eve), map[string]any{"membership": Join, "join_authorised_via_users_server": authoriser})
	if cosigner != "" {
		e = r.cosign(e, cosigner)
	}
	return e
}

var memberShapeCases = []ruleCase{
	{name: "StateKeyAndMembership", rule: "4.1", rule12: "5.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(dave, TypeMember, sp(dave), member(Join))
	}},
	{name: "NoStateKey", rule: "4.1", rule12: "5.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(dave, TypeMember, nil, member(Join))
	}},
	{name: "NoMembership", rule: "4.1", rule12: "5.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(dave, TypeMember, sp(dave), map[string]any{"displayname": "Dave"})
	}},
	{name: "MembershipNotString", rule: "4.1", rule12: "5.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(dave, TypeMember, sp(dave), map[string]any{"membership": 1})
	}},
	{name: "AuthorisingServerSigned", rule: "4.2.1", rule12: "5.2.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleRestricted)
		return Check(restrictedJoin(r, carol, "c.test"), r.state)
	}},
	{name: "AuthorisingServerDidNotSign", rule: "4.2.1", rule12: "5.2.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleRestricted)
		return Check(restrictedJoin(r, carol, ""), r.state)
	}},
	{name: "AuthoriserNotUserID", rule: "4.2.1", rule12: "5.2.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleRestricted)
		return Check(restrictedJoin(r, "c.test", "c.test"), r.state)
	}},
	{name: "UnknownMembership", rule: "4.8", rule12: "5.8", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(dave, TypeMember, sp(dave), member("lurk"))
	}},
}

func TestRule_4_1_MemberShape(t *testing.T) { runCases(t, memberShapeCases) }

var joinCases = []ruleCase{
	{name: "CreatorJoinsAfterCreate", rule: "4.3.1", rule12: "5.3.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := newRoom(t, v, nil)
		return r.check(alice, TypeMember, sp(alice), member(Join))
	}},
	{name: "OtherUserJoinsAfterCreate", rule: "4.3.1", rule12: "5.3.1", reject: true, err: "4.3.7", err12: "5.3.7",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, nil)
			return r.check(bob, TypeMember, sp(bob), member(Join))
		}},
	{name: "CreatorJoinNotRightAfterCreate", rule: "4.3.1", rule12: "5.3.1", reject: true, err: "4.3.7", err12: "5.3.7",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, nil)
			e := r.buildProto(event.Proto{Sender: alice, Type: TypeMember, StateKey: sp(alice), Content: member(Join),
				PrevEvents: []string{r.create.ID(), "$elsewhere"}}, "a.test")
			return Check(e, r.state)
		}},
	{
		// v10: the creator is content.creator, not the create event's sender.
		name: "ContentCreatorJoins", rule: "4.3.1", only: []*event.RoomVersion{event.V10},
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, map[string]any{"creator": carol})
			return r.check(carol, TypeMember, sp(carol), member(Join))
		},
	},
	{name: "SenderIsNotContentCreator", rule: "4.3.1", reject: true, err: "4.3.7", only: []*event.RoomVersion{event.V10},
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, map[string]any{"creator": carol})
			return r.check(alice, TypeMember, sp(alice), member(Join))
		}},
	{
		// v11 on: content.creator means nothing, the sender is the creator.
		name: "ContentCreatorIgnored", rule: "4.3.1", rule12: "5.3.1", reject: true, err: "4.3.7", err12: "5.3.7",
		only: []*event.RoomVersion{event.V11, event.V12},
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, map[string]any{"creator": carol})
			return r.check(carol, TypeMember, sp(carol), member(Join))
		},
	},
	{name: "SenderIsCreatorDespiteContentCreator", rule: "4.3.1", rule12: "5.3.1", only: []*event.RoomVersion{event.V11, event.V12},
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := newRoom(t, v, map[string]any{"creator": carol})
			return r.check(alice, TypeMember, sp(alice), member(Join))
		}},
	{name: "SenderJoinsSelf", rule: "4.3.2", rule12: "5.3.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(dave, TypeMember, sp(dave), member(Join))
	}},
	{name: "SenderJoinsSomeoneElse", rule: "4.3.2", rule12: "5.3.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(alice, TypeMember, sp(dave), member(Join))
	}},
	{name: "FormerMemberRejoins", rule: "4.3.3", rule12: "5.3.3", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		r.send(bob, TypeMember, sp(bob), member(Leave))
		return r.check(bob, TypeMember, sp(bob), member(Join))
	}},
	{name: "BannedUserJoins", rule: "4.3.3", rule12: "5.3.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		r.send(alice, TypeMember, sp(dave), member(Ban))
		return r.check(dave, TypeMember, sp(dave), member(Join))
	}},
	{name: "InvitedJoinsInviteRoom", rule: "4.3.4", rule12: "5.3.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleInvite)
		r.send(alice, TypeMember, sp(eve), member(Invite))
		return r.check(eve, TypeMember, sp(eve), member(Join))
	}},
	{name: "InvitedJoinsKnockRoom", rule: "4.3.4", rule12: "5.3.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleKnock)
		r.send(alice, TypeMember, sp(eve), member(Invite))
		return r.check(eve, TypeMember, sp(eve), member(Join))
	}},
	{name: "JoinedUpdatesProfileInInviteRoom", rule: "4.3.4", rule12: "5.3.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleInvite)
		return r.check(dave, TypeMember, sp(dave), map[string]any{"membership": Join, "displayname": "D"})
	}},
	{name: "UninvitedJoinsInviteRoom", rule: "4.3.4", rule12: "5.3.4", reject: true, err: "4.3.7", err12: "5.3.7",
		run: func(t testing.TB, v *event.RoomVersion) error {
			return joinRulesRoom(t, v, JoinRuleInvite).check(eve, TypeMember, sp(eve), member(Join))
		}},
	{name: "UninvitedJoinsKnockRoom", rule: "4.3.4", rule12: "5.3.4", reject: true, err: "4.3.7", err12: "5.3.7",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := joinRulesRoom(t, v, JoinRuleKnock)
			r.send(eve, TypeMember, sp(eve), member(Knock))
			return r.check(eve, TypeMember, sp(eve), member(Join))
		}},
	{name: "InvitedJoinsRestricted", rule: "4.3.5.1", rule12: "5.3.5.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleRestricted)
		r.send(alice, TypeMember, sp(eve), member(Invite))
		return r.check(eve, TypeMember, sp(eve), member(Join))
	}},
	{name: "UninvitedJoinsRestrictedUnauthorised", rule: "4.3.5.1", rule12: "5.3.5.1", reject: true, err: "4.3.5.2", err12: "5.3.5.2",
		run: func(t testing.TB, v *event.RoomVersion) error {
			return joinRulesRoom(t, v, JoinRuleRestricted).check(eve, TypeMember, sp(eve), member(Join))
		}},
	{name: "AuthoriserCanInvite", rule: "4.3.5.2", rule12: "5.3.5.2", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleKnockRestricted)
		return Check(restrictedJoin(r, carol, "c.test"), r.state)
	}},
	{name: "AuthoriserBelowInviteLevel", rule: "4.3.5.2", rule12: "5.3.5.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleRestricted)
		return Check(restrictedJoin(r, dave, "a.test"), r.state)
	}},
	{name: "AuthoriserNotJoined", rule: "4.3.5.2", rule12: "5.3.5.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleRestricted)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50, "@zed:z.test": 50}, "invite": 50})
		return Check(restrictedJoin(r, "@zed:z.test", "z.test"), r.state)
	}},
	{name: "NoAuthoriser", rule: "4.3.5.2", rule12: "5.3.5.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleKnockRestricted).check(eve, TypeMember, sp(eve), member(Join))
	}},
	{name: "AuthorisedJoin", rule: "4.3.5.3", rule12: "5.3.5.3", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleRestricted)
		return Check(restrictedJoin(r, carol, "c.test"), r.state)
	}},
	{name: "AuthorisedJoinOfBannedUser", rule: "4.3.5.3", rule12: "5.3.5.3", reject: true, err: "4.3.3", err12: "5.3.3",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := joinRulesRoom(t, v, JoinRuleRestricted)
			r.send(alice, TypeMember, sp(eve), member(Ban))
			return Check(restrictedJoin(r, carol, "c.test"), r.state)
		}},
	{name: "PublicRoom", rule: "4.3.6", rule12: "5.3.6", run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(eve, TypeMember, sp(eve), member(Join))
	}},
	{name: "NotPublic", rule: "4.3.6", rule12: "5.3.6", reject: true, err: "4.3.7", err12: "5.3.7", run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleInvite).check(eve, TypeMember, sp(eve), member(Join))
	}},
	{name: "UnknownJoinRule", rule: "4.3.7", rule12: "5.3.7", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, "private")
		r.send(alice, TypeMember, sp(eve), member(Invite))
		return r.check(eve, TypeMember, sp(eve), member(Join))
	}},
}

func TestRule_4_3_Join(t *testing.T) { runCases(t, joinCases) }

// tpiRoom is modRoom where alice has sent an m.room.third_party_invite with
// token "tok" carrying the identity server's key as public_key (or, with
// listOnly, only in public_keys).
func tpiRoom(t testing.TB, v *event.RoomVersion, listOnly bool) *room {
	r := modRoom(t, v)
	pub := event.EncodeBase64(idKey.Public().(ed25519.PublicKey))
	content := map[string]any{
		"display_name":     "e...@example.org",
		"key_validity_url": "https://id.test/_matrix/identity/v2/pubkey/isvalid",
		"public_keys":      []any{map[string]any{"public_key": event.EncodeBase64(otherKey.Public().(ed25519.PublicKey))}, map[string]any{"public_key": pub}},
	}
	if !listOnly {
		content["public_key"] = pub
		content["public_keys"] = []any{}
	}
	r.send(alice, TypeThirdPartyInvite, sp("tok"), content)
	return r
}

// redeem builds sender's invite of target carrying third_party_invite.
func (r *room) redeem(sender, target string, tpi map[string]any) *event.Event {
	return r.build(sender, TypeMember, sp(target), map[string]any{"membership": Invite, "third_party_invite": tpi})
}

func tpiContent(t testing.TB, mxid, token string) map[string]any {
	return map[string]any{"display_name": "e...@example.org", "signed": signedTPI(t, mxid, token, idKey)}
}

var thirdPartyInviteCases = []ruleCase{
	{name: "TargetNotBanned", rule: "4.4.1.1", rule12: "5.4.1.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "TargetBanned", rule: "4.4.1.1", rule12: "5.4.1.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		r.send(alice, TypeMember, sp(eve), member(Ban))
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "HasSigned", rule: "4.4.1.2", rule12: "5.4.1.2", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "NoSigned", rule: "4.4.1.2", rule12: "5.4.1.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, map[string]any{"display_name": "e"}), r.state)
	}},
	{name: "SignedNotObject", rule: "4.4.1.2", rule12: "5.4.1.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, map[string]any{"signed": "tok"}), r.state)
	}},
	{name: "HasMxidAndToken", rule: "4.4.1.3", rule12: "5.4.1.3", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "NoToken", rule: "4.4.1.3", rule12: "5.4.1.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		signed, err := event.SignJSON([]byte(`{"mxid":"`+eve+`"}`), "id.test", "ed25519:0", idKey)
		if err != nil {
			t.Fatal(err)
		}
		return Check(r.redeem(alice, eve, map[string]any{"signed": json.RawMessage(signed)}), r.state)
	}},
	{name: "MxidIsStateKey", rule: "4.4.1.4", rule12: "5.4.1.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "MxidIsNotStateKey", rule: "4.4.1.4", rule12: "5.4.1.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, "@mallory:e.test", "tok")), r.state)
	}},
	{name: "TokenInState", rule: "4.4.1.5", rule12: "5.4.1.5", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "TokenNotInState", rule: "4.4.1.5", rule12: "5.4.1.5", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "other")), r.state)
	}},
	{name: "SenderSentInvite", rule: "4.4.1.6", rule12: "5.4.1.6", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "SenderDidNotSendInvite", rule: "4.4.1.6", rule12: "5.4.1.6", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(carol, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "SignedByPublicKey", rule: "4.4.1.7", rule12: "5.4.1.7", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "SignedByKeyInPublicKeys", rule: "4.4.1.7", rule12: "5.4.1.7", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, true)
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "PaddedURLSafePublicKey", rule: "4.4.1.7", rule12: "5.4.1.7", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(alice, TypeThirdPartyInvite, sp("tok"), map[string]any{
			"display_name": "e", "public_key": base64.URLEncoding.EncodeToString(idKey.Public().(ed25519.PublicKey))})
		return Check(r.redeem(alice, eve, tpiContent(t, eve, "tok")), r.state)
	}},
	{name: "SignedByUnknownKey", rule: "4.4.1.7", rule12: "5.4.1.7", reject: true, err: "4.4.1.8", err12: "5.4.1.8",
		run: func(t testing.TB, v *event.RoomVersion) error {
			r := tpiRoom(t, v, false)
			return Check(r.redeem(alice, eve, map[string]any{"signed": signedTPI(t, eve, "tok", otherKey)}), r.state)
		}},
	{name: "SignedTamperedAfterSigning", rule: "4.4.1.8", rule12: "5.4.1.8", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		// A signature by the right key over other content: mallory's
		// signed object with its signatures grafted onto eve's.
		var forged map[string]any
		if err := json.Unmarshal(signedTPI(t, "@mallory:e.test", "tok", idKey), &forged); err != nil {
			t.Fatal(err)
		}
		forged["mxid"] = eve
		return Check(r.redeem(alice, eve, map[string]any{"signed": forged}), r.state)
	}},
	{name: "NoSignatures", rule: "4.4.1.8", rule12: "5.4.1.8", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		return Check(r.redeem(alice, eve, map[string]any{"signed": map[string]any{"mxid": eve, "token": "tok"}}), r.state)
	}},
}

func TestRule_4_4_1_ThirdPartyInvite(t *testing.T) { runCases(t, thirdPartyInviteCases) }

var inviteCases = []ruleCase{
	{name: "InviterJoined", rule: "4.4.2", rule12: "5.4.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(eve), member(Invite))
	}},
	{name: "InviterNotJoined", rule: "4.4.2", rule12: "5.4.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(eve, TypeMember, sp("@new:a.test"), member(Invite))
	}},
	{name: "InviterLeft", rule: "4.4.2", rule12: "5.4.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(carol, TypeMember, sp(carol), member(Leave))
		return r.check(carol, TypeMember, sp(eve), member(Invite))
	}},
	{name: "TargetNotInRoom", rule: "4.4.3", rule12: "5.4.3", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(eve), member(Invite))
	}},
	{name: "TargetJoined", rule: "4.4.3", rule12: "5.4.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(bob), member(Invite))
	}},
	{name: "TargetBanned", rule: "4.4.3", rule12: "5.4.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(alice, TypeMember, sp(eve), member(Ban))
		return r.check(carol, TypeMember, sp(eve), member(Invite))
	}},
	{name: "InviterAtInviteLevel", rule: "4.4.4", rule12: "5.4.4", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(eve), member(Invite))
	}},
	{name: "DefaultInviteLevelIsZero", rule: "4.4.4", rule12: "5.4.4", run: func(t testing.TB, v *event.RoomVersion) error {
		return basicRoom(t, v).check(bob, TypeMember, sp(eve), member(Invite))
	}},
	{name: "InviterBelowInviteLevel", rule: "4.4.4", rule12: "5.4.4", reject: true, err: "4.4.5", err12: "5.4.5",
		run: func(t testing.TB, v *event.RoomVersion) error {
			return modRoom(t, v).check(dave, TypeMember, sp(eve), member(Invite))
		}},
	{name: "InviterBelowInviteLevel", rule: "4.4.5", rule12: "5.4.5", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(bob, TypeMember, sp(eve), member(Invite))
	}},
}

func TestRule_4_4_Invite(t *testing.T) { runCases(t, inviteCases) }

var leaveCases = []ruleCase{
	{name: "JoinedLeaves", rule: "4.5.1", rule12: "5.5.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(dave, TypeMember, sp(dave), member(Leave))
	}},
	{name: "InvitedDeclines", rule: "4.5.1", rule12: "5.5.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(carol, TypeMember, sp(eve), member(Invite))
		return r.check(eve, TypeMember, sp(eve), member(Leave))
	}},
	{name: "KnockerRescinds", rule: "4.5.1", rule12: "5.5.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleKnock)
		r.send(eve, TypeMember, sp(eve), member(Knock))
		return r.check(eve, TypeMember, sp(eve), member(Leave))
	}},
	{name: "StrangerLeaves", rule: "4.5.1", rule12: "5.5.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(eve, TypeMember, sp(eve), member(Leave))
	}},
	{name: "BannedLeaves", rule: "4.5.1", rule12: "5.5.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(alice, TypeMember, sp(eve), member(Ban))
		return r.check(eve, TypeMember, sp(eve), member(Leave))
	}},
	{name: "LeftLeavesAgain", rule: "4.5.1", rule12: "5.5.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(dave, TypeMember, sp(dave), member(Leave))
		return r.check(dave, TypeMember, sp(dave), member(Leave))
	}},
	{name: "JoinedKicks", rule: "4.5.2", rule12: "5.5.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(dave), member(Leave))
	}},
	{name: "NonMemberKicks", rule: "4.5.2", rule12: "5.5.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50, eve: 100}})
		return r.check(eve, TypeMember, sp(dave), member(Leave))
	}},
	{name: "UnbanAtBanLevel", rule: "4.5.3", rule12: "5.5.3", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(alice, TypeMember, sp(eve), member(Ban))
		return r.check(carol, TypeMember, sp(eve), member(Leave))
	}},
	{name: "UnbanBelowBanLevel", rule: "4.5.3", rule12: "5.5.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50}, "ban": 75, "kick": 25})
		r.send(alice, TypeMember, sp(eve), member(Ban))
		return r.check(carol, TypeMember, sp(eve), member(Leave))
	}},
	{name: "KickAtKickLevel", rule: "4.5.4", rule12: "5.5.4", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(dave), member(Leave))
	}},
	{name: "KickOfInvitedUser", rule: "4.5.4", rule12: "5.5.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.send(carol, TypeMember, sp(eve), member(Invite))
		return r.check(carol, TypeMember, sp(eve), member(Leave))
	}},
	{name: "KickBelowKickLevel", rule: "4.5.4", rule12: "5.5.4", reject: true, err: "4.5.5", err12: "5.5.5",
		run: func(t testing.TB, v *event.RoomVersion) error {
			return modRoom(t, v).check(dave, TypeMember, sp(bob), member(Leave))
		}},
	{name: "KickOfEqualLevel", rule: "4.5.5", rule12: "5.5.5", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50, bob: 50}})
		return r.check(carol, TypeMember, sp(bob), member(Leave))
	}},
	{name: "KickOfHigherLevel", rule: "4.5.5", rule12: "5.5.5", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(alice), member(Leave))
	}},
}

func TestRule_4_5_Leave(t *testing.T) { runCases(t, leaveCases) }

var banCases = []ruleCase{
	{name: "JoinedBans", rule: "4.6.1", rule12: "5.6.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(dave), member(Ban))
	}},
	{name: "NonMemberBans", rule: "4.6.1", rule12: "5.6.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		r.setLevels(map[string]any{"users": map[string]any{carol: 50, eve: 100}})
		return r.check(eve, TypeMember, sp(dave), member(Ban))
	}},
	{name: "BanAtBanLevel", rule: "4.6.2", rule12: "5.6.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(eve), member(Ban))
	}},
	{name: "BanBelowBanLevel", rule: "4.6.2", rule12: "5.6.2", reject: true, err: "4.6.3", err12: "5.6.3", run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(dave, TypeMember, sp(eve), member(Ban))
	}},
	{name: "BanOfHigherLevel", rule: "4.6.3", rule12: "5.6.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(carol, TypeMember, sp(alice), member(Ban))
	}},
}

func TestRule_4_6_Ban(t *testing.T) { runCases(t, banCases) }

var knockCases = []ruleCase{
	{name: "KnockRoom", rule: "4.7.1", rule12: "5.7.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleKnock).check(eve, TypeMember, sp(eve), member(Knock))
	}},
	{name: "KnockRestrictedRoom", rule: "4.7.1", rule12: "5.7.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleKnockRestricted).check(eve, TypeMember, sp(eve), member(Knock))
	}},
	{name: "PublicRoom", rule: "4.7.1", rule12: "5.7.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return modRoom(t, v).check(eve, TypeMember, sp(eve), member(Knock))
	}},
	{name: "RestrictedRoom", rule: "4.7.1", rule12: "5.7.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleRestricted).check(eve, TypeMember, sp(eve), member(Knock))
	}},
	{name: "KnockForSelf", rule: "4.7.2", rule12: "5.7.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleKnock).check(eve, TypeMember, sp(eve), member(Knock))
	}},
	{name: "KnockForSomeoneElse", rule: "4.7.2", rule12: "5.7.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleKnock).check(carol, TypeMember, sp(eve), member(Knock))
	}},
	{name: "FormerMemberKnocks", rule: "4.7.3", rule12: "5.7.3", run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleKnock)
		r.send(dave, TypeMember, sp(dave), member(Leave))
		return r.check(dave, TypeMember, sp(dave), member(Knock))
	}},
	{name: "JoinedKnocks", rule: "4.7.3", rule12: "5.7.3", reject: true, err: "4.7.4", err12: "5.7.4", run: func(t testing.TB, v *event.RoomVersion) error {
		return joinRulesRoom(t, v, JoinRuleKnock).check(dave, TypeMember, sp(dave), member(Knock))
	}},
	{name: "InvitedKnocks", rule: "4.7.4", rule12: "5.7.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleKnock)
		r.send(carol, TypeMember, sp(eve), member(Invite))
		return r.check(eve, TypeMember, sp(eve), member(Knock))
	}},
	{name: "BannedKnocks", rule: "4.7.4", rule12: "5.7.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := joinRulesRoom(t, v, JoinRuleKnock)
		r.send(alice, TypeMember, sp(eve), member(Ban))
		return r.check(eve, TypeMember, sp(eve), member(Knock))
	}},
}

func TestRule_4_7_Knock(t *testing.T) { runCases(t, knockCases) }
