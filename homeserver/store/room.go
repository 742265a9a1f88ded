package store

// The room tables of migration 0002: rooms, state groups, memberships,
// transaction IDs and aliases. Writes that one room event implies go
// through a RoomTx; reads use the store's connection directly and must not
// be made while a RoomTx is open (the store has one connection).

import (
	"database/sql"
	"errors"
	"fmt"
	"sort"
)

// RoomTx is a write transaction on the room tables (migration 0002). Every
// write that one room event implies (the event, its edges, the forward
// extremities, a state group, a membership row, a transaction ID) goes
// through one RoomTx, so a crash leaves either all of them or none.
type RoomTx struct{ tx *sql.Tx }

// RoomTx runs f in a transaction on the room tables.
func (s *Store) RoomTx(f func(t *RoomTx) error) error {
	return s.Tx(func(tx *sql.Tx) error { return f(&RoomTx{tx: tx}) })
}

// Room is one row of the rooms table.
type Room struct {
	RoomID    string
	Version   string
	Creator   string
	Published bool
}

// InsertRoom records a new room; ErrExists if its ID is taken.
func (t *RoomTx) InsertRoom(r Room) error {
	_, err := t.tx.Exec(`INSERT INTO rooms (room_id, room_version, creator, published) VALUES (?, ?, ?, ?)`,
		r.RoomID, r.Version, r.Creator, r.Published)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: insert room %s: %w", r.RoomID, ErrExists)
		}
		return fmt.Errorf("store: insert room %s: %w", r.RoomID, describe(err))
	}
	return nil
}

// Room returns a room, or ErrNotFound.
func (s *Store) Room(roomID string) (Room, error) {
	r := Room{RoomID: roomID}
	err := s.DB.QueryRow(`SELECT room_version, creator, published FROM rooms WHERE room_id = ?`, roomID).
		Scan(&r.Version, &r.Creator, &r.Published)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, fmt.Errorf("store: room %s: %w", roomID, ErrNotFound)
	}
	if err != nil {
		return Room{}, fmt.Errorf("store: room %s: %w", roomID, describe(err))
	}
	return r, nil
}

// StateKey names one piece of room state.
type StateKey struct{ Type, StateKey string }

// StateMap maps state keys to event IDs.
type StateMap map[StateKey]string

// maxStateChain bounds how many deltas a state group may sit on top of
// before a full snapshot is written instead.
const maxStateChain = 32

// StateGroup is a stored state group's header.
type StateGroup struct {
	ID       int64
	ChainLen int // deltas back to the nearest full snapshot (0: snapshot)
}

// InsertStateGroup stores the state full as a new group of roomID. When prev
// is a group (ID > 0) whose chain is short, only the entries of full that
// differ from prevState are written; otherwise full is written whole.
// Removing keys from state is not expressible as a delta, so a full may
// not lack any key of prevState (room state only ever grows).
func (t *RoomTx) InsertStateGroup(roomID string, prev StateGroup, prevState, full StateMap) (StateGroup, error) {
	delta := prev.ID > 0 && prev.ChainLen < maxStateChain && len(full) >= len(prevState)
	if delta {
		for k := range prevState {
			if _, ok := full[k]; !ok {
				delta = false
				break
			}
		}
	}
	g := StateGroup{}
	var prevID sql.NullInt64
	entries := full
	if delta {
		prevID = sql.NullInt64{Int64: prev.ID, Valid: true}
		g.ChainLen = prev.ChainLen + 1
		entries = StateMap{}
		for k, id := range full {
			if prevState[k] != id {
				entries[k] = id
			}
		}
	}
	if err := t.tx.QueryRow(`SELECT COALESCE(MAX(group_id), 0) + 1 FROM state_groups`).Scan(&g.ID); err != nil {
		return StateGroup{}, fmt.Errorf("store: new state group: %w", describe(err))
	}
	if _, err := t.tx.Exec(`INSERT INTO state_groups (group_id, room_id, prev_group, chain_len) VALUES (?, ?, ?, ?)`,
		g.ID, roomID, prevID, g.ChainLen); err != nil {
		return StateGroup{}, fmt.Errorf("store: new state group: %w", describe(err))
	}
	keys := make([]StateKey, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Type != keys[j].Type {
			return keys[i].Type < keys[j].Type
		}
		return keys[i].StateKey < keys[j].StateKey
	})
	for _, k := range keys {
		if _, err := t.tx.Exec(`INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?, ?, ?, ?)`,
			g.ID, k.Type, k.StateKey, entries[k]); err != nil {
			return StateGroup{}, fmt.Errorf("store: state group %d entry: %w", g.ID, describe(err))
		}
	}
	return g, nil
}

