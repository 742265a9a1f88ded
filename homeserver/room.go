package homeserver

// Rooms: the node's room DAG, room state and the event-creation pipeline.
//
// Every event the node creates goes through roomBatch.append: prev_events
// are the room's forward extremities, auth_events are chosen by
// auth.SelectAuthEvents from the current state, event.Build hashes and
// signs it with the server key, auth.Check tests it against the current
// state, and only then is it stored (exact bytes, DAG edges, new forward
// extremities, a state group for state events, the membership row) in one
// transaction together with every other event of the same request.
//
// State is kept as state groups (store.InsertStateGroup): each event
// records the group before and after it. An event created here extends the
// room's current state (its prev_events are all the forward extremities);
// events received over federation may fork the DAG, and fedroom_store.go
// resolves the current state then.
// Spec: server-server-api "Auth events selection"; client-server-api
// "Rooms".

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// roomsModuleName is the Node.Module key of the rooms module.
const roomsModuleName = "rooms"

// roomsModule is the per-node state of rooms, sync and the ephemeral
// streams. It belongs to the node loop (no locking).
type roomsModule struct {
	n  *Node
	st *store.Store

	// pos is the last stream position handed out (events, receipts,
	// account data share it).
	pos int64

	// loaded rooms, by ID: at most maxRooms of them once a room is loaded,
	// the least recently used evicted first (see evictRooms).
	byID     map[string]*roomCache
	maxRooms int
	useSeq   uint64 // last roomCache.used handed out
	writing  bool   // a roomBatch is open: nothing is evicted
	// members: room → user → membership row, for every room of the node.
	members map[string]map[string]store.Membership
	// userRooms: user → rooms the user has a membership row in.
	userRooms map[string]map[string]bool

	waiters   map[string]map[*syncWaiter]bool // user → pending long polls
	waiterSeq uint64
	typing    map[string]*roomTyping     // room → typing users
	unread    map[unreadKey]*unreadState // cached unread counts

	// adLast: user → a stream position at or after their newest account
	// data (an over-estimate is safe; absent means unknown).
	adLast    map[string]int64
	pushCache map[string]*pushRules // user → push rules
	globs     globCache             // compiled push rule patterns
	// typingSerial orders typing changes. It starts at the boot time in
	// milliseconds, so serials of an earlier run are below it.
	typingSerial int64
}

// roomCache is a loaded room: its version, current state and DAG tips.
type roomCache struct {
	id          string
	version     *event.RoomVersion
	state       auth.State     // current state (the create event included)
	stateIDs    store.StateMap // the same, as event IDs
	group       store.StateGroup
	extremities []string
	depth       int64  // largest depth among the extremities
	lastPos     int64  // stream position of the newest event
	receiptPos  int64  // stream position of the newest receipt
	used        uint64 // when the room was last looked up (roomsModule.useSeq)
}

// maxCachedRooms is how many rooms roomsModule keeps loaded. A room not
// in the cache is loaded from the store on next use (roomsModule.room),
// so the bound costs reloads, never correctness.
const maxCachedRooms = 1000

func newRoomsModule(n *Node) (*roomsModule, error) {
	rs := &roomsModule{
		n:            n,
		st:           n.store,
		byID:         map[string]*roomCache{},
		maxRooms:     maxCachedRooms,
		members:      map[string]map[string]store.Membership{},
		userRooms:    map[string]map[string]bool{},
		waiters:      map[string]map[*syncWaiter]bool{},
		typing:       map[string]*roomTyping{},
		unread:       map[unreadKey]*unreadState{},
		pushCache:    map[string]*pushRules{},
		adLast:       map[string]int64{},
		typingSerial: n.Now().UnixMilli(),
	}
	pos, err := rs.st.MaxStreamPos()
	if err != nil {
		return nil, fmt.Errorf("rooms: start: %w", err)
	}
	rs.pos = pos
	ms, err := rs.st.AllMemberships()
	if err != nil {
		return nil, fmt.Errorf("rooms: start: %w", err)
	}
	for _, m := range ms {
		rs.setMember(m)
	}
	return rs, nil
}

// roomsOf returns the node's rooms module.
func roomsOf(n *Node) *roomsModule {
	rs, _ := n.Module(roomsModuleName).(*roomsModule)
	return rs
}

