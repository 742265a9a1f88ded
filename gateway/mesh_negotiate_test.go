package gateway

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
)

// negotiationTxn is a federation transaction from a.mesh whose frame the
// shipped dictionary compresses (typing EDUs).
func negotiationTxn(t *testing.T, id string) homeserver.OutboundRequest {
	t.Helper()
	var edus []string
	for i := range 4 {
		edus = append(edus, fmt.Sprintf(`{"content":{"room_id":"!r%d:a.mesh","typing":true,"user_id":"@alice:a.mesh"},"edu_type":"m.typing"}`, i))
	}
	body := []byte(`{"edus":[` + strings.Join(edus, ",") + `],"origin":"a.mesh","origin_server_ts":1,"pdus":[]}`)
	f, _, err := codec.EncodeFrame(nil, body, codec.FramesLatest)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := codec.ParseFrameHeader(f); h.Dict == 0 {
		t.Fatalf("the sample transaction does not compress (%d B)", len(f))
	}
	return homeserver.OutboundRequest{Method: "PUT", URI: "/_matrix/federation/v1/send/" + id, Body: body}
}

// TestMeshFrameNegotiation: one side reads only an older table or no
// dictionary. When it is the receiver, the first frame it cannot read is
// answered 4.15 with its versions and resent once in what both read;
// later requests to it go out in those versions directly (one exchange
// each). When it is the sender, it says so in OptionFrameVersions and every
// answer comes within its limit. All requests succeed.
func TestMeshFrameNegotiation(t *testing.T) {
	names := []string{"a.mesh", "b.mesh"}
	for _, tc := range []struct {
		name     string
		limit    codec.FrameOptions
		receiver bool // b.mesh is limited; else a.mesh
	}{
		{"receiver reads the MSC3079 table", codec.FrameOptions{Table: codec.TableMSC3079}, true},
		{"receiver reads no dictionary", codec.FrameOptions{Table: codec.TableMesh1}, true},
		{"sender reads the MSC3079 table", codec.FrameOptions{Table: codec.TableMSC3079}, false},
		{"sender reads no dictionary", codec.FrameOptions{Table: codec.TableMesh1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newMemMesh(t, 11, names, memMeshOptions{noPacking: true, frames: func(i int) *codec.FrameOptions {
				if (i == 1) == tc.receiver {
					return &tc.limit
				}
				return nil
			}})
			bob, _ := meshRegister(t, w, 1, "bob")
			a, b := w.nodes[0], w.nodes[1]
			b.frames = nil
			wantExchanges := []int{1, 1, 1}
			if tc.receiver {
				wantExchanges[0] = 2 // refused once, then resent
			}
			reqs := []homeserver.OutboundRequest{negotiationTxn(t, "t1"), negotiationTxn(t, "t2"),
				{Method: "GET", URI: "/_matrix/federation/v1/query/profile?field=displayname&user_id=" + url.QueryEscape(bob)}}
			for i, req := range reqs {
				before := b.door
				resp, err := w.memDo(t, 0, "b.mesh", req)
				if err != nil || resp.Status != 200 {
					t.Fatalf("%s %s: %d %s, %v", req.Method, req.URI, resp.Status, resp.Body, err)
				}
				if got := b.door - before; got != wantExchanges[i] {
					t.Errorf("%s %s: %d exchanges, want %d", req.Method, req.URI, got, wantExchanges[i])
				}
			}
			if got, want := a.mesh.Stats().Renegotiated, uint64(wantExchanges[0]-1); got != want {
				t.Errorf("Renegotiated = %d, want %d", got, want)
			}
			// Every frame b.mesh got or sent is within the limit, except
			// the one refused request, answered 4.15. Two transactions and
			// their answers, the profile answer, and the refused exchange.
			if want := 5 + 2*(wantExchanges[0]-1); len(b.frames) != want {
				t.Fatalf("%d frames through b.mesh, want %d: %+v", len(b.frames), want, b.frames)
			}
			for i, f := range b.frames {
				refused := tc.receiver && i == 0
				if refused != (f.in && !tc.limit.Admits(f.h)) {
					t.Errorf("frame %d through b.mesh %+v: want refused %v", i, f, refused)
				}
				if !f.in && !tc.limit.Admits(f.h) {
					t.Errorf("answer %d from b.mesh in %+v: newer than %+v", i, f.h, tc.limit)
				}
				if !f.in && (f.code == codes.UnsupportedMediaType) != (tc.receiver && i == 1) {
					t.Errorf("answer %d from b.mesh: %v", i, f.code)
				}
			}
		})
	}
}

