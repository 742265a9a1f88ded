package stateres

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

var (
	// ErrMissingEvent is wrapped when fetch cannot supply an event the
	// algorithm needs (a state set entry or an event of an auth chain).
	// Callers may fetch it from elsewhere and try again.
	ErrMissingEvent = errors.New("stateres: missing event")
	// ErrBadInput is wrapped when the inputs are inconsistent: a state map
	// entry whose event has another key, an event of another room or room
	// version, a non-state event in an auth chain, or fetch returning an
	// event under the wrong ID.
	ErrBadInput = errors.New("stateres: bad input")
	// ErrAuthCycle is wrapped when the auth_events graph has a cycle.
	ErrAuthCycle = errors.New("stateres: cycle in auth events")
)

// Spec constants: the keys the algorithm looks up by name.
var (
	createKey      = auth.StateKey{Type: "m.room.create", StateKey: ""}
	powerLevelsKey = auth.StateKey{Type: "m.room.power_levels", StateKey: ""}
)

// Resolve resolves the state sets (each maps a state key to an event ID)
// using fetch to load events (and their auth chains), following the state
// resolution algorithm of room version v (v2 for rooms 10 and 11, v2.1 for
// room 12; see the package doc).
//
// fetch is called at most once per event ID and must return the event with
// exactly that ID. Resolving no state sets gives an empty state; resolving
// one gives it back unchanged (after checking it). The returned map is new;
// the inputs are not modified.
func Resolve(v *event.RoomVersion, sets []map[auth.StateKey]string, fetch func(eventID string) (*event.Event, error)) (map[auth.StateKey]string, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: resolve: no room version", ErrBadInput)
	}
	if fetch == nil {
		return nil, fmt.Errorf("%w: resolve: no fetch function", ErrBadInput)
	}
	r := &resolver{v: v, fetch: fetch, events: make(map[string]*event.Event)}
	return r.resolve(sets)
}

// resolver holds one Resolve call's inputs and its cache of fetched events.
type resolver struct {
	v      *event.RoomVersion
	fetch  func(string) (*event.Event, error)
	events map[string]*event.Event
	roomID string

	create    *event.Event // the room version 12 create event, once found
	authState auth.State   // reused by authEventState
}

func (r *resolver) resolve(sets []map[auth.StateKey]string) (map[auth.StateKey]string, error) {
	if len(sets) == 0 {
		return map[auth.StateKey]string{}, nil
	}
	ordered, err := r.checkSets(sets)
	if err != nil {
		return nil, err
	}
	unconflicted, conflicted := split(sets)
	if len(conflicted) == 0 {
		// Every set is the same map; the algorithm would give it back.
		return unconflicted, nil
	}

	// Full conflicted set: conflicted state set ∪ auth difference
	// (∪ conflicted state subgraph in v2.1).
	full := make(map[string]bool, len(conflicted))
	for _, id := range conflicted {
		full[id] = true
	}
	diff, err := r.authDifference(ordered)
	if err != nil {
		return nil, err
	}
	for _, id := range diff {
		full[id] = true
	}
	if r.v.StateResV21 {
		sub, err := r.conflictedSubgraph(conflicted)
		if err != nil {
			return nil, err
		}
		for _, id := range sub {
			full[id] = true
		}
	}
	fullIDs := sortedKeys(full)

	// Step 1: the power events of the full conflicted set and the members of
	// the full conflicted set their auth_events lead to, in reverse
	// topological power order.
	var power []string
	for _, id := range fullIDs {
		ev, err := r.get(id)
		if err != nil {
			return nil, err
		}
		if auth.IsPowerEvent(ev) {
			power = append(power, id)
		}
	}
	inX, err := r.powerSet(power, full)
	if err != nil {
		return nil, err
	}
	var xs []string
	for _, id := range fullIDs {
		if inX[id] {
			xs = append(xs, id)
		}
	}
	xs, err = r.powerSort(xs, inX)
	if err != nil {
		return nil, err
	}

	// Step 2: iterative auth checks from the unconflicted state map, or in
	// v2.1 from an empty map.
	partial := make(map[auth.StateKey]string, len(unconflicted)+len(fullIDs))
	if !r.v.StateResV21 {
		for k, id := range unconflicted {
			partial[k] = id
		}
	}
	if err := r.iterativeAuth(partial, xs); err != nil {
		return nil, err
	}

	// Step 3: the remaining events in mainline order, based on the power
	// levels of the partially resolved state.
	var rest []string
	for _, id := range fullIDs {
		if !inX[id] {
			rest = append(rest, id)
		}
	}
	rest, err = r.mainlineSort(rest, partial[powerLevelsKey])
	if err != nil {
		return nil, err
	}

	// Step 4: iterative auth checks on top of the partial state.
	if err := r.iterativeAuth(partial, rest); err != nil {
		return nil, err
	}

	// Step 5: the unconflicted state map wins.
	for k, id := range unconflicted {
		partial[k] = id
	}
	return partial, nil
}

