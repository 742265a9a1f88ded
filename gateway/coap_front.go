package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
)

// CoAP constants of the front door (MSC3079 "HTTP -> CoAP").
const (
	// OptionAuthorization carries the access token (MSC3079 "Access
	// Tokens": option 256, formatted like Uri-Query, sticky per connection).
	OptionAuthorization message.OptionID = 256
	// ContentFormatJSON and ContentFormatCBOR are application/json and
	// application/cbor (RFC 7252 §12.3).
	ContentFormatJSON message.MediaType = 50
	ContentFormatCBOR message.MediaType = 60
	// ContentFormatMeshFrame is a codec frame (codec.EncodeFrame: the mesh
	// key table, zstd with the shipped dictionary when smaller). NOTSPEC:
	// a number from the experimental range (RFC 7252 §12.3), until one is
	// registered; MSC3079 clients never send or accept it.
	ContentFormatMeshFrame message.MediaType = 65060
	// OptionFrameVersions carries the newest codec table and dictionary a
	// side reads, as one opaque byte laid out like a frame header
	// (codec.FrameOptions.VersionsByte: bits 7–4 dictionary, 3–0 table). A
	// request carries it when its sender's limit is not
	// codec.FramesBaseline; a 4.15 answer to a frame the receiver cannot
	// read carries the receiver's limit (doc.go "Frame versions").
	// NOTSPEC: a number from the experimental range (RFC 7252 §12.2);
	// elective and unsafe (§5.4.6), so peers that do not know it ignore it
	// and proxies do not forward it.
	OptionFrameVersions message.OptionID = 65002
	// DefaultMaxSyncWait caps the long-poll of /sync over CoAP.
	DefaultMaxSyncWait = 20 * time.Second
	// DefaultObserveMaxAge is the Max-Age of /sync observation answers and
	// notifications: a quiet observer re-registers this often (RFC 7641
	// §3.3.1). RFC 7252's default of 60 s would cost a /sync round trip
	// a minute on an idle link.
	DefaultObserveMaxAge = 5 * time.Minute
)

// syncPath is /sync after codec.ExpandPath; MSC3079 path code 7.
const syncPath = "/_matrix/client/v3/sync"

// CoAPFrontDoorConfig configures a CoAPFrontDoor.
type CoAPFrontDoorConfig struct {
	// Node serves the requests.
	Node *homeserver.Node
	// Post runs f inside the node's loop (homeserver.Loop.Post in real
	// mode). Nil calls f directly: for a caller already inside the loop,
	// such as the simulator.
	Post func(f func()) error
	// MaxSyncWait caps the timeout of a /sync long-poll, so that an
	// exchange is answered (as a separate response, RFC 7252 §5.2.2) well
	// within EXCHANGE_LIFETIME; default DefaultMaxSyncWait.
	MaxSyncWait time.Duration
	// ObserveMaxAge is the Max-Age of /sync observations; default
	// DefaultObserveMaxAge.
	ObserveMaxAge time.Duration
	// Frames, when set, is the newest table and dictionary this door reads
	// and writes (it may only be older than codec.FramesLatest); nil
	// means codec.FramesLatest.
	Frames *codec.FrameOptions
	Logger *slog.Logger
}

// CoAPFrontDoor translates CoAP requests into homeserver.Requests and the
// answers back (MSC3079). It defines no endpoint: every path goes to the
// node's router. Use it as the fallback handler of a CoAPNode (Handler).
//
// Concurrency: ServeCoAP runs on the CoAPNode's loop (it alone touches the
// sticky tokens); the node's answers and the /sync observations run in the
// node loop (through Post). Nothing else may call it.
type CoAPFrontDoor struct {
	node    *homeserver.Node
	post    func(f func()) error
	maxSync time.Duration
	maxAge  uint32 // seconds
	max     int64
	frames  codec.FrameOptions
	log     *slog.Logger
	// tokens holds each peer's last Authorization option (MSC3079: the
	// server MUST reuse it when a request omits it); tokenOrder lists the
	// peers oldest first, to forget beyond maxStickyTokens.
	tokens     map[string]string
	tokenOrder []string
	// observations are the /sync observations by peer and token; only the
	// node loop touches it.
	observations map[string]*syncObservation
}

// syncObservation is one client observing /sync (MSC3079 "HTTP
// long-polling -> CoAP OBSERVE"): the front door long-polls the node on
// its behalf and pushes each new /sync response as a notification.
type syncObservation struct {
	stopped bool
	since   string // next_batch of the last answer or notification sent
}

