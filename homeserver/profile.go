package homeserver

// Profiles. Spec: client-server-api "Profiles" (GET /profile/{userId},
// GET/PUT /profile/{userId}/displayname and /avatar_url) and "Events on
// change of profile information": a change is propagated as a new
// m.room.member join event in every room the user has joined.

import (
	"encoding/json"
	"errors"
	"sort"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

func (rs *roomsModule) profileRoutes() []Route {
	const p = "/_matrix/client/v3/profile/{userId}"
	return []Route{
		{Method: "GET", Pattern: p, Auth: AuthOptional, Handle: rs.handleGetProfile("")},
		{Method: "GET", Pattern: p + "/displayname", Auth: AuthOptional, Handle: rs.handleGetProfile("displayname")},
		{Method: "GET", Pattern: p + "/avatar_url", Auth: AuthOptional, Handle: rs.handleGetProfile("avatar_url")},
		{Method: "PUT", Pattern: p + "/displayname", Auth: AuthUser, Handle: rs.handlePutProfile("displayname")},
		{Method: "PUT", Pattern: p + "/avatar_url", Auth: AuthUser, Handle: rs.handlePutProfile("avatar_url")},
	}
}

// profile returns a local user's profile; 404 M_NOT_FOUND for a user this
// server does not have.
func (rs *roomsModule) profile(userID string) (store.Profile, error) {
	if _, err := rs.st.Account(userID); errors.Is(err, store.ErrNotFound) {
		return store.Profile{}, Errorf(404, ErrCodeNotFound, "profile of %s not found", userID)
	} else if err != nil {
		return store.Profile{}, err
	}
	return rs.st.Profile(userID)
}

func (rs *roomsModule) handleGetProfile(field string) func(c *Call) {
	return func(c *Call) {
		p, err := rs.profile(c.Req.Vars["userId"])
		if err != nil {
			c.Fail(err)
			return
		}
		out := map[string]string{}
		if p.DisplayName != nil && (field == "" || field == "displayname") {
			out["displayname"] = *p.DisplayName
		}
		if p.AvatarURL != nil && (field == "" || field == "avatar_url") {
			out["avatar_url"] = *p.AvatarURL
		}
		if field != "" && len(out) == 0 {
			c.Fail(Errorf(404, ErrCodeNotFound, "%s has no %s", c.Req.Vars["userId"], field))
			return
		}
		c.Reply(200, out)
	}
}

// maxProfileField bounds a display name or avatar URL, in bytes.
const maxProfileField = 256

func (rs *roomsModule) handlePutProfile(field string) func(c *Call) {
	return func(c *Call) {
		userID := c.Req.Vars["userId"]
		if userID != c.UserID && !c.Admin {
			c.Fail(Errorf(403, ErrCodeForbidden, "you may only change your own profile"))
			return
		}
		var body map[string]json.RawMessage
		if err := c.DecodeJSON(&body); err != nil {
			c.Fail(err)
			return
		}
		var val *string
		if raw, ok := body[field]; ok && string(raw) != "null" {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				c.Fail(Errorf(400, ErrCodeBadJSON, "%s must be a string", field))
				return
			}
			if len(s) > maxProfileField {
				c.Fail(Errorf(400, ErrCodeTooLarge, "%s is longer than %d bytes", field, maxProfileField))
				return
			}
			val = &s
		}
		p, err := rs.profile(userID)
		if err != nil {
			c.Fail(err)
			return
		}
		if field == "displayname" {
			p.DisplayName = val
		} else {
			p.AvatarURL = val
		}
		if err := rs.st.SetProfile(userID, p); err != nil {
			c.Fail(err)
			return
		}
		if err := rs.propagateProfile(userID, p); err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, struct{}{})
	}
}

// propagateProfile sends a fresh join event carrying the profile into
// every room the user has joined.
func (rs *roomsModule) propagateProfile(userID string, p store.Profile) error {
	var rooms []string
	for roomID := range rs.userRooms[userID] {
		if rs.membership(roomID, userID) == auth.Join {
			rooms = append(rooms, roomID)
		}
	}
	sort.Strings(rooms)
	for _, roomID := range rooms {
		_, err := rs.sendEvent(roomID, eventSpec{Type: auth.TypeMember, StateKey: strPtr(userID), Sender: userID,
			Content: memberContent(auth.Join, p, "", false)})
		if err != nil && !isForbidden(err) {
			return err
		}
		if err != nil {
			rs.n.log.Warn("profile change not propagated", "room", roomID, "user", userID, "err", err)
		}
	}
	return nil
}
