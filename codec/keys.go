package codec

// Key tables. A CBOR map key that is an integer stands for a JSON object key
// string. Positive numbers 1–104 are MSC3079 Appendix A "CBOR integer keys"
// version 1, exactly. The mesh table adds 0 and negative numbers (which MSC3079
// never uses, so the two can never collide when MSC3079 grows): 0 and −1…−24
// encode in a one-byte CBOR head (RFC 8949 §3.1, additional information < 24)
// and go to the keys our traffic uses most; −25 and below take two bytes.
// Tables only grow: a number, once given out, keeps its meaning forever.

// msc3079Keys is MSC3079 Appendix A, version 1: msc3079Keys[i] is integer i+1.
var msc3079Keys = [104]string{
	"event_id", "type", "content", "state_key", "room_id", "sender", "user_id",
	"origin_server_ts", "unsigned", "prev_content", "state", "timeline", "events",
	"limited", "prev_batch", "transaction_id", "age", "redacted_because",
	"next_batch", "presence", "avatar_url", "account_data", "rooms", "join",
	"membership", "displayname", "body", "msgtype", "format", "formatted_body",
	"ephemeral", "invite_state", "leave", "third_party_invite", "is_direct",
	"hashes", "signatures", "depth", "prev_events", "prev_state", "auth_events",
	"origin", "creator", "join_rule", "history_visibility", "ban",
	"events_default", "kick", "redact", "state_default", "users", "users_default",
	"reason", "visibility", "room_alias_name", "name", "topic", "invite",
	"invite_3pid", "room_version", "creation_content", "initial_state", "preset",
	"servers", "identifier", "user", "medium", "address", "password", "token",
	"device_id", "initial_device_display_name", "access_token", "home_server",
	"well_known", "base_url", "device_lists", "to_device", "peek", "last_seen_ip",
	"display_name", "typing", "last_seen_ts", "algorithm", "sender_key",
	"session_id", "ciphertext", "one_time_keys", "timeout", "recent_rooms",
	"chunk", "m.fully_read", "device_keys", "failures", "device_display_name",
	"prev_sender", "replaces_state", "changed", "unstable_features", "versions",
	"devices", "errcode", "error", "room_alias",
}

// meshKeys is the mesh table's extension, version 1: meshKeys[i] is integer
// −i (so the first entry is 0). Entries 0–24 have one-byte heads; several of
// them are one-byte aliases of MSC3079 keys numbered 24 and up, which a mesh
// encoder prefers (a decoder accepts both numbers). Append only.
var meshKeys = [...]string{
	// One-byte heads (0, −1 … −24): the hottest federation and sync keys.
	"sha256", "hashes", "signatures", "depth", "prev_events", "auth_events",
	"origin", "pdus", "edus", "body", "msgtype", "membership", "displayname",
	"join", "m.relates_to", "rel_type", "redacts", "edu_type", "format",
	"formatted_body", "unread_notifications", "notification_count",
	"highlight_count", "ephemeral", "m.in_reply_to",
	// Two-byte heads (−25 … −256): the rest of federation, key server,
	// receipts, presence, device lists, media info and room summaries.
	"verify_keys", "old_verify_keys", "server_name", "valid_until_ts", "key",
	"expired_ts", "destination", "auth_chain", "event", "members_omitted",
	"servers_in_room", "invite_room_state", "predecessor", "m.federate",
	"additional_creators", "allow", "join_authorised_via_users_server",
	"guest_access", "url", "info", "mimetype", "size", "w", "h", "thumbnail_url",
	"thumbnail_info", "duration", "m.mentions", "user_ids", "room", "m.read",
	"m.read.private", "data", "ts", "event_ids", "thread_id", "push",
	"last_active_ago", "currently_active", "status_msg", "stream_id", "prev_id",
	"deleted", "keys", "m.heroes", "summary", "m.joined_member_count",
	"m.invited_member_count", "m.new_content", "earliest_events",
	"latest_events", "limit", "min_depth", "pdu_ids", "auth_chain_ids",
	"server_keys", "alias", "alt_aliases", "pinned", "via", "suggested", "order",
	"tags", "device_one_time_keys_count", "device_unused_fallback_key_types",
	"signed_curve25519", "notifications", "is_falling_back",
	"fallback_keys", "master_key", "self_signing_key", "user_signing_key",
	"usage", "message_id", "messages", "sender_device", "receipts",
	"knock_room_state", "org.matrix.msc3079.low_bandwidth", "cbor_enum_version",
	"coap_enum_version", "observe", "dtls",
}

// keyTable resolves key strings and numbers for one Table.
type keyTable struct {
	byName map[string]int64 // preferred number for a name
	byNum  map[int64]string
}

var (
	msc3079Table = buildKeyTable(false)
	meshTable    = buildKeyTable(true)
)

func buildKeyTable(mesh bool) *keyTable {
	t := &keyTable{byName: map[string]int64{}, byNum: map[int64]string{}}
	for i, name := range msc3079Keys {
		n := int64(i + 1)
		t.byNum[n] = name
		t.byName[name] = n
	}
	if !mesh {
		return t
	}
	for i, name := range meshKeys {
		n := -int64(i)
		if _, dup := t.byNum[n]; dup {
			panic("codec: key number used twice") // programming error in the table above
		}
		t.byNum[n] = name
		// Prefer the shorter head: a mesh number in 0…−24 beats an MSC3079
		// number ≥ 24; otherwise the first number given out wins.
		if old, ok := t.byName[name]; !ok || (headLen(n) < headLen(old)) {
			t.byName[name] = n
		}
	}
	return t
}

// headLen is the size of the CBOR head that encodes integer n.
func headLen(n int64) int {
	u := uint64(n)
	if n < 0 {
		u = uint64(-1 - n)
	}
	switch {
	case u < 24:
		return 1
	case u <= 0xff:
		return 2
	case u <= 0xffff:
		return 3
	case u <= 0xffffffff:
		return 5
	}
	return 9
}