// replyAs is how to encode the answers to one request: the content format,
// and for mesh frames the newest table and dictionary both sides read.
type replyAs struct {
	cf     message.MediaType
	frames codec.FrameOptions
}

// maxStickyTokens bounds the remembered access tokens; a forgotten client
// gets 401 M_MISSING_TOKEN and sends its token again.
const maxStickyTokens = 4096

// NewCoAPFrontDoor returns a front door for cfg.Node.
func NewCoAPFrontDoor(cfg CoAPFrontDoorConfig) (*CoAPFrontDoor, error) {
	if cfg.Node == nil {
		return nil, errors.New("gateway: coap front door: no node")
	}
	f := &CoAPFrontDoor{node: cfg.Node, post: cfg.Post, maxSync: cfg.MaxSyncWait, log: cfg.Logger,
		max: cfg.Node.Config().MaxRequestBytes, tokens: map[string]string{}, observations: map[string]*syncObservation{}}
	if f.post == nil {
		f.post = func(fn func()) error { fn(); return nil }
	}
	f.frames = codec.FramesLatest
	if cfg.Frames != nil {
		f.frames = f.frames.Min(*cfg.Frames)
	}
	if f.maxSync <= 0 {
		f.maxSync = DefaultMaxSyncWait
	}
	if cfg.ObserveMaxAge <= 0 {
		cfg.ObserveMaxAge = DefaultObserveMaxAge
	}
	f.maxAge = uint32(cfg.ObserveMaxAge.Seconds())
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f, nil
}

func (f *CoAPFrontDoor) remember(peer, tok string) {
	if _, known := f.tokens[peer]; !known {
		f.tokenOrder = append(f.tokenOrder, peer)
		if len(f.tokenOrder) > maxStickyTokens {
			delete(f.tokens, f.tokenOrder[0])
			f.tokenOrder = f.tokenOrder[1:]
		}
	}
	f.tokens[peer] = tok
}

// ServeCoAP translates one request, has the node serve it, and replies
// with the translated answer. It never blocks: the node answers on its
// own loop, later.
func (f *CoAPFrontDoor) ServeCoAP(r *CoAPRequest, reply func(coap.Message)) {
	req, accept, cerr := f.translate(r)
	if cerr != nil {
		reply(*cerr)
		return
	}
	if r.Observe && r.Notify != nil && req.Path == syncPath {
		if err := f.post(func() { f.observeSync(r, req, accept, reply) }); err != nil {
			reply(f.encodeResponse(r.Msg.Code, homeserver.Errorf(503, homeserver.ErrCodeUnknown, "server is shutting down").Response(), accept))
		}
		return
	}
	packed := isPackedTxn(r)
	if err := f.post(func() {
		if packed {
			// Unpacking reads the node's room state: inside the loop.
			body, err := unpackTransaction(r.Msg.Payload, f.node.MeshRoomContext, f.frames)
			switch {
			case errors.Is(err, codec.ErrNotNegotiated):
				reply(*f.versionsError(accept, err))
				return
			case errors.Is(err, codec.ErrStateMismatch):
				f.log.Debug("coap: packed transaction does not rebuild", "peer", r.Peer, "err", err)
				reply(*coapError(codes.Conflict, accept, ErrCodeStateMismatch, err.Error()))
				return
			case err != nil:
				reply(*coapError(codes.BadRequest, accept, homeserver.ErrCodeNotJSON, err.Error()))
				return
			}
			req.Body = body
		}
		f.node.Dispatch(req, func(resp homeserver.Response) {
			reply(f.encodeResponse(r.Msg.Code, resp, accept))
		})
	}); err != nil {
		reply(f.encodeResponse(r.Msg.Code, homeserver.Errorf(503, homeserver.ErrCodeUnknown, "server is shutting down").Response(), accept))
	}
}

