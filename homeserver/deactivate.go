package homeserver

// What deactivating an account does beyond the accounts module (login.go
// handleDeactivate: the account refuses logins, its devices and with them
// its pushers are deleted). Spec: client-server-api "POST
// /_matrix/client/v3/account/deactivate": the server should make the user
// leave every room (as Synapse and Dendrite do), so other members and
// servers see the account go; and the user's server-side key backups go,
// since nobody can log in to use them again.
//
// The user leaves every room this server is in (a leave event, sent on to
// the other servers like any), and declines pending invites to rooms it
// is not in through the inviting server; those go on after the answer and
// a failure is only logged (the account is gone either way).

import (
	"slices"

	"github.com/mxmesh/mxmesh/homeserver/auth"
)

func init() {
	routeGroups = append(routeGroups, deactivationHooks)
}

// deactivationHooks registers the rooms' and key backups' part of account
// deactivation; it serves no routes.
func deactivationHooks(n *Node) ([]Route, error) {
	n.OnAccountDeactivated(func(userID string) error {
		if rs := roomsOf(n); rs != nil {
			if err := rs.leaveAll(userID); err != nil {
				return err
			}
		}
		return n.store.DeleteUserKeyBackups(userID)
	})
	return nil, nil
}

// leaveAll makes userID leave (or decline) every room they are joined,
// invited to or knocking on.
func (rs *roomsModule) leaveAll(userID string) error {
	var rooms []string
	for roomID := range rs.userRooms[userID] {
		rooms = append(rooms, roomID)
	}
	slices.Sort(rooms)
	fr := fedRoomsOf(rs.n)
	for _, roomID := range rooms {
		switch rs.membership(roomID, userID) {
		case auth.Join, auth.Invite, auth.Knock:
		default:
			continue
		}
		if fr != nil && !fr.inRoom(roomID) {
			fr.rejectRemoteInvite(roomID, userID, "account deactivated", func(err error) {
				if err != nil {
					rs.n.log.Info("deactivation: could not decline a remote invite", "room", roomID, "user", userID, "err", err)
				}
			})
			continue
		}
		if err := rs.setOwnMembership(roomID, userID, auth.Leave, "account deactivated"); err != nil {
			return err
		}
	}
	return nil
}
