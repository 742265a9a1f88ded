package homeserver

// The extensions of sliding sync (slidingsync.go): to_device (MSC3885),
// e2ee (MSC3884), account_data, receipts (MSC3960) and typing, each
// enabled by its "enabled" flag. account_data, receipts and typing cover
// the rooms of the window (the lists named in the extension's "lists",
// all lists when left out; the rooms in its "rooms", "*" for every
// subscription, all subscriptions when left out).

import (
	"encoding/json"
	"strconv"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// on reports whether an extension is enabled.
func (c *ssExtConfig) on() bool { return c.Enabled != nil && *c.Enabled }

// covers reports whether an extension covers a room of the window.
func (c *ssExtConfig) covers(q *ssRequest, roomID string, mc *ssMerged) bool {
	if c.Lists == nil && len(mc.lists) > 0 {
		return true
	}
	if c.Lists != nil {
		for _, l := range mc.lists {
			if containsStr(*c.Lists, l) {
				return true
			}
		}
	}
	if _, sub := q.RoomSubscriptions[roomID]; !sub {
		return false
	}
	return c.Rooms == nil || containsStr(*c.Rooms, "*") || containsStr(*c.Rooms, roomID)
}

// extensions fills resp.Extensions; news reports whether any of it should
// end a long poll. initialRooms are the rooms sent whole in this response.
func (b *ssBuild) extensions(resp *ssResponse, window map[string]*ssMerged, initialRooms map[string]bool) (news bool, err error) {
	rs, x, since := b.m.rs, &b.q.Extensions, b.base.pos
	// A room not sent on this connection before (or sent whole again)
	// gets its receipts and account data whole; the others what changed
	// since the extensions last covered them.
	whole := func(roomID string) bool {
		_, sent := b.base.rooms[roomID]
		return !sent || initialRooms[roomID]
	}
	roomSince := func(roomID string) int64 { return b.base.rooms[roomID].extPos }
	rooms := sortedMapKeys(window)

	if td := x.ToDevice; td.Enabled != nil && *td.Enabled && b.deviceID != "" {
		out, n, err := b.toDevice()
		if err != nil {
			return false, err
		}
		resp.Extensions["to_device"] = out
		news = news || n
	}

	if x.E2EE.on() && b.deviceID != "" {
		out := map[string]any{}
		counts, err := rs.st.OneTimeKeyCounts(b.userID, b.deviceID)
		if err != nil {
			return false, err
		}
		out["device_one_time_keys_count"] = counts
		fb, err := rs.st.UnusedFallbackKeyTypes(b.userID, b.deviceID)
		if err != nil {
			return false, err
		}
		out["device_unused_fallback_key_types"] = nonNil(fb)
		if m := e2eeOf(rs.n); m != nil && b.base.id != 0 {
			changed, left, err := m.deviceListDelta(b.userID, since, b.now)
			if err != nil {
				return false, err
			}
			if len(changed)+len(left) > 0 {
				out["device_lists"] = map[string][]string{"changed": nonNil(changed), "left": nonNil(left)}
				news = true
			}
		}
		resp.Extensions["e2ee"] = out
	}

	if c := &x.AccountData; c.on() {
		after := since
		for _, r := range rooms {
			if !c.covers(b.q, r, window[r]) {
				continue
			}
			if whole(r) {
				after = 0 // some room needs all of its account data
				break
			}
			after = min(after, roomSince(r))
		}
		ads, err := rs.st.AccountDataSince(b.userID, after, b.now)
		if err != nil {
			return false, err
		}
		global := []any{}
		byRoom := map[string][]any{}
		havePushRules := false
		for _, a := range ads {
			ev := map[string]any{"type": a.Type, "content": json.RawMessage(a.Content)}
			switch {
			case a.RoomID == "":
				havePushRules = havePushRules || a.Type == pushRulesType
				if a.Pos > since {
					global = append(global, ev)
				}
			case window[a.RoomID] != nil && c.covers(b.q, a.RoomID, window[a.RoomID]) && (whole(a.RoomID) || a.Pos > roomSince(a.RoomID)):
				byRoom[a.RoomID] = append(byRoom[a.RoomID], ev)
			}
		}
		if b.base.id == 0 && !havePushRules {
			// As /sync does: the default rules until the user sets some.
			global = append(global, map[string]any{"type": pushRulesType, "content": defaultPushRules(b.userID)})
		}
		out := map[string]any{"global": global, "rooms": byRoom}
		resp.Extensions["account_data"] = out
		news = news || len(global) > 0 || len(byRoom) > 0
	}

	if c := &x.Receipts; c.on() {
		out := map[string]any{}
		for _, roomID := range rooms {
			e := b.entries[roomID]
			if e.m.Membership != auth.Join || !c.covers(b.q, roomID, window[roomID]) {
				continue
			}
			rm, err := rs.room(roomID)
			if err != nil {
				return false, err
			}
			var receipts []store.Receipt
			if whole(roomID) {
				// The receipts on the events sent and the user's own.
				all, err := rs.st.Receipts(roomID, 0, b.now)
				if err != nil {
					return false, err
				}
				onTimeline := map[string]bool{}
				if r := resp.Rooms[roomID]; r != nil {
					for _, ev := range r.Timeline {
						onTimeline[ev.EventID] = true
					}
				}
				for _, r := range all {
					if onTimeline[r.EventID] || r.UserID == b.userID {
						receipts = append(receipts, r)
					}
				}
			} else if from := roomSince(roomID); rm.receiptPos > from {
				if receipts, err = rs.st.Receipts(roomID, from, b.now); err != nil {
					return false, err
				}
			}
			if ev := receiptEvent(receipts, b.userID); ev != nil {
				out[roomID] = ev
			}
		}
		resp.Extensions["receipts"] = map[string]any{"rooms": out}
		news = news || len(out) > 0
	}

	if c := &x.Typing; c.on() {
		out := map[string]any{}
		for _, roomID := range rooms {
			e, t := b.entries[roomID], rs.typing[roomID]
			if t == nil || e.m.Membership != auth.Join || !c.covers(b.q, roomID, window[roomID]) {
				continue
			}
			// A room back in the window gets the list as it is now.
			fresh := whole(roomID) || roomSince(roomID) < since
			if fresh && len(t.users) > 0 || !fresh && t.serial > b.base.typing {
				out[roomID] = t.event()
			}
		}
		resp.Extensions["typing"] = map[string]any{"rooms": out}
		news = news || len(out) > 0
	}
	return news, nil
}

// toDevice is the to_device extension (MSC3885): messages at or before
// since are acknowledged (deleted), the next limit ones are sent, and
// next_batch is the position of the last one sent (or now, when none are
// left), for the next request's since.
func (b *ssBuild) toDevice() (map[string]any, bool, error) {
	st, td := b.m.rs.st, b.q.Extensions.ToDevice
	if td.Since != "" {
		since, err := strconv.ParseInt(td.Since, 10, 64)
		if err != nil || since < 0 {
			return nil, false, Errorf(400, ErrCodeInvalidParam, "bad to_device since %q", td.Since)
		}
		if err := st.AckToDevice(b.userID, b.deviceID, min(since, b.now)); err != nil {
			return nil, false, err
		}
	}
	limit := td.Limit
	if limit <= 0 {
		limit = ssDefaultToDevice
	}
	limit = min(limit, ssMaxToDevice)
	rows, err := st.ToDeviceSince(b.userID, b.deviceID, 0, b.now)
	if err != nil {
		return nil, false, err
	}
	next := b.now
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].Pos
	}
	evs := make([]any, 0, len(rows))
	for _, r := range rows {
		evs = append(evs, map[string]any{"sender": r.Sender, "type": r.Type, "content": json.RawMessage(r.Content)})
	}
	return map[string]any{"next_batch": strconv.FormatInt(next, 10), "events": evs}, len(evs) > 0, nil
}
