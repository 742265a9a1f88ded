package homeserver

// Receiving PDUs: server-server-api "Checks performed on receipt of a
// PDU", in the spec's order, for every event that reaches the node from
// another server (a transaction's PDUs, events fetched to fill a gap, the
// state and auth chain a join returned).
//
//  1. format and size: event.Parse under the room's version (a PDU for a
//     room this server is not in is refused);
//  2. signatures: the sender's server (and, for a restricted join, the
//     authorising user's server) must have signed the redacted event with
//     a key valid at origin_server_ts (keys fetched through the federation
//     module when unknown); an invite made from a third-party invite is
//     exempt from the sender's server's signature;
//  3. content hash: on a mismatch the event is redacted and used redacted;
//  4. auth events: every listed auth event must be known and not rejected
//     (missing ones are fetched with /event_auth); auth.CheckAuthEvents and
//     auth.Check against them;
//  5. state before the event: the state after each prev event, resolved
//     with stateres.Resolve when there are several; prev events we lack are
//     fetched with /get_missing_events, and if a gap remains the state
//     before the event is taken from /state and checked like the rest;
//  6. soft failure: a new event (from /send) that passes 1–5 but fails
//     against the room's current state is stored outside the timeline, is
//     not a forward extremity and is not sent to clients.
//
// Rejections (steps 1–5) are recorded with their reason in rejected_events;
// failures that are not the event's fault (signing keys or auth events that
// could not be fetched, a server ACL) are answered but not recorded, so
// the event can arrive again. Events that pass are stored
// (fedroom_store.go): timeline events with the next stream position (so
// /sync delivers them), outliers (auth chain, fetched state, soft-failed
// events) with negative positions. Inbound PDUs of one room are processed
// one at a time, in arrival order; a panic in the pipeline is caught
// (guard), logged and answered as an internal error.

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/keys"
	"github.com/mxmesh/mxmesh/homeserver/stateres"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Limits of the gap-filling requests. NOTSPEC: the spec leaves them to the
// server; these match common practice (Synapse asks for 10 missing events).
const (
	missingEventsLimit = 20 // /get_missing_events "limit"
)

// errRejected wraps every reason a PDU is rejected for.
var errRejected = errors.New("rejected")

// rejectf builds a rejection reason.
func rejectf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errRejected, fmt.Sprintf(format, a...))
}

// pduJob is one inbound PDU on its way through the checks.
type pduJob struct {
	origin string
	raw    json.RawMessage
	roomID string
	live   bool // arrived in a transaction: soft-fail applies, gaps are filled
	done   func(eventID string, err error)
	// finish completes a queued job once (set by runQueue); finished
	// records that it has run.
	finish   func(eventID string, err error)
	finished bool
}

// receivePDU is the federation module's PDUHandler: it queues the PDU
// behind earlier ones of the same room.
func (fr *fedRooms) receivePDU(origin string, raw json.RawMessage, done func(string, error)) {
	roomID, err := peekRoomID(raw)
	if err != nil {
		done("", rejectf("%v", err))
		return
	}
	job := &pduJob{origin: origin, raw: raw, roomID: roomID, live: true, done: done}
	fr.queue[roomID] = append(fr.queue[roomID], job)
	if len(fr.queue[roomID]) == 1 {
		fr.runQueue(roomID)
	}
}

// runQueue processes the head of a room's queue, then the next.
func (fr *fedRooms) runQueue(roomID string) {
	q := fr.queue[roomID]
	if len(q) == 0 {
		delete(fr.queue, roomID)
		return
	}
	job := q[0]
	job.finish = func(id string, err error) {
		if job.finished {
			return
		}
		job.finished = true
		if err != nil {
			fr.n.log.Info("PDU rejected", "room", roomID, "event", id, "origin", job.origin, "err", err)
		}
		job.done(id, err)
		fr.queue[roomID] = fr.queue[roomID][1:]
		fr.runQueue(roomID)
	}
	fr.guard(func() { fr.process(job, job.finish) })
}

// errInternal answers PDUs whose processing was cut short by a bug.
var errInternal = errors.New("internal error while processing the PDU")

