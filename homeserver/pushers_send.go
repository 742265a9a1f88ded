package homeserver

// Sending push notifications. Spec: client-server-api "Push
// Notifications" ("Server behaviour": when an event arrives, the push
// rules of each local member other than the sender are evaluated) and
// push-gateway-api POST /_matrix/push/v1/notify.
//
// Every event that enters a room's timeline, made here or received over
// federation, passes through roomsModule.write; once its batch has
// committed, pushCommitted looks at the batch's rooms. Only members who
// have a pusher (pushersModule.users) are considered, so rooms without
// any cost nothing beyond a map lookup per member. For each of them whose
// rules say notify (evalPushRules with the context sync uses for its
// counts), a notification is queued on each of the user's pushers. An
// invite over federation to a room this server is not in enters no
// timeline; handleInvite hands it to pushRemoteInvite instead.
//
// Each pusher has its own queue with at most one request in flight. A
// burst coalesces: a queued notification for a room is replaced by a
// newer one for the same room (the gateway gets the newest event and the
// current count), and a queue holds at most maxPushPending rooms (the
// oldest is dropped). The body is built when the request goes out, so
// counts.unread is current then (computed once per user for the
// requests a commit batch starts). A pusher is looked up by its key. Transport failures, 5xx and 429 are
// retried after pushRetryBase, doubling up to pushRetryMax, at most
// maxPushAttempts times; then the notification is dropped. Retries and
// queues live in memory only: a restart loses what was queued. Pushkeys
// the gateway lists in "rejected" lose their pusher.

