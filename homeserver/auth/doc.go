// Package auth implements the Matrix authorization rules for room versions
// 10, 11 and 12: whether an event is allowed, given the room state it is
// checked against, and which state events a new event cites as its
// auth_events. It is pure: no I/O, no clock, no goroutines.
//
// # Where the rules apply
//
// A server checks every PDU several times (server-server-api "Checks
// performed on receipt of a PDU"): against the event's own auth_events
// (step 4), against the state before the event (step 5) and against the
// room's current state (step 6, a failure there is a soft failure). State
// resolution runs the same rules in its iterative auth checks. This package
// splits the rules in two so every caller can use the part it needs:
//
//   - CheckAuthEvents: the rules about the auth_events list itself
//     (duplicates, entries the selection algorithm would not pick, rejected
//     or missing entries, the create event's presence — or, in room version
//     12, its absence — and auth events from another room).
//   - Check: every other rule, against a State map. The State must contain
//     the m.room.create event; in room version 12 the caller adds it, since
//     it is never listed in auth_events.
//
// SelectAuthEvents and AuthStateKeys implement "Auth events selection"
// (server-server-api), PowerLevel the power-level defaults of the
// m.room.power_levels event schema, IsPowerEvent the "power events" of
// state resolution v2, and CheckRedaction the "Handling redactions" rules.
// AppendAuthStateKeys is AuthStateKeys for a parsed event, into a caller's
// buffer.
//
// # Decoding once
//
// The rules read a few content keys of a few events (power levels, join
// rule, create, membership) again and again: state resolution checks
// thousands of events against the same power-levels event. Each event's
// content is decoded at most once, on first use, and the result is kept on
// the immutable *event.Event (event.Memo, see memo.go); a Check against
// already-decoded state allocates nothing for messages, joins and kicks.
//
// # Rule numbers
//
// The spec numbers the rules per room version (rooms/v10.md, v11.md,
// v12.md "Authorization rules"). Versions 10 and 11 share the numbering:
//
//	1    m.room.create (1.1 prev_events, 1.2 room_id domain, 1.3 room_version,
//	     1.4 content.creator — v10 only)
//	2    auth_events (2.1 duplicates, 2.2 unexpected, 2.3 rejected, 2.4 create)
//	3    m.federate
//	4    m.room.member (4.1 shape, 4.2 join_authorised_via_users_server
//	     signature, 4.3 join, 4.4 invite incl. 4.4.1 third-party, 4.5 leave,
//	     4.6 ban, 4.7 knock, 4.8 unknown)
//	5    sender must be joined
//	6    m.room.third_party_invite needs the invite level
//	7    the event type's required power level
//	8    state keys starting with "@"
//	9    m.room.power_levels (9.1–9.3 shape, 9.4 first one, 9.5–9.9 changes)
//	10   otherwise allow
//
// Room version 12 inserts rule 2 (the room ID is the create event's ID,
// "!" + its reference hash), so rules 2–10 above become 3–11; it replaces
// 1.2 (the create event has no room_id), 1.4 (additional_creators must be
// user IDs) and 2.4 (3.2: the create event must not be listed), adds 3.4
// (auth events from another room; 3.5 in the spec's Markdown source, 3.4 as
// rendered) and inserts 10.4 (room creators must not
// appear in users), shifting 9.4–9.10 to 10.5–10.11. Every rejection is a
// *RuleError whose Rule is the number in the event's own room version, or
// a stable name for checks outside the numbered list ("signed-by-sender",
// "auth-events-missing", "auth-events-room", "redaction"). All of them wrap
// ErrForbidden.
//
// # Power
//
// Levels come from the current m.room.power_levels; without one, the
// creator has 100 and everyone else 0 (v10: content.creator; v11 on: the
// create event's sender). In room version 12 the creators — the create
// event's sender and content.additional_creators — have "infinitely high"
// power, represented as math.MaxInt64, and may not be listed in users.
// Room versions 10–12 accept only JSON integers as levels.
//
// # Redactions
//
// For the authorization rules an m.room.redaction is an ordinary message
// event: only events["m.room.redaction"] / events_default is checked. The
// redact level and the "same server as the redacted event's sender"
// condition are applied later, when the redaction is applied to its target
// (rooms/fragments/v3-handling-redactions.md); see CheckRedaction. In room
// version 10 the target is the top-level "redacts", from 11 on
// content.redacts (event.Event.Redacts handles both).
//
// # Signatures
//
// The rules say events must be signed by the sender's server, and that a
// join carrying join_authorised_via_users_server must be signed by the
// authorising user's server. Verifying those signatures needs the servers'
// published keys, so it happens on receipt (server-server-api "Validating
// hashes and signatures on received events"); Check requires the
// signatures to be present — except the sender's server's signature on an
// invite carrying content.third_party_invite, which that section exempts. The signature on a third-party invite's
// "signed" object is verified here, against the ed25519 public keys of the
// m.room.third_party_invite event it redeems.
//
// # Deviations
//
// Each deliberate deviation is marked NOTSPEC in the code: the invite level
// defaults to 0 (the event schema) rather than 50 (server-server-api
// "Definitions"); state_default is 50 even in a room with no
// m.room.power_levels event (the schema says 0; Synapse and Dendrite use
// 50); a room without m.room.join_rules behaves as "invite";
// a restricted join's authorising user must also be joined; a create event
// whose room_version differs from the version it is checked under is
// refused; and auth events from another room are rejected in versions 10
// and 11 too.
package auth
