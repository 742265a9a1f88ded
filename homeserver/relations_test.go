package homeserver

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"
)

const cv1 = "/_matrix/client/v1"

// relTxn numbers the transactions of sendEv.
var relTxn int

// sendEv sends an event of any type and returns its ID.
func (tn *testNode) sendEv(token, roomID, typ string, content map[string]any) string {
	tn.t.Helper()
	relTxn++
	return ok(tn.t, tn.do("PUT", fmt.Sprintf("%s/rooms/%s/send/%s/rel%d", cs, esc(roomID), typ, relTxn), token, content)).str("event_id")
}

// relContent is a message content relating to parent.
func relContent(body, relType, parent string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": body, "m.relates_to": map[string]any{"rel_type": relType, "event_id": parent}}
}

// chunkIDs lists the event IDs of a response's chunk.
func chunkIDs(r testResp) []string {
	var out []string
	chunk, _ := r.Body["chunk"].([]any)
	for _, e := range chunk {
		out = append(out, e.(map[string]any)["event_id"].(string))
	}
	return out
}

// relationsAll pages through /relations with the given path suffix and
// query, following next_batch, and returns every ID in order.
func (tn *testNode) relationsAll(token, roomID, parent, suffix, query string) []string {
	tn.t.Helper()
	var out []string
	from := ""
	for range 50 {
		path := cv1 + "/rooms/" + esc(roomID) + "/relations/" + esc(parent) + suffix + "?limit=2" + query
		if from != "" {
			path += "&from=" + url.QueryEscape(from)
		}
		r := ok(tn.t, tn.do("GET", path, token, nil))
		ids := chunkIDs(r)
		if len(ids) > 2 {
			tn.t.Fatalf("page of %d with limit 2", len(ids))
		}
		out = append(out, ids...)
		if from = r.str("next_batch"); from == "" {
			return out
		}
	}
	tn.t.Fatal("relations never ended")
	return nil
}

// bundleOf returns unsigned["m.relations"][relType] of an event body.
func bundleOf(ev map[string]any, relType string) map[string]any {
	u, _ := ev["unsigned"].(map[string]any)
	rel, _ := u["m.relations"].(map[string]any)
	b, _ := rel[relType].(map[string]any)
	return b
}

// relRoom: alice's public room with bob in it, a root message from alice
// and a thread of three replies (bob, alice, bob).
func relRoom(t *testing.T) (tn *testNode, at, bt, roomID, root string, thread []string) {
	tn = newTestNode(t, nil)
	_, at, _ = tn.register("alice", "pw-alice-1")
	_, bt, _ = tn.register("bob", "pw-bob-123")
	roomID = tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	root = tn.send(at, roomID, "root", "what shall we name the rover?")
	for i, tok := range []string{bt, at, bt} {
		tn.clock.Advance(time.Second)
		thread = append(thread, tn.sendEv(tok, roomID, "m.room.message", relContent(fmt.Sprintf("idea %d", i), "m.thread", root)))
	}
	return tn, at, bt, roomID, root, thread
}