import (
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Pusher is the node's seam to push gateways (push-gateway-api). Notify
// POSTs body (JSON) to url and returns at once; done runs later inside the
// node loop (never inside Notify) with the HTTP status and the start of
// the answer's body, or with err for a failure to get an answer (status 0).
// Implementations: gateway.PushClient (HTTPS) and MemoryPusher (tests and
// the simulator).
type Pusher interface {
	Notify(url string, body []byte, done func(status int, respBody []byte, err error))
}

// Push sending limits.
const (
	// maxPushPending bounds the notifications queued per pusher.
	maxPushPending = 32
	// maxPushAttempts bounds the tries of one notification.
	maxPushAttempts = 8
	// pushRetryBase is the wait before the first retry; it doubles up to
	// pushRetryMax.
	pushRetryBase = 2 * time.Second
	pushRetryMax  = 10 * time.Minute
	// maxPushScan bounds the events of one room looked at per batch (the
	// oldest are taken; a larger batch, a federation catch-up, notifies
	// for its first ones only).
	maxPushScan = 100
	// pushNotifyPath is the path every http pusher's URL must have
	// (client-server-api POST /pushers/set, data.url).
	pushNotifyPath = "/_matrix/push/v1/notify"
)

// pushKey names one pusher.
type pushKey struct{ userID, appID, pushKey string }

// pushNote is one queued notification: the event and what the user's push
// rules said about it.
type pushNote struct {
	roomID, eventID, typ, sender string
	content                      json.RawMessage
	senderName, roomName, alias  string
	userIsTarget, highlight      bool
	sound                        string // the sound tweak, "" for none
}

// pushQueue is the queue of one pusher.
type pushQueue struct {
	key      pushKey
	pending  []pushNote
	inFlight bool
	attempts int         // failed tries of pending[0]
	retry    clock.Timer // set while waiting to retry
}

// pushCommitted runs once a write batch has committed (roomsModule.write):
// it queues the notifications the new events in rooms call for.
func (rs *roomsModule) pushCommitted(rooms map[string]bool) {
	pm := pushersOf(rs.n)
	if pm == nil {
		return
	}
	from := pm.seen
	pm.seen = max(pm.seen, rs.pos)
	pm.batchUnread = map[string]int{}
	defer func() { pm.batchUnread = nil }()
	if len(pm.users) == 0 || rs.n.pusher == nil || len(rooms) == 0 {
		return
	}
	ids := make([]string, 0, len(rooms))
	for id := range rooms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, roomID := range ids {
		if err := pm.roomEvents(rs, roomID, from, pm.seen); err != nil {
			rs.n.log.Warn("push: evaluating new events failed", "room_id", roomID, "err", err)
		}
	}
}

// roomEvents evaluates the push rules of the room's local members with
// pushers for the events of the room in (from, upTo].
func (pm *pushersModule) roomEvents(rs *roomsModule, roomID string, from, upTo int64) error {
	members := rs.members[roomID]
	var users []string
	consider := func(u string) {
		if m, ok := members[u]; ok && (m.Membership == auth.Join || m.Membership == auth.Invite) && serverOf(u) == rs.n.ServerName() {
			users = append(users, u)
		}
	}
	// Walk the smaller side: the users with pushers or the room's members.
	if len(pm.users) < len(members) {
		for u := range pm.users {
			consider(u)
		}
	} else {
		for u := range members {
			if pm.users[u] {
				consider(u)
			}
		}
	}
	if len(users) == 0 {
		return nil
	}
	sort.Strings(users)
	rows, err := rs.st.RoomEventsRange(roomID, from, upTo, true, maxPushScan)
	if err != nil || len(rows) == 0 {
		return err
	}
	rm, err := rs.room(roomID)
	if err != nil {
		return err
	}
	for _, u := range users {
		pushers, err := rs.st.Pushers(u)
		if err != nil {
			return err
		}
		if len(pushers) == 0 {
			delete(pm.users, u) // deleted with its device
			continue
		}
		rules, err := rs.cachedPushRules(u)
		if err != nil {
			return err
		}
		pc := rs.pushContextFor(rm, u)
		joined := rs.members[roomID][u].Membership == auth.Join
		for _, r := range rows {
			if r.Sender == u || r.RedactedBy != "" {
				continue // never for the user's own events
			}
			target := r.Type == auth.TypeMember && r.StateKey != nil && *r.StateKey == u
			if !joined && !target {
				continue // an invited user hears of their own invite only
			}
			var ev map[string]any
			if json.Unmarshal(r.JSON, &ev) != nil {
				continue
			}
			pc.senderPower = auth.PowerLevel(rm.state, r.Sender)
			o := evalPushRules(rules, ev, pc, &rs.globs)
			if !o.notify {
				continue
			}
			note := pushNote{roomID: roomID, eventID: r.EventID, typ: r.Type, sender: r.Sender,
				userIsTarget: target, highlight: o.highlight, sound: o.sound}
			note.content, _ = json.Marshal(ev["content"])
			note.senderName, note.roomName, note.alias = roomNames(rm, r.Sender)
			for _, p := range pushers {
				pm.enqueue(pushKey{u, p.AppID, p.PushKey}, note)
			}
		}
	}
	return nil
}

// roomNames returns the sender's display name, the room's name and its
// canonical alias from the room's current state ("" where unset).
func roomNames(rm *roomCache, sender string) (senderName, roomName, alias string) {
	field := func(typ, stateKey, name string) string {
		e := rm.state[auth.StateKey{Type: typ, StateKey: stateKey}]
		if e == nil {
			return ""
		}
		var c map[string]any
		if json.Unmarshal(e.Content(), &c) != nil {
			return ""
		}
		s, _ := c[name].(string)
		return s
	}
	return field(auth.TypeMember, sender, "displayname"), field("m.room.name", "", "name"),
		field("m.room.canonical_alias", "", "alias")
}

// enqueue queues a notification on one pusher and starts sending.
func (pm *pushersModule) enqueue(k pushKey, note pushNote) {
	q := pm.queues[k]
	if q == nil {
		q = &pushQueue{key: k}
		pm.queues[k] = q
	}
	// A queued notification for the same room is replaced by the newer
	// event, unless it is in flight.
	start := 0
	if q.inFlight {
		start = 1
	}
	for i := start; i < len(q.pending); i++ {
		if q.pending[i].roomID == note.roomID {
			q.pending[i] = note
			pm.send(q)
			return
		}
	}
	q.pending = append(q.pending, note)
	if len(q.pending) > maxPushPending {
		drop := start // never the one in flight
		q.pending = slices.Delete(q.pending, drop, drop+1)
		if drop == 0 {
			q.attempts = 0
		}
	}
	pm.send(q)
}

// send posts the queue's first notification unless one is in flight or
// waiting to be retried.
func (pm *pushersModule) send(q *pushQueue) {
	n := pm.n
	if q.inFlight || q.retry != nil || n.pusher == nil || n.stopped {
		return
	}
	for len(q.pending) > 0 {
		p, ok, err := pm.pusherOf(q.key)
		if err != nil {
			n.log.Warn("push: loading pusher failed", "user_id", q.key.userID, "err", err)
			pm.backoff(q)
			return
		}
		if !ok {
			delete(pm.queues, q.key) // deleted meanwhile
			return
		}
		body, err := pm.notifyBody(p, q.pending[0])
		if err != nil {
			n.log.Warn("push: building notification failed", "user_id", q.key.userID, "err", err)
			q.pending = q.pending[1:]
			continue
		}
		var data struct {
			URL string `json:"url"`
		}
		_ = json.Unmarshal(p.Data, &data)
		q.inFlight = true
		sent := q.pending[0].eventID
		n.pusher.Notify(data.URL, body, func(status int, resp []byte, err error) {
			pm.answered(q, sent, status, resp, err)
		})
		return
	}
	delete(pm.queues, q.key)
}

// pusherOf loads one pusher from the store; ok is false when it is gone.
func (pm *pushersModule) pusherOf(k pushKey) (p store.Pusher, ok bool, err error) {
	p, err = pm.n.store.Pusher(k.userID, k.appID, k.pushKey)
	if errors.Is(err, store.ErrNotFound) {
		return store.Pusher{}, false, nil
	}
	return p, err == nil, err
}

// answered handles the gateway's answer to the notification of event sent.
func (pm *pushersModule) answered(q *pushQueue, sent string, status int, resp []byte, err error) {
	n := pm.n
	q.inFlight = false
	if pm.queues[q.key] != q {
		return // the pusher was deleted meanwhile
	}
	switch {
	case err != nil || status >= 500 || status == 429:
		n.log.Debug("push: gateway failed", "user_id", q.key.userID, "app_id", q.key.appID, "status", status, "err", err)
		pm.backoff(q)
		return
	case status >= 200 && status < 300:
		var r struct {
			Rejected []string `json:"rejected"`
		}
		_ = json.Unmarshal(resp, &r)
		if slices.Contains(r.Rejected, q.key.pushKey) {
			// push-gateway-api: "Homeservers must cease sending
			// notification requests for these pushkeys and remove the
			// associated pushers."
			n.log.Info("push: gateway rejected pushkey; pusher removed", "user_id", q.key.userID, "app_id", q.key.appID)
			if _, err := n.store.DeletePusher(q.key.userID, q.key.appID, q.key.pushKey); err != nil {
				n.log.Warn("push: removing rejected pusher failed", "user_id", q.key.userID, "err", err)
			}
			delete(pm.queues, q.key)
			return
		}
	default:
		// Another 4xx: the gateway will not take it; retrying cannot help.
		n.log.Warn("push: gateway refused notification", "user_id", q.key.userID, "app_id", q.key.appID, "status", status)
	}
	if len(q.pending) > 0 && q.pending[0].eventID == sent {
		q.pending = q.pending[1:]
	}
	q.attempts = 0
	pm.send(q)
}

// backoff waits before retrying the queue's first notification, or drops
// it after maxPushAttempts.
func (pm *pushersModule) backoff(q *pushQueue) {
	q.attempts++
	if q.attempts >= maxPushAttempts {
		pm.n.log.Warn("push: giving up on a notification", "user_id", q.key.userID, "app_id", q.key.appID, "attempts", q.attempts)
		if len(q.pending) > 0 {
			q.pending = q.pending[1:]
		}
		q.attempts = 0
		pm.send(q)
		return
	}
	d := pushRetryBase << (q.attempts - 1)
	if d > pushRetryMax {
		d = pushRetryMax
	}
	q.retry = pm.n.AfterFunc(d, func() {
		q.retry = nil
		if pm.queues[q.key] == q {
			pm.send(q)
		}
	})
}

// notifyBody is the push-gateway-api notify request for one notification
// on pusher p. counts.unread is the user's unread notification count over
// all of their rooms, as /sync counts them.
func (pm *pushersModule) notifyBody(p store.Pusher, note pushNote) ([]byte, error) {
	var data map[string]any
	if err := json.Unmarshal(p.Data, &data); err != nil {
		return nil, err
	}
	format, _ := data["format"].(string)
	delete(data, "url")
	// The matching rule's tweaks; prio is high when the device should
	// wake (a sound, a highlight, or an encrypted event whose content the
	// server cannot judge), low otherwise (push-gateway-api "prio").
	tweaks := map[string]any{}
	if note.highlight {
		tweaks["highlight"] = true
	}
	if note.sound != "" {
		tweaks["sound"] = note.sound
	}
	prio := "low"
	if note.highlight || note.sound != "" || note.typ == "m.room.encrypted" {
		prio = "high"
	}
	device := map[string]any{"app_id": p.AppID, "pushkey": p.PushKey, "pushkey_ts": p.PushKeyTS / 1000,
		"data": data, "tweaks": tweaks}
	notif := map[string]any{"event_id": note.eventID, "room_id": note.roomID, "prio": prio,
		"devices": []any{device}}
	unread, err := pm.unreadTotal(p.UserID)
	if err != nil {
		return nil, err
	}
	if unread > 0 {
		notif["counts"] = map[string]any{"unread": unread}
	}
	if format != "event_id_only" {
		notif["type"] = note.typ
		notif["sender"] = note.sender
		if note.senderName != "" {
			notif["sender_display_name"] = note.senderName
		}
		if note.roomName != "" {
			notif["room_name"] = note.roomName
		}
		if note.alias != "" {
			notif["room_alias"] = note.alias
		}
		if note.userIsTarget {
			notif["user_is_target"] = true
		}
		if len(note.content) > 0 && string(note.content) != "null" {
			notif["content"] = note.content
		}
	}
	return json.Marshal(map[string]any{"notification": notif})
}

// unreadTotal sums the user's unread notification counts over the rooms
// they are joined to (push-gateway-api counts.unread: "across all of the
// rooms they are a member of"), with the counting /sync uses. Within a
// commit batch (pushCommitted) it is computed once per user: the batch's
// notifications to all of the user's pushers and rooms share it.
func (pm *pushersModule) unreadTotal(userID string) (int, error) {
	if total, ok := pm.batchUnread[userID]; ok {
		return total, nil
	}
	rs := roomsOf(pm.n)
	if rs == nil {
		return 0, nil
	}
	pm.unreadTotals++
	rooms := make([]string, 0, len(rs.userRooms[userID]))
	for id := range rs.userRooms[userID] {
		if rs.membership(id, userID) == auth.Join {
			rooms = append(rooms, id)
		}
	}
	sort.Strings(rooms)
	total := 0
	for _, id := range rooms {
		c, err := rs.unreadCounts(id, userID, rs.pos)
		if err != nil {
			return 0, err
		}
		total += c.Notification
	}
	if pm.batchUnread != nil {
		pm.batchUnread[userID] = total
	}
	return total, nil
}

// pushURLAllowed reports whether u may be an http pusher's data.url: an
// https URL with the path /_matrix/push/v1/notify (client-server-api
// POST /pushers/set).
// NOTSPEC: http is allowed too when the host is a loopback address or
// localhost, for a push gateway on the same machine and for tests.
func pushURLAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Path != pushNotifyPath || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		a, err := netip.ParseAddr(h)
		return err == nil && a.IsLoopback()
	}
	return false
}

