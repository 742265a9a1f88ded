package homeserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

const (
	mediaV1     = "/_matrix/client/v1/media"
	mediaLegacy = "/_matrix/media/v3"
)

// mediaResp is a media answer as the front door would write it.
type mediaResp struct {
	Status   int
	Header   map[string]string // nil for a JSON answer
	Data     []byte            // the raw body, or the JSON
	Answered bool
}

func (r mediaResp) json(t *testing.T) map[string]any {
	t.Helper()
	if r.Header != nil {
		t.Fatalf("want a JSON answer, got %d %v", r.Status, r.Header)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %s", r.Status, r.Data)
	}
	return m
}

func (r mediaResp) wantErr(t *testing.T, status int, code string) {
	t.Helper()
	if !r.Answered {
		t.Fatalf("no answer, want %d %s", status, code)
	}
	if got := r.json(t)["errcode"]; r.Status != status || got != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Data, status, code)
	}
}

// mediaStart dispatches a request with a Content-Type and a raw body; the
// result is filled in when the node answers.
func mediaStart(tn *testNode, method, path, token, ctype string, body []byte) *mediaResp {
	tn.t.Helper()
	p, q, _ := strings.Cut(path, "?")
	vals, err := url.ParseQuery(q)
	if err != nil {
		tn.t.Fatal(err)
	}
	req := &Request{Method: method, Path: p, Query: vals, AccessToken: token, ContentType: ctype, Body: body, RemoteIP: "192.0.2.1"}
	out := &mediaResp{}
	tn.Dispatch(req, func(r Response) {
		out.Answered, out.Status = true, r.Status
		if raw, ok := r.Body.(*RawBody); ok {
			out.Header, out.Data = raw.Header, raw.Data
			return
		}
		if out.Data, err = json.Marshal(r.Body); err != nil {
			tn.t.Errorf("%s %s: body does not marshal: %v", method, path, err)
		}
	})
	return out
}

func mediaDo(tn *testNode, method, path, token, ctype string, body []byte) mediaResp {
	tn.t.Helper()
	return *mediaStart(tn, method, path, token, ctype, body)
}

// upload posts data and returns the mxc URI's server and media ID.
func upload(t *testing.T, tn *testNode, token, ctype, name string, data []byte) (server, id string) {
	t.Helper()
	path := mediaLegacy + "/upload"
	if name != "" {
		path += "?filename=" + url.QueryEscape(name)
	}
	r := mediaDo(tn, "POST", path, token, ctype, data)
	if r.Status != 200 {
		t.Fatalf("upload: %d %s", r.Status, r.Data)
	}
	uri, _ := r.json(t)["content_uri"].(string)
	server, id, ok := strings.Cut(strings.TrimPrefix(uri, "mxc://"), "/")
	if !ok || !strings.HasPrefix(uri, "mxc://") || !validMediaID(id) {
		t.Fatalf("content_uri %q", uri)
	}
	return server, id
}