func TestRelationsEndpoint(t *testing.T) {
	tn, at, bt, roomID, root, thread := relRoom(t)
	edit := tn.sendEv(at, roomID, "m.room.message", map[string]any{"body": "* rover name?",
		"m.new_content": map[string]any{"body": "rover name?"}, "m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}})
	react := tn.sendEv(bt, roomID, "m.reaction", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": thread[0], "key": "👍"}})
	// Encrypted events carry m.relates_to in the clear.
	enc := tn.sendEv(bt, roomID, "m.room.encrypted", map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AAAA",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
	// A reply is not a relation.
	tn.sendEv(bt, roomID, "m.room.message", map[string]any{"body": "re", "m.relates_to": map[string]any{"m.in_reply_to": map[string]any{"event_id": root}}})

	all := []string{enc, edit, thread[2], thread[1], thread[0]}
	if got := tn.relationsAll(at, roomID, root, "", ""); !slices.Equal(got, all) {
		t.Fatalf("relations: %v, want %v", got, all)
	}
	fwd := slices.Clone(all)
	slices.Reverse(fwd)
	if got := tn.relationsAll(at, roomID, root, "", "&dir=f"); !slices.Equal(got, fwd) {
		t.Fatalf("relations dir=f: %v, want %v", got, fwd)
	}
	if got := tn.relationsAll(at, roomID, root, "/m.thread", ""); !slices.Equal(got, []string{enc, thread[2], thread[1], thread[0]}) {
		t.Fatalf("m.thread: %v", got)
	}
	if got := tn.relationsAll(at, roomID, root, "/m.thread/m.room.message", ""); !slices.Equal(got, []string{thread[2], thread[1], thread[0]}) {
		t.Fatalf("m.thread m.room.message: %v", got)
	}
	if got := tn.relationsAll(at, roomID, root, "/m.replace/m.room.message", ""); !slices.Equal(got, []string{edit}) {
		t.Fatalf("m.replace: %v", got)
	}
	if got := tn.relationsAll(at, roomID, root, "", "&recurse=true"); !slices.Equal(got, slices.Insert(slices.Clone(all), 1, react)) {
		t.Fatalf("recurse: %v", got)
	}
	r := ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?recurse=true", at, nil))
	if d, _ := r.Body["recursion_depth"].(float64); d != 3 {
		t.Fatalf("recursion_depth %v", r.Body["recursion_depth"])
	}
	if _, ok := ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root), at, nil)).Body["recursion_depth"]; ok {
		t.Fatal("recursion_depth without recurse")
	}
	// from / to: a window of the stream, from a /messages token.
	msgs := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=3", at, nil))
	r = ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?from="+url.QueryEscape(msgs.str("end")), at, nil))
	if got := chunkIDs(r); !slices.Equal(got, []string{edit, thread[2], thread[1], thread[0]}) {
		t.Fatalf("from /messages end: %v", got)
	}
	first := ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?limit=1", at, nil))
	second := ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?limit=1&from="+first.str("next_batch"), at, nil))
	r = ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?from="+first.str("next_batch")+"&to="+second.str("next_batch"), at, nil))
	if got := chunkIDs(r); !slices.Equal(got, []string{edit}) || r.str("prev_batch") != first.str("next_batch") {
		t.Fatalf("from/to window: %v %s", got, r.Raw)
	}

	// Errors: bad parameters, unknown parent, a user with no access.
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?dir=x", at, nil), 400, "M_INVALID_PARAM")
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?recurse=yes", at, nil), 400, "M_INVALID_PARAM")
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root)+"?from=nope", at, nil), 400, "M_INVALID_PARAM")
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/$nothere", at, nil), 404, "M_NOT_FOUND")
	_, ct, _ := tn.register("carol", "pw-carol-1")
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root), ct, nil), 404, "M_NOT_FOUND")

	// A redacted child breaks its relation.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(thread[2])+"/red1", bt, map[string]any{}))
	if got := tn.relationsAll(at, roomID, root, "/m.thread", ""); !slices.Equal(got, []string{enc, thread[1], thread[0]}) {
		t.Fatalf("after redaction: %v", got)
	}
}

func TestRelationsVisibility(t *testing.T) {
	tn, at, _, roomID, root, thread := relRoom(t)
	// Carol joins (history is shared: she sees it all), then leaves; what
	// is sent after she left stays hidden from her, in /relations and in
	// the bundles.
	_, ct, _ := tn.register("carol", "pw-carol-1")
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/leave", ct, map[string]any{}))
	late := tn.sendEv(at, roomID, "m.room.message", relContent("late idea", "m.thread", root))
	want := []string{thread[2], thread[1], thread[0]}
	if got := tn.relationsAll(ct, roomID, root, "", ""); !slices.Equal(got, want) {
		t.Fatalf("carol after leaving: %v, want %v", got, want)
	}
	if got := tn.relationsAll(at, roomID, root, "", ""); !slices.Equal(got, append([]string{late}, want...)) {
		t.Fatalf("alice: %v", got)
	}
	ev := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), ct, nil))
	b := bundleOf(ev.Body, "m.thread")
	if b["count"] != 3.0 || b["latest_event"].(map[string]any)["event_id"] != thread[2] || b["current_user_participated"] != false {
		t.Fatalf("carol's thread bundle %v", b)
	}
	// Dave joins after history became "joined": a root sent before his
	// join is not his to see, nor its relations.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.history_visibility/", at, map[string]string{"history_visibility": "joined"}))
	root2 := tn.send(at, roomID, "root2", "members only")
	tn.sendEv(at, roomID, "m.room.message", relContent("in thread", "m.thread", root2))
	_, dt, _ := tn.register("dave", "pw-dave-12")
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), dt, nil))
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/relations/"+esc(root2), dt, nil), 404, "M_NOT_FOUND")
}

