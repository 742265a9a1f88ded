package gateway

// Room federation with a live Dendrite (DESIGN.md "Testing", issue 4):
// users on our node and on Dendrite, driven with mautrix clients, share
// rooms created on either side. Skipped unless MXMESH_DENDRITE_BIN is set
// (fails instead in CI); see fed_dendrite_test.go.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

// waitEphemeral long-polls cli's sync until an ephemeral event of the room
// satisfies cond.
func waitEphemeral(t *testing.T, cli *mautrix.Client, roomID id.RoomID, what string, cond func(e *event.Event) bool) {
	t.Helper()
	since := ""
	eventually(t, fmt.Sprintf("%s sees %s", cli.UserID, what), func() error {
		resp, err := cli.SyncRequest(context.Background(), 2000, since, "", false, "")
		if err != nil {
			return err
		}
		since = resp.NextBatch
		if jr := resp.Rooms.Join[roomID]; jr != nil {
			for _, e := range jr.Ephemeral.Events {
				_ = e.Content.ParseRaw(e.Type)
				if cond(e) {
					return nil
				}
			}
		}
		return errors.New("not yet")
	})
}

// TestDendriteRoomTypingReceiptsProfile: typing notifications, read
// receipts and a display name change cross in both directions.
func TestDendriteRoomTypingReceiptsProfile(t *testing.T) {
	bothWays(t, func(t *testing.T, onUs bool) {
		p := sharedRoom(t, onUs)
		ctx := context.Background()
		for _, pair := range [][2]*mautrix.Client{{p.ours, p.theirs}, {p.theirs, p.ours}} {
			from, to := pair[0], pair[1]
			if _, err := from.UserTyping(ctx, p.roomID, true, 30*time.Second); err != nil {
				t.Fatalf("%s typing: %v", from.UserID, err)
			}
			waitEphemeral(t, to, p.roomID, string(from.UserID)+" typing", func(e *event.Event) bool {
				return e.Type == event.EphemeralEventTyping && slicesContains(e.Content.AsTyping().UserIDs, from.UserID)
			})
			sent, err := to.SendText(ctx, p.roomID, "please read "+string(to.UserID))
			if err != nil {
				t.Fatal(err)
			}
			waitBodiesContain(t, from, p.roomID, "please read "+string(to.UserID))
			if err := from.SendReceipt(ctx, p.roomID, sent.EventID, event.ReceiptTypeRead, nil); err != nil {
				t.Fatalf("%s receipt: %v", from.UserID, err)
			}
			waitEphemeral(t, to, p.roomID, string(from.UserID)+"'s receipt", func(e *event.Event) bool {
				if e.Type != event.EphemeralEventReceipt {
					return false
				}
				_, ok := (*e.Content.AsReceipt())[sent.EventID][event.ReceiptTypeRead][from.UserID]
				return ok
			})
			name := "renamed " + string(from.UserID)
			if err := from.SetDisplayName(ctx, name); err != nil {
				t.Fatalf("%s set display name: %v", from.UserID, err)
			}
			eventually(t, fmt.Sprintf("%s sees %s's new name", to.UserID, from.UserID), func() error {
				var m event.MemberEventContent
				if err := to.StateEvent(ctx, p.roomID, event.StateMember, string(from.UserID), &m); err != nil {
					return err
				}
				if m.Displayname != name {
					return fmt.Errorf("display name %q", m.Displayname)
				}
				return nil
			})
		}
	})
}

func slicesContains(list []id.UserID, u id.UserID) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}

// waitBodiesContain waits until cli's timeline of the room holds body.
func waitBodiesContain(t *testing.T, cli *mautrix.Client, roomID id.RoomID, body string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s sees %q", cli.UserID, body), func() error {
		got, err := timelineBodies(cli, roomID)
		if err != nil {
			return err
		}
		for _, b := range got {
			if b == body {
				return nil
			}
		}
		return fmt.Errorf("timeline %q", got)
	})
}