// translate builds the homeserver.Request:
//   - method from the CoAP code (GET, POST, PUT, DELETE; RFC 7252 §5.8);
//   - path: Uri-Path options, each percent-encoded as one segment (so a "/"
//     inside a parameter stays inside it), then MSC3079 path codes
//     expanded (codec.ExpandPath); full /_matrix paths pass unchanged;
//   - query: each Uri-Query option is one "name=value" (RFC 7252 §6.5);
//   - access token: option 256, else the one this peer sent last (MSC3079
//     "Access Tokens"), else the access_token query parameter;
//   - server: PeerServer is the Noise peer's name when the session's peer
//     is a pinned server (CoAPRequest.Server), so federation routes need no
//     X-Matrix (doc.go "Federation over the mesh"); never for clients;
//   - body: Content-Format 60 is CBOR with MSC3079's integer keys,
//     decoded to JSON (codec.TableMSC3079); 65060 is a codec frame; 65061
//     a packed federation transaction from a pinned server, unpacked in
//     the node loop (mesh_pack.go); 50 or none is JSON; a media format
//     (0, 21–23, 41, 42) is passed raw with its media type as
//     ContentType, for uploads (coap_front_media.go).
//
// It returns the content format to answer with, or a CoAP error answer.
func (f *CoAPFrontDoor) translate(r *CoAPRequest) (*homeserver.Request, replyAs, *coap.Message) {
	m := &r.Msg
	// The peer reads what it advertised, or the baseline when silent.
	peer := codec.FramesBaseline
	if v, err := m.Options.GetBytes(OptionFrameVersions); err == nil && len(v) == 1 {
		peer = codec.ParseVersions(v[0])
	} // RFC 7252 §5.4.3: a value of another length is an unrecognized (elective) option: ignored.
	accept := replyAs{cf: ContentFormatCBOR, frames: f.frames.Min(peer)}
	method := ""
	switch m.Code {
	case codes.GET:
		method = "GET"
	case codes.POST:
		method = "POST"
	case codes.PUT:
		method = "PUT"
	case codes.DELETE:
		method = "DELETE"
	default:
		return nil, accept, coapError(codes.MethodNotAllowed, accept, homeserver.ErrCodeUnrecognized, "method not allowed")
	}
	format, hasFormat := ContentFormatJSON, false
	if cf, err := m.Options.ContentFormat(); err == nil {
		format, hasFormat = cf, true
	}
	if a, err := m.Options.Accept(); err == nil {
		accept.cf = a
	} else if hasFormat && format == ContentFormatJSON || !hasFormat && len(m.Payload) > 0 {
		// MSC3079: a server MUST NOT answer a JSON request with CBOR unless
		// the client accepts CBOR.
		accept.cf = ContentFormatJSON
	}
	if accept.cf != ContentFormatJSON && accept.cf != ContentFormatCBOR && accept.cf != ContentFormatMeshFrame {
		accept.cf = ContentFormatCBOR
		return nil, accept, coapError(codes.NotAcceptable, accept, homeserver.ErrCodeUnrecognized, "only application/json (50), application/cbor (60) and mesh frames (65060) are served")
	}

	var segs []string
	for _, o := range m.Options {
		if o.ID == message.URIPath {
			segs = append(segs, url.PathEscape(string(o.Value)))
		}
	}
	path, err := codec.ExpandPath("/" + strings.Join(segs, "/"))
	if err != nil {
		return nil, accept, coapError(codes.NotFound, accept, homeserver.ErrCodeUnrecognized, err.Error())
	}
	query := url.Values{}
	for _, o := range m.Options {
		if o.ID == message.URIQuery {
			k, v, _ := strings.Cut(string(o.Value), "=")
			query.Add(k, v)
		}
	}
	if path == syncPath {
		f.capSyncTimeout(query)
	}
	req := &homeserver.Request{Method: method, Path: path, Query: query, RemoteIP: remoteKey(r.Peer)}
	if r.Server {
		// The Noise session authenticated a pinned server: federation
		// routes take it as the origin without X-Matrix (mesh_remote.go,
		// doc.go "Federation over the mesh"). Only the session decides;
		// nothing in the packet can set it.
		req.PeerServer = r.Peer
	}

	if v, err := m.Options.GetBytes(OptionAuthorization); err == nil {
		tok := strings.TrimSpace(string(v))
		if scheme, rest, ok := strings.Cut(tok, " "); ok && strings.EqualFold(scheme, "Bearer") {
			tok = strings.TrimSpace(rest)
		}
		f.remember(r.Peer, tok)
		req.AccessToken = tok
	} else if tok, ok := f.tokens[r.Peer]; ok {
		req.AccessToken = tok
	} else {
		req.AccessToken = query.Get("access_token")
	}

	if hasFormat {
		// A media body (an upload) keeps its type, even when empty.
		t, err := rawMediaType(format, m.Options)
		switch {
		case err == nil:
			req.ContentType = t
		case !errors.Is(err, errNotRaw):
			return nil, accept, coapError(codes.BadRequest, accept, homeserver.ErrCodeInvalidParam, err.Error())
		case format == ContentFormatJSON:
			req.ContentType = "application/json"
		}
	}
	if len(m.Payload) > 0 {
		if f.max > 0 && int64(len(m.Payload)) > f.max {
			return nil, accept, coapError(codes.RequestEntityTooLarge, accept, homeserver.ErrCodeTooLarge, fmt.Sprintf("request body exceeds %d bytes", f.max))
		}
		switch format {
		case ContentFormatJSON:
			req.Body = m.Payload
		case ContentFormatCBOR:
			j, err := codec.Decode(nil, m.Payload, codec.TableMSC3079)
			if err != nil {
				return nil, accept, coapError(codes.BadRequest, accept, homeserver.ErrCodeNotJSON, "request body is not CBOR this server reads: "+err.Error())
			}
			req.Body = j
		case ContentFormatMeshFrame:
			j, _, err := codec.DecodeFrameLimit(nil, m.Payload, f.frames)
			if errors.Is(err, codec.ErrNotNegotiated) {
				return nil, accept, f.versionsError(accept, err)
			}
			if err != nil {
				return nil, accept, coapError(codes.BadRequest, accept, homeserver.ErrCodeNotJSON, "request body is not a frame this server reads: "+err.Error())
			}
			req.Body = j
		case ContentFormatPackedTxn:
			if !isPackedTxn(r) {
				return nil, accept, coapError(codes.UnsupportedMediaType, accept, homeserver.ErrCodeNotJSON, "packed transactions are for PUT federation/v1/send from pinned mesh servers")
			}
			// ServeCoAP unpacks it inside the node loop.
		default:
			if req.ContentType == "" {
				return nil, accept, coapError(codes.UnsupportedMediaType, accept, homeserver.ErrCodeNotJSON,
					"request bodies must be application/json (50), application/cbor (60), or media as 0, 21, 22, 23, 41 or 42")
			}
			req.Body = m.Payload // media: the bytes as sent
		}
	}
	return req, accept, nil
}