// MemoryPusher is a Pusher for tests and the simulator: notifications
// wait in a FIFO queue until Run delivers them to Handle, whose answer
// goes to the node's done callback. It belongs to the driver of the node
// loop (no locking).
type MemoryPusher struct {
	// Handle answers one notification; nil answers 200 {"rejected":[]}.
	Handle func(url string, body []byte) (status int, resp []byte, err error)
	// Sent records every notification delivered, in order.
	Sent  []PushRequest
	queue []memPush
}

// PushRequest is one notification a MemoryPusher delivered.
type PushRequest struct {
	URL  string
	Body []byte
}

type memPush struct {
	req  PushRequest
	done func(int, []byte, error)
}

// Notify implements Pusher.
func (m *MemoryPusher) Notify(url string, body []byte, done func(int, []byte, error)) {
	m.queue = append(m.queue, memPush{PushRequest{url, append([]byte(nil), body...)}, done})
}

// Pending is the number of notifications waiting for Run.
func (m *MemoryPusher) Pending() int { return len(m.queue) }

// Run delivers the queued notifications, and those their answers cause,
// until the queue is empty; it returns how many it delivered.
func (m *MemoryPusher) Run() int {
	n := 0
	for len(m.queue) > 0 {
		p := m.queue[0]
		m.queue = m.queue[1:]
		m.Sent = append(m.Sent, p.req)
		status, resp, err := 200, []byte(`{"rejected":[]}`), error(nil)
		if m.Handle != nil {
			status, resp, err = m.Handle(p.req.URL, p.req.Body)
		}
		p.done(status, resp, err)
		n++
	}
	return n
}

