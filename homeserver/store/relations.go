package store

// Relations between events (migration 0008, table event_relations).
// Spec: client-server-api "Forming relationships between events": a child
// event names its parent in content."m.relates_to" {rel_type, event_id}.
// Each event's relation is indexed when the event is stored
// (RoomTx.InsertEvent) and dropped when the event is redacted (the
// redacted content has no m.relates_to: "when a child event is redacted
// then the relationship is broken"). Queries join the events table and
// leave outliers out, so an outlier promoted into the timeline becomes
// visible without touching this table.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Relation types the server treats specially. Spec: client-server-api
// "Threading", "Event replacements", "Reference relations".
const (
	RelThread    = "m.thread"
	RelReplace   = "m.replace"
	RelReference = "m.reference"
)

// MaxRelationDepth is how many levels of relations a recursive relations
// query follows. Spec: client-server-api GET /relations "recurse" ("It is
// recommended that homeservers traverse at least 3 levels").
const MaxRelationDepth = 3

// indexed is what the indexes of this migration read from a PDU.
type indexed struct {
	parent, relType string // content."m.relates_to"; "" when absent
	key, text       string // the searchable field and its text; "" when none
}

// searchKeys maps event types to the content field search covers. Spec:
// client-server-api "Server Side Search", room_events.
var searchKeys = map[string]string{
	"m.room.message": "body",
	"m.room.name":    "name",
	"m.room.topic":   "topic",
}

// indexedOf reads the relation and the searchable text of a PDU. Fields
// of the wrong JSON type are ignored, as the spec says of relations that
// do not match the schema.
func indexedOf(typ string, raw []byte) indexed {
	var pdu struct {
		Content map[string]json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &pdu) != nil || pdu.Content == nil {
		return indexed{}
	}
	var out indexed
	if rt := pdu.Content["m.relates_to"]; rt != nil {
		var rel map[string]json.RawMessage
		if json.Unmarshal(rt, &rel) == nil {
			var parent, relType string
			if json.Unmarshal(rel["event_id"], &parent) == nil && json.Unmarshal(rel["rel_type"], &relType) == nil &&
				parent != "" && relType != "" {
				out.parent, out.relType = parent, relType
			}
		}
	}
	if field, ok := searchKeys[typ]; ok {
		var s string
		if json.Unmarshal(pdu.Content[field], &s) == nil && s != "" {
			out.key, out.text = "content."+field, s
		}
	}
	return out
}

// indexEvent fills the relation and search indexes for a stored event
// (InsertEvent). An event stored already redacted has nothing to index.
func (t *RoomTx) indexEvent(r EventRow) error {
	if r.RedactedBy != "" {
		return nil
	}
	ix := indexedOf(r.Type, r.JSON)
	if ix.parent != "" {
		if _, err := t.tx.Exec(`INSERT INTO event_relations (event_id, room_id, relates_to, rel_type) VALUES (?, ?, ?, ?)`,
			r.EventID, r.RoomID, ix.parent, ix.relType); err != nil {
			return fmt.Errorf("store: index relation of %s: %w", r.EventID, describe(err))
		}
	}
	if ix.key != "" {
		if err := t.indexSearch(r, ix.key, ix.text); err != nil {
			return err
		}
	}
	return nil
}

// unindexEvent removes a redacted event from the relation and search
// indexes (SetRedactedBy).
func (t *RoomTx) unindexEvent(eventID string) error {
	if _, err := t.tx.Exec(`DELETE FROM event_relations WHERE event_id = ?`, eventID); err != nil {
		return fmt.Errorf("store: unindex relation of %s: %w", eventID, describe(err))
	}
	return t.unindexSearch(eventID)
}

