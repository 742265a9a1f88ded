package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// Event types the authorization rules look at.
// Spec: rooms/v10.md "Authorization rules" (types of state events that
// affect authorization).
const (
	TypeCreate           = "m.room.create"
	TypeMember           = "m.room.member"
	TypeJoinRules        = "m.room.join_rules"
	TypePowerLevels      = "m.room.power_levels"
	TypeThirdPartyInvite = "m.room.third_party_invite"
	TypeRedaction        = "m.room.redaction"
)

// Membership values of m.room.member. Spec: client-server-api m.room.member.
const (
	Join   = "join"
	Invite = "invite"
	Leave  = "leave"
	Ban    = "ban"
	Knock  = "knock"
)

// Join rules of m.room.join_rules. Spec: client-server-api m.room.join_rules.
const (
	JoinRulePublic          = "public"
	JoinRuleInvite          = "invite"
	JoinRuleKnock           = "knock"
	JoinRuleRestricted      = "restricted"
	JoinRuleKnockRestricted = "knock_restricted"
)

// StateKey is the (type, state_key) pair that names one piece of room state.
type StateKey struct{ Type, StateKey string }

// State is the room state an event is checked against. It must contain the
// room's m.room.create event under {m.room.create, ""}, also in room version
// 12 where the create event is not listed in auth_events. Nil entries are
// treated as absent. Check never modifies a State.
type State map[StateKey]*event.Event

var (
	createKey      = StateKey{TypeCreate, ""}
	powerLevelsKey = StateKey{TypePowerLevels, ""}
	joinRulesKey   = StateKey{TypeJoinRules, ""}
)

// NewState builds a State from state events, the later of two events with
// the same key winning. Non-state events and nil entries are skipped.
func NewState(events ...*event.Event) State {
	s := make(State, len(events))
	for _, e := range events {
		if e == nil {
			continue
		}
		if sk, ok := e.StateKey(); ok {
			s[StateKey{e.Type(), sk}] = e
		}
	}
	return s
}

// ErrForbidden is wrapped by every error that rejects an event under the
// authorization rules.
var ErrForbidden = errors.New("auth: forbidden")

// RuleError says which authorization rule rejected an event. Rule is the
// spec's rule number for the event's room version ("4.3.2" in room versions
// 10 and 11 is "5.3.2" in version 12) or, for checks outside the numbered
// list, a stable name such as "signed-by-sender".
type RuleError struct {
	Rule   string
	Reason string
}

func (e *RuleError) Error() string {
	return "auth: rejected by rule " + e.Rule + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrForbidden) hold for every RuleError.
func (e *RuleError) Unwrap() error { return ErrForbidden }

// checker carries one Check call.
type checker struct {
	ev    *event.Event
	v     *event.RoomVersion
	state State

	lv     *levels // the state's power levels, decoded once by levels
	lvDone bool
}

// levels returns the state's decoded m.room.power_levels, nil if none.
func (c *checker) levels() *levels {
	if !c.lvDone {
		c.lv, c.lvDone = c.state.currentLevels(), true
	}
	return c.lv
}

// level is userID's power level in the state.
func (c *checker) level(userID string) int64 { return c.state.powerLevel(c.levels(), userID) }

// rule converts a rule number written in the numbering of room versions 10
// and 11 into the numbering of the event's room version: version 12 inserted
// rule 2 (room ID from the create event) and power-levels rule 10.4 (no
// creators in users), shifting the rules after them.
func (c *checker) rule(n string) string {
	if !c.v.RoomIDFromCreate {
		return n
	}
	parts := strings.Split(n, ".")
	top, err := strconv.Atoi(parts[0])
	if err != nil || top < 2 {
		return n
	}
	if top == 9 && len(parts) > 1 {
		if sub, err := strconv.Atoi(parts[1]); err == nil && sub >= 4 {
			parts[1] = strconv.Itoa(sub + 1)
		}
	}
	parts[0] = strconv.Itoa(top + 1)
	return strings.Join(parts, ".")
}

// reject returns a RuleError for rule n, numbered as in room versions 10/11.
func (c *checker) reject(n, format string, args ...any) error {
	return &RuleError{Rule: c.rule(n), Reason: fmt.Sprintf(format, args...)}
}

