package homeserver

// The content repository ("media repository"): client-server-api "Content
// repository" and server-server-api "Content Repository".
//
// Media is named by mxc://SERVER/MEDIAID. A user uploads to their own
// server (POST /_matrix/media/v3/upload) and gets the mxc URI back; any
// user downloads through their own server
// (GET /_matrix/client/v1/media/download/SERVER/MEDIAID), which fetches
// another server's media once over federation
// (GET /_matrix/federation/v1/media/download/MEDIAID, a multipart/mixed
// answer: a JSON metadata part, then the bytes) and keeps it.
//
// Storage: the bytes are one file per item under DIR/media/, named by the
// SHA-256 of "ORIGIN/MEDIAID" (so no part of a name from the network
// reaches the file system), "ab/abcdef…"; the metadata is a row in the
// media table (store.Media). A file is written to a temporary name in
// DIR/media/ and renamed into place before its row is inserted, so a
// failed or abandoned upload leaves neither a row nor a partial file
// (temporary files left by a crash are removed at start). File writes and
// reads run beside the loop through Node.Offload.
//
// A user can have at most maxRemoteFetchesPerUser remote items being
// fetched at once (429 M_LIMIT_EXCEEDED beyond, fetchFor).
//
// Remote media is a cache of at most media.remote_cache_bytes (0:
// unlimited): before a fetched item is stored, the least recently used
// remote items (last access kept in the media table) are dropped to make
// room (makeRoom, media_fed.go). Uploads are never dropped.
//
// Limits: an upload or a remote item is at most media.max_upload_bytes
// (413 M_TOO_LARGE for uploads, 502 M_TOO_LARGE for remote media); uploads
// count against the caller's rate limit like every authenticated call. The
// upload routes bound their bodies by media.max_upload_bytes instead of
// max_request_bytes (Route.MaxBody; the HTTP front door asks
// Node.MaxBody before reading a body). The CoAP front door keeps
// max_request_bytes: a large upload has no place on a radio link.
//
// NOTSPEC: the deprecated unauthenticated endpoints
// (/_matrix/media/v3/download, …/thumbnail) are not frozen, so clients
// that predate authenticated media still work, but they never fetch
// remote media (allow_remote is treated as false): an anonymous caller
// cannot make this server spend link capacity on other servers' media.
//
// Asynchronous uploads (create, then PUT) are in media_async.go,
// thumbnails in media_thumbnail.go, federation in media_fed.go.
//
// Quota: the media a local user uploaded, with their uploads being
// written, is at most media.max_bytes_per_user (0: unlimited) in total;
// an upload over it is 403 M_LIMIT_EXCEEDED (checkQuota).
//
// NOTSPEC: URL previews are not served (info.go).

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// MediaConfig configures the content repository.
type MediaConfig struct {
	// MaxUploadBytes bounds one upload and one item fetched from another
	// server.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// MaxBytesPerUser bounds the total size of the media one local user
	// has uploaded, counting uploads being written; 0 is unlimited.
	MaxBytesPerUser int64 `yaml:"max_bytes_per_user"`
	// RemoteCacheBytes bounds the total size of the media fetched from
	// other servers and kept; the least recently used items go first. 0
	// is unlimited; otherwise it is at least MaxUploadBytes, so any item
	// fits.
	RemoteCacheBytes int64 `yaml:"remote_cache_bytes"`
}

const (
	// DefaultMaxUploadBytes is media.max_upload_bytes unless configured:
	// 50 MiB.
	DefaultMaxUploadBytes = 50 << 20
	// DefaultMaxBytesPerUser is media.max_bytes_per_user unless
	// configured: 1 GiB.
	DefaultMaxBytesPerUser = 1 << 30
	// DefaultRemoteCacheBytes is media.remote_cache_bytes unless
	// configured: 1 GiB.
	DefaultRemoteCacheBytes = 1 << 30
)

// defaultMediaConfig is the media section of DefaultConfig.
func defaultMediaConfig() MediaConfig {
	return MediaConfig{MaxUploadBytes: DefaultMaxUploadBytes, MaxBytesPerUser: DefaultMaxBytesPerUser,
		RemoteCacheBytes: DefaultRemoteCacheBytes}
}

