package homeserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// twoTone is a w×h image, red on its left half and blue on its right.
func twoTone(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{R: 255, A: 255}
			if x >= w/2 {
				c = color.NRGBA{B: 255, A: 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeThumb decodes a thumbnail and checks its size.
func decodeThumb(t *testing.T, data []byte, w, h int) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("thumbnail does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("thumbnail is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	return img
}

func wantColor(t *testing.T, img image.Image, x, y int, red bool) {
	t.Helper()
	r, _, b, _ := img.At(x, y).RGBA()
	if red != (r > 0xc000 && b < 0x4000) || !red != (b > 0xc000 && r < 0x4000) {
		t.Fatalf("pixel (%d,%d) = %v, want red=%v", x, y, img.At(x, y), red)
	}
}

func TestMediaThumbnail(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	src := encodePNG(t, twoTone(200, 100))
	_, id := upload(t, tn, tok, "image/png", "wide.png", src)
	thumb := func(query string) mediaResp {
		t.Helper()
		return mediaDo(tn, "GET", mediaV1+"/thumbnail/test.local/"+id+"?"+query, tok, "", nil)
	}

	// scale keeps the aspect ratio and fits the box: 200x100 → 50x25.
	r := thumb("width=50&height=50&method=scale")
	if r.Status != 200 || r.Header["Content-Type"] != "image/png" || r.Header["Content-Disposition"] != "inline; filename=thumbnail.png" {
		t.Fatalf("scale: %d %v", r.Status, r.Header)
	}
	img := decodeThumb(t, r.Data, 50, 25)
	wantColor(t, img, 5, 12, true)
	wantColor(t, img, 45, 12, false)

	// crop gives the requested size from the middle: x 50..150 of the source.
	img = decodeThumb(t, thumb("width=50&height=50&method=crop").Data, 50, 50)
	wantColor(t, img, 5, 25, true)
	wantColor(t, img, 45, 25, false)
	// Never scaled up: a box taller than the image keeps its height.
	decodeThumb(t, thumb("width=20&height=400&method=crop").Data, 20, 100)

	// Asking for more than the image has returns the original.
	if r := thumb("width=640&height=480"); r.Status != 200 || !bytes.Equal(r.Data, src) {
		t.Fatalf("large box: %d, %d bytes", r.Status, len(r.Data))
	}
	// The legacy path serves local media without a token.
	if r := mediaDo(tn, "GET", mediaLegacy+"/thumbnail/test.local/"+id+"?width=32&height=32", "", "", nil); r.Status != 200 {
		t.Fatalf("legacy thumbnail: %d %s", r.Status, r.Data)
	}

	// JPEG in, JPEG out.
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, twoTone(300, 300), nil); err != nil {
		t.Fatal(err)
	}
	_, jid := upload(t, tn, tok, "image/jpeg", "", jb.Bytes())
	r = mediaDo(tn, "GET", mediaV1+"/thumbnail/test.local/"+jid+"?width=96&height=96&method=crop", tok, "", nil)
	if r.Header["Content-Type"] != "image/jpeg" {
		t.Fatalf("jpeg thumbnail type %v", r.Header)
	}
	decodeThumb(t, r.Data, 96, 96)

	// A small animated GIF is not served as it is: a still PNG instead.
	pal := color.Palette{color.Black, color.White}
	frame := image.NewPaletted(image.Rect(0, 0, 8, 8), pal)
	var gb bytes.Buffer
	if err := gif.EncodeAll(&gb, &gif.GIF{Image: []*image.Paletted{frame, frame}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	_, gid := upload(t, tn, tok, "image/gif", "", gb.Bytes())
	r = mediaDo(tn, "GET", mediaV1+"/thumbnail/test.local/"+gid+"?width=32&height=32", tok, "", nil)
	if r.Status != 200 || r.Header["Content-Type"] != "image/png" {
		t.Fatalf("gif thumbnail: %d %v", r.Status, r.Header)
	}
	decodeThumb(t, r.Data, 8, 8)

	// A PNG header claiming 100000x100000 pixels is refused before decoding.
	bomb := encodePNG(t, image.NewGray(image.Rect(0, 0, 1, 1)))
	binary.BigEndian.PutUint32(bomb[16:], 100000) // IHDR width
	binary.BigEndian.PutUint32(bomb[20:], 100000) // IHDR height
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29]))
	_, bombID := upload(t, tn, tok, "image/png", "", bomb)
	_, textID := upload(t, tn, tok, "text/plain", "", []byte("not an image"))
	_, liarID := upload(t, tn, tok, "image/png", "", []byte("not a png"))

	for _, tc := range []struct {
		name, id, query string
		status          int
		code            string
	}{
		{"bomb", bombID, "width=32&height=32", 413, ErrCodeTooLarge},
		{"not an image", textID, "width=32&height=32", 400, ErrCodeUnknown},
		{"corrupt image", liarID, "width=32&height=32", 400, ErrCodeUnknown},
		{"no width", id, "height=32", 400, ErrCodeMissingParam},
		{"bad height", id, "width=32&height=-1", 400, ErrCodeInvalidParam},
		{"huge width", id, "width=100000&height=32", 400, ErrCodeInvalidParam},
		{"bad method", id, "width=32&height=32&method=zoom", 400, ErrCodeInvalidParam},
		{"unknown media", "nosuchmedia", "width=32&height=32", 404, ErrCodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mediaDo(tn, "GET", mediaV1+"/thumbnail/test.local/"+tc.id+"?"+tc.query, tok, "", nil).wantErr(t, tc.status, tc.code)
		})
	}
}