// observeSync serves a GET /sync with Observe 0 (MSC3079): the first
// answer is an immediate /sync (its timeout dropped) and registers the
// observer; then the front door long-polls from its next_batch and pushes
// every response that moved on, as a confirmable notification that looks
// exactly like a /sync response. A registration with the same peer and
// token replaces the earlier one (RFC 7641 §4.1). The polling stops when
// the observer is gone (deregistered, reset, unacknowledged) or a /sync
// fails; the failure is pushed as the final notification. Runs in the
// node loop.
func (f *CoAPFrontDoor) observeSync(r *CoAPRequest, req *homeserver.Request, accept replyAs, reply func(coap.Message)) {
	key := r.Peer + "\x00" + string(r.Token)
	first := *req
	first.Query = cloneValues(req.Query)
	first.Query.Del("timeout")
	if old := f.observations[key]; old != nil {
		// A re-registration (RFC 7641 §3.3.1) repeats the original query;
		// go on from what this observer was last sent instead of
		// repeating events.
		old.stopped = true
		if old.since != "" {
			first.Query.Set("since", old.since)
		}
	}
	o := &syncObservation{}
	f.observations[key] = o
	f.node.Dispatch(&first, func(resp homeserver.Response) {
		m, next := f.encodeSync(resp, accept)
		reply(m)
		if next == "" {
			f.endObservation(key, o)
			return
		}
		o.since = next
		f.pollSync(key, o, r, req, next, accept)
	})
}

