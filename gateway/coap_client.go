package gateway

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/noise"
)

// CoAPClientConfig configures a CoAPClient.
type CoAPClientConfig struct {
	// Server is the front door's UDP address.
	Server netip.AddrPort
	// ServerName and ServerKey pin the server (its `mxmesh peer show`
	// output). A zero ServerKey means plain CoAP, loopback only.
	ServerName string
	ServerKey  noise.KeyToken
	// Static is the client's Noise key pair; empty means a fresh one.
	Static noise.KeyPair
	// Local is the UDP address to bind; empty means an ephemeral port on
	// the unspecified address (loopback in plain mode).
	Local string
	// Format is how bodies travel: ContentFormatCBOR (the default, MSC3079)
	// or ContentFormatMeshFrame (smaller; mxmesh servers only).
	Format message.MediaType
	// CoAP tunes the engine (link parameters, block size).
	CoAP   coap.Config
	Clock  clock.Clock
	Logger *slog.Logger
}

// CoAPClient speaks the Matrix client API to a CoAP front door the way
// MSC3079 describes: path codes, CBOR bodies with integer keys, the access
// token in option 256 sent once per session. Safe for concurrent use.
type CoAPClient struct {
	udp    *UDPServer
	peer   string
	plain  bool
	format message.MediaType
	mu     sync.Mutex
	token  string
	sent   bool // the server holds our token (MSC3079 stickiness)
}

// clientBindingName is the name a client's Noise identity binding claims:
// "~" alone marks it as a client (noise.ClientPrefix) in the fewest bytes;
// servers with AcceptClients name clients by key.
const clientBindingName = noise.ClientPrefix

// DialCoAP opens the client's socket. No datagram is sent until the first
// request (its Noise handshake carries that request as early data).
func DialCoAP(cfg CoAPClientConfig) (*CoAPClient, error) {
	c := &CoAPClient{plain: cfg.ServerKey.NoiseKey == nil, format: cfg.Format}
	switch c.format {
	case 0:
		c.format = ContentFormatCBOR
	case ContentFormatCBOR, ContentFormatMeshFrame:
	default:
		return nil, fmt.Errorf("gateway: coap client: content format %d: want %d or %d", c.format, ContentFormatCBOR, ContentFormatMeshFrame)
	}
	udp := UDPConfig{Addr: cfg.Local, Node: CoAPNodeConfig{CoAP: cfg.CoAP}, Clock: cfg.Clock, Logger: cfg.Logger}
	if c.plain {
		if udp.Addr == "" {
			udp.Addr = "127.0.0.1:0"
		}
		c.peer = cfg.Server.String()
	} else {
		if udp.Addr == "" {
			udp.Addr = "0.0.0.0:0"
			if cfg.Server.Addr().Is6() && !cfg.Server.Addr().Is4In6() {
				udp.Addr = "[::]:0"
			}
		}
		if err := cfg.ServerKey.Verify(cfg.ServerName); err != nil {
			return nil, fmt.Errorf("gateway: coap client: %w", err)
		}
		rng := clock.SystemRNG()
		kp := cfg.Static
		if kp.Private == nil {
			var err error
			if kp, err = noise.GenerateKeyPair(rng); err != nil {
				return nil, fmt.Errorf("gateway: coap client: %w", err)
			}
		}
		seed := make([]byte, ed25519.SeedSize)
		rng.Read(seed)
		ep, err := noise.New(noise.Config[netip.AddrPort]{ServerName: clientBindingName, Static: kp,
			SigningKey: ed25519.NewKeyFromSeed(seed), Random: rng, Logger: cfg.Logger,
			Link: cfg.CoAP.Link, ExpectsReply: coap.ExpectsReply,
			Peers: []noise.Peer[netip.AddrPort]{{Name: cfg.ServerName, NoiseKey: cfg.ServerKey.NoiseKey,
				SigningKey: cfg.ServerKey.SigningKey, Addr: cfg.Server}}})
		if err != nil {
			return nil, fmt.Errorf("gateway: coap client: %w", err)
		}
		udp.Node.Noise = ep
		c.peer = cfg.ServerName
	}
	s, err := ListenCoAPUDP(udp)
	if err != nil {
		return nil, fmt.Errorf("gateway: coap client: %w", err)
	}
	c.udp = s
	return c, nil
}