// pushRemoteInvite queues the notifications for an invite that arrived
// over federation (PUT /v2/invite) to a room this server is not in. Such
// an invite enters no timeline, so pushCommitted never sees it; the
// invitee's push rules are evaluated for the invite event here instead
// (client-server-api "Push Notifications": the invitee is a local member
// now, and the default override .m.rule.invite_for_me notifies).
// inviteState is the stripped state the inviting server sent: it gives the
// room's name and alias, the sender's display name and the joined member
// count the rules see. signed is the invite event as stored, eventID its ID.
// NOTSPEC: without the room's state, sender_notification_permission
// conditions see the sender's power as 0 and no notification levels.
func (rs *roomsModule) pushRemoteInvite(userID, eventID string, signed []byte, inviteState []json.RawMessage) {
	pm := pushersOf(rs.n)
	if pm == nil || !pm.users[userID] || rs.n.pusher == nil {
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(signed, &ev); err != nil {
		rs.n.log.Warn("push: decoding remote invite failed", "user_id", userID, "err", err)
		return
	}
	roomID, _ := ev["room_id"].(string)
	sender, _ := ev["sender"].(string)
	pushers, err := rs.st.Pushers(userID)
	if err != nil {
		rs.n.log.Warn("push: loading pushers failed", "user_id", userID, "err", err)
		return
	}
	if len(pushers) == 0 {
		delete(pm.users, userID)
		return
	}
	rules, err := rs.cachedPushRules(userID)
	if err != nil {
		rs.n.log.Warn("push: loading push rules failed", "user_id", userID, "err", err)
		return
	}
	// The stripped state, by type and state key.
	stripped := map[auth.StateKey]map[string]any{}
	for _, raw := range inviteState {
		var s struct {
			Type     string         `json:"type"`
			StateKey *string        `json:"state_key"`
			Content  map[string]any `json:"content"`
		}
		if json.Unmarshal(raw, &s) == nil && s.StateKey != nil {
			stripped[auth.StateKey{Type: s.Type, StateKey: *s.StateKey}] = s.Content
		}
	}
	field := func(typ, stateKey, name string) string {
		v, _ := stripped[auth.StateKey{Type: typ, StateKey: stateKey}][name].(string)
		return v
	}
	pc := &pushContext{userID: userID, notifyLevels: map[string]int64{}}
	if c, _ := ev["content"].(map[string]any); c != nil {
		pc.displayName, _ = c["displayname"].(string)
	}
	for k, c := range stripped {
		if m, _ := c["membership"].(string); k.Type == auth.TypeMember && m == auth.Join {
			pc.memberCount++
		}
	}
	o := evalPushRules(rules, ev, pc, &rs.globs)
	if !o.notify {
		return
	}
	note := pushNote{roomID: roomID, eventID: eventID, typ: auth.TypeMember, sender: sender,
		userIsTarget: true, highlight: o.highlight, sound: o.sound,
		senderName: field(auth.TypeMember, sender, "displayname"), roomName: field("m.room.name", "", "name"),
		alias: field("m.room.canonical_alias", "", "alias")}
	note.content, _ = json.Marshal(ev["content"])
	for _, p := range pushers {
		pm.enqueue(pushKey{userID, p.AppID, p.PushKey}, note)
	}
}
