package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/homeserver"
)

// media sends one media request (body nil for none) from the in-memory
// client, with the token once as start does, and runs virtual time until
// the answer, which it returns decoded and as it came.
func (m *memFrontDoor) media(method, path, mediaType string, body []byte) (*MediaResponse, coap.Message) {
	m.t.Helper()
	code := map[string]codes.Code{"GET": codes.GET, "POST": codes.POST, "PUT": codes.PUT}[method]
	return m.send(newMediaRequest(code, path, mediaType, body, ContentFormatCBOR))
}

func (m *memFrontDoor) send(req *coap.Message) (*MediaResponse, coap.Message) {
	m.t.Helper()
	if m.token != "" {
		req.Options = req.Options.Add(message.Option{ID: OptionAuthorization, Value: []byte(m.token)})
		m.token = ""
	}
	var got *coap.Event
	if _, err := m.cli.node.Send(m.clk.Now(), m.server, req, coap.SendOptions{}, func(ev coap.Event) { got = &ev }); err != nil {
		m.t.Fatal(err)
	}
	m.cli.flush()
	for got == nil {
		if !m.clk.RunNext() {
			m.t.Fatal("the link went idle before the answer")
		}
	}
	if got.Err != nil {
		m.t.Fatal(got.Err)
	}
	r, err := decodeMediaResponse(got.Msg)
	if err != nil {
		m.t.Fatal(err)
	}
	return r, got.Msg
}

// upload uploads body as mediaType and returns the media ID.
func (m *memFrontDoor) upload(mediaType string, body []byte) string {
	m.t.Helper()
	r, _ := m.media("POST", "/_matrix/media/v3/upload?filename=f", mediaType, body)
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	if err := r.Err(); err != nil || r.Raw || json.Unmarshal(r.JSON, &up) != nil || !strings.HasPrefix(up.ContentURI, "mxc://coap.test/") {
		m.t.Fatalf("upload %s: %v raw=%v %s", mediaType, r.Err(), r.Raw, r.JSON)
	}
	return strings.TrimPrefix(up.ContentURI, "mxc://coap.test/")
}

func (m *memFrontDoor) login() {
	m.t.Helper()
	var reg struct {
		AccessToken string `json:"access_token"`
	}
	m.call("POST", "/_matrix/client/v3/register", map[string]any{"username": "alice", "password": "wonderland",
		"auth": map[string]string{"type": "m.login.dummy"}}, &reg)
	m.token = reg.AccessToken
}

