package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
)

// MeshRunner runs f on the loop that owns a CoAPNode, with the node and the
// current time, and returns at once (UDPServer.Go). It fails when that loop
// is gone; f then never runs.
type MeshRunner func(f func(n *CoAPNode, now time.Time)) error

// MeshRemoteConfig configures a MeshRemote.
type MeshRemoteConfig struct {
	// Peers are the server names reached over the mesh: the pinned mesh
	// peers (config "mesh.peers").
	Peers []string
	// Post runs f inside the homeserver node's loop (homeserver.Loop.Post
	// in real mode; a zero-delay timer of the node's clock when one driver
	// runs everything). Required: completions never run anywhere else.
	Post func(f func()) error
	// Run reaches the CoAP node; it may be set later with Attach (serve
	// builds the node, and so the Remote, before the socket).
	Run MeshRunner
	// Contexts, when set, packs the PDUs of outbound transactions against
	// the shared room state (mesh_pack.go); it may be set later with
	// SetRoomContexts. Nil sends every PDU context-free.
	Contexts RoomContexts
	// Frames, when set, is the newest codec table and dictionary this side
	// reads and writes (it may only be older than codec.FramesLatest); nil
	// means codec.FramesLatest.
	Frames *codec.FrameOptions
	Logger *slog.Logger
}

// ErrMeshDetached: a mesh request while no CoAP node is attached (the
// listener is not up yet, or is closed).
var ErrMeshDetached = errors.New("gateway: mesh transport not attached")

// MeshRemote is the homeserver.Remote of the mesh: each federation request
// becomes one CoAP request to the peer's Noise session (doc.go "Federation
// over the mesh"), and its answer an OutboundResponse posted into the node
// loop, exactly as FederationRemote does for HTTPS. No X-Matrix header is
// sent: the Noise session authenticates us to the peer, which sets
// homeserver.Request.PeerServer.
//
// Do is safe for concurrent use and never blocks.
type MeshRemote struct {
	post  func(func()) error
	log   *slog.Logger
	peers []string // sorted
	// frames is this side's limit (MeshRemoteConfig.Frames).
	frames codec.FrameOptions

	mu       sync.Mutex
	run      MeshRunner
	contexts RoomContexts
	// noPack lists peers that answered a packed transaction 4.15: they do
	// not speak it, so they get plain frames from then on.
	noPack map[string]bool
	// peerFrames holds, for peers that answered a frame 4.15 with
	// OptionFrameVersions, what both sides read; the others get frames in
	// frames (doc.go "Frame versions").
	peerFrames map[string]codec.FrameOptions
	stats      MeshStats
}

// MeshStats counts outbound transactions by how they went.
type MeshStats struct {
	// Packed transactions sent, and those the receiver could not rebuild
	// (resent unpacked).
	Packed, Mismatched uint64
	// Renegotiated counts requests a peer refused as newer than it reads
	// (4.15 with OptionFrameVersions), resent in older versions.
	Renegotiated uint64
}