func (c MediaConfig) validate() []error {
	var errs []error
	if c.MaxUploadBytes <= 0 {
		errs = append(errs, fmt.Errorf("media.max_upload_bytes %d: must be positive", c.MaxUploadBytes))
	}
	if c.MaxBytesPerUser < 0 {
		errs = append(errs, fmt.Errorf("media.max_bytes_per_user %d: must be 0 (unlimited) or positive", c.MaxBytesPerUser))
	}
	if c.RemoteCacheBytes < 0 || c.RemoteCacheBytes > 0 && c.RemoteCacheBytes < c.MaxUploadBytes {
		errs = append(errs, fmt.Errorf("media.remote_cache_bytes %d: must be 0 (unlimited) or at least media.max_upload_bytes (%d)",
			c.RemoteCacheBytes, c.MaxUploadBytes))
	}
	return errs
}

// RawBody is a Response body sent as is rather than as JSON: media bytes,
// or the multipart/mixed answer of the federation media API. Front doors
// write Header (Content-Type always; Content-Disposition and the security
// headers on downloads) and then Data.
type RawBody struct {
	Header map[string]string
	Data   []byte
}

// Media repository names and limits.
const (
	mediaModuleName = "media"
	// mediaDirName is the media folder inside the data directory.
	mediaDirName = "media"
	// mediaTempPrefix starts the names of files being written.
	mediaTempPrefix = ".tmp-"
	// mediaIDLen is the length of the media IDs this server makes: 24
	// characters of [A-Za-z0-9], 142 bits from the node RNG.
	mediaIDLen = 24
	// maxMediaIDLen bounds a media ID accepted from the network.
	maxMediaIDLen = 255
	// maxRemoteFetchesPerUser bounds the remote media one user can have
	// this server fetch at once (fetchFor).
	maxRemoteFetchesPerUser = 4
)

// mediaRepo is the content repository module. It belongs to the node loop.
type mediaRepo struct {
	n   *Node
	dir string
	// fetching holds the callers waiting for a remote item being fetched
	// ("origin/mediaID" → waiters): one federation request per item.
	fetching map[string][]func(store.Media, error)
	// remoteFetches counts the federation requests for media each user
	// started that are still in flight (fetchFor).
	remoteFetches map[string]int
	// uploading holds the created IDs whose content is being written;
	// waiting, the downloads waiting for a created ID's content.
	uploading map[string]bool
	waiting   map[string][]*mediaWaiter
	// writing is the bytes of each user's uploads being written, which
	// count against media.max_bytes_per_user before their rows exist.
	writing map[string]int64
	// caching is the bytes of remote items being written, which count
	// against media.remote_cache_bytes before their rows exist.
	caching int64
	// thumbs bounds the thumbnails being made at once.
	thumbs thumbLimit
}

