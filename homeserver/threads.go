package homeserver

// GET /_matrix/client/v1/rooms/{roomId}/threads. Spec: client-server-api
// "Threading", "Querying threads in a room": the room's thread roots,
// ordered by the newest event of each thread (its latest_event), newest
// first, each with its bundled aggregations. include=participated keeps
// the threads the caller started or sent an event to. Only roots the
// caller may see are listed, less those of users the caller ignores
// (ignore.go), and a thread's activity after the caller left does not
// count.
//
// Tokens: "s" POS (streamToken), POS one less than the newest event of
// the last thread listed, or of the last one read when the scan bound
// (threadScanBatches) stopped the page early; the next page lists threads
// whose newest event is at most POS.

import (
	"math"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Limits of GET /threads: default and largest page, and how many pages
// of thread roots one request reads at most.
const (
	defaultThreadsLimit = 10
	maxThreadsLimit     = 100
	threadScanBatches   = 4
)

func (rs *roomsModule) handleThreads(c *Call) {
	roomID := c.Req.Vars["roomId"]
	q := c.Req.Query
	var participant string
	switch q.Get("include") {
	case "", "all":
	case "participated":
		participant = c.UserID
	default:
		c.Fail(Errorf(400, ErrCodeInvalidParam, "include must be all or participated"))
		return
	}
	limit, err := queryInt(c, "limit", defaultThreadsLimit)
	if err != nil {
		c.Fail(err)
		return
	}
	if limit <= 0 {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "limit must be greater than zero"))
		return
	}
	limit = min(limit, maxThreadsLimit)
	before := int64(math.MaxInt64)
	if s := q.Get("from"); s != "" {
		t, err := parsePageToken(s)
		if err != nil {
			c.Fail(err)
			return
		}
		before = t.pos
	}
	v, err := rs.readableBy(roomID, c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	ignored, err := rs.ignoredUsers(c.UserID)
	if err != nil {
		c.Fail(err)
		return
	}
	// Roots the caller may not see or ignores are skipped, reading at most
	// threadScanBatches pages of them (each page aggregates the room's
	// thread events anew); when those run out first, next_batch is where
	// the reading stopped.
	var roots []store.ThreadRoot
	batch, stopped := max(2*limit, 50), false
	for reads := 0; len(roots) <= limit; reads++ {
		if reads == threadScanBatches {
			stopped = true
			break
		}
		page, err := rs.st.Threads(roomID, before, v.upTo, participant, batch)
		if err != nil {
			c.Fail(err)
			return
		}
		for _, tr := range page {
			if hiddenByIgnore(ignored, tr.Root) {
				continue
			}
			ok, err := v.allows(tr.Root)
			if err != nil {
				c.Fail(err)
				return
			}
			if ok {
				roots = append(roots, tr)
				if len(roots) > limit {
					break
				}
			}
		}
		if len(page) < batch {
			break
		}
		before = page[len(page)-1].Latest - 1
	}
	more := len(roots) > limit
	if more {
		roots = roots[:limit]
	}
	rows := make([]store.EventRow, len(roots))
	for i, tr := range roots {
		rows[i] = tr.Root
	}
	chunk, err := rs.clientEvents(rows, rs.viewFor(c, true))
	if err != nil {
		c.Fail(err)
		return
	}
	resp := map[string]any{"chunk": chunk}
	if more {
		resp["next_batch"] = streamToken{pos: roots[len(roots)-1].Latest - 1}.String()
	} else if stopped {
		resp["next_batch"] = streamToken{pos: before}.String()
	}
	c.Reply(200, resp)
}