// UDP returns the client's socket runner (for traffic counters).
func (c *CoAPClient) UDP() *UDPServer { return c.udp }

// Close closes the socket.
func (c *CoAPClient) Close() error { return c.udp.Close() }

// SetAccessToken sets the token to authenticate with; it goes out once,
// on the next request.
func (c *CoAPClient) SetAccessToken(tok string) {
	c.mu.Lock()
	c.token, c.sent = tok, false
	c.mu.Unlock()
}

// CoAPResponse is a front door's answer, translated back to HTTP terms.
type CoAPResponse struct {
	Code   codes.Code
	Status int    // HTTP status (HTTPStatus(Code))
	JSON   []byte // the body as JSON
	// Errcode is the Matrix errcode of an error answer.
	Errcode string
}

// Err returns the answer as an error when it is not a 2xx.
func (r *CoAPResponse) Err() error {
	if r.Status >= 200 && r.Status < 300 {
		return nil
	}
	return fmt.Errorf("%d %s: %s", r.Status, r.Errcode, r.JSON)
}

// Do sends one API request: path is a full /_matrix path (with an optional
// query), sent as its MSC3079 path code when it has one; body is JSON (nil
// for none), sent as CBOR.
func (c *CoAPClient) Do(ctx context.Context, method, path string, body []byte) (*CoAPResponse, error) {
	code := map[string]codes.Code{"GET": codes.GET, "POST": codes.POST, "PUT": codes.PUT, "DELETE": codes.DELETE}[method]
	if code == 0 {
		return nil, fmt.Errorf("gateway: coap client: method %q", method)
	}
	var payload []byte
	if body != nil {
		var f message.MediaType
		if payload, f = encodeBody(body, replyAs{cf: c.format, frames: codec.FramesLatest}); f != c.format {
			return nil, fmt.Errorf("gateway: coap client %s %s: body not carriable as content format %d", method, path, c.format)
		}
	}
	return exchange(c, ctx, method, path, func() *coap.Message { return c.newRequest(code, path, payload) }, decodeAPIResponse,
		func(r *CoAPResponse) *CoAPResponse { return r })
}

// exchange sends the request build makes, with the sticky access token
// when it is due, and decodes the answer. When the server has forgotten
// the token (it restarted, or this is a new session) and it was not sent,
// the request goes once more with it (MSC3079 "Access Tokens").
func exchange[R any](c *CoAPClient, ctx context.Context, method, path string, build func() *coap.Message,
	decode func(coap.Message) (R, error), api func(R) *CoAPResponse) (R, error) {
	var zero R
	for attempt := 0; ; attempt++ {
		req := build()
		c.mu.Lock()
		withToken := c.token != "" && (!c.sent || attempt > 0)
		if withToken {
			req.Options = req.Options.Add(message.Option{ID: OptionAuthorization, Value: []byte(c.token)})
		}
		c.sent = c.sent || withToken
		c.mu.Unlock()
		m, err := c.udp.Do(ctx, c.peer, req)
		if err != nil {
			return zero, fmt.Errorf("gateway: coap client %s %s: %w", method, path, err)
		}
		resp, err := decode(m)
		if err != nil {
			return zero, fmt.Errorf("gateway: coap client %s %s: %w", method, path, err)
		}
		if r := api(resp); r.Status == 401 && r.Errcode == homeserver.ErrCodeMissingToken && !withToken && c.hasToken() && attempt == 0 {
			continue
		}
		return resp, nil
	}
}

func (c *CoAPClient) hasToken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token != ""
}

