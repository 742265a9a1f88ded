package store

import (
	"errors"
	"testing"
)

// TestFederatedRoomTables covers migration 0004: outliers below the
// timeline, rejected events, the current state pointer and remote invites.
func TestFederatedRoomTables(t *testing.T) {
	s := openTemp(t)
	sk := ""
	rows := []EventRow{
		{Pos: 1, EventID: "$a", RoomID: "!r:x", Type: "m.room.create", StateKey: &sk, Sender: "@u:x", JSON: []byte(`{}`)},
		{Pos: -1, EventID: "$out", RoomID: "!r:x", Type: "m.room.member", StateKey: &sk, Sender: "@v:y",
			StateBefore: -1, StateAfter: -1, Outlier: true, JSON: []byte(`{}`)},
		{Pos: 2, EventID: "$b", RoomID: "!r:x", Type: "m.room.message", Sender: "@u:x", JSON: []byte(`{}`)},
	}
	err := s.RoomTx(func(tx *RoomTx) error {
		for _, r := range rows {
			prev := []string{}
			if r.EventID == "$b" {
				prev = []string{"$a", "$out"}
			}
			if err := tx.InsertEvent(r, prev); err != nil {
				return err
			}
		}
		if err := tx.InsertRejected(Rejected{EventID: "$bad", RoomID: "!r:x", Origin: "y", Reason: "forged", JSON: []byte(`{}`)}); err != nil {
			return err
		}
		// A second rejection keeps the first reason.
		if err := tx.InsertRejected(Rejected{EventID: "$bad", RoomID: "!r:x", Origin: "y", Reason: "other", JSON: []byte(`{}`)}); err != nil {
			return err
		}
		if err := tx.SetCurrentState("!r:x", 7); err != nil {
			return err
		}
		return tx.PutRemoteInvite(RemoteInvite{RoomID: "!q:y", UserID: "@u:x", RoomVersion: "10", EventID: "$inv",
			JSON: []byte(`{}`), InviteState: []byte(`[]`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.MinStreamPos(); err != nil || p != -1 {
		t.Fatalf("min stream pos %d, %v", p, err)
	}
	tl, err := s.RoomEventsRange("!r:x", -100, 100, true, 0)
	if err != nil || len(tl) != 2 || tl[0].EventID != "$a" || tl[1].EventID != "$b" {
		t.Fatalf("timeline %+v, %v: want the outlier left out", tl, err)
	}
	if o, err := s.OldestRoomEvent("!r:x"); err != nil || o.EventID != "$a" {
		t.Fatalf("oldest %+v, %v", o, err)
	}
	if r, err := s.Event("$out"); err != nil || !r.Outlier || r.StateAfter != -1 {
		t.Fatalf("outlier row %+v, %v", r, err)
	}
	if succ, err := s.Successors("$out"); err != nil || len(succ) != 1 || succ[0] != "$b" {
		t.Fatalf("successors %v, %v", succ, err)
	}
	if err := s.RoomTx(func(tx *RoomTx) error { return tx.PromoteOutlier("$out", -5, 0, 0) }); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Event("$out"); err != nil || r.Outlier || r.StateBefore != 0 || r.StateAfter != 0 || r.Pos != -5 {
		t.Fatalf("promoted row %+v, %v", r, err)
	}
	if tl, _ := s.RoomEventsRange("!r:x", -100, 100, true, 0); len(tl) != 3 || tl[0].EventID != "$out" {
		t.Fatalf("after promotion: %+v", tl)
	}
	if r, err := s.RejectedReason("$bad"); err != nil || r != "forged" {
		t.Fatalf("rejected reason %q, %v", r, err)
	}
	if rs, err := s.RejectedEvents("!r:x"); err != nil || len(rs) != 1 || rs[0].Origin != "y" {
		t.Fatalf("rejected events %+v, %v", rs, err)
	}
	if _, err := s.RejectedReason("$a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("accepted event has a rejection: %v", err)
	}
	if g, err := s.CurrentStateGroup("!r:x"); err != nil || g != 7 {
		t.Fatalf("current state group %d, %v", g, err)
	}
	if _, err := s.CurrentStateGroup("!other:x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown room: %v", err)
	}
	if ri, err := s.RemoteInvite("!q:y", "@u:x"); err != nil || ri.EventID != "$inv" || string(ri.InviteState) != "[]" {
		t.Fatalf("remote invite %+v, %v", ri, err)
	}
	if err := s.RoomTx(func(tx *RoomTx) error { return tx.DeleteRemoteInvite("!q:y", "@u:x") }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoteInvite("!q:y", "@u:x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted invite: %v", err)
	}
}
