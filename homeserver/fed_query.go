package homeserver

// Simple federation queries, server side and client side.
// Spec: server-server-api "Querying for information" (query/profile,
// query/directory), "Public Room Directory" (publicRooms), "Device
// Management" (user/devices), "End-to-End Encryption" (user/keys/query,
// user/keys/claim).

import (
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

func (f *Federation) queryRoutes() []Route {
	const v1 = "/_matrix/federation/v1"
	return []Route{
		{Method: "GET", Pattern: v1 + "/query/profile", Auth: AuthFederation, Handle: f.handleQueryProfile},
		{Method: "GET", Pattern: v1 + "/query/directory", Auth: AuthFederation, Handle: f.handleQueryDirectory},
		{Method: "GET", Pattern: v1 + "/publicRooms", Auth: AuthFederation, Handle: f.handlePublicRooms},
		{Method: "POST", Pattern: v1 + "/publicRooms", Auth: AuthFederation, Handle: f.handlePublicRooms},
		{Method: "GET", Pattern: v1 + "/user/devices/{userId}", Auth: AuthFederation, Handle: f.handleUserDevices},
		{Method: "POST", Pattern: v1 + "/user/keys/query", Auth: AuthFederation, Handle: f.handleKeysQuery},
		{Method: "POST", Pattern: v1 + "/user/keys/claim", Auth: AuthFederation, Handle: f.handleKeysClaim},
	}
}

// localUser checks that userID is an existing account of ours: 404
// M_NOT_FOUND otherwise.
func (f *Federation) localUser(userID string) error {
	if serverOf(userID) != f.n.ServerName() {
		return Errorf(404, ErrCodeNotFound, "%s is not a user of this server", userID)
	}
	if _, err := f.n.store.Account(userID); errors.Is(err, store.ErrNotFound) {
		return Errorf(404, ErrCodeNotFound, "user %s not found", userID)
	} else if err != nil {
		return err
	}
	return nil
}

// profileBody renders a profile, limited to field when it is not "".
func profileBody(p store.Profile, field string) map[string]string {
	out := map[string]string{}
	if p.DisplayName != nil && (field == "" || field == "displayname") {
		out["displayname"] = *p.DisplayName
	}
	if p.AvatarURL != nil && (field == "" || field == "avatar_url") {
		out["avatar_url"] = *p.AvatarURL
	}
	return out
}

// handleQueryProfile: GET /query/profile?user_id=…&field=….
func (f *Federation) handleQueryProfile(c *Call) {
	userID, field := c.Req.Query.Get("user_id"), c.Req.Query.Get("field")
	if userID == "" {
		c.Fail(Errorf(400, ErrCodeMissingParam, "user_id is required"))
		return
	}
	if field != "" && field != "displayname" && field != "avatar_url" {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "field must be displayname or avatar_url"))
		return
	}
	if err := f.localUser(userID); err != nil {
		c.Fail(err)
		return
	}
	p, err := f.n.store.Profile(userID)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, profileBody(p, field))
}

// handleQueryDirectory: GET /query/directory?room_alias=….
func (f *Federation) handleQueryDirectory(c *Call) {
	alias := c.Req.Query.Get("room_alias")
	if alias == "" {
		c.Fail(Errorf(400, ErrCodeMissingParam, "room_alias is required"))
		return
	}
	roomID, _, err := f.n.store.Alias(alias)
	if errors.Is(err, store.ErrNotFound) {
		c.Fail(Errorf(404, ErrCodeNotFound, "room alias %s not found", alias))
		return
	} else if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"room_id": roomID, "servers": f.roomServers(roomID)})
}

