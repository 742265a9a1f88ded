package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// ruleCase is one accept or reject case for one authorization rule. rule is
// the rule number in room versions 10 and 11 and rule12 the number in
// version 12; an empty number means the case does not apply to those
// versions. A reject case expects a *RuleError naming err (err12 for v12),
// which default to rule and rule12: for rules that only allow, the
// rejection comes from the "otherwise, reject" rule after them.
type ruleCase struct {
	name       string
	rule       string
	rule12     string
	reject     bool
	err, err12 string
	wantErr    error // instead of a RuleError, expect errors.Is(err, wantErr)
	only       []*event.RoomVersion
	run        func(t testing.TB, v *event.RoomVersion) error
}

func (c ruleCase) ruleFor(v *event.RoomVersion) string {
	if v.RoomIDFromCreate {
		return c.rule12
	}
	return c.rule
}

func (c ruleCase) applies(v *event.RoomVersion) bool {
	if c.ruleFor(v) == "" {
		return false
	}
	return c.only == nil || slices.Contains(c.only, v)
}

func (c ruleCase) want(v *event.RoomVersion) string {
	if !c.reject {
		return ""
	}
	if v.RoomIDFromCreate {
		if c.err12 != "" {
			return c.err12
		}
		return c.rule12
	}
	if c.err != "" {
		return c.err
	}
	return c.rule
}

func runCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, c := range cases {
		for _, v := range versions {
			if !c.applies(v) {
				continue
			}
			side := "accept"
			if c.reject {
				side = "reject"
			}
			name := fmt.Sprintf("%s_%s/%s/v%s", strings.ReplaceAll(c.ruleFor(v), ".", "_"), c.name, side, v.ID)
			t.Run(name, func(t *testing.T) {
				err := c.run(t, v)
				if c.wantErr != nil {
					if !errors.Is(err, c.wantErr) {
						t.Fatalf("got %v, want %v", err, c.wantErr)
					}
					return
				}
				if got, want := ruleOf(t, err), c.want(v); got != want {
					t.Fatalf("rule: got %q, want %q (error: %v)", got, want, err)
				}
			})
		}
	}
}

// createEvent builds alice's create event for v, edited by edit.
func createEvent(t testing.TB, v *event.RoomVersion, edit func(p *event.Proto)) *event.Event {
	t.Helper()
	p := event.Proto{RoomID: "!room:a.test", Sender: alice, Type: TypeCreate, StateKey: sp(""),
		Content: createContent(v), PrevEvents: []string{}, AuthEvents: []string{}, Depth: 1}
	if edit != nil {
		edit(&p)
	}
	e, err := event.Build(p, v, domainOf(p.Sender), testKeyID, testKey)
	if err != nil {
		t.Fatalf("build create: %v", err)
	}
	return e
}

func withContent(v *event.RoomVersion, extra map[string]any) func(p *event.Proto) {
	return func(p *event.Proto) {
		c := createContent(v)
		for k, val := range extra {
			if val == nil {
				delete(c, k)
			} else {
				c[k] = val
			}
		}
		p.Content = c
	}
}

