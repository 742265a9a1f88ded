package homeserver

// Client config: global and per-room account data. Spec: client-server-api
// "Client Config" (GET/PUT /user/{userId}/account_data/{type} and
// /user/{userId}/rooms/{roomId}/account_data/{type}). m.fully_read and
// m.push_rules are managed by their own endpoints and refused here with
// 405 M_BAD_JSON, as the spec asks.

import (
	"encoding/json"
	"errors"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

func (rs *roomsModule) accountDataRoutes() []Route {
	const u = "/_matrix/client/v3/user/{userId}"
	return []Route{
		{Method: "PUT", Pattern: u + "/account_data/{type}", Auth: AuthUser, Handle: rs.handlePutAccountData},
		{Method: "GET", Pattern: u + "/account_data/{type}", Auth: AuthUser, Handle: rs.handleGetAccountData},
		{Method: "PUT", Pattern: u + "/rooms/{roomId}/account_data/{type}", Auth: AuthUser, Handle: rs.handlePutAccountData},
		{Method: "GET", Pattern: u + "/rooms/{roomId}/account_data/{type}", Auth: AuthUser, Handle: rs.handleGetAccountData},
	}
}

func (rs *roomsModule) handlePutAccountData(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only set your own account data"))
		return
	}
	typ, roomID := c.Req.Vars["type"], c.Req.Vars["roomId"]
	if typ == fullyReadType || typ == pushRulesType {
		c.Fail(Errorf(405, ErrCodeBadJSON, "%s cannot be set through this API", typ))
		return
	}
	var obj map[string]json.RawMessage
	if err := c.DecodeJSON(&obj); err != nil {
		c.Fail(err)
		return
	}
	if roomID != "" {
		if _, err := rs.room(roomID); err != nil {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "unknown room %s", roomID))
			return
		}
	}
	body := c.Req.Body
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := rs.putAccountData(c.UserID, roomID, typ, body); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handleGetAccountData(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only read your own account data"))
		return
	}
	a, err := rs.st.GetAccountData(c.UserID, c.Req.Vars["roomId"], c.Req.Vars["type"])
	if errors.Is(err, store.ErrNotFound) {
		c.Fail(Errorf(404, ErrCodeNotFound, "no account data of type %s", c.Req.Vars["type"]))
		return
	}
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, json.RawMessage(a.Content))
}

// putAccountData stores one entry at the next stream position and wakes the
// user's syncs.
func (rs *roomsModule) putAccountData(userID, roomID, typ string, content []byte) error {
	pos := rs.pos + 1
	if err := rs.st.PutAccountData(store.AccountData{UserID: userID, RoomID: roomID, Type: typ, Content: content, Pos: pos}); err != nil {
		return err
	}
	rs.pos = pos
	rs.adLast[userID] = pos
	rs.wakeUsers(map[string]bool{userID: true})
	return nil
}

// Room tags. Spec: client-server-api "Room Tagging": the tags are the
// m.tag room account data event ({"tags": {TAG: {"order": n}}}), read and
// changed through GET /user/{userId}/rooms/{roomId}/tags and PUT/DELETE
// .../tags/{tag}.

const tagType = "m.tag"

func (rs *roomsModule) tagRoutes() []Route {
	const p = "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"
	return []Route{
		{Method: "GET", Pattern: p, Auth: AuthUser, Handle: rs.handleGetTags},
		{Method: "PUT", Pattern: p + "/{tag}", Auth: AuthUser, Handle: rs.handlePutTag},
		{Method: "DELETE", Pattern: p + "/{tag}", Auth: AuthUser, Handle: rs.handleDeleteTag},
	}
}

type tagContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

func (rs *roomsModule) tagsOf(userID, roomID string) (tagContent, error) {
	tc := tagContent{Tags: map[string]json.RawMessage{}}
	a, err := rs.st.GetAccountData(userID, roomID, tagType)
	if errors.Is(err, store.ErrNotFound) {
		return tc, nil
	}
	if err != nil {
		return tc, err
	}
	if err := json.Unmarshal(a.Content, &tc); err != nil || tc.Tags == nil {
		tc.Tags = map[string]json.RawMessage{}
	}
	return tc, nil
}

func (rs *roomsModule) handleGetTags(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only read your own tags"))
		return
	}
	tc, err := rs.tagsOf(c.UserID, c.Req.Vars["roomId"])
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, tc)
}

// maxTagBytes bounds a tag name. Spec: client-server-api "Room Tagging"
// (tag names are at most 255 bytes).
const maxTagBytes = 255

func (rs *roomsModule) handlePutTag(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only tag rooms for yourself"))
		return
	}
	roomID, tag := c.Req.Vars["roomId"], c.Req.Vars["tag"]
	if len(tag) > maxTagBytes {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "tag is longer than %d bytes", maxTagBytes))
		return
	}
	var body struct {
		Order *float64 `json:"order"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.Order != nil && (*body.Order < 0 || *body.Order > 1) {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "order must be between 0 and 1"))
		return
	}
	if _, err := rs.room(roomID); err != nil {
		c.Fail(err)
		return
	}
	tc, err := rs.tagsOf(c.UserID, roomID)
	if err != nil {
		c.Fail(err)
		return
	}
	tc.Tags[tag] = c.Req.Body
	if len(c.Req.Body) == 0 {
		tc.Tags[tag] = json.RawMessage("{}")
	}
	if err := rs.putAccountData(c.UserID, roomID, tagType, mustJSON(tc)); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}

func (rs *roomsModule) handleDeleteTag(c *Call) {
	if c.Req.Vars["userId"] != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "you may only untag rooms for yourself"))
		return
	}
	roomID, tag := c.Req.Vars["roomId"], c.Req.Vars["tag"]
	tc, err := rs.tagsOf(c.UserID, roomID)
	if err != nil {
		c.Fail(err)
		return
	}
	if _, ok := tc.Tags[tag]; !ok {
		c.Reply(200, struct{}{})
		return
	}
	delete(tc.Tags, tag)
	if err := rs.putAccountData(c.UserID, roomID, tagType, mustJSON(tc)); err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, struct{}{})
}