// LoadStateGroup returns the full state of a group and its header.
func (s *Store) LoadStateGroup(id int64) (StateMap, StateGroup, error) {
	var chain []int64
	head := StateGroup{ID: id}
	cur := id
	for {
		var prev sql.NullInt64
		var n int
		err := s.DB.QueryRow(`SELECT prev_group, chain_len FROM state_groups WHERE group_id = ?`, cur).Scan(&prev, &n)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, StateGroup{}, fmt.Errorf("store: state group %d: %w", cur, ErrNotFound)
		}
		if err != nil {
			return nil, StateGroup{}, fmt.Errorf("store: state group %d: %w", cur, describe(err))
		}
		if cur == id {
			head.ChainLen = n
		}
		chain = append(chain, cur)
		if !prev.Valid {
			break
		}
		if len(chain) > maxStateChain+1 {
			return nil, StateGroup{}, fmt.Errorf("store: state group %d: chain longer than %d", id, maxStateChain)
		}
		cur = prev.Int64
	}
	state := StateMap{}
	for i := len(chain) - 1; i >= 0; i-- {
		rows, err := s.DB.Query(`SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = ?`, chain[i])
		if err != nil {
			return nil, StateGroup{}, fmt.Errorf("store: state group %d: %w", chain[i], describe(err))
		}
		for rows.Next() {
			var k StateKey
			var ev string
			if err := rows.Scan(&k.Type, &k.StateKey, &ev); err != nil {
				rows.Close()
				return nil, StateGroup{}, fmt.Errorf("store: state group %d: %w", chain[i], err)
			}
			state[k] = ev
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, StateGroup{}, fmt.Errorf("store: state group %d: %w", chain[i], err)
		}
	}
	return state, head, nil
}

// Membership is one row of room_members: a user's current membership.
type Membership struct {
	RoomID, UserID string
	Membership     string
	EventID        string
	Pos            int64
	Forgotten      bool
}

// SetMembership records a user's current membership in a room; a new
// membership clears the forgotten flag.
func (t *RoomTx) SetMembership(m Membership) error {
	_, err := t.tx.Exec(`INSERT INTO room_members (room_id, user_id, membership, event_id, stream_pos, forgotten)
		VALUES (?, ?, ?, ?, ?, FALSE)
		ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
			event_id = excluded.event_id, stream_pos = excluded.stream_pos, forgotten = FALSE`,
		m.RoomID, m.UserID, m.Membership, m.EventID, m.Pos)
	if err != nil {
		return fmt.Errorf("store: set membership %s in %s: %w", m.UserID, m.RoomID, describe(err))
	}
	return nil
}

// ForgetRoom marks a room forgotten for a user.
func (s *Store) ForgetRoom(roomID, userID string) error {
	res, err := s.DB.Exec(`UPDATE room_members SET forgotten = TRUE WHERE room_id = ? AND user_id = ?`, roomID, userID)
	return checkOne(res, err, "forget room "+roomID)
}

