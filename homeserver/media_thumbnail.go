package homeserver

// Thumbnails: client-server-api "Thumbnails" and "GET
// /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}",
// server-server-api "GET /_matrix/federation/v1/media/thumbnail/{mediaId}".
//
// PNG, JPEG and GIF (its first frame) are thumbnailed with the standard
// library: the header is read first (image.DecodeConfig) and images over
// maxThumbnailPixels, or whose decoding would take more than
// maxThumbnailDecodeBytes (16-bit colour and progressive JPEG take more
// per pixel), are refused before anything is decoded, so a small file
// claiming a huge canvas cannot exhaust memory. At most
// maxThumbnailsRunning thumbnails are made at once (thumbLimit). A GIF
// whose first frame is empty is not thumbnailable. "scale" fits the
// image inside width×height keeping its aspect ratio; "crop" scales it to
// cover width×height and cuts the middle out. Nothing is ever scaled up:
// an image already within the requested size is served as it is, except
// that a GIF or APNG becomes a still PNG of its first frame. Scaling
// averages the source pixels under each output pixel (a box filter). JPEG
// sources give JPEG thumbnails, the others PNG. Animated thumbnails are
// not made (animated=true is treated as false, which the spec allows).
//
// NOTSPEC: thumbnails are computed on each request, not stored; a remote
// item is fetched whole (and cached) and thumbnailed here rather than
// asking its server for a thumbnail.

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"mime"
	"strconv"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

const (
	// maxThumbnailPixels bounds the source images thumbnailed: 16
	// megapixels (64 MiB decoded as RGBA).
	maxThumbnailPixels = 16 << 20
	// maxThumbnailDecodeBytes bounds the memory decoding a source image
	// takes (decodedBytesPerPixel): 64 MiB, a 16-megapixel 8-bit RGBA
	// image, but only 8 megapixels of 16-bit PNG or about 4 of
	// progressive JPEG.
	maxThumbnailDecodeBytes = 64 << 20
	// maxThumbnailSide bounds the requested width and height.
	maxThumbnailSide = 2048
	// thumbnailJPEGQuality is the quality of JPEG thumbnails.
	thumbnailJPEGQuality = 80
)

// errThumbnailTooLarge: the source image is over maxThumbnailPixels.
var errThumbnailTooLarge = errors.New("image too large to thumbnail")

// errNotThumbnailable: the content is not an image this server decodes.
var errNotThumbnailable = errors.New("cannot thumbnail this content")

// thumbRequest is a parsed thumbnail request.
type thumbRequest struct {
	width, height int
	crop          bool
}

// parseThumbRequest reads width, height and method from the query.
// Missing or bad values are 400 M_MISSING_PARAM / M_INVALID_PARAM.
func parseThumbRequest(c *Call) (thumbRequest, error) {
	var tr thumbRequest
	for _, p := range []struct {
		name string
		dst  *int
	}{{"width", &tr.width}, {"height", &tr.height}} {
		v := c.Req.Query.Get(p.name)
		if v == "" {
			return tr, Errorf(400, ErrCodeMissingParam, "%s is required", p.name)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxThumbnailSide {
			return tr, Errorf(400, ErrCodeInvalidParam, "%s must be an integer from 1 to %d", p.name, maxThumbnailSide)
		}
		*p.dst = n
	}
	switch c.Req.Query.Get("method") {
	case "", "scale":
	case "crop":
		tr.crop = true
	default:
		return tr, Errorf(400, ErrCodeInvalidParam, "method must be crop or scale")
	}
	return tr, nil
}

// handleThumbnail: GET /_matrix/client/v1/media/thumbnail/SERVER/MEDIAID
// (remote true) and the deprecated /_matrix/media/v3/thumbnail/… (false).
func (m *mediaRepo) handleThumbnail(remote bool) func(c *Call) {
	return func(c *Call) {
		server, id := c.Req.Vars["serverName"], c.Req.Vars["mediaId"]
		if ValidateServerName(server) != nil || !validMediaID(id) {
			c.Fail(Errorf(400, ErrCodeInvalidParam, "not a valid mxc:// server name and media ID"))
			return
		}
		tr, err := parseThumbRequest(c)
		if err != nil {
			c.Fail(err)
			return
		}
		m.lookup(c, server, id, remote, func(row store.Media, err error) {
			if err != nil {
				c.Fail(err)
				return
			}
			local := row.Origin == m.n.ServerName()
			m.thumbnail(row, tr, func(ctype string, data []byte, err error) {
				if err != nil {
					c.Fail(thumbnailError(err, local))
					return
				}
				c.Reply(200, &RawBody{Header: mediaHeaders(ctype, contentDisposition(ctype, thumbnailName(ctype))), Data: data})
			})
		})
	}
}

// handleFedThumbnail: GET /_matrix/federation/v1/media/thumbnail/MEDIAID,
// our own media only, as the same two-part multipart/mixed answer as a
// download.
func (m *mediaRepo) handleFedThumbnail(c *Call) {
	id := c.Req.Vars["mediaId"]
	if !validMediaID(id) {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "not a valid media ID"))
		return
	}
	tr, err := parseThumbRequest(c)
	if err != nil {
		c.Fail(err)
		return
	}
	m.lookup(c, m.n.ServerName(), id, false, func(row store.Media, err error) {
		if err != nil {
			c.Fail(err)
			return
		}
		m.thumbnail(row, tr, func(ctype string, data []byte, err error) {
			if err != nil {
				c.Fail(thumbnailError(err, true))
				return
			}
			thumb := store.Media{ContentType: ctype, FileName: thumbnailName(ctype)}
			body, mctype, err := m.buildMultipart(thumb, data)
			if err != nil {
				c.Fail(err)
				return
			}
			c.Reply(200, &RawBody{Header: map[string]string{"Content-Type": mctype}, Data: body})
		})
	})
}