// prefixedCols is eventCols qualified with a table alias, for joins.
func prefixedCols(alias string) string {
	cols := strings.Split(eventCols, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// placeholders is "?,?,…" for n values.
func placeholders(n int) string { return "?" + strings.Repeat(",?", n-1) }

// RelationsQuery selects the children of one event.
type RelationsQuery struct {
	RoomID, Parent string
	// RelType and EventType, when set, must match every event on the way
	// from the parent (client-server-api GET /relations: filters apply to
	// direct and indirect children alike).
	RelType, EventType string
	// Depth is how many levels to follow: 1 for direct children, up to
	// MaxRelationDepth.
	Depth int
	// After, UpTo bound the children's stream positions: After < pos ≤ UpTo.
	After, UpTo int64
	// Forward returns the oldest first, else the newest first.
	Forward bool
	Limit   int
}

// Relations returns the timeline events (no outliers) related to
// q.Parent, directly or through up to q.Depth levels of relations, in
// stream order.
func (s *Store) Relations(q RelationsQuery) ([]EventRow, error) {
	depth := min(max(q.Depth, 1), MaxRelationDepth)
	var cond string
	var condArgs []any
	if q.RelType != "" {
		cond += ` AND r.rel_type = ?`
		condArgs = append(condArgs, q.RelType)
	}
	if q.EventType != "" {
		cond += ` AND c.type = ?`
		condArgs = append(condArgs, q.EventType)
	}
	args := append([]any{q.Parent, q.RoomID}, condArgs...)
	args = append(append(args, depth, q.RoomID), condArgs...)
	args = append(args, q.After, q.UpTo)
	order := "DESC"
	if q.Forward {
		order = "ASC"
	}
	query := `WITH RECURSIVE rel(event_id, depth) AS (
		SELECT r.event_id, 1 FROM event_relations r JOIN events c ON c.event_id = r.event_id
		WHERE r.relates_to = ? AND r.room_id = ?` + cond + `
		UNION
		SELECT r.event_id, rel.depth + 1 FROM rel JOIN event_relations r ON r.relates_to = rel.event_id
		JOIN events c ON c.event_id = r.event_id
		WHERE rel.depth < ? AND r.room_id = ?` + cond + `
	)
	SELECT ` + eventCols + ` FROM events WHERE event_id IN (SELECT event_id FROM rel)
	AND outlier = FALSE AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos ` + order
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	out, err := s.queryEvents(query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: relations of %s: %w", q.Parent, err)
	}
	return out, nil
}

// RelationKinds reports, for each of ids that has children in the room,
// the relation types they use. It is the cheap first step of bundling
// aggregations: most events have no children at all.
func (s *Store) RelationKinds(roomID string, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	for batch := range batches(ids, 500) {
		args := []any{roomID}
		for _, id := range batch {
			args = append(args, id)
		}
		rows, err := s.DB.Query(`SELECT DISTINCT relates_to, rel_type FROM event_relations
			WHERE room_id = ? AND relates_to IN (`+placeholders(len(batch))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: relation kinds: %w", describe(err))
		}
		for rows.Next() {
			var parent, relType string
			if err := rows.Scan(&parent, &relType); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: relation kinds: %w", describe(err))
			}
			out[parent] = append(out[parent], relType)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: relation kinds: %w", describe(err))
		}
	}
	return out, nil
}

// batches splits ids into runs of at most n (bound variables per query).
func batches(ids []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ids) > 0 {
			b := ids[:min(n, len(ids))]
			ids = ids[len(b):]
			if !yield(b) {
				return
			}
		}
	}
}

// ChildQuery selects direct children of one event with one relation
// type, for bundled aggregations: always a bounded number of rows, so an
// event with thousands of children costs the same as one with a few.
type ChildQuery struct {
	RoomID, Parent, RelType string
	// Sender, when set, keeps only children sent by that user (an edit is
	// only valid from the original's sender).
	Sender string
	// UpTo bounds the children's stream positions: pos ≤ UpTo.
	UpTo int64
	// Newest orders by origin_server_ts, then event ID, the largest first
	// (the order that picks "the most recent" edit, client-server-api
	// "Server-side aggregation of m.replace relationships"); otherwise the
	// oldest stream position comes first.
	Newest bool
	// Limit is how many rows to read at most (required, > 0).
	Limit int
}

// Children returns up to q.Limit timeline events (no outliers) related to
// q.Parent with q.RelType.
func (s *Store) Children(q ChildQuery) ([]EventRow, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("store: children of %s: no limit", q.Parent)
	}
	query := `SELECT ` + prefixedCols("e") + ` FROM event_relations r JOIN events e ON e.event_id = r.event_id
		WHERE r.relates_to = ? AND r.rel_type = ? AND r.room_id = ? AND e.outlier = FALSE AND e.stream_pos <= ?`
	args := []any{q.Parent, q.RelType, q.RoomID, q.UpTo}
	if q.Sender != "" {
		query += ` AND e.sender = ?`
		args = append(args, q.Sender)
	}
	if q.Newest {
		query += ` ORDER BY e.origin_server_ts DESC, e.event_id DESC`
	} else {
		query += ` ORDER BY e.stream_pos`
	}
	query += ` LIMIT ?`
	args = append(args, q.Limit)
	out, err := s.queryEvents(query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: children of %s: %w", q.Parent, err)
	}
	return out, nil
}