// roomRoutes is the route group of rooms, sync and everything they carry.
func roomRoutes(n *Node) ([]Route, error) {
	rs, err := newRoomsModule(n)
	if err != nil {
		return nil, err
	}
	n.SetModule(roomsModuleName, rs)
	var out []Route
	for _, g := range []func(*roomsModule) []Route{
		(*roomsModule).createRoutes, (*roomsModule).membershipRoutes, (*roomsModule).sendRoutes,
		(*roomsModule).syncRoutes, (*roomsModule).messagesRoutes, (*roomsModule).filterRoutes,
		(*roomsModule).typingRoutes, (*roomsModule).receiptRoutes, (*roomsModule).profileRoutes,
		(*roomsModule).accountDataRoutes, (*roomsModule).tagRoutes, (*roomsModule).pushRulesRoutes,
		(*roomsModule).aliasRoutes, (*roomsModule).directoryRoutes,
	} {
		out = append(out, g(rs)...)
	}
	return out, nil
}

func (rs *roomsModule) setMember(m store.Membership) {
	rm := rs.members[m.RoomID]
	if rm == nil {
		rm = map[string]store.Membership{}
		rs.members[m.RoomID] = rm
	}
	rm[m.UserID] = m
	ur := rs.userRooms[m.UserID]
	if ur == nil {
		ur = map[string]bool{}
		rs.userRooms[m.UserID] = ur
	}
	ur[m.RoomID] = true
}

// membership is a user's current membership in a room ("" if none).
func (rs *roomsModule) membership(roomID, userID string) string {
	return rs.members[roomID][userID].Membership
}

