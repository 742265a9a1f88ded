package homeserver

// Reporting content. Spec: client-server-api "Reporting content":
//
//   - POST /_matrix/client/v3/rooms/{roomId}/report/{eventId} {score,
//     reason}: the caller must be joined to the room (since v1.8) and,
//     here, allowed to see the event (visibility.go); otherwise, and for
//     an unknown event, 404 M_NOT_FOUND. score is an integer from -100
//     (most offensive) to 0, reason a string; both optional.
//   - POST /_matrix/client/v3/rooms/{roomId}/report {reason} (v1.13): the
//     caller need not be joined; 404 M_NOT_FOUND for a room unknown here.
//
// Reports are stored (store.InsertEventReport) for the server's admins,
// who list them with Synapse's admin API GET /_synapse/admin/v1/
// event_reports (from, limit, dir; answers event_reports, total and
// next_token). Nobody is notified.

import (
	"encoding/json"
	"errors"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Report limits.
const (
	minReportScore     = -100 // most offensive (spec)
	maxReportScore     = 0    // inoffensive (spec)
	maxReportReason    = 4096 // bytes of reason
	defaultReportsPage = 100  // admin list page (Synapse's default)
	maxReportsPage     = 1000
)

func (rs *roomsModule) reportRoutes() []Route {
	return []Route{
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/report/{eventId}", Auth: AuthUser, Handle: rs.handleReportEvent},
		{Method: "POST", Pattern: "/_matrix/client/v3/rooms/{roomId}/report", Auth: AuthUser, Handle: rs.handleReportRoom},
		{Method: "GET", Pattern: "/_synapse/admin/v1/event_reports", Auth: AuthUser, Handle: rs.handleListReports},
	}
}

// reportBody is a report's request body, checked.
type reportBody struct {
	reason *string
	score  *int64
}

// parseReport checks a report body: reason a string of at most
// maxReportReason bytes, score (when allowed) an integer in
// [minReportScore, maxReportScore].
func parseReport(c *Call, withScore bool) (reportBody, error) {
	var raw struct {
		Reason json.RawMessage `json:"reason"`
		Score  json.RawMessage `json:"score"`
	}
	var out reportBody
	if err := c.DecodeJSON(&raw); err != nil {
		return out, err
	}
	if len(raw.Reason) > 0 && string(raw.Reason) != "null" {
		var s string
		if json.Unmarshal(raw.Reason, &s) != nil {
			return out, Errorf(400, ErrCodeBadJSON, "reason must be a string")
		}
		if len(s) > maxReportReason {
			return out, Errorf(400, ErrCodeTooLarge, "reason is longer than %d bytes", maxReportReason)
		}
		out.reason = &s
	}
	if withScore && len(raw.Score) > 0 && string(raw.Score) != "null" {
		var n int64
		if json.Unmarshal(raw.Score, &n) != nil || n < minReportScore || n > maxReportScore {
			return out, Errorf(400, ErrCodeInvalidParam, "score must be an integer from %d to %d", minReportScore, maxReportScore)
		}
		out.score = &n
	}
	return out, nil
}

func (rs *roomsModule) handleReportEvent(c *Call) {
	roomID, eventID := c.Req.Vars["roomId"], c.Req.Vars["eventId"]
	body, err := parseReport(c, true)
	if err != nil {
		c.Fail(err)
		return
	}
	notFound := Errorf(404, ErrCodeNotFound, "event %s not found, or you are not joined to its room", eventID)
	if rs.membership(roomID, c.UserID) != auth.Join {
		c.Fail(notFound)
		return
	}
	if _, err := rs.visibleEvent(roomID, eventID, c.UserID); err != nil {
		if apiErr := (*Error)(nil); errors.As(err, &apiErr) {
			err = notFound
		}
		c.Fail(err)
		return
	}
	rs.storeReport(c, store.EventReport{RoomID: roomID, EventID: eventID, Reason: body.reason, Score: body.score})
}

func (rs *roomsModule) handleReportRoom(c *Call) {
	roomID := c.Req.Vars["roomId"]
	body, err := parseReport(c, false)
	if err != nil {
		c.Fail(err)
		return
	}
	if _, err := rs.room(roomID); err != nil {
		c.Fail(err) // 404 M_NOT_FOUND for a room unknown here
		return
	}
	rs.storeReport(c, store.EventReport{RoomID: roomID, Reason: body.reason})
}

// storeReport stores a checked report and answers {}.
func (rs *roomsModule) storeReport(c *Call, r store.EventReport) {
	r.UserID, r.ReceivedTS = c.UserID, rs.n.Now().UnixMilli()
	id, err := rs.st.InsertEventReport(r)
	if err != nil {
		c.Fail(err)
		return
	}
	rs.n.log.Info("content reported", "report", id, "room", r.RoomID, "event", r.EventID, "by", r.UserID)
	c.Reply(200, struct{}{})
}

// handleListReports serves Synapse's GET /_synapse/admin/v1/event_reports
// to server admins: from (an offset), limit, dir (b: newest first, the
// default; f: oldest first).
func (rs *roomsModule) handleListReports(c *Call) {
	if !c.Admin {
		c.Fail(Errorf(403, ErrCodeForbidden, "you are not a server admin"))
		return
	}
	from, err := queryInt(c, "from", 0)
	if err != nil {
		c.Fail(err)
		return
	}
	limit, err := queryInt(c, "limit", defaultReportsPage)
	if err != nil {
		c.Fail(err)
		return
	}
	dir := c.Req.Query.Get("dir")
	if from < 0 || limit < 1 || (dir != "" && dir != "b" && dir != "f") {
		c.Fail(Errorf(400, ErrCodeInvalidParam, "from must be at least 0, limit positive and dir b or f"))
		return
	}
	limit = min(limit, maxReportsPage)
	reports, total, err := rs.st.EventReports(from, limit, dir == "f")
	if err != nil {
		c.Fail(err)
		return
	}
	list := make([]map[string]any, 0, len(reports))
	for _, r := range reports {
		e := map[string]any{"id": r.ID, "received_ts": r.ReceivedTS, "room_id": r.RoomID, "user_id": r.UserID,
			"event_id": nil, "reason": r.Reason, "score": r.Score}
		if r.EventID != "" {
			e["event_id"] = r.EventID
		}
		if r.Sender != "" {
			e["sender"] = r.Sender
		}
		list = append(list, e)
	}
	resp := map[string]any{"event_reports": list, "total": total}
	if from+len(reports) < total {
		resp["next_token"] = from + len(reports)
	}
	c.Reply(200, resp)
}