func TestBundledAggregations(t *testing.T) {
	tn, at, bt, roomID, root, thread := relRoom(t)
	// Two edits by alice (the newer wins), one by bob (not the sender:
	// invalid), one without m.new_content (invalid), and a reference.
	editContent := func(body string) map[string]any {
		return map[string]any{"body": "* " + body, "m.new_content": map[string]any{"body": body},
			"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}}
	}
	tn.clock.Advance(time.Second)
	tn.sendEv(at, roomID, "m.room.message", editContent("first edit"))
	tn.clock.Advance(time.Second)
	edit2 := tn.sendEv(at, roomID, "m.room.message", editContent("second edit"))
	tn.clock.Advance(time.Second)
	tn.sendEv(bt, roomID, "m.room.message", editContent("bob's edit"))
	tn.sendEv(at, roomID, "m.room.message", relContent("no new content", "m.replace", root))
	ref := tn.sendEv(bt, roomID, "m.key.verification.done", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": root}})
	// The thread's latest event is edited too: its bundle nests.
	latestEdit := tn.sendEv(bt, roomID, "m.room.message", map[string]any{"body": "* idea 2b", "m.new_content": map[string]any{"body": "idea 2b"},
		"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": thread[2]}})

	check := func(who string, ev map[string]any, participated bool) {
		t.Helper()
		th := bundleOf(ev, "m.thread")
		latest, _ := th["latest_event"].(map[string]any)
		if th["count"] != 3.0 || latest["event_id"] != thread[2] || th["current_user_participated"] != participated {
			t.Fatalf("%s: m.thread %v", who, th)
		}
		if e := bundleOf(latest, "m.replace"); e["event_id"] != latestEdit {
			t.Fatalf("%s: latest event's m.replace %v", who, e)
		}
		if e := bundleOf(ev, "m.replace"); e["event_id"] != edit2 || e["content"].(map[string]any)["m.new_content"] == nil {
			t.Fatalf("%s: m.replace %v", who, e)
		}
		refs, _ := bundleOf(ev, "m.reference")["chunk"].([]any)
		if len(refs) != 1 || refs[0].(map[string]any)["event_id"] != ref {
			t.Fatalf("%s: m.reference %v", who, refs)
		}
	}
	// /event, for the root's sender (who participated by starting it)
	// and for carol, who did not.
	check("alice /event", ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), at, nil)).Body, true)
	_, ct, _ := tn.register("carol", "pw-carol-1")
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	check("carol /event", ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), ct, nil)).Body, false)
	// /messages.
	msgs := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=100", bt, nil))
	found := false
	for _, e := range msgs.Body["chunk"].([]any) {
		ev := e.(map[string]any)
		if ev["event_id"] == root {
			check("bob /messages", ev, true)
			found = true
		} else if ev["type"] == "m.room.message" && ev["event_id"] != thread[2] && bundleOf(ev, "m.thread") != nil {
			t.Fatalf("thread bundle on %v", ev["event_id"])
		}
	}
	if !found {
		t.Fatal("root not in /messages")
	}
	// Redacting the original drops its m.replace bundle, not the thread.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(root)+"/red1", at, map[string]any{}))
	ev := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), at, nil)).Body
	if bundleOf(ev, "m.replace") != nil || bundleOf(ev, "m.thread") == nil {
		t.Fatalf("redacted root's bundle %v", ev["unsigned"])
	}
	// Redacting a thread event takes it out of the count.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(thread[2])+"/red2", bt, map[string]any{}))
	ev = ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), at, nil)).Body
	if th := bundleOf(ev, "m.thread"); th["count"] != 2.0 || th["latest_event"].(map[string]any)["event_id"] != thread[1] {
		t.Fatalf("after redacting the latest: %v", th)
	}
}