// get returns the event with the given ID, fetching it once and checking
// that it is a state event of this room and room version.
func (r *resolver) get(id string) (*event.Event, error) {
	if ev, ok := r.events[id]; ok {
		return ev, nil
	}
	ev, err := r.fetch(id)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrMissingEvent, id, err)
	}
	if ev == nil {
		return nil, fmt.Errorf("%w %s", ErrMissingEvent, id)
	}
	if ev.ID() != id {
		return nil, fmt.Errorf("%w: fetch %s returned event %s", ErrBadInput, id, ev.ID())
	}
	if ev.Version() == nil || ev.Version().ID != r.v.ID {
		return nil, fmt.Errorf("%w: event %s is not of room version %s", ErrBadInput, id, r.v.ID)
	}
	if !ev.IsState() {
		return nil, fmt.Errorf("%w: event %s is not a state event", ErrBadInput, id)
	}
	switch room := ev.RoomID(); {
	case r.roomID == "":
		r.roomID = room
	case room != r.roomID:
		return nil, fmt.Errorf("%w: event %s is in room %s, not %s", ErrBadInput, id, room, r.roomID)
	}
	r.events[id] = ev
	return ev, nil
}

// checkSets loads every event of every state set and checks that it sits
// under its own key. It returns each set's event IDs in key order; keys are
// visited in sorted order so that errors are reported deterministically.
func (r *resolver) checkSets(sets []map[auth.StateKey]string) ([][]string, error) {
	ordered := make([][]string, len(sets))
	for i, s := range sets {
		ids := make([]string, 0, len(s))
		for _, k := range sortedStateKeys(s) {
			ev, err := r.get(s[k])
			if err != nil {
				return nil, fmt.Errorf("state set %d: %w", i, err)
			}
			if got := keyOf(ev); got != k {
				return nil, fmt.Errorf("%w: state set %d maps (%s, %q) to %s, which is (%s, %q)",
					ErrBadInput, i, k.Type, k.StateKey, ev.ID(), got.Type, got.StateKey)
			}
			ids = append(ids, s[k])
		}
		ordered[i] = ids
	}
	return ordered, nil
}

// split divides the state sets into the unconflicted state map and the
// conflicted state set (spec "Unconflicted state map and conflicted state
// set"). A key missing from some set is conflicted. The conflicted event IDs
// are returned sorted and without duplicates.
func split(sets []map[auth.StateKey]string) (map[auth.StateKey]string, []string) {
	unconflicted := make(map[auth.StateKey]string, len(sets[0]))
	conflicted := make(map[string]bool)
	seen := make(map[auth.StateKey]bool, len(sets[0]))
	for _, s := range sets {
		for k := range s {
			if seen[k] {
				continue
			}
			seen[k] = true
			first, same := sets[0][k]
			for _, o := range sets[1:] {
				if id, ok := o[k]; !ok || id != first {
					same = false
					break
				}
			}
			if same {
				unconflicted[k] = first
				continue
			}
			for _, o := range sets {
				if id, ok := o[k]; ok {
					conflicted[id] = true
				}
			}
		}
	}
	return unconflicted, sortedKeys(conflicted)
}