// joinedMembers lists the joined users of a room, sorted.
func (rs *roomsModule) joinedMembers(roomID string) []string {
	var out []string
	for u, m := range rs.members[roomID] {
		if m.Membership == auth.Join {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// errRoomNotFound is the API error for an unknown room.
func errRoomNotFound(roomID string) *Error {
	return Errorf(404, ErrCodeNotFound, "room %s not found", roomID)
}

// room loads a room into the cache.
func (rs *roomsModule) room(roomID string) (*roomCache, error) {
	if rm := rs.byID[roomID]; rm != nil {
		rs.useSeq++
		rm.used = rs.useSeq
		return rm, nil
	}
	row, err := rs.st.Room(roomID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errRoomNotFound(roomID)
	}
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	v, err := event.LookupVersion(row.Version)
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	latest, err := rs.st.LatestRoomEvent(roomID)
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	cur := latest.StateAfter
	if g, err := rs.st.CurrentStateGroup(roomID); err == nil {
		cur = g
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	ids, group, err := rs.st.LoadStateGroup(cur)
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	state, err := rs.loadState(ids, v)
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	ext, err := rs.st.ForwardExtremities(roomID)
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	depth, err := rs.st.MaxDepth(ext)
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	receiptPos, err := rs.st.LastReceiptPos(roomID)
	if err != nil {
		return nil, fmt.Errorf("load room %s: %w", roomID, err)
	}
	rs.useSeq++
	rm := &roomCache{id: roomID, version: v, state: state, stateIDs: ids, group: group,
		extremities: ext, depth: depth, lastPos: latest.Pos, receiptPos: receiptPos, used: rs.useSeq}
	rs.byID[roomID] = rm
	rs.evictRooms()
	return rm, nil
}

// evictRooms brings the cache back to maxRooms when it holds more: the
// least recently used rooms go first, down to 7/8 of the bound so that
// the next loads do not each sort the cache again. Rooms with work in
// flight stay: PDUs queued or being received, a backfill, a remote join
// or invite (their callbacks hold the cached room), and every room while
// a batch is open (its touched rooms are compared with the cache after
// the commit, fedroom_store.go). A pointer to an evicted room stays
// valid; the next rs.room loads a fresh copy from the store.
func (rs *roomsModule) evictRooms() {
	if len(rs.byID) <= rs.maxRooms || rs.writing {
		return
	}
	fr := fedRoomsOf(rs.n)
	busy := map[string]bool{}
	if fr != nil {
		for id, q := range fr.queue {
			busy[id] = len(q) > 0
		}
		for key := range fr.backfilling {
			busy[key] = true
		}
		for _, fs := range []flights[error]{fr.joining, fr.inviting} {
			for key := range fs {
				roomID, _, _ := strings.Cut(key, "\x00")
				busy[roomID] = true
			}
		}
	}
	idle := make([]*roomCache, 0, len(rs.byID))
	for id, rm := range rs.byID {
		if !busy[id] {
			idle = append(idle, rm)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].used < idle[j].used })
	keep := rs.maxRooms - rs.maxRooms/8
	for _, rm := range idle {
		if len(rs.byID) <= keep {
			break
		}
		delete(rs.byID, rm.id)
	}
}

// loadState parses the events of a state map.
func (rs *roomsModule) loadState(ids store.StateMap, v *event.RoomVersion) (auth.State, error) {
	list := make([]string, 0, len(ids))
	for _, id := range ids {
		list = append(list, id)
	}
	rows, err := rs.st.Events(list)
	if err != nil {
		return nil, err
	}
	state := auth.State{}
	for _, r := range rows {
		ev, err := parseRow(r, v)
		if err != nil {
			return nil, err
		}
		if sk, ok := ev.StateKey(); ok {
			state[auth.StateKey{Type: ev.Type(), StateKey: sk}] = ev
		}
	}
	return state, nil
}

// parseRow parses a stored event, in its redacted form when a redaction
// has been applied to it: redacted state events count in the room state
// (and in the authorization rules) as redacted. Spec: client-server-api
// "Redactions"; the event ID is unchanged, since it hashes the redacted
// form anyway.
func parseRow(r store.EventRow, v *event.RoomVersion) (*event.Event, error) {
	raw := r.JSON
	if r.RedactedBy != "" {
		var err error
		if raw, err = event.Redact(raw, v); err != nil {
			return nil, fmt.Errorf("stored event %s: %w", r.EventID, err)
		}
	}
	ev, err := event.Parse(raw, v)
	if err != nil {
		return nil, fmt.Errorf("stored event %s: %w", r.EventID, err)
	}
	return ev, nil
}

// stateAt loads the state map of a state group as parsed events. Group 0
// is the empty state before a room's create event.
func (rs *roomsModule) stateAt(group int64, v *event.RoomVersion) (auth.State, error) {
	if group <= 0 {
		return auth.State{}, nil
	}
	ids, _, err := rs.st.LoadStateGroup(group)
	if err != nil {
		return nil, err
	}
	return rs.loadState(ids, v)
}

// roomBatch collects the events of one request in one transaction. In-memory
// room caches are updated as events are appended; if the transaction fails,
// the touched rooms are dropped from the cache and reloaded from the store
// on next use, and the stream position is not advanced.
type roomBatch struct {
	rs      *roomsModule
	t       *store.RoomTx
	pos     int64
	touched map[string]*roomCache
	members []store.Membership
	wake    map[string]bool // users whose long polls to wake
	rooms   map[string]bool // rooms with new events
	newRoom *store.Room
	// sent: events created here, with the servers to send them to once
	// the batch has committed.
	sent []outboundPDU
	// committed runs once the transaction has committed, before long
	// polls are woken: cache updates that sync must already see.
	committed []func()
	// woken runs after the long polls were woken.
	woken []func()
}

// outboundPDU is an event created here and the servers it goes to.
type outboundPDU struct {
	ev    *event.Event
	dests []string
}

// write runs f as one batch. f must read the store only through b.t: the
// store has one connection, which the transaction holds. Load rooms with
// rs.room before calling write. Once the batch has committed, write applies its
// membership changes and wakes the long polls it concerns.
func (rs *roomsModule) write(f func(b *roomBatch) error) error {
	b := &roomBatch{rs: rs, pos: rs.pos, touched: map[string]*roomCache{}, wake: map[string]bool{}, rooms: map[string]bool{}}
	err := func() error {
		defer func(was bool) { rs.writing = was }(rs.writing)
		rs.writing = true
		return rs.st.RoomTx(func(t *store.RoomTx) error {
			b.t = t
			return f(b)
		})
	}()
	if err != nil {
		for id := range b.touched {
			delete(rs.byID, id)
		}
		return err
	}
	rs.pos = b.pos
	for _, f := range b.committed {
		f()
	}
	for _, m := range b.members {
		if rs.membership(m.RoomID, m.UserID) != m.Membership {
			delete(rs.unread, unreadKey{m.RoomID, m.UserID})
		}
		rs.setMember(m)
	}
	for room := range b.rooms {
		for u, m := range rs.members[room] {
			if m.Membership == auth.Join || m.Membership == auth.Invite {
				b.wake[u] = true
			}
		}
	}
	rs.wakeUsers(b.wake)
	for _, f := range b.woken {
		f()
	}
	rs.pushCommitted(b.rooms)
	if fr := fedRoomsOf(rs.n); fr != nil {
		for _, o := range b.sent {
			fr.broadcast(o.dests, o.ev)
		}
	}
	// Rooms created in the batch entered the cache without a load.
	rs.evictRooms()
	return nil
}

// eventSpec is an event a local user asks the node to create.
type eventSpec struct {
	Type     string
	StateKey *string
	Sender   string
	Content  json.RawMessage
	Redacts  string
	// TxnDevice and TxnID record a client transaction ID (send, redact).
	TxnDevice, TxnID string
}

// strPtr returns a pointer to s.
func strPtr(s string) *string { return &s }

// forbidden turns an authorization-rule rejection into 403 M_FORBIDDEN.
func forbidden(err error) error {
	if errors.Is(err, auth.ErrForbidden) {
		return Errorf(403, ErrCodeForbidden, "%v", err)
	}
	return err
}

// maxEnvelopeBytes is a generous bound on what a PDU adds around its
// content (IDs, hashes, signature, prev and auth events), used to tell a
// too-large event from a malformed one when building fails.
const maxEnvelopeBytes = 2048

// buildEvent builds and signs an event of a local user in rm (prev_events:
// the forward extremities; auth_events: chosen from the current state),
// without checking or storing it.
func (rs *roomsModule) buildEvent(rm *roomCache, spec eventSpec) (*event.Event, error) {
	n := rs.n
	content := spec.Content
	if len(content) == 0 {
		content = json.RawMessage("{}")
	}
	sk := ""
	if spec.StateKey != nil {
		sk = *spec.StateKey
	}
	authEvs, err := auth.SelectAuthEvents(rm.version, spec.Type, sk, spec.Sender, content, rm.state)
	if err != nil {
		return nil, Errorf(400, ErrCodeBadJSON, "%v", err)
	}
	authIDs := make([]string, len(authEvs))
	for i, e := range authEvs {
		authIDs[i] = e.ID()
	}
	prev := append([]string{}, rm.extremities...)
	depth := rm.depth + 1
	if len(prev) == 0 {
		depth = 1
	}
	ev, err := event.Build(event.Proto{
		RoomID: rm.id, Sender: spec.Sender, Type: spec.Type, StateKey: spec.StateKey, Content: content,
		PrevEvents: prev, AuthEvents: authIDs, Depth: depth,
		OriginServerTS: n.Now().UnixMilli(), Redacts: spec.Redacts,
	}, rm.version, n.ServerName(), n.key.ID, n.key.Key)
	if err != nil {
		if len(content)+maxEnvelopeBytes > event.MaxPDUSize {
			// Spec: client-server-api "Size limits" (413 M_TOO_LARGE).
			return nil, Errorf(413, ErrCodeTooLarge, "event exceeds %d bytes", event.MaxPDUSize)
		}
		return nil, Errorf(400, ErrCodeBadJSON, "cannot build event: %v", err)
	}
	return ev, nil
}

// append builds, checks and stores one event in rm (rm.id is empty for a
// room version 12 room whose create event this is: the ID comes from it).
func (b *roomBatch) append(rm *roomCache, spec eventSpec) (*event.Event, error) {
	rs := b.rs
	ev, err := rs.buildEvent(rm, spec)
	if err != nil {
		return nil, err
	}
	sk := ""
	if spec.StateKey != nil {
		sk = *spec.StateKey
	}
	prev := append([]string{}, rm.extremities...)
	depth := ev.Depth()
	if rm.id == "" {
		rm.id = ev.RoomID()
	}
	if err := auth.Check(ev, rm.state); err != nil {
		return nil, forbidden(err)
	}
	if b.touched[rm.id] == nil {
		b.touched[rm.id] = rm
		rs.useSeq++
		rm.used = rs.useSeq
		rs.byID[rm.id] = rm
	}
	if b.newRoom != nil && b.newRoom.RoomID == "" {
		b.newRoom.RoomID = rm.id
		if err := b.t.InsertRoom(*b.newRoom); err != nil {
			return nil, err
		}
	}
	serversBefore := roomServers(rm.state)
	pos := b.pos + 1
	row := store.EventRow{
		Pos: pos, EventID: ev.ID(), RoomID: rm.id, Type: ev.Type(), StateKey: spec.StateKey,
		Sender: ev.Sender(), Depth: ev.Depth(), OriginServerTS: ev.OriginServerTS(),
		StateBefore: rm.group.ID, StateAfter: rm.group.ID, TxnDevice: spec.TxnDevice, TxnID: spec.TxnID,
		JSON: ev.JSON(),
	}
	if ev.IsState() {
		key := store.StateKey{Type: ev.Type(), StateKey: sk}
		row.ReplacesState = rm.stateIDs[key]
		next := make(store.StateMap, len(rm.stateIDs)+1)
		for k, v := range rm.stateIDs {
			next[k] = v
		}
		next[key] = ev.ID()
		g, err := b.t.InsertStateGroup(rm.id, rm.group, rm.stateIDs, next)
		if err != nil {
			return nil, err
		}
		row.StateAfter = g.ID
		rm.group, rm.stateIDs = g, next
		rm.state[auth.StateKey{Type: ev.Type(), StateKey: sk}] = ev
		if err := b.t.SetCurrentState(rm.id, g.ID); err != nil {
			return nil, err
		}
	}
	if err := b.t.InsertEvent(row, prev); err != nil {
		return nil, err
	}
	if err := b.t.SetForwardExtremities(rm.id, []string{ev.ID()}); err != nil {
		return nil, err
	}
	if spec.TxnID != "" {
		if err := b.t.InsertTxn(spec.Sender, spec.TxnDevice, spec.TxnID, ev.ID()); err != nil {
			return nil, err
		}
	}
	if ev.Type() == auth.TypeMember {
		m := store.Membership{RoomID: rm.id, UserID: sk, Membership: ev.Membership(), EventID: ev.ID(), Pos: pos}
		if err := b.t.SetMembership(m); err != nil {
			return nil, err
		}
		b.members = append(b.members, m)
		b.wake[sk] = true
	}
	if target := ev.Redacts(); target != "" {
		if err := b.applyRedaction(rm, ev, target); err != nil {
			return nil, err
		}
	}
	rm.extremities = []string{ev.ID()}
	rm.depth = depth
	rm.lastPos = pos
	b.pos = pos
	b.rooms[rm.id] = true
	if fr := fedRoomsOf(rs.n); fr != nil {
		if dests := fr.destinations(serversBefore, ev, rm.state); len(dests) > 0 {
			b.sent = append(b.sent, outboundPDU{ev: ev, dests: dests})
		}
	}
	return ev, nil
}

// applyRedaction marks target redacted when the redaction may apply to it
// (auth.CheckRedaction). An unknown target is left alone.
// NOTSPEC: a redaction whose target is not yet known is not re-applied
// when the target arrives later (local rooms only see known targets).
func (b *roomBatch) applyRedaction(rm *roomCache, redaction *event.Event, target string) error {
	row, err := b.t.Event(target)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if row.RoomID != rm.id {
		return nil
	}
	orig, err := event.Parse(row.JSON, rm.version)
	if err != nil {
		return fmt.Errorf("redact %s: %w", target, err)
	}
	if err := auth.CheckRedaction(redaction, orig, rm.state); err != nil {
		if errors.Is(err, auth.ErrForbidden) {
			return Errorf(403, ErrCodeForbidden, "you may not redact this event: %v", err)
		}
		return err
	}
	if err := b.t.SetRedactedBy(target, redaction.ID()); err != nil {
		return err
	}
	if sk, isState := orig.StateKey(); isState {
		key := auth.StateKey{Type: orig.Type(), StateKey: sk}
		if cur := rm.state[key]; cur != nil && cur.ID() == orig.ID() {
			row.RedactedBy = redaction.ID()
			red, err := parseRow(row, rm.version)
			if err != nil {
				return err
			}
			rm.state[key] = red
		}
	}
	return nil
}

// sendEvent creates one event in an existing room.
func (rs *roomsModule) sendEvent(roomID string, spec eventSpec) (*event.Event, error) {
	rm, err := rs.room(roomID)
	if err != nil {
		return nil, err
	}
	var ev *event.Event
	err = rs.write(func(b *roomBatch) error {
		ev, err = b.append(rm, spec)
		return err
	})
	return ev, err
}

// serverOf returns the server name part of a user, room or alias ID.
func serverOf(id string) string {
	_, s, _ := strings.Cut(id, ":")
	return s
}

// validUserID checks the shape of a user ID: "@" localpart ":" server.
// Spec: appendices.md "User Identifiers" (historical localparts accepted).
func validUserID(s string) bool {
	if len(s) < 4 || len(s) > 255 || s[0] != '@' {
		return false
	}
	local, server, ok := strings.Cut(s[1:], ":")
	if !ok || local == "" || server == "" {
		return false
	}
	for _, c := range local {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
