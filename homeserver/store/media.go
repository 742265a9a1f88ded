package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// Media is one piece of content in the content repository
// (client-server-api "Content repository"): uploaded here, or fetched
// from its origin server and cached. The bytes are in a file; the row
// says what they are.
type Media struct {
	// Origin and MediaID are the two halves of mxc://ORIGIN/MEDIAID.
	Origin, MediaID string
	ContentType     string
	// FileName is the name given at upload; "" for none.
	FileName string
	Size     int64
	// Uploader is the local user who uploaded it; "" for remote media.
	Uploader string
	// CreatedTS is when it was uploaded or cached, ms since the Unix epoch.
	CreatedTS int64
	// File is the name of the file holding the bytes, relative to the
	// node's media folder.
	File string
}

// InsertMedia records a piece of media; ErrExists if (origin, media ID)
// is taken.
func (s *Store) InsertMedia(m Media) error { return insertMedia(s.DB, m) }

func insertMedia(db interface {
	Exec(string, ...any) (sql.Result, error)
}, m Media) error {
	var name sql.NullString
	if m.FileName != "" {
		name = sql.NullString{String: m.FileName, Valid: true}
	}
	_, err := db.Exec(`INSERT INTO media (origin, media_id, content_type, file_name, size, uploader, created_ts, file, last_access_ts)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.Origin, m.MediaID, m.ContentType, name, m.Size, m.Uploader, m.CreatedTS, m.File, m.CreatedTS)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: insert media %s/%s: %w", m.Origin, m.MediaID, ErrExists)
		}
		return fmt.Errorf("store: insert media %s/%s: %w", m.Origin, m.MediaID, describe(err))
	}
	return nil
}

// GetMedia returns the row of mxc://origin/mediaID, or ErrNotFound.
func (s *Store) GetMedia(origin, mediaID string) (Media, error) {
	m := Media{Origin: origin, MediaID: mediaID}
	var name sql.NullString
	err := s.DB.QueryRow(`SELECT content_type, file_name, size, uploader, created_ts, file FROM media
		WHERE origin = ? AND media_id = ?`, origin, mediaID).
		Scan(&m.ContentType, &name, &m.Size, &m.Uploader, &m.CreatedTS, &m.File)
	if errors.Is(err, sql.ErrNoRows) {
		return Media{}, fmt.Errorf("store: media %s/%s: %w", origin, mediaID, ErrNotFound)
	}
	if err != nil {
		return Media{}, fmt.Errorf("store: media %s/%s: %w", origin, mediaID, describe(err))
	}
	m.FileName = name.String
	return m, nil
}

// PendingMedia is a local media ID created ahead of its content.
type PendingMedia struct {
	MediaID, Uploader string
	// ExpiresTS is when the ID lapses unless filled, ms since the epoch.
	ExpiresTS int64
}

// CreatePendingMedia records a created media ID, first deleting the
// pending IDs that expired at or before now. It fails with ErrExists when
// the uploader already has max unexpired IDs (or the ID is taken).
func (s *Store) CreatePendingMedia(p PendingMedia, now int64, max int) error {
	return s.Tx(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM media_pending WHERE expires_ts <= ?`, now); err != nil {
			return fmt.Errorf("store: create pending media: %w", describe(err))
		}
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM media_pending WHERE uploader = ?`, p.Uploader).Scan(&n); err != nil {
			return fmt.Errorf("store: create pending media: %w", describe(err))
		}
		if n >= max {
			return fmt.Errorf("store: create pending media: %d pending for %s: %w", n, p.Uploader, ErrExists)
		}
		if _, err := tx.Exec(`INSERT INTO media_pending (media_id, uploader, expires_ts) VALUES (?, ?, ?)`,
			p.MediaID, p.Uploader, p.ExpiresTS); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("store: create pending media %s: %w", p.MediaID, ErrExists)
			}
			return fmt.Errorf("store: create pending media %s: %w", p.MediaID, describe(err))
		}
		return nil
	})
}

// GetPendingMedia returns the pending row of a local media ID, or
// ErrNotFound.
func (s *Store) GetPendingMedia(mediaID string) (PendingMedia, error) {
	p := PendingMedia{MediaID: mediaID}
	err := s.DB.QueryRow(`SELECT uploader, expires_ts FROM media_pending WHERE media_id = ?`, mediaID).Scan(&p.Uploader, &p.ExpiresTS)
	if errors.Is(err, sql.ErrNoRows) {
		return PendingMedia{}, fmt.Errorf("store: pending media %s: %w", mediaID, ErrNotFound)
	}
	if err != nil {
		return PendingMedia{}, fmt.Errorf("store: pending media %s: %w", mediaID, describe(err))
	}
	return p, nil
}

// FillPendingMedia records the content of a created media ID: in one
// transaction its pending row goes (ErrNotFound if there is none) and
// the media row is inserted (ErrExists if there is one).
func (s *Store) FillPendingMedia(m Media) error {
	return s.Tx(func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM media_pending WHERE media_id = ?`, m.MediaID)
		if err != nil {
			return fmt.Errorf("store: fill pending media %s: %w", m.MediaID, describe(err))
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("store: fill pending media %s: %w", m.MediaID, ErrNotFound)
		}
		return insertMedia(tx, m)
	})
}

