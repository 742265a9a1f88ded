package homeserver

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// stateContent reads one state event's content as user (nil unless 200).
func (tn *testNode) stateContent(token, roomID, typ string) map[string]any {
	tn.t.Helper()
	if !strings.Contains(typ, "/") {
		typ += "/"
	}
	r := tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/"+typ, token, nil)
	if r.Status != 200 {
		return nil
	}
	return r.Body
}

func upgradePath(roomID string) string { return cs + "/rooms/" + esc(roomID) + "/upgrade" }

// jsonEq compares two values by their JSON.
func jsonEq(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestRoomUpgradeCopiesStateMovesAliases(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw")
	bob, bt, _ := tn.register("bob", "pw")
	_, ct, _ := tn.register("carol", "pw")
	copied := map[string]any{
		"m.room.encryption":         map[string]any{"algorithm": "m.megolm.v1.aes-sha2"},
		"m.room.avatar":             map[string]any{"url": "mxc://test.local/abc"},
		"m.room.server_acl":         map[string]any{"allow": []any{"*"}, "deny": []any{"evil.example"}, "allow_ip_literals": false},
		"m.room.history_visibility": map[string]any{"history_visibility": "world_readable"},
		"m.room.guest_access":       map[string]any{"guest_access": "can_join"},
	}
	var initial []any
	for typ, c := range copied {
		initial = append(initial, map[string]any{"type": typ, "state_key": "", "content": c})
	}
	oldID := tn.createRoom(at, map[string]any{
		"room_version": "10", "preset": "public_chat", "visibility": "public", "room_alias_name": "room",
		"name": "The room", "topic": "talk", "initial_state": initial,
		"power_level_content_override": map[string]any{"users": map[string]any{alice: 100, bob: 50}},
	})
	ok(t, tn.do("POST", cs+"/join/"+esc(oldID), bt, map[string]any{}))
	ok(t, tn.do("POST", cs+"/join/"+esc(oldID), ct, map[string]any{}))
	ok(t, tn.do("PUT", "/_matrix/client/v3/directory/room/"+esc("#second:test.local"), at, map[string]string{"room_id": oldID}))
	last := tn.send(at, oldID, "t1", "before the upgrade")
	oldPL := tn.stateContent(at, oldID, "m.room.power_levels")

	r := ok(t, tn.do("POST", upgradePath(oldID), at, map[string]string{"new_version": "11"}))
	newID := r.str("replacement_room")
	if newID == "" || newID == oldID {
		t.Fatalf("replacement_room %q", newID)
	}

	// The new room: predecessor, version, copied state.
	create := tn.stateContent(at, newID, "m.room.create")
	if create["room_version"] != "11" || !jsonEq(create["predecessor"], map[string]string{"room_id": oldID, "event_id": last}) {
		t.Fatalf("create content %v, want predecessor %s/%s", create, oldID, last)
	}
	if _, has := create["type"]; has {
		t.Errorf("create content %v has a type; the old room had none", create)
	}
	// initial_state takes the place of the preset's events: one of each.
	msgs := ok(t, tn.do("GET", cs+"/rooms/"+esc(newID)+"/messages?dir=b&limit=100", at, nil))
	count := map[string]int{}
	chunk, _ := msgs.Body["chunk"].([]any)
	for _, e := range chunk {
		ev, _ := e.(map[string]any)
		typ, _ := ev["type"].(string)
		count[typ]++
	}
	for _, typ := range []string{"m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "m.room.power_levels"} {
		if count[typ] != 1 {
			t.Errorf("%d %s events in the new room, want 1", count[typ], typ)
		}
	}
	copied["m.room.name"] = map[string]any{"name": "The room"}
	copied["m.room.join_rules"] = map[string]any{"join_rule": "public"}
	copied["m.room.power_levels"] = oldPL
	copied["m.room.canonical_alias"] = map[string]any{"alias": "#room:test.local"}
	for typ, want := range copied {
		if got := tn.stateContent(at, newID, typ); !jsonEq(got, want) {
			t.Errorf("new room %s = %v, want %v", typ, got, want)
		}
	}
	if tp := tn.stateContent(at, newID, "m.room.topic"); tp["topic"] != "talk" {
		t.Errorf("new room topic %v", tp)
	}
	// Only the upgrader is in the new room; nobody's membership moved.
	if m := tn.stateContent(at, newID, "m.room.member/"+esc(alice)); m["membership"] != "join" {
		t.Errorf("alice in the new room: %v", m)
	}
	if m := tn.stateContent(at, newID, "m.room.member/"+esc(bob)); m != nil {
		t.Errorf("bob's membership was copied: %v", m)
	}

	// Aliases and the directory entry moved.
	for _, a := range []string{"#room:test.local", "#second:test.local"} {
		if got := ok(t, tn.do("GET", cs+"/directory/room/"+esc(a), "", nil)).str("room_id"); got != newID {
			t.Errorf("%s → %s, want %s", a, got, newID)
		}
	}
	oldRow, _ := tn.store.Room(oldID)
	newRow, _ := tn.store.Room(newID)
	if oldRow.Published || !newRow.Published {
		t.Errorf("published: old %v new %v", oldRow.Published, newRow.Published)
	}

	// The old room: canonical alias cleared, tombstone, restricted levels.
	if ca := tn.stateContent(at, oldID, "m.room.canonical_alias"); len(ca) != 0 {
		t.Errorf("old canonical alias %v, want {}", ca)
	}
	if ts := tn.stateContent(at, oldID, "m.room.tombstone"); ts["replacement_room"] != newID {
		t.Errorf("tombstone %v", ts)
	}
	pl := tn.stateContent(at, oldID, "m.room.power_levels")
	if pl["events_default"] != float64(50) || pl["invite"] != float64(50) {
		t.Errorf("old power levels %v, want events_default and invite 50", pl)
	}
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(oldID)+"/send/m.room.message/c1", ct,
		map[string]string{"msgtype": "m.text", "body": "late"}), 403, ErrCodeForbidden)
	tn.send(bt, oldID, "b1", "bob has 50") // still allowed

	// Sync shows the new room with its predecessor.
	var s syncBody
	s = decodeSync(t, ok(t, tn.do("GET", cs+"/sync", at, nil)))
	found := false
	for _, e := range s.Rooms.Join[newID].State.Events {
		if e["type"] == "m.room.create" {
			c, _ := e["content"].(map[string]any)
			p, _ := c["predecessor"].(map[string]any)
			found = p["room_id"] == oldID
		}
	}
	for _, e := range s.Rooms.Join[newID].Timeline.Events {
		if e["type"] == "m.room.create" {
			c, _ := e["content"].(map[string]any)
			p, _ := c["predecessor"].(map[string]any)
			found = found || p["room_id"] == oldID
		}
	}
	if !found {
		t.Errorf("sync of the new room shows no create event with the predecessor")
	}
}

