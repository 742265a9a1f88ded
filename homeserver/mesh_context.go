package homeserver

// The shared room state PDU packing needs between mesh servers
// (codec.RoomContext; codec package doc "PDU packing"), over the node's
// store, read-only.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// MeshKnownEvents is how many of a room's newest timeline events a
// MeshRoomContext knows: a prev event outside them travels in full. Both
// ends use the same rule, and a disagreement is caught (codec
// ErrStateMismatch) and answered by resending unpacked.
const MeshKnownEvents = 1024

// MeshRoomContext returns the node's view of roomID for packing and
// unpacking PDUs (codec.Pack, codec.Unpack): the room's version, its
// MeshKnownEvents newest timeline events, depth and timestamp of any
// stored event, the auth-event selection at the room's current state, and
// the interned names (meshNames). It reads the store when it is built and
// when asked; call it and use the result inside the node loop, for one
// transaction.
func (n *Node) MeshRoomContext(roomID string) (codec.RoomContext, error) {
	rm, err := n.store.Room(roomID)
	if err != nil {
		return nil, fmt.Errorf("mesh room context: %w", err)
	}
	v, err := event.LookupVersion(rm.Version)
	if err != nil {
		return nil, fmt.Errorf("mesh room context %s: %w", roomID, err)
	}
	rows, err := n.store.RoomEventsRange(roomID, math.MinInt64, math.MaxInt64, false, MeshKnownEvents)
	if err != nil {
		return nil, fmt.Errorf("mesh room context: %w", err)
	}
	c := &meshRoomContext{st: n.store, roomID: roomID, v: v}
	for _, r := range rows {
		ref, err := event.DecodeBase64(r.EventID[min(1, len(r.EventID)):])
		if err != nil {
			continue // not a hash-derived ID: never referenced by prefix
		}
		c.known = append(c.known, knownEvent{id: r.EventID, ref: ref})
	}
	return c, nil
}

type knownEvent struct {
	id  string
	ref []byte // the reference hash the ID encodes
}

type meshRoomContext struct {
	st     *store.Store
	roomID string
	v      *event.RoomVersion
	known  []knownEvent
	// names is the interned-name table, built on first use; index maps
	// back.
	names []string
	index map[string]uint64
	built bool
}

func (c *meshRoomContext) RoomID() string                  { return c.roomID }
func (c *meshRoomContext) RoomVersion() *event.RoomVersion { return c.v }

// Name and NameIndex intern names against the table meshNames builds from
// the room's current state. A table that fails to build interns nothing:
// names then travel as text.
func (c *meshRoomContext) Name(i uint64) (string, bool) {
	c.buildNames()
	if i >= uint64(len(c.names)) {
		return "", false
	}
	return c.names[i], true
}

func (c *meshRoomContext) NameIndex(s string) (uint64, bool) {
	c.buildNames()
	i, ok := c.index[s]
	return i, ok
}

func (c *meshRoomContext) buildNames() {
	if c.built {
		return
	}
	c.built = true
	names, err := c.meshNames()
	if err != nil {
		return
	}
	c.names, c.index = names, make(map[string]uint64, len(names))
	for i, n := range names {
		c.index[n] = uint64(i)
	}
}

// meshNames is the interned-name table both servers of a room derive from
// its current state, without negotiating: the joined members' user IDs,
// their server names, and the signing-key IDs that signed their join
// events, one sorted list without repeats (byte order). Servers that agree
// on the room's state agree on the table; when they do not, an interned
// sender or key ID rebuilds differently and the packed PDU's check fails
// (codec.ErrStateMismatch: resent context-free). A key ID not yet seen in
// the room's joins, after a key rotation, travels as text.
func (c *meshRoomContext) meshNames() ([]string, error) {
	g, err := c.st.CurrentStateGroup(c.roomID)
	if err != nil {
		return nil, fmt.Errorf("mesh room names: %w", err)
	}
	sm, _, err := c.st.LoadStateGroup(g)
	if err != nil {
		return nil, fmt.Errorf("mesh room names: %w", err)
	}
	set := map[string]bool{}
	for k, id := range sm {
		if k.Type != "m.room.member" {
			continue
		}
		r, err := c.st.Event(id)
		if err != nil {
			return nil, fmt.Errorf("mesh room names: member event %s: %w", id, err)
		}
		var m struct {
			Content struct {
				Membership string `json:"membership"`
			} `json:"content"`
			Signatures map[string]map[string]json.RawMessage `json:"signatures"`
		}
		if json.Unmarshal(r.JSON, &m) != nil || m.Content.Membership != "join" {
			continue
		}
		set[k.StateKey] = true
		if _, server, ok := strings.Cut(k.StateKey, ":"); ok {
			set[server] = true
		}
		for _, keys := range m.Signatures {
			for kid := range keys {
				set[kid] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set)), nil
}

func (c *meshRoomContext) EventsWithPrefix(prefix []byte, limit int) []string {
	var out []string
	for _, k := range c.known {
		if len(out) >= limit {
			break
		}
		if bytes.HasPrefix(k.ref, prefix) {
			out = append(out, k.id)
		}
	}
	return out
}

func (c *meshRoomContext) EventInfo(eventID string) (depth, ts int64, ok bool) {
	r, err := c.st.Event(eventID)
	if err != nil || r.RoomID != c.roomID {
		return 0, 0, false
	}
	return r.Depth, r.OriginServerTS, true
}

// AuthEvents selects from the room's current state (server-server-api
// "Auth events selection"), as the node's event builder does.
func (c *meshRoomContext) AuthEvents(typ string, stateKey *string, sender string, content json.RawMessage) ([]string, error) {
	sk := ""
	if stateKey != nil {
		sk = *stateKey
	}
	g, err := c.st.CurrentStateGroup(c.roomID)
	if err != nil {
		return nil, fmt.Errorf("mesh room context: %w", err)
	}
	sm, _, err := c.st.LoadStateGroup(g)
	if err != nil {
		return nil, fmt.Errorf("mesh room context: %w", err)
	}
	keys := append(auth.AuthStateKeys(c.v, typ, sk, sender, content), auth.StateKey{Type: auth.TypeCreate})
	state := auth.State{}
	for _, k := range keys {
		id, ok := sm[store.StateKey{Type: k.Type, StateKey: k.StateKey}]
		if !ok || state[k] != nil {
			continue
		}
		r, err := c.st.Event(id)
		if err != nil {
			return nil, fmt.Errorf("mesh room context: state event %s: %w", id, err)
		}
		ev, err := event.Parse(r.JSON, c.v)
		if err != nil {
			return nil, fmt.Errorf("mesh room context: state event %s: %w", id, err)
		}
		state[k] = ev
	}
	evs, err := auth.SelectAuthEvents(c.v, typ, sk, sender, content, state)
	if err != nil {
		return nil, fmt.Errorf("mesh room context: %w", err)
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID()
	}
	return ids, nil
}
