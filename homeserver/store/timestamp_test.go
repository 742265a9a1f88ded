package store

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestRoomEventsByTS: ordering by origin_server_ts with stream position
// breaking ties, paging with (ts, afterPos), outliers and other rooms left
// out.
func TestRoomEventsByTS(t *testing.T) {
	s := openTemp(t)
	// pos: ts. Position 3 is an outlier, position 7 in another room.
	tss := map[int64]int64{1: 100, 2: 300, 3: 200, 4: 200, 5: 200, 6: 400, 7: 200, -1: 250}
	err := s.RoomTx(func(tx *RoomTx) error {
		for _, pos := range []int64{1, 2, 3, 4, 5, 6, 7, -1} {
			room := "!r:x"
			if pos == 7 {
				room = "!other:x"
			}
			r := EventRow{Pos: pos, EventID: fmt.Sprintf("$e%d", pos), RoomID: room, Type: "m.room.message",
				Sender: "@a:x", Depth: pos, OriginServerTS: tss[pos], JSON: []byte(`{}`), Outlier: pos == 3}
			if err := tx.InsertEvent(r, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(rows []EventRow) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r.EventID)
		}
		return out
	}
	for _, c := range []struct {
		ts, after int64
		forward   bool
		limit     int
		want      []string
	}{
		{200, math.MinInt64, true, 10, []string{"$e4", "$e5", "$e-1", "$e2", "$e6"}},
		{200, math.MinInt64, true, 2, []string{"$e4", "$e5"}},
		{200, 5, true, 2, []string{"$e-1", "$e2"}}, // the next page
		{200, 4, true, 1, []string{"$e5"}},
		{250, math.MaxInt64, false, 10, []string{"$e-1", "$e5", "$e4", "$e1"}},
		{200, 5, false, 10, []string{"$e4", "$e1"}},
		{99, math.MaxInt64, false, 10, nil},
		{401, math.MinInt64, true, 10, nil},
	} {
		rows, err := s.RoomEventsByTS("!r:x", c.ts, c.after, c.forward, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(rows); !slices.Equal(got, c.want) {
			t.Errorf("ts %d after %d forward %v: %v, want %v", c.ts, c.after, c.forward, got, c.want)
		}
	}
}