// MediaBytesByUploader is the total size of the media the local user
// uploader has stored (the per-user quota, media.max_bytes_per_user).
func (s *Store) MediaBytesByUploader(uploader string) (int64, error) {
	var n int64
	if err := s.DB.QueryRow(`SELECT COALESCE(SUM(size), 0) FROM media WHERE uploader = ?`, uploader).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: media bytes of %s: %w", uploader, describe(err))
	}
	return n, nil
}

// Remote media (uploader '') is a cache: the rows below keep its last
// access so the least recently used items can be dropped.

// touchGranularityMillis is how stale a recorded last access must be
// before a new access is written: the least-recently-used order needs no
// finer grain, and a popular item (an avatar) is then not a write per
// download.
const touchGranularityMillis = 60_000

// TouchRemoteMedia records ts (ms since the epoch) as the last access of
// the cached remote item mxc://origin/mediaID, unless the recorded one is
// less than a minute older; local media is left alone.
func (s *Store) TouchRemoteMedia(origin, mediaID string, ts int64) error {
	if _, err := s.DB.Exec(`UPDATE media SET last_access_ts = ? WHERE origin = ? AND media_id = ? AND uploader = ''
		AND last_access_ts <= ?`, ts, origin, mediaID, ts-touchGranularityMillis); err != nil {
		return fmt.Errorf("store: touch media %s/%s: %w", origin, mediaID, describe(err))
	}
	return nil
}

// RemoteMediaBytes is the total size of the cached remote media.
func (s *Store) RemoteMediaBytes() (int64, error) {
	var n int64
	if err := s.DB.QueryRow(`SELECT COALESCE(SUM(size), 0) FROM media WHERE uploader = ''`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: remote media bytes: %w", describe(err))
	}
	return n, nil
}

// EvictRemoteMedia deletes cached remote items, least recently used
// first, until their sizes add up to at least need bytes or none is left,
// and returns the deleted rows (whose files the caller removes). Local
// media is never deleted.
func (s *Store) EvictRemoteMedia(need int64) ([]Media, error) {
	var out []Media
	err := s.Tx(func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.Query(`SELECT origin, media_id, size, file FROM media WHERE uploader = ''
			ORDER BY last_access_ts, created_ts, origin, media_id`)
		if err != nil {
			return fmt.Errorf("store: evict media: %w", describe(err))
		}
		var freed int64
		for freed < need && rows.Next() {
			var m Media
			if err := rows.Scan(&m.Origin, &m.MediaID, &m.Size, &m.File); err != nil {
				rows.Close()
				return fmt.Errorf("store: evict media: %w", describe(err))
			}
			out = append(out, m)
			freed += m.Size
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("store: evict media: %w", describe(err))
		}
		for _, m := range out {
			if _, err := tx.Exec(`DELETE FROM media WHERE origin = ? AND media_id = ? AND uploader = ''`, m.Origin, m.MediaID); err != nil {
				return fmt.Errorf("store: evict media %s/%s: %w", m.Origin, m.MediaID, describe(err))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