// closure returns the given events and every event reachable from them over
// auth_events.
func (r *resolver) closure(start []string) (map[string]bool, error) {
	seen := make(map[string]bool, len(start))
	stack := slices.Clone(start)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		ev, err := r.get(id)
		if err != nil {
			return nil, fmt.Errorf("auth chain: %w", err)
		}
		seen[id] = true
		for _, a := range ev.AuthEvents() {
			if !seen[a] {
				stack = append(stack, a)
			}
		}
	}
	return seen, nil
}

// authDifference returns ∪Ci − ∩Ci, sorted, where Ci is the full auth chain
// of state set i, given as its event IDs.
//
// NOTSPEC: Ci here also contains Si's own events, not only their auth
// chains, as Synapse and other servers compute it. The two readings differ
// only for unconflicted events that appear in some chains but not others;
// counting the state events keeps us resolving like the rest of the network.
func (r *resolver) authDifference(sets [][]string) ([]string, error) {
	count := make(map[string]int)
	for i, s := range sets {
		chain, err := r.closure(s)
		if err != nil {
			return nil, fmt.Errorf("auth difference: state set %d: %w", i, err)
		}
		for id := range chain {
			count[id]++
		}
	}
	var diff []string
	for id, n := range count {
		if n < len(sets) {
			diff = append(diff, id)
		}
	}
	slices.Sort(diff)
	return diff, nil
}

// conflictedSubgraph returns, sorted, every event on an auth_events path
// between two events of the conflicted state set, endpoints included (room
// version 12, "Conflicted state subgraph"): the events reachable from a
// conflicted event that can themselves reach a conflicted event.
func (r *resolver) conflictedSubgraph(conflicted []string) ([]string, error) {
	isConflicted := make(map[string]bool, len(conflicted))
	for _, id := range conflicted {
		isConflicted[id] = true
	}
	reachable, err := r.closure(conflicted)
	if err != nil {
		return nil, fmt.Errorf("conflicted subgraph: %w", err)
	}
	// leads[id]: id is conflicted or one of its auth chain events is.
	const (
		unknown = iota
		visiting
		no
		yes
	)
	leads := make(map[string]int, len(reachable))
	var visit func(id string) (bool, error)
	visit = func(id string) (bool, error) {
		switch leads[id] {
		case visiting:
			return false, fmt.Errorf("%w: at %s", ErrAuthCycle, id)
		case no:
			return false, nil
		case yes:
			return true, nil
		}
		leads[id] = visiting
		ev, err := r.get(id)
		if err != nil {
			return false, err
		}
		found := isConflicted[id]
		for _, a := range ev.AuthEvents() {
			ok, err := visit(a)
			if err != nil {
				return false, err
			}
			found = found || ok
		}
		leads[id] = no
		if found {
			leads[id] = yes
		}
		return found, nil
	}
	var sub []string
	for _, id := range sortedKeys(reachable) {
		ok, err := visit(id)
		if err != nil {
			return nil, fmt.Errorf("conflicted subgraph: %w", err)
		}
		if ok {
			sub = append(sub, id)
		}
	}
	return sub, nil
}

// createEvent returns the room's m.room.create event in room version 12,
// where it is not listed in auth_events and its ID is the room ID with the
// sigil "$" instead of "!".
func (r *resolver) createEvent() (*event.Event, error) {
	if r.create != nil {
		return r.create, nil
	}
	id, ok := strings.CutPrefix(r.roomID, "!")
	if !ok || id == "" {
		return nil, fmt.Errorf("%w: room ID %q is not a create event hash", ErrBadInput, r.roomID)
	}
	ev, err := r.get("$" + id)
	if err != nil {
		return nil, fmt.Errorf("create event: %w", err)
	}
	if !ev.IsCreate() {
		return nil, fmt.Errorf("%w: %s is not an m.room.create event", ErrBadInput, ev.ID())
	}
	r.create = ev
	return ev, nil
}