func TestMediaThumbnailFederation(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	_, aliceTok, _ := a.register("alice", "pw")
	_, bobTok, _ := b.register("bob", "pw")
	_, id := upload(t, a, aliceTok, "image/png", "", encodePNG(t, twoTone(200, 100)))

	// The federation endpoint answers multipart/mixed with the thumbnail.
	fr := fn.signed(a, "b.test", b.key.ID, b.key.Key, "a.test", "GET",
		"/_matrix/federation/v1/media/thumbnail/"+id+"?width=40&height=40&method=scale", nil)
	if fr.Status != 200 {
		t.Fatalf("federation thumbnail: %d %s", fr.Status, fr.Raw)
	}
	ctype, _, data, err := parseMediaMultipart(fr.Raw, 1<<20)
	if err != nil || ctype != "image/png" {
		t.Fatalf("federation thumbnail answer: %q %v", ctype, err)
	}
	decodeThumb(t, data, 40, 20)

	// A client of b gets a thumbnail of a's media.
	r := mediaStart(b, "GET", mediaV1+"/thumbnail/a.test/"+id+"?width=32&height=32&method=crop", bobTok, "", nil)
	fn.settle()
	if r.Status != 200 {
		t.Fatalf("remote thumbnail: %d %s", r.Status, r.Data)
	}
	decodeThumb(t, r.Data, 32, 32)
}

func TestFitInside(t *testing.T) {
	for _, tc := range []struct{ w, h, mw, mh, ww, wh int }{
		{200, 100, 50, 50, 50, 25},
		{100, 200, 50, 50, 25, 50},
		{640, 480, 320, 240, 320, 240},
		{10, 10, 50, 50, 10, 10},
		{10000, 1, 32, 32, 32, 1},
	} {
		if w, h := fitInside(tc.w, tc.h, tc.mw, tc.mh); w != tc.ww || h != tc.wh {
			t.Errorf("fitInside(%d,%d,%d,%d) = %d,%d, want %d,%d", tc.w, tc.h, tc.mw, tc.mh, w, h, tc.ww, tc.wh)
		}
	}
}

// emptyFrameGIF is a GIF with a 64×64 canvas whose only frame is 0×0.
func emptyFrameGIF() []byte {
	return []byte{
		'G', 'I', 'F', '8', '9', 'a',
		64, 0, 64, 0, 0x80, 0, 0, // screen 64×64, a global table of 2 colours
		0, 0, 0, 255, 255, 255,
		0x2c, 0, 0, 0, 0, 0, 0, 0, 0, 0, // image descriptor: 0×0 at 0,0
		2, 1, 0x2c, 0, // LZW minimum code size 2; clear code then end code
		0x3b,
	}
}

// A frame smaller than the canvas DecodeConfig reports, down to 0×0, must
// not reach the scaler with an empty source (it divided by zero and, off
// the loop, took the node down). Anonymous legacy thumbnails reach it.
func TestMediaThumbnailEmptyGIFFrame(t *testing.T) {
	src := emptyFrameGIF()
	if cfg, err := gif.DecodeConfig(bytes.NewReader(src)); err != nil || cfg.Width != 64 {
		t.Fatalf("test GIF header: %+v %v", cfg, err)
	}
	if img, err := gif.Decode(bytes.NewReader(src)); err != nil || !img.Bounds().Empty() {
		t.Fatalf("test GIF frame: %v %v", img, err)
	}
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	_, id := upload(t, tn, tok, "image/gif", "", src)
	for _, q := range []string{"width=32&height=32&method=crop", "width=32&height=32&method=scale", "width=96&height=96"} {
		mediaDo(tn, "GET", mediaLegacy+"/thumbnail/test.local/"+id+"?"+q, "", "", nil).wantErr(t, 400, ErrCodeUnknown)
	}
	// The scaler and cropper themselves give empty images for empty input.
	empty := image.NewRGBA(image.Rect(5, 5, 5, 5))
	if b := cropImage(empty, 32, 32).Bounds(); !b.Empty() {
		t.Fatalf("cropImage of an empty image: %v", b)
	}
	if b := scaleImage(empty, empty.Bounds(), 32, 32).Bounds(); !b.Empty() {
		t.Fatalf("scaleImage of an empty region: %v", b)
	}
}