// guard runs f; a panic in it is logged and ends every PDU job in
// progress with errInternal, and so every backfill, remote join and
// invite in flight, so one bad event cannot stop the node or stall a
// room's queue, its pagination or joins. Jobs ended this way ignore their later completion.
func (fr *fedRooms) guard(f func()) {
	defer func() {
		if r := recover(); r != nil {
			fr.panics++
			fr.n.log.Error("room federation panic", "panic", r, "stack", string(debug.Stack()))
			rooms := make([]string, 0, len(fr.queue))
			for roomID := range fr.queue {
				rooms = append(rooms, roomID)
			}
			sort.Strings(rooms)
			for _, roomID := range rooms {
				if q := fr.queue[roomID]; len(q) > 0 && q[0].finish != nil && !q[0].finished {
					q[0].finish("", errInternal)
				}
			}
			// Backfills, joins and invites in flight end too (and the
			// requests waiting for them are answered).
			fr.backfilling.endAll(false)
			fr.joining.endAll(errInternal)
			fr.inviting.endAll(errInternal)
		}
	}()
	f()
}

// doJSON is Federation.DoJSON with done run under guard.
func (fr *fedRooms) doJSON(dest string, req OutboundRequest, out any, done func(error)) {
	fr.n.Federation().DoJSON(dest, req, out, func(err error) { fr.guard(func() { done(err) }) })
}

// do is Federation.Do with done run under guard.
func (fr *fedRooms) do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	fr.n.Federation().Do(dest, req, func(resp OutboundResponse, err error) { fr.guard(func() { done(resp, err) }) })
}

