package event

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func memoTestEvent(t *testing.T, body string) *Event {
	t.Helper()
	e, err := Build(Proto{
		RoomID: "!r:domain", Sender: "@alice:domain", Type: "m.room.message",
		Content: map[string]any{"body": body}, PrevEvents: []string{}, AuthEvents: []string{},
		Depth: 3, OriginServerTS: 1700000000000,
	}, V11, specServer, specKeyID, specKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestMemoComputesOncePerEvent(t *testing.T) {
	var calls atomic.Int64
	bodyLen := NewMemo("body length", func(e *Event) *int {
		calls.Add(1)
		n := len(e.ContentMap()["body"].(string))
		return &n
	})
	var typeCalls atomic.Int64
	typ := NewMemo("type", func(e *Event) string {
		typeCalls.Add(1)
		return e.Type()
	})
	a, b := memoTestEvent(t, "hi"), memoTestEvent(t, "hello")

	first := bodyLen.Get(a)
	for range 5 {
		if got := bodyLen.Get(a); got != first || *got != 2 {
			t.Fatalf("Get(a) = %p (%d), want %p (2)", got, *got, first)
		}
	}
	if got := *bodyLen.Get(b); got != 5 {
		t.Fatalf("Get(b) = %d, want 5", got)
	}
	if typ.Get(a) != "m.room.message" {
		t.Fatalf("type memo = %q", typ.Get(a))
	}
	// A second memo on a does not disturb the first.
	if got := bodyLen.Get(a); got != first {
		t.Fatalf("Get(a) after another memo = %p, want %p", got, first)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("compute ran %d times for 2 events, want 2", n)
	}
	if n := typeCalls.Load(); n != 1 {
		t.Fatalf("type compute ran %d times, want 1", n)
	}
	if s := fmt.Sprint(bodyLen); s != "body length" {
		t.Fatalf("String() = %q", s)
	}
}

// Concurrent first uses of several memos on one event must all see one
// stored value per memo. Run with -race.
func TestMemoConcurrent(t *testing.T) {
	e := memoTestEvent(t, "race")
	const memos, readers = 4, 8
	ms := make([]*Memo[*string], memos)
	for i := range ms {
		ms[i] = NewMemo(fmt.Sprint("m", i), func(e *Event) *string {
			s := fmt.Sprintf("%d:%s", i, e.ID())
			return &s
		})
	}
	got := make([][memos]*string, readers)
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for i, m := range ms {
				got[r][i] = m.Get(e)
			}
		})
	}
	wg.Wait()
	for i, m := range ms {
		want := m.Get(e)
		if *want != fmt.Sprintf("%d:%s", i, e.ID()) {
			t.Fatalf("memo %d = %q", i, *want)
		}
		for r := range readers {
			if got[r][i] != want {
				t.Fatalf("reader %d saw value %p of memo %d, stored is %p", r, got[r][i], i, want)
			}
		}
	}
}

func TestMemoGetDoesNotAllocate(t *testing.T) {
	e := memoTestEvent(t, "x")
	m := NewMemo("id length", func(e *Event) *int { n := len(e.ID()); return &n })
	other := NewMemo("type", func(e *Event) string { return e.Type() })
	m.Get(e)
	other.Get(e)
	if n := testing.AllocsPerRun(100, func() { m.Get(e); other.Get(e) }); n != 0 {
		t.Fatalf("Get on a stored memo allocates %v times, want 0", n)
	}
}
