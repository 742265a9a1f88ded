package homeserver

import (
	"log/slog"
	"slices"
	"testing"
)

// Work under one key runs once; later callers get its result; a finish
// after endAll (or a second finish) reaches nobody twice; a new flight
// under the same key is not ended by the old one's finish.
func TestFlights(t *testing.T) {
	fs := flights[int]{}
	var got []int
	var finish func(int)
	starts := 0
	start := func(f func(int)) { starts++; finish = f }
	fs.do("k", func(v int) { got = append(got, v) }, start)
	fs.do("k", func(v int) { got = append(got, 10+v) }, start)
	after := false
	fs.after("k", func() { after = true })
	if starts != 1 || len(got) != 0 || after {
		t.Fatalf("starts %d, got %v, after %v before the work ended", starts, got, after)
	}
	finish(1)
	finish(2)
	if !slices.Equal(got, []int{1, 11}) || !after || len(fs) != 0 {
		t.Fatalf("got %v, after %v, %d flights left", got, after, len(fs))
	}
	ran := false
	fs.after("k", func() { ran = true })
	if !ran {
		t.Fatal("after with nothing in flight did not run at once")
	}

	// endAll answers everyone; the old work's late finish is ignored and
	// does not end the next flight under the key.
	got = nil
	fs.do("k", func(v int) { got = append(got, v) }, start)
	old := finish
	fs.endAll(-1)
	fs.do("k", func(v int) { got = append(got, 100+v) }, start)
	old(5)
	if !slices.Equal(got, []int{-1}) || len(fs) != 1 {
		t.Fatalf("after endAll and a late finish: got %v, %d flights", got, len(fs))
	}
	finish(7)
	if !slices.Equal(got, []int{-1, 107}) {
		t.Fatalf("got %v", got)
	}
}

// A bug caught by the room federation guard ends the backfills, joins and
// invites in flight, so the requests waiting for them are answered.
func TestFedRoomGuardEndsFlights(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	fr := fedRoomsOf(a.Node)
	fr.n.log = slog.New(slog.DiscardHandler)
	var backfilled *bool
	var joined, invited error = nil, nil
	never := func(func(error)) {}
	fr.backfilling.do("!r", func(added bool) { backfilled = &added }, func(func(bool)) {})
	fr.joining.do("!r\x00@u", func(err error) { joined = err }, never)
	fr.inviting.do("!r\x00@v", func(err error) { invited = err }, never)
	fr.guard(func() { panic("a bug") })
	if backfilled == nil || *backfilled || joined != errInternal || invited != errInternal || fr.panics != 1 {
		t.Fatalf("backfill %v, join %v, invite %v, panics %d", backfilled, joined, invited, fr.panics)
	}
}
