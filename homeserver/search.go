package homeserver

// POST /_matrix/client/v3/search. Spec: client-server-api "Server Side
// Search" and POST /search: the room_events category, a full-text search
// over content.body of m.room.message, content.name of m.room.name and
// content.topic of m.room.topic (store/search.go: SQLite FTS5, every word
// matching as a prefix) in the rooms the caller is or was in, keeping only
// the events the caller may see (visibility.go).
//
//   - order_by rank (default: best match first; rank is FTS5's bm25, higher
//     is better) or recent (newest first);
//   - filter: a RoomEventFilter (rooms, not_rooms, types, senders, …;
//     limit, default 10, at most 100);
//   - next_batch: "r" OFFSET for rank order (how many matches of the
//     unfiltered order to skip), "p" POS for recent order (only events at
//     or before POS); send the same request again with it;
//   - count (approximate: the caller's readable range of each room, before
//     per-event history visibility and the filter's type and sender rules),
//     highlights (the words of the results that matched, lower case);
//   - event_context (events_before / events_after, start / end tokens as
//     /context's, profile_info from the member state at the result),
//     include_state (the state the caller may see of each result room),
//     groupings by room_id or sender (no per-group next_batch).
//
// Encrypted events are never found: the server cannot read them.

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Search limits: the default and largest page, the default context sizes
// (spec: before_limit and after_limit default to 5), the largest context
// asked, and how many matches one request reads at most while skipping
// ones the caller may not see.
const (
	defaultSearchLimit   = 10
	maxSearchLimit       = 100
	defaultSearchContext = 5
	maxSearchContext     = 50
	maxSearchScan        = 2000
)

// Bounds on search_term. Every word becomes an FTS5 prefix term matched
// against the whole index (twice: the page and the count), so the cost of
// one request grows with the number of words.
// NOTSPEC: the spec sets no limit on search_term; longer ones are refused
// with 400 M_INVALID_PARAM rather than stalling the node loop.
const (
	maxSearchTermBytes = 512 // bytes of search_term
	maxSearchTerms     = 32  // distinct words of search_term
)

// searchKeysAll are the keys room_events covers, the default of "keys".
var searchKeysAll = []string{"content.body", "content.name", "content.topic"}

type searchRequest struct {
	SearchCategories struct {
		RoomEvents *roomEventsCriteria `json:"room_events"`
	} `json:"search_categories"`
}