// TestBundleBounds: an event with many children gets a bounded bundle,
// however many there are.
func TestBundleBounds(t *testing.T) {
	tn, at, bt, roomID, root, _ := relRoom(t)
	var refs []string
	for range maxBundledReferences + 5 {
		refs = append(refs, tn.sendEv(bt, roomID, "m.room.message", relContent("see above", "m.reference", root)))
	}
	// Edits by another sender are never valid and do not push alice's
	// out of what is read.
	tn.clock.Advance(time.Second)
	edit := tn.sendEv(at, roomID, "m.room.message", map[string]any{"body": "* named", "m.new_content": map[string]any{"body": "named"},
		"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}})
	for range maxEditRows + 5 {
		tn.clock.Advance(time.Second)
		tn.sendEv(bt, roomID, "m.room.message", map[string]any{"body": "* mine", "m.new_content": map[string]any{"body": "mine"},
			"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}})
	}
	ev := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), at, nil)).Body
	chunk, _ := bundleOf(ev, "m.reference")["chunk"].([]any)
	var got []string
	for _, c := range chunk {
		got = append(got, c.(map[string]any)["event_id"].(string))
	}
	if !slices.Equal(got, refs[:maxBundledReferences]) {
		t.Fatalf("m.reference chunk has %d, want the oldest %d", len(got), maxBundledReferences)
	}
	if e := bundleOf(ev, "m.replace"); e["event_id"] != edit {
		t.Fatalf("m.replace %v, want %s", e, edit)
	}
	// The full list stays available from /relations.
	if all := tn.relationsAll(at, roomID, root, "/m.reference", "&dir=f"); !slices.Equal(all, refs) {
		t.Fatalf("/relations m.reference: %d, want %d", len(all), len(refs))
	}
	// Newer edits by alice that are all invalid (no m.new_content) hide
	// her valid one once there are more than are read.
	for range maxEditRows {
		tn.clock.Advance(time.Second)
		tn.sendEv(at, roomID, "m.room.message", relContent("no new content", "m.replace", root))
	}
	ev = ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), at, nil)).Body
	if e := bundleOf(ev, "m.replace"); e != nil {
		t.Fatalf("m.replace past the bound: %v", e["event_id"])
	}
}

