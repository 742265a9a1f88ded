package homeserver

// POST /_matrix/client/v3/rooms/{roomId}/upgrade {"new_version",
// "additional_creators"} → {"replacement_room"}. Spec: client-server-api
// "Room Upgrades" (server behaviour):
//
//  1. the user must be allowed to send m.room.tombstone in the old room
//     (403 M_FORBIDDEN); an unknown version is 400
//     M_UNSUPPORTED_ROOM_VERSION;
//  2. a new room is made by createRoom, its m.room.create carrying
//     predecessor (room_id, and the old room's last event as event_id
//     before version 12: the new room's ID there is the create event's
//     hash, so it cannot name the tombstone) and the old create's type;
//     additional_creators only from the request (rooms/v12.md);
//  3. the transferable state is copied (server ACL, encryption, name,
//     avatar, topic, guest access, history visibility, join rules,
//     canonical alias, power levels). When the new room's version has no
//     infinite creators, the upgrader's level in the copied power levels
//     is raised for as long as it takes to send that state, and the
//     copied levels are sent again at the end with the level restored;
//     in version 12 the upgrader and the additional creators are taken
//     out of users (rule 10.4 rejects them there);
//  4. local aliases move to the new room (and a published room's
//     directory entry with them);
//  5. the old room gets m.room.tombstone, its canonical alias cleared
//     before it;
//  6. the old room's events_default and invite are raised to
//     max(50, users_default+1) when the user may change power levels.
//
// Steps 2–3 are one batch (createRoom), 4–6 a second; the tombstone is
// checked against the old room before anything is written.
// NOTSPEC: the user's tags and push rules are not copied to the new room
// when members join it.

