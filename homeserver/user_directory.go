package homeserver

// POST /_matrix/client/v3/user_directory/search. Spec: client-server-api
// "User directory": search_term is matched case-insensitively against
// user IDs and display names; limit defaults to 10 (capped at
// maxUserDirLimit); limited says whether more users matched.
//
// Who can be found: the spec asks at least for the users the searcher
// shares a room with and the users in public rooms known here. As
// Synapse does by default, that is all this server searches: joined
// members of the rooms the searcher has joined and of the rooms published
// in the room directory, local or remote. With user_directory.
// search_all_users every local account is searched too (Synapse's
// search_all_users).
//
// Display names and avatars of room members come from their current
// m.room.member event in the first of the scanned rooms (in room ID
// order) they are joined to; accounts found only through
// search_all_users use their profile.
//
// Cost: a bounded scan, no index. The candidates are read from memory
// (the rooms module's membership map and the loaded rooms' current
// state), so a search costs no query for rooms in the room cache and
// writes nothing; an index would have to be kept up to date by every
// membership and profile change of every room for a request that Element
// sends a few times per dialog. At most maxUserDirRooms rooms and
// maxUserDirScan members are looked at; past that the answer is
// limited. The local-account half is one LIMITed LIKE query.
//
// Matching: the term is split into words; a user matches when every word
// occurs in their user ID or display name. Results are ranked: every word
// starting a word of the ID or name first, then the rest; within a rank,
// users with a display name and avatar first, then by user ID.

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/mxmesh/mxmesh/homeserver/auth"
)

// User directory limits.
const (
	defaultUserDirLimit = 10   // results when the request sets no limit (spec)
	maxUserDirLimit     = 50   // cap on a request's limit, as Synapse's
	maxUserDirTerm      = 256  // bytes of search_term
	maxUserDirRooms     = 500  // rooms scanned per search
	maxUserDirScan      = 5000 // room members scanned per search
	maxUserDirLocal     = 200  // accounts read per search (search_all_users)
)

// UserDirectoryConfig is the user_directory section of the config.
type UserDirectoryConfig struct {
	// SearchAllUsers lets the directory find every local account, not only
	// those sharing a room with the searcher or in a published room.
	SearchAllUsers bool `yaml:"search_all_users"`
}

// userRoutes is the route group of the user directory and content
// reports (report.go). It uses the rooms module, so it comes after
// roomRoutes.
func userRoutes(n *Node) ([]Route, error) {
	rs := roomsOf(n)
	if rs == nil {
		return nil, nil
	}
	return append(rs.userDirectoryRoutes(), rs.reportRoutes()...), nil
}

func (rs *roomsModule) userDirectoryRoutes() []Route {
	return []Route{{Method: "POST", Pattern: "/_matrix/client/v3/user_directory/search", Auth: AuthUser, Handle: rs.handleUserDirectory}}
}

// dirUser is one result.
type dirUser struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
	rank        int
}

func (rs *roomsModule) handleUserDirectory(c *Call) {
	var body struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := c.DecodeJSON(&body); err != nil {
		c.Fail(err)
		return
	}
	if body.SearchTerm == nil {
		c.Fail(Errorf(400, ErrCodeMissingParam, "search_term is required"))
		return
	}
	if len(*body.SearchTerm) > maxUserDirTerm {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "search_term is longer than %d bytes", maxUserDirTerm))
		return
	}
	limit := defaultUserDirLimit
	if body.Limit != nil {
		if *body.Limit < 1 {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "limit must be positive"))
			return
		}
		limit = min(*body.Limit, maxUserDirLimit)
	}
	words := strings.Fields(strings.ToLower(*body.SearchTerm))
	resp := map[string]any{"results": []dirUser{}, "limited": false}
	if len(words) == 0 {
		c.Reply(200, resp)
		return
	}
	found, truncated, err := rs.searchDirectory(c.UserID, words)
	if err != nil {
		c.Fail(err)
		return
	}
	// Users the searcher ignores are not offered (ignore.go).
	ignored, err := rs.ignoredUsers(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	found = slices.DeleteFunc(found, func(u dirUser) bool { return ignored[u.UserID] })
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if pa, pb := a.profileInfo(), b.profileInfo(); pa != pb {
			return pa > pb
		}
		return a.UserID < b.UserID
	})
	if len(found) > limit {
		found, truncated = found[:limit], true
	}
	if found == nil {
		found = []dirUser{}
	}
	resp["results"], resp["limited"] = found, truncated
	c.Reply(200, resp)
}

