package homeserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

const testPushURL = "https://push.example/_matrix/push/v1/notify"

// setPusher is a valid POST /pushers/set body for an http pusher.
func setPusher(appID, pushKey, url string) map[string]any {
	return map[string]any{"kind": "http", "app_id": appID, "pushkey": pushKey, "app_display_name": "App",
		"device_display_name": "Phone", "lang": "en", "data": map[string]any{"url": url, "extra": 1}}
}

func listPushers(t *testing.T, tn *testNode, token string) []map[string]any {
	t.Helper()
	r := ok(t, tn.do("GET", cs+"/pushers", token, nil))
	var out struct {
		Pushers []map[string]any `json:"pushers"`
	}
	if err := json.Unmarshal(r.Raw, &out); err != nil || out.Pushers == nil {
		t.Fatalf("GET /pushers: %s (%v)", r.Raw, err)
	}
	return out.Pushers
}

func TestPushersSetListDelete(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	_, tok2, _ := tn.register("bob", "pw")
	if ps := listPushers(t, tn, tok); len(ps) != 0 {
		t.Fatalf("new user has pushers: %v", ps)
	}
	bad := []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"app_id": "a", "pushkey": "k"}, 400, ErrCodeMissingParam},
		{map[string]any{"kind": "http", "pushkey": "k"}, 400, ErrCodeMissingParam},
		{map[string]any{"kind": "http", "app_id": "a", "pushkey": "k", "lang": "en"}, 400, ErrCodeMissingParam},
		{func() any { b := setPusher("a", "k", testPushURL); delete(b, "data"); return b }(), 400, ErrCodeMissingParam},
		{func() any { b := setPusher("a", "k", testPushURL); b["data"] = map[string]any{}; return b }(), 400, ErrCodeMissingParam},
		{setPusher("a", "k", "http://push.example/_matrix/push/v1/notify"), 400, ErrCodeInvalidParam},
		{setPusher("a", "k", "https://push.example/notify"), 400, ErrCodeInvalidParam},
		{setPusher("a", "k", "ftp://push.example/_matrix/push/v1/notify"), 400, ErrCodeInvalidParam},
		{func() any { b := setPusher("a", "k", testPushURL); b["kind"] = "email"; return b }(), 400, ErrCodeInvalidParam},
		{func() any { b := setPusher("a", "k", testPushURL); b["data"] = "x"; return b }(), 400, ErrCodeBadJSON},
		{func() any {
			b := setPusher("a", "k", testPushURL)
			b["data"] = map[string]any{"url": testPushURL, "format": "full"}
			return b
		}(), 400, ErrCodeInvalidParam},
		{setPusher(string(make([]byte, 65)), "k", testPushURL), 400, ErrCodeInvalidParam},
		{setPusher("a", string(make([]byte, 513)), testPushURL), 400, ErrCodeInvalidParam},
		{map[string]any{"kind": 5, "app_id": "a", "pushkey": "k"}, 400, ErrCodeBadJSON},
		{"[]", 400, ErrCodeBadJSON},
	}
	for i, c := range bad {
		r := tn.do("POST", cs+"/pushers/set", tok, c.body)
		if r.Status != c.status || r.str("errcode") != c.code {
			t.Errorf("case %d: %d %s, want %d %s", i, r.Status, r.Raw, c.status, c.code)
		}
	}
	if ps := listPushers(t, tn, tok); len(ps) != 0 {
		t.Fatalf("a refused request stored a pusher: %v", ps)
	}
	ok(t, tn.do("POST", cs+"/pushers/set", tok, setPusher("app.one", "key1", testPushURL)))
	loop := setPusher("app.two", "key2", "http://127.0.0.1:9/_matrix/push/v1/notify")
	loop["profile_tag"] = "tag"
	ok(t, tn.do("POST", cs+"/pushers/set", tok, loop))
	ps := listPushers(t, tn, tok)
	if len(ps) != 2 || ps[0]["app_id"] != "app.one" || ps[0]["pushkey"] != "key1" || ps[0]["kind"] != "http" ||
		ps[0]["lang"] != "en" || ps[1]["profile_tag"] != "tag" {
		t.Fatalf("pushers: %v", ps)
	}
	if d, _ := ps[0]["data"].(map[string]any); d["url"] != testPushURL || d["extra"] != 1.0 {
		t.Fatalf("data: %v", ps[0]["data"])
	}
	// bob takes key1 without append: alice loses it; with append both
	// keep it.
	ok(t, tn.do("POST", cs+"/pushers/set", tok2, setPusher("app.one", "key1", testPushURL)))
	if ps := listPushers(t, tn, tok); len(ps) != 1 || ps[0]["app_id"] != "app.two" {
		t.Fatalf("alice after bob took key1: %v", ps)
	}
	b := setPusher("app.two", "key2", testPushURL)
	b["append"] = true
	ok(t, tn.do("POST", cs+"/pushers/set", tok2, b))
	if len(listPushers(t, tn, tok)) != 1 || len(listPushers(t, tn, tok2)) != 2 {
		t.Fatal("append took the pusher from alice")
	}
	// kind null deletes.
	ok(t, tn.do("POST", cs+"/pushers/set", tok, map[string]any{"kind": nil, "app_id": "app.two", "pushkey": "key2"}))
	if ps := listPushers(t, tn, tok); len(ps) != 0 {
		t.Fatalf("after delete: %v", ps)
	}
	// Logging out deletes the device and its pushers.
	ok(t, tn.do("POST", cs+"/logout", tok2, map[string]any{}))
	_, tok3, _ := tn.register("carol", "pw")
	ok(t, tn.do("POST", cs+"/pushers/set", tok3, setPusher("app.one", "key1", testPushURL)))
	if us, _ := tn.store.PusherUsers(); len(us) != 1 || us[0] != "@carol:test.local" {
		t.Fatalf("pusher users after bob's logout: %v", us)
	}
}