// TestRoomUpgradeRaisesPowerThenRestores: the upgrader's level is enough
// for the tombstone but not for everything copied; it is raised in the
// new room while the state is copied, then the copied levels come back.
// The old room's power levels need more than the upgrader has, so they
// stay as they were.
func TestRoomUpgradeRaisesPowerThenRestores(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw")
	bob, bt, _ := tn.register("bob", "pw")
	oldID := tn.createRoom(at, map[string]any{
		"room_version": "11", "preset": "public_chat", "name": "n",
		"power_level_content_override": map[string]any{
			"users":  map[string]any{alice: 100, bob: 60},
			"events": map[string]any{"m.room.tombstone": 60, "m.room.name": 75, "m.room.power_levels": 100},
		},
	})
	ok(t, tn.do("POST", cs+"/join/"+esc(oldID), bt, map[string]any{}))
	oldPL := tn.stateContent(at, oldID, "m.room.power_levels")
	newID := ok(t, tn.do("POST", upgradePath(oldID), bt, map[string]string{"new_version": "11"})).str("replacement_room")

	if got := tn.stateContent(bt, newID, "m.room.power_levels"); !jsonEq(got, oldPL) {
		t.Errorf("new room power levels %v, want the old ones %v", got, oldPL)
	}
	if n := tn.stateContent(bt, newID, "m.room.name"); n["name"] != "n" {
		t.Errorf("name not copied: %v", n)
	}
	// Two power levels events: raised, then restored.
	r := ok(t, tn.do("GET", cs+"/rooms/"+esc(newID)+"/messages?dir=b&limit=50", bt, nil))
	var levels []float64
	chunk, _ := r.Body["chunk"].([]any)
	for i := len(chunk) - 1; i >= 0; i-- {
		e, _ := chunk[i].(map[string]any)
		if e["type"] == "m.room.power_levels" {
			c, _ := e["content"].(map[string]any)
			u, _ := c["users"].(map[string]any)
			f, _ := u[bob].(float64)
			levels = append(levels, f)
		}
	}
	if !slices.Equal(levels, []float64{100, 60}) {
		t.Errorf("bob's level in the new room's power levels events: %v, want [100 60]", levels)
	}
	if ts := tn.stateContent(at, oldID, "m.room.tombstone"); ts["replacement_room"] != newID {
		t.Errorf("tombstone %v", ts)
	}
	if got := tn.stateContent(at, oldID, "m.room.power_levels"); !jsonEq(got, oldPL) {
		t.Errorf("old power levels changed without the power to: %v", got)
	}
}

