package gateway

// Room federation with a live Dendrite (DESIGN.md "Testing", issue 4):
// users on our node and on Dendrite, driven with mautrix clients, share
// rooms created on either side. Skipped unless MXMESH_DENDRITE_BIN is set
// (fails instead in CI); see fed_dendrite_test.go.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// interopWait bounds every wait for federation to deliver something.
const interopWait = 90 * time.Second

// mxClient registers a user on the homeserver at base and returns a
// logged-in mautrix client. insecure trusts any certificate (our node's is
// self-signed).
func mxClient(t *testing.T, base, name string, insecure bool) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli.Client = &http.Client{Timeout: 60 * time.Second}
	if insecure {
		cli.Client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	reg, err := cli.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: name, Password: "pw-" + name + "-secret"})
	if err != nil {
		t.Fatalf("register %s on %s: %v", name, base, err)
	}
	cli.SetCredentials(reg.UserID, reg.AccessToken)
	cli.DeviceID = reg.DeviceID
	return cli
}

// eventually retries f until it returns nil or interopWait passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(interopWait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// timelineBodies pages back through a room with cli and returns the bodies
// of its m.room.message events, oldest first.
func timelineBodies(cli *mautrix.Client, roomID id.RoomID) ([]string, error) {
	ctx := context.Background()
	var out []string
	from := ""
	for page := 0; page < 20; page++ {
		resp, err := cli.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			return nil, err
		}
		for _, e := range resp.Chunk {
			if e.Type == event.EventMessage {
				b, _ := e.Content.Raw["body"].(string)
				out = append(out, b)
			}
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		from = resp.End
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// waitBodies waits until cli's view of the room's messages is want.
func waitBodies(t *testing.T, cli *mautrix.Client, roomID id.RoomID, want []string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s's timeline", cli.UserID), func() error {
		got, err := timelineBodies(cli, roomID)
		if err != nil {
			return err
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

// waitMembership waits until cli sees user's membership in the room.
func waitMembership(t *testing.T, cli *mautrix.Client, roomID id.RoomID, user id.UserID, want event.Membership) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s sees %s as %s", cli.UserID, user, want), func() error {
		var m event.MemberEventContent
		err := cli.StateEvent(context.Background(), roomID, event.StateMember, string(user), &m)
		if err != nil {
			return err
		}
		if m.Membership != want {
			return fmt.Errorf("membership %q", m.Membership)
		}
		return nil
	})
}

// waitInvite long-polls cli's sync until it lists an invite to the room.
func waitInvite(t *testing.T, cli *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	since := ""
	eventually(t, fmt.Sprintf("%s's invite to %s", cli.UserID, roomID), func() error {
		resp, err := cli.SyncRequest(context.Background(), 2000, since, "", false, "")
		if err != nil {
			return err
		}
		since = resp.NextBatch
		if resp.Rooms.Invite[roomID] == nil {
			return errors.New("no invite yet")
		}
		return nil
	})
}

// join joins cli to a room, retrying while the room's servers catch up.
func join(t *testing.T, cli *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s joins %s", cli.UserID, roomID), func() error {
		_, err := cli.JoinRoomByID(context.Background(), roomID)
		return err
	})
}

// say sends a text message.
func say(t *testing.T, cli *mautrix.Client, roomID id.RoomID, body string) {
	t.Helper()
	if _, err := cli.SendText(context.Background(), roomID, body); err != nil {
		t.Fatalf("%s sends %q: %v", cli.UserID, body, err)
	}
}

// interopPair is one of our users and one Dendrite user in a shared room.
type interopPair struct {
	us     *fedNode
	d      *dendrite
	ours   *mautrix.Client // on our node
	theirs *mautrix.Client // on Dendrite
	roomID id.RoomID
}

// sharedRoom starts both servers and puts a user of each in one room,
// created on our side (onUs) or on Dendrite's.
func sharedRoom(t *testing.T, onUs bool) *interopPair {
	t.Helper()
	d := startDendrite(t)
	us := startFedNode(t)
	p := &interopPair{us: us, d: d}
	p.ours = mxClient(t, us.URL, "alice", true)
	p.theirs = mxClient(t, d.ClientURL, "bob", false)
	ctx := context.Background()
	creator, guest := p.ours, p.theirs
	if !onUs {
		creator, guest = p.theirs, p.ours
	}
	created, err := creator.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "interop", RoomVersion: "10"})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	p.roomID = created.RoomID
	if _, err := creator.InviteUser(ctx, p.roomID, &mautrix.ReqInviteUser{UserID: guest.UserID}); err != nil {
		t.Fatalf("invite %s: %v", guest.UserID, err)
	}
	waitInvite(t, guest, p.roomID)
	join(t, guest, p.roomID)
	waitMembership(t, creator, p.roomID, guest.UserID, event.MembershipJoin)
	waitMembership(t, guest, p.roomID, creator.UserID, event.MembershipJoin)
	return p
}

func bothWays(t *testing.T, f func(t *testing.T, onUs bool)) {
	t.Run("room on mxmesh", func(t *testing.T) { f(t, true) })
	t.Run("room on dendrite", func(t *testing.T) { f(t, false) })
}

// TestDendriteRoomMessages: invite and join across servers, then 20
// messages each way, seen in the same order on both sides.
func TestDendriteRoomMessages(t *testing.T) {
	bothWays(t, func(t *testing.T, onUs bool) {
		p := sharedRoom(t, onUs)
		var want []string
		for i := 0; i < 20; i++ {
			m := fmt.Sprintf("from mxmesh %d", i)
			say(t, p.ours, p.roomID, m)
			want = append(want, m)
		}
		waitBodies(t, p.theirs, p.roomID, want)
		for i := 0; i < 20; i++ {
			m := fmt.Sprintf("from dendrite %d", i)
			say(t, p.theirs, p.roomID, m)
			want = append(want, m)
		}
		waitBodies(t, p.ours, p.roomID, want)
		waitBodies(t, p.theirs, p.roomID, want)
	})
}