import (
	"encoding/json"
	"math"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

const (
	typeTombstone      = "m.room.tombstone"
	typeCanonicalAlias = "m.room.canonical_alias"
)

// upgradeCopied are the state events (empty state key) copied into the
// replacement room, besides m.room.power_levels. Spec: client-server-api
// "Room Upgrades" step 3 (the recommended list) plus the canonical alias,
// whose aliases move with the room.
var upgradeCopied = []string{
	"m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.guest_access", typeHistoryVisibility, auth.TypeJoinRules, typeCanonicalAlias,
}

// roomUpgradeRoutes is the route group of room upgrades and of jump to
// date (timestamp.go).
func roomUpgradeRoutes(n *Node) ([]Route, error) {
	rs := roomsOf(n)
	if rs == nil {
		return nil, nil
	}
	return append(rs.upgradeRoutes(), rs.timestampRoutes()...), nil
}

func (rs *roomsModule) upgradeRoutes() []Route {
	return []Route{{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/upgrade", Auth: AuthUser, Handle: rs.handleUpgrade}}
}

func (rs *roomsModule) handleUpgrade(c *Call) {
	var body struct {
		NewVersion         *string  `json:"new_version"`
		AdditionalCreators []string `json:"additional_creators"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.NewVersion == nil {
		c.Fail(Errorf(400, ErrCodeMissingParam, "new_version is required"))
		return
	}
	v, err := event.LookupVersion(*body.NewVersion)
	if err != nil {
		c.Fail(Errorf(400, ErrCodeUnsupportedRoomVersion, "room version %q is not supported", *body.NewVersion))
		return
	}
	for _, u := range body.AdditionalCreators {
		if !validUserID(u) {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "invalid user ID %q in additional_creators", u))
			return
		}
	}
	newID, err := rs.upgradeRoom(c.Req.Vars["roomId"], c.UserID, v, body.AdditionalCreators)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]string{"replacement_room": newID})
}

// checkAllowed builds spec's event and tests it against rm's current
// state without storing it: nil when the sender may send it.
func (rs *roomsModule) checkAllowed(rm *roomCache, spec eventSpec) error {
	ev, err := rs.buildEvent(rm, spec)
	if err != nil {
		return err
	}
	return forbidden(auth.Check(ev, rm.state))
}

// upgradeRoom replaces roomID by a new room of version v and returns the
// new room's ID (see the file comment for the steps).
func (rs *roomsModule) upgradeRoom(roomID, userID string, v *event.RoomVersion, extraCreators []string) (string, error) {
	rm, err := rs.room(roomID)
	if err != nil {
		return "", err
	}
	if rs.membership(roomID, userID) != auth.Join {
		return "", Errorf(403, ErrCodeForbidden, "you are not joined to %s", roomID)
	}
	tombstone := func(replacement string) eventSpec {
		return eventSpec{Type: typeTombstone, StateKey: strPtr(""), Sender: userID, Content: mustJSON(map[string]string{
			"body": "This room has been replaced", "replacement_room": replacement})}
	}
	if err := rs.checkAllowed(rm, tombstone(roomID)); err != nil {
		if isForbidden(err) {
			return "", Errorf(403, ErrCodeForbidden, "you may not upgrade %s: %v", roomID, err)
		}
		return "", err
	}

	req, err := upgradeRequest(rm, userID, v, extraCreators)
	if err != nil {
		return "", err
	}
	if row, err := rs.st.Room(roomID); err == nil && row.Published {
		req.Visibility = "public"
	} else if err != nil {
		return "", err
	}
	newID, _, err := rs.createRoom(userID, req)
	if err != nil {
		return "", err
	}

	// Steps 4–6 in the old room (loaded again: creating the new room may
	// have evicted it from the cache).
	if rm, err = rs.room(roomID); err != nil {
		return "", err
	}
	err = rs.write(func(b *roomBatch) error {
		if _, err := b.t.MoveAliases(roomID, newID); err != nil {
			return err
		}
		if ca := rm.state[auth.StateKey{Type: typeCanonicalAlias}]; ca != nil && string(ca.Content()) != "{}" {
			// Allowed or not, the tombstone follows: a refusal is left out.
			if _, err := b.append(rm, eventSpec{Type: typeCanonicalAlias, StateKey: strPtr(""), Sender: userID,
				Content: json.RawMessage("{}")}); err != nil && !isForbidden(err) {
				return err
			}
		}
		if _, err := b.append(rm, tombstone(newID)); err != nil {
			return err
		}
		if pl := restrictedLevels(rm, userID); pl != nil {
			if _, err := b.append(rm, eventSpec{Type: auth.TypePowerLevels, StateKey: strPtr(""), Sender: userID,
				Content: pl}); err != nil && !isForbidden(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if req.Visibility == "public" {
		if err := rs.st.SetPublished(roomID, false); err != nil {
			return "", err
		}
	}
	rs.n.log.Info("room upgraded", "room", roomID, "replacement", newID, "version", v.ID, "user", userID)
	return newID, nil
}

// upgradeRequest is the createRoom request of the replacement of rm.
func upgradeRequest(rm *roomCache, userID string, v *event.RoomVersion, extraCreators []string) (createRoomRequest, error) {
	req := createRoomRequest{RoomVersion: v.ID, Preset: presetPrivate, CreationContent: map[string]json.RawMessage{}}

	pred := map[string]string{"room_id": rm.id}
	if !v.RoomIDFromCreate && len(rm.extremities) > 0 {
		pred["event_id"] = rm.extremities[0]
	}
	req.CreationContent["predecessor"] = mustJSON(pred)
	if create := rm.state[auth.StateKey{Type: auth.TypeCreate}]; create != nil {
		var cc map[string]json.RawMessage
		if json.Unmarshal(create.Content(), &cc) == nil && cc["type"] != nil {
			req.CreationContent["type"] = cc["type"]
		}
	}
	if v.CreatorsHaveInfinitePower && len(extraCreators) > 0 {
		req.CreationContent["additional_creators"] = mustJSON(extraCreators)
	}

	if jr := rm.state[auth.StateKey{Type: auth.TypeJoinRules}]; jr != nil {
		var c struct {
			R string `json:"join_rule"`
		}
		if json.Unmarshal(jr.Content(), &c) == nil && c.R == auth.JoinRulePublic {
			req.Preset = presetPublic
		}
	}
	for _, typ := range upgradeCopied {
		e := rm.state[auth.StateKey{Type: typ}]
		if e == nil || string(e.Content()) == "{}" {
			continue
		}
		req.InitialState = append(req.InitialState, initialStateEvent{Type: typ, Content: e.Content()})
	}

	ple := rm.state[auth.StateKey{Type: auth.TypePowerLevels}]
	if ple == nil {
		return req, nil
	}
	var pl map[string]json.RawMessage
	if err := json.Unmarshal(ple.Content(), &pl); err != nil {
		return req, Errorf(400, ErrCodeInvalidRoomState, "the room's power levels do not parse: %v", err)
	}
	users := map[string]int64{}
	if raw := pl["users"]; raw != nil {
		if err := json.Unmarshal(raw, &users); err != nil {
			return req, Errorf(400, ErrCodeInvalidRoomState, "the room's power levels do not parse: %v", err)
		}
	}
	if v.CreatorsHaveInfinitePower {
		// Rule 10.4: creators may not appear in users.
		delete(users, userID)
		for _, u := range extraCreators {
			delete(users, u)
		}
		pl["users"] = mustJSON(users)
		req.PowerLevelContentOverride = pl
		return req, nil
	}
	// The level the upgrader needs to send the copied state and the power
	// levels again: createRoom's defaults stand in for a missing events map.
	need := levelIn(pl, auth.TypePowerLevels)
	for _, is := range req.InitialState {
		need = max(need, levelIn(pl, is.Type))
	}
	if pl["events"] == nil {
		need = max(need, 100)
	}
	keep, ok := users[userID]
	if !ok {
		keep = intIn(pl, "users_default", 0)
	}
	if auth.PowerLevel(rm.state, userID) == math.MaxInt64 {
		// A creator of a version 12 room, whose power was infinite, keeps
		// the highest level of the room.
		keep = max(keep, need, 100)
		for _, n := range users {
			keep = max(keep, n)
		}
	}
	users[userID] = max(keep, need)
	pl["users"] = mustJSON(users)
	req.PowerLevelContentOverride = pl
	if keep < need {
		restored := make(map[string]json.RawMessage, len(pl))
		for k, val := range pl {
			restored[k] = val
		}
		users[userID] = keep
		restored["users"] = mustJSON(users)
		req.tail = []eventSpec{{Type: auth.TypePowerLevels, StateKey: strPtr(""), Content: mustJSON(restored)}}
	}
	return req, nil
}

// levelIn is the level power levels content pl requires for a state event
// of type typ: events[typ], else state_default, else 50. Spec:
// client-server-api m.room.power_levels.
func levelIn(pl map[string]json.RawMessage, typ string) int64 {
	var events map[string]int64
	if raw := pl["events"]; raw != nil && json.Unmarshal(raw, &events) == nil {
		if n, ok := events[typ]; ok {
			return n
		}
	}
	return intIn(pl, "state_default", 50)
}

// intIn reads an integer field of power levels content, def when absent.
func intIn(pl map[string]json.RawMessage, key string, def int64) int64 {
	var n int64
	if raw := pl[key]; raw != nil && json.Unmarshal(raw, &n) == nil {
		return n
	}
	return def
}

// restrictedLevels is the old room's power levels with events_default and
// invite raised to max(50, users_default+1), or nil when they already are.
// A room without power levels gets them, keeping userID's level (the
// creator's 100 would otherwise fall to users_default).
// Spec: client-server-api "Room Upgrades" step 6.
func restrictedLevels(rm *roomCache, userID string) json.RawMessage {
	pl := map[string]json.RawMessage{}
	if e := rm.state[auth.StateKey{Type: auth.TypePowerLevels}]; e != nil {
		if json.Unmarshal(e.Content(), &pl) != nil {
			return nil
		}
	} else if n := auth.PowerLevel(rm.state, userID); n != math.MaxInt64 {
		pl["users"] = mustJSON(map[string]int64{userID: n})
	}
	level := max(50, intIn(pl, "users_default", 0)+1)
	changed := false
	for _, k := range []string{"events_default", "invite"} {
		if intIn(pl, k, 0) < level {
			pl[k] = mustJSON(level)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return mustJSON(pl)
}