// thumbnailError maps thumbnailing failures to the spec's answers: 400
// M_UNKNOWN for content that cannot be thumbnailed, 413 M_TOO_LARGE for a
// local image over the limit (502 for a remote one).
func thumbnailError(err error, local bool) error {
	switch {
	case errors.Is(err, errNotThumbnailable):
		return Errorf(400, ErrCodeUnknown, "Cannot generate thumbnails for the requested content")
	case errors.Is(err, errThumbnailTooLarge) && local:
		return Errorf(413, ErrCodeTooLarge, "Content is too large to thumbnail")
	case errors.Is(err, errThumbnailTooLarge):
		return Errorf(502, ErrCodeTooLarge, "Content is too large to thumbnail")
	}
	return err
}

func thumbnailName(ctype string) string {
	if ctype == "image/jpeg" {
		return "thumbnail.jpg"
	}
	return "thumbnail.png"
}

// thumbnail reads row's bytes and makes the thumbnail beside the loop.
func (m *mediaRepo) thumbnail(row store.Media, tr thumbRequest, done func(ctype string, data []byte, err error)) {
	t, _, _ := mime.ParseMediaType(row.ContentType)
	if t != "image/png" && t != "image/jpeg" && t != "image/gif" {
		done("", nil, errNotThumbnailable)
		return
	}
	err := m.thumbs.acquire(func(release func()) {
		m.read(row, func(src []byte, err error) {
			if err != nil {
				release()
				done("", nil, err)
				return
			}
			var ctype string
			var out []byte
			m.n.Offload(func() (err error) {
				ctype, out, err = makeThumbnail(src, tr)
				return err
			}, func(err error) {
				release()
				done(ctype, out, err)
			})
		})
	})
	if err != nil {
		done("", nil, err)
	}
}

// thumbLimit bounds the thumbnails being made at once, node-wide: each
// holds a decoded image of up to maxThumbnailDecodeBytes, and a node may
// have 256 MB of RAM. Requests over the limit wait in a short queue, in
// order; past the queue they are refused with 429 M_LIMIT_EXCEEDED
// (retry_after_ms thumbnailRetryAfter), which clients already retry.
// Waiting longer would only hold more source files in memory.
//
// A thumbLimit belongs to the node loop; its zero value is unusable (max
// 0 admits nothing), make it with the maxima.
type thumbLimit struct {
	max, maxQueue int
	running       int
	queue         []func(release func())
}