// TestFrontDoorVersionsAnswer pins the bytes of the refusal: a door that
// reads up to the MSC3079 table answers a mesh-table frame 4.15 with
// OptionFrameVersions 0x01 (table 1, no dictionary), Content-Format 65060
// and the error as a frame in table 1.
func TestFrontDoorVersionsAnswer(t *testing.T) {
	w := newMemMesh(t, 12, []string{"a.mesh", "b.mesh"}, memMeshOptions{noPacking: true})
	limit := codec.FrameOptions{Table: codec.TableMSC3079}
	door, err := NewCoAPFrontDoor(CoAPFrontDoorConfig{Node: w.nodes[1].node, Frames: &limit})
	if err != nil {
		t.Fatal(err)
	}
	m, err := meshRequest(negotiationTxn(t, "t1"), codec.FramesLatest, codec.FramesLatest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Options.GetBytes(OptionFrameVersions); err == nil {
		t.Error("a baseline sender advertised its versions")
	}
	var got *coap.Message
	door.ServeCoAP(&CoAPRequest{Peer: "a.mesh", Server: true, Msg: *m}, func(r coap.Message) { got = &r })
	if got == nil {
		t.Fatal("no answer")
	}
	w2 := coap.Wire{Code: got.Code, Options: got.Options, MessageID: 1, Type: coap.ACK}
	b, err := coap.Encode(nil, &w2)
	if err != nil {
		t.Fatal(err)
	}
	// 60 8f 0001: ACK, 4.15; c2 fe24: Content-Format (12) 65060;
	// e1 fcd1 01: option delta 269+0xfcd1 = 65002−12 (OptionFrameVersions),
	// length 1, value 0x01.
	if want := "608f0001c2fe24e1fcd101"; fmt.Sprintf("%x", b) != want {
		t.Errorf("4.15 head %x, want %s", b, want)
	}
	if got.Payload[0] != byte(codec.TableMSC3079) {
		t.Errorf("error body frame header %#x, want 0x01", got.Payload[0])
	}
	r, err := decodeAPIResponseLimit(*got, limit)
	if err != nil || r.Status != 415 || r.Errcode != homeserver.ErrCodeNotJSON {
		t.Errorf("refusal: %+v, %v", r, err)
	}
	// The same request in table 1 is served, answered in table 1.
	m, _ = meshRequest(negotiationTxn(t, "t2"), limit, codec.FramesLatest)
	done := false
	door.ServeCoAP(&CoAPRequest{Peer: "a.mesh", Server: true, Msg: *m}, func(r coap.Message) {
		done = true
		if r.Code != codes.Changed || r.Payload[0] != byte(codec.TableMSC3079) {
			t.Errorf("table-1 request: %v, body %x", r.Code, r.Payload)
		}
	})
	for !done && w.clk.RunNext() {
	}
	if !done {
		t.Fatal("table-1 request: no answer")
	}
	// A value of another length is an unrecognized elective option:
	// ignored (RFC 7252 §5.4.3), the baseline assumed.
	m, _ = meshRequest(homeserver.OutboundRequest{Method: "GET", URI: "/_matrix/key/v2/server"}, codec.FramesLatest, codec.FramesLatest)
	m.Options = m.Options.Add(message.Option{ID: OptionFrameVersions, Value: []byte{1, 2}})
	done = false
	door.ServeCoAP(&CoAPRequest{Peer: "a.mesh", Server: true, Msg: *m}, func(r coap.Message) {
		done = true
		if h, err := codec.ParseFrameHeader(r.Payload); err != nil || !limit.Admits(h) {
			t.Errorf("key request: %v, header %+v %v", r.Code, h, err)
		}
	})
	for !done && w.clk.RunNext() {
	}
	if !done {
		t.Fatal("key request: no answer")
	}
}

// TestMeshPackedFrameNegotiation runs the federation scenario (join,
// messages both ways, packed transactions) with b.mesh reading only an
// older table or no dictionary: the first frame it cannot read is refused
// once and resent, and everything later goes out within its limit (packed
// only when it reads the mesh table); nothing is lost.
func TestMeshPackedFrameNegotiation(t *testing.T) {
	names := []string{"a.mesh", "b.mesh"}
	for _, limit := range []codec.FrameOptions{{Table: codec.TableMSC3079}, {Table: codec.TableMesh1}} {
		t.Run(fmt.Sprintf("table %d dictionary %d", limit.Table, limit.Dict), func(t *testing.T) {
			w := newMemMesh(t, 13, names, memMeshOptions{frames: func(i int) *codec.FrameOptions {
				if i == 1 {
					return &limit
				}
				return nil
			}})
			res := runMeshScenario(t, w, names)
			a := w.nodes[0].mesh.Stats()
			t.Logf("stats a.mesh %+v, both %+v", a, res.stats)
			if a.Renegotiated != 1 || res.stats.Renegotiated != 1 || res.stats.Mismatched != 0 {
				t.Errorf("a.mesh %+v: want exactly one renegotiation, no state mismatch", a)
			}
			// The first framed request a.mesh sends (the join) is refused,
			// before any transaction: none is packed for a peer without the
			// mesh table.
			if limit.Table < codec.TableMesh1 && a.Packed != 0 {
				t.Errorf("a.mesh packed %d transactions for a peer without the mesh table", a.Packed)
			}
			if limit.Table >= codec.TableMesh1 && a.Packed < 2 {
				t.Errorf("a.mesh packed %d transactions; want packing to go on after renegotiating", a.Packed)
			}
			for i, f := range w.nodes[1].frames {
				if !f.in && !limit.Admits(f.h) {
					t.Errorf("answer %d from b.mesh in %+v: newer than %+v", i, f.h, limit)
				}
			}
		})
	}
}
