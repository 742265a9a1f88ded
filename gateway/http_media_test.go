package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// Media goes through the HTTP front door as bytes, not JSON: mautrix
// uploads and downloads (authenticated media), and the answer carries the
// spec's headers.
func TestHTTPMediaRoundTrip(t *testing.T) {
	base := accountsTestServer(t, nil)
	ctx := context.Background()
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	cli.SetCredentials(reg.UserID, reg.AccessToken)
	data := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 0xff, '{'}, 5000)...)
	up, err := cli.UploadBytesWithName(ctx, data, "image/png", "pic.png")
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	got, err := cli.DownloadBytes(ctx, up.ContentURI)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}

	req, _ := http.NewRequest("GET", base+"/_matrix/client/v1/media/download/"+up.ContentURI.Homeserver+"/"+up.ContentURI.FileID, nil)
	req.Header.Set("Authorization", "Bearer "+reg.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for k, v := range map[string]string{
		"Content-Type":                "image/png",
		"Content-Disposition":         "inline; filename=pic.png",
		"X-Content-Type-Options":      "nosniff",
		"Access-Control-Allow-Origin": "*",
	} {
		if resp.Header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.ContentLength != int64(len(data)) || !bytes.Equal(body, data) {
		t.Fatalf("download: CSP %q, length %d, %d bytes", resp.Header.Get("Content-Security-Policy"), resp.ContentLength, len(body))
	}
}

// Uploads are bounded by media.max_upload_bytes, not by the smaller
// max_request_bytes that bounds every other body.
func TestHTTPMediaUploadLimit(t *testing.T) {
	base := accountsTestServer(t, func(c *homeserver.Config) {
		c.MaxRequestBytes = 64 << 10
		c.Media.MaxUploadBytes = 256 << 10
	})
	ctx := context.Background()
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	cli.SetCredentials(reg.UserID, reg.AccessToken)
	big := bytes.Repeat([]byte("x"), 200<<10)
	up, err := cli.UploadBytesWithName(ctx, big, "application/octet-stream", "big.bin")
	if err != nil {
		t.Fatalf("upload above max_request_bytes: %v", err)
	}
	if got, err := cli.DownloadBytes(ctx, up.ContentURI); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	var cfg struct {
		Size int64 `json:"m.upload.size"`
	}
	if _, err := cli.MakeRequest(ctx, "GET", base+"/_matrix/client/v1/media/config", nil, &cfg); err != nil || cfg.Size != 256<<10 {
		t.Fatalf("config %d, %v", cfg.Size, err)
	}
	_, err = cli.UploadBytesWithName(ctx, bytes.Repeat([]byte("x"), 300<<10), "application/octet-stream", "huge.bin")
	if !errors.Is(err, mautrix.MTooLarge) {
		t.Fatalf("upload above max_upload_bytes: %v", err)
	}
	// Other requests keep max_request_bytes.
	_, err = cli.SendMessageEvent(ctx, "!nowhere:gw.test", event.EventMessage, map[string]string{"body": string(big[:100<<10])})
	if !errors.Is(err, mautrix.MTooLarge) {
		t.Fatalf("a 100 KiB event body: %v", err)
	}
}
