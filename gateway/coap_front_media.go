package gateway

// Media over the CoAP front door: the content repository
// (homeserver/media*.go) for low-bandwidth clients.
//
// NOTSPEC: MSC3079 leaves media out ("Media endpoints are not covered by
// this proposal. Clients will have to use the standard HTTP CS API to
// upload or download files."). A radio link may be the only link a client
// has, so the front door carries the media endpoints too, as RFC 8075
// maps HTTP bodies to CoAP: the bytes are the payload, unchanged, and the
// Content-Type becomes a Content-Format (RFC 7252 §5.10.3, §12.3).
//
//   - Content formats. A media type with a registered CoAP Content-Format
//     goes as that number: text/plain; charset=utf-8 0, image/gif 21,
//     image/jpeg 22, image/png 23, application/xml 41,
//     application/octet-stream 42 (IANA "CoAP Content-Formats"). Every
//     other type goes as 42 with the exact media type (parameters
//     included) in OptionMediaType (65004), at most maxMediaTypeLen bytes.
//     application/json and application/cbor media go the same way, as 42
//     plus the option, never as 50 or 60: on this door 50, 60, 65060 and
//     65061 always mean an API object, so a client never mistakes a file
//     for one (nor does the door run a file through the JSON ⇄ CBOR
//     translation).
//   - Downloads (GET …/media/download/…, …/thumbnail/…, and the
//     deprecated /_matrix/media/v3 ones): a homeserver.RawBody answer is
//     sent as its bytes with the content format above (the federation
//     media API's multipart/mixed answer too, as 42 and its type, though
//     MeshRemote does not read raw answers yet). Bodies larger than a
//     block travel block-wise (RFC 7959 §2.4: the coap endpoint keeps the
//     body for EXCHANGE_LIFETIME and serves it with an ETag and Size2; the
//     client keeps NSTART block requests in flight). NOTSPEC:
//     Content-Disposition and the browser security headers of the HTTP
//     answer (client-server API "GET /_matrix/client/v1/media/download")
//     are not carried: they protect browsers, which cannot speak CoAP, and
//     the file name is in the event that carries the mxc:// URI (its
//     "filename" or "body"). NOTSPEC: the Accept option
//     chooses the encoding of API objects (error answers included); a media
//     body is not one and goes in its own format whatever Accept says,
//     where RFC 7252 §5.10.4 would answer 4.06.
//   - Size. A raw answer larger than max_request_bytes (default 1 MiB, the
//     coap endpoint's default body bound too) is refused with 4.13
//     M_TOO_LARGE instead of being held in memory for EXCHANGE_LIFETIME
//     and trickled over the radio; thumbnails are the way to show images
//     on a slow link. NOTSPEC: 4.13 (like HTTP 413) names a request body;
//     CoAP has no code for an answer too large to carry, and M_TOO_LARGE
//     is the errcode Matrix uses for oversized media.
//   - Uploads (POST /_matrix/media/v3/upload, PUT …/upload/{s}/{id}): a
//     request body in one of the formats above is passed to the node raw,
//     with its media type as homeserver.Request.ContentType (from
//     OptionMediaType with 42, else the format's own type); large bodies
//     come in Block1 blocks (RFC 7959 §2.5), reassembled by the coap
//     endpoint. OptionMediaType beside another media format is 4.00
//     M_INVALID_PARAM (beside an API format it is ignored, as elective
//     options may be); an unknown format stays 4.15. The body limit stays
//     max_request_bytes, not media.max_upload_bytes (50 MiB): a 50 MiB
//     upload would hold a radio channel for hours, so large files belong
//     on the HTTP front door. A raw body sent to a JSON endpoint is
//     refused there as over HTTP (400 M_NOT_JSON).
//   - Paths. Full /_matrix paths are always accepted (MSC3079); the mesh
//     path codes "~V" (client v1 media download), "~W" (thumbnail) and
//     "~X" (upload) save 30, 31 and 21 bytes in each block of a
//     block-wise transfer, which repeats the path (codec/paths.go). Other
//     media paths go in full.

import (
	"context"
	"errors"
	"fmt"
	"mime"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/homeserver"
)

const (
	// OptionMediaType carries the exact media type of a raw body whose
	// type has no registered Content-Format, beside Content-Format 42, as a
	// string like Content-Type. NOTSPEC: a number from the experimental
	// range (RFC 7252 §12.2); elective and safe-to-forward (§5.4.6), like
	// Content-Format, so a peer that does not know it still has the bytes
	// as application/octet-stream.
	OptionMediaType message.OptionID = 65004
	// ContentFormatOctetStream is application/octet-stream (RFC 7252
	// §12.3).
	ContentFormatOctetStream message.MediaType = 42
	// maxMediaTypeLen bounds OptionMediaType; a longer type is sent as
	// plain application/octet-stream.
	maxMediaTypeLen = 255
)

// rawFormats are the registered CoAP Content-Formats a media body may
// travel as (IANA "CoAP Content-Formats"; RFC 7252 §12.3), with their
// media types in the canonical form of mime.FormatMediaType.
var rawFormats = map[message.MediaType]string{
	0:                        "text/plain; charset=utf-8",
	21:                       "image/gif",
	22:                       "image/jpeg",
	23:                       "image/png",
	41:                       "application/xml",
	ContentFormatOctetStream: "application/octet-stream",
}