// NewMeshRemote returns a MeshRemote.
func NewMeshRemote(cfg MeshRemoteConfig) (*MeshRemote, error) {
	if cfg.Post == nil {
		return nil, errors.New("gateway: mesh remote: no Post")
	}
	r := &MeshRemote{post: cfg.Post, log: cfg.Logger, peers: slices.Clone(cfg.Peers), run: cfg.Run,
		contexts: cfg.Contexts, noPack: map[string]bool{}, frames: codec.FramesLatest, peerFrames: map[string]codec.FrameOptions{}}
	if cfg.Frames != nil {
		r.frames = r.frames.Min(*cfg.Frames)
	}
	slices.Sort(r.peers)
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Attach sets (or, with nil, clears) the CoAP node requests go through.
func (r *MeshRemote) Attach(run MeshRunner) {
	r.mu.Lock()
	r.run = run
	r.mu.Unlock()
}

// SetRoomContexts sets (or, with nil, clears) where packing finds shared
// room state.
func (r *MeshRemote) SetRoomContexts(c RoomContexts) {
	r.mu.Lock()
	r.contexts = c
	r.mu.Unlock()
}

// Stats returns the counters so far.
func (r *MeshRemote) Stats() MeshStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Reaches says whether dest is a mesh peer.
func (r *MeshRemote) Reaches(dest string) bool {
	_, ok := slices.BinarySearch(r.peers, dest)
	return ok
}

// Do implements homeserver.Remote. dest must be a server name with a Noise
// session (pinned); Reaches tells.
func (r *MeshRemote) Do(dest string, req homeserver.OutboundRequest, done func(homeserver.OutboundResponse, error)) {
	finish := func(resp homeserver.OutboundResponse, err error) {
		if perr := r.post(func() { done(resp, err) }); perr != nil {
			r.log.Debug("mesh answer dropped: loop closed", "dest", dest, "uri", req.URI)
		}
	}
	fail := func(err error) {
		finish(homeserver.OutboundResponse{}, fmt.Errorf("mesh %s %s%s: %w", req.Method, dest, req.URI, err))
	}
	r.mu.Lock()
	run, contexts, noPack := r.run, r.contexts, r.noPack[dest]
	fr, known := r.peerFrames[dest]
	r.mu.Unlock()
	if !known {
		fr = r.frames
	}
	msg, err := meshRequest(req, fr, r.frames)
	if err != nil {
		fail(err)
		return
	}
	if run == nil {
		fail(ErrMeshDetached)
		return
	}
	// Do runs in the node loop: the room state is read here.
	var packed *coap.Message
	if contexts != nil && !noPack && req.Method == "PUT" && isSendURI(req.URI) && req.Body != nil {
		if body, ok, err := packTransaction(req.Body, contexts, fr); err != nil {
			r.log.Debug("mesh: transaction not packed", "dest", dest, "err", err)
		} else if ok {
			packed = newAPIRequest(codes.PUT, req.URI, body, ContentFormatPackedTxn)
			packed.Options, _, _ = packed.Options.SetAccept(make([]byte, 4), ContentFormatMeshFrame)
			packed.Options = withVersions(packed.Options, r.frames)
		}
	}
	renegotiated := false
	var send func(n *CoAPNode, now time.Time, m *coap.Message)
	send = func(n *CoAPNode, now time.Time, m *coap.Message) {
		if _, err := n.Send(now, dest, m, coap.SendOptions{}, func(ev coap.Event) {
			if ev.Kind == coap.RequestFailed {
				fail(ev.Err)
				return
			}
			if nf, ok := r.renegotiate(dest, fr, ev.Msg, renegotiated); ok {
				// Once, context-free: the room state is not ours to read
				// on this loop. The next request goes out in nf directly.
				renegotiated = true
				m2, err := meshRequest(req, nf, r.frames)
				if err != nil {
					fail(err)
					return
				}
				send(n, n.now, m2)
				return
			}
			resp, err := meshResponse(ev.Msg, r.frames)
			if err != nil {
				fail(err)
				return
			}
			if m == packed && r.repack(dest, resp) {
				send(n, n.now, msg) // the same transaction, context-free
				return
			}
			if resp.Status < 200 || resp.Status > 299 {
				finish(resp, fmt.Errorf("mesh %s %s%s: %w", req.Method, dest, req.URI, homeserver.NewRemoteError(resp.Status, resp.Body)))
				return
			}
			finish(resp, nil)
		}); err != nil {
			fail(err)
		}
	}
	first := msg
	if packed != nil {
		first = packed
		r.mu.Lock()
		r.stats.Packed++
		r.mu.Unlock()
	}
	if err := run(func(n *CoAPNode, now time.Time) { send(n, now, first) }); err != nil {
		fail(fmt.Errorf("%w: %w", ErrMeshDetached, err))
	}
}

// renegotiate reads a 4.15 answer carrying OptionFrameVersions: the peer
// reads no newer than that. When this lowers what the request was written
// in (fr), it records the versions both read for dest and returns them.
// A request is renegotiated once (again says it was).
func (r *MeshRemote) renegotiate(dest string, fr codec.FrameOptions, m coap.Message, again bool) (codec.FrameOptions, bool) {
	if again || m.Code != codes.UnsupportedMediaType {
		return fr, false
	}
	v, err := m.Options.GetBytes(OptionFrameVersions)
	if err != nil || len(v) != 1 {
		return fr, false
	}
	nf := fr.Min(codec.ParseVersions(v[0]))
	if nf == fr {
		return fr, false // nothing older to offer: the refusal stands
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peerFrames[dest] = nf.Min(r.peerFramesOr(dest))
	r.stats.Renegotiated++
	r.log.Debug("mesh: peer reads older frames", "dest", dest, "table", nf.Table, "dict", nf.Dict)
	return nf, true
}

// peerFramesOr is what dest is known to read; r.mu is held.
func (r *MeshRemote) peerFramesOr(dest string) codec.FrameOptions {
	if pf, ok := r.peerFrames[dest]; ok {
		return pf
	}
	return r.frames
}

// repack says whether the answer to a packed transaction asks for it
// again unpacked: the receiver's state differs (4.09 with
// ErrCodeStateMismatch), or it does not speak packing (4.15, remembered).
func (r *MeshRemote) repack(dest string, resp homeserver.OutboundResponse) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case resp.Status == 415:
		r.noPack[dest] = true
		return true
	case resp.Status == 409 && homeserver.NewRemoteError(resp.Status, resp.Body).ErrCode == ErrCodeStateMismatch:
		r.stats.Mismatched++
		return true
	}
	return false
}

