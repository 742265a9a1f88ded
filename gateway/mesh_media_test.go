package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver"
)

// Remote media crosses the mesh: a user of one mesh server downloads what
// a user of the other uploaded, fetched over CoAP/Noise (the federation
// media answer travels raw, multipart/mixed, not as JSON), on a lossy
// link.
func TestMeshFederationMedia(t *testing.T) {
	names := []string{"a.mesh", "b.mesh"}
	w := newMemMesh(t, 11, names, memMeshOptions{loss: 0.1})
	_, aliceTok := meshRegister(t, w, 0, "alice")
	_, bobTok := meshRegister(t, w, 1, "bob")
	data := bytes.Repeat([]byte("\x89PNG mesh "), 300)
	up := w.dispatch(t, 0, &homeserver.Request{Method: "POST", Path: "/_matrix/media/v3/upload", AccessToken: aliceTok,
		Body: data, ContentType: "image/png"})
	j, _ := json.Marshal(up.Body)
	var u struct {
		ContentURI string `json:"content_uri"`
	}
	if up.Status != 200 || json.Unmarshal(j, &u) != nil || !strings.HasPrefix(u.ContentURI, "mxc://a.mesh/") {
		t.Fatalf("upload: %d %s", up.Status, j)
	}
	id := strings.TrimPrefix(u.ContentURI, "mxc://a.mesh/")
	d0, b0 := w.linkBytes(t)
	down := w.dispatch(t, 1, &homeserver.Request{Method: "GET", Path: "/_matrix/client/v1/media/download/a.mesh/" + id, AccessToken: bobTok})
	raw, ok := down.Body.(*homeserver.RawBody)
	if down.Status != 200 || !ok || !bytes.Equal(raw.Data, data) || raw.Header["Content-Type"] != "image/png" {
		t.Fatalf("download on b.mesh: %d %T", down.Status, down.Body)
	}
	d1, b1 := w.linkBytes(t)
	t.Logf("a %d B item crossed the mesh in %d datagrams, %d B", len(data), d1-d0, b1-b0)
	if got := w.fallbackUsed(); got != 0 {
		t.Fatalf("%d requests went to the non-mesh transport", got)
	}
	// Cached: a second download crosses nothing.
	if again := w.dispatch(t, 1, &homeserver.Request{Method: "GET", Path: "/_matrix/client/v1/media/download/a.mesh/" + id, AccessToken: bobTok}); again.Status != 200 {
		t.Fatalf("second download: %d", again.Status)
	}
	if d2, _ := w.linkBytes(t); d2 != d1 {
		t.Fatalf("a cached item crossed the link again (%d datagrams)", d2-d1)
	}
}