func (f *CoAPFrontDoor) pollSync(key string, o *syncObservation, r *CoAPRequest, base *homeserver.Request, since string, accept replyAs) {
	if o.stopped {
		return
	}
	q := cloneValues(base.Query)
	q.Set("since", since)
	q.Set("timeout", strconv.FormatInt(f.maxSync.Milliseconds(), 10))
	poll := &homeserver.Request{Method: "GET", Path: syncPath, Query: q, AccessToken: base.AccessToken, RemoteIP: base.RemoteIP}
	f.node.Dispatch(poll, func(resp homeserver.Response) {
		if o.stopped {
			return
		}
		m, next := f.encodeSync(resp, accept)
		var push *coap.Message
		if next != since { // moved on (or failed: next is "")
			push = &m
		}
		r.Notify(push, func(delivered, observing bool) {
			_ = f.post(func() {
				switch {
				case o.stopped:
				case delivered && next != "":
					o.since = next
					f.pollSync(key, o, r, base, next, accept)
				case !delivered && observing && next != "":
					// Lost, but the client still observes: the next
					// notification carries everything since the last one
					// it has (RFC 7641 §4.5: notifications are state).
					f.log.Debug("coap: sync notification not delivered; resending from the last delivered", "peer", r.Peer)
					f.pollSync(key, o, r, base, o.since, accept)
				default:
					f.endObservation(key, o)
				}
			})
		})
	})
}

func (f *CoAPFrontDoor) endObservation(key string, o *syncObservation) {
	o.stopped = true
	if f.observations[key] == o {
		delete(f.observations, key)
	}
}

// encodeSync encodes a /sync answer and returns its next_batch ("" when
// it failed).
func (f *CoAPFrontDoor) encodeSync(resp homeserver.Response, accept replyAs) (coap.Message, string) {
	m, j := f.encode(codes.GET, resp, accept)
	if resp.Status != 200 {
		return m, ""
	}
	m.Options, _, _ = m.Options.SetUint32(make([]byte, 4), message.MaxAge, f.maxAge)
	var b struct {
		NextBatch string `json:"next_batch"`
	}
	if json.Unmarshal(j, &b) != nil {
		return m, ""
	}
	return m, b.NextBatch
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// capSyncTimeout bounds the long-poll so the CoAP exchange ends well
// within EXCHANGE_LIFETIME; the client polls again with next_batch.
// NOTSPEC: the client-server API lets the client choose any timeout.
func (f *CoAPFrontDoor) capSyncTimeout(q url.Values) {
	if ms, err := strconv.ParseInt(q.Get("timeout"), 10, 64); err == nil && ms > f.maxSync.Milliseconds() {
		q.Set("timeout", strconv.FormatInt(f.maxSync.Milliseconds(), 10))
	}
}

// isPackedTxn says r is a packed federation transaction (mesh_pack.go) a
// pinned server may send: PUT /_matrix/federation/v1/send/{txnId}.
func isPackedTxn(r *CoAPRequest) bool {
	cf, err := r.Msg.Options.ContentFormat()
	if err != nil || cf != ContentFormatPackedTxn || !r.Server || r.Msg.Code != codes.PUT {
		return false
	}
	var segs []string
	for _, o := range r.Msg.Options {
		if o.ID == message.URIPath {
			segs = append(segs, string(o.Value))
		}
	}
	return len(segs) == 2 && segs[0] == "~0" ||
		len(segs) == 5 && strings.Join(segs[:4], "/") == "_matrix/federation/v1/send"
}

// remoteKey is what the node rate-limits by: the IP in plain mode, the
// authenticated peer name (a server name or a client's key) under Noise.
func remoteKey(peer string) string {
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		return ap.Addr().String()
	}
	return peer
}

// encodeResponse turns a node answer into a CoAP response: the status by
// statusCode, the body as CBOR (MSC3079 keys) or JSON as accept says, or a
// media body as its bytes (encodeRaw).
func (f *CoAPFrontDoor) encodeResponse(method codes.Code, resp homeserver.Response, accept replyAs) coap.Message {
	m, _ := f.encode(method, resp, accept)
	return m
}

// encode is encodeResponse, also returning the body as JSON.
func (f *CoAPFrontDoor) encode(method codes.Code, resp homeserver.Response, accept replyAs) (coap.Message, []byte) {
	if raw, ok := resp.Body.(*homeserver.RawBody); ok {
		return f.encodeRaw(method, resp.Status, raw, accept), nil
	}
	var j []byte
	if resp.Body == nil {
		j = []byte("{}")
	} else {
		var err error
		if j, err = json.Marshal(resp.Body); err != nil {
			f.log.Error("coap: response does not marshal", "err", err)
			resp.Status, j = 500, []byte(`{"errcode":"M_UNKNOWN","error":"internal server error"}`)
		}
	}
	m := coap.Message{Code: statusCode(method, resp.Status)}
	var cf message.MediaType
	if m.Payload, cf = encodeBody(j, accept); cf != accept.cf {
		f.log.Debug("coap: response not carriable as CBOR, sent as JSON", "status", resp.Status)
	}
	if cf == ContentFormatJSON {
		m.Payload = j
	}
	m.Options, _, _ = m.Options.SetContentFormat(make([]byte, 4), cf)
	if resp.Status == 429 {
		if b, ok := resp.Body.(map[string]any); ok {
			if ms, ok := b["retry_after_ms"].(int64); ok && ms > 0 {
				// RFC 8516 §2: Max-Age says when to retry.
				m.Options, _, _ = m.Options.SetUint32(make([]byte, 4), message.MaxAge, uint32((ms+999)/1000))
			}
		}
	}
	return m, j
}