// AllMemberships returns every row of room_members.
func (s *Store) AllMemberships() ([]Membership, error) {
	rows, err := s.DB.Query(`SELECT room_id, user_id, membership, event_id, stream_pos, forgotten FROM room_members`)
	if err != nil {
		return nil, fmt.Errorf("store: memberships: %w", describe(err))
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var m Membership
		if err := rows.Scan(&m.RoomID, &m.UserID, &m.Membership, &m.EventID, &m.Pos, &m.Forgotten); err != nil {
			return nil, fmt.Errorf("store: memberships: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RoomCurrentState returns the room's newest event's state_after group.
func (s *Store) RoomCurrentState(roomID string) (int64, error) {
	r, err := s.LatestRoomEvent(roomID)
	if err != nil {
		return 0, err
	}
	return r.StateAfter, nil
}

// InsertTxn records the event a (user, device, txnID) produced.
func (t *RoomTx) InsertTxn(userID, deviceID, txnID, eventID string) error {
	_, err := t.tx.Exec(`INSERT INTO txn_ids (user_id, device_id, txn_id, event_id) VALUES (?, ?, ?, ?)`,
		userID, deviceID, txnID, eventID)
	if err != nil {
		return fmt.Errorf("store: insert txn %s: %w", txnID, describe(err))
	}
	return nil
}

// Txn returns the event a transaction ID produced, or ErrNotFound.
func (s *Store) Txn(userID, deviceID, txnID string) (string, error) {
	var id string
	err := s.DB.QueryRow(`SELECT event_id FROM txn_ids WHERE user_id = ? AND device_id = ? AND txn_id = ?`,
		userID, deviceID, txnID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: txn %s: %w", txnID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: txn %s: %w", txnID, describe(err))
	}
	return id, nil
}

// InsertAlias maps a room alias to a room; ErrExists if it is taken.
func (s *Store) InsertAlias(alias, roomID, creator string) error {
	_, err := s.DB.Exec(`INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)`, alias, roomID, creator)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: insert alias %s: %w", alias, ErrExists)
		}
		return fmt.Errorf("store: insert alias %s: %w", alias, describe(err))
	}
	return nil
}

// InsertAlias is Store.InsertAlias inside a transaction.
func (t *RoomTx) InsertAlias(alias, roomID, creator string) error {
	_, err := t.tx.Exec(`INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)`, alias, roomID, creator)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: insert alias %s: %w", alias, ErrExists)
		}
		return fmt.Errorf("store: insert alias %s: %w", alias, describe(err))
	}
	return nil
}

// Alias returns the room an alias points to and who created the mapping.
func (s *Store) Alias(alias string) (roomID, creator string, err error) {
	err = s.DB.QueryRow(`SELECT room_id, creator FROM room_aliases WHERE alias = ?`, alias).Scan(&roomID, &creator)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("store: alias %s: %w", alias, ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("store: alias %s: %w", alias, describe(err))
	}
	return roomID, creator, nil
}

// DeleteAlias removes an alias; ErrNotFound if there was none.
func (s *Store) DeleteAlias(alias string) error {
	res, err := s.DB.Exec(`DELETE FROM room_aliases WHERE alias = ?`, alias)
	return checkOne(res, err, "delete alias "+alias)
}

// RoomAliases lists the local aliases of a room, sorted.
func (s *Store) RoomAliases(roomID string) ([]string, error) {
	rows, err := s.DB.Query(`SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias`, roomID)
	if err != nil {
		return nil, fmt.Errorf("store: room aliases %s: %w", roomID, describe(err))
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("store: room aliases %s: %w", roomID, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetPublished lists a room in (or removes it from) the published room
// directory.
func (s *Store) SetPublished(roomID string, published bool) error {
	res, err := s.DB.Exec(`UPDATE rooms SET published = ? WHERE room_id = ?`, published, roomID)
	return checkOne(res, err, "publish room "+roomID)
}

// PublishedRooms lists the rooms in the published room directory, sorted.
func (s *Store) PublishedRooms() ([]string, error) {
	return s.queryStrings("published rooms", `SELECT room_id FROM rooms WHERE published = TRUE ORDER BY room_id`)
}
