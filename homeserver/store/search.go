package store

// Full-text search over events (migration 0008: event_search_docs holds
// each searchable event's text, event_search is its SQLite FTS5 index).
// Spec: client-server-api "Server Side Search", room_events: content.body
// of m.room.message, content.name of m.room.name, content.topic of
// m.room.topic. Encrypted events have no searchable text. Rows are written
// when an event is stored and removed when it is redacted; outliers are
// indexed and left out at query time.
//
// Ranking is FTS5's bm25 (higher rank, better match, as the spec's "rank"
// wants); words match as prefixes ("mart" finds "martians").

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// indexSearch adds an event's searchable text.
func (t *RoomTx) indexSearch(r EventRow, key, text string) error {
	res, err := t.tx.Exec(`INSERT INTO event_search_docs (event_id, room_id, key, value) VALUES (?, ?, ?, ?)`,
		r.EventID, r.RoomID, key, text)
	if err != nil {
		return fmt.Errorf("store: index text of %s: %w", r.EventID, describe(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("store: index text of %s: %w", r.EventID, describe(err))
	}
	if _, err := t.tx.Exec(`INSERT INTO event_search (rowid, value) VALUES (?, ?)`, id, text); err != nil {
		return fmt.Errorf("store: index text of %s: %w", r.EventID, describe(err))
	}
	return nil
}

// unindexSearch removes an event's text from the index (external content
// FTS5 tables are told the old text to delete).
func (t *RoomTx) unindexSearch(eventID string) error {
	var id int64
	var text string
	err := t.tx.QueryRow(`SELECT doc_id, value FROM event_search_docs WHERE event_id = ?`, eventID).Scan(&id, &text)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return fmt.Errorf("store: unindex text of %s: %w", eventID, describe(err))
	}
	if _, err := t.tx.Exec(`INSERT INTO event_search (event_search, rowid, value) VALUES ('delete', ?, ?)`, id, text); err != nil {
		return fmt.Errorf("store: unindex text of %s: %w", eventID, describe(err))
	}
	if _, err := t.tx.Exec(`DELETE FROM event_search_docs WHERE doc_id = ?`, id); err != nil {
		return fmt.Errorf("store: unindex text of %s: %w", eventID, describe(err))
	}
	return nil
}

// SearchRange is a room and the stream positions searched in it:
// After < pos ≤ UpTo.
type SearchRange struct {
	RoomID      string
	After, UpTo int64
}

// SearchQuery is one full-text search.
type SearchQuery struct {
	Terms  []string      // words (SearchTerms), all of which must match
	Keys   []string      // content.body, content.name, content.topic
	Rooms  []SearchRange // where to look
	Recent bool          // newest first; else best rank first
	Before int64         // only events with pos ≤ Before
	Offset int           // results to skip
	Limit  int
}

// SearchHit is one matching event.
type SearchHit struct {
	Event EventRow
	Rank  float64  // higher is better
	Words []string // the words of the text that matched, lower case
}

// SearchTerms splits a search term into words: runs of letters and
// digits, as the index's tokenizer sees them.
func SearchTerms(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

// ftsMatch is the FTS5 query for terms: each one a quoted prefix.
func ftsMatch(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"*`
	}
	return strings.Join(parts, " ")
}

// where is the shared FROM … WHERE of Search and SearchCount.
func (q SearchQuery) where() (string, []any) {
	args := []any{ftsMatch(q.Terms)}
	var b strings.Builder
	b.WriteString(` FROM event_search JOIN event_search_docs d ON d.doc_id = event_search.rowid
		JOIN events e ON e.event_id = d.event_id
		WHERE event_search MATCH ? AND e.outlier = FALSE AND e.redacted_by IS NULL AND e.stream_pos <= ?`)
	args = append(args, q.Before)
	b.WriteString(` AND d.key IN (` + placeholders(len(q.Keys)) + `)`)
	for _, k := range q.Keys {
		args = append(args, k)
	}
	b.WriteString(` AND (`)
	for i, r := range q.Rooms {
		if i > 0 {
			b.WriteString(` OR `)
		}
		b.WriteString(`(d.room_id = ? AND e.stream_pos > ? AND e.stream_pos <= ?)`)
		args = append(args, r.RoomID, r.After, r.UpTo)
	}
	b.WriteString(`)`)
	return b.String(), args
}

// Search returns up to q.Limit matching events after skipping q.Offset,
// best rank first (ties: newest first) or newest first.
func (s *Store) Search(q SearchQuery) ([]SearchHit, error) {
	if len(q.Terms) == 0 || len(q.Keys) == 0 || len(q.Rooms) == 0 {
		return nil, nil
	}
	where, args := q.where()
	order := ` ORDER BY bm25(event_search), e.stream_pos DESC`
	if q.Recent {
		order = ` ORDER BY e.stream_pos DESC`
	}
	query := `SELECT -bm25(event_search), highlight(event_search, 0, char(1), char(2)), ` + prefixedCols("e") + where + order + ` LIMIT ? OFFSET ?`
	args = append(args, max(q.Limit, 0), max(q.Offset, 0))
	rows, err := s.DB.Query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", describe(err))
	}
	defer rows.Close()
	var out []SearchHit
	for rows.Next() {
		var h SearchHit
		var marked string
		sc := rowScanner{s: rows, dest: []any{&h.Rank, &marked}}
		if h.Event, err = scanEvent(&sc); err != nil {
			return nil, fmt.Errorf("store: search: %w", describe(err))
		}
		h.Words = markedWords(marked)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: search: %w", describe(err))
	}
	return out, nil
}

// SearchCount counts the events Search would find without offset and
// limit.
func (s *Store) SearchCount(q SearchQuery) (int, error) {
	if len(q.Terms) == 0 || len(q.Keys) == 0 || len(q.Rooms) == 0 {
		return 0, nil
	}
	where, args := q.where()
	var n int
	if err := s.DB.QueryRow(`SELECT COUNT(*)`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: search count: %w", describe(err))
	}
	return n, nil
}

// markedWords lists the distinct words highlight() wrapped in \x01 … \x02,
// lower case, in order of appearance.
func markedWords(s string) []string {
	var out []string
	seen := map[string]bool{}
	for {
		i := strings.IndexByte(s, 1)
		if i < 0 {
			return out
		}
		s = s[i+1:]
		j := strings.IndexByte(s, 2)
		if j < 0 {
			return out
		}
		w := strings.ToLower(s[:j])
		s = s[j+1:]
		if w != "" && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
}