// noisePNG is a w×h PNG of seeded noise: it does not compress, so its
// size is about 3·w·h bytes.
func noisePNG(t *testing.T, w, h int, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func contentFormat(t *testing.T, m coap.Message) (message.MediaType, string) {
	t.Helper()
	cf, err := m.Options.ContentFormat()
	if err != nil {
		t.Fatalf("answer %v without Content-Format", m.Code)
	}
	v, _ := m.Options.GetBytes(OptionMediaType)
	return cf, string(v)
}

// TestCoAPFrontDoorMediaLossy: over a link losing 20 % of datagrams, an
// image many blocks long goes up (Block1) and comes back (Block2) byte for
// byte as image/png (Content-Format 23), and a thumbnail of it arrives as
// a PNG within the asked size.
func TestCoAPFrontDoorMediaLossy(t *testing.T) {
	m := newMemFrontDoor(t, 5, 0.2)
	m.login()
	img := noisePNG(t, 96, 64, 1)
	block := m.cli.node.Endpoint().BlockSize()
	if len(img) < 4*block {
		t.Fatalf("image %d B, block %d B: want several blocks", len(img), block)
	}
	b0 := m.link.bytes
	id := m.upload("image/png", img)
	up := m.link.bytes - b0

	b0 = m.link.bytes
	r, msg := m.media("GET", "/_matrix/client/v1/media/download/coap.test/"+id, "", nil)
	down := m.link.bytes - b0
	if !r.Raw || r.Status != 200 || r.MediaType != "image/png" || !bytes.Equal(r.Data, img) {
		t.Fatalf("download: raw=%v %d %q, %d B (uploaded %d B)", r.Raw, r.Status, r.MediaType, len(r.Data), len(img))
	}
	if cf, opt := contentFormat(t, msg); cf != 23 || opt != "" {
		t.Fatalf("download as Content-Format %d, media type option %q", cf, opt)
	}
	t.Logf("%d B image over a 20 %% lossy link, %d B blocks: upload %d B, download %d B on the link", len(img), block, up, down)

	r, _ = m.media("GET", "/_matrix/client/v1/media/thumbnail/coap.test/"+id+"?width=32&height=32&method=scale", "", nil)
	if !r.Raw || r.MediaType != "image/png" {
		t.Fatalf("thumbnail: raw=%v %d %q %s", r.Raw, r.Status, r.MediaType, r.JSON)
	}
	th, err := png.Decode(bytes.NewReader(r.Data))
	if err != nil {
		t.Fatal(err)
	}
	if b := th.Bounds(); b.Dx() != 32 || b.Dy() < 20 || b.Dy() > 22 {
		t.Fatalf("thumbnail of 96×64 scaled into 32×32 is %v", b)
	}
	t.Logf("32×32 thumbnail: %d B", len(r.Data))
}

// TestCoAPFrontDoorMediaFormats: media types travel as registered content
// formats or as 42 with the type in OptionMediaType, and the bytes are
// never translated, not even JSON or CBOR files.
func TestCoAPFrontDoorMediaFormats(t *testing.T) {
	m := newMemFrontDoor(t, 6, 0)
	m.login()
	for _, tc := range []struct {
		upType, wantType string
		wantCF           message.MediaType
		data             []byte
	}{
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8", 0, []byte("hello over the mesh")},
		{"image/jpeg", "image/jpeg", 22, []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10}},
		{"", "application/octet-stream", 42, []byte{0, 1, 2, 3}},
		{"application/json", "application/json", 42, []byte(`{"body":"not an API object","n":1.5}`)},
		{"application/cbor", "application/cbor", 42, []byte{0xa1, 0x18, 0x1b, 0x62, 'h', 'i'}},
		{"Text/Markdown; Charset=utf-8", "text/markdown; charset=utf-8", 42, []byte("# notes")},
	} {
		req := newMediaRequest(codes.POST, "/_matrix/media/v3/upload", tc.upType, tc.data, ContentFormatCBOR)
		if cf, _ := req.Options.ContentFormat(); cf != tc.wantCF {
			t.Errorf("%q: upload as Content-Format %d, want %d", tc.upType, cf, tc.wantCF)
		}
		id := m.upload(tc.upType, tc.data)
		r, msg := m.media("GET", "/_matrix/client/v1/media/download/coap.test/"+id, "", nil)
		if !r.Raw || r.MediaType != tc.wantType || !bytes.Equal(r.Data, tc.data) {
			t.Errorf("%q: download raw=%v %q %q", tc.upType, r.Raw, r.MediaType, r.Data)
			continue
		}
		cf, opt := contentFormat(t, msg)
		wantOpt := ""
		if tc.wantCF == 42 && tc.wantType != "application/octet-stream" {
			wantOpt = tc.wantType
		}
		if cf != tc.wantCF || opt != wantOpt {
			t.Errorf("%q: download as %d %q, want %d %q", tc.upType, cf, opt, tc.wantCF, wantOpt)
		}
	}
	// The media path codes are used, both ways.
	req := newMediaRequest(codes.GET, "/_matrix/client/v1/media/download/coap.test/abc", "", nil, ContentFormatCBOR)
	if p := req.Path(); p != "/~V/coap.test/abc" {
		t.Errorf("download path %q", p)
	}
}

