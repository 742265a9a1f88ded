package homeserver

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mxmesh/mxmesh/codec"
)

// TestMeshRoomContext: a PDU the node built packs against its own room
// context (every recomputable field left out) and unpacks byte for byte;
// a context for another room makes the rebuild fail as a state mismatch.
func TestMeshRoomContext(t *testing.T) {
	tn := newTestNode(t, nil)
	_, tok, _ := tn.register("alice", "pw")
	room := tn.do("POST", "/_matrix/client/v3/createRoom", tok, map[string]any{}).str("room_id")
	other := tn.do("POST", "/_matrix/client/v3/createRoom", tok, map[string]any{}).str("room_id")
	id := tn.do("PUT", "/_matrix/client/v3/rooms/"+room+"/send/m.room.message/1", tok,
		map[string]string{"msgtype": "m.text", "body": "hello"}).str("event_id")
	row, err := tn.Store().Event(id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := tn.MeshRoomContext(room)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := codec.Pack(nil, row.JSON, ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PDU %d B of JSON, packed %d B", len(row.JSON), len(packed))
	if len(packed) >= 130 {
		t.Errorf("packed %d B: recomputable fields were not left out", len(packed))
	}
	back, err := codec.Unpack(nil, packed, ctx)
	if err != nil || !bytes.Equal(back, row.JSON) {
		t.Fatalf("unpack: %v\n%s\nwant\n%s", err, back, row.JSON)
	}
	wrong, err := tn.MeshRoomContext(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.Unpack(nil, packed, wrong); !errors.Is(err, codec.ErrStateMismatch) {
		t.Fatalf("unpack in another room: %v, want ErrStateMismatch", err)
	}
	if _, err := tn.MeshRoomContext("!nowhere:test"); err == nil {
		t.Fatal("context for an unknown room")
	}
}