// isSendURI says uri is PUT /_matrix/federation/v1/send/{txnId}'s.
func isSendURI(uri string) bool {
	rest, ok := strings.CutPrefix(uri, "/_matrix/federation/v1/send/")
	return ok && rest != "" && !strings.ContainsAny(rest, "/?")
}

// MeshRequest is the CoAP request carrying one federation request (doc.go
// "Federation over the mesh"): the method as the CoAP code, the path as
// its codec path code in Uri-Path options, one Uri-Query option per
// parameter, the JSON body as a codec frame (Content-Format 65060, or JSON
// when CBOR cannot carry it), and Accept 65060.
func MeshRequest(req homeserver.OutboundRequest) (*coap.Message, error) {
	return meshRequest(req, codec.FramesLatest, codec.FramesLatest)
}

// withVersions adds OptionFrameVersions with own unless own is
// codec.FramesBaseline, which a receiver assumes without it.
func withVersions(opts message.Options, own codec.FrameOptions) message.Options {
	if own == codec.FramesBaseline {
		return opts
	}
	b, err := own.VersionsByte()
	if err != nil {
		return opts // own ≤ codec.FramesLatest: cannot happen
	}
	return opts.Add(message.Option{ID: OptionFrameVersions, Value: []byte{b}})
}

// meshRequest is MeshRequest with the body framed in fr, advertising own
// (the newest versions the sender reads) when it is not the baseline.
func meshRequest(req homeserver.OutboundRequest, fr, own codec.FrameOptions) (*coap.Message, error) {
	code, ok := map[string]codes.Code{"GET": codes.GET, "POST": codes.POST, "PUT": codes.PUT, "DELETE": codes.DELETE}[req.Method]
	if !ok {
		return nil, fmt.Errorf("method %q has no CoAP code", req.Method)
	}
	if len(req.URI) < 2 || req.URI[0] != '/' {
		return nil, fmt.Errorf("request target %q is not a path", req.URI)
	}
	var payload []byte
	format := ContentFormatMeshFrame
	if req.Body != nil {
		var err error
		if payload, _, err = codec.EncodeFrame(nil, req.Body, fr); err != nil {
			if errors.Is(err, codec.ErrBadJSON) {
				// A float, say: valid JSON that CBOR under our rules
				// cannot carry. It travels as it is.
				payload, format = req.Body, ContentFormatJSON
			} else {
				return nil, fmt.Errorf("encode body: %w", err)
			}
		}
	}
	m := newAPIRequest(code, req.URI, payload, format)
	if format != ContentFormatMeshFrame {
		m.Options, _, _ = m.Options.SetAccept(make([]byte, 4), ContentFormatMeshFrame)
	}
	m.Options = withVersions(m.Options, own)
	return m, nil
}

// MeshResponse turns the CoAP answer to a MeshRequest back into the HTTP
// status and JSON body the node expects.
func MeshResponse(m coap.Message) (homeserver.OutboundResponse, error) {
	return meshResponse(m, codec.FramesLatest)
}

// meshResponse is MeshResponse for a side that reads frames up to limit.
func meshResponse(m coap.Message, limit codec.FrameOptions) (homeserver.OutboundResponse, error) {
	// Media (a federation media answer) comes raw in its own format.
	if cf, err := m.Options.ContentFormat(); err == nil && HTTPStatus(m.Code)/100 == 2 {
		t, err := rawMediaType(cf, m.Options)
		switch {
		case err == nil:
			return homeserver.OutboundResponse{Status: HTTPStatus(m.Code), Body: m.Payload, ContentType: t}, nil
		case !errors.Is(err, errNotRaw):
			return homeserver.OutboundResponse{}, fmt.Errorf("answer %v: %w", m.Code, err)
		}
	}
	r, err := decodeAPIResponseLimit(m, limit)
	if err != nil {
		return homeserver.OutboundResponse{}, err
	}
	if _, cerr := m.Options.ContentFormat(); cerr != nil && len(m.Payload) > 0 {
		return homeserver.OutboundResponse{}, fmt.Errorf("answer %v with a body but no Content-Format", m.Code)
	}
	return homeserver.OutboundResponse{Status: r.Status, Body: r.JSON}, nil
}