func mediaRoutes(n *Node) ([]Route, error) {
	m := &mediaRepo{n: n, dir: n.cfg.Path(mediaDirName), fetching: map[string][]func(store.Media, error){},
		remoteFetches: map[string]int{}, uploading: map[string]bool{}, writing: map[string]int64{}, waiting: map[string][]*mediaWaiter{},
		thumbs: thumbLimit{max: maxThumbnailsRunning, maxQueue: maxThumbnailsQueued}}
	if err := m.removeTemp(); err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	n.SetModule(mediaModuleName, m)
	const cv1, legacy = "/_matrix/client/v1/media", "/_matrix/media/v3"
	return []Route{
		{Method: "POST", Pattern: legacy + "/upload", Auth: AuthUser, Handle: m.handleUpload, MaxBody: m.n.cfg.Media.MaxUploadBytes},
		{Method: "POST", Pattern: "/_matrix/media/v1/create", Auth: AuthUser, Handle: m.handleCreate},
		{Method: "PUT", Pattern: legacy + "/upload/{serverName}/{mediaId}", Auth: AuthUser, Handle: m.handleUploadTo, MaxBody: m.n.cfg.Media.MaxUploadBytes},
		{Method: "GET", Pattern: cv1 + "/config", Auth: AuthUser, Handle: m.handleConfig},
		{Method: "GET", Pattern: legacy + "/config", Auth: AuthUser, Handle: m.handleConfig},
		{Method: "GET", Pattern: cv1 + "/download/{serverName}/{mediaId}", Auth: AuthUser, Handle: m.handleDownload(true)},
		{Method: "GET", Pattern: cv1 + "/download/{serverName}/{mediaId}/{fileName}", Auth: AuthUser, Handle: m.handleDownload(true)},
		{Method: "GET", Pattern: legacy + "/download/{serverName}/{mediaId}", Auth: AuthNone, Handle: m.handleDownload(false)},
		{Method: "GET", Pattern: legacy + "/download/{serverName}/{mediaId}/{fileName}", Auth: AuthNone, Handle: m.handleDownload(false)},
		{Method: "GET", Pattern: cv1 + "/thumbnail/{serverName}/{mediaId}", Auth: AuthUser, Handle: m.handleThumbnail(true)},
		{Method: "GET", Pattern: legacy + "/thumbnail/{serverName}/{mediaId}", Auth: AuthNone, Handle: m.handleThumbnail(false)},
		{Method: "GET", Pattern: "/_matrix/federation/v1/media/download/{mediaId}", Auth: AuthFederation, Handle: m.handleFedDownload},
		{Method: "GET", Pattern: "/_matrix/federation/v1/media/thumbnail/{mediaId}", Auth: AuthFederation, Handle: m.handleFedThumbnail},
	}, nil
}

// removeTemp deletes files a crash left half written.
func (m *mediaRepo) removeTemp() error {
	names, err := filepath.Glob(filepath.Join(m.dir, mediaTempPrefix+"*"))
	if err != nil {
		return fmt.Errorf("remove temporary files: %w", err)
	}
	for _, name := range names {
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("remove temporary files: %w", err)
		}
	}
	return nil
}

// handleConfig: GET /_matrix/client/v1/media/config (and the deprecated
// /_matrix/media/v3/config). Spec: client-server-api "GET
// /_matrix/client/v1/media/config".
func (m *mediaRepo) handleConfig(c *Call) {
	c.Reply(200, map[string]any{"m.upload.size": m.maxUpload()})
}

// maxUpload is the largest upload accepted: media.max_upload_bytes (the
// upload routes' body bound, in place of max_request_bytes).
func (m *mediaRepo) maxUpload() int64 {
	return m.n.cfg.Media.MaxUploadBytes
}

// handleUpload: POST /_matrix/media/v3/upload?filename=NAME with the file
// as the body and its type as Content-Type. Answers {"content_uri":
// "mxc://SERVER/MEDIAID"}. Spec: client-server-api "POST
// /_matrix/media/v3/upload".
func (m *mediaRepo) handleUpload(c *Call) {
	row, err := m.uploadRow(c, m.newMediaID())
	if err != nil {
		c.Fail(err)
		return
	}
	m.save(row, c.Req.Body, m.n.store.InsertMedia, func(err error) {
		if err != nil {
			c.Fail(fmt.Errorf("media upload: %w", err))
			return
		}
		c.Reply(200, map[string]string{"content_uri": "mxc://" + row.Origin + "/" + row.MediaID})
	})
}

// uploadRow checks an upload's size, Content-Type and filename and
// describes it as local media id.
func (m *mediaRepo) uploadRow(c *Call, id string) (store.Media, error) {
	size := int64(len(c.Req.Body))
	if max := m.maxUpload(); size > max {
		return store.Media{}, Errorf(413, ErrCodeTooLarge, "upload exceeds %d bytes", max)
	}
	ctype, err := cleanContentType(c.Req.ContentType)
	if err != nil {
		return store.Media{}, Errorf(400, ErrCodeInvalidParam, "Content-Type: %v", err)
	}
	name := c.Req.Query.Get("filename")
	if !validFileName(name) {
		return store.Media{}, Errorf(400, ErrCodeInvalidParam, "filename must be UTF-8 without control characters, at most 255 bytes")
	}
	if err := m.checkQuota(c.UserID, size); err != nil {
		return store.Media{}, err
	}
	return store.Media{
		Origin: m.n.ServerName(), MediaID: id, ContentType: ctype, FileName: name,
		Size: size, Uploader: c.UserID, CreatedTS: m.n.Now().UnixMilli(),
	}, nil
}