// pushNotes decodes the notifications a MemoryPusher delivered.
func pushNotes(t *testing.T, mp *MemoryPusher) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range mp.Sent {
		var b struct {
			Notification map[string]any `json:"notification"`
		}
		if err := json.Unmarshal(s.Body, &b); err != nil || b.Notification == nil {
			t.Fatalf("notification body %s: %v", s.Body, err)
		}
		out = append(out, b.Notification)
	}
	return out
}

func TestPushNotifiesOtherMembers(t *testing.T) {
	tn := newTestNode(t, nil)
	mp := &MemoryPusher{}
	tn.pusher = mp
	alice, atok, _ := tn.register("alice", "pw")
	bob, btok, _ := tn.register("bob", "pw")
	ok(t, tn.do("PUT", cs+"/profile/"+esc(alice)+"/displayname", atok, map[string]string{"displayname": "Alice A"}))
	ok(t, tn.do("POST", cs+"/pushers/set", btok, setPusher("app.bob", "bobkey", testPushURL)))
	ok(t, tn.do("POST", cs+"/pushers/set", atok, setPusher("app.alice", "alicekey", testPushURL)))
	room := tn.createRoom(atok, map[string]any{"name": "Tea room"})
	ok(t, tn.do("POST", cs+"/rooms/"+esc(room)+"/invite", atok, map[string]string{"user_id": bob}))
	mp.Run()
	notes := pushNotes(t, mp)
	if len(notes) != 1 || notes[0]["type"] != "m.room.member" || notes[0]["user_is_target"] != true {
		t.Fatalf("invite notifications: %v", notes)
	}
	ok(t, tn.do("POST", cs+"/join/"+esc(room), btok, map[string]any{}))
	mp.Sent = nil
	ev := tn.send(atok, room, "t1", "hello bob")
	mp.Run()
	notes = pushNotes(t, mp)
	if len(notes) != 1 {
		t.Fatalf("got %d notifications, want 1 (to bob only): %s", len(notes), mp.Sent)
	}
	if mp.Sent[0].URL != testPushURL {
		t.Fatalf("sent to %s", mp.Sent[0].URL)
	}
	n := notes[0]
	content, _ := n["content"].(map[string]any)
	counts, _ := n["counts"].(map[string]any)
	devs, _ := n["devices"].([]any)
	if n["event_id"] != ev || n["room_id"] != room || n["type"] != "m.room.message" || n["sender"] != alice ||
		n["sender_display_name"] != "Alice A" || n["room_name"] != "Tea room" || n["prio"] != "high" ||
		content["body"] != "hello bob" || counts["unread"] != 1.0 || len(devs) != 1 {
		t.Fatalf("notification: %v", n)
	}
	dev, _ := devs[0].(map[string]any)
	data, _ := dev["data"].(map[string]any)
	if dev["app_id"] != "app.bob" || dev["pushkey"] != "bobkey" || dev["pushkey_ts"] != float64(tn.Now().Unix()) ||
		data["url"] != nil || data["extra"] != 1.0 || dev["tweaks"] == nil {
		t.Fatalf("device: %v", dev)
	}
	// A one-to-one room's rule carries the default sound, which wakes the
	// device (prio high).
	if tw, _ := dev["tweaks"].(map[string]any); tw["sound"] != "default" {
		t.Fatalf("tweaks %v, want the rule's sound", tw)
	}
	// The count follows sync's: a second message makes it 2; a mention
	// highlights.
	mp.Sent = nil
	tn.send(atok, room, "t2", "bob, are you there?")
	mp.Run()
	notes = pushNotes(t, mp)
	if len(notes) != 1 || notes[0]["counts"].(map[string]any)["unread"] != 2.0 {
		t.Fatalf("second notification: %v", notes)
	}
	if tw := notes[0]["devices"].([]any)[0].(map[string]any)["tweaks"].(map[string]any); tw["highlight"] != true {
		t.Fatalf("mention not highlighted: %v", tw)
	}
	s := decodeSync(t, tn.do("GET", cs+"/sync", btok, nil))
	if got := s.Rooms.Join[room].Unread.Notification; got != 2 {
		t.Fatalf("sync counts %d, push counted 2", got)
	}
	// A rule with dont_notify for the room sends nothing.
	ok(t, tn.do("PUT", cs+"/pushrules/global/room/"+esc(room), btok, map[string]any{"actions": []string{"dont_notify"}}))
	mp.Sent = nil
	tn.send(atok, room, "t3", "muted")
	if mp.Run() != 0 {
		t.Fatalf("muted room notified: %s", mp.Sent)
	}
	// event_id_only leaves the event out.
	ok(t, tn.do("DELETE", cs+"/pushrules/global/room/"+esc(room), btok, nil))
	b := setPusher("app.bob", "bobkey", testPushURL)
	b["data"] = map[string]any{"url": testPushURL, "format": "event_id_only"}
	ok(t, tn.do("POST", cs+"/pushers/set", btok, b))
	ev = tn.send(atok, room, "t4", "secret")
	mp.Run()
	notes = pushNotes(t, mp)
	if len(notes) != 1 || notes[0]["event_id"] != ev || notes[0]["content"] != nil || notes[0]["sender"] != nil {
		t.Fatalf("event_id_only: %v", notes)
	}
}

