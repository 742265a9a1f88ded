package store

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"testing"
)

// relRoom is a test room's events, stored straight through RoomTx.
type relRoom struct {
	t   *testing.T
	s   *Store
	pos int64
}

// put stores an event with the given content at the next position (a
// negative pos makes it an outlier there).
func (r *relRoom) put(id, typ, sender string, content any, outlierPos int64) {
	r.t.Helper()
	raw, err := json.Marshal(map[string]any{"type": typ, "sender": sender, "content": content})
	if err != nil {
		r.t.Fatal(err)
	}
	row := EventRow{EventID: id, RoomID: "!r:x", Type: typ, Sender: sender, JSON: raw}
	if outlierPos < 0 {
		row.Pos, row.Outlier = outlierPos, true
	} else {
		r.pos++
		row.Pos = r.pos
	}
	if err := r.s.RoomTx(func(tx *RoomTx) error { return tx.InsertEvent(row, nil) }); err != nil {
		r.t.Fatal(err)
	}
}

func rel(relType, parent string, extra map[string]any) map[string]any {
	c := map[string]any{"body": "x", "m.relates_to": map[string]any{"rel_type": relType, "event_id": parent}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func ids(rows []EventRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.EventID)
	}
	return out
}

func TestRelationsIndexAndQuery(t *testing.T) {
	s := openTemp(t)
	r := &relRoom{t: t, s: s}
	r.put("$root", "m.room.message", "@a:x", map[string]any{"body": "root"}, 0)
	r.put("$t1", "m.room.message", "@b:x", rel(RelThread, "$root", nil), 0)
	r.put("$edit", "m.room.message", "@a:x", rel(RelReplace, "$root", nil), 0)
	r.put("$t2", "m.room.encrypted", "@c:x", map[string]any{"ciphertext": "…",
		"m.relates_to": map[string]any{"rel_type": RelThread, "event_id": "$root"}}, 0)
	r.put("$react", "m.reaction", "@b:x", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": "$t1", "key": "👍"}}, 0)
	r.put("$reply", "m.room.message", "@b:x", map[string]any{"body": "r",
		"m.relates_to": map[string]any{"m.in_reply_to": map[string]any{"event_id": "$root"}}}, 0)
	r.put("$bad", "m.room.message", "@b:x", map[string]any{"m.relates_to": map[string]any{"rel_type": 7, "event_id": "$root"}}, 0)
	r.put("$out", "m.room.message", "@b:x", rel(RelThread, "$root", nil), -5)

	all := RelationsQuery{RoomID: "!r:x", Parent: "$root", Depth: 1, After: -1 << 62, UpTo: 1 << 62}
	cases := []struct {
		name string
		q    func(RelationsQuery) RelationsQuery
		want []string
	}{
		{"all newest first", func(q RelationsQuery) RelationsQuery { return q }, []string{"$t2", "$edit", "$t1"}},
		{"forward", func(q RelationsQuery) RelationsQuery { q.Forward = true; return q }, []string{"$t1", "$edit", "$t2"}},
		{"rel type", func(q RelationsQuery) RelationsQuery { q.RelType = RelThread; return q }, []string{"$t2", "$t1"}},
		{"rel and event type", func(q RelationsQuery) RelationsQuery {
			q.RelType, q.EventType = RelThread, "m.room.message"
			return q
		}, []string{"$t1"}},
		{"limit", func(q RelationsQuery) RelationsQuery { q.Limit = 1; return q }, []string{"$t2"}},
		{"range", func(q RelationsQuery) RelationsQuery { q.After, q.UpTo = 2, 3; return q }, []string{"$edit"}},
		{"recurse", func(q RelationsQuery) RelationsQuery { q.Depth = 3; return q }, []string{"$react", "$t2", "$edit", "$t1"}},
		// The filter applies on the way: the reaction hangs off a thread
		// event, not off a matching m.annotation.
		{"recurse filtered", func(q RelationsQuery) RelationsQuery { q.Depth, q.RelType = 3, "m.annotation"; return q }, nil},
	}
	for _, c := range cases {
		got, err := s.Relations(c.q(all))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), c.want) {
			t.Errorf("%s: got %v, want %v", c.name, ids(got), c.want)
		}
	}

	// The outlier joins the timeline: now it is a child too.
	if err := s.RoomTx(func(tx *RoomTx) error { return tx.PromoteOutlier("$out", -6, 0, 0) }); err != nil {
		t.Fatal(err)
	}
	q := all
	q.RelType = RelThread
	got, err := s.Relations(q)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"$t2", "$t1", "$out"}; !slices.Equal(ids(got), want) {
		t.Fatalf("after promotion: %v, want %v", ids(got), want)
	}

	// Summaries and the thread list.
	sums, err := s.ThreadSummaries("!r:x", []string{"$root", "$t1"}, 1<<62, "@b:x")
	if err != nil {
		t.Fatal(err)
	}
	if ts := sums["$root"]; len(sums) != 1 || ts.Count != 3 || !ts.Participated || ts.Latest.EventID != "$t2" {
		t.Fatalf("summaries %+v", sums)
	}
	sums, _ = s.ThreadSummaries("!r:x", []string{"$root"}, 2, "@c:x")
	if ts := sums["$root"]; ts.Count != 2 || ts.Participated || ts.Latest.EventID != "$t1" {
		t.Fatalf("summary up to 2: %+v", ts)
	}
	// Counts by state group, without an ignored sender, split at a position.
	for _, c := range []struct {
		ignored     []string
		split       int64
		total, rest int
	}{{nil, math.MinInt64, 3, 3}, {[]string{"@c:x"}, math.MaxInt64, 2, 0}} {
		groups, err := s.ThreadGroupCounts("!r:x", []string{"$root", "$t1"}, math.MinInt64, 1<<62, c.split, c.ignored, 50)
		if err != nil {
			t.Fatal(err)
		}
		n, rest := 0, 0
		for _, g := range groups {
			if g.Root != "$root" || g.Total != c.total || g.Lo > g.Hi {
				t.Fatalf("ignoring %v: group %+v", c.ignored, g)
			}
			n, rest = n+g.Below+g.Rest, rest+g.Rest
		}
		if n != c.total || rest != c.rest {
			t.Fatalf("ignoring %v: %d events, %d at or past the split; want %d, %d", c.ignored, n, rest, c.total, c.rest)
		}
	}
	kinds, err := s.RelationKinds("!r:x", []string{"$root", "$t1", "$edit"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(kinds["$root"])
	if len(kinds) != 2 || !slices.Equal(kinds["$root"], []string{RelReplace, RelThread}) || !slices.Equal(kinds["$t1"], []string{"m.annotation"}) {
		t.Fatalf("kinds %v", kinds)
	}
	ch, err := s.Children(ChildQuery{RoomID: "!r:x", Parent: "$root", RelType: RelReplace, UpTo: 1 << 62, Newest: true, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0].EventID != "$edit" {
		t.Fatalf("children %+v", ch)
	}
	if ch, _ := s.Children(ChildQuery{RoomID: "!r:x", Parent: "$root", RelType: RelReplace, Sender: "@nobody:x", UpTo: 1 << 62, Limit: 5}); len(ch) != 0 {
		t.Fatalf("children of another sender %+v", ch)
	}
	if _, err := s.Children(ChildQuery{RoomID: "!r:x", Parent: "$root", RelType: RelReplace, UpTo: 1 << 62}); err == nil {
		t.Fatal("children without a limit")
	}

	r.put("$root2", "m.room.message", "@c:x", map[string]any{"body": "second"}, 0)
	r.put("$u1", "m.room.message", "@c:x", rel(RelThread, "$root2", nil), 0)
	roots, err := s.Threads("!r:x", 1<<62, 1<<62, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 2 || roots[0].Root.EventID != "$root2" || roots[1].Root.EventID != "$root" {
		t.Fatalf("threads %+v", roots)
	}
	roots, _ = s.Threads("!r:x", roots[0].Latest-1, 1<<62, "", 10)
	if len(roots) != 1 || roots[0].Root.EventID != "$root" {
		t.Fatalf("threads page 2 %+v", roots)
	}
	roots, _ = s.Threads("!r:x", 1<<62, 1<<62, "@b:x", 10)
	if len(roots) != 1 || roots[0].Root.EventID != "$root" {
		t.Fatalf("threads @b participated %+v", roots)
	}
	roots, _ = s.Threads("!r:x", 1<<62, 1<<62, "@c:x", 10)
	if len(roots) != 2 {
		t.Fatalf("threads @c participated (root sender and thread sender) %+v", roots)
	}

	// Redacting a child breaks its relation.
	if err := s.RoomTx(func(tx *RoomTx) error { return tx.SetRedactedBy("$t1", "$red") }); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Relations(q)
	if want := []string{"$t2", "$out"}; !slices.Equal(ids(got), want) {
		t.Fatalf("after redaction: %v, want %v", ids(got), want)
	}
}

// TestMigrationIndexesExistingEvents upgrades a database from version 7
// and finds the relations and text of the events it already held.
func TestMigrationIndexesExistingEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	old, err := OpenAt(path, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range []struct{ id, typ, json string }{
		{"$root", "m.room.message", `{"content":{"body":"hello martians"}}`},
		{"$child", "m.room.message", `{"content":{"body":"and men","m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}}`},
		{"$name", "m.room.name", `{"content":{"name":"Mars base"}}`},
		{"$num", "m.room.message", `{"content":{"body":5}}`},
	} {
		if _, err := old.DB.Exec(`INSERT INTO events (`+eventCols+`) VALUES (?,?,'!r:x',?,NULL,'@a:x',1,1,0,0,NULL,NULL,NULL,NULL,?,FALSE)`,
			i+1, ev.id, ev.typ, []byte(ev.json)); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Relations(RelationsQuery{RoomID: "!r:x", Parent: "$root", Depth: 1, UpTo: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []string{"$child"}) {
		t.Fatalf("relations %v", ids(got))
	}
	hits, err := s.Search(SearchQuery{Terms: []string{"mar"}, Keys: []string{"content.body", "content.name"},
		Rooms: []SearchRange{{RoomID: "!r:x", UpTo: 100}}, Before: 100, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, h := range hits {
		found = append(found, h.Event.EventID)
	}
	slices.Sort(found)
	if !slices.Equal(found, []string{"$name", "$root"}) {
		t.Fatalf("search after upgrade: %v", found)
	}
}
