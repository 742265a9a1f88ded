package codec

import (
	"encoding/base64"
	"strings"
)

// Well-known values (mesh table only). Under an enum key, a CBOR unsigned
// integer n stands for enumValues[n]; 0–23 take one byte. One numbering is
// shared by all enum keys, so the table needs no per-key context. A JSON
// integer that really sits under an enum key travels wrapped in tagLiteral so
// it cannot be mistaken for an enum value. Append only.
var enumValues = [...]string{
	// 0–23: one-byte heads.
	"m.room.message", "m.text", "join", "m.room.member", "leave", "invite",
	"m.room.encrypted", "m.reaction", "m.annotation", "m.receipt", "m.typing",
	"m.presence", "m.room.redaction", "m.notice", "m.emote",
	"org.matrix.custom.html", "m.megolm.v1.aes-sha2", "online", "offline",
	"unavailable", "m.replace", "m.thread", "m.image", "m.room.create",
	// 24 and up: two-byte heads.
	"m.room.power_levels", "m.room.join_rules", "m.room.history_visibility",
	"m.room.name", "m.room.topic", "m.room.avatar", "m.room.canonical_alias",
	"m.room.guest_access", "m.room.server_acl", "m.room.tombstone",
	"m.room.pinned_events", "m.room.third_party_invite", "m.room.encryption",
	"m.sticker", "m.file", "m.audio", "m.video", "m.location", "m.reference",
	"ban", "knock", "public", "private", "restricted", "knock_restricted",
	"invited", "joined", "shared", "world_readable", "can_join", "forbidden",
	"private_chat", "public_chat", "trusted_private_chat",
	"m.device_list_update", "m.signing_key_update", "m.direct_to_device",
	"m.olm.v1.curve25519-aes-sha2", "m.room_key", "m.room_key_request",
	"m.forwarded_room_key", "m.direct", "m.fully_read", "m.tag", "m.push_rules",
	"m.space.child", "m.space.parent", "m.call.invite", "m.call.candidates",
	"m.call.answer", "m.call.hangup", "m.room_key.withheld", "m.dummy",
}

// enumKeys are the object keys whose string values may be enumerated.
var enumKeys = map[string]bool{
	"type": true, "msgtype": true, "membership": true, "join_rule": true,
	"history_visibility": true, "guest_access": true, "presence": true,
	"preset": true, "visibility": true, "format": true, "rel_type": true,
	"algorithm": true, "edu_type": true,
}

var enumByName = func() map[string]uint64 {
	m := make(map[string]uint64, len(enumValues))
	for i, v := range enumValues {
		if _, dup := m[v]; dup {
			panic("codec: enum value listed twice: " + v) // programming error in the table above
		}
		m[v] = uint64(i)
	}
	return m
}()

// tagLiteral wraps a JSON integer found under an enum key (mesh table), so
// that an unsigned integer there always means an enum value.
//
// NOTSPEC: 45259 lies in the IANA first-come-first-served range of CBOR tags
// (RFC 8949 §9.2) but is not registered; it only appears in mesh-table
// payloads, never in MSC3079 ones.
const tagLiteral = 45259

// Binary fields (mesh table). A string travels as a CBOR byte string when its
// key says it is base64 and the base64 round-trips exactly
// (encode(decode(s)) == s); otherwise it stays text. Which alphabet and
// which sigil a byte string decodes to depends only on its key:
//
//   - keys in sigilKeys: sigil + unpadded URL-safe base64 (RFC 4648 §5):
//     event IDs from room version 4 on ("$", rooms/v4.md "Event IDs") and
//     room IDs from version 12 on ("!", rooms/v12.md);
//   - every other key: unpadded standard base64 (RFC 4648 §4,
//     appendices.md "Unpadded Base64"): hashes, signatures, ed25519 and
//     curve25519 keys, Megolm ciphertext and session IDs.
//
// Inside arrays the key of the enclosing object applies (prev_events,
// auth_events).
//
// sigilKeys decides how byte strings decode, so it is part of the table
// version: never change it within TableMesh1. binaryKeys and
// binaryKeyPrefixes only steer the encoder (any other key decodes a byte
// string as standard base64), so they may grow at any time.
var sigilKeys = map[string]byte{
	"event_id": '$', "redacts": '$', "prev_events": '$', "auth_events": '$',
	"event_ids": '$', "m.fully_read": '$', "pinned": '$', "latest_events": '$',
	"earliest_events": '$', "pdu_ids": '$', "auth_chain_ids": '$',
	"room_id": '!',
}

// binaryKeys are keys whose string values are unpadded standard base64.
var binaryKeys = map[string]bool{
	"sha256": true, "key": true, "ciphertext": true, "sender_key": true,
	"session_id": true, "session_key": true, "signature": true,
	"device_key": true, "mac": true, "commitment": true, "public_key": true,
	"noise_key": true,
}

// binaryKeyPrefixes: key IDs ("ed25519:ABC") whose values are base64 keys or
// signatures (server-server-api.md "Signing JSON", client-server-api
// "End-to-end encryption").
var binaryKeyPrefixes = []string{"ed25519:", "curve25519:", "signed_curve25519:"}

// binaryKind says how string values under key are encoded as bytes: 0 for
// never, a sigil byte for sigilKeys, or 1 for plain standard base64.
func binaryKind(key string) byte {
	if s, ok := sigilKeys[key]; ok {
		return s
	}
	if binaryKeys[key] {
		return 1
	}
	for _, p := range binaryKeyPrefixes {
		if strings.HasPrefix(key, p) {
			return 1
		}
	}
	return 0
}

// toBinary returns the bytes s stands for when it round-trips exactly in the
// given kind, or nil.
func toBinary(kind byte, s string) []byte {
	enc := base64.RawStdEncoding
	if kind > 1 {
		if len(s) < 2 || s[0] != kind {
			return nil
		}
		s = s[1:]
		enc = base64.RawURLEncoding
	}
	if len(s) == 0 {
		return nil
	}
	b, err := enc.Strict().DecodeString(s)
	// Strict rejects non-zero padding bits; the length check rejects the
	// line breaks DecodeString skips. Together: encode(decode(s)) == s.
	if err != nil || enc.EncodedLen(len(b)) != len(s) {
		return nil
	}
	return b
}

// fromBinary is the inverse of toBinary.
func fromBinary(kind byte, b []byte) string {
	if kind > 1 {
		return string(kind) + base64.RawURLEncoding.EncodeToString(b)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}
