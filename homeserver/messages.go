package homeserver

// GET /_matrix/client/v3/rooms/{roomId}/messages. Spec: client-server-api
// "Pagination" and GET /rooms/{roomId}/messages: dir b (backwards, newest
// first) or f, from / to tokens (see streamToken), limit (default 10), a
// RoomEventFilter, and lazy-loaded member state for the chunk's senders.
// "end" is left out when there is nothing further in that direction.
// Only the events the user may see are returned (visibility.go), less
// those of users the caller ignores (ignore.go); the ones skipped do not
// end a page early.

// maxMessagesLimit caps /messages' limit.
const maxMessagesLimit = 1000

func (rs *roomsModule) messagesRoutes() []Route {
	return []Route{{Method: "GET", Pattern: "/_matrix/client/v3/rooms/{roomId}/messages", Auth: AuthUser, Handle: rs.handleMessages}}
}

func (rs *roomsModule) handleMessages(c *Call) { rs.messages(c, false) }

// messages serves /messages. When paging backwards runs out of local
// history in a room shared with other servers, older events are backfilled
// first (fedroom_backfill.go) and the request is served again.
func (rs *roomsModule) messages(c *Call, backfilled bool) {
	roomID := c.Req.Vars["roomId"]
	q := c.Req.Query
	forward, err := queryForward(c)
	if err != nil {
		c.Fail(err)
		return
	}
	limit, err := queryInt(c, "limit", 10)
	if err != nil {
		c.Fail(err)
		return
	}
	limit = min(max(limit, 1), maxMessagesLimit)
	f, err := rs.inlineFilter(c, "filter")
	if err != nil {
		c.Fail(err)
		return
	}
	if f.Room.Timeline.Limit > 0 {
		limit = min(limit, f.Room.Timeline.Limit)
	}
	v, err := rs.userViewer(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	rm := v.rm
	visFrom, visUpTo := v.from, min(v.upTo, rs.pos)
	var from, to streamToken
	if s := q.Get("from"); s != "" {
		if from, err = parsePageToken(s); err != nil {
			c.Fail(err)
			return
		}
	} else if !forward {
		from.pos = rs.pos
	}
	hasTo := false
	if s := q.Get("to"); s != "" {
		if to, err = parsePageToken(s); err != nil {
			c.Fail(err)
			return
		}
		hasTo = true
	}
	var lo, hi int64 // the range (lo, hi] to read
	if forward {
		lo, hi = max(from.pos, visFrom), visUpTo
		if hasTo {
			hi = min(hi, to.pos)
		}
	} else {
		lo, hi = visFrom, min(from.pos, visUpTo)
		if hasTo {
			lo = max(lo, to.pos)
		}
	}
	ignored, err := rs.ignoredUsers(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	scan := newScan(limit)
	rows, err := rs.visibleRows(v, scan, ignored, lo, hi, forward, limit+1, f.Room.Timeline)
	if err != nil {
		c.Fail(err)
		return
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	if fr := fedRoomsOf(rs.n); fr != nil && !forward && !more && !scan.stopped && !backfilled && !hasTo && lo == historyStart {
		fr.backfill(roomID, limit, func(added bool) {
			if c.Done() {
				return
			}
			rs.messages(c, true)
		})
		return
	}
	view := rs.viewFor(c, true)
	chunk, err := rs.clientEvents(rows, view)
	if err != nil {
		c.Fail(err)
		return
	}
	resp := map[string]any{"chunk": chunk, "start": from.String()}
	if len(rows) > 0 && more {
		last := rows[len(rows)-1].Pos
		if !forward {
			last--
		}
		resp["end"] = streamToken{pos: last}.String()
	} else if scan.stopped {
		resp["end"] = streamToken{pos: scan.resume}.String() // the scan bound: go on from where it stopped
	}
	if f.Room.Timeline.LazyLoadMembers && len(rows) > 0 {
		members := lazyMembers(rm.state, rows, c.UserID)
		sel := map[string]bool{}
		for _, r := range rows {
			sel[r.Sender] = true
		}
		state := make([]*clientEvent, 0, len(sel))
		for k, e := range members {
			if k.Type != "m.room.member" || !sel[k.StateKey] {
				continue
			}
			row, err := rs.st.Event(e.ID())
			if err != nil {
				c.Fail(err)
				return
			}
			ce, err := rs.clientEvent(row, view)
			if err != nil {
				c.Fail(err)
				return
			}
			state = append(state, ce)
		}
		resp["state"] = state
	}
	c.Reply(200, resp)
}
