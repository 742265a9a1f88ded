package gateway

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// liveServer is a real node behind the HTTP front door on loopback, over a
// data directory that outlives it (for restart tests).
type liveServer struct {
	base string
	stop func()
}

// startLive starts a node on dir (created by the first call) at addr
// ("127.0.0.1:0" for any port).
func startLive(t testing.TB, dir, addr string) *liveServer {
	t.Helper()
	cfg := homeserver.DefaultConfig("mx.test")
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.BcryptCost = 4
	cfg.Dir = dir
	st, err := store.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := homeserver.GenerateSigningKey(clock.SeededRNG(11))
	if err != nil {
		t.Fatal(err)
	}
	loop := homeserver.NewLoop()
	node, err := homeserver.New(homeserver.Options{Config: cfg, Store: st, SigningKey: key,
		Clock: clock.Real(), RNG: clock.SystemRNG(), Loop: loop})
	if err != nil {
		t.Fatal(err)
	}
	go loop.Run()
	srv := NewHTTPServer(node, nil)
	bound, err := srv.ListenPlain(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = srv.Shutdown(context.Background())
			_ = loop.Post(node.Stop)
			<-loop.Close()
			st.Close()
		})
	}
	t.Cleanup(stop)
	return &liveServer{base: "http://" + bound.String(), stop: stop}
}

// newUser registers a user and returns a logged-in client.
func newUser(t testing.TB, base, name string) *mautrix.Client {
	t.Helper()
	ctx := context.Background()
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "pw-" + name + "-secret"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	cli.SetCredentials(reg.UserID, reg.AccessToken)
	cli.DeviceID = reg.DeviceID
	return cli
}

// syncFilter is the inline sync filter of syncUntil.
const syncFilter = `{"room":{"timeline":{"limit":100}}}`

// syncUntil long-polls until cond holds for the room's new timeline
// events (collecting them), or fails after a bounded number of polls.
func syncUntil(t *testing.T, cli *mautrix.Client, since *string, roomID id.RoomID, cond func(collected []*event.Event, resp *mautrix.RespSync) bool) []*event.Event {
	t.Helper()
	ctx := context.Background()
	var got []*event.Event
	for range 50 {
		// An inline filter with room for every event the tests send: with
		// the default limit (10) a slow reader gets a limited timeline and
		// would miss events it waits for.
		resp, err := cli.SyncRequest(ctx, 10000, *since, syncFilter, false, "")
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		*since = resp.NextBatch
		if jr := resp.Rooms.Join[roomID]; jr != nil {
			if jr.Timeline.Limited && len(got) > 0 {
				t.Fatalf("sync timeline limited after %d events: events were skipped", len(got))
			}
			got = append(got, jr.Timeline.Events...)
		}
		if cond(got, resp) {
			return got
		}
	}
	t.Fatal("condition not reached after 50 long polls")
	return nil
}

func bodyOf(e *event.Event) string {
	b, _ := e.Content.Raw["body"].(string)
	return b
}