func TestPushRejectedAndRetry(t *testing.T) {
	tn := newTestNode(t, nil)
	mp := &MemoryPusher{}
	tn.pusher = mp
	_, atok, _ := tn.register("alice", "pw")
	bob, btok, _ := tn.register("bob", "pw")
	room := tn.createRoom(atok, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(room), btok, map[string]any{}))
	ok(t, tn.do("POST", cs+"/pushers/set", btok, setPusher("app", "good", testPushURL)))
	ok(t, tn.do("POST", cs+"/pushers/set", btok, setPusher("app", "gone", testPushURL)))

	// The gateway fails twice, then rejects "gone" and takes "good".
	fails := 0
	mp.Handle = func(url string, body []byte) (int, []byte, error) {
		if fails < 2 {
			fails++
			if fails == 1 {
				return 0, nil, errors.New("connection refused")
			}
			return 502, nil, nil
		}
		var b struct {
			Notification struct {
				Devices []struct {
					PushKey string `json:"pushkey"`
				} `json:"devices"`
			} `json:"notification"`
		}
		_ = json.Unmarshal(body, &b)
		if b.Notification.Devices[0].PushKey == "gone" {
			return 200, []byte(`{"rejected":["gone"]}`), nil
		}
		return 200, []byte(`{"rejected":[]}`), nil
	}
	tn.send(atok, room, "t1", "one")
	if got := mp.Run(); got != 2 {
		t.Fatalf("first round delivered %d, want 2 (one per pusher)", got)
	}
	// Both failed; nothing more goes out until the backoff passes.
	tn.send(atok, room, "t2", "two")
	if got := mp.Run(); got != 0 {
		t.Fatalf("sent %d while backing off", got)
	}
	for range 3 {
		tn.clock.Advance(10 * time.Second)
		mp.Run()
	}
	if ps := listPushers(t, tn, btok); len(ps) != 1 || ps[0]["pushkey"] != "good" {
		t.Fatalf("pushers after rejection: %v", ps)
	}
	// "good" got "one" and then the coalesced "two"; "gone" was removed on
	// its first success.
	var good []string
	for _, n := range pushNotes(t, mp) {
		if n["devices"].([]any)[0].(map[string]any)["pushkey"] == "good" {
			good = append(good, n["content"].(map[string]any)["body"].(string))
		}
	}
	if len(good) < 2 || good[len(good)-1] != "two" {
		t.Fatalf("good received %v", good)
	}
	mp.Sent = nil
	tn.send(atok, room, "t3", "three")
	mp.Run()
	if len(mp.Sent) != 1 {
		t.Fatalf("after rejection %d notifications, want 1", len(mp.Sent))
	}
	_ = bob
}

