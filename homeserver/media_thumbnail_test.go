package homeserver

import (
	"bytes"
	"encoding/binary"
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
