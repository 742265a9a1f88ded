package homeserver

// Media over federation: server-server-api "Content Repository".
//
// GET /_matrix/federation/v1/media/download/MEDIAID answers
// multipart/mixed with exactly two parts: application/json metadata
// (currently always {}), then the bytes with their Content-Type and
// Content-Disposition (or, from some servers, a Location header instead
// of the bytes).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// maxMediaMetadata bounds the JSON part of a federation media answer.
const maxMediaMetadata = 64 << 10

// handleFedDownload: GET /_matrix/federation/v1/media/download/MEDIAID,
// our own media only (another server's cached media is for our users).
// Spec: server-server-api "GET /_matrix/federation/v1/media/download/{mediaId}".
func (m *mediaRepo) handleFedDownload(c *Call) {
	id := c.Req.Vars["mediaId"]
	if !validMediaID(id) {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "not a valid media ID"))
		return
	}
	m.content(c, m.n.ServerName(), id, false, func(row store.Media, data []byte) {
		body, ctype, err := m.buildMultipart(row, data)
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, &RawBody{Header: map[string]string{"Content-Type": ctype}, Data: body})
	})
}

// buildMultipart makes the two-part answer; the boundary comes from the
// node RNG.
func (m *mediaRepo) buildMultipart(row store.Media, data []byte) (body []byte, ctype string, err error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	var rnd [16]byte
	_, _ = m.n.rng.Read(rnd[:]) // ChaCha8.Read never fails
	if err := w.SetBoundary(fmt.Sprintf("%x", rnd)); err != nil {
		return nil, "", fmt.Errorf("media multipart: %w", err)
	}
	meta, err := w.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err == nil {
		_, err = meta.Write([]byte("{}"))
	}
	var part io.Writer
	if err == nil {
		part, err = w.CreatePart(textproto.MIMEHeader{
			"Content-Type":        {row.ContentType},
			"Content-Disposition": {contentDisposition(row.ContentType, row.FileName)},
		})
	}
	if err == nil {
		_, err = part.Write(data)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, "", fmt.Errorf("media multipart: %w", err)
	}
	return buf.Bytes(), "multipart/mixed; boundary=" + w.Boundary(), nil
}

// fetchRemote gets mxc://origin/id from origin over federation, stores it
// and hands the row to done; callers asking for the same item meanwhile
// wait for the same request. Errors: the origin's 404 is 404 M_NOT_FOUND;
// an item over media.max_upload_bytes is 502 M_TOO_LARGE (client-server-api
// "Security considerations"); any other failure is 502 M_UNKNOWN.
func (m *mediaRepo) fetchRemote(origin, id string, done func(store.Media, error)) {
	key := origin + "/" + id
	if waiters, ok := m.fetching[key]; ok {
		m.fetching[key] = append(waiters, done)
		return
	}
	m.fetching[key] = []func(store.Media, error){done}
	finish := func(row store.Media, err error) {
		waiters := m.fetching[key]
		delete(m.fetching, key)
		for _, w := range waiters {
			w(row, err)
		}
	}
	uri := "/_matrix/federation/v1/media/download/" + url.PathEscape(id)
	m.n.Federation().Do(origin, OutboundRequest{Method: "GET", URI: uri}, func(resp OutboundResponse, err error) {
		if err != nil {
			m.n.log.Info("media: remote fetch failed", "origin", origin, "media_id", id, "err", err)
			var re *RemoteError
			if errors.As(err, &re) && re.Status == 404 {
				finish(store.Media{}, Errorf(404, ErrCodeNotFound, "media not found"))
				return
			}
			finish(store.Media{}, Errorf(502, ErrCodeUnknown, "could not fetch media from %s", origin))
			return
		}
		max := m.n.cfg.Media.MaxUploadBytes
		ctype, name, data, err := parseMediaAnswer(resp, max)
		if err != nil {
			m.n.log.Info("media: bad remote answer", "origin", origin, "media_id", id, "err", err)
			if errors.Is(err, errMediaTooLarge) {
				finish(store.Media{}, Errorf(502, ErrCodeTooLarge, "remote media exceeds %d bytes", max))
				return
			}
			finish(store.Media{}, Errorf(502, ErrCodeUnknown, "bad answer from %s", origin))
			return
		}
		if ctype, err = cleanContentType(ctype); err != nil {
			ctype = "application/octet-stream"
		}
		if !validFileName(name) {
			name = ""
		}
		row := store.Media{Origin: origin, MediaID: id, ContentType: ctype, FileName: name,
			Size: int64(len(data)), CreatedTS: m.n.Now().UnixMilli()}
		if err := m.makeRoom(row.Size); err != nil {
			finish(store.Media{}, fmt.Errorf("media cache %s: %w", key, err))
			return
		}
		m.save(row, data, m.n.store.InsertMedia, func(err error) {
			if err != nil {
				finish(store.Media{}, fmt.Errorf("media cache %s: %w", key, err))
				return
			}
			row.File = mediaFile(origin, id)
			finish(row, nil)
		})
	})
}

