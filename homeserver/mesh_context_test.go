package homeserver

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mxmesh/mxmesh/codec"
)

// TestMeshRoomContext: a PDU the node built packs against its own room
// context (every recomputable field left out, sender and signing-key ID
// interned) within issue 5's 100-byte budget and unpacks byte for byte;
// a context for another room makes the rebuild fail as a state mismatch.
func TestMeshRoomContext(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, tok, _ := tn.register("alice", "pw")
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
	if len(packed) > 100 {
		t.Errorf("packed %d B > budget 100 B", len(packed))
	}
	for _, name := range []string{alice, tn.Config().ServerName, tn.SigningKey().ID} {
		if _, ok := ctx.NameIndex(name); !ok {
			t.Errorf("%q not interned", name)
		}
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

// TestMeshRoomNames: the interned-name table is the joined members, their
// servers and the key IDs that signed their joins, sorted; when the
// receiver's table differs (another member joined), an interned name
// rebuilds differently and the packed PDU is a state mismatch, never a
// different event.
func TestMeshRoomNames(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, tok, _ := tn.register("alice", "pw")
	room := tn.do("POST", "/_matrix/client/v3/createRoom", tok, map[string]any{"preset": "public_chat"}).str("room_id")
	id := tn.do("PUT", "/_matrix/client/v3/rooms/"+room+"/send/m.room.message/1", tok,
		map[string]string{"msgtype": "m.text", "body": "hello"}).str("event_id")
	ctx, err := tn.MeshRoomContext(room)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{alice, tn.SigningKey().ID, tn.Config().ServerName}
	for i, w := range want {
		if got, ok := ctx.Name(uint64(i)); !ok || got != w {
			t.Fatalf("name %d = %q, %v; want %q (table %q)", i, got, ok, w, want)
		}
	}
	if _, ok := ctx.Name(uint64(len(want))); ok {
		t.Fatalf("table longer than %q", want)
	}
	row, err := tn.Store().Event(id)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := codec.Pack(nil, row.JSON, ctx)
	if err != nil {
		t.Fatal(err)
	}
	// "@aaron" sorts before "@alice": every index moves up by one.
	_, tok2, _ := tn.register("aaron", "pw")
	tn.do("POST", "/_matrix/client/v3/join/"+room, tok2, map[string]any{})
	moved, err := tn.MeshRoomContext(room)
	if err != nil {
		t.Fatal(err)
	}
	if i, _ := moved.NameIndex(alice); i != 1 {
		t.Fatalf("alice at %d after aaron joined, want 1", i)
	}
	if _, err := codec.Unpack(nil, packed, moved); !errors.Is(err, codec.ErrStateMismatch) {
		t.Fatalf("unpack against a shifted table: %v, want ErrStateMismatch", err)
	}
}