// versionsError is the 4.15 answer to a frame in a table or dictionary
// newer than this door reads: OptionFrameVersions carries the door's limit,
// and the sender resends in what both read (doc.go "Frame versions").
func (f *CoAPFrontDoor) versionsError(accept replyAs, err error) *coap.Message {
	m := coapError(codes.UnsupportedMediaType, accept, homeserver.ErrCodeNotJSON, err.Error())
	b, _ := f.frames.VersionsByte() // f.frames ≤ codec.FramesLatest: in range
	m.Options = m.Options.Add(message.Option{ID: OptionFrameVersions, Value: []byte{b}})
	return m
}

func coapError(code codes.Code, accept replyAs, errcode, msg string) *coap.Message {
	j, _ := json.Marshal(map[string]string{"errcode": errcode, "error": msg})
	m := coap.Message{Code: code}
	var cf message.MediaType
	if m.Payload, cf = encodeBody(j, accept); cf == ContentFormatJSON {
		m.Payload = j
	}
	m.Options, _, _ = m.Options.SetContentFormat(make([]byte, 4), cf)
	return &m
}

// encodeBody encodes JSON j as the content format accept asks for, mesh
// frames in accept.frames. JSON that CBOR cannot carry (a float, say, in
// account data) falls back to JSON: it returns nil and ContentFormatJSON,
// and the caller sends j.
func encodeBody(j []byte, accept replyAs) ([]byte, message.MediaType) {
	var out []byte
	var err error
	switch accept.cf {
	case ContentFormatCBOR:
		out, _, err = codec.Encode(nil, j, codec.TableMSC3079)
	case ContentFormatMeshFrame:
		out, _, err = codec.EncodeFrame(nil, j, accept.frames)
	default:
		return nil, ContentFormatJSON
	}
	if err != nil {
		return nil, ContentFormatJSON
	}
	return out, accept.cf
}

// statusCode maps an HTTP status to a CoAP response code as RFC 8075 §7
// does for HTTP-to-CoAP proxies, with 4.09 (RFC 8132) and 4.29 (RFC
// 8516). MSC3079 names no table of its own; the Matrix errcode in the body
// carries the detail.
func statusCode(method codes.Code, status int) codes.Code {
	switch status {
	case 200:
		switch method {
		case codes.GET:
			return codes.Content
		case codes.DELETE:
			return codes.Deleted
		}
		return codes.Changed
	case 201:
		return codes.Created
	case 204:
		return codes.Changed
	case 400:
		return codes.BadRequest
	case 401:
		return codes.Unauthorized
	case 403:
		return codes.Forbidden
	case 404:
		return codes.NotFound
	case 405:
		return codes.MethodNotAllowed
	case 406:
		return codes.NotAcceptable
	case 409:
		return codes.Conflict
	case 412:
		return codes.PreconditionFailed
	case 413:
		return codes.RequestEntityTooLarge
	case 415:
		return codes.UnsupportedMediaType
	case 422:
		return codes.UnprocessableEntity
	case 429:
		return codes.TooManyRequests
	case 501:
		return codes.NotImplemented
	case 502:
		return codes.BadGateway
	case 503:
		return codes.ServiceUnavailable
	case 504:
		return codes.GatewayTimeout
	}
	switch {
	case status >= 200 && status < 300:
		return codes.Content
	case status >= 400 && status < 500:
		return codes.BadRequest
	}
	return codes.InternalServerError
}

// HTTPStatus maps a CoAP response code back to the HTTP status a client
// of the front door reports (the inverse of the table above).
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.Content, codes.Changed, codes.Deleted, codes.Valid:
		return 200
	case codes.Created:
		return 201
	}
	class, detail := int(c>>5), int(c&0x1f)
	if class == 4 || class == 5 {
		return class*100 + detail
	}
	return 500
}