// makeRoom drops least recently used remote items until size more bytes
// fit in media.remote_cache_bytes, counting the remote items being
// written. The rows go at once; the files are removed beside the loop
// (a failure there is logged: the space is lost until an operator
// clears it, but the cache stays consistent).
//
// A download that looked up a dropped item but has not read its file yet
// fails with an internal error; it is rare (the item was the least
// recently used) and a retry fetches the item again. An item fetched
// again while its old file waits for removal keeps its new file (the old
// one was renamed aside first).
func (m *mediaRepo) makeRoom(size int64) error {
	max := m.n.cfg.Media.RemoteCacheBytes
	if max == 0 {
		return nil
	}
	used, err := m.n.store.RemoteMediaBytes()
	if err != nil {
		return fmt.Errorf("make room: %w", err)
	}
	over := used + m.caching + size - max
	if over <= 0 {
		return nil
	}
	evicted, err := m.n.store.EvictRemoteMedia(over)
	if err != nil {
		return fmt.Errorf("make room: %w", err)
	}
	// Each file is first renamed, here in the loop, to a temporary name
	// (removed at start if a crash leaves it), and removed beside the
	// loop: the item may be fetched again before the removal runs, and
	// its new file must not be the one removed.
	var files []string
	for _, e := range evicted {
		if strings.HasPrefix(e.File, "..") || filepath.IsAbs(e.File) {
			m.n.log.Warn("media: evicted row with a bad file name", "origin", e.Origin, "media_id", e.MediaID, "file", e.File)
			continue
		}
		doomed := filepath.Join(m.dir, mediaTempPrefix+"evicted-"+filepath.Base(e.File))
		if err := os.Rename(filepath.Join(m.dir, e.File), doomed); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				m.n.log.Warn("media: setting an evicted file aside", "file", e.File, "err", err)
			}
			continue
		}
		files = append(files, doomed)
	}
	m.n.log.Info("media: dropped cached remote media", "items", len(evicted), "needed_bytes", over)
	m.n.Offload(func() error {
		var errs []error
		for _, f := range files {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}, func(err error) {
		if err != nil {
			m.n.log.Warn("media: removing evicted files", "err", err)
		}
	})
	return nil
}

// errMediaTooLarge: the media part is over the size limit.
var errMediaTooLarge = errors.New("media too large")

// parseMediaMultipart reads a federation media answer: the JSON part, then
// the media part's type, file name (from its Content-Disposition) and
// bytes, at most max of them (errMediaTooLarge beyond).
//
// The boundary is taken from the body's first delimiter line
// ("--BOUNDARY"); parseMediaAnswer uses the answer's Content-Type when it
// has one. NOTSPEC: a Location part (media elsewhere) is an error:
// following it needs a plain HTTPS fetch the Remote does not offer.
func parseMediaMultipart(body []byte, max int64) (ctype, name string, data []byte, err error) {
	boundary, err := sniffBoundary(body)
	if err != nil {
		return "", "", nil, err
	}
	return parseMediaParts(body, boundary, max)
}

// parseMediaAnswer is parseMediaMultipart for a federation answer, with
// the boundary its Content-Type names (multipart/mixed is required when
// the answer says what it is).
func parseMediaAnswer(resp OutboundResponse, max int64) (ctype, name string, data []byte, err error) {
	if resp.ContentType == "" {
		return parseMediaMultipart(resp.Body, max)
	}
	t, params, err := mime.ParseMediaType(resp.ContentType)
	if err != nil || t != "multipart/mixed" || params["boundary"] == "" {
		return "", "", nil, fmt.Errorf("media answer is %q, want multipart/mixed with a boundary", resp.ContentType)
	}
	return parseMediaParts(resp.Body, params["boundary"], max)
}

// parseMediaParts reads the two parts of a media answer.
func parseMediaParts(body []byte, boundary string, max int64) (ctype, name string, data []byte, err error) {
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	meta, err := r.NextRawPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("media multipart: metadata part: %w", err)
	}
	if t, _, _ := mime.ParseMediaType(meta.Header.Get("Content-Type")); t != "application/json" {
		return "", "", nil, fmt.Errorf("media multipart: metadata part is %q, want application/json", t)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(meta, maxMediaMetadata)); err != nil {
		return "", "", nil, fmt.Errorf("media multipart: metadata part: %w", err)
	}
	part, err := r.NextRawPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("media multipart: media part: %w", err)
	}
	if part.Header.Get("Location") != "" {
		return "", "", nil, errors.New("media multipart: redirect (Location) not followed")
	}
	data, err = io.ReadAll(io.LimitReader(part, max+1))
	if err != nil {
		return "", "", nil, fmt.Errorf("media multipart: media part: %w", err)
	}
	if int64(len(data)) > max {
		return "", "", nil, errMediaTooLarge
	}
	if _, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil {
		name = params["filename"]
	}
	return part.Header.Get("Content-Type"), name, data, nil
}

// sniffBoundary finds the first line starting with "--" (RFC 2046 §5.1.1:
// the first delimiter, after an optional preamble) and returns the
// boundary it names.
func sniffBoundary(body []byte) (string, error) {
	rest := body
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimRight(line, " \t\r")
		if bytes.HasPrefix(line, []byte("--")) {
			b := string(line[2:])
			if b == "" || len(b) > 70 || strings.ContainsAny(b, "\r\n") {
				break
			}
			return b, nil
		}
	}
	return "", errors.New("media multipart: no boundary line")
}
