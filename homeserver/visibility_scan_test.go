package homeserver

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// TestScanRows: a bounded scan stops after its budget, says where, and
// going on from there finds the rest; the budget is shared by the scans of
// one cursor.
func TestScanRows(t *testing.T) {
	const n = 3000
	read := 0
	fetch := func(after, upTo int64, forward bool) func(int64, int64, int) ([]store.EventRow, error) {
		return func(after, upTo int64, k int) ([]store.EventRow, error) {
			var out []store.EventRow
			for i := range int64(n) {
				p := i + 1
				if !forward {
					p = n - i
				}
				if p > after && p <= upTo && len(out) < k {
					out = append(out, store.EventRow{Pos: p})
				}
			}
			read += len(out)
			return out, nil
		}
	}
	// Only positions 5 and 2990 are kept.
	keep := func(r store.EventRow) (bool, error) { return r.Pos == 5 || r.Pos == 2990, nil }
	for _, forward := range []bool{false, true} {
		read = 0
		var got []int64
		after, upTo := int64(0), int64(n)
		for page := 0; ; page++ {
			if page > 10 {
				t.Fatalf("forward %v: scan never ended", forward)
			}
			cur := newScan(10)
			rows, err := scanRows(cur, after, upTo, forward, 10, fetch(after, upTo, forward), keep)
			if err != nil {
				t.Fatal(err)
			}
			if spent := scanBudget(10) - cur.left; spent > scanBudget(10) || cur.left < 0 {
				t.Fatalf("forward %v: read %d rows, budget %d", forward, spent, scanBudget(10))
			}
			for _, r := range rows {
				got = append(got, r.Pos)
			}
			if !cur.stopped {
				break
			}
			if forward {
				after = cur.resume
			} else {
				upTo = cur.resume
			}
		}
		want := []int64{2990, 5}
		if forward {
			want = []int64{5, 2990}
		}
		if !slices.Equal(got, want) || read != n {
			t.Fatalf("forward %v: got %v, read %d rows; want %v, %d", forward, got, read, want, n)
		}
	}
	// One cursor across two scans: the second gets what the first left.
	cur := newScan(10)
	if _, err := scanRows(cur, 0, n, false, 10, fetch(0, n, false), keep); err != nil {
		t.Fatal(err)
	}
	rows, _ := scanRows(cur, 0, n, false, 10, fetch(0, n, false), keep)
	if len(rows) != 0 || !cur.stopped || cur.resume != n {
		t.Fatalf("spent cursor: %v stopped %v resume %d", rows, cur.stopped, cur.resume)
	}
}

