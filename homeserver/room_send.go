package homeserver

// Sending and reading room events. Spec: client-server-api "Sending events
// to a room" (send with transaction IDs, state PUT), "Getting events for a
// room" (/event, /state, /members, /joined_members), "Redactions",
// "Event context", "Transaction identifiers" (scoped to the device), and
// "History visibility" for who may read what.

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

func (rs *roomsModule) sendRoutes() []Route {
	const r = "/_matrix/client/v3/rooms/{roomId}"
	return []Route{
		{Method: "PUT", Pattern: r + "/send/{eventType}/{txnId}", Auth: AuthUser, Handle: rs.handleSend},
		{Method: "PUT", Pattern: r + "/state/{eventType}/{stateKey}", Auth: AuthUser, Handle: rs.handlePutState},
		{Method: "PUT", Pattern: r + "/state/{eventType}/", Auth: AuthUser, Handle: rs.handlePutState},
		{Method: "PUT", Pattern: r + "/state/{eventType}", Auth: AuthUser, Handle: rs.handlePutState},
		{Method: "GET", Pattern: r + "/state/{eventType}/{stateKey}", Auth: AuthUser, Handle: rs.handleGetState},
		{Method: "GET", Pattern: r + "/state/{eventType}/", Auth: AuthUser, Handle: rs.handleGetState},
		{Method: "GET", Pattern: r + "/state/{eventType}", Auth: AuthUser, Handle: rs.handleGetState},
		{Method: "GET", Pattern: r + "/state", Auth: AuthUser, Handle: rs.handleGetAllState},
		{Method: "PUT", Pattern: r + "/redact/{eventId}/{txnId}", Auth: AuthUser, Handle: rs.handleRedact},
		{Method: "GET", Pattern: r + "/event/{eventId}", Auth: AuthUser, Handle: rs.handleGetEvent},
		{Method: "GET", Pattern: r + "/context/{eventId}", Auth: AuthUser, Handle: rs.handleContext},
		{Method: "GET", Pattern: r + "/members", Auth: AuthUser, Handle: rs.handleMembers},
		{Method: "GET", Pattern: r + "/joined_members", Auth: AuthUser, Handle: rs.handleJoinedMembers},
	}
}

// decodeContent reads a request body that is an event's content: a JSON
// object.
func decodeContent(c *Call) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := c.DecodeJSON(&m); err != nil {
		return nil, err
	}
	if len(c.Req.Body) == 0 {
		return json.RawMessage("{}"), nil
	}
	return json.RawMessage(c.Req.Body), nil
}

func (rs *roomsModule) handleSend(c *Call) {
	roomID, typ, txn := c.Req.Vars["roomId"], c.Req.Vars["eventType"], c.Req.Vars["txnId"]
	content, err := decodeContent(c)
	if err != nil {
		c.Fail(err)
		return
	}
	if rs.replayTxn(c, txn) {
		return
	}
	if rs.membership(roomID, c.UserID) != auth.Join {
		if _, err := rs.room(roomID); err != nil {
			c.Fail(err)
			return
		}
		c.Fail(Errorf(403, ErrCodeForbidden, "you are not joined to %s", roomID))
		return
	}
	if err := rs.checkSentRelation(c.UserID, content); err != nil {
		c.Fail(err)
		return
	}
	spec := eventSpec{Type: typ, Sender: c.UserID, Content: content, TxnDevice: c.DeviceID, TxnID: txn}
	if typ == auth.TypeRedaction {
		var rc struct {
			Redacts string `json:"redacts"`
		}
		_ = json.Unmarshal(content, &rc)
		spec.Redacts = rc.Redacts
		if err := rs.checkRedactPower(roomID, c.UserID, rc.Redacts); err != nil {
			c.Fail(err)
			return
		}
	}
	rs.sendAndReply(c, roomID, spec)
}

