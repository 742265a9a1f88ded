package store

// Content reports (migration 0011, event_reports): what users reported of
// rooms and events, for the server's admins. Spec: client-server-api
// "Reporting content".

import (
	"database/sql"
	"fmt"
)

// EventReport is one report. EventID is "" for a report of a whole room;
// Score is nil when none was given; Sender is the reported event's sender
// when the event is stored here (read back only).
type EventReport struct {
	ID         int64
	ReceivedTS int64
	RoomID     string
	EventID    string
	UserID     string
	Reason     *string
	Score      *int64
	Sender     string
}

// InsertEventReport stores a report and returns its ID.
func (s *Store) InsertEventReport(r EventReport) (int64, error) {
	var eventID sql.NullString
	if r.EventID != "" {
		eventID = sql.NullString{String: r.EventID, Valid: true}
	}
	res, err := s.DB.Exec(`INSERT INTO event_reports (received_ts, room_id, event_id, user_id, reason, score)
		VALUES (?, ?, ?, ?, ?, ?)`, r.ReceivedTS, r.RoomID, eventID, r.UserID, r.Reason, r.Score)
	if err != nil {
		return 0, fmt.Errorf("store: insert report of %s: %w", r.RoomID, describe(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("store: insert report of %s: %w", r.RoomID, describe(err))
	}
	return id, nil
}

// EventReports lists up to limit reports after skipping offset, newest
// first unless oldestFirst, and the total number stored.
func (s *Store) EventReports(offset, limit int, oldestFirst bool) ([]EventReport, int, error) {
	var total int
	if err := s.DB.QueryRow(`SELECT COUNT(*) FROM event_reports`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count reports: %w", describe(err))
	}
	order := "DESC"
	if oldestFirst {
		order = "ASC"
	}
	rows, err := s.DB.Query(`SELECT r.id, r.received_ts, r.room_id, r.event_id, r.user_id, r.reason, r.score, e.sender
		FROM event_reports r LEFT JOIN events e ON e.event_id = r.event_id
		ORDER BY r.id `+order+` LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list reports: %w", describe(err))
	}
	defer rows.Close()
	var out []EventReport
	for rows.Next() {
		var r EventReport
		var eventID, reason, sender sql.NullString
		var score sql.NullInt64
		if err := rows.Scan(&r.ID, &r.ReceivedTS, &r.RoomID, &eventID, &r.UserID, &reason, &score, &sender); err != nil {
			return nil, 0, fmt.Errorf("store: list reports: %w", describe(err))
		}
		r.EventID, r.Sender = eventID.String, sender.String
		if reason.Valid {
			r.Reason = &reason.String
		}
		if score.Valid {
			r.Score = &score.Int64
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: list reports: %w", describe(err))
	}
	return out, total, nil
}