// newRequest builds the CoAP request for an API path: the MSC3079 short
// form when there is one, segments percent-decoded into Uri-Path options,
// the body's content format, and Accept when the answer should not be the
// server's default (CBOR).
func (c *CoAPClient) newRequest(code codes.Code, path string, payload []byte) *coap.Message {
	return newAPIRequest(code, path, payload, c.format)
}

func newAPIRequest(code codes.Code, path string, payload []byte, format message.MediaType) *coap.Message {
	short := codec.CompressPath(path)
	p, query, _ := strings.Cut(short, "?")
	m := &coap.Message{Code: code, Payload: payload}
	for seg := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		if v, err := url.PathUnescape(seg); err == nil {
			seg = v
		}
		m.Options = m.Options.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	if query != "" {
		for q := range strings.SplitSeq(query, "&") {
			if v, err := url.QueryUnescape(q); err == nil {
				q = v
			}
			m.Options = m.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
		}
	}
	if payload != nil {
		m.Options, _, _ = m.Options.SetContentFormat(make([]byte, 4), format)
	}
	if format != ContentFormatCBOR {
		m.Options, _, _ = m.Options.SetAccept(make([]byte, 4), format)
	}
	return m
}

func decodeAPIResponse(m coap.Message) (*CoAPResponse, error) {
	return decodeAPIResponseLimit(m, codec.FramesLatest)
}

// decodeAPIResponseLimit is decodeAPIResponse for a side that reads frames
// up to limit.
func decodeAPIResponseLimit(m coap.Message, limit codec.FrameOptions) (*CoAPResponse, error) {
	r := &CoAPResponse{Code: m.Code, Status: HTTPStatus(m.Code), JSON: m.Payload}
	cf, err := m.Options.ContentFormat()
	switch {
	case err == nil && cf == ContentFormatCBOR:
		j, err := codec.Decode(nil, m.Payload, codec.TableMSC3079)
		if err != nil {
			return nil, fmt.Errorf("decode %v answer: %w", m.Code, err)
		}
		r.JSON = j
	case err == nil && cf == ContentFormatMeshFrame:
		j, _, err := codec.DecodeFrameLimit(nil, m.Payload, limit)
		if err != nil {
			return nil, fmt.Errorf("decode %v answer: %w", m.Code, err)
		}
		r.JSON = j
	case err == nil && cf != ContentFormatJSON:
		return nil, fmt.Errorf("answer %v in content format %d", m.Code, cf)
	case len(m.Payload) == 0:
		r.JSON = []byte("{}")
	}
	if r.Status >= 400 {
		var e struct {
			Errcode string `json:"errcode"`
		}
		_ = json.Unmarshal(r.JSON, &e)
		r.Errcode = e.Errcode
	}
	return r, nil
}

// ObserveSync registers an observation of /sync (MSC3079 "HTTP
// long-polling -> CoAP OBSERVE") with the given query (since, filter; no
// timeout needed) and returns the first /sync answer. Each later /sync
// response the server pushes is passed to notify, on the client's loop
// goroutine, which notify must not block. cancel forgets the observation.
func (c *CoAPClient) ObserveSync(ctx context.Context, query string, notify func(*CoAPResponse)) (first *CoAPResponse, cancel func(), err error) {
	path := "/_matrix/client/v3/sync"
	if query != "" {
		path += "?" + query
	}
	req := c.newRequest(codes.GET, path, nil)
	c.mu.Lock()
	if c.token != "" {
		req.Options = req.Options.Add(message.Option{ID: OptionAuthorization, Value: []byte(c.token)})
		c.sent = true
	}
	c.mu.Unlock()
	m, cancel, err := c.udp.Observe(ctx, c.peer, req, func(m coap.Message) {
		if r, err := decodeAPIResponse(m); err == nil {
			notify(r)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: coap client: observe sync: %w", err)
	}
	first, err = decodeAPIResponse(m)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("gateway: coap client: observe sync: %w", err)
	}
	return first, cancel, nil
}
