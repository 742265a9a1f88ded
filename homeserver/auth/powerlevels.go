package auth

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// Default levels, used when m.room.power_levels omits a key or the room has
// no m.room.power_levels event at all.
// Spec: client-server-api m.room.power_levels (event schema
// data/event-schemas/schema/m.room.power_levels.yaml).
const (
	defaultBan           = 50
	defaultKick          = 50
	defaultRedact        = 50
	defaultInvite        = 0 // NOTSPEC: server-server-api "Definitions" says 50; the event schema, Synapse and older Dendrite use 0. The schema wins.
	defaultEventsDefault = 0
	defaultStateDefault  = 50
	defaultUsersDefault  = 0
	// creatorLevelNoPL is the creator's level when the room has no
	// m.room.power_levels event (room versions 10 and 11).
	creatorLevelNoPL = 100
)

// namedLevels are the top-level integer keys of m.room.power_levels that
// rule 9.5 (v12: 10.6) compares one by one.
var namedLevels = []string{"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"}

// levels is the decoded content of an m.room.power_levels event. The named
// values are kept only when present, because the power-levels rule checks
// additions and removals, not defaults.
type levels struct {
	named         map[string]int64
	events        map[string]int64
	notifications map[string]int64
	users         map[string]int64
	hasUsers      bool
}

// parseLevels decodes power-levels content. With strict set it enforces rules
// 9.1–9.3 (v12: 10.1–10.3) and returns the rule number that failed; without
// it, invalid values are skipped (the event was accepted already, so this only
// guards against a caller passing unchecked state).
func parseLevels(content json.RawMessage, strict bool) (*levels, string, error) {
	m, err := object(content)
	if err != nil {
		return nil, "9.1", fmt.Errorf("content: %w", err)
	}
	l := &levels{named: map[string]int64{}}
	for _, k := range namedLevels {
		raw, ok := m[k]
		if !ok {
			continue
		}
		n, ok := integer(raw)
		if !ok {
			if strict {
				return nil, "9.1", fmt.Errorf("%s is not an integer", k)
			}
			continue
		}
		l.named[k] = n
	}
	for _, k := range []string{"events", "notifications"} {
		raw, ok := m[k]
		if !ok {
			continue
		}
		mm, err := intMap(raw)
		if err == nil && !isObject(raw) {
			// object() reads null as {}; rule 9.2 wants an object.
			err = fmt.Errorf("not a JSON object")
		}
		if err != nil {
			if strict {
				return nil, "9.2", fmt.Errorf("%s: %w", k, err)
			}
			mm = lenientIntMap(raw)
		}
		if k == "events" {
			l.events = mm
		} else {
			l.notifications = mm
		}
	}
	if raw, ok := m["users"]; ok {
		l.hasUsers = true
		users, err := intMap(raw)
		if err == nil && !isObject(raw) {
			err = fmt.Errorf("not a JSON object") // rule 9.3; null is not one
		}
		if err == nil && strict {
			for u := range users {
				if !validUserID(u) {
					err = fmt.Errorf("key %q is not a valid user ID", u)
					break
				}
			}
		}
		if err != nil {
			if strict {
				return nil, "9.3", fmt.Errorf("users: %w", err)
			}
			users = lenientIntMap(raw)
		}
		l.users = users
	}
	return l, "", nil
}

func lenientIntMap(raw json.RawMessage) map[string]int64 {
	out := map[string]int64{}
	m, err := object(raw)
	if err != nil {
		return out
	}
	for k, v := range m {
		if n, ok := integer(v); ok {
			out[k] = n
		}
	}
	return out
}

func (l *levels) get(name string, def int64) int64 {
	if l == nil {
		return def
	}
	if n, ok := l.named[name]; ok {
		return n
	}
	return def
}

// roomVersion returns the version the events in state were parsed under,
// preferring the create event.
func (s State) roomVersion() *event.RoomVersion {
	if c := s[createKey]; c != nil {
		return c.Version()
	}
	for _, e := range s {
		if e != nil {
			return e.Version()
		}
	}
	return nil
}

// currentLevels decodes the m.room.power_levels event of state, or returns
// nil when there is none.
func (s State) currentLevels() *levels {
	pl := s[powerLevelsKey]
	if pl == nil {
		return nil
	}
	return levelsMemo.Get(pl)
}

// creators returns the room creators: in room version 12 the create event's
// sender plus content.additional_creators; before that the single creator
// (v10: content.creator, v11: the sender). Spec: rooms/v12.md "Authorization
// rules" (room creators), rooms/v11.md "Remove the creator property".
// The slice is shared: callers must not modify it.
func creators(create *event.Event) []string {
	if create == nil {
		return nil
	}
	return createMemo.Get(create).creators
}

// parseCreators decodes creators from the create event.
func parseCreators(create *event.Event) []string {
	v := create.Version()
	if !v.CreatorFromSender {
		m, err := object(create.Content())
		if err != nil {
			return nil
		}
		if c, ok := str(m["creator"]); ok {
			return []string{c}
		}
		return nil
	}
	out := []string{create.Sender()}
	if v.CreatorsHaveInfinitePower {
		m, err := object(create.Content())
		if err == nil {
			var extra []string
			if raw, ok := m["additional_creators"]; ok && json.Unmarshal(raw, &extra) == nil {
				out = append(out, extra...)
			}
		}
	}
	return out
}