func (rs *roomsModule) handlePutState(c *Call) {
	roomID, typ, sk := c.Req.Vars["roomId"], c.Req.Vars["eventType"], c.Req.Vars["stateKey"]
	content, err := decodeContent(c)
	if err != nil {
		c.Fail(err)
		return
	}
	if _, err := rs.room(roomID); err != nil {
		c.Fail(err)
		return
	}
	if typ == "m.room.canonical_alias" {
		if err := rs.checkCanonicalAlias(roomID, content); err != nil {
			c.Fail(err)
			return
		}
	}
	if typ != auth.TypeMember && rs.membership(roomID, c.UserID) != auth.Join {
		c.Fail(Errorf(403, ErrCodeForbidden, "you are not joined to %s", roomID))
		return
	}
	rs.sendAndReply(c, roomID, eventSpec{Type: typ, StateKey: strPtr(sk), Sender: c.UserID, Content: content})
}

// sendAndReply creates the event and answers with its ID.
func (rs *roomsModule) sendAndReply(c *Call, roomID string, spec eventSpec) {
	ev, err := rs.sendEvent(roomID, spec)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]string{"event_id": ev.ID()})
}

// replayTxn answers a request whose transaction ID the device already used
// with the event it created then, and reports whether it did (or failed).
// Spec: client-server-api "Transaction identifiers".
func (rs *roomsModule) replayTxn(c *Call, txn string) bool {
	id, err := rs.st.Txn(c.UserID, c.DeviceID, txn)
	switch {
	case err == nil:
		c.Reply(200, map[string]string{"event_id": id})
	case !errors.Is(err, store.ErrNotFound):
		c.Fail(err)
	default:
		return false
	}
	return true
}

