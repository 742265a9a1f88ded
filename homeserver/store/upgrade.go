package store

import "fmt"

// MoveAliases points every local alias of room from at room to (a room
// upgrade, client-server-api "Room Upgrades" step 4) and returns them,
// sorted.
func (t *RoomTx) MoveAliases(from, to string) ([]string, error) {
	rows, err := t.tx.Query(`SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias`, from)
	if err != nil {
		return nil, fmt.Errorf("store: move aliases of %s: %w", from, describe(err))
	}
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: move aliases of %s: %w", from, err)
		}
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: move aliases of %s: %w", from, err)
	}
	if _, err := t.tx.Exec(`UPDATE room_aliases SET room_id = ? WHERE room_id = ?`, to, from); err != nil {
		return nil, fmt.Errorf("store: move aliases of %s: %w", from, describe(err))
	}
	return out, nil
}