// At most maxThumbnailsRunning thumbnails are made at once; the next
// maxThumbnailsQueued wait in order, and the rest get 429.
func TestThumbLimit(t *testing.T) {
	l := thumbLimit{max: 2, maxQueue: 2}
	var releases []func()
	var started []int
	for i := range 4 {
		if err := l.acquire(func(release func()) { started = append(started, i); releases = append(releases, release) }); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	var e *Error
	if err := l.acquire(func(func()) { t.Fatal("ran past the queue") }); !errors.As(err, &e) || e.Status != 429 ||
		e.Code != ErrCodeLimitExceeded || e.Extra["retry_after_ms"] != thumbnailRetryAfter {
		t.Fatalf("past the queue: %v", err)
	}
	if len(started) != 2 {
		t.Fatalf("started %v, want 2 running", started)
	}
	releases[0]()
	releases[0]() // a second release is ignored
	if len(started) != 3 || started[2] != 2 || l.running != 2 {
		t.Fatalf("after one release: started %v, running %d", started, l.running)
	}
	for i := 1; i < len(releases); i++ {
		releases[i]()
	}
	if len(started) != 4 || l.running != 0 || len(l.queue) != 0 {
		t.Fatalf("after all releases: started %v, running %d, queued %d", started, l.running, len(l.queue))
	}

	// Through the API: with the node's limit taken, a request is refused.
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	_, id := upload(t, tn, tok, "image/png", "", encodePNG(t, twoTone(200, 100)))
	m := tn.Module(mediaModuleName).(*mediaRepo)
	m.thumbs.running = m.thumbs.max
	for range m.thumbs.maxQueue {
		m.thumbs.queue = append(m.thumbs.queue, func(release func()) {})
	}
	r := mediaDo(tn, "GET", mediaV1+"/thumbnail/test.local/"+id+"?width=32&height=32", tok, "", nil)
	r.wantErr(t, 429, ErrCodeLimitExceeded)
	if r.json(t)["retry_after_ms"] != float64(thumbnailRetryAfter) {
		t.Fatalf("429 without retry_after_ms: %s", r.Data)
	}
}

// pngHeader is a 1×1 PNG of img whose IHDR claims w×h; only the header
// is right, so decoding it fails.
func pngHeader(t *testing.T, img image.Image, w, h uint32) []byte {
	src := encodePNG(t, img)
	binary.BigEndian.PutUint32(src[16:], w)
	binary.BigEndian.PutUint32(src[20:], h)
	binary.BigEndian.PutUint32(src[29:], crc32.ChecksumIEEE(src[12:29]))
	return src
}

// The decode budget counts bytes, not pixels: 9 megapixels of 16-bit PNG
// are refused from the header, the same size in 8 bits is attempted.
func TestThumbnailDecodeBudget(t *testing.T) {
	tr := thumbRequest{width: 32, height: 32}
	deep := pngHeader(t, image.NewRGBA64(image.Rect(0, 0, 1, 1)), 3000, 3000)
	if _, _, err := makeThumbnail(deep, tr); !errors.Is(err, errThumbnailTooLarge) {
		t.Fatalf("16-bit 3000x3000: %v, want errThumbnailTooLarge", err)
	}
	shallow := pngHeader(t, image.NewNRGBA(image.Rect(0, 0, 1, 1)), 3000, 3000)
	if _, _, err := makeThumbnail(shallow, tr); !errors.Is(err, errNotThumbnailable) {
		t.Fatalf("8-bit 3000x3000 (truncated): %v, want errNotThumbnailable", err)
	}

	// A progressive JPEG is told by its frame header, not by FF C2 bytes
	// inside an earlier segment.
	app := []byte{0xff, 0xd8, 0xff, 0xe1, 0x00, 0x06, 0xff, 0xc2, 0x00, 0x00}
	frame := func(sof byte) []byte {
		return append(bytes.Clone(app), 0xff, sof, 0x00, 0x0b, 8, 0, 1, 0, 1, 1, 1, 0x11, 0)
	}
	if jpegProgressive(frame(0xc0)) || !jpegProgressive(frame(0xc2)) || jpegProgressive(app) {
		t.Fatal("jpegProgressive misreads the frame header")
	}
	if got := decodedBytesPerPixel(color.YCbCrModel, "jpeg", frame(0xc2)); got != 15 {
		t.Fatalf("progressive YCbCr: %d bytes per pixel, want 15", got)
	}
	if got := decodedBytesPerPixel(color.YCbCrModel, "jpeg", frame(0xc0)); got != 3 {
		t.Fatalf("baseline YCbCr: %d bytes per pixel, want 3", got)
	}
}