// rawFormatOf is rawFormats inverted.
var rawFormatOf = func() map[string]message.MediaType {
	m := make(map[string]message.MediaType, len(rawFormats))
	for cf, t := range rawFormats {
		m[t] = cf
	}
	return m
}()

// MediaFormat returns how a body of media type t travels: its registered
// Content-Format, or 42 and the type for OptionMediaType ("" when 42 says
// it all, or the type is too long to carry).
func MediaFormat(t string) (message.MediaType, string) {
	canon := t
	if mt, params, err := mime.ParseMediaType(t); err == nil {
		if c := mime.FormatMediaType(mt, params); c != "" {
			canon = c
		}
	}
	if cf, ok := rawFormatOf[canon]; ok {
		return cf, ""
	}
	if canon == "" || len(canon) > maxMediaTypeLen {
		return ContentFormatOctetStream, ""
	}
	return ContentFormatOctetStream, canon
}

// errNotRaw: a content format that is neither an API encoding nor one a
// media body travels as.
var errNotRaw = errors.New("not a media content format")

// rawMediaType returns the media type of a raw request or answer body in
// content format cf: OptionMediaType with 42, else the format's own type.
func rawMediaType(cf message.MediaType, opts message.Options) (string, error) {
	t, ok := rawFormats[cf]
	if !ok {
		return "", errNotRaw
	}
	if v, err := opts.GetBytes(OptionMediaType); err == nil {
		if cf != ContentFormatOctetStream {
			return "", fmt.Errorf("the media type option (%d) refines Content-Format %d only, not %d", OptionMediaType, ContentFormatOctetStream, cf)
		}
		t = string(v)
	}
	return t, nil
}

// encodeRaw turns a RawBody answer into a CoAP response carrying the bytes
// as they are (see the file comment).
func (f *CoAPFrontDoor) encodeRaw(method codes.Code, status int, raw *homeserver.RawBody, accept replyAs) coap.Message {
	if f.max > 0 && int64(len(raw.Data)) > f.max {
		return *coapError(codes.RequestEntityTooLarge, accept, homeserver.ErrCodeTooLarge,
			fmt.Sprintf("the content is %d bytes; this CoAP front door carries at most %d (ask for a thumbnail, or use HTTP)", len(raw.Data), f.max))
	}
	m := coap.Message{Code: statusCode(method, status), Payload: raw.Data}
	cf, t := MediaFormat(raw.Header["Content-Type"])
	m.Options, _, _ = m.Options.SetContentFormat(make([]byte, 4), cf)
	if t != "" {
		m.Options = m.Options.Add(message.Option{ID: OptionMediaType, Value: []byte(t)})
	}
	return m
}

// MediaResponse is a front door's answer to a media request: the bytes
// and media type of a 2xx raw body, or an API object (an upload's
// content_uri, any error) in the embedded CoAPResponse.
type MediaResponse struct {
	CoAPResponse
	// Raw says the answer is a media body: Data and MediaType are set,
	// JSON is not.
	Raw       bool
	Data      []byte
	MediaType string
}

// DoMedia sends one request whose body (nil for none) is media of type
// mediaType, raw, with the Content-Format and OptionMediaType MediaFormat
// gives, and reads an answer that may be a media body. path is a full
// /_matrix path, sent as its path code when it has one. Errors come back
// in the client's format, as for Do.
func (c *CoAPClient) DoMedia(ctx context.Context, method, path, mediaType string, body []byte) (*MediaResponse, error) {
	code := map[string]codes.Code{"GET": codes.GET, "POST": codes.POST, "PUT": codes.PUT, "DELETE": codes.DELETE}[method]
	if code == 0 {
		return nil, fmt.Errorf("gateway: coap client: method %q", method)
	}
	return exchange(c, ctx, method, path, func() *coap.Message { return newMediaRequest(code, path, mediaType, body, c.format) },
		decodeMediaResponse, func(r *MediaResponse) *CoAPResponse { return &r.CoAPResponse })
}

// newMediaRequest is newAPIRequest for a media body (nil: none) of type
// mediaType; format is how the client wants API objects (Accept).
func newMediaRequest(code codes.Code, path, mediaType string, body []byte, format message.MediaType) *coap.Message {
	req := newAPIRequest(code, path, nil, format)
	if body != nil {
		req.Payload = body
		cf, t := MediaFormat(mediaType)
		req.Options, _, _ = req.Options.SetContentFormat(make([]byte, 4), cf)
		if t != "" {
			req.Options = req.Options.Add(message.Option{ID: OptionMediaType, Value: []byte(t)})
		}
	}
	return req
}

// decodeMediaResponse reads a 2xx answer in a media content format as raw
// bytes, anything else as an API answer.
func decodeMediaResponse(m coap.Message) (*MediaResponse, error) {
	if cf, err := m.Options.ContentFormat(); err == nil && HTTPStatus(m.Code)/100 == 2 {
		t, err := rawMediaType(cf, m.Options)
		switch {
		case err == nil:
			return &MediaResponse{CoAPResponse: CoAPResponse{Code: m.Code, Status: HTTPStatus(m.Code)},
				Raw: true, Data: m.Payload, MediaType: t}, nil
		case !errors.Is(err, errNotRaw):
			return nil, fmt.Errorf("answer %v: %w", m.Code, err)
		}
	}
	r, err := decodeAPIResponse(m)
	if err != nil {
		return nil, err
	}
	return &MediaResponse{CoAPResponse: *r}, nil
}