func TestMautrixConversation(t *testing.T) {
	srv := startLive(t, t.TempDir(), "127.0.0.1:0")
	ctx := context.Background()
	alice := newUser(t, srv.base, "alice")
	bob := newUser(t, srv.base, "bob")

	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	roomID := created.RoomID
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", &event.RoomNameEventContent{Name: "Ham shack"}); err != nil {
		t.Fatalf("name: %v", err)
	}
	if _, err := alice.SendStateEvent(ctx, roomID, event.StateTopic, "", &event.TopicEventContent{Topic: "2m band"}); err != nil {
		t.Fatalf("topic: %v", err)
	}
	if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("invite: %v", err)
	}

	// Bob sees the invite, joins, and reads the name and topic.
	bobSince := ""
	syncUntil(t, bob, &bobSince, roomID, func(_ []*event.Event, r *mautrix.RespSync) bool {
		return r.Rooms.Invite[roomID] != nil
	})
	if _, err := bob.JoinRoom(ctx, roomID.String(), nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	var name event.RoomNameEventContent
	if err := bob.StateEvent(ctx, roomID, event.StateRoomName, "", &name); err != nil || name.Name != "Ham shack" {
		t.Fatalf("name: %v %q", err, name.Name)
	}
	var topic event.TopicEventContent
	if err := bob.StateEvent(ctx, roomID, event.StateTopic, "", &topic); err != nil || topic.Topic != "2m band" {
		t.Fatalf("topic: %v %q", err, topic.Topic)
	}
	syncUntil(t, bob, &bobSince, roomID, func(got []*event.Event, _ *mautrix.RespSync) bool {
		for _, e := range got {
			if e.Type == event.StateMember && e.GetStateKey() == bob.UserID.String() {
				return true
			}
		}
		return false
	})

	// 20 messages arrive at Bob's long poll in order.
	done := make(chan error, 1)
	go func() {
		for i := range 20 {
			if _, err := alice.SendText(ctx, roomID, fmt.Sprintf("message %02d", i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var bodies []string
	got := syncUntil(t, bob, &bobSince, roomID, func(got []*event.Event, _ *mautrix.RespSync) bool {
		bodies = bodies[:0]
		for _, e := range got {
			if e.Type == event.EventMessage {
				bodies = append(bodies, bodyOf(e))
			}
		}
		return len(bodies) >= 20
	})
	if err := <-done; err != nil {
		t.Fatalf("send: %v", err)
	}
	for i, b := range bodies {
		if want := fmt.Sprintf("message %02d", i); b != want {
			t.Fatalf("message %d is %q, want %q (all: %v)", i, b, want, bodies)
		}
	}
	last := got[len(got)-1]

	// Typing reaches Alice as an ephemeral event.
	aliceSince := ""
	if r, err := alice.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
		t.Fatal(err)
	} else {
		aliceSince = r.NextBatch
	}
	if _, err := bob.UserTyping(ctx, roomID, true, 20*time.Second); err != nil {
		t.Fatalf("typing: %v", err)
	}
	syncUntil(t, alice, &aliceSince, roomID, func(_ []*event.Event, r *mautrix.RespSync) bool {
		jr := r.Rooms.Join[roomID]
		if jr == nil {
			return false
		}
		for _, e := range jr.Ephemeral.Events {
			if e.Type == event.EphemeralEventTyping {
				ids, _ := e.Content.Raw["user_ids"].([]any)
				return len(ids) == 1 && ids[0] == bob.UserID.String()
			}
		}
		return false
	})

	// A read receipt reaches Alice.
	if err := bob.MarkRead(ctx, roomID, last.ID); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	syncUntil(t, alice, &aliceSince, roomID, func(_ []*event.Event, r *mautrix.RespSync) bool {
		jr := r.Rooms.Join[roomID]
		if jr == nil {
			return false
		}
		for _, e := range jr.Ephemeral.Events {
			if e.Type == event.EphemeralEventReceipt {
				if byType, ok := e.Content.Raw[last.ID.String()].(map[string]any); ok {
					users, _ := byType["m.read"].(map[string]any)
					_, ok := users[bob.UserID.String()]
					return ok
				}
			}
		}
		return false
	})

	// A reply from Bob carries the relation to Alice's message.
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "roger"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(last.ID)
	sent, err := bob.SendMessageEvent(ctx, roomID, event.EventMessage, reply)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	evt, err := alice.GetEvent(ctx, roomID, sent.EventID)
	if err != nil {
		t.Fatalf("get event: %v", err)
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil {
		t.Fatal(err)
	}
	if evt.Content.AsMessage().RelatesTo.GetReplyTo() != last.ID {
		t.Fatalf("reply relation lost: %s", evt.Content.VeryRaw)
	}

	// /messages backwards in pages of 4: the reply, then the 20 messages.
	var back []string
	from := ""
	for range 20 {
		page, err := alice.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, 4)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		if len(page.Chunk) > 4 {
			t.Fatalf("page of %d events", len(page.Chunk))
		}
		for _, e := range page.Chunk {
			if e.Type == event.EventMessage {
				back = append(back, bodyOf(e))
			}
		}
		if page.End == "" {
			break
		}
		from = page.End
	}
	want := []string{"roger"}
	for i := 19; i >= 0; i-- {
		want = append(want, fmt.Sprintf("message %02d", i))
	}
	if !slices.Equal(back, want) {
		t.Fatalf("backwards pagination:\n got %v\nwant %v", back, want)
	}

	// State and member queries.
	state, err := bob.State(ctx, roomID)
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if state[event.StateRoomName][""] == nil || state[event.StateTopic][""] == nil || len(state[event.StateMember]) != 2 {
		t.Fatalf("state map: %d types, %d members", len(state), len(state[event.StateMember]))
	}
	members, err := alice.JoinedMembers(ctx, roomID)
	if err != nil || len(members.Joined) != 2 {
		t.Fatalf("joined members: %v %d", err, len(members.Joined))
	}
	mem, err := alice.Members(ctx, roomID)
	if err != nil || len(mem.Chunk) != 2 {
		t.Fatalf("members: %v", err)
	}
	rooms, err := bob.JoinedRooms(ctx)
	if err != nil || len(rooms.JoinedRooms) != 1 || rooms.JoinedRooms[0] != roomID {
		t.Fatalf("joined rooms: %v %v", err, rooms)
	}

	// Bob leaves; Alice sees it.
	if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
		t.Fatalf("leave: %v", err)
	}
	syncUntil(t, alice, &aliceSince, roomID, func(got []*event.Event, _ *mautrix.RespSync) bool {
		for _, e := range got {
			if e.Type == event.StateMember && e.GetStateKey() == bob.UserID.String() && e.Content.Raw["membership"] == "leave" {
				return true
			}
		}
		return false
	})
	if _, err := bob.SendText(ctx, roomID, "after leaving"); err == nil {
		t.Fatal("a user who left could still send")
	}
}

// TestMautrixRestart stops the server in the middle of a conversation and
// starts it again on the same data: the sync token and the history survive.
func TestMautrixRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startLive(t, dir, "127.0.0.1:0")
	addr := strings.TrimPrefix(srv.base, "http://")
	ctx := context.Background()
	alice := newUser(t, srv.base, "alice")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Persistent"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	for i := range 5 {
		if _, err := alice.SendText(ctx, roomID, fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	since := resp.NextBatch
	srv.stop()

	// Same address, so the client (and its token) carries on unchanged.
	var srv2 *liveServer
	for range 50 {
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv2 = startLive(t, dir, addr)
	_ = srv2
	for i := range 3 {
		if _, err := alice.SendText(ctx, roomID, fmt.Sprintf("after %d", i)); err != nil {
			t.Fatalf("send after restart: %v", err)
		}
	}
	got := syncUntil(t, alice, &since, roomID, func(got []*event.Event, _ *mautrix.RespSync) bool { return len(got) >= 3 })
	var bodies []string
	for _, e := range got {
		bodies = append(bodies, bodyOf(e))
	}
	if !slices.Equal(bodies, []string{"after 0", "after 1", "after 2"}) {
		t.Fatalf("incremental sync across the restart: %v", bodies)
	}
	page, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	var hist []string
	for _, e := range page.Chunk {
		hist = append(hist, bodyOf(e))
	}
	want := []string{"after 2", "after 1", "after 0", "before 4", "before 3", "before 2", "before 1", "before 0"}
	if !slices.Equal(hist, want) {
		t.Fatalf("history across the restart: %v", hist)
	}
}

// BenchmarkSendSync measures messages per second and send→sync latency
// through the HTTP API: 4 rooms, 2 senders per room in a closed loop (each
// sends its next message when the previous PUT returns), and one reader
// per room long-polling /sync. Reported: msgs/s, p50-ms, p99-ms.
func BenchmarkSendSync(b *testing.B) {
	const rooms, sendersPerRoom = 4, 2
	srv := startLive(b, b.TempDir(), "127.0.0.1:0")
	ctx := context.Background()
	type roomSetup struct {
		id      id.RoomID
		reader  *mautrix.Client
		senders []*mautrix.Client
		since   string
	}
	setups := make([]roomSetup, rooms)
	for r := range rooms {
		reader := newUser(b, srv.base, fmt.Sprintf("reader%d", r))
		created, err := reader.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			b.Fatal(err)
		}
		setups[r] = roomSetup{id: created.RoomID, reader: reader}
		for s := range sendersPerRoom {
			cli := newUser(b, srv.base, fmt.Sprintf("sender%d_%d", r, s))
			if _, err := cli.JoinRoom(ctx, created.RoomID.String(), nil); err != nil {
				b.Fatal(err)
			}
			setups[r].senders = append(setups[r].senders, cli)
		}
	}
	for i := range setups {
		r, err := setups[i].reader.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			b.Fatal(err)
		}
		setups[i].since = r.NextBatch
	}
	perSender := max(b.N/(rooms*sendersPerRoom), 1)
	total := perSender * rooms * sendersPerRoom

	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	var latencies []time.Duration
	var wg sync.WaitGroup
	readersDone := make(chan struct{})
	var readerWG sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, rsu := range setups {
		readerWG.Add(1)
		go func() {
			defer readerWG.Done()
			since := rsu.since
			want := perSender * sendersPerRoom
			seen := 0
			for seen < want {
				select {
				case <-readersDone:
					b.Logf("reader of %s saw %d of %d", rsu.id, seen, want)
					return
				default:
				}
				// A timeline limit above what can pile up between two polls,
				// so no response is "limited" and nothing needs backfilling.
				r, err := rsu.reader.SyncRequest(ctx, 5000, since, `{"room":{"timeline":{"limit":1000}}}`, false, "")
				if err != nil {
					b.Error(err)
					return
				}
				now := time.Now()
				since = r.NextBatch
				if jr := r.Rooms.Join[rsu.id]; jr != nil {
					mu.Lock()
					for _, e := range jr.Timeline.Events {
						if t0, ok := sentAt[bodyOf(e)]; ok {
							latencies = append(latencies, now.Sub(t0))
							seen++
						}
					}
					mu.Unlock()
				}
			}
		}()
		for si, s := range rsu.senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perSender {
					body := fmt.Sprintf("%s/%d/%d", rsu.id, si, i)
					mu.Lock()
					sentAt[body] = time.Now()
					mu.Unlock()
					if _, err := s.SendText(ctx, rsu.id, body); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	waitDone := make(chan struct{})
	go func() { readerWG.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(30 * time.Second):
		close(readersDone)
		b.Fatal("readers did not receive every message within 30 s")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	if len(latencies) != total {
		b.Fatalf("received %d of %d messages", len(latencies), total)
	}
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