var createCases = []ruleCase{
	{name: "NoPrevEvents", rule: "1.1", rule12: "1.1", run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, nil), State{})
	}},
	{name: "HasPrevEvents", rule: "1.1", rule12: "1.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, func(p *event.Proto) { p.PrevEvents = []string{"$x"} }), State{})
	}},
	// Rule 1 is "If type is m.room.create", with no condition on
	// state_key: a later m.room.create under another state key is refused
	// by 1.1, not checked as an ordinary state event.
	{name: "CreateTypeWithOtherStateKey", rule: "1.1", rule12: "1.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		return r.check(alice, TypeCreate, sp("again"), createContent(v))
	}},
	{name: "CreateTypeWithoutStateKey", rule: "1.1", rule12: "1.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		return r.check(alice, TypeCreate, nil, createContent(v))
	}},
	{name: "RoomIDDomainIsSenderDomain", rule: "1.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, nil), State{})
	}},
	{name: "RoomIDDomainDiffers", rule: "1.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, func(p *event.Proto) { p.RoomID = "!room:b.test" }), State{})
	}},
	{name: "NoRoomID", rule12: "1.2", run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, nil), State{})
	}},
	{
		// A v12 create event with a room_id never becomes an *event.Event:
		// the parser refuses it, so Check's own test of 1.2 is a backstop.
		name: "HasRoomIDRefusedByParser", rule12: "1.2", reject: true, wantErr: event.ErrBadEvent,
		run: func(t testing.TB, v *event.RoomVersion) error {
			var m map[string]any
			if err := json.Unmarshal(createEvent(t, v, nil).JSON(), &m); err != nil {
				t.Fatal(err)
			}
			m["room_id"] = "!room:a.test"
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = event.Parse(raw, v)
			return err
		},
	},
	{name: "KnownRoomVersion", rule: "1.3", rule12: "1.3", run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, nil), State{})
	}},
	{name: "UnknownRoomVersion", rule: "1.3", rule12: "1.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"room_version": "99"})), State{})
	}},
	{name: "RoomVersionNotString", rule: "1.3", rule12: "1.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"room_version": 10})), State{})
	}},
	{name: "RoomVersionAbsentMeansV1", rule: "1.3", rule12: "1.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"room_version": nil})), State{})
	}},
	{name: "RoomVersionOfAnotherVersion", rule: "1.3", rule12: "1.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		other := "11"
		if v == event.V11 {
			other = "10"
		}
		return Check(createEvent(t, v, withContent(v, map[string]any{"room_version": other})), State{})
	}},
	{name: "HasCreator", rule: "1.4", only: []*event.RoomVersion{event.V10}, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, nil), State{})
	}},
	{name: "NoCreator", rule: "1.4", reject: true, only: []*event.RoomVersion{event.V10}, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"creator": nil})), State{})
	}},
	{name: "NoCreatorNeededFromV11", rule: "1.4", only: []*event.RoomVersion{event.V11}, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"creator": nil})), State{})
	}},
	{name: "AdditionalCreatorsValid", rule12: "1.4", run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"additional_creators": []any{bob, "@x:[::1]:8448"}})), State{})
	}},
	{name: "AdditionalCreatorsNotArray", rule12: "1.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"additional_creators": bob})), State{})
	}},
	{name: "AdditionalCreatorsBadUserID", rule12: "1.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"additional_creators": []any{bob, "bob"}})), State{})
	}},
	{name: "AdditionalCreatorsNotString", rule12: "1.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return Check(createEvent(t, v, withContent(v, map[string]any{"additional_creators": []any{7}})), State{})
	}},
}

func TestRule_1_Create(t *testing.T) { runCases(t, createCases) }

var signedCases = []ruleCase{
	{name: "SignedBySenderServer", rule: "signed-by-sender", rule12: "signed-by-sender", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		return r.check(bob, "m.room.message", nil, map[string]any{"body": "hi"})
	}},
	{name: "SignedByAnotherServer", rule: "signed-by-sender", rule12: "signed-by-sender", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.buildProto(event.Proto{Sender: bob, Type: "m.room.message", Content: map[string]any{"body": "hi"}}, "a.test")
		return Check(e, r.state)
	}},
	// server-server-api "Validating hashes and signatures on received
	// events": an invite made from a third-party invite need not carry the
	// sender's server's signature; the invitee's server signs it.
	{name: "ThirdPartyInviteSignedByInviteeServer", rule: "signed-by-sender", rule12: "signed-by-sender", run: func(t testing.TB, v *event.RoomVersion) error {
		r := tpiRoom(t, v, false)
		e := r.buildProto(event.Proto{Sender: alice, Type: TypeMember, StateKey: sp(eve),
			Content: map[string]any{"membership": Invite, "third_party_invite": tpiContent(t, eve, "tok")}}, "e.test")
		return Check(e, r.state)
	}},
	{name: "PlainInviteSignedByInviteeServer", rule: "signed-by-sender", rule12: "signed-by-sender", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.buildProto(event.Proto{Sender: alice, Type: TypeMember, StateKey: sp(eve), Content: member(Invite)}, "e.test")
		return Check(e, r.state)
	}},
}

