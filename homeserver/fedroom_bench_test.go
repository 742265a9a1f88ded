package homeserver

import (
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/keys"
)

// BenchmarkFedRoomReceivePDU measures one message PDU from another server
// through every check on receipt (signature, content hash, auth against
// its auth events and the state before it, soft-fail) and into the
// timeline, on a node whose cache already holds the sender's key.
func BenchmarkFedRoomReceivePDU(b *testing.B) {
	tn := newTestNode(b, nil)
	_, tok, _ := tn.register("alice", "pw")
	r := tn.do("POST", "/_matrix/client/v3/createRoom", tok, map[string]any{"preset": "public_chat"})
	if r.Status != 200 {
		b.Fatalf("createRoom: %d %s", r.Status, r.Raw)
	}
	roomID := r.str("room_id")
	remote := signer{server: "c.test", keyID: "ed25519:c", key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	resp, err := keys.ServerResponse(keys.Own{ServerName: remote.server, Keys: []keys.SigningKey{{ID: remote.keyID, Key: remote.key}}}, tn.Now())
	if err != nil {
		b.Fatal(err)
	}
	sk, err := keys.Verify(resp, remote.server, tn.Now())
	if err != nil {
		b.Fatal(err)
	}
	if err := tn.Federation().cache.Add(sk, tn.Now()); err != nil {
		b.Fatal(err)
	}
	fr := fedRoomsOf(tn.Node)
	receive := func(raw []byte) {
		var err error = fmt.Errorf("not answered")
		fr.receivePDU(remote.server, raw, func(_ string, e error) { err = e })
		if err != nil {
			b.Fatal(err)
		}
	}
	carol := "@carol:c.test"
	rm, _ := roomsOf(tn.Node).room(roomID)
	join := forge(nil, remote, rm, carol, "m.room.member", strPtr(carol), map[string]string{"membership": "join"},
		rm.extremities, rm.state, rm.depth+1)
	receive(join.JSON())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rm, _ := roomsOf(tn.Node).room(roomID)
		ev := forge(nil, remote, rm, carol, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": fmt.Sprint("hello ", i)},
			rm.extremities, rm.state, rm.depth+1)
		b.StartTimer()
		receive(ev.JSON())
	}
}
