package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/gateway"
)

// TestClientMediaCLI: `mxmesh client upload` and `download` against a
// served node over CoAP/Noise: an image several blocks long goes up and
// comes back byte for byte, to a file and to stdout, a thumbnail comes back
// as a small PNG, an explicit --type survives, and bad input fails with a
// message.
func TestClientMediaCLI(t *testing.T) {
	dir, noiseAddr, _ := serveCoAP(t)
	key := showKey(t, dir)["key"]
	work := t.TempDir()
	state := filepath.Join(work, "client.json")
	cli := func(args ...string) (int, []byte, string) {
		t.Helper()
		var out, errb bytes.Buffer
		base := []string{"client", "--server", noiseAddr, "--key", key, "--server-name", "cli.test", "--state", state}
		code := run(append(base, args...), strings.NewReader(""), &out, &errb)
		return code, out.Bytes(), errb.String()
	}
	if code, out, errs := cli("register", "dora", "--password", "explorer"); code != 0 {
		t.Fatalf("register: %d %q %q", code, out, errs)
	}

	// Seeded noise: it does not compress, so the PNG is ~7 KB, several
	// 1 KiB blocks.
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, 60, 40))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.Uint32())
	}
	var pngData bytes.Buffer
	if err := png.Encode(&pngData, img); err != nil {
		t.Fatal(err)
	}
	if pngData.Len() < 4<<10 {
		t.Fatalf("test image %d B: want several blocks", pngData.Len())
	}
	photo := filepath.Join(work, "photo.png")
	if err := os.WriteFile(photo, pngData.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli("upload", photo)
	mxc := strings.TrimSpace(string(out))
	if code != 0 || !strings.HasPrefix(mxc, "mxc://cli.test/") {
		t.Fatalf("upload: %d %q %q", code, out, errs)
	}

	saved := filepath.Join(work, "back.png")
	if code, out, errs := cli("download", mxc, "-o", saved); code != 0 || !strings.Contains(string(out), "image/png") {
		t.Fatalf("download -o: %d %q %q", code, out, errs)
	}
	if got, err := os.ReadFile(saved); err != nil || !bytes.Equal(got, pngData.Bytes()) {
		t.Fatalf("downloaded file: %d B, %v; uploaded %d B", len(got), err, pngData.Len())
	}
	if code, out, errs := cli("download", mxc); code != 0 || !bytes.Equal(out, pngData.Bytes()) {
		t.Fatalf("download to stdout: %d, %d B, %q", code, len(out), errs)
	}

	code, out, errs = cli("download", "--thumbnail", "16x16", mxc)
	if code != 0 {
		t.Fatalf("thumbnail: %d %q", code, errs)
	}
	th, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("thumbnail is not a PNG: %v", err)
	}
	if b := th.Bounds(); b.Dx() != 16 || b.Dy() > 16 {
		t.Fatalf("thumbnail of 60×40 in 16×16: %v", b)
	}

	notes := filepath.Join(work, "notes")
	if err := os.WriteFile(notes, []byte("# from the mesh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli("upload", notes, "--type", "text/markdown")
	if code != 0 {
		t.Fatalf("upload --type: %d %q", code, errs)
	}
	if code, out, errs := cli("download", strings.TrimSpace(string(out)), "-o", saved); code != 0 || string(out) != saved+": 16 bytes, text/markdown\n" {
		t.Fatalf("download markdown: %d %q %q", code, out, errs)
	}

	big := filepath.Join(work, "big")
	if err := os.WriteFile(big, make([]byte, clientMaxBody+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"download", "https://cli.test/x"}, 1, "not an mxc://"},
		{[]string{"download", "mxc://cli.test/nothing"}, 1, "M_NOT_FOUND"},
		{[]string{"download", mxc, "--thumbnail", "16"}, 1, "WIDTHxHEIGHT"},
		{[]string{"upload", big}, 1, "at most"},
		{[]string{"upload", filepath.Join(work, "missing")}, 1, "no such file"},
		{[]string{"upload", notes, "--type", "text/"}, 1, "--type"},
		{[]string{"upload"}, 2, "bad arguments"},
	} {
		if code, _, errs := cli(tc.args...); code != tc.code || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: %d %q, want %d and %q", tc.args, code, errs, tc.code, tc.err)
		}
	}
}

// TestMediaLibcoap: libcoap's coap-client, a CoAP implementation nobody
// here wrote, uploads an image block-wise (Block1) through the plain
// loopback front door as Content-Format 23 with the token in option 256,
// and downloads it block-wise (Block2) byte for byte.
func TestMediaLibcoap(t *testing.T) {
	bin, err := exec.LookPath("coap-client-notls")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("coap-client-notls not installed (apt-get install -y libcoap3-bin)")
		}
		t.Fatalf("coap-client-notls missing in CI: %v", err)
	}
	_, _, plainAddr := serveCoAP(t)
	c, err := gateway.DialCoAP(gateway.CoAPClientConfig{Server: netip.MustParseAddrPort(plainAddr)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	coapCall(t, c, "POST", "/_matrix/client/v3/register", map[string]any{"username": "eve", "password": "libcoap-pw",
		"auth": map[string]string{"type": "m.login.dummy"}}, &reg)

	work := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = uint8(r.Uint32())
	}
	in, out := filepath.Join(work, "in.png"), filepath.Join(work, "out.png")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	libcoap := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args = append([]string{"-B", "20", "-b", "512", "-O", "256," + reg.AccessToken}, args...)
		b, err := exec.CommandContext(ctx, bin, args...).Output()
		if err != nil {
			t.Fatalf("coap-client-notls %q: %v\n%s", args, err, b)
		}
		return b
	}
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	got := libcoap("-m", "post", "-t", "23", "-A", "50", "-f", in, "coap://"+plainAddr+"/_matrix/media/v3/upload?filename=in.png")
	if err := json.Unmarshal(bytes.TrimSpace(got), &up); err != nil || !strings.HasPrefix(up.ContentURI, "mxc://cli.test/") {
		t.Fatalf("upload via libcoap: %q (%v)", got, err)
	}
	libcoap("-m", "get", "-o", out, "coap://"+plainAddr+"/_matrix/client/v1/media/download/cli.test/"+strings.TrimPrefix(up.ContentURI, "mxc://cli.test/"))
	if back, err := os.ReadFile(out); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("download via libcoap: %d B, %v; uploaded %d B", len(back), err, len(data))
	}
	// And the mxmesh client reads it back as image/png.
	c.SetAccessToken(reg.AccessToken)
	resp, err := c.DoMedia(context.Background(), "GET", "/_matrix/client/v1/media/download/cli.test/"+strings.TrimPrefix(up.ContentURI, "mxc://cli.test/"), "", nil)
	if err != nil || !resp.Raw || resp.MediaType != "image/png" || !bytes.Equal(resp.Data, data) {
		t.Fatalf("download via DoMedia: %v %+v", err, resp.CoAPResponse)
	}
}
