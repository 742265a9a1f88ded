package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
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
