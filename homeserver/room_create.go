package homeserver

// POST /_matrix/client/v3/createRoom. Spec: client-server-api "Creation"
// (the order of the initial events, presets, power_level_content_override,
// room versions 1–11 vs 12 for the creator's power).

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Error codes of the room endpoints. Spec: client-server-api "Other error
// codes".
const (
	ErrCodeRoomInUse               = "M_ROOM_IN_USE"
	ErrCodeInvalidRoomState        = "M_INVALID_ROOM_STATE"
	ErrCodeUnsupportedRoomVersion  = "M_UNSUPPORTED_ROOM_VERSION"
	ErrCodeBadAlias                = "M_BAD_ALIAS"
	ErrCodeGuestAccessForbidden    = "M_GUEST_ACCESS_FORBIDDEN"
	ErrCodeCannotLeaveServerNotice = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
)

// Presets of createRoom.
const (
	presetPrivate        = "private_chat"
	presetTrustedPrivate = "trusted_private_chat"
	presetPublic         = "public_chat"
)

type createRoomRequest struct {
	Visibility                string                     `json:"visibility"`
	RoomAliasName             string                     `json:"room_alias_name"`
	Name                      *string                    `json:"name"`
	Topic                     *string                    `json:"topic"`
	Invite                    []string                   `json:"invite"`
	RoomVersion               string                     `json:"room_version"`
	CreationContent           map[string]json.RawMessage `json:"creation_content"`
	InitialState              []initialStateEvent        `json:"initial_state"`
	Preset                    string                     `json:"preset"`
	IsDirect                  bool                       `json:"is_direct"`
	PowerLevelContentOverride map[string]json.RawMessage `json:"power_level_content_override"`

	// tail: events sent after all the others (a room upgrade restores the
	// copied power levels with it, room_upgrade.go). Not part of the API.
	tail []eventSpec
}

type initialStateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

func (rs *roomsModule) createRoutes() []Route {
	return []Route{{Method: "POST", Pattern: "/_matrix/client/v3/createRoom", Auth: AuthUser, Handle: rs.handleCreateRoom}}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("homeserver: marshal of a fixed shape failed: " + err.Error())
	}
	return b
}

func (rs *roomsModule) handleCreateRoom(c *Call) {
	var req createRoomRequest
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	roomID, remote, err := rs.createRoom(c.UserID, req)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]string{"room_id": roomID})
	rs.inviteEach(roomID, c.UserID, remote, req.IsDirect, func() {})
}

// inviteEach sends the invites of createRoom that need federation, one
// after the other, through the same path as POST /invite, then calls done.
// They go after createRoom has answered: the room exists, and on a slow
// link the invitees' servers may take longer to sign the invites than a
// client waits for an answer (it would retry and make another room). An
// invite a remote server refuses or never answers is logged; the inviter
// sees each invite in the room's state once it is made. NOTSPEC: the spec
// does not say whether the answer waits for the invites; Synapse waits.
func (rs *roomsModule) inviteEach(roomID, sender string, users []string, isDirect bool, done func()) {
	if len(users) == 0 {
		done()
		return
	}
	u := users[0]
	rs.invite(roomID, sender, u, "", isDirect, func(err error) {
		if err != nil {
			rs.n.log.Warn("createRoom invite failed", "room", roomID, "user", u, "err", err)
		}
		rs.inviteEach(roomID, sender, users[1:], isDirect, done)
	})
}