func TestPushFederatedMessage(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	mp := &MemoryPusher{}
	bob.tn.pusher = mp
	fn.call(bob.tn, 200, "POST", cs+"/pushers/set", bob.token, setPusher("app", "k", testPushURL))
	ev := fn.say(alice, roomID, "hello from a.test")
	mp.Run()
	notes := pushNotes(t, mp)
	if len(notes) != 1 || notes[0]["event_id"] != ev || notes[0]["sender"] != alice.id ||
		notes[0]["content"].(map[string]any)["body"] != "hello from a.test" {
		t.Fatalf("federated notification: %v", notes)
	}
	// bob's own message, sent on b.test, notifies nobody there.
	mp.Sent = nil
	fn.say(bob, roomID, "reply")
	if mp.Run() != 0 {
		t.Fatalf("own message notified: %s", mp.Sent)
	}
}

// An invite over federation to a room b.test is not in enters no
// timeline; the default .m.rule.invite_for_me still notifies the invitee,
// with the room's name from the stripped state.
func TestPushRemoteInvite(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob, carol := fn.user(a, "alice"), fn.user(b, "bob"), fn.user(b, "carol")
	mp := &MemoryPusher{}
	b.pusher = mp
	fn.call(b, 200, "POST", cs+"/pushers/set", bob.token, setPusher("app", "k", testPushURL))
	roomID := fn.call(a, 200, "POST", cs+"/createRoom", alice.token, map[string]any{"name": "fed"}).str("room_id")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	mp.Run()
	notes := pushNotes(t, mp)
	if len(notes) != 1 {
		t.Fatalf("%d notifications for the remote invite, want 1: %v", len(notes), notes)
	}
	n := notes[0]
	if n["room_id"] != roomID || n["type"] != "m.room.member" || n["sender"] != alice.id ||
		n["user_is_target"] != true || n["room_name"] != "fed" ||
		n["content"].(map[string]any)["membership"] != "invite" {
		t.Fatalf("remote invite notification: %v", n)
	}
	if m := roomsOf(b.Node).members[roomID][bob.id]; m.Membership != "invite" || n["event_id"] != m.EventID {
		t.Fatalf("notification event_id %v, bob's membership %+v", n["event_id"], m)
	}
	// carol has no pusher; inviting her sends nothing more.
	mp.Sent = nil
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": carol.id})
	if mp.Run() != 0 {
		t.Fatalf("invite of a user without pusher notified: %s", mp.Sent)
	}
}

func TestPushURLAllowed(t *testing.T) {
	for u, want := range map[string]bool{
		testPushURL: true,
		"https://push.example:8443/_matrix/push/v1/notify":  true,
		"http://127.0.0.1:5000/_matrix/push/v1/notify":      true,
		"http://[::1]/_matrix/push/v1/notify":               true,
		"http://localhost/_matrix/push/v1/notify":           true,
		"http://push.example/_matrix/push/v1/notify":        false,
		"https://push.example/_matrix/push/v1/notify?x=1":   false,
		"https://u:p@push.example/_matrix/push/v1/notify":   false,
		"https:///_matrix/push/v1/notify":                   false,
		"https://push.example/_matrix/push/v1/notify/extra": false,
		"not a url": false,
	} {
		if got := pushURLAllowed(u); got != want {
			t.Errorf("pushURLAllowed(%q) = %v, want %v", u, got, want)
		}
	}
}

