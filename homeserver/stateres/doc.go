// Package stateres implements Matrix state resolution version 2, as used by
// room versions 10 and 11, and its revision ("v2.1", MSC4297) used by room
// version 12.
//
// Spec: content/rooms/fragments/v2-state-res.md (rooms v2 … v11, "State
// resolution"), content/rooms/v12.md "State resolution", and the
// authorization rules in content/rooms/v10.md … v12.md, which this package
// applies through homeserver/auth.
//
// # What it computes
//
// The state before an event E is the resolution of the states after each of
// E's prev_events. Each input state is a map (event type, state key) → event
// ID; Resolve returns one such map. Events are loaded through a caller's
// fetch function, which must return events that passed the checks on receipt
// of a PDU (signatures, hashes, auth against their own auth_events): the spec
// notes that events rejected against their auth chain never appear in the
// process. Events rejected only against the state before them are handled
// like any other, as the spec asks; the spec's exclusion of rejected events
// as auth events in the iterative auth checks needs no code here, because an
// event citing a rejected auth event is itself rejected against its auth
// chain and so never reaches Resolve.
//
// # The algorithm
//
// Given state sets S1 … Sn:
//
//  1. Split: a key present in every Si with the same event is unconflicted;
//     every other (key, event) pair goes to the conflicted state set.
//  2. Auth difference: Ci is the union of the auth chains (events reachable
//     over auth_events) of Si's events; the difference is ∪Ci − ∩Ci.
//  3. Conflicted state subgraph (room version 12 only): every event that lies
//     on an auth_events path from one conflicted event to another, endpoints
//     included.
//  4. Full conflicted set: the union of 1's conflicted set, 2 and 3.
//  5. X = the power events of the full conflicted set (power levels, join
//     rules, and leave/ban memberships whose sender is not the target),
//     enlarged by the events of the full conflicted set reached from them
//     over auth_events links that stay inside the full conflicted set. X is
//     sorted by the reverse topological power ordering: Kahn's algorithm
//     over the direct auth_events links between members of X, picking among
//     the ready events the one whose sender has the greatest power level
//     (read from the event's own auth_events), then the smallest
//     origin_server_ts, then the smallest event ID. Both choices follow
//     Synapse where the spec's wording is loose or has varied (NOTSPEC on
//     powerSet and powerSort).
//  6. Iterative auth checks over the sorted X, starting from the unconflicted
//     state map (room version 12: from an empty map). Each event is checked
//     against the state built so far; a key the auth rules need and the state
//     lacks is taken from the event's own auth_events. Events that fail are
//     skipped; events that pass replace their key.
//  7. The rest of the full conflicted set is sorted by mainline ordering: the
//     mainline is the chain of m.room.power_levels events reached from the
//     power levels event resolved in 6 over auth_events; an event's position
//     is the index of the first mainline event on its own power-levels chain
//     (∞ if none), and events sort by position descending, then
//     origin_server_ts, then event ID.
//  8. Iterative auth checks over that list, starting from 6's result.
//  9. Every unconflicted key is put back to its unconflicted event.
//
// Every ordering is a total order ending in the event ID, and every set is
// sorted before it is walked, so the result depends neither on the order of
// the input state sets nor on Go's map iteration order.
//
// # Errors
//
// Resolve fails, rather than guessing, when an event cannot be fetched, when
// fetch returns an event whose ID differs from the one asked for, when a
// state map names an event of another type/state key or another room, when
// an auth chain contains a non-state event, or when the auth_events graph
// has a cycle (impossible for honest inputs, since event IDs are hashes).
//
// The package is pure: no I/O, clock, randomness or goroutines. A call keeps
// its own event cache; concurrent calls are independent.
package stateres
