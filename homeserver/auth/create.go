package auth

import (
	"encoding/json"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// checkCreate applies rule 1, the rules for m.room.create.
// Spec: rooms/v10.md, v11.md, v12.md "Authorization rules" rule 1.
func (c *checker) checkCreate() error {
	ev := c.ev
	// 1.1
	if len(ev.PrevEvents()) > 0 {
		return rejectAs("1.1", "create event has %d prev_events", len(ev.PrevEvents()))
	}
	// 1.2
	if c.v.RoomIDFromCreate {
		var top struct {
			RoomID json.RawMessage `json:"room_id"`
		}
		if err := json.Unmarshal(ev.JSON(), &top); err != nil {
			return rejectAs("1.2", "cannot read event: %v", err)
		}
		if top.RoomID != nil {
			return rejectAs("1.2", "create event has a room_id")
		}
	} else if d := domainOf(ev.RoomID()); d == "" || d != domainOf(ev.Sender()) {
		return rejectAs("1.2", "room_id domain %q does not match sender domain %q", d, domainOf(ev.Sender()))
	}
	content, err := object(ev.Content())
	if err != nil {
		return rejectAs("1.3", "content: %v", err)
	}
	// 1.3
	if raw, ok := content["room_version"]; ok {
		id, ok := str(raw)
		if !ok {
			return rejectAs("1.3", "room_version is not a string")
		}
		if _, err := event.LookupVersion(id); err != nil {
			return rejectAs("1.3", "room_version %q is not recognised", id)
		}
		if id != c.v.ID {
			// NOTSPEC: the spec's rule only asks for a recognised version;
			// checking a create event under rules other than the ones it
			// names is a caller error we refuse rather than mis-check.
			return rejectAs("1.3", "room_version %q but checked as room version %s", id, c.v.ID)
		}
	} else {
		// An absent room_version means room version 1, which this server
		// does not recognise.
		return rejectAs("1.3", "no room_version: room version 1 is not supported")
	}
	switch {
	case c.v.CreatorsHaveInfinitePower:
		// 1.4 (v12): additional_creators must be an array of valid user IDs.
		if raw, ok := content["additional_creators"]; ok {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil || list == nil {
				return rejectAs("1.4", "additional_creators is not an array")
			}
			for i, r := range list {
				u, ok := str(r)
				if !ok || !validUserID(u) {
					return rejectAs("1.4", "additional_creators[%d] is not a valid user ID", i)
				}
			}
		}
	case !c.v.CreatorFromSender:
		// 1.4 (v10): content.creator is required.
		if _, ok := content["creator"]; !ok {
			return rejectAs("1.4", "content has no creator")
		}
	}
	return nil
}
