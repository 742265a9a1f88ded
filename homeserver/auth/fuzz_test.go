package auth

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// FuzzCheck grows a room from fuzz input: each step picks a sender, an
// event type, a state key and a content (from a small menu, or the fuzz
// string when it is a JSON object), checks the event against the state so
// far and applies it when allowed. Every answer must be nil or a
// *RuleError wrapping ErrForbidden, the same on a second call, and allowed
// non-member events must come from joined senders.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, `{"membership":"join"}`)
	f.Add([]byte{2, 3, 1, 0, 5, 2, 9, 9, 1, 4, 4, 4}, `{"users":{"@bob:b.test":100},"ban":"x"}`)
	f.Add([]byte{1, 7, 7, 7, 3, 2, 6, 1}, `{"membership":"invite","third_party_invite":{"signed":{"mxid":"@eve:e.test","token":"tok","signatures":{"id.test":{"ed25519:0":"AAAA"}}}}}`)
	f.Add([]byte{0, 4, 4, 4, 4}, `{"membership":"join","join_authorised_via_users_server":"@carol:c.test"}`)
	f.Fuzz(func(t *testing.T, ops []byte, content string) {
		if len(ops) == 0 || len(ops) > 64 {
			return
		}
		v := versions[int(ops[0])%len(versions)]
		r := newRoom(t, v, nil)
		r.send(alice, TypeMember, sp(alice), member(Join))
		senders := []string{alice, bob, carol, dave, eve}
		types := []string{TypeMember, TypePowerLevels, TypeJoinRules, TypeThirdPartyInvite, "m.room.message", "m.room.topic", TypeRedaction}
		keys := []string{"", alice, bob, carol, "tok", "@x"}
		var fuzzContent any
		if json.Valid([]byte(content)) && len(content) > 0 && content[0] == '{' {
			fuzzContent = json.RawMessage(content)
		}
		contents := []any{member(Join), member(Invite), member(Leave), member(Ban), member(Knock),
			map[string]any{"join_rule": JoinRulePublic}, map[string]any{"join_rule": JoinRuleKnockRestricted},
			map[string]any{"users": users(bob, 50)}, msg("hi"), fuzzContent}
		for i := 1; i+3 < len(ops); i += 4 {
			typ := types[int(ops[i+1])%len(types)]
			var sk *string
			if typ != "m.room.message" && typ != TypeRedaction {
				sk = sp(keys[int(ops[i+2])%len(keys)])
			}
			c := contents[int(ops[i+3])%len(contents)]
			if c == nil {
				c = map[string]any{}
			}
			sender := senders[int(ops[i])%len(senders)]
			e, err := event.Build(event.Proto{RoomID: r.id, Sender: sender, Type: typ, StateKey: sk, Content: c,
				PrevEvents: r.last, AuthEvents: []string{}, Depth: int64(i + 2)}, v, domainOf(sender), testKeyID, testKey)
			if err != nil {
				continue // the fuzz content is not a valid event for this version
			}
			err = Check(e, r.state)
			if err != nil {
				var re *RuleError
				if !errors.As(err, &re) || !errors.Is(err, ErrForbidden) {
					t.Fatalf("Check returned a non-rule error: %v", err)
				}
			}
			if err2 := Check(e, r.state); (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
				t.Fatalf("Check not deterministic: %v then %v", err, err2)
			}
			if err == nil && typ != TypeMember {
				if m := r.state[StateKey{TypeMember, sender}]; m == nil || m.Membership() != Join {
					t.Fatalf("allowed %s from non-member %s", typ, sender)
				}
			}
			_ = CheckAuthEvents(e, r.authEventsOf(e), nil)
			_ = IsPowerEvent(e)
			_ = PowerLevel(r.state, sender)
			skv := ""
			if sk != nil {
				skv = *sk
			}
			if _, err := SelectAuthEvents(v, typ, skv, sender, e.Content(), r.state); err != nil {
				t.Fatalf("SelectAuthEvents on a room with a create event: %v", err)
			}
			if err == nil {
				r.apply(e)
			}
		}
	})
}