// checkQuota refuses an upload of size bytes by user when it would take
// the user's stored media, plus their uploads being written, over
// media.max_bytes_per_user.
//
// NOTSPEC: the spec has no errcode for a per-user storage quota (a
// proposal adds M_USER_LIMIT_EXCEEDED; M_RESOURCE_LIMIT_EXCEEDED is for
// limits of the whole server and requires an admin_contact). The answer
// is 403 M_LIMIT_EXCEEDED, as for the key backup version limit: retrying
// later does not help, deleting media would.
func (m *mediaRepo) checkQuota(user string, size int64) error {
	max := m.n.cfg.Media.MaxBytesPerUser
	if max == 0 {
		return nil
	}
	used, err := m.n.store.MediaBytesByUploader(user)
	if err != nil {
		return fmt.Errorf("media quota: %w", err)
	}
	if used+m.writing[user]+size > max {
		return Errorf(403, ErrCodeLimitExceeded, "upload would exceed your media quota of %d bytes", max)
	}
	return nil
}

// save writes data to row's file beside the loop, then (in the loop)
// records the row with insert; done gets the outcome. On any failure
// nothing is left. A local upload's bytes count in writing meanwhile, a
// remote item's in caching.
func (m *mediaRepo) save(row store.Media, data []byte, insert func(store.Media) error, done func(error)) {
	row.File = mediaFile(row.Origin, row.MediaID)
	path := filepath.Join(m.dir, row.File)
	inner := done
	if row.Uploader != "" {
		m.writing[row.Uploader] += row.Size
		done = func(err error) {
			if m.writing[row.Uploader] -= row.Size; m.writing[row.Uploader] <= 0 {
				delete(m.writing, row.Uploader)
			}
			inner(err)
		}
	} else {
		m.caching += row.Size
		done = func(err error) {
			m.caching -= row.Size
			inner(err)
		}
	}
	m.n.Offload(func() error { return writeFileAtomic(m.dir, path, data) }, func(werr error) {
		if werr != nil {
			done(werr)
			return
		}
		if err := insert(row); err != nil {
			if rmErr := os.Remove(path); rmErr != nil {
				m.n.log.Warn("media: removing file of a failed insert", "file", path, "err", rmErr)
			}
			done(err)
			return
		}
		done(nil)
	})
}

// writeFileAtomic writes data to a temporary file in dir, syncs it and
// renames it to path. It touches no node state (it runs in Offload).
func writeFileAtomic(dir, path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write media file: %w", err)
	}
	f, err := os.CreateTemp(dir, mediaTempPrefix+"*")
	if err != nil {
		return fmt.Errorf("write media file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write media file: %w", err)
	}
	return nil
}

// mediaFile is the file name, relative to the media folder, of
// mxc://origin/mediaID.
func mediaFile(origin, mediaID string) string {
	sum := sha256.Sum256([]byte(origin + "/" + mediaID))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(h[:2], h)
}

// newMediaID returns a fresh media ID from the node RNG.
func (m *mediaRepo) newMediaID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, mediaIDLen)
	for i := range b {
		b[i] = alphabet[m.n.rng.Uint64()%uint64(len(alphabet))]
	}
	return string(b)
}

// validMediaID: only A-Za-z0-9, "_" and "-". Spec: client-server-api
// "Content repository", "Security considerations".
func validMediaID(id string) bool {
	if id == "" || len(id) > maxMediaIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// validFileName accepts "" (none) or UTF-8 of at most 255 bytes without
// control characters, which would otherwise end up in a header.
func validFileName(name string) bool {
	if len(name) > 255 || !utf8.ValidString(name) {
		return false
	}
	return strings.IndexFunc(name, unicode.IsControl) < 0
}

// cleanContentType parses a Content-Type and returns it in canonical form;
// "" becomes application/octet-stream.
func cleanContentType(v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "application/octet-stream", nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		return "", err
	}
	out := mime.FormatMediaType(t, params)
	if out == "" {
		return "", errors.New("cannot be represented")
	}
	return out, nil
}