// rejectAs returns a RuleError with a rule number or name used verbatim.
func rejectAs(rule, format string, args ...any) error {
	return &RuleError{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// Check applies the authorization rules of ev's room version to ev against
// state and returns nil if ev is allowed. Every rejection wraps ErrForbidden
// and a *RuleError naming the rule.
//
// Check covers the rules that depend on room state. The rules about the
// event's own auth_events list (duplicates, unexpected entries, rejected
// entries) need the listed events themselves; CheckAuthEvents applies them.
// Spec: rooms/v10.md, v11.md, v12.md "Authorization rules";
// server-server-api "Checks performed on receipt of a PDU".
func Check(ev *event.Event, state State) error {
	if ev == nil {
		return fmt.Errorf("auth: check: %w", rejectAs("event", "no event"))
	}
	if ev.Version() == nil {
		return fmt.Errorf("auth: check %s: %w", ev.ID(), rejectAs("event", "event has no room version"))
	}
	c := &checker{ev: ev, v: ev.Version(), state: state}
	if err := c.check(); err != nil {
		return fmt.Errorf("auth: check %s: %w", ev.ID(), err)
	}
	return nil
}

func (c *checker) check() error {
	ev := c.ev
	// "Events must be signed by the server denoted by the sender property."
	// The signature itself is verified on receipt (server-server-api
	// "Validating hashes and signatures on received events"); the rules
	// only need it to be there. That section exempts an invite made from a
	// third-party invite: the invitee's server builds it on the inviter's
	// behalf, and rule 4.4.1 ties its sender to the
	// m.room.third_party_invite instead. Synapse applies the same exception.
	if len(ev.Signatures()[domainOf(ev.Sender())]) == 0 && !c.isThirdPartyInvite() {
		return rejectAs("signed-by-sender", "event is not signed by the sender's server %q", domainOf(ev.Sender()))
	}
	// Rule 1 applies to every event of type m.room.create, whatever its
	// state_key (as in Synapse): one sent into an existing room has
	// prev_events and fails 1.1, instead of passing as an ordinary state
	// event.
	if ev.Type() == TypeCreate {
		return c.checkCreate()
	}
	if err := c.checkRoom(); err != nil {
		return err
	}
	create := c.state[createKey]
	// Rule 3 (v12: 4): m.federate.
	if createMemo.Get(create).noFederate && domainOf(ev.Sender()) != domainOf(create.Sender()) {
		return c.reject("3", "room is not federated and sender %s is not on the creator's server %s",
			ev.Sender(), domainOf(create.Sender()))
	}
	if ev.Type() == TypeMember {
		return c.checkMember()
	}
	// Rule 5 (v12: 6).
	if m := c.membership(ev.Sender()); m != Join {
		return c.reject("5", "sender %s is not joined (membership %q)", ev.Sender(), m)
	}
	levels := c.levels()
	senderLevel := c.level(ev.Sender())
	// Rule 6 (v12: 7).
	if ev.Type() == TypeThirdPartyInvite {
		if inv := levels.get("invite", defaultInvite); senderLevel < inv {
			return c.reject("6.1", "sender level %d is below the invite level %d", senderLevel, inv)
		}
		return nil
	}
	// Rule 7 (v12: 8).
	if req := requiredLevel(levels, ev.Type(), ev.IsState()); req > senderLevel {
		return c.reject("7", "sending %s needs level %d, sender has %d", ev.Type(), req, senderLevel)
	}
	// Rule 8 (v12: 9).
	if sk, ok := ev.StateKey(); ok && strings.HasPrefix(sk, "@") && sk != ev.Sender() {
		return c.reject("8", "state_key %q starts with @ and is not the sender", sk)
	}
	if ev.Type() == TypePowerLevels {
		return c.checkPowerLevels(levels, senderLevel)
	}
	// Rule 10 (v12: 11): otherwise, allow. m.room.redaction events land
	// here: the redact level is applied when the redaction is, see
	// CheckRedaction.
	return nil
}

// isThirdPartyInvite reports whether ev is an m.room.member invite carrying
// content.third_party_invite.
func (c *checker) isThirdPartyInvite() bool {
	if c.ev.Type() != TypeMember {
		return false
	}
	mc := memberMemo.Get(c.ev)
	return mc.err == nil && mc.membership == Invite && mc.hasThirdPartyInvite
}

// checkRoom ties ev to the create event in state: rule 2.4 in room versions
// 10 and 11 (an m.room.create among the auth events), rule 2 in version 12
// (the room ID is the create event's ID).
func (c *checker) checkRoom() error {
	create := c.state[createKey]
	if create == nil {
		if c.v.RoomIDFromCreate {
			return rejectAs("2", "no m.room.create event in the state")
		}
		return c.reject("2.4", "no m.room.create event among the auth events")
	}
	if create.Version().ID != c.v.ID {
		rule := "2.4"
		if c.v.RoomIDFromCreate {
			rule = "2"
		}
		return rejectAs(rule, "create event is room version %s, event is %s", create.Version().ID, c.v.ID)
	}
	if c.v.RoomIDFromCreate {
		if !isRoomIDOf(c.ev.RoomID(), create.ID()) {
			return rejectAs("2", "room_id %q is not the create event's room ID %q",
				c.ev.RoomID(), event.RoomIDFromCreateEventID(create.ID()))
		}
		return nil
	}
	if create.RoomID() != c.ev.RoomID() {
		return c.reject("2.4", "create event is for room %q, not %q", create.RoomID(), c.ev.RoomID())
	}
	return nil
}

// isRoomIDOf reports whether roomID == event.RoomIDFromCreateEventID(createID)
// without building the latter.
func isRoomIDOf(roomID, createID string) bool {
	hash, ok := strings.CutPrefix(createID, "$")
	if !ok || hash == "" {
		return roomID == ""
	}
	return len(roomID) == 1+len(hash) && roomID[0] == '!' && roomID[1:] == hash
}

// membership is userID's current membership, "" when it has none.
func (c *checker) membership(userID string) string {
	if m := c.state[StateKey{TypeMember, userID}]; m != nil {
		return m.Membership()
	}
	return ""
}

// joinRule is the current join rule.
func (c *checker) joinRule() string {
	jr := c.state[joinRulesKey]
	if jr == nil {
		// NOTSPEC: the rules leave a room without m.room.join_rules
		// undefined; like Synapse and Dendrite we treat it as "invite".
		return JoinRuleInvite
	}
	return joinRuleMemo.Get(jr)
}

// IsPowerEvent reports whether ev is a power event as state resolution
// defines it: m.room.power_levels, m.room.join_rules, or an m.room.member
// leave or ban whose sender is not its target (a kick or a ban).
// Spec: rooms/fragments/v2-state-res.md "Power events".
func IsPowerEvent(ev *event.Event) bool {
	if ev == nil {
		return false
	}
	sk, ok := ev.StateKey()
	if !ok {
		return false
	}
	switch ev.Type() {
	case TypePowerLevels, TypeJoinRules:
		return sk == ""
	case TypeMember:
		m := ev.Membership()
		return (m == Leave || m == Ban) && sk != ev.Sender()
	}
	return false
}
