package homeserver

import (
	"net/url"
	"testing"
)

// A deactivated user leaves every room, local and federated, declines
// pending invites through the inviting server, and loses their key
// backups.
func TestDeactivateLeavesRoomsAndDropsBackups(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	shared := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"invite": []string{bob.id}}).str("room_id")
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(shared), bob.token, map[string]any{})
	pending := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"invite": []string{bob.id}}).str("room_id")
	own := fn.call(b, 200, "POST", "/_matrix/client/v3/createRoom", bob.token, map[string]any{"preset": "public_chat"}).str("room_id")
	fn.call(b, 200, "POST", "/_matrix/client/v3/room_keys/version", bob.token,
		map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": map[string]any{"public_key": "abc"}})
	if m := roomsOf(b.Node).membership(pending, bob.id); m != "invite" {
		t.Fatalf("bob's pending invite is %q", m)
	}

	fn.call(b, 200, "POST", "/_matrix/client/v3/account/deactivate", bob.token,
		map[string]any{"auth": map[string]any{"type": "m.login.password", "password": "pw"}})
	for _, room := range []string{shared, pending} {
		if m := fn.membership(alice, room, bob.id); m != "leave" {
			t.Fatalf("a.test sees bob as %q in %s", m, room)
		}
	}
	if m := roomsOf(b.Node).membership(own, bob.id); m != "leave" {
		t.Fatalf("bob is %q in his own room", m)
	}
	var n int
	if err := b.store.DB.QueryRow(`SELECT COUNT(*) FROM key_backup_versions WHERE user_id = ?`, bob.id).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d key backup versions left, %v", n, err)
	}
}