// checkCanonicalAlias checks that the local aliases an
// m.room.canonical_alias event names point to the room.
// Spec: client-server-api m.room.canonical_alias (400 M_BAD_ALIAS).
func (rs *roomsModule) checkCanonicalAlias(roomID string, content json.RawMessage) error {
	var c struct {
		Alias      *string  `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return Errorf(400, ErrCodeBadJSON, "bad m.room.canonical_alias content: %v", err)
	}
	all := c.AltAliases
	if c.Alias != nil && *c.Alias != "" {
		all = append(all, *c.Alias)
	}
	for _, a := range all {
		if serverOf(a) != rs.n.ServerName() {
			continue
		}
		got, _, err := rs.st.Alias(a)
		if errors.Is(err, store.ErrNotFound) || (err == nil && got != roomID) {
			return Errorf(400, ErrCodeBadAlias, "alias %s does not point to this room", a)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// historyStart is below every stream position: backfilled events have
// negative positions (fedroom_join.go), older the further back they are.
const historyStart int64 = math.MinInt64

// visibleRange is the stream positions of a room's events the user may
// read at all, (from, upTo], or M_FORBIDDEN when the room is closed to
// the user: a user with a membership (not forgotten) may read up to now
// while joined and up to their leave or ban after one; anyone not banned
// may read a room that is world readable now. Which events of the range
// the user sees is decided event by event (visibility.go). An invited
// user reads the room once joined, as Synapse does.
func (rs *roomsModule) visibleRange(roomID, userID string) (from, upTo int64, err error) {
	rm, err := rs.room(roomID)
	if err != nil {
		return 0, 0, err
	}
	vis := visShared
	if e := rm.state[auth.StateKey{Type: typeHistoryVisibility}]; e != nil {
		vis = historyVisibility(e.Content())
	}
	m, ok := rs.members[roomID][userID]
	if vis == visWorldReadable && (!ok || m.Membership != auth.Ban) {
		return historyStart, math.MaxInt64, nil
	}
	if !ok || m.Forgotten {
		return 0, 0, Errorf(403, ErrCodeForbidden, "you are not in %s", roomID)
	}
	switch m.Membership {
	case auth.Join:
		return historyStart, math.MaxInt64, nil
	case auth.Leave, auth.Ban:
		return historyStart, m.Pos, nil
	}
	return 0, 0, Errorf(403, ErrCodeForbidden, "you are not joined to %s", roomID)
}

// visibleState is the room state the user may see: the current state while
// joined, else the state when the user left.
func (rs *roomsModule) visibleState(roomID, userID string) (auth.State, error) {
	rm, err := rs.room(roomID)
	if err != nil {
		return nil, err
	}
	_, upTo, err := rs.visibleRange(roomID, userID)
	if err != nil {
		return nil, err
	}
	if upTo == math.MaxInt64 || upTo >= rm.lastPos {
		return rm.state, nil
	}
	m := rs.members[roomID][userID]
	row, err := rs.st.Event(m.EventID)
	if err != nil {
		return nil, err
	}
	return rs.stateAt(row.StateAfter, rm.version)
}

// stateRows returns the stored rows of a state map's events, in stream
// order.
func (rs *roomsModule) stateRows(state auth.State) ([]store.EventRow, error) {
	ids := make([]string, 0, len(state))
	for _, e := range state {
		ids = append(ids, e.ID())
	}
	return rs.st.Events(ids)
}

// stateEvents is a state map's events as the client sees them, in stream
// order.
func (rs *roomsModule) stateEvents(state auth.State, view eventView) ([]*clientEvent, error) {
	rows, err := rs.stateRows(state)
	if err != nil {
		return nil, err
	}
	return rs.clientEvents(rows, view)
}

func (rs *roomsModule) handleGetState(c *Call) {
	roomID, typ, sk := c.Req.Vars["roomId"], c.Req.Vars["eventType"], c.Req.Vars["stateKey"]
	state, err := rs.visibleState(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	e := state[auth.StateKey{Type: typ, StateKey: sk}]
	if e == nil {
		c.Fail(Errorf(404, ErrCodeNotFound, "no %s state with key %q in %s", typ, sk, roomID))
		return
	}
	row, err := rs.st.Event(e.ID())
	if err != nil {
		c.Fail(err)
		return
	}
	ce, err := rs.clientEvent(row, rs.viewFor(c, true))
	if err != nil {
		c.Fail(err)
		return
	}
	if c.Req.Query.Get("format") == "event" {
		c.Reply(200, ce)
		return
	}
	c.Reply(200, ce.Content)
}

func (rs *roomsModule) handleGetAllState(c *Call) {
	roomID := c.Req.Vars["roomId"]
	state, err := rs.visibleState(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	evs, err := rs.stateEvents(state, rs.viewFor(c, true))
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, evs)
}

func (rs *roomsModule) handleRedact(c *Call) {
	roomID, target, txn := c.Req.Vars["roomId"], c.Req.Vars["eventId"], c.Req.Vars["txnId"]
	var body reasonBody
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if rs.replayTxn(c, txn) {
		return
	}
	if rs.membership(roomID, c.UserID) != auth.Join {
		c.Fail(Errorf(403, ErrCodeForbidden, "you are not joined to %s", roomID))
		return
	}
	if err := rs.checkRedactPower(roomID, c.UserID, target); err != nil {
		c.Fail(err)
		return
	}
	content := map[string]string{}
	if body.Reason != "" {
		content["reason"] = body.Reason
	}
	rs.sendAndReply(c, roomID, eventSpec{Type: auth.TypeRedaction, Sender: c.UserID, Content: mustJSON(content),
		Redacts: target, TxnDevice: c.DeviceID, TxnID: txn})
}

// checkRedactPower applies the client-side rule for redactions: users may
// redact their own events, and others' only with the room's redact power
// level. (auth.CheckRedaction also lets any user of the same server
// redact, which is the rule between servers, not between users.)
// Spec: client-server-api "Redactions" and m.room.power_levels "redact".
func (rs *roomsModule) checkRedactPower(roomID, userID, target string) error {
	rm, err := rs.room(roomID)
	if err != nil {
		return err
	}
	row, err := rs.st.Event(target)
	if errors.Is(err, store.ErrNotFound) || (err == nil && row.RoomID != roomID) {
		return Errorf(404, ErrCodeNotFound, "event %s not found", target)
	}
	if err != nil {
		return err
	}
	if row.Sender == userID {
		return nil
	}
	need := int64(50)
	if pl := rm.state[auth.StateKey{Type: auth.TypePowerLevels}]; pl != nil {
		var c struct {
			Redact *int64 `json:"redact"`
		}
		if json.Unmarshal(pl.Content(), &c) == nil && c.Redact != nil {
			need = *c.Redact
		}
	}
	if auth.PowerLevel(rm.state, userID) < need {
		return Errorf(403, ErrCodeForbidden, "you need power level %d to redact others' events", need)
	}
	return nil
}

// visibleEvent loads an event of a room that the user may read (never an
// outlier: auth chain, fetched state and soft-failed events stay hidden).
func (rs *roomsModule) visibleEvent(roomID, eventID, userID string) (store.EventRow, error) {
	v, err := rs.userViewer(roomID, userID)
	if err != nil {
		return store.EventRow{}, err
	}
	return rs.visibleEventFor(v, eventID)
}

// visibleEventFor is visibleEvent for a viewer.
func (rs *roomsModule) visibleEventFor(v *viewer, eventID string) (store.EventRow, error) {
	row, err := rs.st.Event(eventID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (row.RoomID != v.rm.id || row.Outlier || row.Pos <= v.from || row.Pos > v.upTo)) {
		return store.EventRow{}, Errorf(404, ErrCodeNotFound, "event %s not found", eventID)
	}
	if err != nil {
		return store.EventRow{}, err
	}
	if ok, err := v.allows(row); err != nil || !ok {
		if err == nil {
			err = Errorf(404, ErrCodeNotFound, "event %s not found", eventID)
		}
		return store.EventRow{}, err
	}
	return row, nil
}

// unignoredEvent is visibleEventFor, also 404 for an event of a user the
// caller ignores (client-server-api "Ignoring Users"); ignored is the
// caller's list.
func (rs *roomsModule) unignoredEvent(v *viewer, userID, eventID string) (store.EventRow, map[string]bool, error) {
	row, err := rs.visibleEventFor(v, eventID)
	if err != nil {
		return store.EventRow{}, nil, err
	}
	ignored, err := rs.ignoredUsers(userID)
	if err != nil {
		return store.EventRow{}, nil, err
	}
	if hiddenByIgnore(ignored, row) {
		return store.EventRow{}, nil, Errorf(404, ErrCodeNotFound, "event %s not found", eventID)
	}
	return row, ignored, nil
}

func (rs *roomsModule) handleGetEvent(c *Call) {
	v, err := rs.userViewer(c.Req.Vars["roomId"], c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	row, _, err := rs.unignoredEvent(v, c.UserID, c.Req.Vars["eventId"])
	if err != nil {
		c.Fail(err)
		return
	}
	ce, err := rs.clientEvent(row, rs.viewFor(c, true))
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, ce)
}

// handleContext serves /context: events before and after one event, the
// pagination tokens around them and the room state at the last one.
func (rs *roomsModule) handleContext(c *Call) {
	roomID := c.Req.Vars["roomId"]
	v, err := rs.userViewer(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	row, ignored, err := rs.unignoredEvent(v, c.UserID, c.Req.Vars["eventId"])
	if err != nil {
		c.Fail(err)
		return
	}
	limit, err := queryInt(c, "limit", 10)
	if err != nil {
		c.Fail(err)
		return
	}
	limit = min(max(limit, 0), 100)
	f, err := rs.inlineFilter(c, "filter")
	if err != nil {
		c.Fail(err)
		return
	}
	rm := v.rm
	before, err := rs.visibleRows(v, newScan(limit/2), ignored, historyStart, row.Pos-1, false, limit/2, f.Room.Timeline)
	if err != nil {
		c.Fail(err)
		return
	}
	after, err := rs.visibleRows(v, newScan(limit-limit/2), ignored, row.Pos, rm.lastPos, true, limit-limit/2, f.Room.Timeline)
	if err != nil {
		c.Fail(err)
		return
	}
	start, end := row.Pos-1, row.Pos
	if len(before) > 0 {
		start = before[len(before)-1].Pos - 1
	}
	last := row
	if len(after) > 0 {
		end = after[len(after)-1].Pos
		last = after[len(after)-1]
	}
	view := rs.viewFor(c, true)
	ev, err := rs.clientEvent(row, view)
	if err != nil {
		c.Fail(err)
		return
	}
	evBefore, err := rs.clientEvents(before, view)
	if err != nil {
		c.Fail(err)
		return
	}
	evAfter, err := rs.clientEvents(after, view)
	if err != nil {
		c.Fail(err)
		return
	}
	state, err := rs.stateAt(last.StateAfter, rm.version)
	if err != nil {
		c.Fail(err)
		return
	}
	if f.Room.State.LazyLoadMembers {
		state = lazyMembers(state, append(append([]store.EventRow{row}, before...), after...), c.UserID)
	}
	stateEvs, err := rs.stateEvents(state, view)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{
		"event": ev, "events_before": evBefore, "events_after": evAfter,
		"start": streamToken{pos: start}.String(), "end": streamToken{pos: end}.String(),
		"state": stateEvs,
	})
}

// lazyMembers keeps, of state's member events, only those of the senders of
// rows and of the user. Spec: client-server-api "Lazy-loading room members".
func lazyMembers(state auth.State, rows []store.EventRow, userID string) auth.State {
	want := map[string]bool{userID: true}
	for _, r := range rows {
		want[r.Sender] = true
	}
	out := make(auth.State, len(state))
	for k, e := range state {
		if k.Type == auth.TypeMember && !want[k.StateKey] {
			continue
		}
		out[k] = e
	}
	return out
}

func (rs *roomsModule) handleMembers(c *Call) {
	roomID := c.Req.Vars["roomId"]
	state, err := rs.visibleState(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	if at := c.Req.Query.Get("at"); at != "" {
		tok, err := parseStreamToken(at)
		if err != nil {
			c.Fail(err)
			return
		}
		rm, err := rs.room(roomID)
		if err != nil {
			c.Fail(err)
			return
		}
		rows, err := rs.st.RoomEventsRange(roomID, 0, tok.pos, false, 1)
		if err != nil {
			c.Fail(err)
			return
		}
		if len(rows) > 0 && rows[0].Pos < rm.lastPos {
			if state, err = rs.stateAt(rows[0].StateAfter, rm.version); err != nil {
				c.Fail(err)
				return
			}
		}
	}
	want, notWant := c.Req.Query.Get("membership"), c.Req.Query.Get("not_membership")
	members := auth.State{}
	for k, e := range state {
		if k.Type != auth.TypeMember {
			continue
		}
		m := e.Membership()
		if (want != "" && m != want) || (notWant != "" && m == notWant) {
			continue
		}
		members[k] = e
	}
	evs, err := rs.stateEvents(members, rs.viewFor(c, true))
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"chunk": evs})
}

type joinedMember struct {
	DisplayName *string `json:"display_name,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

func (rs *roomsModule) handleJoinedMembers(c *Call) {
	roomID := c.Req.Vars["roomId"]
	state, err := rs.visibleState(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	out := map[string]joinedMember{}
	for k, e := range state {
		if k.Type != auth.TypeMember || e.Membership() != auth.Join {
			continue
		}
		var mc struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = json.Unmarshal(e.Content(), &mc)
		out[k.StateKey] = joinedMember{DisplayName: mc.DisplayName, AvatarURL: mc.AvatarURL}
	}
	c.Reply(200, map[string]any{"joined": out})
}

// queryInt reads an integer query parameter (def when absent).
// queryForward reads the dir query parameter of a paginated endpoint: "f"
// pages forward, "b" (the default) backward.
func queryForward(c *Call) (bool, error) {
	switch c.Req.Query.Get("dir") {
	case "", "b":
		return false, nil
	case "f":
		return true, nil
	}
	return false, Errorf(400, ErrCodeInvalidParam, "dir must be b or f")
}

func queryInt(c *Call, name string, def int) (int, error) {
	s := c.Req.Query.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, Errorf(400, ErrCodeInvalidParam, "query parameter %s must be an integer", name)
	}
	return n, nil
}
