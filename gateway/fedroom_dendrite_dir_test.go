package gateway

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestDendriteDirectoryAndAliasJoin: the client side of query/directory,
// publicRooms and hierarchy against a real Dendrite, in both directions. A
// public room with an alias is made on one server, listed in its room
// directory and made a child of a public space; a user of the other
// server finds it in that server's directory (/publicRooms?server=),
// walks the space (/hierarchy over federation), resolves the alias and
// joins by it.
func TestDendriteDirectoryAndAliasJoin(t *testing.T) {
	bothWays(t, func(t *testing.T, onUs bool) {
		ctx := context.Background()
		d := startDendrite(t)
		us := startFedNode(t)
		ours := mxClient(t, us.URL, "alice", true)
		theirs := mxClient(t, d.ClientURL, "bob", false)
		host, guest, hostName := ours, theirs, us.Name
		if !onUs {
			host, guest, hostName = theirs, ours, d.Name
		}
		local := fmt.Sprintf("lobby%v", onUs)
		room, err := host.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public",
			Name: "Lobby", RoomAliasName: local, RoomVersion: "10"})
		if err != nil {
			t.Fatalf("create room: %v", err)
		}
		space, err := host.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space", RoomVersion: "10",
			CreationContent: map[string]any{"type": "m.space"}})
		if err != nil {
			t.Fatalf("create space: %v", err)
		}
		if _, err := host.SendStateEvent(ctx, space.RoomID, event.StateSpaceChild, room.RoomID.String(),
			map[string]any{"via": []string{hostName}}); err != nil {
			t.Fatalf("space child: %v", err)
		}
		alias := id.NewRoomAlias(local, hostName)

		// The host's directory, asked through the guest's server.
		eventually(t, "the room in the remote directory", func() error {
			var resp struct {
				Chunk []struct {
					RoomID id.RoomID `json:"room_id"`
					Name   string    `json:"name"`
				} `json:"chunk"`
			}
			u := guest.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "publicRooms"}, map[string]string{"server": hostName})
			if _, err := guest.MakeRequest(ctx, "GET", u, nil, &resp); err != nil {
				return err
			}
			for _, c := range resp.Chunk {
				if c.RoomID == room.RoomID && c.Name == "Lobby" {
					return nil
				}
			}
			return fmt.Errorf("not listed: %+v", resp.Chunk)
		})
		// The space, joined by the guest and walked through the guest's
		// server: the child room is not on it, so its summary comes from
		// the host's federation /hierarchy.
		if _, err := guest.JoinRoom(ctx, space.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{hostName}}); err != nil {
			t.Fatalf("join the space: %v", err)
		}
		var h struct {
			Rooms []struct {
				RoomID id.RoomID `json:"room_id"`
			} `json:"rooms"`
		}
		u := guest.BuildURL(mautrix.ClientURLPath{"v1", "rooms", space.RoomID, "hierarchy"})
		if _, err := guest.MakeRequest(ctx, "GET", u, nil, &h); err != nil || len(h.Rooms) != 2 || h.Rooms[0].RoomID != space.RoomID || h.Rooms[1].RoomID != room.RoomID {
			t.Fatalf("hierarchy through %s: %+v, %v", guest.UserID.Homeserver(), h.Rooms, err)
		}
		// The alias, resolved and joined through the guest's server.
		res, err := guest.ResolveAlias(ctx, alias)
		if err != nil || res.RoomID != room.RoomID {
			t.Fatalf("resolve %s: %+v, %v", alias, res, err)
		}
		if _, err := guest.JoinRoom(ctx, alias.String(), nil); err != nil {
			t.Fatalf("join %s: %v", alias, err)
		}
		waitMembership(t, host, room.RoomID, guest.UserID, event.MembershipJoin)
	})
}
