package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "rooms.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStateGroupChain grows a room's state one key at a time past the
// delta chain limit and checks every group reads back whole, with a full
// snapshot written once the chain is long.
func TestStateGroupChain(t *testing.T) {
	s := openTemp(t)
	var groups []StateGroup
	var states []StateMap
	prev, prevState := StateGroup{}, StateMap{}
	for i := range 3*maxStateChain + 5 {
		next := StateMap{}
		for k, v := range prevState {
			next[k] = v
		}
		// Alternately add a key and replace one.
		if i%2 == 0 {
			next[StateKey{"m.room.member", fmt.Sprintf("@u%d:x", i)}] = fmt.Sprintf("$join%d", i)
		} else {
			next[StateKey{"m.room.name", ""}] = fmt.Sprintf("$name%d", i)
		}
		var g StateGroup
		err := s.RoomTx(func(tx *RoomTx) error {
			var err error
			g, err = tx.InsertStateGroup("!r:x", prev, prevState, next)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if g.ChainLen > maxStateChain {
			t.Fatalf("group %d has chain %d > %d", g.ID, g.ChainLen, maxStateChain)
		}
		groups = append(groups, g)
		states = append(states, next)
		prev, prevState = g, next
	}
	snapshots := 0
	for i, g := range groups {
		got, head, err := s.LoadStateGroup(g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if head != g {
			t.Fatalf("group %d header %+v, want %+v", g.ID, head, g)
		}
		if len(got) != len(states[i]) {
			t.Fatalf("group %d: %d entries, want %d", g.ID, len(got), len(states[i]))
		}
		for k, v := range states[i] {
			if got[k] != v {
				t.Fatalf("group %d: %v = %q, want %q", g.ID, k, got[k], v)
			}
		}
		if g.ChainLen == 0 {
			snapshots++
		}
	}
	if snapshots < 3 {
		t.Fatalf("%d snapshots in %d groups", snapshots, len(groups))
	}
	// Rows written: deltas are one entry each, not the whole state.
	var rows int
	if err := s.DB.QueryRow(`SELECT COUNT(*) FROM state_group_entries`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	full := 0
	for _, st := range states {
		full += len(st)
	}
	if rows >= full/4 {
		t.Fatalf("%d entry rows for %d groups (%d if stored whole): deltas not used", rows, len(groups), full)
	}
	if _, _, err := s.LoadStateGroup(999999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing group: %v", err)
	}
}

func TestEventsAndStreams(t *testing.T) {
	s := openTemp(t)
	sk := ""
	err := s.RoomTx(func(tx *RoomTx) error {
		if err := tx.InsertRoom(Room{RoomID: "!r:x", Version: "10", Creator: "@a:x"}); err != nil {
			return err
		}
		for i := 1; i <= 5; i++ {
			r := EventRow{Pos: int64(i), EventID: fmt.Sprintf("$e%d", i), RoomID: "!r:x", Type: "m.room.message",
				Sender: "@a:x", Depth: int64(i), OriginServerTS: 1000, JSON: []byte(fmt.Sprintf(`{"n":%d}`, i))}
			if i == 1 {
				r.Type, r.StateKey = "m.room.create", &sk
			}
			var prev []string
			if i > 1 {
				prev = []string{fmt.Sprintf("$e%d", i-1)}
			}
			if err := tx.InsertEvent(r, prev); err != nil {
				return err
			}
			if err := tx.SetForwardExtremities("!r:x", []string{r.EventID}); err != nil {
				return err
			}
		}
		return tx.InsertTxn("@a:x", "DEV", "t1", "$e3")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RoomTx(func(tx *RoomTx) error { return tx.InsertRoom(Room{RoomID: "!r:x", Version: "10", Creator: "@b:x"}) }); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate room: %v", err)
	}
	back, err := s.RoomEventsRange("!r:x", 1, 4, false, 2)
	if err != nil || len(back) != 2 || back[0].EventID != "$e4" || back[1].EventID != "$e3" {
		t.Fatalf("backwards range: %v %+v", err, back)
	}
	fwd, err := s.RoomEventsRange("!r:x", 0, 100, true, 0)
	if err != nil || len(fwd) != 5 || fwd[0].StateKey == nil || fwd[1].StateKey != nil || string(fwd[4].JSON) != `{"n":5}` {
		t.Fatalf("forward range: %v %+v", err, fwd)
	}
	st, err := s.RoomStateEventsRange("!r:x", 0, 100)
	if err != nil || len(st) != 1 || st[0].EventID != "$e1" {
		t.Fatalf("state range: %v %+v", err, st)
	}
	ext, err := s.ForwardExtremities("!r:x")
	if err != nil || len(ext) != 1 || ext[0] != "$e5" {
		t.Fatalf("extremities %v %v", ext, err)
	}
	if id, err := s.Txn("@a:x", "DEV", "t1"); err != nil || id != "$e3" {
		t.Fatalf("txn %q %v", id, err)
	}
	if _, err := s.Txn("@a:x", "OTHER", "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("txn on another device: %v", err)
	}

	// Receipts and account data share the stream; MaxStreamPos sees all.
	if err := s.PutReceipt(Receipt{RoomID: "!r:x", Type: "m.read", UserID: "@b:x", EventID: "$e4", TS: 5, Pos: 6}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReceipt(Receipt{RoomID: "!r:x", Type: "m.read", UserID: "@b:x", EventID: "$e2", TS: 6, Pos: 7}); err != nil {
		t.Fatal(err)
	}
	if pos, err := s.UserReadPos("!r:x", "@b:x"); err != nil || pos != 2 {
		t.Fatalf("read position %d %v (the newer receipt replaces the older)", pos, err)
	}
	if err := s.PutAccountData(AccountData{UserID: "@b:x", Type: "m.direct", Content: []byte(`{}`), Pos: 8}); err != nil {
		t.Fatal(err)
	}
	if pos, err := s.MaxStreamPos(); err != nil || pos != 8 {
		t.Fatalf("max stream position %d %v", pos, err)
	}
	ad, err := s.AccountDataSince("@b:x", 7, 8)
	if err != nil || len(ad) != 1 || ad[0].Type != "m.direct" {
		t.Fatalf("account data since: %v %+v", err, ad)
	}
	id, err := s.InsertFilter("@b:x", []byte(`{"room":{}}`))
	if err != nil || id != 0 {
		t.Fatalf("filter id %d %v", id, err)
	}
	if id, _ := s.InsertFilter("@b:x", []byte(`{}`)); id != 1 {
		t.Fatalf("second filter id %d", id)
	}
	if f, err := s.Filter("@b:x", 0); err != nil || string(f) != `{"room":{}}` {
		t.Fatalf("filter %s %v", f, err)
	}
	if _, err := s.Filter("@c:x", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("someone else's filter: %v", err)
	}
}