type roomEventsCriteria struct {
	SearchTerm   *string         `json:"search_term"`
	Keys         []string        `json:"keys"`
	Filter       roomEventFilter `json:"filter"`
	OrderBy      string          `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

func (rs *roomsModule) handleSearch(c *Call) {
	var req searchRequest
	if err := c.DecodeJSON(&req); err != nil {
		c.Fail(err)
		return
	}
	crit := req.SearchCategories.RoomEvents
	if crit == nil {
		c.Reply(200, map[string]any{"search_categories": map[string]any{}})
		return
	}
	res, err := rs.searchRoomEvents(c, crit)
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, map[string]any{"search_categories": map[string]any{"room_events": res}})
}

// searchRoomEvents runs the room_events category.
func (rs *roomsModule) searchRoomEvents(c *Call, crit *roomEventsCriteria) (map[string]any, error) {
	if crit.SearchTerm == nil {
		return nil, Errorf(400, ErrCodeBadJSON, "search_term is required")
	}
	keys := crit.Keys
	if keys == nil {
		keys = searchKeysAll
	}
	for _, k := range keys {
		if !slices.Contains(searchKeysAll, k) {
			return nil, Errorf(400, ErrCodeInvalidParam, "unknown search key %q", k)
		}
	}
	recent := false
	switch crit.OrderBy {
	case "", "rank":
	case "recent":
		recent = true
	default:
		return nil, Errorf(400, ErrCodeInvalidParam, "order_by must be rank or recent")
	}
	for _, g := range crit.Groupings.GroupBy {
		if g.Key != "room_id" && g.Key != "sender" {
			return nil, Errorf(400, ErrCodeInvalidParam, "cannot group by %q", g.Key)
		}
	}
	terms, err := searchTerms(*crit.SearchTerm)
	if err != nil {
		return nil, err
	}
	limit := defaultSearchLimit
	if crit.Filter.Limit > 0 {
		limit = min(crit.Filter.Limit, maxSearchLimit)
	}
	q := store.SearchQuery{Terms: terms, Keys: keys, Recent: recent, Before: math.MaxInt64}
	if tok := c.Req.Query.Get("next_batch"); tok != "" {
		n, err := strconv.ParseInt(tok[min(1, len(tok)):], 10, 64)
		switch {
		case err != nil || n < 0 && !recent:
			return nil, Errorf(400, ErrCodeInvalidParam, "invalid next_batch %q", tok)
		case recent && tok[0] == 'p':
			q.Before = n
		case !recent && tok[0] == 'r' && n <= math.MaxInt32:
			q.Offset = int(n)
		default:
			return nil, Errorf(400, ErrCodeInvalidParam, "next_batch %q is not for this order", tok)
		}
	}

	// The rooms: every room the caller has a membership in that the filter
	// lets through and the caller may read.
	viewers := map[string]*viewer{}
	var roomIDs []string
	for roomID := range rs.userRooms[c.UserID] {
		roomIDs = append(roomIDs, roomID)
	}
	sort.Strings(roomIDs)
	for _, roomID := range roomIDs {
		if containsStr(crit.Filter.NotRooms, roomID) || crit.Filter.Rooms != nil && !containsStr(*crit.Filter.Rooms, roomID) {
			continue
		}
		v, err := rs.readableBy(roomID, c.UserID)
		if apiErr := (*Error)(nil); errors.As(err, &apiErr) {
			continue // not readable (an invite, a forgotten room)
		}
		if err != nil {
			return nil, err
		}
		viewers[roomID] = v
		q.Rooms = append(q.Rooms, store.SearchRange{RoomID: roomID, After: v.from, UpTo: v.upTo})
	}

	ignored, err := rs.ignoredUsers(c.UserID)
	if err != nil {
		return nil, err
	}
	hits, next, err := rs.searchPage(q, limit, viewers, ignored, &crit.Filter)
	if err != nil {
		return nil, err
	}
	count, err := rs.st.SearchCount(q)
	if err != nil {
		return nil, err
	}
	view := rs.viewFor(c, true)
	rows := make([]store.EventRow, len(hits))
	for i, h := range hits {
		rows[i] = h.Event
	}
	evs, err := rs.clientEvents(rows, view)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	highlights := []string{}
	addHighlight := func(w string) {
		if !seen[w] {
			seen[w] = true
			highlights = append(highlights, w)
		}
	}
	for _, t := range q.Terms {
		addHighlight(t)
	}
	results := make([]map[string]any, len(hits))
	for i, h := range hits {
		results[i] = map[string]any{"rank": h.Rank, "result": evs[i]}
		for _, w := range h.Words {
			addHighlight(w)
		}
		if crit.EventContext != nil {
			ctx, err := rs.searchContext(viewers[h.Event.RoomID], h.Event, crit, view)
			if err != nil {
				return nil, err
			}
			results[i]["context"] = ctx
		}
	}
	sort.Strings(highlights)
	out := map[string]any{"results": results, "count": count, "highlights": highlights}
	if next != "" {
		out["next_batch"] = next
	}
	if crit.IncludeState {
		state := map[string][]*clientEvent{}
		for _, h := range hits {
			roomID := h.Event.RoomID
			if state[roomID] != nil {
				continue
			}
			st, err := rs.visibleState(roomID, c.UserID)
			if err != nil {
				return nil, err
			}
			if state[roomID], err = rs.stateEvents(st, view); err != nil {
				return nil, err
			}
		}
		out["state"] = state
	}
	if len(crit.Groupings.GroupBy) > 0 {
		groups := map[string]map[string]map[string]any{}
		for _, g := range crit.Groupings.GroupBy {
			byValue := map[string]map[string]any{}
			for _, h := range hits {
				val := h.Event.RoomID
				if g.Key == "sender" {
					val = h.Event.Sender
				}
				grp := byValue[val]
				if grp == nil {
					grp = map[string]any{"order": len(byValue) + 1, "results": []string{}}
					byValue[val] = grp
				}
				grp["results"] = append(grp["results"].([]string), h.Event.EventID)
			}
			groups[g.Key] = byValue
		}
		out["groups"] = groups
	}
	return out, nil
}

// searchTerms splits search_term into its distinct words, lower case,
// refusing one longer than maxSearchTermBytes or of more than
// maxSearchTerms distinct words (400 M_INVALID_PARAM).
func searchTerms(term string) ([]string, error) {
	if len(term) > maxSearchTermBytes {
		return nil, Errorf(400, ErrCodeInvalidParam, "search_term is longer than %d bytes", maxSearchTermBytes)
	}
	var out []string
	seen := map[string]bool{}
	for _, w := range store.SearchTerms(term) {
		if w = strings.ToLower(w); seen[w] {
			continue
		}
		seen[w] = true
		if len(out) == maxSearchTerms {
			return nil, Errorf(400, ErrCodeInvalidParam, "search_term has more than %d words", maxSearchTerms)
		}
		out = append(out, w)
	}
	return out, nil
}

// searchPage reads matches in the query's order, keeping the ones the
// filter lets through and the caller may see, until limit are found. next
// is the token of the following page ("" when there is none).
func (rs *roomsModule) searchPage(q store.SearchQuery, limit int, viewers map[string]*viewer, ignored map[string]bool,
	f *roomEventFilter) (out []store.SearchHit, next string, err error) {
	batch := max(2*limit, 50)
	scanned := 0
	for scanned < maxSearchScan {
		q.Limit = batch
		hits, err := rs.st.Search(q)
		if err != nil {
			return nil, "", err
		}
		for i, h := range hits {
			v := viewers[h.Event.RoomID]
			if v == nil || !f.allowsRow(h.Event) || hiddenByIgnore(ignored, h.Event) {
				continue
			}
			ok, err := v.allows(h.Event)
			if err != nil {
				return nil, "", err
			}
			if !ok {
				continue
			}
			if len(out) == limit {
				return out, next, nil
			}
			out = append(out, h)
			if q.Recent {
				next = "p" + strconv.FormatInt(h.Event.Pos-1, 10)
			} else {
				next = "r" + strconv.Itoa(q.Offset+i+1)
			}
		}
		scanned += len(hits)
		if len(hits) < batch {
			return out, "", nil
		}
		if q.Recent {
			q.Before = hits[len(hits)-1].Event.Pos - 1
		} else {
			q.Offset += len(hits)
		}
		if len(out) < limit {
			// Nothing more to return from what was read: the next page
			// starts after it.
			if q.Recent {
				next = "p" + strconv.FormatInt(q.Before, 10)
			} else {
				next = "r" + strconv.Itoa(q.Offset)
			}
		}
	}
	// Read enough for one request: let the client ask for more.
	return out, next, nil
}

// searchContext is a result's event_context: the visible events around
// it, the tokens around them, and the senders' profiles at the result.
func (rs *roomsModule) searchContext(v *viewer, row store.EventRow, crit *roomEventsCriteria, view eventView) (map[string]any, error) {
	ec := crit.EventContext
	before, after := defaultSearchContext, defaultSearchContext
	if ec.BeforeLimit != nil {
		before = min(max(*ec.BeforeLimit, 0), maxSearchContext)
	}
	if ec.AfterLimit != nil {
		after = min(max(*ec.AfterLimit, 0), maxSearchContext)
	}
	fetch := func(forward bool) func(lo, hi int64, n int) ([]store.EventRow, error) {
		return func(lo, hi int64, n int) ([]store.EventRow, error) {
			return rs.st.RoomEventsRange(row.RoomID, lo, hi, forward, n)
		}
	}
	evBefore, err := visiblePage(v, newScan(before), nil, historyStart, row.Pos-1, false, before, fetch(false))
	if err != nil {
		return nil, err
	}
	evAfter, err := visiblePage(v, newScan(after), nil, row.Pos, math.MaxInt64, true, after, fetch(true))
	if err != nil {
		return nil, err
	}
	start, end := row.Pos-1, row.Pos
	if len(evBefore) > 0 {
		start = evBefore[len(evBefore)-1].Pos - 1
	}
	if len(evAfter) > 0 {
		end = evAfter[len(evAfter)-1].Pos
	}
	cb, err := rs.clientEvents(evBefore, view)
	if err != nil {
		return nil, err
	}
	ca, err := rs.clientEvents(evAfter, view)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"events_before": cb, "events_after": ca,
		"start": streamToken{pos: start}.String(), "end": streamToken{pos: end}.String()}
	if ec.IncludeProfile {
		state, err := rs.stateAt(row.StateAfter, v.rm.version)
		if err != nil {
			return nil, err
		}
		profiles := map[string]map[string]string{}
		for _, r := range append(append([]store.EventRow{row}, evBefore...), evAfter...) {
			m := state[auth.StateKey{Type: auth.TypeMember, StateKey: r.Sender}]
			if m == nil || profiles[r.Sender] != nil {
				continue
			}
			var p struct {
				DisplayName string `json:"displayname"`
				AvatarURL   string `json:"avatar_url"`
			}
			_ = json.Unmarshal(m.Content(), &p)
			prof := map[string]string{}
			if p.DisplayName != "" {
				prof["displayname"] = p.DisplayName
			}
			if p.AvatarURL != "" {
				prof["avatar_url"] = p.AvatarURL
			}
			profiles[r.Sender] = prof
		}
		out["profile_info"] = profiles
	}
	return out, nil
}