// profileInfo counts the profile fields a result has.
func (u dirUser) profileInfo() int {
	n := 0
	if u.DisplayName != "" {
		n++
	}
	if u.AvatarURL != "" {
		n++
	}
	return n
}

// searchDirectory finds the users searcher may find that match every
// word; truncated reports that the scan stopped at its bound.
func (rs *roomsModule) searchDirectory(searcher string, words []string) ([]dirUser, bool, error) {
	var rooms []string
	for roomID := range rs.userRooms[searcher] {
		if rs.membership(roomID, searcher) == auth.Join {
			rooms = append(rooms, roomID)
		}
	}
	published, err := rs.st.PublishedRooms()
	if err != nil {
		return nil, false, err
	}
	rooms = append(rooms, published...)
	sort.Strings(rooms)
	rooms = slices.Compact(rooms)
	truncated := false
	if len(rooms) > maxUserDirRooms {
		rooms, truncated = rooms[:maxUserDirRooms], true
	}
	seen := map[string]bool{}
	var out []dirUser
	scanned := 0
	for _, roomID := range rooms {
		if scanned >= maxUserDirScan {
			truncated = true
			break
		}
		members := rs.joinedMembers(roomID)
		if len(members) == 0 {
			continue
		}
		rm, err := rs.room(roomID)
		if apiErr := (*Error)(nil); errors.As(err, &apiErr) && apiErr.Status == 404 {
			continue // a membership row for a room not stored (a remote invite)
		}
		if err != nil {
			return nil, false, err
		}
		for _, u := range members {
			if seen[u] {
				continue
			}
			scanned++
			seen[u] = true
			d := dirUser{UserID: u}
			if e := rm.state[auth.StateKey{Type: auth.TypeMember, StateKey: u}]; e != nil {
				var mc struct {
					DisplayName any `json:"displayname"`
					AvatarURL   any `json:"avatar_url"`
				}
				_ = json.Unmarshal(e.Content(), &mc)
				d.DisplayName, _ = mc.DisplayName.(string)
				d.AvatarURL, _ = mc.AvatarURL.(string)
			}
			if d.rank = dirRank(words, d.UserID, d.DisplayName); d.rank >= 0 {
				out = append(out, d)
			}
		}
	}
	if rs.n.cfg.UserDirectory.SearchAllUsers {
		// The longest word narrows the query most; the others are checked here.
		longest := words[0]
		for _, w := range words[1:] {
			if len(w) > len(longest) {
				longest = w
			}
		}
		local, err := rs.st.SearchLocalUsers(longest, maxUserDirLocal)
		if err != nil {
			return nil, false, err
		}
		if len(local) == maxUserDirLocal {
			truncated = true
		}
		for _, l := range local {
			if seen[l.UserID] {
				continue
			}
			seen[l.UserID] = true
			d := dirUser{UserID: l.UserID, DisplayName: l.DisplayName, AvatarURL: l.AvatarURL}
			if d.rank = dirRank(words, d.UserID, d.DisplayName); d.rank >= 0 {
				out = append(out, d)
			}
		}
	}
	return out, truncated, nil
}

// dirRank ranks a user against the search words: -1 no match, 0 every
// word starts the user ID or a word of the ID or display name, 1 every
// word occurs somewhere in them.
func dirRank(words []string, userID, displayName string) int {
	hay := strings.ToLower(userID) + " " + strings.ToLower(displayName)
	tokens := strings.FieldsFunc(hay, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	rank := 0
	for _, w := range words {
		if !strings.Contains(hay, w) {
			return -1
		}
		prefix := strings.HasPrefix(hay, w)
		for _, t := range tokens {
			if strings.HasPrefix(t, w) {
				prefix = true
				break
			}
		}
		if !prefix {
			rank = 1
		}
	}
	return rank
}
