package auth

import (
	"encoding/json"
	"fmt"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// AuthStateKeys lists the state an event of the given shape needs as auth
// events, in this order: the m.room.create event (not in room version 12),
// m.room.power_levels, the sender's m.room.member and, for m.room.member
// events, the target's m.room.member, m.room.join_rules for joins,
// invites and knocks, the m.room.third_party_invite named by
// content.third_party_invite.signed.token for invites, and for joins the
// member event of content.join_authorised_via_users_server. Duplicates are
// listed once. An m.room.create event needs none.
// Spec: server-server-api "Auth events selection"; rooms/v12.md rule 3.2.
func AuthStateKeys(v *event.RoomVersion, evType, stateKey, sender string, content json.RawMessage) []StateKey {
	if evType == TypeCreate && stateKey == "" {
		return nil
	}
	var mc *memberContent
	if evType == TypeMember {
		mc = parseMemberContent(content)
	}
	return appendAuthStateKeys(nil, v, evType, stateKey, sender, mc)
}

// AppendAuthStateKeys appends AuthStateKeys(ev.Version(), ev.Type(),
// state_key, ev.Sender(), ev.Content()) to dst and returns the extended
// slice. It decodes ev's content once per event, not once per call.
func AppendAuthStateKeys(dst []StateKey, ev *event.Event) []StateKey {
	sk, _ := ev.StateKey()
	if ev.Type() == TypeCreate && sk == "" {
		return dst
	}
	var mc *memberContent
	if ev.Type() == TypeMember {
		mc = memberMemo.Get(ev)
	}
	return appendAuthStateKeys(dst, ev.Version(), ev.Type(), sk, ev.Sender(), mc)
}

// maxAuthStateKeys is the most keys AuthStateKeys returns: create, power
// levels, sender, target, join rules, third-party invite and authoriser.
const maxAuthStateKeys = 7

// appendAuthStateKeys is AuthStateKeys for an event that is not a create
// event; mc is its decoded content when it is an m.room.member event.
func appendAuthStateKeys(dst []StateKey, v *event.RoomVersion, evType, stateKey, sender string, mc *memberContent) []StateKey {
	if dst == nil {
		dst = make([]StateKey, 0, maxAuthStateKeys)
	}
	start := len(dst)
	add := func(k StateKey) {
		for _, have := range dst[start:] {
			if have == k {
				return
			}
		}
		dst = append(dst, k)
	}
	if v == nil || !v.RoomIDFromCreate {
		add(createKey)
	}
	add(powerLevelsKey)
	add(StateKey{TypeMember, sender})
	if evType != TypeMember {
		return dst
	}
	add(StateKey{TypeMember, stateKey})
	if mc.err != nil {
		return dst
	}
	if mc.membership == Join || mc.membership == Invite || mc.membership == Knock {
		add(joinRulesKey)
	}
	if mc.membership == Invite && mc.inviteTokenOK {
		add(StateKey{TypeThirdPartyInvite, mc.inviteToken})
	}
	// The authorising user's membership, for joins only: the spec's
	// selection lists it whenever join_authorised_via_users_server is
	// present (every room version from 8 on supports restricted rooms), but
	// only a join's rules read it, and Synapse's auth_types_for_event
	// rejects it on any other membership (rule 2.2), so we do not cite it
	// there. CheckAuthEvents still accepts it, as the spec allows.
	if mc.membership == Join && mc.authoriserStr {
		add(StateKey{TypeMember, mc.authoriser})
	}
	return dst
}

// SelectAuthEvents returns the events of state a new event with the given
// shape should list in auth_events, in AuthStateKeys order; keys missing
// from state are skipped. The create event is excluded in room version 12,
// where the room ID stands for it. Before version 12, state without an
// m.room.create event is an error, since no event could pass the rules.
// Spec: server-server-api "Auth events selection".
func SelectAuthEvents(v *event.RoomVersion, evType, stateKey, sender string, content json.RawMessage, state State) ([]*event.Event, error) {
	if v == nil {
		return nil, fmt.Errorf("auth: select auth events: no room version")
	}
	if evType == TypeCreate && stateKey == "" {
		return nil, nil
	}
	if _, err := object(content); err != nil {
		return nil, fmt.Errorf("auth: select auth events: content: %w", err)
	}
	if state[createKey] == nil && !v.RoomIDFromCreate {
		return nil, fmt.Errorf("auth: select auth events: no m.room.create event in the state")
	}
	var out []*event.Event
	for _, k := range AuthStateKeys(v, evType, stateKey, sender, content) {
		if e := state[k]; e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// CheckAuthEvents applies the rules about an event's auth_events list: rule
// 2 in room versions 10 and 11, rule 3 in version 12. authEvents are the
// events ev.AuthEvents() names (in any order; extra events are ignored) and
// rejected reports whether one of them was itself rejected (nil: none was).
// A listed event missing from authEvents rejects ev: the caller fetches
// missing auth events before calling.
//
// On success the caller checks ev against NewState(authEvents...) — plus the
// create event in room version 12 — with Check.
// Spec: rooms/v10.md rule 2, rooms/v12.md rule 3; server-server-api "Checks
// performed on receipt of a PDU" step 4.
func CheckAuthEvents(ev *event.Event, authEvents []*event.Event, rejected func(eventID string) bool) error {
	if ev == nil || ev.Version() == nil {
		return fmt.Errorf("auth: check auth events: %w", rejectAs("event", "no event or room version"))
	}
	c := &checker{ev: ev, v: ev.Version()}
	if err := c.checkAuthEvents(authEvents, rejected); err != nil {
		return fmt.Errorf("auth: check auth events of %s: %w", ev.ID(), err)
	}
	return nil
}

func (c *checker) checkAuthEvents(authEvents []*event.Event, rejected func(string) bool) error {
	ev := c.ev
	if ev.Type() == TypeCreate {
		// Rule 1 decides create events before the auth events are looked
		// at; a create event has none.
		if n := len(ev.AuthEvents()); n > 0 {
			return rejectAs("1", "create event lists %d auth events", n)
		}
		return nil
	}
	byID := make(map[string]*event.Event, len(authEvents))
	for _, a := range authEvents {
		if a != nil {
			byID[a.ID()] = a
		}
	}
	allowed := map[StateKey]bool{}
	var buf [maxAuthStateKeys]StateKey
	for _, k := range AppendAuthStateKeys(buf[:0], ev) {
		allowed[k] = true
	}
	// "Auth events selection" (server-server-api) lists the authorising
	// user's membership whenever content.join_authorised_via_users_server is
	// present, whatever the membership. We cite it only for joins (as Synapse
	// does; a citation the rule does not need is never required), but accept
	// what the spec's selection allows.
	if ev.Type() == TypeMember {
		if mc := memberMemo.Get(ev); mc.err == nil && mc.authoriserStr {
			allowed[StateKey{TypeMember, mc.authoriser}] = true
		}
	}
	seen := map[StateKey]string{}
	hasCreate := false
	for _, id := range ev.AuthEvents() {
		a := byID[id]
		if a == nil {
			return rejectAs("auth-events-missing", "auth event %s is missing", id)
		}
		ask, isState := a.StateKey()
		key := StateKey{a.Type(), ask}
		// 2.1
		if prev, dup := seen[key]; dup {
			return c.reject("2.1", "auth events %s and %s are both (%s, %q)", prev, id, key.Type, key.StateKey)
		}
		seen[key] = id
		// 2.2
		if !isState || !allowed[key] {
			if c.v.RoomIDFromCreate && key == createKey {
				return rejectAs("3.2", "the m.room.create event must not be listed in auth_events")
			}
			return c.reject("2.2", "auth event %s (%s, %q) is not one the auth events selection picks", id, key.Type, key.StateKey)
		}
		// 2.3
		if rejected != nil && rejected(id) {
			return c.reject("2.3", "auth event %s was rejected", id)
		}
		// v12 3.4. (The spec's source numbers this item 5, after dropping
		// 3.4 "no m.room.create among the entries"; as rendered it is 3.4.)
		// NOTSPEC: room versions 10 and 11 state this only implicitly (the
		// auth events are "a subset of the room state"); we apply it to them
		// too, as Synapse does.
		if a.RoomID() != ev.RoomID() {
			rule := "auth-events-room"
			if c.v.RoomIDFromCreate {
				rule = "3.4"
			}
			return rejectAs(rule, "auth event %s is in room %q, not %q", id, a.RoomID(), ev.RoomID())
		}
		if key == createKey {
			hasCreate = true
		}
	}
	// 2.4 (not in room version 12)
	if !c.v.RoomIDFromCreate && !hasCreate {
		return c.reject("2.4", "no m.room.create event among the auth events")
	}
	return nil
}
