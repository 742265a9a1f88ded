package store

// The local half of the user directory (client-server-api "User
// directory"): accounts matched by user ID or profile display name, for
// servers configured to let everyone find every local user. Users who
// share a room with the searcher come from the rooms module's memory, not
// from here.

import (
	"database/sql"
	"fmt"
	"strings"
)

// DirectoryUser is one user found in the directory.
type DirectoryUser struct {
	UserID      string
	DisplayName string // "" when none is set
	AvatarURL   string // "" when none is set
}

// likePattern is a case-insensitive LIKE pattern matching s anywhere, with
// LIKE's wildcards in s escaped (ESCAPE '\').
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// SearchLocalUsers lists up to limit active accounts whose user ID or
// display name contains word (ASCII case-insensitive), sorted by user ID.
func (s *Store) SearchLocalUsers(word string, limit int) ([]DirectoryUser, error) {
	p := likePattern(word)
	rows, err := s.DB.Query(`SELECT a.user_id, p.displayname, p.avatar_url
		FROM accounts a LEFT JOIN profiles p ON p.user_id = a.user_id
		WHERE a.deactivated = FALSE
		  AND (LOWER(a.user_id) LIKE ? ESCAPE '\' OR LOWER(COALESCE(p.displayname, '')) LIKE ? ESCAPE '\')
		ORDER BY a.user_id LIMIT ?`, p, p, limit)
	if err != nil {
		return nil, fmt.Errorf("store: search local users: %w", describe(err))
	}
	defer rows.Close()
	var out []DirectoryUser
	for rows.Next() {
		var u DirectoryUser
		var dn, av sql.NullString
		if err := rows.Scan(&u.UserID, &dn, &av); err != nil {
			return nil, fmt.Errorf("store: search local users: %w", describe(err))
		}
		u.DisplayName, u.AvatarURL = dn.String, av.String
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: search local users: %w", describe(err))
	}
	return out, nil
}
