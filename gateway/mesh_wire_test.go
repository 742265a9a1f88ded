package gateway

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver"
)

// TestMeshRequestWire pins the CoAP layout of federation requests (doc.go
// "Federation over the mesh"), with Message ID 0x1234 and a 1-byte token.
func TestMeshRequestWire(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  homeserver.OutboundRequest
		hex  string
	}{
		{"query profile", homeserver.OutboundRequest{Method: "GET", URI: profileURI},
			// 41 01 1234 07: CON, TKL 1, GET, Message ID, token;
			// b2 "~F": Uri-Path (11); 4d 08 "user_id=@alice:a.mesh":
			// Uri-Query (15), length 13+8; 0d 04 "field=displayname";
			// 22 fe24: Accept (17) 65060. No payload.
			"4101123407b27e464d08757365725f69643d40616c6963653a612e6d6573680d046669656c643d646973706c61796e616d6522fe24"},
		{"send txn", homeserver.OutboundRequest{Method: "PUT", URI: "/_matrix/federation/v1/send/t1", Body: []byte(`{"edus":[],"origin":"a.mesh","origin_server_ts":1,"pdus":[]}`)},
			// 41 03 1234 07: CON PUT; b2 "~0", 02 "t1": Uri-Path; 12 fe24:
			// Content-Format (12) 65060; 52 fe24: Accept; ff: payload;
			// frame 02 (no dictionary, table 2) + CBOR map of 4: the
			// transaction keys as 1-byte integers (8: origin_server_ts,
			// 0x25–0x27, negative keys −6…−8: origin and the two lists).
			"4103123407b27e3002743112fe2452fe24ff02a408012566612e6d65736826802780"},
		{"server keys", homeserver.OutboundRequest{Method: "GET", URI: "/_matrix/key/v2/server", Unsigned: true},
			// Uri-Path "~S", Accept: unsigned requests look the same.
			"4101123407b27e5362fe24"},
	} {
		m, err := MeshRequest(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		w := coap.Wire{Code: m.Code, Token: []byte{7}, Options: m.Options, Payload: m.Payload, MessageID: 0x1234, Type: coap.CON}
		b, err := coap.Encode(nil, &w)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d B %x", tc.name, len(b), b)
		if got := hex.EncodeToString(b); got != tc.hex {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.hex)
		}
	}
}

// TestUnpackTransactionBadInput: malformed packed transactions are clear
// errors, never panics, and never reach a room context.
func TestUnpackTransactionBadInput(t *testing.T) {
	called := false
	contexts := func(string) (codec.RoomContext, error) { called = true; return nil, errors.New("no room") }
	frame, _, err := codec.EncodeFrame(nil, []byte(`{"origin":"a.mesh"}`), codec.FrameOptions{Table: codec.TableLatest})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{
		nil,
		{0x80}, // []
		{0x83, 0x01, 0x02, 0x03},
		{0x9f, 0xff},                         // indefinite length
		{0x83, 0x41, 0x00, 0x61, 0x21, 0x80}, // bad frame, no PDUs
		append(append([]byte{0x83, 0x40 | byte(len(frame))}, frame...), 0x61, 0x21, 0x80), // no PDUs
	} {
		if _, err := unpackTransaction(in, contexts, codec.FramesLatest); err == nil {
			t.Errorf("unpackTransaction(%x): no error", in)
		}
	}
	if called {
		t.Error("a malformed envelope reached the room contexts")
	}
	// A well-formed envelope for a room the receiver does not hold is a
	// state mismatch: the sender resends unpacked.
	in := append(append([]byte{0x83, 0x40 | byte(len(frame))}, frame...), 0x61, 0x21, 0x81, 0x80)
	if _, err := unpackTransaction(in, contexts, codec.FramesLatest); !errors.Is(err, codec.ErrStateMismatch) {
		t.Errorf("unknown room: %v, want ErrStateMismatch", err)
	}
	// A receiver that reads an older table, or whose limit the frame
	// exceeds, refuses it as not negotiated (answered 4.15 with its
	// versions) before reading any room state.
	called = false
	zframe, _, err := codec.EncodeFrame(nil, negotiationTxn(t, "t1").Body, codec.FramesLatest)
	if err != nil || zframe[0]>>4 != 1 {
		t.Fatalf("compressed frame %x, %v", zframe, err)
	}
	zhead, _ := cbor.Marshal(zframe)
	zin := append(append([]byte{0x83}, zhead...), 0x61, 0x21, 0x81, 0x80)
	for _, c := range []struct {
		in    []byte
		limit codec.FrameOptions
	}{{in, codec.FrameOptions{Table: codec.TableMSC3079, Dict: 1}}, {zin, codec.FrameOptions{Table: codec.TableMesh1}}} {
		if _, err := unpackTransaction(c.in, contexts, c.limit); !errors.Is(err, codec.ErrNotNegotiated) {
			t.Errorf("limit %+v: %v, want ErrNotNegotiated", c.limit, err)
		}
	}
	if called {
		t.Error("a refused transaction reached the room contexts")
	}
}

// FuzzUnpackTransaction: any payload is an error or a transaction, never
// a panic; with no room state every packed PDU is a state mismatch.
func FuzzUnpackTransaction(f *testing.F) {
	frame, _, _ := codec.EncodeFrame(nil, []byte(`{"origin":"a.mesh","origin_server_ts":1}`), codec.FrameOptions{Table: codec.TableLatest})
	pdu, _, _ := codec.EncodeFrame(nil, []byte(`{"type":"m.room.message"}`), codec.FrameOptions{Table: codec.TableLatest})
	env := append([]byte{0x83, 0x40 | byte(len(frame))}, frame...)
	env = append(env, 0x61, 0x21, 0x81, 0x40|byte(len(pdu)))
	f.Add(append(env, pdu...))
	f.Add([]byte{0x83, 0x40, 0x61, 0x21, 0x81, 0x86, 0xa0, 0x00, 0x00, 0x80, 0xf6, 0x40})
	f.Fuzz(func(t *testing.T, in []byte) {
		body, err := unpackTransaction(in, func(string) (codec.RoomContext, error) { return nil, errors.New("no state") }, codec.FramesLatest)
		if err == nil && len(body) == 0 {
			t.Fatal("no error and no transaction")
		}
	})
}