// TestDendriteRoomKickBanLeaveRejoin: the room creator kicks, bans and
// unbans the other server's user; that user leaves and rejoins after a new
// invite; both servers agree on every membership.
func TestDendriteRoomKickBanLeaveRejoin(t *testing.T) {
	bothWays(t, func(t *testing.T, onUs bool) {
		p := sharedRoom(t, onUs)
		ctx := context.Background()
		admin, guest := p.ours, p.theirs
		if !onUs {
			admin, guest = p.theirs, p.ours
		}
		both := func(want event.Membership) {
			t.Helper()
			waitMembership(t, admin, p.roomID, guest.UserID, want)
			waitMembership(t, guest, p.roomID, guest.UserID, want)
		}
		if _, err := admin.KickUser(ctx, p.roomID, &mautrix.ReqKickUser{UserID: guest.UserID, Reason: "test"}); err != nil {
			t.Fatalf("kick: %v", err)
		}
		both(event.MembershipLeave)
		if _, err := admin.BanUser(ctx, p.roomID, &mautrix.ReqBanUser{UserID: guest.UserID}); err != nil {
			t.Fatalf("ban: %v", err)
		}
		waitMembership(t, admin, p.roomID, guest.UserID, event.MembershipBan)
		if _, err := admin.UnbanUser(ctx, p.roomID, &mautrix.ReqUnbanUser{UserID: guest.UserID}); err != nil {
			t.Fatalf("unban: %v", err)
		}
		waitMembership(t, admin, p.roomID, guest.UserID, event.MembershipLeave)
		if _, err := admin.InviteUser(ctx, p.roomID, &mautrix.ReqInviteUser{UserID: guest.UserID}); err != nil {
			t.Fatalf("re-invite: %v", err)
		}
		waitInvite(t, guest, p.roomID)
		join(t, guest, p.roomID)
		both(event.MembershipJoin)
		say(t, guest, p.roomID, "back again")
		waitBodiesContain(t, admin, p.roomID, "back again")
		if _, err := guest.LeaveRoom(ctx, p.roomID); err != nil {
			t.Fatalf("leave: %v", err)
		}
		waitMembership(t, admin, p.roomID, guest.UserID, event.MembershipLeave)
		if _, err := admin.InviteUser(ctx, p.roomID, &mautrix.ReqInviteUser{UserID: guest.UserID}); err != nil {
			t.Fatalf("invite after leave: %v", err)
		}
		waitInvite(t, guest, p.roomID)
		join(t, guest, p.roomID)
		both(event.MembershipJoin)
		say(t, admin, p.roomID, "welcome back")
		waitBodiesContain(t, guest, p.roomID, "welcome back")
	})
}

// TestDendriteRoomThreeServersBackfill: after 10 messages from each side,
// a user of a second mxmesh node joins late, pages back through history it
// must backfill from the room's servers, and all three servers end up
// with the same messages in the same order.
func TestDendriteRoomThreeServersBackfill(t *testing.T) {
	bothWays(t, func(t *testing.T, onUs bool) {
		p := sharedRoom(t, onUs)
		ctx := context.Background()
		var want []string
		for i := 0; i < 10; i++ {
			for _, c := range []*mautrix.Client{p.ours, p.theirs} {
				m := fmt.Sprintf("%s %d", c.UserID.Localpart(), i)
				say(t, c, p.roomID, m)
				want = append(want, m)
				waitBodiesContain(t, p.ours, p.roomID, m)
				waitBodiesContain(t, p.theirs, p.roomID, m)
			}
		}
		// Enough history that the late joiner backfills in several
		// batches: the bottom of the first is checked against the state
		// the serving server reports before it (/state_ids).
		for i := 0; i < 80; i++ {
			m := fmt.Sprintf("bulk %d", i)
			say(t, p.ours, p.roomID, m)
			want = append(want, m)
		}
		waitBodies(t, p.theirs, p.roomID, want)
		third := startFedNode(t)
		carol := mxClient(t, third.URL, "carol", true)
		creator := p.ours
		if !onUs {
			creator = p.theirs
		}
		if _, err := creator.InviteUser(ctx, p.roomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
			t.Fatalf("invite carol: %v", err)
		}
		waitInvite(t, carol, p.roomID)
		join(t, carol, p.roomID)
		waitBodies(t, carol, p.roomID, want)
		say(t, carol, p.roomID, "carol is here")
		want = append(want, "carol is here")
		waitBodiesContain(t, p.theirs, p.roomID, "carol is here")
		say(t, p.theirs, p.roomID, "hi carol")
		want = append(want, "hi carol")
		for _, c := range []*mautrix.Client{p.ours, p.theirs, carol} {
			waitBodies(t, c, p.roomID, want)
		}
	})
}

// restartableDendrite is a Dendrite that can be stopped and started again
// on the same ports and database.
type restartableDendrite struct {
	*dendrite
	t      *testing.T
	args   []string
	cmd    *exec.Cmd
	exited chan error
	log    *os.File
}