// roomServers lists the servers with joined members in a room, ours first.
func (f *Federation) roomServers(roomID string) []string {
	out := []string{f.n.ServerName()}
	if rs := roomsOf(f.n); rs != nil {
		seen := map[string]bool{f.n.ServerName(): true}
		for _, u := range rs.joinedMembers(roomID) {
			if s := serverOf(u); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// handlePublicRooms: GET/POST /publicRooms, answered by the client API's
// directory handler, whose request and response shapes are the same.
func (f *Federation) handlePublicRooms(c *Call) {
	rs := roomsOf(f.n)
	if rs == nil {
		c.Reply(200, map[string]any{"chunk": []any{}, "total_room_count_estimate": 0})
		return
	}
	rs.handlePublicRooms(c)
}

// installClientIntercepts answers client requests about other servers'
// users and aliases over federation, in front of the local-only handlers.
func (f *Federation) installClientIntercepts() {
	const p = "/_matrix/client/v3/profile/{userId}"
	for _, field := range []string{"", "displayname", "avatar_url"} {
		pattern := p
		if field != "" {
			pattern += "/" + field
		}
		field := field
		f.n.Intercept("GET", pattern, func(c *Call) bool { return f.remoteProfile(c, field) })
	}
	f.n.Intercept("GET", "/_matrix/client/v3/directory/room/{roomAlias}", f.remoteAlias)
}

// remoteFailure turns a failed query to another server into the client's
// error: the remote's 404 stays a 404; anything else is 502.
func remoteFailure(server string, err error) *Error {
	var re *RemoteError
	if errors.As(err, &re) && re.Status == 404 {
		code := re.ErrCode
		if code == "" {
			code = ErrCodeNotFound
		}
		return Errorf(404, code, "%s: %s", server, re.Message)
	}
	return Errorf(502, ErrCodeUnknown, "could not query %s: %v", server, err)
}

// remoteProfile serves GET /profile/{userId}[/field] for a user of
// another server with GET /_matrix/federation/v1/query/profile.
func (f *Federation) remoteProfile(c *Call, field string) bool {
	userID := c.Req.Vars["userId"]
	server := serverOf(userID)
	if server == "" || server == f.n.ServerName() {
		return false
	}
	if ValidateServerName(server) != nil {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "bad user ID %q", userID))
		return true
	}
	q := url.Values{"user_id": {userID}}
	if field != "" {
		q.Set("field", field)
	}
	var prof struct {
		DisplayName *string `json:"displayname"`
		AvatarURL   *string `json:"avatar_url"`
	}
	f.DoJSON(server, OutboundRequest{Method: "GET", URI: "/_matrix/federation/v1/query/profile?" + q.Encode()}, &prof, func(err error) {
		if err != nil {
			c.Fail(remoteFailure(server, err))
			return
		}
		out := profileBody(store.Profile{DisplayName: prof.DisplayName, AvatarURL: prof.AvatarURL}, field)
		if field != "" && len(out) == 0 {
			c.Fail(Errorf(404, ErrCodeNotFound, "%s has no %s", userID, field))
			return
		}
		c.Reply(200, out)
	})
	return true
}

// remoteAlias serves GET /directory/room/{roomAlias} for another server's
// alias with GET /_matrix/federation/v1/query/directory.
func (f *Federation) remoteAlias(c *Call) bool {
	alias := c.Req.Vars["roomAlias"]
	server := serverOf(alias)
	if server == "" || server == f.n.ServerName() || checkAlias(alias) != nil {
		return false
	}
	f.queryAlias(alias, func(roomID string, servers []string, err error) {
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, map[string]any{"room_id": roomID, "servers": servers})
	})
	return true
}

// queryAlias asks the alias's server which room it names and which
// servers are in it (GET /_matrix/federation/v1/query/directory); err is
// the client's error when it cannot say.
func (f *Federation) queryAlias(alias string, done func(roomID string, servers []string, err error)) {
	server := serverOf(alias)
	var out struct {
		RoomID  string   `json:"room_id"`
		Servers []string `json:"servers"`
	}
	f.DoJSON(server, OutboundRequest{Method: "GET", URI: "/_matrix/federation/v1/query/directory?" + url.Values{"room_alias": {alias}}.Encode()}, &out, func(err error) {
		if err != nil {
			done("", nil, remoteFailure(server, err))
			return
		}
		if !strings.HasPrefix(out.RoomID, "!") {
			done("", nil, Errorf(502, ErrCodeUnknown, "%s answered without a room_id", server))
			return
		}
		servers := slices.DeleteFunc(out.Servers, func(s string) bool { return ValidateServerName(s) != nil })
		if !slices.Contains(servers, server) {
			servers = append(servers, server)
		}
		done(out.RoomID, servers, nil)
	})
}