// rowScanner scans extra leading columns before an event's columns.
type rowScanner struct {
	s    scanner
	dest []any
}

func (r *rowScanner) Scan(dest ...any) error { return r.s.Scan(append(r.dest, dest...)...) }

// ThreadSummary is the state of one thread as far as a viewer reads it.
// Spec: client-server-api "Server-side aggregation of m.thread
// relationships".
type ThreadSummary struct {
	Root  string
	Count int // events of the thread (rel_type m.thread to the root)
	// Participated: the user sent one of the thread's events (the root's
	// sender is the caller's to check).
	Participated bool
	Latest       EventRow // the newest event of the thread
}

// threadAgg groups a room's thread events by root, up to a position, and
// counts the user's; the caller adds the WHERE extras and binds roomID,
// user, upTo first.
const threadAgg = `SELECT r.relates_to AS root_id, COUNT(*) AS n, MAX(e.stream_pos) AS latest,
	SUM(CASE WHEN e.sender = ? THEN 1 ELSE 0 END) AS mine
	FROM event_relations r JOIN events e ON e.event_id = r.event_id
	WHERE r.room_id = ? AND r.rel_type = 'm.thread' AND e.outlier = FALSE AND e.stream_pos <= ?`

// ThreadSummaries summarises the threads rooted at roots, counting the
// thread events with pos ≤ upTo.
func (s *Store) ThreadSummaries(roomID string, roots []string, upTo int64, userID string) (map[string]ThreadSummary, error) {
	out := map[string]ThreadSummary{}
	for batch := range batches(roots, 500) {
		args := []any{userID, roomID, upTo}
		for _, id := range batch {
			args = append(args, id)
		}
		rows, err := s.DB.Query(`SELECT t.root_id, t.n, t.mine, `+prefixedCols("l")+` FROM (`+threadAgg+`
			AND r.relates_to IN (`+placeholders(len(batch))+`) GROUP BY r.relates_to
		) t JOIN events l ON l.stream_pos = t.latest`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: thread summaries: %w", describe(err))
		}
		for rows.Next() {
			var ts ThreadSummary
			var mine int
			sc := rowScanner{s: rows, dest: []any{&ts.Root, &ts.Count, &mine}}
			if ts.Latest, err = scanEvent(&sc); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: thread summaries: %w", describe(err))
			}
			ts.Participated = mine > 0
			out[ts.Root] = ts
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: thread summaries: %w", describe(err))
		}
	}
	return out, nil
}

// ThreadGroupCount counts the events of one thread whose state before
// them is one state group, split at a position: what a history visibility
// check needs to count the thread events a user may see without reading
// them one by one (for events that are not state events, visibility
// depends on the state group and on whether the position is before the
// user's last join).
type ThreadGroupCount struct {
	Root        string
	StateBefore int64
	Below, Rest int   // events with pos < split, pos ≥ split
	Lo, Hi      int64 // the lowest and highest position of the group's events
	Total       int   // all events of the thread counted, over every group
}