// startRestartableDendrite writes keys, a certificate and a config into a
// temporary directory and starts Dendrite (Start waits until its client
// API answers); it is stopped when the test ends, its log printed if the
// test failed. Stop and Start restart it on the same ports and database.
func startRestartableDendrite(t *testing.T) *restartableDendrite {
	t.Helper()
	bin := dendriteBinDir(t)
	dir := t.TempDir()
	httpPort, httpsPort := fedFreePort(t), fedFreePort(t)
	name := fmt.Sprintf("127.0.0.1:%d", httpsPort)
	if out, err := exec.Command(filepath.Join(bin, "generate-keys"), "-private-key", filepath.Join(dir, "matrix_key.pem")).CombinedOutput(); err != nil {
		t.Fatalf("generate-keys: %v\n%s", err, out)
	}
	certPEM, keyPEM, err := SelfSignedCert(name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("cannot parse the generated certificate")
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM,
		filepath.Join(dir, "dendrite.yaml"): []byte(dendriteConfig(name, dir))} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.Create(filepath.Join(dir, "dendrite.log"))
	if err != nil {
		t.Fatal(err)
	}
	r := &restartableDendrite{t: t, log: log,
		dendrite: &dendrite{Name: name, ClientURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), CertPool: pool, dir: dir},
		args: []string{filepath.Join(bin, "dendrite"), "-config", filepath.Join(dir, "dendrite.yaml"),
			"-http-bind-address", fmt.Sprintf("127.0.0.1:%d", httpPort), "-https-bind-address", name,
			"-tls-cert", certFile, "-tls-key", keyFile, "-really-enable-open-registration"}}
	t.Cleanup(func() {
		r.Stop()
		log.Close()
		if t.Failed() {
			if b, err := os.ReadFile(log.Name()); err == nil {
				t.Logf("dendrite log (last 8 KiB):\n%s", fedTail(b, 8<<10))
			}
		}
	})
	r.Start()
	return r
}

// Start runs Dendrite and waits until its client API answers.
func (r *restartableDendrite) Start() {
	t := r.t
	t.Helper()
	r.cmd = exec.Command(r.args[0], r.args[1:]...)
	r.cmd.Dir = r.dir
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start dendrite: %v", err)
	}
	r.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, ch chan error) { ch <- cmd.Wait() }(r.cmd, r.exited)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(r.ClientURL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-r.exited:
			r.cmd = nil
			t.Fatalf("dendrite exited before answering: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dendrite did not answer on %s within 90 s", r.ClientURL)
		}
	}
}

// Stop interrupts Dendrite and waits for it to exit.
func (r *restartableDendrite) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(15 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// TestDendriteRoomStoppedPeer: Dendrite is stopped, our user sends 10
// messages, Dendrite is started again, and all 10 reach its user in order.
func TestDendriteRoomStoppedPeer(t *testing.T) {
	bothWays(t, func(t *testing.T, onUs bool) {
		d := startRestartableDendrite(t)
		us := startFedNode(t)
		alice := mxClient(t, us.URL, "alice", true)
		bob := mxClient(t, d.ClientURL, "bob", false)
		ctx := context.Background()
		creator, guest := alice, bob
		if !onUs {
			creator, guest = bob, alice
		}
		created, err := creator.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "10"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		if _, err := creator.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: guest.UserID}); err != nil {
			t.Fatal(err)
		}
		waitInvite(t, guest, roomID)
		join(t, guest, roomID)
		waitMembership(t, alice, roomID, bob.UserID, event.MembershipJoin)
		say(t, alice, roomID, "before")
		waitBodies(t, bob, roomID, []string{"before"})
		d.Stop()
		want := []string{"before"}
		for i := 0; i < 10; i++ {
			m := fmt.Sprintf("while stopped %d", i)
			say(t, alice, roomID, m)
			want = append(want, m)
		}
		d.Start()
		waitBodies(t, bob, roomID, want)
		say(t, bob, roomID, "back")
		waitBodies(t, alice, roomID, append(want, "back"))
	})
}

// TestDendriteRoomLateJoinerBackfillsFromUs: Dendrite joins a room on our
// node after 15 messages and pages back through them, which it can only do
// by backfilling from us (GET /backfill, /event_auth, /state_ids).
func TestDendriteRoomLateJoinerBackfillsFromUs(t *testing.T) {
	d := startDendrite(t)
	us := startFedNode(t)
	alice := mxClient(t, us.URL, "alice", true)
	bob := mxClient(t, d.ClientURL, "bob", false)
	ctx := context.Background()
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "10"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	var want []string
	for i := 0; i < 15; i++ {
		m := fmt.Sprintf("history %d", i)
		say(t, alice, roomID, m)
		want = append(want, m)
	}
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	waitInvite(t, bob, roomID)
	join(t, bob, roomID)
	waitBodies(t, bob, roomID, want)
}