func TestRule_SignedBySender(t *testing.T) { runCases(t, signedCases) }

// message builds bob's message in r with the given auth_events.
func (r *room) message(auth []string) *event.Event {
	return r.buildProto(event.Proto{Sender: bob, Type: "m.room.message", Content: map[string]any{"body": "hi"}, AuthEvents: auth}, "b.test")
}

func ids(events ...*event.Event) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, e.ID())
	}
	return out
}

var authEventsCases = []ruleCase{
	{name: "SelectedAuthEvents", rule: "2.1", rule12: "3.1", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		return CheckAuthEvents(e, r.authEventsOf(e), nil)
	}},
	{name: "DuplicatePowerLevels", rule: "2.1", rule12: "3.1", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		oldPL := r.state[powerLevelsKey]
		r.setLevels(map[string]any{"kick": 40})
		auth := []*event.Event{oldPL, r.state[powerLevelsKey], r.state[StateKey{TypeMember, bob}]}
		if !v.RoomIDFromCreate {
			auth = append(auth, r.create)
		}
		e := r.message(ids(auth...))
		return CheckAuthEvents(e, auth, nil)
	}},
	{name: "OnlySelectedTypes", rule: "2.2", rule12: "3.2", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, TypeMember, sp(bob), member(Leave))
		return CheckAuthEvents(e, r.authEventsOf(e), nil)
	}},
	// "Auth events selection" lists the authorising user's membership for
	// any m.room.member event with join_authorised_via_users_server, so rule
	// 2.2 accepts it on a leave even though SelectAuthEvents omits it there.
	{name: "AuthoriserMemberOnLeave", rule: "2.2", rule12: "3.2", run: func(t testing.TB, v *event.RoomVersion) error {
		r := modRoom(t, v)
		content := map[string]any{"membership": Leave, "join_authorised_via_users_server": carol}
		e := r.build(bob, TypeMember, sp(bob), content)
		if slices.Contains(e.AuthEvents(), r.state[StateKey{TypeMember, carol}].ID()) {
			t.Fatal("SelectAuthEvents cited the authoriser's membership on a leave")
		}
		auth := append(r.authEventsOf(e), r.state[StateKey{TypeMember, carol}])
		e = r.buildProto(event.Proto{Sender: bob, Type: TypeMember, StateKey: sp(bob), Content: content, AuthEvents: ids(auth...)}, "b.test")
		return CheckAuthEvents(e, auth, nil)
	}},
	{name: "JoinRulesForMessage", rule: "2.2", rule12: "3.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		auth := append(r.authEventsOf(e), r.state[joinRulesKey])
		e = r.message(ids(auth...))
		return CheckAuthEvents(e, auth, nil)
	}},
	{name: "AnotherUsersMember", rule: "2.2", rule12: "3.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		auth := append(r.authEventsOf(e), r.state[StateKey{TypeMember, alice}])
		e = r.message(ids(auth...))
		return CheckAuthEvents(e, auth, nil)
	}},
	{name: "CreateListed", rule12: "3.2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		auth := append(r.authEventsOf(e), r.create)
		e = r.message(ids(auth...))
		return CheckAuthEvents(e, auth, nil)
	}},
	{name: "NoneRejected", rule: "2.3", rule12: "3.3", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		return CheckAuthEvents(e, r.authEventsOf(e), func(string) bool { return false })
	}},
	{name: "RejectedAuthEvent", rule: "2.3", rule12: "3.3", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		bad := r.state[StateKey{TypeMember, bob}].ID()
		return CheckAuthEvents(e, r.authEventsOf(e), func(id string) bool { return id == bad })
	}},
	{name: "MissingAuthEvent", rule: "auth-events-missing", rule12: "auth-events-missing", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		return CheckAuthEvents(e, r.authEventsOf(e)[1:], nil)
	}},
	{name: "CreateListed", rule: "2.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		return CheckAuthEvents(e, r.authEventsOf(e), nil)
	}},
	{name: "CreateNotListed", rule: "2.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		auth := []*event.Event{r.state[powerLevelsKey], r.state[StateKey{TypeMember, bob}]}
		return CheckAuthEvents(r.message(ids(auth...)), auth, nil)
	}},
	{name: "CreateInState", rule: "2.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		return r.check(bob, "m.room.message", nil, map[string]any{"body": "hi"})
	}},
	{name: "NoCreateInState", rule: "2.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		delete(r.state, createKey)
		return Check(e, r.state)
	}},
	{name: "CreateOfAnotherRoomInState", rule: "2.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		r.state[createKey] = createEvent(t, v, func(p *event.Proto) { p.RoomID = "!other:a.test" })
		return Check(e, r.state)
	}},
	{name: "RoomIDIsCreateEventID", rule12: "2", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		return r.check(bob, "m.room.message", nil, map[string]any{"body": "hi"})
	}},
	{name: "CreateOfAnotherRoom", rule12: "2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		r.state[createKey] = createEvent(t, v, withContent(v, map[string]any{"m.federate": true}))
		return Check(e, r.state)
	}},
	{name: "NoCreateInState", rule12: "2", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		delete(r.state, createKey)
		return Check(e, r.state)
	}},
	{name: "AuthEventsInSameRoom", rule: "auth-events-room", rule12: "3.4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		e := r.build(bob, "m.room.message", nil, map[string]any{"body": "hi"})
		return CheckAuthEvents(e, r.authEventsOf(e), nil)
	}},
	{name: "AuthEventFromAnotherRoom", rule: "auth-events-room", rule12: "3.4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		r := basicRoom(t, v)
		foreign := r.buildProto(event.Proto{RoomID: "!other:a.test", Sender: alice, Type: TypePowerLevels, StateKey: sp(""),
			Content: r.levels(nil)}, "a.test")
		auth := []*event.Event{foreign, r.state[StateKey{TypeMember, bob}]}
		if !v.RoomIDFromCreate {
			auth = append(auth, r.create)
		}
		return CheckAuthEvents(r.message(ids(auth...)), auth, nil)
	}},
}