// ThreadGroupCounts counts, per thread root and state group, the thread
// events with after < pos ≤ upTo not sent by one of ignored, listing at
// most perRoot groups of each root, those with the newest events first.
func (s *Store) ThreadGroupCounts(roomID string, roots []string, after, upTo, split int64, ignored []string, perRoot int) ([]ThreadGroupCount, error) {
	var out []ThreadGroupCount
	for batch := range batches(roots, 500) {
		args := []any{split, split, roomID, after, upTo}
		for _, id := range batch {
			args = append(args, id)
		}
		notIgnored := ""
		if len(ignored) > 0 {
			notIgnored = ` AND e.sender NOT IN (` + placeholders(len(ignored)) + `)`
			for _, u := range ignored {
				args = append(args, u)
			}
		}
		args = append(args, perRoot)
		rows, err := s.DB.Query(`WITH g AS (
			SELECT r.relates_to AS root, e.state_before AS sb,
				SUM(CASE WHEN e.stream_pos < ? THEN 1 ELSE 0 END) AS below,
				SUM(CASE WHEN e.stream_pos >= ? THEN 1 ELSE 0 END) AS rest,
				MIN(e.stream_pos) AS lo, MAX(e.stream_pos) AS hi
			FROM event_relations r JOIN events e ON e.event_id = r.event_id
			WHERE r.room_id = ? AND r.rel_type = 'm.thread' AND e.outlier = FALSE AND e.stream_pos > ? AND e.stream_pos <= ?
			AND r.relates_to IN (`+placeholders(len(batch))+`)`+notIgnored+`
			GROUP BY r.relates_to, e.state_before
		), n AS (
			SELECT root, sb, below, rest, lo, hi,
				ROW_NUMBER() OVER (PARTITION BY root ORDER BY hi DESC) AS rn,
				SUM(below + rest) OVER (PARTITION BY root) AS total
			FROM g
		) SELECT root, sb, below, rest, lo, hi, total FROM n WHERE rn <= ? ORDER BY root, hi DESC`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: thread counts: %w", describe(err))
		}
		for rows.Next() {
			var c ThreadGroupCount
			if err := rows.Scan(&c.Root, &c.StateBefore, &c.Below, &c.Rest, &c.Lo, &c.Hi, &c.Total); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: thread counts: %w", describe(err))
			}
			out = append(out, c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: thread counts: %w", describe(err))
		}
	}
	return out, nil
}

// ThreadRoot is a thread root and the position of its thread's newest
// event.
type ThreadRoot struct {
	Root   EventRow
	Latest int64
}

// Threads lists the thread roots of a room (timeline events, not
// outliers) ordered by their thread's newest event with pos ≤ upTo,
// newest first, among the threads whose newest event is at most before.
// With participant set, only threads that user started or sent to.
func (s *Store) Threads(roomID string, before, upTo int64, participant string, limit int) ([]ThreadRoot, error) {
	args := []any{participant, roomID, upTo, roomID, before}
	q := `SELECT t.latest, ` + prefixedCols("root") + ` FROM (` + threadAgg + ` GROUP BY r.relates_to) t
		JOIN events root ON root.event_id = t.root_id
		WHERE root.room_id = ? AND root.outlier = FALSE AND t.latest <= ?`
	if participant != "" {
		q += ` AND (t.mine > 0 OR root.sender = ?)`
		args = append(args, participant)
	}
	q += ` ORDER BY t.latest DESC`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.DB.Query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: threads of %s: %w", roomID, describe(err))
	}
	defer rows.Close()
	var out []ThreadRoot
	for rows.Next() {
		var tr ThreadRoot
		sc := rowScanner{s: rows, dest: []any{&tr.Latest}}
		if tr.Root, err = scanEvent(&sc); err != nil {
			return nil, fmt.Errorf("store: threads of %s: %w", roomID, describe(err))
		}
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: threads of %s: %w", roomID, describe(err))
	}
	return out, nil
}

// HasAnnotation reports whether sender already annotated parent with key
// (an m.annotation relation in the timeline, not redacted).
func (s *Store) HasAnnotation(parent, sender, key string) (bool, error) {
	var one int
	err := s.DB.QueryRow(`SELECT 1 FROM event_relations r JOIN events e ON e.event_id = r.event_id
		WHERE r.relates_to = ? AND r.rel_type = 'm.annotation' AND e.sender = ? AND e.outlier = FALSE
		AND e.redacted_by IS NULL AND json_extract(e.json, '$.content."m.relates_to".key') = ? LIMIT 1`,
		parent, sender, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: annotations of %s: %w", parent, describe(err))
	}
	return true, nil
}

// IsRelationChild reports whether an event relates to another (it has an
// indexed m.relates_to with a rel_type).
func (s *Store) IsRelationChild(eventID string) (bool, error) {
	var one int
	err := s.DB.QueryRow(`SELECT 1 FROM event_relations WHERE event_id = ?`, eventID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: relation of %s: %w", eventID, describe(err))
	}
	return true, nil
}