// mediaFiles lists the files under the node's media folder.
func mediaFiles(t *testing.T, tn *testNode) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(tn.cfg.Path(mediaDirName), func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMediaUploadDownload(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	png := []byte("\x89PNG\r\n\x1a\nnot really")
	server, id := upload(t, tn, tok, "image/png", "cat picture.png", png)
	if server != "test.local" {
		t.Fatalf("server %q", server)
	}
	if files := mediaFiles(t, tn); len(files) != 1 || strings.Contains(files[0], id) {
		t.Fatalf("media files %v: want one, not named by the media ID", files)
	}

	for _, tc := range []struct {
		name, path, token, disposition string
	}{
		{"authenticated", mediaV1 + "/download/test.local/" + id, tok, `inline; filename="cat picture.png"`},
		{"file name override", mediaV1 + "/download/test.local/" + id + "/other.png", tok, `inline; filename=other.png`},
		{"legacy, no token", mediaLegacy + "/download/test.local/" + id, "", `inline; filename="cat picture.png"`},
		{"legacy override", mediaLegacy + "/download/test.local/" + id + "/x%20y.png", "", `inline; filename="x y.png"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mediaDo(tn, "GET", tc.path, tc.token, "", nil)
			if r.Status != 200 || !bytes.Equal(r.Data, png) {
				t.Fatalf("download: %d %q", r.Status, r.Data)
			}
			want := map[string]string{
				"Content-Type":                 "image/png",
				"Content-Disposition":          tc.disposition,
				"Content-Security-Policy":      mediaCSP,
				"Cross-Origin-Resource-Policy": "cross-origin",
				"X-Content-Type-Options":       "nosniff",
			}
			for k, v := range want {
				if r.Header[k] != v {
					t.Errorf("%s: %q, want %q", k, r.Header[k], v)
				}
			}
		})
	}

	// Types outside the spec's inline list are attachments; no name, no
	// filename parameter; a missing Content-Type is octet-stream.
	_, htmlID := upload(t, tn, tok, "text/html; charset=UTF-8", "", []byte("<script>alert(1)</script>"))
	r := mediaDo(tn, "GET", mediaV1+"/download/test.local/"+htmlID, tok, "", nil)
	if r.Header["Content-Disposition"] != "attachment" || r.Header["Content-Type"] != "text/html; charset=UTF-8" {
		t.Fatalf("html download headers %v", r.Header)
	}
	_, binID := upload(t, tn, tok, "", "résumé.bin", []byte{0, 1, 2})
	r = mediaDo(tn, "GET", mediaV1+"/download/test.local/"+binID, tok, "", nil)
	if r.Header["Content-Type"] != "application/octet-stream" ||
		r.Header["Content-Disposition"] != "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.bin" {
		t.Fatalf("untyped download headers %v", r.Header)
	}
	_, emptyID := upload(t, tn, tok, "text/plain", "", nil)
	if r := mediaDo(tn, "GET", mediaV1+"/download/test.local/"+emptyID, tok, "", nil); r.Status != 200 || len(r.Data) != 0 {
		t.Fatalf("empty download: %d %q", r.Status, r.Data)
	}

	// The limit advertised is the media limit (uploads are not bound by
	// max_request_bytes).
	cfg := mediaDo(tn, "GET", mediaV1+"/config", tok, "", nil).json(t)
	if cfg["m.upload.size"] != float64(DefaultMaxUploadBytes) {
		t.Fatalf("config %v, want %d", cfg, DefaultMaxUploadBytes)
	}
}

func TestMediaErrors(t *testing.T) {
	tn := newTestNode(t, func(c *Config) { c.Media.MaxUploadBytes = 16 })
	_, tok, _ := tn.register("alice", "pw")
	_, id := upload(t, tn, tok, "text/plain", "", []byte("sixteen bytes!!!"))

	cases := []struct {
		name, method, path, token, ctype string
		body                             []byte
		status                           int
		code                             string
	}{
		{"too large", "POST", mediaLegacy + "/upload", tok, "text/plain", []byte("seventeen bytes!!"), 413, ErrCodeTooLarge},
		{"bad content type", "POST", mediaLegacy + "/upload", tok, "text/plain; =", []byte("x"), 400, ErrCodeInvalidParam},
		{"control character in name", "POST", mediaLegacy + "/upload?filename=a%0D%0Ab", tok, "text/plain", []byte("x"), 400, ErrCodeInvalidParam},
		{"upload without token", "POST", mediaLegacy + "/upload", "", "text/plain", []byte("x"), 401, ErrCodeMissingToken},
		{"download without token", "GET", mediaV1 + "/download/test.local/" + id, "", "", nil, 401, ErrCodeMissingToken},
		{"config without token", "GET", mediaV1 + "/config", "", "", nil, 401, ErrCodeMissingToken},
		{"unknown ID", "GET", mediaV1 + "/download/test.local/nosuchmedia", tok, "", nil, 404, ErrCodeNotFound},
		{"unknown ID, legacy", "GET", mediaLegacy + "/download/test.local/nosuchmedia", "", "", nil, 404, ErrCodeNotFound},
		{"traversal in ID", "GET", mediaV1 + "/download/test.local/..%2F..%2Fetc", tok, "", nil, 400, ErrCodeInvalidParam},
		{"dot in ID", "GET", mediaV1 + "/download/test.local/a.b", tok, "", nil, 400, ErrCodeInvalidParam},
		{"bad server name", "GET", mediaV1 + "/download/bad_server/" + id, tok, "", nil, 400, ErrCodeInvalidParam},
		{"remote, legacy: never fetched", "GET", mediaLegacy + "/download/other.test/abc", "", "", nil, 404, ErrCodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mediaDo(tn, tc.method, tc.path, tc.token, tc.ctype, tc.body).wantErr(t, tc.status, tc.code)
		})
	}
	// Refused uploads left nothing behind: one file, one row.
	if files := mediaFiles(t, tn); len(files) != 1 {
		t.Fatalf("media files after refused uploads: %v", files)
	}
	var rows int
	if err := tn.store.DB.QueryRow(`SELECT COUNT(*) FROM media`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("media rows: %d %v", rows, err)
	}
}

// A failed write leaves neither a row nor a file, and a crash's temporary
// file is removed at start.
func TestMediaUploadFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	tn := newTestNode(t, func(c *Config) { c.Dir = dir })
	_, tok, _ := tn.register("alice", "pw")
	// The media folder's shard directories cannot be created under a file.
	mdir := tn.cfg.Path(mediaDirName)
	if err := os.WriteFile(mdir, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mediaDo(tn, "POST", mediaLegacy+"/upload", tok, "text/plain", []byte("hello"))
	r.wantErr(t, 500, ErrCodeUnknown)
	var rows int
	if err := tn.store.DB.QueryRow(`SELECT COUNT(*) FROM media`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("media rows after failed upload: %d %v", rows, err)
	}
	if err := os.Remove(mdir); err != nil {
		t.Fatal(err)
	}

	if err := os.MkdirAll(mdir, 0o700); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(mdir, mediaTempPrefix+"123")
	if err := os.WriteFile(left, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	newTestNode(t, func(c *Config) { c.Dir = dir })
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file survived a restart: %v", err)
	}
}

func TestMediaRemote(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	fetches := 0
	b, _ := fn.nodeVia("b.test", t.TempDir(), 2, nil, func(r Remote) Remote {
		return remoteFunc(func(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
			if strings.HasPrefix(req.URI, "/_matrix/federation/v1/media/download/") {
				fetches++
			}
			r.Do(dest, req, done)
		})
	})
	_, aliceTok, _ := a.register("alice", "pw")
	_, bobTok, _ := b.register("bob", "pw")
	data := bytes.Repeat([]byte("0123456789"), 1000)
	_, id := upload(t, a, aliceTok, "image/jpeg", "photo.jpg", data)

	get := func(path string) mediaResp {
		t.Helper()
		r := mediaStart(b, "GET", path, bobTok, "", nil)
		fn.settle()
		return *r
	}
	// Two downloads started together share one federation request.
	first := mediaStart(b, "GET", mediaV1+"/download/a.test/"+id, bobTok, "", nil)
	second := mediaStart(b, "GET", mediaV1+"/download/a.test/"+id+"/renamed.jpg", bobTok, "", nil)
	fn.settle()
	for _, r := range []*mediaResp{first, second} {
		if r.Status != 200 || !bytes.Equal(r.Data, data) || r.Header["Content-Type"] != "image/jpeg" {
			t.Fatalf("remote download: %d %v (%d bytes)", r.Status, r.Header, len(r.Data))
		}
	}
	if first.Header["Content-Disposition"] != "inline; filename=photo.jpg" ||
		second.Header["Content-Disposition"] != "inline; filename=renamed.jpg" {
		t.Fatalf("dispositions %q, %q", first.Header["Content-Disposition"], second.Header["Content-Disposition"])
	}
	if fetches != 1 {
		t.Fatalf("%d media requests for two downloads, want 1", fetches)
	}

	// Cached now: served without the network, also on the legacy path.
	if r := get(mediaLegacy + "/download/a.test/" + id); r.Status != 200 || !bytes.Equal(r.Data, data) {
		t.Fatalf("cached legacy download: %d", r.Status)
	}
	if r := get(mediaV1 + "/download/a.test/" + id); r.Status != 200 || !bytes.Equal(r.Data, data) {
		t.Fatalf("cached download: %d", r.Status)
	}
	if fetches != 1 {
		t.Fatalf("cached downloads made %d more media requests", fetches-1)
	}
	row, err := b.store.GetMedia("a.test", id)
	if err != nil || row.Uploader != "" || row.FileName != "photo.jpg" || row.Size != int64(len(data)) {
		t.Fatalf("cached row %+v %v", row, err)
	}

	get(mediaV1+"/download/a.test/nosuchmedia").wantErr(t, 404, ErrCodeNotFound)
	// B serves only its own media to other servers, not what it cached.
	fr := fn.signed(a, "b.test", b.key.ID, b.key.Key, "a.test", "GET", "/_matrix/federation/v1/media/download/nosuchmedia", nil)
	wantErr(t, fr, 404, ErrCodeNotFound)
	before := fn.net.Delivered
	r := mediaStart(a, "GET", mediaV1+"/download/b.test/"+id, aliceTok, "", nil)
	fn.settle()
	r.wantErr(t, 404, ErrCodeNotFound)
	if fn.net.Delivered == before {
		t.Fatal("a did not ask b")
	}

	// Unreachable origin: 502; over the size limit: 502 M_TOO_LARGE.
	fn.net.SetDown("a.test", true)
	get(mediaV1+"/download/a.test/unreachable").wantErr(t, 502, ErrCodeUnknown)
	fn.net.SetDown("a.test", false)
	c, _ := fn.nodeWith("c.test", t.TempDir(), 3, func(c *Config) { c.Media.MaxUploadBytes = 100 })
	_, carolTok, _ := c.register("carol", "pw")
	rc := mediaStart(c, "GET", mediaV1+"/download/a.test/"+id, carolTok, "", nil)
	fn.settle()
	rc.wantErr(t, 502, ErrCodeTooLarge)
	if files := mediaFiles(t, c); len(files) != 0 {
		t.Fatalf("refused remote media stored: %v", files)
	}
}

func TestMediaMultipart(t *testing.T) {
	tn := newTestNode(t, nil)
	m := tn.Module(mediaModuleName).(*mediaRepo)
	row := store.Media{Origin: "test.local", MediaID: "x", ContentType: "image/png", FileName: `a "b".png`}
	body, ctype, err := m.buildMultipart(row, []byte("DATA\r\n--x"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ctype, "multipart/mixed; boundary=") {
		t.Fatalf("content type %q", ctype)
	}
	gotType, name, data, err := parseMediaMultipart(body, 100)
	if err != nil || gotType != "image/png" || name != `a "b".png` || string(data) != "DATA\r\n--x" {
		t.Fatalf("round trip: %q %q %q %v", gotType, name, data, err)
	}
	if _, _, _, err := parseMediaMultipart(body, 3); !errors.Is(err, errMediaTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}

	// Another server's answer, with a preamble.
	other := "preamble\r\n--BOUND\r\nContent-Type: application/json\r\n\r\n{}\r\n--BOUND\r\n" +
		"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"n.txt\"\r\n\r\nhello\r\n--BOUND--\r\n"
	if gotType, name, data, err := parseMediaMultipart([]byte(other), 100); err != nil || gotType != "text/plain" || name != "n.txt" || string(data) != "hello" {
		t.Fatalf("foreign answer: %q %q %q %v", gotType, name, data, err)
	}
	for name, bad := range map[string]string{
		"redirect":      "--B\r\nContent-Type: application/json\r\n\r\n{}\r\n--B\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--B--\r\n",
		"no media part": "--B\r\nContent-Type: application/json\r\n\r\n{}\r\n--B--\r\n",
		"not json":      "--B\r\nContent-Type: text/plain\r\n\r\n{}\r\n--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n",
		"not multipart": `{"errcode":"M_UNKNOWN"}`,
		"empty":         "",
	} {
		if _, _, _, err := parseMediaMultipart([]byte(bad), 100); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// remoteFunc is a Remote made of a function.
type remoteFunc func(dest string, req OutboundRequest, done func(OutboundResponse, error))

func (f remoteFunc) Do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	f(dest, req, done)
}