// authEventState is the state formed by ev's own auth_events, plus the
// create event where the room version leaves it out of auth_events. The map
// is reused: it is valid until the next call.
func (r *resolver) authEventState(ev *event.Event) (auth.State, error) {
	if r.authState == nil {
		r.authState = make(auth.State, len(ev.AuthEvents())+1)
	}
	st := r.authState
	clear(st)
	for _, a := range ev.AuthEvents() {
		ae, err := r.get(a)
		if err != nil {
			return nil, fmt.Errorf("auth events of %s: %w", ev.ID(), err)
		}
		st[keyOf(ae)] = ae
	}
	switch {
	case ev.IsCreate():
		st[createKey] = ev
	case r.v.RoomIDFromCreate:
		c, err := r.createEvent()
		if err != nil {
			return nil, err
		}
		st[createKey] = c
	}
	return st, nil
}

// iterativeAuth applies the iterative auth checks (spec "Iterative auth
// checks") to the events ids, in order, on top of state, which it updates.
// Each event is checked against the auth state the rules ask for: a key
// present in state is taken from state, any other from the event's own
// auth_events. Events the rules reject are skipped.
func (r *resolver) iterativeAuth(state map[auth.StateKey]string, ids []string) error {
	var keys []auth.StateKey
	for _, id := range ids {
		ev, err := r.get(id)
		if err != nil {
			return err
		}
		as, err := r.authEventState(ev)
		if err != nil {
			return fmt.Errorf("iterative auth checks: %w", err)
		}
		keys = auth.AppendAuthStateKeys(keys[:0], ev)
		for _, k := range keys {
			sid, ok := state[k]
			if !ok {
				continue
			}
			se, err := r.get(sid)
			if err != nil {
				return fmt.Errorf("iterative auth checks: %w", err)
			}
			as[k] = se
		}
		if auth.Check(ev, as) == nil {
			state[keyOf(ev)] = id
		}
	}
	return nil
}

// senderPower is the power level of ev's sender according to ev's own auth
// events, the first key of the reverse topological power ordering.
func (r *resolver) senderPower(ev *event.Event) (int64, error) {
	st, err := r.authEventState(ev)
	if err != nil {
		return 0, err
	}
	return auth.PowerLevel(st, ev.Sender()), nil
}

// powerSet returns the set X of step 1: the power events and every event
// of the full conflicted set reached from them by following auth_events
// links whose target is itself in the full conflicted set.
//
// NOTSPEC (interop): the spec's wording has changed between revisions —
// "the union of their auth chains" in rooms/fragments/v2-state-res.md,
// "the events in the auth chain of P which also belong to the full
// conflicted set" in rooms/v12.md — and neither is what the deployed
// servers compute. Synapse (synapse/state/v2.py,
// _add_event_and_auth_chain_to_graph) walks auth_events from each power
// event only through members of the full conflicted set, so an event whose
// only path from a power event leaves the full conflicted set is sorted by
// the mainline instead. We compute exactly that, so that our rooms converge
// with Synapse's; see TestReverseTopologicalPowerOrderingDirectAuthEdges.
func (r *resolver) powerSet(power []string, full map[string]bool) (map[string]bool, error) {
	inX := make(map[string]bool, len(power))
	stack := slices.Clone(power)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if inX[id] {
			continue
		}
		ev, err := r.get(id)
		if err != nil {
			return nil, fmt.Errorf("power events: %w", err)
		}
		inX[id] = true
		for _, a := range ev.AuthEvents() {
			if full[a] && !inX[a] {
				stack = append(stack, a)
			}
		}
	}
	return inX, nil
}