func TestThreadsList(t *testing.T) {
	tn, at, bt, roomID, root, _ := relRoom(t)
	_, ct, _ := tn.register("carol", "pw-carol-1")
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	// A second thread, started by carol, answered by alice; then bob adds
	// to the first one, which becomes the most recent again.
	root2 := tn.send(ct, roomID, "c1", "picnic on sunday?")
	tn.sendEv(at, roomID, "m.room.message", relContent("yes", "m.thread", root2))
	tn.send(ct, roomID, "c2", "no thread here") // not listed: no thread
	list := func(token, query string) ([]string, string) {
		t.Helper()
		r := ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/threads"+query, token, nil))
		for _, e := range r.Body["chunk"].([]any) {
			if bundleOf(e.(map[string]any), "m.thread") == nil {
				t.Fatalf("thread root without its bundle: %v", e)
			}
		}
		return chunkIDs(r), r.str("next_batch")
	}
	if got, next := list(at, ""); !slices.Equal(got, []string{root2, root}) || next != "" {
		t.Fatalf("threads: %v %q", got, next)
	}
	tn.sendEv(bt, roomID, "m.room.message", relContent("more", "m.thread", root))
	if got, _ := list(at, ""); !slices.Equal(got, []string{root, root2}) {
		t.Fatalf("threads after new activity: %v", got)
	}
	got, next := list(at, "?limit=1")
	if !slices.Equal(got, []string{root}) || next == "" {
		t.Fatalf("page 1: %v %q", got, next)
	}
	if got, next = list(at, "?limit=1&from="+url.QueryEscape(next)); !slices.Equal(got, []string{root2}) || next != "" {
		t.Fatalf("page 2: %v %q", got, next)
	}
	// participated: bob only sent to the first thread; carol started the
	// second; alice is in both.
	if got, _ := list(bt, "?include=participated"); !slices.Equal(got, []string{root}) {
		t.Fatalf("bob participated: %v", got)
	}
	if got, _ := list(ct, "?include=participated"); !slices.Equal(got, []string{root2}) {
		t.Fatalf("carol participated: %v", got)
	}
	if got, _ := list(at, "?include=participated"); len(got) != 2 {
		t.Fatalf("alice participated: %v", got)
	}
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/threads?include=some", at, nil), 400, "M_INVALID_PARAM")
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/threads?limit=0", at, nil), 400, "M_INVALID_PARAM")
	_, dt, _ := tn.register("dave", "pw-dave-12")
	wantErr(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/threads", dt, nil), 403, "M_FORBIDDEN")
}

// TestFedRelations: a thread reply sent on the other server is indexed
// where it arrives, found by /relations and counted in the bundle.
func TestFedRelations(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	root := fn.say(alice, roomID, "who brings the antenna?")
	relTxn++
	reply := fn.call(bob.tn, 200, "PUT", roomPath(roomID, fmt.Sprintf("/send/m.room.message/fed%d", relTxn)), bob.token,
		relContent("I do", "m.thread", root)).str("event_id")
	fn.run()
	for _, u := range []fedUser{alice, bob} {
		r := fn.call(u.tn, 200, "GET", cv1+"/rooms/"+url.PathEscape(roomID)+"/relations/"+url.PathEscape(root)+"/m.thread", u.token, nil)
		if got := chunkIDs(r); !slices.Equal(got, []string{reply}) {
			t.Fatalf("%s: relations %v, want [%s]", u.tn.ServerName(), got, reply)
		}
		ev := fn.call(u.tn, 200, "GET", roomPath(roomID, "/event/"+url.PathEscape(root)), u.token, nil)
		if th := bundleOf(ev.Body, "m.thread"); th["count"] != 1.0 || th["current_user_participated"] != true {
			t.Fatalf("%s: thread bundle %v", u.tn.ServerName(), th)
		}
	}
	r := fn.call(alice.tn, 200, "GET", cv1+"/rooms/"+url.PathEscape(roomID)+"/threads", alice.token, nil)
	if got := chunkIDs(r); !slices.Equal(got, []string{root}) {
		t.Fatalf("threads on a.test: %v", got)
	}
	// A third server joins late and backfills the history: the relation
	// comes with it.
	c, _ := fn.node("c.test", t.TempDir(), 3)
	carol := fn.user(c, "carol")
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": carol.id})
	fn.call(c, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), carol.token, map[string]any{})
	fn.bodies(carol, roomID)
	r = fn.call(c, 200, "GET", cv1+"/rooms/"+url.PathEscape(roomID)+"/relations/"+url.PathEscape(root), carol.token, nil)
	if got := chunkIDs(r); !slices.Equal(got, []string{reply}) {
		t.Fatalf("c.test after backfill: relations %v, want [%s]", got, reply)
	}
}

// A second identical reaction by the same user is refused, another key or
// user is fine, and a redacted reaction may be sent again; a thread may
// not start from an event that has a relation.
func TestSentRelationChecks(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	_, bt, _ := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	root := tn.send(at, roomID, "r", "root")
	react := func(tok, txn, key string) testResp {
		return tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.reaction/"+txn, tok,
			map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": root, "key": key}})
	}
	first := ok(t, react(at, "x1", "👍")).str("event_id")
	wantErr(t, react(at, "x2", "👍"), 400, ErrCodeDuplicateAnnotation)
	ok(t, react(at, "x3", "🎉"))
	ok(t, react(bt, "x4", "👍"))
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(first)+"/rd", at, map[string]any{}))
	ok(t, react(at, "x5", "👍"))

	reply := ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/t1", bt, map[string]any{"msgtype": "m.text", "body": "in thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})).str("event_id")
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/t2", bt, map[string]any{"msgtype": "m.text", "body": "nested",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": reply}}), 400, ErrCodeUnknown)
}