const (
	// maxThumbnailsRunning is how many thumbnails are made at once.
	maxThumbnailsRunning = 2
	// maxThumbnailsQueued is how many more may wait for a turn.
	maxThumbnailsQueued = 8
	// thumbnailRetryAfter is the retry_after_ms of a refused thumbnail.
	thumbnailRetryAfter = 1000
)

// acquire runs run now if fewer than max are running, else queues it (or
// fails with 429 when the queue is full). run must call release exactly
// once, when its work is over; release starts the next queued run.
func (l *thumbLimit) acquire(run func(release func())) error {
	if l.running >= l.max {
		if len(l.queue) >= l.maxQueue {
			return Errorf(429, ErrCodeLimitExceeded, "too many thumbnails being made; retry later").With("retry_after_ms", thumbnailRetryAfter)
		}
		l.queue = append(l.queue, run)
		return nil
	}
	l.start(run)
	return nil
}

func (l *thumbLimit) start(run func(release func())) {
	l.running++
	released := false
	run(func() {
		if released {
			return
		}
		released = true
		l.running--
		if len(l.queue) > 0 && l.running < l.max {
			next := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.start(next)
		}
	})
}

// makeThumbnail decodes src (after checking its size from the header),
// scales or crops it, and encodes the result. An image already within the
// requested size is returned as it is. It touches no node state.
func makeThumbnail(src []byte, tr thumbRequest) (ctype string, out []byte, err error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", errNotThumbnailable, err)
	}
	pixels := int64(cfg.Width) * int64(cfg.Height)
	if cfg.Width < 1 || cfg.Height < 1 || pixels > maxThumbnailPixels ||
		pixels*decodedBytesPerPixel(cfg.ColorModel, format, src) > maxThumbnailDecodeBytes {
		return "", nil, errThumbnailTooLarge
	}
	ctype = "image/" + format
	if cfg.Width <= tr.width && cfg.Height <= tr.height && !mayBeAnimated(format, src) {
		return ctype, src, nil
	}
	var img image.Image
	switch format {
	case "png":
		img, err = png.Decode(bytes.NewReader(src))
	case "jpeg":
		img, err = jpeg.Decode(bytes.NewReader(src))
	case "gif":
		img, err = gif.Decode(bytes.NewReader(src))
	default:
		err = errors.New("unsupported format " + format)
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", errNotThumbnailable, err)
	}
	// A GIF's first frame may be smaller than the canvas DecodeConfig
	// reported, even empty: thumbnail the frame as decoded, and refuse an
	// empty one.
	b := img.Bounds()
	if b.Empty() {
		return "", nil, fmt.Errorf("%w: first frame is empty", errNotThumbnailable)
	}
	var thumb image.Image
	switch {
	case b.Dx() <= tr.width && b.Dy() <= tr.height:
		thumb = img // a still copy of an animated image (its first frame)
	case tr.crop:
		thumb = cropImage(img, tr.width, tr.height)
	default:
		w, h := fitInside(b.Dx(), b.Dy(), tr.width, tr.height)
		thumb = scaleImage(img, b, w, h)
	}
	var buf bytes.Buffer
	if format == "jpeg" {
		err = jpeg.Encode(&buf, thumb, &jpeg.Options{Quality: thumbnailJPEGQuality})
	} else {
		ctype = "image/png"
		err = png.Encode(&buf, thumb)
	}
	if err != nil {
		return "", nil, fmt.Errorf("encode thumbnail: %w", err)
	}
	return ctype, buf.Bytes(), nil
}

// decodedBytesPerPixel estimates, from the header, the bytes per pixel
// decoding an image takes with the standard library: the decoded image's
// own pixel size (8 for 16-bit colour, 4 for RGBA, 3 for YCbCr, 1 for a
// palette), plus, for a progressive JPEG, the coefficients kept between
// scans (a 4-byte int32 per sample and component).
func decodedBytesPerPixel(model color.Model, format string, src []byte) int64 {
	var n int64
	switch model {
	case color.RGBA64Model, color.NRGBA64Model:
		n = 8
	case color.Gray16Model:
		n = 2
	case color.GrayModel, color.AlphaModel:
		n = 1
	case color.YCbCrModel:
		n = 3
	default:
		if _, ok := model.(color.Palette); ok {
			n = 1
		} else {
			n = 4 // RGBA, NRGBA, CMYK, and anything unforeseen
		}
	}
	if format == "jpeg" && jpegProgressive(src) {
		n += 4 * n
	}
	return n
}

