package homeserver

// Asynchronous uploads: client-server-api "POST /_matrix/media/v1/create"
// and "PUT /_matrix/media/v3/upload/{serverName}/{mediaId}".
//
// A client may get an mxc URI before it has the bytes (to send the event
// first on a slow link): create hands out a media ID that its creator
// fills with one PUT within pendingMediaLifetime. Downloads of an ID that
// is created but not filled wait for the content up to timeout_ms
// (default 20 s, at most maxMediaWait), then answer 504
// M_NOT_YET_UPLOADED.

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Error codes of the content repository. Spec: client-server-api
// "Content repository".
const (
	ErrCodeNotYetUploaded       = "M_NOT_YET_UPLOADED"
	ErrCodeCannotOverwriteMedia = "M_CANNOT_OVERWRITE_MEDIA"
)

const (
	// pendingMediaLifetime is how long a created media ID waits for its
	// content: the spec's recommended 24 hours.
	pendingMediaLifetime = 24 * time.Hour
	// maxPendingUploads bounds the unexpired, unfilled IDs of one user
	// (429 M_LIMIT_EXCEEDED beyond).
	maxPendingUploads = 10
	// defaultMediaWait is the spec's default timeout_ms.
	defaultMediaWait = 20 * time.Second
	// maxMediaWait caps timeout_ms.
	maxMediaWait = 60 * time.Second
)

// mediaWaiter is a download waiting for a created ID's content.
type mediaWaiter struct {
	done  func(store.Media, error)
	timer clock.Timer
}

// handleCreate: POST /_matrix/media/v1/create → {"content_uri",
// "unused_expires_at"}.
func (m *mediaRepo) handleCreate(c *Call) {
	now := m.n.Now()
	p := store.PendingMedia{MediaID: m.newMediaID(), Uploader: c.UserID, ExpiresTS: now.Add(pendingMediaLifetime).UnixMilli()}
	if err := m.n.store.CreatePendingMedia(p, now.UnixMilli(), maxPendingUploads); err != nil {
		if errors.Is(err, store.ErrExists) {
			c.Fail(Errorf(429, ErrCodeLimitExceeded, "too many pending uploads (at most %d)", maxPendingUploads))
			return
		}
		c.Fail(fmt.Errorf("media create: %w", err))
		return
	}
	c.Reply(200, map[string]any{
		"content_uri":       "mxc://" + m.n.ServerName() + "/" + p.MediaID,
		"unused_expires_at": p.ExpiresTS,
	})
}

// handleUploadTo: PUT /_matrix/media/v3/upload/SERVER/MEDIAID fills a
// created ID → {}. Errors: 404 M_NOT_FOUND (not created here, or expired),
// 403 M_FORBIDDEN (created by another user), 409 M_CANNOT_OVERWRITE_MEDIA
// (already filled, or being filled), and the checks of a plain upload.
func (m *mediaRepo) handleUploadTo(c *Call) {
	server, id := c.Req.Vars["serverName"], c.Req.Vars["mediaId"]
	if server != m.n.ServerName() || !validMediaID(id) {
		c.Fail(Errorf(404, ErrCodeNotFound, "unknown media ID"))
		return
	}
	_, err := m.n.store.GetMedia(server, id)
	if err == nil || m.uploading[id] {
		c.Fail(Errorf(409, ErrCodeCannotOverwriteMedia, "media already uploaded"))
		return
	}
	if !errors.Is(err, store.ErrNotFound) {
		c.Fail(fmt.Errorf("media upload to %s: %w", id, err))
		return
	}
	p, err := m.n.store.GetPendingMedia(id)
	if errors.Is(err, store.ErrNotFound) || err == nil && p.ExpiresTS <= m.n.Now().UnixMilli() {
		c.Fail(Errorf(404, ErrCodeNotFound, "unknown media ID"))
		return
	}
	if err != nil {
		c.Fail(fmt.Errorf("media upload to %s: %w", id, err))
		return
	}
	if p.Uploader != c.UserID {
		c.Fail(Errorf(403, ErrCodeForbidden, "media ID was created by another user"))
		return
	}
	row, err := m.uploadRow(c, id)
	if err != nil {
		c.Fail(err)
		return
	}
	m.uploading[id] = true
	m.save(row, c.Req.Body, m.n.store.FillPendingMedia, func(err error) {
		delete(m.uploading, id)
		if err != nil {
			c.Fail(fillError(id, err))
			return
		}
		m.wake(id)
		c.Reply(200, map[string]any{})
	})
}

// fillError maps a failed fill of id: the pending row gone meanwhile
// (expired and pruned while the file was written) is 404 M_NOT_FOUND, and
// content stored meanwhile is 409 M_CANNOT_OVERWRITE_MEDIA, as the checks
// before the write would have answered.
func fillError(id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Errorf(404, ErrCodeNotFound, "unknown media ID")
	case errors.Is(err, store.ErrExists):
		return Errorf(409, ErrCodeCannotOverwriteMedia, "media already uploaded")
	}
	return fmt.Errorf("media upload to %s: %w", id, err)
}

// waitPending answers a lookup of a local ID that has no content: 404
// M_NOT_FOUND unless it was created and has not expired; then it waits
// for the content until timeout_ms passes (504 M_NOT_YET_UPLOADED) or c
// is cancelled.
func (m *mediaRepo) waitPending(c *Call, id string, done func(store.Media, error)) {
	p, err := m.n.store.GetPendingMedia(id)
	if errors.Is(err, store.ErrNotFound) || err == nil && p.ExpiresTS <= m.n.Now().UnixMilli() {
		done(store.Media{}, Errorf(404, ErrCodeNotFound, "media not found"))
		return
	}
	if err != nil {
		done(store.Media{}, fmt.Errorf("media lookup: %w", err))
		return
	}
	notYet := Errorf(504, ErrCodeNotYetUploaded, "media has not been uploaded yet")
	wait := defaultMediaWait
	if v := c.Req.Query.Get("timeout_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			done(store.Media{}, Errorf(400, ErrCodeInvalidParam, "timeout_ms must be a non-negative integer"))
			return
		}
		wait = time.Duration(min(ms, maxMediaWait.Milliseconds())) * time.Millisecond
	}
	if wait == 0 {
		done(store.Media{}, notYet)
		return
	}
	w := &mediaWaiter{done: done}
	w.timer = m.n.AfterFunc(wait, func() {
		if m.dropWaiter(id, w) {
			done(store.Media{}, notYet)
		}
	})
	m.waiting[id] = append(m.waiting[id], w)
	c.OnCancel(func() {
		if m.dropWaiter(id, w) {
			w.timer.Stop()
		}
	})
}

// dropWaiter removes w from id's waiters; false if it was not there.
func (m *mediaRepo) dropWaiter(id string, w *mediaWaiter) bool {
	ws := m.waiting[id]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			if len(ws) == 0 {
				delete(m.waiting, id)
			} else {
				m.waiting[id] = ws
			}
			return true
		}
	}
	return false
}

// wake hands the content of a just-filled ID to the downloads waiting
// for it.
func (m *mediaRepo) wake(id string) {
	ws := m.waiting[id]
	delete(m.waiting, id)
	if len(ws) == 0 {
		return
	}
	row, err := m.n.store.GetMedia(m.n.ServerName(), id)
	if err != nil {
		err = fmt.Errorf("media wake %s: %w", id, err)
	}
	for _, w := range ws {
		w.timer.Stop()
		w.done(row, err)
	}
}
