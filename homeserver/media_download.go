package homeserver

import (
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// mediaCSP is the Content-Security-Policy every media answer carries.
// Spec: client-server-api "Content repository".
const mediaCSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"

// inlineTypes are the content types served with Content-Disposition
// inline; everything else is an attachment. Spec: client-server-api
// "Serving inline content".
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true,
	"application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// contentDisposition is the Content-Disposition for content of type ctype
// named name ("" for none): inline for the safe types, else attachment.
// Non-ASCII names are sent RFC 2231-encoded (filename*=utf-8”…).
func contentDisposition(ctype, name string) string {
	disp := "attachment"
	if t, _, err := mime.ParseMediaType(ctype); err == nil && inlineTypes[t] {
		disp = "inline"
	}
	if name == "" {
		return disp
	}
	if v := mime.FormatMediaType(disp, map[string]string{"filename": name}); v != "" {
		return v
	}
	return disp
}

// mediaHeaders are the headers of a download answer.
func mediaHeaders(ctype, disposition string) map[string]string {
	return map[string]string{
		"Content-Type":                 ctype,
		"Content-Disposition":          disposition,
		"Content-Security-Policy":      mediaCSP,
		"Cross-Origin-Resource-Policy": "cross-origin",
		"X-Content-Type-Options":       "nosniff",
	}
}

// handleDownload: GET /_matrix/client/v1/media/download/SERVER/MEDIAID[/NAME]
// (authenticated) and the deprecated GET /_matrix/media/v3/download/…
// (not; remote is false for them, see media.go). A name in the path
// replaces the upload's in Content-Disposition. Spec: client-server-api
// "GET /_matrix/client/v1/media/download/{serverName}/{mediaId}".
func (m *mediaRepo) handleDownload(remote bool) func(c *Call) {
	return func(c *Call) {
		server, id, override := c.Req.Vars["serverName"], c.Req.Vars["mediaId"], c.Req.Vars["fileName"]
		if ValidateServerName(server) != nil || !validMediaID(id) {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "not a valid mxc:// server name and media ID"))
			return
		}
		if override != "" && !validFileName(override) {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "bad file name"))
			return
		}
		m.content(c, server, id, remote, func(row store.Media, data []byte) {
			name := row.FileName
			if override != "" {
				name = override
			}
			c.Reply(200, &RawBody{Header: mediaHeaders(row.ContentType, contentDisposition(row.ContentType, name)), Data: data})
		})
	}
}

// content is lookup, then read of the bytes; a failure of either answers
// c, so done sees only media it can serve.
func (m *mediaRepo) content(c *Call, server, id string, remote bool, done func(row store.Media, data []byte)) {
	m.lookup(c, server, id, remote, func(row store.Media, err error) {
		if err != nil {
			c.Fail(err)
			return
		}
		m.read(row, func(data []byte, err error) {
			if err != nil {
				c.Fail(err)
				return
			}
			done(row, data)
		})
	})
}

// lookup finds mxc://server/id for c, fetching it from server first when
// it is remote, not cached yet and remote is set, and waiting for the
// content of a local ID created but not yet uploaded (media_async.go).
// Unknown media is 404 M_NOT_FOUND.
func (m *mediaRepo) lookup(c *Call, server, id string, remote bool, done func(store.Media, error)) {
	row, err := m.n.store.GetMedia(server, id)
	switch {
	case err == nil:
		if row.Uploader == "" && server != m.n.ServerName() {
			// Last access, for the cache's least-recently-used order; a
			// failure costs only that order.
			if terr := m.n.store.TouchRemoteMedia(server, id, m.n.Now().UnixMilli()); terr != nil {
				m.n.log.Warn("media: recording access", "origin", server, "media_id", id, "err", terr)
			}
		}
		done(row, nil)
	case !errors.Is(err, store.ErrNotFound):
		done(store.Media{}, fmt.Errorf("media lookup: %w", err))
	case server == m.n.ServerName():
		m.waitPending(c, id, done)
	case !remote:
		done(store.Media{}, Errorf(404, ErrCodeNotFound, "media not found"))
	default:
		m.fetchFor(c.UserID, server, id, done)
	}
}

// fetchFor is fetchRemote on behalf of user, who may have at most
// maxRemoteFetchesPerUser federation requests for media in flight (429
// M_LIMIT_EXCEEDED beyond): one user cannot tie up this server's links by
// asking for many remote items at once. Waiting for an item already being
// fetched costs nothing and is not counted.
//
// NOTSPEC: the spec sets no such limit; it is this server's rate limit
// (client-server-api "Rate limiting"), so it answers like one.
func (m *mediaRepo) fetchFor(user, server, id string, done func(store.Media, error)) {
	if _, ok := m.fetching[server+"/"+id]; !ok {
		if m.remoteFetches[user] >= maxRemoteFetchesPerUser {
			done(store.Media{}, Errorf(429, ErrCodeLimitExceeded,
				"too many remote media downloads in progress (at most %d); retry when one ends", maxRemoteFetchesPerUser))
			return
		}
		m.remoteFetches[user]++
		inner := done
		done = func(row store.Media, err error) {
			if m.remoteFetches[user]--; m.remoteFetches[user] <= 0 {
				delete(m.remoteFetches, user)
			}
			inner(row, err)
		}
	}
	m.fetchRemote(server, id, done)
}

// read loads row's bytes beside the loop. A missing file, or one whose
// size differs from the row's, is an internal error (logged), not a 404:
// the row says the media exists.
func (m *mediaRepo) read(row store.Media, done func([]byte, error)) {
	path := filepath.Join(m.dir, row.File)
	if strings.HasPrefix(row.File, "..") || filepath.IsAbs(row.File) {
		done(nil, fmt.Errorf("media read %s/%s: bad file name %q", row.Origin, row.MediaID, row.File))
		return
	}
	var data []byte
	m.n.Offload(func() (err error) {
		data, err = os.ReadFile(path)
		return err
	}, func(rerr error) {
		if rerr == nil && int64(len(data)) != row.Size {
			rerr = fmt.Errorf("file has %d bytes, row says %d", len(data), row.Size)
		}
		if rerr != nil {
			done(nil, fmt.Errorf("media read %s/%s: %w", row.Origin, row.MediaID, rerr))
			return
		}
		done(data, nil)
	})
}