// createRoom creates a room as creator and returns its ID. Invitees on
// this server are invited in the same batch; those on other servers (when
// federation is on) are returned, for the caller to invite over federation
// once the room exists.
func (rs *roomsModule) createRoom(creator string, req createRoomRequest) (roomID string, remote []string, err error) {
	verID := req.RoomVersion
	if verID == "" {
		verID = event.DefaultRoomVersion
	}
	v, err := event.LookupVersion(verID)
	if err != nil {
		return "", nil, Errorf(400, ErrCodeUnsupportedRoomVersion, "room version %q is not supported", verID)
	}
	preset := req.Preset
	switch preset {
	case "":
		preset = presetPrivate
		if req.Visibility == "public" {
			preset = presetPublic
		}
	case presetPrivate, presetTrustedPrivate, presetPublic:
	default:
		return "", nil, Errorf(400, ErrCodeBadJSON, "unknown preset %q", req.Preset)
	}
	if req.Visibility != "" && req.Visibility != "public" && req.Visibility != "private" {
		return "", nil, Errorf(400, ErrCodeBadJSON, "visibility must be public or private")
	}
	for _, u := range req.Invite {
		if !validUserID(u) {
			return "", nil, Errorf(400, ErrCodeInvalidParam, "invalid user ID %q in invite", u)
		}
	}
	alias := ""
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ": \t\n#") {
			return "", nil, Errorf(400, ErrCodeInvalidParam, "room_alias_name must be a bare local part")
		}
		alias = "#" + req.RoomAliasName + ":" + rs.n.ServerName()
		if _, _, err := rs.st.Alias(alias); err == nil {
			return "", nil, Errorf(400, ErrCodeRoomInUse, "room alias %s is already in use", alias)
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", nil, err
		}
	}

	// 1. m.room.create.
	createContent := map[string]json.RawMessage{}
	for k, val := range req.CreationContent {
		createContent[k] = val
	}
	createContent["room_version"] = mustJSON(v.ID)
	if v.CreatorFromSender {
		delete(createContent, "creator")
	} else {
		createContent["creator"] = mustJSON(creator)
	}
	if v.CreatorsHaveInfinitePower && preset == presetTrustedPrivate && len(req.Invite) > 0 {
		var extra []string
		if raw, ok := createContent["additional_creators"]; ok {
			if err := json.Unmarshal(raw, &extra); err != nil {
				return "", nil, Errorf(400, ErrCodeBadJSON, "creation_content.additional_creators must be a list of user IDs")
			}
		}
		for _, u := range req.Invite {
			if !containsStr(extra, u) {
				extra = append(extra, u)
			}
		}
		createContent["additional_creators"] = mustJSON(extra)
	}

	// 3. m.room.power_levels.
	tombstone := 100
	if v.CreatorsHaveInfinitePower {
		tombstone = 150
	}
	users := map[string]int{}
	if !v.CreatorsHaveInfinitePower {
		users[creator] = 100
		if preset == presetTrustedPrivate {
			for _, u := range req.Invite {
				users[u] = 100
			}
		}
	}
	pl := map[string]json.RawMessage{
		"ban": mustJSON(50), "kick": mustJSON(50), "redact": mustJSON(50), "invite": mustJSON(0),
		"events_default": mustJSON(0), "state_default": mustJSON(50), "users_default": mustJSON(0),
		"users":         mustJSON(users),
		"notifications": mustJSON(map[string]int{"room": 50}),
		"events": mustJSON(map[string]int{
			"m.room.name": 50, "m.room.avatar": 50, "m.room.canonical_alias": 50, "m.room.topic": 50,
			"m.room.power_levels": 100, "m.room.history_visibility": 100, "m.room.encryption": 100,
			"m.room.server_acl": 100, "m.room.tombstone": tombstone,
		}),
	}
	for k, val := range req.PowerLevelContentOverride {
		pl[k] = val
	}

	joinRule, guest := auth.JoinRuleInvite, "can_join"
	if preset == presetPublic {
		joinRule, guest = auth.JoinRulePublic, "forbidden"
	}
	profile, err := rs.st.Profile(creator)
	if err != nil {
		return "", nil, err
	}
	specs := []eventSpec{
		{Type: auth.TypeCreate, StateKey: strPtr(""), Content: mustJSON(createContent)},
		{Type: auth.TypeMember, StateKey: strPtr(creator), Content: memberContent(auth.Join, profile, "", false)},
		{Type: auth.TypePowerLevels, StateKey: strPtr(""), Content: mustJSON(pl)},
	}
	if alias != "" {
		specs = append(specs, eventSpec{Type: "m.room.canonical_alias", StateKey: strPtr(""),
			Content: mustJSON(map[string]string{"alias": alias})})
	}
	// The preset's events, but for those initial_state sets itself (it
	// takes precedence over the preset: client-server-api "Creation").
	for _, ps := range []eventSpec{
		{Type: auth.TypeJoinRules, StateKey: strPtr(""), Content: mustJSON(map[string]string{"join_rule": joinRule})},
		{Type: "m.room.history_visibility", StateKey: strPtr(""), Content: mustJSON(map[string]string{"history_visibility": "shared"})},
		{Type: "m.room.guest_access", StateKey: strPtr(""), Content: mustJSON(map[string]string{"guest_access": guest})},
	} {
		if !slices.ContainsFunc(req.InitialState, func(is initialStateEvent) bool { return is.Type == ps.Type && is.StateKey == "" }) {
			specs = append(specs, ps)
		}
	}
	for _, is := range req.InitialState {
		if is.Type == "" {
			return "", nil, Errorf(400, ErrCodeInvalidRoomState, "initial_state event without a type")
		}
		if is.Type == auth.TypeCreate || is.Type == auth.TypeMember {
			return "", nil, Errorf(400, ErrCodeInvalidRoomState, "initial_state may not contain %s", is.Type)
		}
		specs = append(specs, eventSpec{Type: is.Type, StateKey: strPtr(is.StateKey), Content: is.Content})
	}
	if req.Name != nil {
		specs = append(specs, eventSpec{Type: "m.room.name", StateKey: strPtr(""), Content: mustJSON(map[string]string{"name": *req.Name})})
	}
	if req.Topic != nil {
		specs = append(specs, eventSpec{Type: "m.room.topic", StateKey: strPtr(""), Content: mustJSON(map[string]any{
			"topic":   *req.Topic,
			"m.topic": []map[string]string{{"mimetype": "text/plain", "body": *req.Topic}},
		})})
	}
	fed := fedRoomsOf(rs.n) != nil
	for _, u := range req.Invite {
		if u == creator || slices.Contains(remote, u) {
			continue
		}
		if fed && serverOf(u) != rs.n.ServerName() {
			remote = append(remote, u)
			continue
		}
		ip, err := rs.st.Profile(u)
		if err != nil {
			return "", nil, err
		}
		specs = append(specs, eventSpec{Type: auth.TypeMember, StateKey: strPtr(u), Content: memberContent(auth.Invite, ip, "", req.IsDirect)})
	}

	specs = append(specs, req.tail...)

	rm := &roomCache{version: v, state: auth.State{}, stateIDs: store.StateMap{}}
	if !v.RoomIDFromCreate {
		rm.id = rs.newRoomID()
	}
	err = rs.write(func(b *roomBatch) error {
		b.newRoom = &store.Room{RoomID: "", Version: v.ID, Creator: creator, Published: req.Visibility == "public"}
		for _, s := range specs {
			s.Sender = creator
			if _, err := b.append(rm, s); err != nil {
				if errors.Is(err, auth.ErrForbidden) || isForbidden(err) {
					return Errorf(400, ErrCodeInvalidRoomState, "%s event rejected: %v", s.Type, err)
				}
				return err
			}
		}
		if alias != "" {
			return b.t.InsertAlias(alias, rm.id, creator)
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	rs.n.log.Info("room created", "room", rm.id, "version", v.ID, "creator", creator)
	return rm.id, remote, nil
}

// isForbidden reports whether err is a 403 API error.
func isForbidden(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 403
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// newRoomID makes a room ID for room versions before 12: "!" + 18 random
// letters + ":" + server name. Spec: appendices.md "Room IDs".
func (rs *roomsModule) newRoomID() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [18]byte
	for i := range b {
		b[i] = letters[rs.n.rng.Uint64()%uint64(len(letters))]
	}
	return "!" + string(b[:]) + ":" + rs.n.ServerName()
}

// memberContent is the content of an m.room.member event carrying the
// user's profile. Spec: client-server-api m.room.member.
func memberContent(membership string, p store.Profile, reason string, isDirect bool) json.RawMessage {
	m := map[string]any{"membership": membership}
	if p.DisplayName != nil {
		m["displayname"] = *p.DisplayName
	}
	if p.AvatarURL != nil {
		m["avatar_url"] = *p.AvatarURL
	}
	if reason != "" {
		m["reason"] = reason
	}
	if isDirect {
		m["is_direct"] = true
	}
	return mustJSON(m)
}
