package homeserver

import (
	"testing"
)

func TestReports(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	_, bt, _ := tn.register("bob", "pw-bob-123")
	_, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.history_visibility", at, map[string]any{"history_visibility": "joined"}))
	hidden := tn.send(at, roomID, "m1", "bob may not see this")
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	msg := tn.send(at, roomID, "m2", "offensive")
	report := func(tok, eventID string, body any) testResp {
		return tn.do("POST", cs+"/rooms/"+esc(roomID)+"/report/"+esc(eventID), tok, body)
	}

	ok(t, report(bt, msg, map[string]any{"score": -100, "reason": "this makes me sad"}))
	ok(t, report(bt, msg, map[string]any{})) // both fields are optional
	// Not visible to bob, not in the room, unknown, not joined: 404.
	wantErr(t, report(bt, hidden, map[string]any{"reason": "x"}), 404, ErrCodeNotFound)
	wantErr(t, report(bt, "$nope", map[string]any{"reason": "x"}), 404, ErrCodeNotFound)
	wantErr(t, report(ct, msg, map[string]any{"reason": "x"}), 404, ErrCodeNotFound)
	// Validation.
	wantErr(t, report(bt, msg, map[string]any{"score": 1}), 400, ErrCodeInvalidParam)
	wantErr(t, report(bt, msg, map[string]any{"score": -101}), 400, ErrCodeInvalidParam)
	wantErr(t, report(bt, msg, map[string]any{"score": -1.5}), 400, ErrCodeInvalidParam)
	wantErr(t, report(bt, msg, map[string]any{"score": "bad"}), 400, ErrCodeInvalidParam)
	wantErr(t, report(bt, msg, map[string]any{"reason": 7}), 400, ErrCodeBadJSON)
	wantErr(t, report(bt, msg, "[]"), 400, ErrCodeBadJSON)

	// Rooms: anyone may report a room known here.
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/report", ct, map[string]any{"reason": "spam room"}))
	wantErr(t, tn.do("POST", cs+"/rooms/"+esc("!unknown:test.local")+"/report", ct, map[string]any{"reason": "x"}), 404, ErrCodeNotFound)

	// Only admins list them: newest first, paged by offset.
	list := "/_synapse/admin/v1/event_reports"
	wantErr(t, tn.do("GET", list, at, nil), 403, ErrCodeForbidden)
	tn.register("admin", "pw-admin-12")
	if _, err := tn.store.DB.Exec(`UPDATE accounts SET admin = TRUE WHERE user_id = '@admin:test.local'`); err != nil {
		t.Fatal(err)
	}
	adminTok := ok(t, tn.do("POST", cs+"/login", "", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "admin"}, "password": "pw-admin-12"})).str("access_token")
	r := ok(t, tn.do("GET", list+"?limit=2", adminTok, nil))
	reps := r.Body["event_reports"].([]any)
	if r.Body["total"] != 3.0 || len(reps) != 2 || r.Body["next_token"] != 2.0 {
		t.Fatalf("first page: %s", r.Raw)
	}
	room := reps[0].(map[string]any)
	if room["event_id"] != nil || room["reason"] != "spam room" || room["score"] != nil || room["user_id"] != "@carol:test.local" {
		t.Fatalf("room report: %v", room)
	}
	r = ok(t, tn.do("GET", list+"?from=2", adminTok, nil))
	first := r.Body["event_reports"].([]any)[0].(map[string]any)
	if first["event_id"] != msg || first["score"] != -100.0 || first["reason"] != "this makes me sad" || first["sender"] != alice || r.Body["next_token"] != nil {
		t.Fatalf("oldest report: %s", r.Raw)
	}
	wantErr(t, tn.do("GET", list+"?dir=x", adminTok, nil), 400, ErrCodeInvalidParam)
}