// powerSort orders xs by the reverse topological power ordering. inX marks
// the members of xs. The DAG is the auth_events graph restricted to xs:
// x follows each of its own auth events that is a member of xs.
//
// NOTSPEC (interop): "the DAG formed by auth events" does not say whether
// ancestry through events outside the set counts. Synapse and Dendrite link
// only direct auth_events edges between members, and so do we: a member's
// ancestor reached solely through non-members may sort after it. (powerSet
// makes xs closed under auth_events links into the full conflicted set, so
// such a path always leaves the full conflicted set.)
func (r *resolver) powerSort(xs []string, inX map[string]bool) ([]string, error) {
	keys := make(map[string]orderKey, len(xs))
	edges := make(map[string][]string, len(xs))
	for _, id := range xs {
		ev, err := r.get(id)
		if err != nil {
			return nil, err
		}
		p, err := r.senderPower(ev)
		if err != nil {
			return nil, fmt.Errorf("power ordering: %w", err)
		}
		keys[id] = orderKey{first: -p, ts: ev.OriginServerTS(), id: id}
		var ps []string
		for _, a := range ev.AuthEvents() {
			if inX[a] {
				ps = append(ps, a)
			}
		}
		edges[id] = ps
	}
	sorted, err := kahn(xs, edges, keys)
	if err != nil {
		return nil, fmt.Errorf("power ordering: %w", err)
	}
	return sorted, nil
}

// mainlineSort orders ids by the mainline ordering based on the power levels
// event plID ("" when the partial state has none: every position is then ∞).
func (r *resolver) mainlineSort(ids []string, plID string) ([]string, error) {
	// pos: mainline index of each mainline event, P0 = plID at 0.
	pos := make(map[string]int64)
	for cur, i := plID, int64(0); cur != ""; i++ {
		if _, dup := pos[cur]; dup {
			return nil, fmt.Errorf("mainline: %w: at %s", ErrAuthCycle, cur)
		}
		pos[cur] = i
		ev, err := r.get(cur)
		if err != nil {
			return nil, fmt.Errorf("mainline: %w", err)
		}
		if cur, err = r.powerLevelsAuthEvent(ev); err != nil {
			return nil, fmt.Errorf("mainline: %w", err)
		}
	}
	const infinity = int64(1) << 62
	// memo: position of the chain starting at a power levels event that is
	// not on the mainline.
	memo := make(map[string]int64)
	position := func(ev *event.Event) (int64, error) {
		cur, err := r.powerLevelsAuthEvent(ev)
		if err != nil {
			return 0, err
		}
		var path []string
		seen := make(map[string]bool)
		p := infinity
		for cur != "" {
			if i, ok := pos[cur]; ok {
				p = i
				break
			}
			if m, ok := memo[cur]; ok {
				p = m
				break
			}
			if seen[cur] {
				return 0, fmt.Errorf("%w: at %s", ErrAuthCycle, cur)
			}
			seen[cur] = true
			path = append(path, cur)
			pe, err := r.get(cur)
			if err != nil {
				return 0, err
			}
			if cur, err = r.powerLevelsAuthEvent(pe); err != nil {
				return 0, err
			}
		}
		for _, id := range path {
			memo[id] = p
		}
		return p, nil
	}

	keys := make(map[string]orderKey, len(ids))
	for _, id := range ids {
		ev, err := r.get(id)
		if err != nil {
			return nil, err
		}
		p, err := position(ev)
		if err != nil {
			return nil, fmt.Errorf("mainline position of %s: %w", id, err)
		}
		// A greater position sorts first.
		keys[id] = orderKey{first: -p, ts: ev.OriginServerTS(), id: id}
	}
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b string) int { return keys[a].compare(keys[b]) })
	return out, nil
}

// powerLevelsAuthEvent returns the ID of the m.room.power_levels event in
// ev's auth_events, or "" if it cites none.
func (r *resolver) powerLevelsAuthEvent(ev *event.Event) (string, error) {
	for _, a := range ev.AuthEvents() {
		ae, err := r.get(a)
		if err != nil {
			return "", fmt.Errorf("auth events of %s: %w", ev.ID(), err)
		}
		if keyOf(ae) == powerLevelsKey {
			return a, nil
		}
	}
	return "", nil
}

// keyOf is the state key of a state event.
func keyOf(ev *event.Event) auth.StateKey {
	sk, _ := ev.StateKey()
	return auth.StateKey{Type: ev.Type(), StateKey: sk}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedStateKeys(m map[auth.StateKey]string) []auth.StateKey {
	out := make([]auth.StateKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b auth.StateKey) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.StateKey, b.StateKey)
	})
	return out
}