// TestCoAPFrontDoorMediaErrors: the door's bounds and bad input.
func TestCoAPFrontDoorMediaErrors(t *testing.T) {
	m := newMemFrontDoor(t, 7, 0)
	m.login()
	data := bytes.Repeat([]byte("0123456789"), 300)
	id := m.upload("application/octet-stream", data)

	// Unknown media: an API error, in CBOR, not a raw body.
	r, msg := m.media("GET", "/_matrix/client/v1/media/download/coap.test/nothing", "", nil)
	if r.Raw || r.Status != 404 || r.Errcode != homeserver.ErrCodeNotFound {
		t.Fatalf("unknown media: raw=%v %d %s", r.Raw, r.Status, r.JSON)
	}
	if cf, _ := contentFormat(t, msg); cf != ContentFormatCBOR {
		t.Fatalf("error as Content-Format %d", cf)
	}

	// The media type option refines 42 only.
	req := newMediaRequest(codes.POST, "/_matrix/media/v3/upload", "image/png", []byte("x"), ContentFormatCBOR)
	req.Options = req.Options.Add(message.Option{ID: OptionMediaType, Value: []byte("image/webp")})
	if r, _ := m.send(req); r.Status != 400 || r.Errcode != homeserver.ErrCodeInvalidParam {
		t.Fatalf("media type option with image/png: %d %s", r.Status, r.JSON)
	}
	// A media type the node cannot parse: its 400.
	req = newMediaRequest(codes.POST, "/_matrix/media/v3/upload", "", []byte("x"), ContentFormatCBOR)
	req.Options = req.Options.Add(message.Option{ID: OptionMediaType, Value: []byte("no type/;;")})
	if r, _ := m.send(req); r.Status != 400 || r.Errcode != homeserver.ErrCodeInvalidParam {
		t.Fatalf("bad media type: %d %s", r.Status, r.JSON)
	}

	// Bodies over max_request_bytes, either way: 4.13 M_TOO_LARGE.
	m.door.max = int64(len(data)) - 1
	if r, msg := m.media("POST", "/_matrix/media/v3/upload", "", data); r.Status != 413 || r.Errcode != homeserver.ErrCodeTooLarge || msg.Code != codes.RequestEntityTooLarge {
		t.Fatalf("upload over the bound: %v %s", msg.Code, r.JSON)
	}
	if r, msg := m.media("GET", "/_matrix/client/v1/media/download/coap.test/"+id, "", nil); r.Raw || r.Errcode != homeserver.ErrCodeTooLarge || msg.Code != codes.RequestEntityTooLarge {
		t.Fatalf("download over the bound: %v raw=%v %s", msg.Code, r.Raw, r.JSON)
	}
	m.door.max = int64(len(data))
	if r, _ := m.media("GET", "/_matrix/client/v1/media/download/coap.test/"+id, "", nil); !r.Raw || !bytes.Equal(r.Data, data) {
		t.Fatalf("download at the bound: raw=%v %d %s", r.Raw, r.Status, r.JSON)
	}
}

// TestMediaFormat: how media types map to content formats and back.
func TestMediaFormat(t *testing.T) {
	long := "application/x-" + strings.Repeat("a", 300)
	for _, tc := range []struct {
		in   string
		cf   message.MediaType
		opt  string
		back string // the type a receiver reads
	}{
		{"image/png", 23, "", "image/png"}, {"IMAGE/PNG", 23, "", "image/png"}, {"image/gif", 21, "", "image/gif"},
		{"application/xml", 41, "", "application/xml"},
		{"text/plain;charset=utf-8", 0, "", "text/plain; charset=utf-8"}, {"text/plain", 42, "text/plain", "text/plain"},
		{"application/octet-stream", 42, "", "application/octet-stream"}, {"", 42, "", "application/octet-stream"},
		{"image/webp", 42, "image/webp", "image/webp"}, {"application/json", 42, "application/json", "application/json"},
		{long, 42, "", "application/octet-stream"},
	} {
		cf, opt := MediaFormat(tc.in)
		if cf != tc.cf || opt != tc.opt {
			t.Errorf("MediaFormat(%q) = %d %q, want %d %q", tc.in, cf, opt, tc.cf, tc.opt)
		}
		var opts message.Options
		if opt != "" {
			opts = opts.Add(message.Option{ID: OptionMediaType, Value: []byte(opt)})
		}
		if back, err := rawMediaType(cf, opts); err != nil || back != tc.back {
			t.Errorf("MediaFormat(%q) reads back as %q, %v; want %q", tc.in, back, err, tc.back)
		}
	}
	for _, cf := range []message.MediaType{ContentFormatJSON, ContentFormatCBOR, ContentFormatMeshFrame, ContentFormatPackedTxn, 110} {
		if _, err := rawMediaType(cf, nil); !errors.Is(err, errNotRaw) {
			t.Errorf("content format %d taken for media: %v", cf, err)
		}
	}
}