func TestPushGivesUpAfterMaxAttempts(t *testing.T) {
	tn := newTestNode(t, nil)
	mp := &MemoryPusher{Handle: func(string, []byte) (int, []byte, error) { return 503, nil, nil }}
	tn.pusher = mp
	_, atok, _ := tn.register("alice", "pw")
	_, btok, _ := tn.register("bob", "pw")
	room := tn.createRoom(atok, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(room), btok, map[string]any{}))
	ok(t, tn.do("POST", cs+"/pushers/set", btok, setPusher("app", "k", testPushURL)))
	tn.send(atok, room, "t1", "one")
	mp.Run()
	for range 2 * maxPushAttempts {
		tn.clock.Advance(pushRetryMax)
		mp.Run()
	}
	if len(mp.Sent) != maxPushAttempts {
		t.Fatalf("%d attempts, want %d", len(mp.Sent), maxPushAttempts)
	}
	pm := pushersOf(tn.Node)
	if len(pm.queues) != 0 {
		t.Fatalf("queues left: %d", len(pm.queues))
	}
	// The pusher stays and works again.
	mp.Handle = nil
	tn.send(atok, room, "t2", "two")
	if mp.Run() != 1 {
		t.Fatal("no notification after giving up on the previous one")
	}
}

// In a group room the default message rule notifies without a sound: the
// notification goes at low priority; a mention is high.
func TestPushPriority(t *testing.T) {
	tn := newTestNode(t, nil)
	mp := &MemoryPusher{}
	tn.pusher = mp
	_, atok, _ := tn.register("alice", "pw")
	bob, btok, _ := tn.register("bob", "pw")
	_, ctok, _ := tn.register("carol", "pw")
	room := tn.createRoom(atok, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(room), btok, map[string]any{}))
	ok(t, tn.do("POST", cs+"/join/"+esc(room), ctok, map[string]any{}))
	ok(t, tn.do("POST", cs+"/pushers/set", btok, setPusher("app.bob", "bobkey", testPushURL)))
	tn.send(atok, room, "g1", "hello all")
	mp.Run()
	notes := pushNotes(t, mp)
	if len(notes) != 1 || notes[0]["prio"] != "low" {
		t.Fatalf("group message: %v", notes)
	}
	if tw := notes[0]["devices"].([]any)[0].(map[string]any)["tweaks"].(map[string]any); len(tw) != 0 {
		t.Fatalf("group message tweaks %v, want none", tw)
	}
	mp.Sent = nil
	tn.send(atok, room, "g2", "bob: look")
	mp.Run()
	if notes := pushNotes(t, mp); len(notes) != 1 || notes[0]["prio"] != "high" {
		t.Fatalf("mention: %v (bob is %s)", notes, bob)
	}
}

// A user has at most maxPushersPerUser pushers; replacing one still works.
func TestPushersLimit(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	for i := range maxPushersPerUser {
		ok(t, tn.do("POST", cs+"/pushers/set", tok, setPusher("app", fmt.Sprint("key", i), testPushURL)))
	}
	wantErr(t, tn.do("POST", cs+"/pushers/set", tok, setPusher("app", "one too many", testPushURL)), 400, ErrCodeLimitExceeded)
	ok(t, tn.do("POST", cs+"/pushers/set", tok, setPusher("app", "key0", testPushURL)))
	if got := len(listPushers(t, tn, tok)); got != maxPushersPerUser {
		t.Fatalf("%d pushers, want %d", got, maxPushersPerUser)
	}
}

// One batch's notifications to all of a user's pushers share one unread
// total.
func TestPushUnreadOncePerBatch(t *testing.T) {
	tn := newTestNode(t, nil)
	mp := &MemoryPusher{}
	tn.pusher = mp
	_, atok, _ := tn.register("alice", "pw")
	bob, btok, _ := tn.register("bob", "pw")
	for _, k := range []string{"k1", "k2", "k3"} {
		ok(t, tn.do("POST", cs+"/pushers/set", btok, setPusher("app.bob", k, testPushURL)))
	}
	room := tn.createRoom(atok, map[string]any{})
	ok(t, tn.do("POST", cs+"/rooms/"+esc(room)+"/invite", atok, map[string]string{"user_id": bob}))
	ok(t, tn.do("POST", cs+"/join/"+esc(room), btok, map[string]any{}))
	mp.Run()
	mp.Sent = nil
	pm := pushersOf(tn.Node)
	before := pm.unreadTotals
	tn.send(atok, room, "t1", "hello")
	mp.Run()
	notes := pushNotes(t, mp)
	if len(notes) != 3 {
		t.Fatalf("got %d notifications, want one per pusher: %s", len(notes), mp.Sent)
	}
	for _, n := range notes {
		if n["counts"].(map[string]any)["unread"] != 1.0 {
			t.Fatalf("counts: %v", n["counts"])
		}
	}
	if got := pm.unreadTotals - before; got != 1 {
		t.Fatalf("unread total computed %d times for one batch, want 1", got)
	}
}