// isCreator reports whether userID is one of the room creators with
// infinite power (room version 12 only).
func (s State) isInfiniteCreator(userID string) bool {
	c := s[createKey]
	if c == nil || !c.Version().CreatorsHaveInfinitePower {
		return false
	}
	return slices.Contains(creators(c), userID)
}

// PowerLevel returns userID's power level in state: its entry in the
// m.room.power_levels users map, else users_default. When the room has no
// m.room.power_levels event the creator has 100 and everyone else 0. In room
// version 12 the room creators have math.MaxInt64 regardless of power levels,
// standing in for the spec's "infinitely high" level.
// Spec: client-server-api m.room.power_levels; rooms/v12.md "Authorization
// rules".
func PowerLevel(state State, userID string) int64 {
	return state.powerLevel(state.currentLevels(), userID)
}

// powerLevel is PowerLevel with the state's power levels already decoded.
func (state State) powerLevel(l *levels, userID string) int64 {
	if state.isInfiniteCreator(userID) {
		return math.MaxInt64
	}
	if l == nil {
		v := state.roomVersion()
		if v != nil && !v.CreatorsHaveInfinitePower && slices.Contains(creators(state[createKey]), userID) {
			return creatorLevelNoPL
		}
		return defaultUsersDefault
	}
	if n, ok := l.users[userID]; ok {
		return n
	}
	return l.get("users_default", defaultUsersDefault)
}

// requiredLevel is the event type's required power level: events[type], else
// state_default for state events or events_default for the rest.
// Spec: server-server-api "Definitions" (Required Power Level).
//
// NOTSPEC: the m.room.power_levels schema says state_default is 0 when the
// room has no m.room.power_levels event at all; Synapse (get_send_level)
// and Dendrite (gomatrixserverlib) use 50 in that case too, and so do we,
// since a room whose servers disagree here forks. It only matters between
// the create event and the first power levels event.
func requiredLevel(l *levels, evType string, isState bool) int64 {
	if l != nil {
		if n, ok := l.events[evType]; ok {
			return n
		}
	}
	if isState {
		return l.get("state_default", defaultStateDefault)
	}
	return l.get("events_default", defaultEventsDefault)
}

// checkPowerLevels is rule 9 (v12: 10), the rules for m.room.power_levels.
// current is the room's m.room.power_levels before ev (nil if none) and
// senderLevel the sender's level under it. A key absent from the old or the
// new content is not compared: adding a key checks only its new value,
// removing one only its old value.
// Spec: rooms/v10.md … v12.md "Authorization rules" rule 9 (v12: 10).
func (c *checker) checkPowerLevels(current *levels, senderLevel int64) error {
	strict := strictLevelsMemo.Get(c.ev)
	next, rule, err := strict.levels, strict.rule, strict.err
	if err != nil {
		return c.reject(rule, "%v", err)
	}
	// 10.4 (v12 only)
	if c.v.CreatorsHaveInfinitePower {
		for _, u := range creators(c.state[createKey]) {
			if _, ok := next.users[u]; ok {
				return rejectAs("10.4", "users contains room creator %s", u)
			}
		}
	}
	// 9.4
	if current == nil {
		return nil
	}
	// 9.5
	for _, k := range namedLevels {
		old, hadOld := current.named[k]
		nu, hasNew := next.named[k]
		if hadOld == hasNew && old == nu {
			continue
		}
		if hadOld && old > senderLevel {
			return c.reject("9.5.1", "changing %s from %d needs level %d, sender has %d", k, old, old, senderLevel)
		}
		if hasNew && nu > senderLevel {
			return c.reject("9.5.2", "setting %s to %d needs level %d, sender has %d", k, nu, nu, senderLevel)
		}
	}
	// 9.6 and 9.7
	for _, field := range []struct {
		name     string
		old, new map[string]int64
	}{
		{"events", current.events, next.events},
		{"notifications", current.notifications, next.notifications},
	} {
		for _, k := range unionKeys(field.old, field.new) {
			old, hadOld := field.old[k]
			nu, hasNew := field.new[k]
			if hadOld == hasNew && old == nu {
				continue
			}
			if hadOld && old > senderLevel {
				return c.reject("9.6.1", "changing %s[%q] from %d needs level %d, sender has %d", field.name, k, old, old, senderLevel)
			}
			if hasNew && nu > senderLevel {
				return c.reject("9.7.1", "setting %s[%q] to %d needs level %d, sender has %d", field.name, k, nu, nu, senderLevel)
			}
		}
	}
	// 9.8 and 9.9
	for _, u := range unionKeys(current.users, next.users) {
		old, hadOld := current.users[u]
		nu, hasNew := next.users[u]
		if hadOld == hasNew && old == nu {
			continue
		}
		if hadOld && u != c.ev.Sender() && old >= senderLevel {
			return c.reject("9.8.1", "changing the level of %s (%d) needs more than level %d", u, old, senderLevel)
		}
		if hasNew && nu > senderLevel {
			return c.reject("9.9.1", "giving %s level %d needs level %d, sender has %d", u, nu, nu, senderLevel)
		}
	}
	// 9.10
	return nil
}

func unionKeys(a, b map[string]int64) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