// TestLateJoinerScanBound: a user joining a room with a long history they
// may not see (history_visibility joined) does not make one /messages,
// /sync or /relations read all of it: the page stops at the scan bound
// with a token to go on from.
func TestLateJoinerScanBound(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat", "initial_state": []any{map[string]any{
		"type": "m.room.history_visibility", "state_key": "", "content": map[string]string{"history_visibility": "joined"}}}})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	hidden := map[string]bool{}
	for i := range scanBudget(10) + 20 {
		hidden[tn.send(at, roomID, fmt.Sprintf("h%d", i), "before carol")] = true
	}
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	seen := tn.send(at, roomID, "seen", "carol sees this")

	// /messages: the first page stops at the bound with an end token;
	// paging on ends, and only the visible events come back.
	var got []string
	from := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("/messages never ended")
		}
		path := cs + "/rooms/" + esc(roomID) + "/messages?dir=b&limit=10"
		if from != "" {
			path += "&from=" + url.QueryEscape(from)
		}
		r := ok(t, tn.do("GET", path, ct, nil))
		got = append(got, chunkIDs(r)...)
		next := r.str("end")
		if page == 0 && next == "" {
			t.Fatal("first /messages page has no end token")
		}
		if next == "" {
			break
		}
		from = next
	}
	// (The room's first events, from before history_visibility was set,
	// are visible too.)
	if len(got) < 2 || got[0] != seen || slices.ContainsFunc(got, func(id string) bool { return hidden[id] }) {
		t.Fatalf("/messages: %v, want %s first and none of the hidden ones", got, seen)
	}

	// /sync: the timeline is limited (the bound stopped it before the
	// start of what carol may read), and prev_batch continues from there.
	s := decodeSync(t, tn.do("GET", cs+"/sync?filter="+url.QueryEscape(`{"room":{"timeline":{"limit":5}}}`), ct, nil))
	tl := s.Rooms.Join[roomID].Timeline
	if len(tl.Events) != 2 || !tl.Limited || tl.PrevBatch == "" {
		t.Fatalf("/sync timeline: %d events, limited %v, prev_batch %q", len(tl.Events), tl.Limited, tl.PrevBatch)
	}

	// /relations: references from a user carol ignores.
	tn.ignore(ct, carol, bob)
	for range scanBudget(5) + 5 {
		tn.sendEv(bt, roomID, "m.room.message", relContent("ref", "m.reference", seen))
	}
	mine := tn.sendEv(at, roomID, "m.room.message", relContent("alice's ref", "m.reference", seen))
	got = nil
	from = ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("/relations never ended")
		}
		path := cv1 + "/rooms/" + esc(roomID) + "/relations/" + esc(seen) + "?limit=5"
		if from != "" {
			path += "&from=" + url.QueryEscape(from)
		}
		r := ok(t, tn.do("GET", path, ct, nil))
		got = append(got, chunkIDs(r)...)
		if from = r.str("next_batch"); from == "" {
			if page == 0 {
				t.Fatal("/relations ended on the first page")
			}
			break
		}
	}
	if !slices.Equal(got, []string{mine}) {
		t.Fatalf("/relations: %v, want %s", got, mine)
	}
}

// TestThreadCountVisible: a thread's bundled count is of the events the
// caller may see and does not ignore.
func TestThreadCountVisible(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"}) // shared history
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	root := tn.send(at, roomID, "root", "thread root")
	reply := func(token string) { tn.sendEv(token, roomID, "m.room.message", relContent("reply", "m.thread", root)) }
	reply(bt)
	reply(at)
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.history_visibility/", at, map[string]string{"history_visibility": "joined"}))
	reply(bt) // hidden from carol: sent before she joined
	reply(bt)
	reply(at)
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	reply(at)

	count := func(token string) any {
		t.Helper()
		ev := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), token, nil)).Body
		return bundleOf(ev, "m.thread")["count"]
	}
	if c := count(bt); c != 6.0 {
		t.Fatalf("bob's count %v, want 6", c)
	}
	if c := count(ct); c != 3.0 {
		t.Fatalf("carol's count %v, want 3", c)
	}
	tn.ignore(ct, carol, bob)
	if c := count(ct); c != 2.0 {
		t.Fatalf("carol's count ignoring bob %v, want 2", c)
	}
}

// TestThreadsScanBound: /threads reads a bounded number of thread roots
// the caller cannot see per request, handing back a token to go on.
func TestThreadsScanBound(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	tn.ignore(ct, carol, bob)
	mine := tn.send(at, roomID, "root", "alice's thread")
	tn.sendEv(at, roomID, "m.room.message", relContent("reply", "m.thread", mine))
	for i := range threadScanBatches*50 + 5 {
		r := tn.send(bt, roomID, fmt.Sprintf("b%d", i), "bob's thread")
		tn.sendEv(bt, roomID, "m.room.message", relContent("reply", "m.thread", r))
	}
	var got []string
	from := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("/threads never ended")
		}
		path := cv1 + "/rooms/" + esc(roomID) + "/threads?limit=1"
		if from != "" {
			path += "&from=" + url.QueryEscape(from)
		}
		r := ok(t, tn.do("GET", path, ct, nil))
		ids := chunkIDs(r)
		if page == 0 && (len(ids) != 0 || r.str("next_batch") == "") {
			t.Fatalf("first page: %v, next_batch %q; want none and a token", ids, r.str("next_batch"))
		}
		got = append(got, ids...)
		if from = r.str("next_batch"); from == "" {
			break
		}
	}
	if !slices.Equal(got, []string{mine}) {
		t.Fatalf("/threads: %v, want %s", got, mine)
	}
}
