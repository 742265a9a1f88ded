package homeserver

// Ignoring users. Spec: client-server-api "Ignoring Users": a user lists
// the users they ignore in the m.ignored_user_list global account data
// ({"ignored_users": {"@u:s": {}}}, set through the account data API).
// The server then
//
//   - sends none of the ignored users' events to the ignoring user, except
//     state events: /sync timelines and /messages leave them out, and so
//     do /relations, /threads and the bundled aggregations (relations.go);
//   - does not send invites from ignored users (the invite stays pending
//     and unseen; the spec lets the server reject it, this one does not).
//
// The list is read from the store on every request that filters (one
// primary-key lookup; /sync reads it once per response), so a change
// takes effect on the next request: "the sync API for all clients should
// immediately start ignoring (or un-ignoring) the user". Nothing is
// resent or taken back when the list changes; the spec leaves it to the
// client to hide past events or start a fresh sync.
//
// One predicate, hiddenByIgnore, decides for every endpoint.

import (
	"encoding/json"
	"errors"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// ignoredUserListType is the account data type of the list. Spec:
// client-server-api m.ignored_user_list.
const ignoredUserListType = "m.ignored_user_list"

// ignoredUsers returns the users userID ignores (nil when none). A list
// that does not parse ignores nobody; a user never ignores themselves.
func (rs *roomsModule) ignoredUsers(userID string) (map[string]bool, error) {
	a, err := rs.st.GetAccountData(userID, "", ignoredUserListType)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c struct {
		IgnoredUsers map[string]json.RawMessage `json:"ignored_users"`
	}
	if json.Unmarshal(a.Content, &c) != nil || len(c.IgnoredUsers) == 0 {
		return nil, nil
	}
	out := make(map[string]bool, len(c.IgnoredUsers))
	for u := range c.IgnoredUsers {
		if u != userID {
			out[u] = true
		}
	}
	return out, nil
}

// hiddenByIgnore reports whether an event is kept from a user who ignores
// the users in ignored: every event of theirs but state events.
func hiddenByIgnore(ignored map[string]bool, r store.EventRow) bool {
	return r.StateKey == nil && ignored[r.Sender]
}

// inviteFromIgnored reports whether a pending invite (m, membership
// invite) was sent by an ignored user. The invite event is stored, also
// one received for a room this server is not in (as an outlier,
// fedroom_serve.go).
func (rs *roomsModule) inviteFromIgnored(ignored map[string]bool, m store.Membership) (bool, error) {
	if len(ignored) == 0 {
		return false, nil
	}
	row, err := rs.st.Event(m.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ignored[row.Sender], nil
}
