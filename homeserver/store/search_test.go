package store

import (
	"slices"
	"testing"
)

func hitIDs(hits []SearchHit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Event.EventID)
	}
	return out
}

func TestSearchIndexRankAndRedaction(t *testing.T) {
	s := openTemp(t)
	r := &relRoom{t: t, s: s}
	r.put("$1", "m.room.message", "@a:x", map[string]any{"body": "Martians land near the base"}, 0)
	r.put("$2", "m.room.message", "@a:x", map[string]any{"body": "martians martians everywhere, said the Martian"}, 0)
	r.put("$3", "m.room.message", "@a:x", map[string]any{"body": "nothing to see"}, 0)
	r.put("$4", "m.room.topic", "@a:x", map[string]any{"topic": "martian weather"}, 0)
	r.put("$5", "m.room.encrypted", "@a:x", map[string]any{"body": "martians in ciphertext"}, 0)
	r.put("$6", "m.room.message", "@a:x", map[string]any{"body": `quote "martians" here`}, -3)

	room := []SearchRange{{RoomID: "!r:x", After: -100, UpTo: 100}}
	q := SearchQuery{Terms: SearchTerms("  MARTIAN! "), Keys: []string{"content.body"}, Rooms: room, Before: 100, Limit: 10}
	hits, err := s.Search(q)
	if err != nil {
		t.Fatal(err)
	}
	// The message saying it three times ranks first; the topic is not a
	// body; the encrypted event and the outlier are not found.
	if got := hitIDs(hits); !slices.Equal(got, []string{"$2", "$1"}) {
		t.Fatalf("by rank: %v", got)
	}
	if hits[0].Rank <= hits[1].Rank {
		t.Fatalf("ranks %v, %v: want the first higher", hits[0].Rank, hits[1].Rank)
	}
	if !slices.Equal(hits[0].Words, []string{"martians", "martian"}) || !slices.Equal(hits[1].Words, []string{"martians"}) {
		t.Fatalf("words %q, %q", hits[0].Words, hits[1].Words)
	}
	if n, err := s.SearchCount(q); err != nil || n != 2 {
		t.Fatalf("count %d %v", n, err)
	}
	q.Recent = true
	hits, _ = s.Search(q)
	if got := hitIDs(hits); !slices.Equal(got, []string{"$2", "$1"}) {
		t.Fatalf("recent: %v", got)
	}
	q.Before, q.Limit = 1, 10
	if got := hitIDs(must(s.Search(q))); !slices.Equal(got, []string{"$1"}) {
		t.Fatalf("recent before 1: %v", got)
	}
	q.Recent, q.Before, q.Offset, q.Limit = false, 100, 1, 1
	if got := hitIDs(must(s.Search(q))); !slices.Equal(got, []string{"$1"}) {
		t.Fatalf("rank offset 1: %v", got)
	}
	q.Offset, q.Limit = 0, 10
	q.Keys = []string{"content.body", "content.topic"}
	if got := hitIDs(must(s.Search(q))); len(got) != 3 {
		t.Fatalf("with topics: %v", got)
	}
	// All words must match; quotes in a term cannot break the query.
	q.Terms = SearchTerms(`martians "base`)
	if got := hitIDs(must(s.Search(q))); !slices.Equal(got, []string{"$1"}) {
		t.Fatalf("two words: %v", got)
	}
	q.Terms = []string{`mar"tians`}
	if _, err := s.Search(q); err != nil {
		t.Fatalf("quote in a term: %v", err)
	}
	// Another room's range finds nothing; the outlier joins once promoted.
	q.Terms = SearchTerms("martians")
	q.Rooms = []SearchRange{{RoomID: "!other:x", UpTo: 100}}
	if got := hitIDs(must(s.Search(q))); len(got) != 0 {
		t.Fatalf("other room: %v", got)
	}
	q.Rooms = room
	if err := s.RoomTx(func(tx *RoomTx) error { return tx.PromoteOutlier("$6", -4, 0, 0) }); err != nil {
		t.Fatal(err)
	}
	if got := hitIDs(must(s.Search(q))); !slices.Equal(got, []string{"$2", "$6", "$1"}) {
		t.Fatalf("after promotion: %v", got)
	}
	// Redaction removes the text from the index.
	if err := s.RoomTx(func(tx *RoomTx) error { return tx.SetRedactedBy("$2", "$red") }); err != nil {
		t.Fatal(err)
	}
	var docs int
	if err := s.DB.QueryRow(`SELECT COUNT(*) FROM event_search WHERE event_search MATCH 'martians'`).Scan(&docs); err != nil {
		t.Fatal(err)
	}
	if docs != 2 { // $1 and $6; the topic says "martian"
		t.Fatalf("%d index rows match after redaction, want 2", docs)
	}
	if got := hitIDs(must(s.Search(q))); slices.Contains(got, "$2") {
		t.Fatalf("redacted event found: %v", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
