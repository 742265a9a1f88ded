// Package event is the Matrix event core: strict JSON parsing, canonical
// JSON, content and reference hashes, ed25519 signatures, the redaction
// algorithms, event IDs and room IDs for room versions 10, 11 and 12, and
// the Event type that keeps a PDU's exact bytes. It is pure: no I/O, no
// clock, no randomness.
//
// # Canonical JSON
//
// Spec: appendices.md "Canonical JSON". A value is encoded with no
// insignificant whitespace, object keys sorted by Unicode code point (which
// is byte order of their UTF-8), strings as UTF-8 with only these escapes:
// \" \\ \b \f \n \r \t, and \u00XX (lowercase hex) for the other control
// characters below U+0020; everything else, including "/", U+007F and
// U+2028, is written literally. Numbers are integers in ±(2^53−1) with no
// fraction, exponent or "-0". The appendix's examples turn "-0" into 0 and
// 1e10 into 10000000000, so CanonicalJSON accepts any spelling whose value
// is such an integer and writes the plain form; CheckNoFloats is the
// stricter rule events follow (rooms/v6.md "Canonical JSON", kept by 10–12):
// every number written as a plain integer in range.
//
// ParseJSON is the strict reader under all of this. It refuses duplicate
// keys (RFC 8259 §4 leaves them undefined; accepting them would let two
// servers see different events behind one signature), invalid UTF-8 and
// escaped lone surrogates (RFC 8259 §8.2), unescaped control characters,
// nesting deeper than MaxJSONDepth and trailing data.
//
// # Hashes, signatures and IDs
//
// Spec: server-server-api.md "Signing events", "Calculating the content hash
// for an event", "Calculating the reference hash for an event";
// appendices.md "Signing Details" and "Checking for a Signature".
//
//	content hash   = SHA-256(canonical(event − unsigned − signatures − hashes))
//	                 stored as hashes.sha256, unpadded standard base64
//	signature      = ed25519(canonical(redact(event) − signatures − unsigned))
//	                 stored as signatures[server]["ed25519:NAME"], unpadded base64
//	reference hash = SHA-256(canonical(redact(event) − signatures − unsigned))
//	event ID       = "$" + unpadded URL-safe base64(reference hash)   (rooms/v4.md on)
//	room ID (v12)  = "!" + the same 43 characters, of the m.room.create event
//
// Signing the redacted form is what keeps a redacted event verifiable; the
// content hash is what lets a receiver detect that content was altered and
// redact the event instead of rejecting it. A version 12 create event has no
// room_id: the room ID is derived from its event ID (rooms/v12.md, MSC4291).
//
// # Redaction
//
// Version 10 follows rooms/fragments/v9-redactions.md: it keeps the
// top-level keys event_id, type, room_id, sender, state_key, content,
// hashes, signatures, depth, prev_events, prev_state, auth_events, origin,
// origin_server_ts and membership, and in content only: m.room.member
// membership and join_authorised_via_users_server; m.room.create creator;
// m.room.join_rules join_rule and allow; m.room.power_levels ban, events,
// events_default, kick, redact, state_default, users, users_default;
// m.room.history_visibility history_visibility.
//
// Versions 11 and 12 follow v11-redactions.md: origin, membership and
// prev_state are dropped from the top level; m.room.create keeps all of its
// content, m.room.power_levels also keeps invite, m.room.redaction keeps
// redacts, and m.room.member also keeps third_party_invite.signed (an
// object without "signed" stays as {}, as in Synapse: NOTSPEC in redact.go).
//
// # Events
//
// Parse turns PDU bytes into an *Event under a room version: it keeps the
// bytes exactly as received (re-sending them never breaks a signature),
// checks the field types the auth rules rely on (listed on Parse), enforces
// client-server-api "Size limits" (65536 bytes of canonical JSON; 255 bytes
// for sender, room_id, type and state_key) and computes the event ID. Build
// goes the other way for events this server creates: Proto in, content hash
// and signature added, canonical bytes out. Neither checks authorisation;
// that is package auth's job.
//
// An Event is immutable, so what other packages derive from it (package
// auth's decoded power levels, say) can be computed once and stored on it
// with a Memo: a lock-free list of (Memo, value) pairs headed by an atomic
// pointer in the Event, safe for concurrent readers.
//
// # Room versions
//
// RoomVersion holds one flag per rule that differs between 10, 11 and 12;
// V10, V11 and V12 are the supported versions (LookupVersion). Events are
// parsed under a version because the event ID, the redaction algorithm and
// the place of "redacts" depend on it.
package event