// peekRoomID reads room_id from a PDU without parsing the rest.
func peekRoomID(raw []byte) (string, error) {
	var p struct {
		RoomID string `json:"room_id"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("PDU is not a JSON object: %v", err)
	}
	if p.RoomID == "" {
		return "", errors.New("PDU has no room_id")
	}
	return p.RoomID, nil
}

// process runs one PDU through every check and stores it.
func (fr *fedRooms) process(job *pduJob, done func(string, error)) {
	rs := fr.rs
	rm, err := rs.room(job.roomID)
	if err != nil {
		done("", rejectf("room %s is not known to this server", job.roomID))
		return
	}
	ev, err := event.Parse(job.raw, rm.version)
	if err != nil {
		id, _ := event.EventID(job.raw, rm.version)
		done(id, rejectf("malformed PDU: %v", err))
		return
	}
	id := ev.ID()
	if err := fr.checkACL(rm, job.origin); err != nil {
		// Not recorded as rejected: the event may be fine from elsewhere.
		done(id, err)
		return
	}
	if ev.RoomID() != rm.id {
		done(id, rejectf("PDU room_id %q differs", ev.RoomID()))
		return
	}
	if known, err := fr.known(id); err != nil || known {
		done(id, err)
		return
	}
	if reason, err := rs.st.RejectedReason(id); err == nil {
		done(id, rejectf("rejected earlier: %s", reason))
		return
	}
	fr.verifyEvents(rm.version, []*event.Event{ev}, func(checked []*event.Event, errs map[string]error) {
		if e := errs[id]; e != nil {
			fr.reject(ev, job.origin, e)
			done(id, e)
			return
		}
		fr.afterSignatures(job, rm.version, checked[0], done)
	})
}

// afterSignatures is steps 4–6: auth events, state before, soft failure.
func (fr *fedRooms) afterSignatures(job *pduJob, v *event.RoomVersion, ev *event.Event, done func(string, error)) {
	id := ev.ID()
	fail := func(err error) {
		fr.reject(ev, job.origin, err)
		done(id, err)
	}
	fr.ensureAuthEvents(job.origin, ev, func(err error) {
		if err != nil {
			fail(err)
			return
		}
		if err := fr.checkAgainstAuthEvents(ev); err != nil {
			fail(err)
			return
		}
		fr.stateBefore(job, ev, func(before store.StateMap, err error) {
			if err != nil {
				// Not the event's fault: we could not learn the state.
				done(id, fmt.Errorf("state before %s: %w", id, err))
				return
			}
			if err := fr.accept(ev, before, job.live); err != nil {
				if errors.Is(err, errRejected) {
					fail(err)
					return
				}
				done(id, err)
				return
			}
			done(id, nil)
		})
	})
}

// known reports whether an event is stored (timeline or outlier).
func (fr *fedRooms) known(id string) (bool, error) {
	_, err := fr.rs.st.Event(id)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return false, err
}

// reject records a rejected event with its reason. Errors that are not
// rejections (keys or auth events that could not be fetched, store
// failures) are not recorded, so the event can be tried again.
func (fr *fedRooms) reject(ev *event.Event, origin string, reason error) {
	if !errors.Is(reason, errRejected) {
		return
	}
	err := fr.rs.st.RoomTx(func(t *store.RoomTx) error {
		return t.InsertRejected(store.Rejected{EventID: ev.ID(), RoomID: ev.RoomID(), Origin: origin,
			Reason: reason.Error(), ReceivedTS: fr.n.Now().UnixMilli(), JSON: ev.JSON()})
	})
	if err != nil {
		fr.n.log.Error("cannot record rejected event", "event", ev.ID(), "err", err)
	}
}

// signingServers lists the servers whose signatures ev must carry: the
// sender's, and for a join through a restricted room the authorising
// user's. An invite made from a third-party invite is exempt from the
// sender's server's signature: the invitee's server builds it on the
// inviter's behalf, and auth rule 4.4.1 checks the third-party signature
// instead (auth.Check applies the same exemption). Spec: server-server-api
// "Validating hashes and signatures on received events"; rooms/v10.md
// rule 4.2.
func signingServers(ev *event.Event) []string {
	var out []string
	if !isThirdPartyInvite(ev) {
		out = append(out, serverOf(ev.Sender()))
	}
	if ev.Type() == auth.TypeMember && ev.Membership() == auth.Join {
		var c struct {
			Via string `json:"join_authorised_via_users_server"`
		}
		if json.Unmarshal(ev.Content(), &c) == nil && c.Via != "" {
			if s := serverOf(c.Via); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// isThirdPartyInvite reports whether ev is an invite carrying
// content.third_party_invite (whatever its value: the auth rules judge it).
func isThirdPartyInvite(ev *event.Event) bool {
	if ev.Type() != auth.TypeMember || ev.Membership() != auth.Invite {
		return false
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(ev.Content(), &c) != nil {
		return false
	}
	_, ok := c["third_party_invite"]
	return ok
}

// eventKey is the federation module's key lookup without fetching. When
// the cache does not know the key and the operator pinned the server's
// signing key (a mesh peer's key token), the pinned key is returned with
// pinned set: a signature that does not verify against it then sends the
// caller to fetch the server's keys instead of rejecting the event.
func (fr *fedRooms) eventKey(server, keyID string, at time.Time) (pub ed25519.PublicKey, pinned bool, err error) {
	n := fr.n
	if server == n.ServerName() && keyID == n.key.ID {
		return n.key.Public(), false, nil
	}
	f := n.Federation()
	if f == nil {
		return nil, false, keys.ErrUnknownKey
	}
	pub, err = f.cache.EventKey(server, keyID, at)
	if err != nil && (errors.Is(err, keys.ErrUnknownKey) || errors.Is(err, keys.ErrExpired)) {
		if p := n.pinned[server]; p != nil {
			return p, true, nil
		}
	}
	return pub, false, err
}

// verifySignatures checks ev's signatures by each server it must be signed
// by; unknownServers lists the servers whose keys were missing.
func (fr *fedRooms) verifySignatures(ev *event.Event) (unknownServers []string, err error) {
	at := time.UnixMilli(ev.OriginServerTS())
	sigs := ev.Signatures()
	for _, server := range signingServers(ev) {
		byKey := sigs[server]
		if len(byKey) == 0 {
			return nil, rejectf("not signed by %s", server)
		}
		ids := make([]string, 0, len(byKey))
		for k := range byKey {
			if strings.HasPrefix(k, "ed25519:") {
				ids = append(ids, k)
			}
		}
		sort.Strings(ids)
		var lastErr error = rejectf("no ed25519 signature by %s", server)
		ok, unknown := false, false
		for _, keyID := range ids {
			pub, pinned, kerr := fr.eventKey(server, keyID, at)
			if kerr != nil {
				if errors.Is(kerr, keys.ErrUnknownKey) || errors.Is(kerr, keys.ErrExpired) {
					unknown = true
				}
				lastErr = rejectf("key %s of %s: %v", keyID, server, kerr)
				continue
			}
			if verr := event.VerifyEventSignature(ev.JSON(), ev.Version(), server, keyID, pub); verr != nil {
				if pinned {
					// Signed with a key other than the pinned one
					// (rotated?): the server's published keys decide.
					unknown = true
				}
				lastErr = rejectf("signature of %s: %v", server, verr)
				continue
			}
			ok = true
			break
		}
		if ok {
			continue
		}
		if unknown {
			unknownServers = append(unknownServers, server)
			continue
		}
		return nil, lastErr
	}
	if len(unknownServers) > 0 {
		// Not a rejection: the keys may be fetchable later.
		return unknownServers, fmt.Errorf("signing keys of %s unavailable", strings.Join(unknownServers, ", "))
	}
	return nil, nil
}

// verifyEvents is steps 2 and 3 for a batch: signatures (fetching the keys
// of servers we do not know, once each) and content hashes. checked holds
// the events that passed, redacted when their hash did not match; errs the
// reason for each that did not.
func (fr *fedRooms) verifyEvents(v *event.RoomVersion, evs []*event.Event, done func(checked []*event.Event, errs map[string]error)) {
	finish := func() {
		var checked []*event.Event
		errs := map[string]error{}
		for _, ev := range evs {
			if _, err := fr.verifySignatures(ev); err != nil {
				errs[ev.ID()] = err
				continue
			}
			if err := event.CheckContentHash(ev.JSON()); err != nil {
				// Step 3: use the redacted event.
				red, rerr := ev.Redact()
				if rerr != nil {
					errs[ev.ID()] = rejectf("content hash mismatch and cannot redact: %v", rerr)
					continue
				}
				fr.n.log.Info("PDU content hash mismatch; using it redacted", "event", ev.ID())
				ev = red
			}
			checked = append(checked, ev)
		}
		done(checked, errs)
	}
	need := map[string]bool{}
	for _, ev := range evs {
		unknown, _ := fr.verifySignatures(ev)
		for _, s := range unknown {
			need[s] = true
		}
	}
	f := fr.n.Federation()
	if len(need) == 0 || f == nil {
		finish()
		return
	}
	servers := make([]string, 0, len(need))
	for s := range need {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	left := len(servers)
	for _, s := range servers {
		f.fetchKeys(s, func(error) {
			left--
			if left == 0 {
				finish()
			}
		})
	}
}

// authEventsOf loads the stored events ev lists as auth events; missing
// lists the ones we lack.
func (fr *fedRooms) authEventsOf(ev *event.Event) (evs []*event.Event, missing []string, err error) {
	ids := ev.AuthEvents()
	if rm := fr.rs.byID[ev.RoomID()]; rm != nil {
		// Usually every auth event is in the current state.
		byID := make(map[string]*event.Event, len(rm.state))
		for _, e := range rm.state {
			byID[e.ID()] = e
		}
		for _, id := range ids {
			if e := byID[id]; e != nil {
				evs = append(evs, e)
			}
		}
		if len(evs) == len(ids) {
			return evs, nil, nil
		}
		evs = nil
	}
	rows, err := fr.rs.st.Events(ids)
	if err != nil {
		return nil, nil, err
	}
	have := map[string]bool{}
	for _, r := range rows {
		e, err := parseRow(r, ev.Version())
		if err != nil {
			return nil, nil, err
		}
		have[r.EventID] = true
		evs = append(evs, e)
	}
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return evs, missing, nil
}

// ensureAuthEvents fetches ev's auth chain from origin when some of its
// auth events are unknown, and stores it as outliers.
func (fr *fedRooms) ensureAuthEvents(origin string, ev *event.Event, done func(error)) {
	_, missing, err := fr.authEventsOf(ev)
	if err != nil || len(missing) == 0 {
		done(err)
		return
	}
	f := fr.n.Federation()
	if f == nil || origin == fr.n.ServerName() {
		done(rejectf("auth events %v unknown", missing))
		return
	}
	var resp struct {
		AuthChain []json.RawMessage `json:"auth_chain"`
	}
	uri := "/_matrix/federation/v1/event_auth/" + url.PathEscape(ev.RoomID()) + "/" + url.PathEscape(ev.ID())
	fr.doJSON(origin, OutboundRequest{Method: "GET", URI: uri}, &resp, func(err error) {
		if err != nil {
			// Not a rejection: the origin may answer later.
			done(fmt.Errorf("auth events %v unknown (event_auth: %w)", missing, err))
			return
		}
		fr.storeOutliers(origin, ev.Version(), ev.RoomID(), resp.AuthChain, func(error) {
			if _, missing, err := fr.authEventsOf(ev); err != nil {
				done(err)
			} else if len(missing) > 0 {
				done(rejectf("auth events %v unknown", missing))
			} else {
				done(nil)
			}
		})
	})
}

// isRejected reports whether an event was rejected.
func (fr *fedRooms) isRejected(id string) bool {
	_, err := fr.rs.st.RejectedReason(id)
	return err == nil
}

// checkAgainstAuthEvents is step 4: the auth rules against the event's own
// auth events.
func (fr *fedRooms) checkAgainstAuthEvents(ev *event.Event) error {
	authEvs, _, err := fr.authEventsOf(ev)
	if err != nil {
		return err
	}
	if err := auth.CheckAuthEvents(ev, authEvs, fr.isRejected); err != nil {
		return rejectf("auth events: %v", err)
	}
	state := auth.NewState(authEvs...)
	if ev.Version().RoomIDFromCreate {
		if err := fr.addCreate(state, ev.RoomID(), ev.Version()); err != nil {
			return err
		}
	}
	if err := auth.Check(ev, state); err != nil {
		return rejectf("not allowed by its auth events: %v", err)
	}
	return nil
}

// addCreate adds a room version 12 room's create event (never listed in
// auth_events) to state.
func (fr *fedRooms) addCreate(state auth.State, roomID string, v *event.RoomVersion) error {
	if state[auth.StateKey{Type: auth.TypeCreate}] != nil || !strings.HasPrefix(roomID, "!") {
		return nil
	}
	// The room ID is "!" and the create event's reference hash; its event
	// ID is "$" and the same (rooms/v12.md "Room IDs").
	row, err := fr.rs.st.Event("$" + roomID[1:])
	if errors.Is(err, store.ErrNotFound) {
		return nil // the rules reject the event for want of it
	}
	if err != nil {
		return err
	}
	c, err := parseRow(row, v)
	if err != nil {
		return err
	}
	if c.IsCreate() && c.ID() == "$"+roomID[1:] {
		state[auth.StateKey{Type: auth.TypeCreate}] = c
	}
	return nil
}

// storeOutliers checks events fetched from origin (an auth chain or a
// state) and stores those that pass as outliers, in auth order; ones that
// fail are recorded as rejected.
func (fr *fedRooms) storeOutliers(origin string, v *event.RoomVersion, roomID string, raws []json.RawMessage,
	done func(error)) {
	var evs []*event.Event
	seen := map[string]bool{}
	for _, raw := range raws {
		ev, err := event.Parse(raw, v)
		if err != nil || seen[ev.ID()] {
			continue
		}
		seen[ev.ID()] = true
		if ev.RoomID() != roomID {
			continue
		}
		if ok, _ := fr.known(ev.ID()); ok || fr.isRejected(ev.ID()) {
			continue
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		done(nil)
		return
	}
	fr.verifyEvents(v, evs, func(checked []*event.Event, errs map[string]error) {
		for _, ev := range evs {
			if e := errs[ev.ID()]; e != nil {
				fr.reject(ev, origin, e)
			}
		}
		done(fr.storeCheckedOutliers(origin, authOrder(checked)))
	})
}

// authOrder sorts events so each comes after the events of the list it
// names in auth_events (ties by depth, then ID).
func authOrder(evs []*event.Event) []*event.Event {
	return dagOrder(evs, (*event.Event).AuthEvents)
}

// prevOrder sorts events so each comes after the events of the list it
// names in prev_events, oldest first (ties by depth, then ID).
func prevOrder(evs []*event.Event) []*event.Event {
	return dagOrder(evs, (*event.Event).PrevEvents)
}

// dagOrder sorts events so each comes after the events of the list that
// edges names (ties by depth, then ID); a cycle is broken where it is met.
func dagOrder(evs []*event.Event, edges func(*event.Event) []string) []*event.Event {
	byID := map[string]*event.Event{}
	for _, e := range evs {
		byID[e.ID()] = e
	}
	sorted := slices.Clone(evs)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Depth() != sorted[j].Depth() {
			return sorted[i].Depth() < sorted[j].Depth()
		}
		return sorted[i].ID() < sorted[j].ID()
	})
	var out []*event.Event
	placed := map[string]bool{}
	var visit func(e *event.Event, stack map[string]bool)
	visit = func(e *event.Event, stack map[string]bool) {
		if placed[e.ID()] || stack[e.ID()] {
			return
		}
		stack[e.ID()] = true
		for _, a := range edges(e) {
			if p := byID[a]; p != nil {
				visit(p, stack)
			}
		}
		placed[e.ID()] = true
		out = append(out, e)
	}
	for _, e := range sorted {
		visit(e, map[string]bool{})
	}
	return out
}

// storeCheckedOutliers runs step 4 on each event (in auth order) and stores
// those that pass as outliers with unknown state.
func (fr *fedRooms) storeCheckedOutliers(origin string, evs []*event.Event) error {
	for _, ev := range evs {
		if err := fr.checkAgainstAuthEvents(ev); err != nil {
			if errors.Is(err, errRejected) {
				fr.reject(ev, origin, err)
				continue
			}
			return err
		}
		if err := fr.storeOutlier(ev, nil); err != nil {
			return err
		}
	}
	return nil
}

// stateAfterEvent returns the state after a stored event, ok false when
// the event is unknown, rejected or its state is not known.
func (fr *fedRooms) stateAfterEvent(id string) (store.StateMap, bool, error) {
	st, _, ok, err := fr.stateAfterGroup(id)
	return st, ok, err
}

// stateAfterGroup is stateAfterEvent with the header of the state group
// it was stored as (ID 0: the empty state).
func (fr *fedRooms) stateAfterGroup(id string) (store.StateMap, store.StateGroup, bool, error) {
	row, err := fr.rs.st.Event(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, store.StateGroup{}, false, nil
	}
	if err != nil {
		return nil, store.StateGroup{}, false, err
	}
	if row.StateAfter < 0 {
		return nil, store.StateGroup{}, false, nil
	}
	if row.StateAfter == 0 {
		return store.StateMap{}, store.StateGroup{}, true, nil
	}
	m, g, err := fr.rs.st.LoadStateGroup(row.StateAfter)
	if err != nil {
		return nil, store.StateGroup{}, false, err
	}
	return m, g, true, nil
}

// stateBefore is step 5's input: the state before ev. With every prev event
// known it is the resolution of their states after; otherwise the gap is
// filled from job.origin (get_missing_events, then /state).
func (fr *fedRooms) stateBefore(job *pduJob, ev *event.Event, done func(store.StateMap, error)) {
	if rm, err := fr.rs.room(ev.RoomID()); err == nil && sameSet(ev.PrevEvents(), rm.extremities) {
		// On top of every forward extremity: the state before it is the
		// current state (the resolution of the states after them).
		done(rm.stateIDs, nil)
		return
	}
	sets, missing, err := fr.prevStates(ev)
	if err != nil {
		done(nil, err)
		return
	}
	if len(missing) == 0 {
		st, err := fr.resolve(ev.Version(), sets)
		done(st, err)
		return
	}
	f := fr.n.Federation()
	if f == nil || job.origin == fr.n.ServerName() {
		done(nil, fmt.Errorf("prev events %v unknown", missing))
		return
	}
	viaState := func() {
		fr.fetchStateAt(job.origin, ev, func(st store.StateMap, err error) { done(st, err) })
	}
	if !job.live {
		viaState()
		return
	}
	fr.fetchMissing(job.origin, ev, func() {
		sets, missing, err := fr.prevStates(ev)
		if err != nil {
			done(nil, err)
			return
		}
		if len(missing) > 0 {
			viaState()
			return
		}
		st, err := fr.resolve(ev.Version(), sets)
		done(st, err)
	})
}

// prevStates loads the states after ev's prev events; missing lists prev
// events unknown (or of unknown state). Rejected prev events are skipped.
func (fr *fedRooms) prevStates(ev *event.Event) (sets []store.StateMap, missing []string, err error) {
	for _, p := range ev.PrevEvents() {
		if fr.isRejected(p) {
			continue
		}
		st, ok, err := fr.stateAfterEvent(p)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			missing = append(missing, p)
			continue
		}
		sets = append(sets, st)
	}
	return sets, missing, nil
}

// resolve is state resolution over stored events (and extra, events not
// stored yet).
func (fr *fedRooms) resolve(v *event.RoomVersion, sets []store.StateMap, extra ...*event.Event) (store.StateMap, error) {
	switch len(sets) {
	case 0:
		return store.StateMap{}, nil
	case 1:
		return sets[0], nil
	}
	in := make([]map[auth.StateKey]string, len(sets))
	for i, s := range sets {
		m := make(map[auth.StateKey]string, len(s))
		for k, id := range s {
			m[auth.StateKey{Type: k.Type, StateKey: k.StateKey}] = id
		}
		in[i] = m
	}
	out, err := stateres.Resolve(v, in, func(id string) (*event.Event, error) {
		for _, e := range extra {
			if e.ID() == id {
				return e, nil
			}
		}
		row, err := fr.rs.st.Event(id)
		if err != nil {
			return nil, err
		}
		return parseRow(row, v)
	})
	if err != nil {
		return nil, fmt.Errorf("resolve state: %w", err)
	}
	res := make(store.StateMap, len(out))
	for k, id := range out {
		res[store.StateKey{Type: k.Type, StateKey: k.StateKey}] = id
	}
	return res, nil
}

// fetchMissing asks origin for the events between our forward extremities
// and ev (POST /get_missing_events) and runs each through the checks,
// oldest first. Spec: server-server-api "POST
// /_matrix/federation/v1/get_missing_events/{roomId}".
func (fr *fedRooms) fetchMissing(origin string, ev *event.Event, done func()) {
	rm, err := fr.rs.room(ev.RoomID())
	if err != nil {
		done()
		return
	}
	body, _ := json.Marshal(map[string]any{
		"earliest_events": nonNil(rm.extremities), "latest_events": []string{ev.ID()},
		"limit": missingEventsLimit, "min_depth": 0,
	})
	var resp struct {
		Events []json.RawMessage `json:"events"`
	}
	uri := "/_matrix/federation/v1/get_missing_events/" + url.PathEscape(ev.RoomID())
	fr.doJSON(origin, OutboundRequest{Method: "POST", URI: uri, Body: body}, &resp, func(err error) {
		if err != nil {
			fr.n.log.Info("get_missing_events failed", "origin", origin, "room", ev.RoomID(), "err", err)
			done()
			return
		}
		var evs []*event.Event
		for _, raw := range resp.Events {
			e, err := event.Parse(raw, ev.Version())
			if err == nil && e.ID() != ev.ID() {
				evs = append(evs, e)
			}
		}
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Depth() < evs[j].Depth() })
		fr.processFetched(origin, evs, done)
	})
}

// processFetched runs fetched events through the checks one after another
// (not live: no soft failure, gaps filled with /state).
func (fr *fedRooms) processFetched(origin string, evs []*event.Event, done func()) {
	if len(evs) == 0 {
		done()
		return
	}
	job := &pduJob{origin: origin, raw: evs[0].JSON(), roomID: evs[0].RoomID()}
	fr.process(job, func(id string, err error) {
		if err != nil {
			fr.n.log.Info("fetched event not accepted", "event", id, "err", err)
		}
		fr.processFetched(origin, evs[1:], done)
	})
}

// fetchStateAt asks origin for the state before ev. It asks for the IDs
// first (GET /state_ids with event_id = ev): when every one is an event
// this server holds, that is the state and nothing more crosses the link.
// Otherwise it asks for the events (GET /state), checks them and stores
// them as outliers. Spec: server-server-api "GET
// /_matrix/federation/v1/state_ids", "GET /_matrix/federation/v1/state".
// NOTSPEC: the spec's servers ask for the state at each missing prev event
// and resolve those; asking the origin for the state at ev itself (which it
// has just sent, so it knows) takes one request instead of one per prev
// event. Either way the remote server's answer is trusted as the state, and
// every state event is still checked against its own auth events.
func (fr *fedRooms) fetchStateAt(origin string, ev *event.Event, done func(store.StateMap, error)) {
	var ids struct {
		PDUIDs []string `json:"pdu_ids"`
	}
	uri := "/_matrix/federation/v1/state_ids/" + url.PathEscape(ev.RoomID()) + "?event_id=" + url.QueryEscape(ev.ID())
	fr.doJSON(origin, OutboundRequest{Method: "GET", URI: uri}, &ids, func(err error) {
		var remote *RemoteError
		if err != nil && !errors.As(err, &remote) {
			done(nil, fmt.Errorf("fetch state: %w", err))
			return
		}
		if err == nil {
			st, ok, err := fr.knownState(ev.RoomID(), ids.PDUIDs)
			if err != nil || ok {
				done(st, err)
				return
			}
		}
		fr.fetchFullStateAt(origin, ev, done)
	})
}

// knownState builds the state map of a list of state event IDs when this
// server holds every one (rejected ones are left out of the state); ok is
// false when some are unknown.
func (fr *fedRooms) knownState(roomID string, ids []string) (store.StateMap, bool, error) {
	rows, err := fr.rs.st.Events(ids)
	if err != nil {
		return nil, false, err
	}
	st := store.StateMap{}
	have := map[string]bool{}
	for _, r := range rows {
		if r.RoomID != roomID || r.StateKey == nil {
			return nil, false, nil
		}
		have[r.EventID] = true
		st[store.StateKey{Type: r.Type, StateKey: *r.StateKey}] = r.EventID
	}
	for _, id := range ids {
		if !have[id] && !fr.isRejected(id) {
			return nil, false, nil
		}
	}
	return st, true, nil
}

// fetchFullStateAt asks origin for the state events before ev and their
// auth chain (GET /state), checks and stores them as outliers, and returns
// the state map.
func (fr *fedRooms) fetchFullStateAt(origin string, ev *event.Event, done func(store.StateMap, error)) {
	var resp struct {
		AuthChain []json.RawMessage `json:"auth_chain"`
		PDUs      []json.RawMessage `json:"pdus"`
	}
	uri := "/_matrix/federation/v1/state/" + url.PathEscape(ev.RoomID()) + "?event_id=" + url.QueryEscape(ev.ID())
	fr.doJSON(origin, OutboundRequest{Method: "GET", URI: uri}, &resp, func(err error) {
		if err != nil {
			done(nil, fmt.Errorf("fetch state: %w", err))
			return
		}
		all := append(slices.Clone(resp.AuthChain), resp.PDUs...)
		fr.storeOutliers(origin, ev.Version(), ev.RoomID(), all, func(err error) {
			if err != nil {
				done(nil, err)
				return
			}
			st, err := fr.stateFromPDUs(ev.Version(), resp.PDUs)
			done(st, err)
		})
	})
}

// stateFromPDUs turns a list of state events (already checked and stored)
// into a state map; events that were not accepted are left out.
func (fr *fedRooms) stateFromPDUs(v *event.RoomVersion, pdus []json.RawMessage) (store.StateMap, error) {
	st := store.StateMap{}
	for _, raw := range pdus {
		e, err := event.Parse(raw, v)
		if err != nil {
			continue
		}
		sk, ok := e.StateKey()
		if !ok {
			continue
		}
		if known, err := fr.known(e.ID()); err != nil {
			return nil, err
		} else if !known {
			continue
		}
		st[store.StateKey{Type: e.Type(), StateKey: sk}] = e.ID()
	}
	return st, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkAgainstState is step 5: the auth rules against the state before
// ev. Only the state the rules read (the event's auth state keys and the
// create event) is loaded, from the room's cached current state when the
// same events are there.
func (fr *fedRooms) checkAgainstState(rm *roomCache, ev *event.Event, before store.StateMap) error {
	v := ev.Version()
	keys := append(auth.AppendAuthStateKeys(nil, ev), auth.StateKey{Type: auth.TypeCreate})
	state := auth.State{}
	load := store.StateMap{}
	for _, k := range keys {
		sk := store.StateKey{Type: k.Type, StateKey: k.StateKey}
		id, ok := before[sk]
		if !ok {
			continue
		}
		if e := rm.state[k]; e != nil && e.ID() == id {
			state[k] = e
			continue
		}
		load[sk] = id
	}
	if len(load) > 0 {
		loaded, err := fr.rs.loadState(load, v)
		if err != nil {
			return err
		}
		maps.Copy(state, loaded)
	}
	if v.RoomIDFromCreate {
		if err := fr.addCreate(state, ev.RoomID(), v); err != nil {
			return err
		}
	}
	if err := auth.Check(ev, state); err != nil {
		return rejectf("not allowed by the state before it: %v", err)
	}
	return nil
}

// accept is steps 5 and 6 and storage: ev (checked against its auth
// events) is checked against the state before it, then against the current
// state when live, and stored.
func (fr *fedRooms) accept(ev *event.Event, before store.StateMap, live bool) error {
	rs := fr.rs
	rm, err := rs.room(ev.RoomID())
	if err != nil {
		return err
	}
	if err := fr.checkAgainstState(rm, ev, before); err != nil {
		return err
	}
	if live {
		cur := maps.Clone(rm.state)
		if err := auth.Check(ev, cur); err != nil {
			// Step 6: soft failure.
			fr.n.log.Info("PDU soft-failed", "event", ev.ID(), "room", ev.RoomID(), "err", err)
			return fr.storeOutlier(ev, before)
		}
	}
	return fr.storeTimeline(rm, ev, before)
}

// sameSet reports whether a and b hold the same strings (b is sorted and
// without duplicates, as forward extremities are).
func sameSet(a, b []string) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			return false
		}
	}
	return true
}