func TestRoomUpgradeErrors(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw")
	_, bt, _ := tn.register("bob", "pw")
	_, ct, _ := tn.register("carol", "pw")
	oldID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(oldID), bt, map[string]any{}))
	rooms := func() int {
		r := ok(t, tn.do("GET", cs+"/joined_rooms", at, nil))
		l, _ := r.Body["joined_rooms"].([]any)
		return len(l)
	}
	before := rooms()

	wantErr(t, tn.do("POST", upgradePath(oldID), at, map[string]string{"new_version": "99"}), 400, ErrCodeUnsupportedRoomVersion)
	wantErr(t, tn.do("POST", upgradePath(oldID), at, map[string]any{}), 400, ErrCodeMissingParam)
	wantErr(t, tn.do("POST", upgradePath(oldID), at, map[string]any{"new_version": 11}), 400, ErrCodeBadJSON)
	wantErr(t, tn.do("POST", upgradePath(oldID), at, map[string]any{"new_version": "12", "additional_creators": []string{"bob"}}), 400, ErrCodeInvalidParam)
	wantErr(t, tn.do("POST", upgradePath(oldID), bt, map[string]string{"new_version": "11"}), 403, ErrCodeForbidden)
	wantErr(t, tn.do("POST", upgradePath(oldID), ct, map[string]string{"new_version": "11"}), 403, ErrCodeForbidden)
	wantErr(t, tn.do("POST", upgradePath("!nope:test.local"), at, map[string]string{"new_version": "11"}), 404, ErrCodeNotFound)

	if n := rooms(); n != before {
		t.Errorf("a refused upgrade left a room behind: %d joined rooms, want %d", n, before)
	}
	if ts := tn.stateContent(at, oldID, "m.room.tombstone"); ts != nil {
		t.Errorf("a refused upgrade sent a tombstone: %v", ts)
	}
}