// jpegProgressive reports whether the JPEG src is progressive: its frame
// header (the first SOFn marker segment) is SOF2 (ITU T.81 B.1.1.3,
// table B.1). It walks the marker segments before the first scan, so
// bytes inside other segments (an EXIF thumbnail) are not mistaken for it.
func jpegProgressive(src []byte) bool {
	i := 2 // after SOI
	for i+4 <= len(src) && src[i] == 0xff {
		marker := src[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc:
			return marker == 0xc2 || marker == 0xc6 || marker == 0xca || marker == 0xce
		case marker == 0xda: // start of scan: no frame header seen
			return false
		}
		i += 2 + (int(src[i+2])<<8 | int(src[i+3]))
	}
	return false
}

// mayBeAnimated reports whether src could hold more than one frame: any
// GIF, or a PNG with an APNG animation control chunk. Such an image is
// never served as it is, since a thumbnail must not be animated unless
// asked for.
func mayBeAnimated(format string, src []byte) bool {
	return format == "gif" || format == "png" && bytes.Contains(src, []byte("acTL"))
}

// fitInside is the largest size with the aspect ratio of w×h that fits in
// maxW×maxH (at least 1×1), never larger than w×h. An empty w×h gives
// itself.
func fitInside(w, h, maxW, maxH int) (int, int) {
	if w <= maxW && h <= maxH || w < 1 || h < 1 {
		return w, h
	}
	// Compare maxW/w with maxH/h without floating point.
	if int64(maxW)*int64(h) <= int64(maxH)*int64(w) {
		return maxW, max(1, int(int64(h)*int64(maxW)/int64(w)))
	}
	return max(1, int(int64(w)*int64(maxH)/int64(h))), maxH
}

// cropImage scales img so that it covers w×h with its aspect ratio kept,
// then cuts out the middle w×h. Without scaling up: a side shorter than
// asked stays as it is. An empty image or size gives an empty image.
func cropImage(img image.Image, w, h int) image.Image {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	w, h = min(w, sw), min(h, sh)
	if w < 1 || h < 1 {
		return image.NewRGBA(image.Rectangle{})
	}
	// The source region with the target's aspect ratio, as large as fits.
	rw, rh := sw, int(int64(sw)*int64(h)/int64(w))
	if rh > sh {
		rw, rh = int(int64(sh)*int64(w)/int64(h)), sh
	}
	rw, rh = max(rw, 1), max(rh, 1)
	x0, y0 := b.Min.X+(sw-rw)/2, b.Min.Y+(sh-rh)/2
	return scaleImage(img, image.Rect(x0, y0, x0+rw, y0+rh), w, h)
}

// scaleImage scales the region r of src to w×h (no larger than r) by
// averaging, in premultiplied RGBA, the source pixels each output pixel
// covers. An empty r or size gives an empty image.
func scaleImage(src image.Image, r image.Rectangle, w, h int) *image.RGBA {
	if r.Empty() || w < 1 || h < 1 {
		return image.NewRGBA(image.Rectangle{})
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	sw, sh := r.Dx(), r.Dy()
	for dy := 0; dy < h; dy++ {
		y0, y1 := r.Min.Y+dy*sh/h, r.Min.Y+(dy+1)*sh/h
		if y1 == y0 {
			y1++
		}
		for dx := 0; dx < w; dx++ {
			x0, x1 := r.Min.X+dx*sw/w, r.Min.X+(dx+1)*sw/w
			if x1 == x0 {
				x1++
			}
			var sr, sg, sb, sa, n uint64
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					cr, cg, cb, ca := src.At(x, y).RGBA()
					sr, sg, sb, sa = sr+uint64(cr), sg+uint64(cg), sb+uint64(cb), sa+uint64(ca)
					n++
				}
			}
			i := dst.PixOffset(dx, dy)
			dst.Pix[i+0] = uint8(sr / n >> 8)
			dst.Pix[i+1] = uint8(sg / n >> 8)
			dst.Pix[i+2] = uint8(sb / n >> 8)
			dst.Pix[i+3] = uint8(sa / n >> 8)
		}
	}
	return dst
}
