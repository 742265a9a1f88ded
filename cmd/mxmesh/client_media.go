package main

// `mxmesh client upload` and `download`: the content repository over the
// CoAP front door (gateway/coap_front_media.go). The file's bytes travel
// raw, block-wise, with their media type as a CoAP Content-Format.

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clientMaxBody bounds one upload or download of the client: the CoAP
// front door's default bound (max_request_bytes, 1 MiB). Larger files
// belong on the HTTP client API; a slow radio link would be busy for
// hours.
const clientMaxBody = 1 << 20

// upload sends the file as media of type mediaType (else the type of its
// extension, else application/octet-stream) and prints its mxc:// URI.
func (cl *cliClient) upload(file, mediaType string) error {
	info, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("upload: %s is not a regular file", file)
	}
	if info.Size() > clientMaxBody {
		return fmt.Errorf("upload: %s is %d bytes; over CoAP at most %d (use the HTTP client API for large files)", file, info.Size(), clientMaxBody)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if mediaType == "" {
		mediaType = mime.TypeByExtension(filepath.Ext(file))
	} else if _, _, err := mime.ParseMediaType(mediaType); err != nil {
		return fmt.Errorf("upload: --type %q: %w", mediaType, err)
	}
	path := "/_matrix/media/v3/upload?" + url.Values{"filename": {filepath.Base(file)}}.Encode()
	resp, err := cl.c.DoMedia(cl.ctx, "POST", path, mediaType, data)
	if err != nil {
		return err
	}
	if err := resp.Err(); err != nil {
		return err
	}
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	if err := json.Unmarshal(resp.JSON, &out); err != nil || !strings.HasPrefix(out.ContentURI, "mxc://") {
		return fmt.Errorf("upload: answer without a content_uri: %s", resp.JSON)
	}
	fmt.Fprintln(cl.stdout, out.ContentURI)
	return nil
}

// download fetches mxc://SERVER/ID (or its thumbnail, "WxH") into output,
// or onto stdout when output is "".
func (cl *cliClient) download(mxc, output, thumbnail string) error {
	server, id, err := parseMXC(mxc)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	kind, query := "download", ""
	if thumbnail != "" {
		w, h, ok := strings.Cut(thumbnail, "x")
		wn, werr := strconv.Atoi(w)
		hn, herr := strconv.Atoi(h)
		if !ok || werr != nil || herr != nil || wn < 1 || hn < 1 {
			return fmt.Errorf("download: --thumbnail %q: want WIDTHxHEIGHT in pixels", thumbnail)
		}
		kind, query = "thumbnail", "?"+url.Values{"width": {w}, "height": {h}, "method": {"scale"}}.Encode()
	}
	path := "/_matrix/client/v1/media/" + kind + "/" + url.PathEscape(server) + "/" + url.PathEscape(id) + query
	resp, err := cl.c.DoMedia(cl.ctx, "GET", path, "", nil)
	if err != nil {
		return err
	}
	if err := resp.Err(); err != nil {
		return err
	}
	if !resp.Raw {
		return fmt.Errorf("download: the answer is not media: %s", resp.JSON)
	}
	if output == "" {
		_, err := cl.stdout.Write(resp.Data)
		return err
	}
	if err := writeDownload(output, resp.Data); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	fmt.Fprintf(cl.stdout, "%s: %d bytes, %s\n", output, len(resp.Data), resp.MediaType)
	return nil
}

// writeDownload writes data to path through a temporary file beside it,
// so that a failed write leaves an existing file as it was.
func writeDownload(path string, data []byte) error {
	tmp := path + ".part"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// errBadMXC: not an mxc://SERVER/ID URI (client-server API "Matrix
// Content (mxc://) URIs").
var errBadMXC = errors.New("not an mxc://SERVER/MEDIA_ID URI")

func parseMXC(s string) (server, id string, err error) {
	rest, ok := strings.CutPrefix(s, "mxc://")
	if !ok {
		return "", "", fmt.Errorf("%q: %w", s, errBadMXC)
	}
	server, id, ok = strings.Cut(rest, "/")
	if !ok || server == "" || id == "" || strings.ContainsAny(id, "/?#") {
		return "", "", fmt.Errorf("%q: %w", s, errBadMXC)
	}
	return server, id, nil
}