func TestRule_2_AuthEvents(t *testing.T) { runCases(t, authEventsCases) }

// unfederatedRoom is a public room whose create event sets m.federate false.
func unfederatedRoom(t testing.TB, v *event.RoomVersion) *room {
	r := newRoom(t, v, map[string]any{"m.federate": false})
	r.send(alice, TypeMember, sp(alice), member(Join))
	r.send(alice, TypeJoinRules, sp(""), map[string]any{"join_rule": JoinRulePublic})
	return r
}

var federateCases = []ruleCase{
	{name: "SameServerAsCreator", rule: "3", rule12: "4", run: func(t testing.TB, v *event.RoomVersion) error {
		return unfederatedRoom(t, v).check(dave, TypeMember, sp(dave), member(Join))
	}},
	{name: "OtherServer", rule: "3", rule12: "4", reject: true, run: func(t testing.TB, v *event.RoomVersion) error {
		return unfederatedRoom(t, v).check(bob, TypeMember, sp(bob), member(Join))
	}},
	{name: "FederateTrueAllowsOtherServers", rule: "3", rule12: "4", run: func(t testing.TB, v *event.RoomVersion) error {
		r := newRoom(t, v, map[string]any{"m.federate": true})
		r.send(alice, TypeMember, sp(alice), member(Join))
		r.send(alice, TypeJoinRules, sp(""), map[string]any{"join_rule": JoinRulePublic})
		return r.check(bob, TypeMember, sp(bob), member(Join))
	}},
}

func TestRule_3_Federate(t *testing.T) { runCases(t, federateCases) }
