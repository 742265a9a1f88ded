package store

// Reads for history visibility (homeserver/visibility.go): a few entries
// of a state group, and the membership events of some users.

import (
	"fmt"
	"strings"
)

// maxLookupKeys bounds the keys of one StateGroupLookup query (SQLite's
// host parameter limit is 32766; each key takes two).
const maxLookupKeys = 200

// StateGroupLookup returns the entries of state group id for the given
// keys only (those present), without loading the whole group: the delta
// chain is walked in one query and the entry nearest the head wins. An
// unknown group has no entries.
func (s *Store) StateGroupLookup(id int64, keys []StateKey) (StateMap, error) {
	out := StateMap{}
	for len(keys) > 0 {
		part := keys[:min(len(keys), maxLookupKeys)]
		keys = keys[len(part):]
		var cond strings.Builder
		args := []any{id, maxStateChain + 1}
		for i, k := range part {
			if i > 0 {
				cond.WriteString(" OR ")
			}
			cond.WriteString("(e.type = ? AND e.state_key = ?)")
			args = append(args, k.Type, k.StateKey)
		}
		rows, err := s.DB.Query(`WITH RECURSIVE chain (group_id, depth) AS (
				SELECT group_id, 0 FROM state_groups WHERE group_id = ?
				UNION ALL
				SELECT g.prev_group, c.depth + 1 FROM state_groups g JOIN chain c ON g.group_id = c.group_id
				WHERE g.prev_group IS NOT NULL AND c.depth < ?)
			SELECT e.type, e.state_key, e.event_id FROM chain c JOIN state_group_entries e ON e.group_id = c.group_id
			WHERE `+cond.String()+` ORDER BY c.depth DESC`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: state group %d lookup: %w", id, describe(err))
		}
		for rows.Next() {
			var k StateKey
			var ev string
			if err := rows.Scan(&k.Type, &k.StateKey, &ev); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: state group %d lookup: %w", id, err)
			}
			out[k] = ev
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: state group %d lookup: %w", id, err)
		}
	}
	return out, nil
}

// MemberEvents returns the timeline (non-outlier) m.room.member events of
// a room whose state key is one of userIDs, in stream order.
func (s *Store) MemberEvents(roomID string, userIDs []string) ([]EventRow, error) {
	var out []EventRow
	for len(userIDs) > 0 {
		part := userIDs[:min(len(userIDs), 2*maxLookupKeys)]
		userIDs = userIDs[len(part):]
		args := []any{roomID}
		for _, u := range part {
			args = append(args, u)
		}
		rows, err := s.queryEvents(`SELECT `+eventCols+` FROM events WHERE room_id = ? AND type = 'm.room.member'
			AND NOT outlier AND state_key IN (?`+strings.Repeat(", ?", len(part)-1)+`) ORDER BY stream_pos`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: member events in %s: %w", roomID, err)
		}
		out = append(out, rows...)
	}
	return out, nil
}