func TestRoomUpgradeV12(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw")
	bob, bt, _ := tn.register("bob", "pw")
	carol, ct, _ := tn.register("carol", "pw")
	oldID := tn.createRoom(at, map[string]any{
		"room_version": "11", "preset": "public_chat", "creation_content": map[string]any{"type": "m.space"},
		"power_level_content_override": map[string]any{"users": map[string]any{alice: 100, bob: 100, carol: 50}},
	})
	ok(t, tn.do("POST", cs+"/join/"+esc(oldID), bt, map[string]any{}))
	ok(t, tn.do("POST", cs+"/join/"+esc(oldID), ct, map[string]any{}))

	v12 := ok(t, tn.do("POST", upgradePath(oldID), at, map[string]any{"new_version": "12", "additional_creators": []string{bob}})).str("replacement_room")
	if strings.Contains(v12, ":") {
		t.Fatalf("version 12 room ID %q has a server part", v12)
	}
	create := tn.stateContent(at, v12, "m.room.create")
	if !jsonEq(create["predecessor"], map[string]string{"room_id": oldID}) || !jsonEq(create["additional_creators"], []string{bob}) ||
		create["type"] != "m.space" {
		t.Fatalf("create content %v", create)
	}
	pl := tn.stateContent(at, v12, "m.room.power_levels")
	if !jsonEq(pl["users"], map[string]any{carol: 50}) {
		t.Errorf("v12 users %v, want only carol (creators have infinite power)", pl["users"])
	}

	// bob, an additional creator, upgrades the v12 room again without being
	// in the power levels; then alice can take it back to version 11.
	ok(t, tn.do("POST", cs+"/join/"+esc(v12), bt, map[string]any{}))
	again := ok(t, tn.do("POST", upgradePath(v12), bt, map[string]string{"new_version": "12"})).str("replacement_room")
	if c := tn.stateContent(bt, again, "m.room.create"); c["additional_creators"] != nil {
		t.Errorf("additional creators were carried over: %v", c)
	}
	// carol (50) cannot: the tombstone needs 150 in v12 rooms made here.
	ok(t, tn.do("POST", cs+"/join/"+esc(again), ct, map[string]any{}))
	wantErr(t, tn.do("POST", upgradePath(again), ct, map[string]string{"new_version": "11"}), 403, ErrCodeForbidden)
	down := ok(t, tn.do("POST", upgradePath(again), bt, map[string]string{"new_version": "11"})).str("replacement_room")
	pl = tn.stateContent(bt, down, "m.room.power_levels")
	users, _ := pl["users"].(map[string]any)
	if users[bob] != float64(100) || users[carol] != float64(50) {
		t.Errorf("downgraded users %v: want the former creator at 100, carol at 50", users)
	}
	if ts := tn.stateContent(bt, again, "m.room.tombstone"); ts["replacement_room"] != down {
		t.Errorf("tombstone %v", ts)
	}
}

// TestFedRoomUpgrade: a member on another server sees the tombstone and
// follows it, joining the new room through the upgrader's server.
func TestFedRoomUpgrade(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	oldID := fn.call(a, 200, "POST", cs+"/createRoom", alice.token, map[string]any{"preset": "public_chat", "name": "fed"}).str("room_id")
	fn.call(b, 200, "POST", cs+"/join/"+url.PathEscape(oldID)+"?server_name=a.test", bob.token, map[string]any{})
	fn.say(alice, oldID, "hello")

	newID := fn.call(a, 200, "POST", upgradePath(oldID), alice.token, map[string]string{"new_version": "12"}).str("replacement_room")
	ts := fn.call(b, 200, "GET", roomPath(oldID, "/state/m.room.tombstone/"), bob.token, nil)
	if ts.str("replacement_room") != newID {
		t.Fatalf("b.test's tombstone: %s", ts.Raw)
	}
	fn.call(b, 200, "POST", cs+"/join/"+url.PathEscape(newID)+"?server_name="+serverOf(alice.id), bob.token, map[string]any{})
	fn.say(alice, newID, "in the new room")
	if got := fn.bodies(bob, newID); !sameList(got, []string{"in the new room"}) {
		t.Fatalf("bob sees %q in the new room", got)
	}
	create := fn.call(b, 200, "GET", roomPath(newID, "/state/m.room.create/"), bob.token, nil)
	p, _ := create.Body["predecessor"].(map[string]any)
	if p["room_id"] != oldID {
		t.Fatalf("b.test's create content %s", create.Raw)
	}
}
