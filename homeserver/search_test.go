package homeserver

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// searchResp is the room_events part of a /search answer.
type searchResp struct {
	ids        []string
	ranks      []float64
	next       string
	count      float64
	highlights []string
	raw        map[string]any
}

func (tn *testNode) search(token string, crit map[string]any, next string) searchResp {
	tn.t.Helper()
	path := cs + "/search"
	if next != "" {
		path += "?next_batch=" + url.QueryEscape(next)
	}
	r := ok(tn.t, tn.do("POST", path, token, map[string]any{"search_categories": map[string]any{"room_events": crit}}))
	re := r.Body["search_categories"].(map[string]any)["room_events"].(map[string]any)
	out := searchResp{raw: re}
	for _, res := range re["results"].([]any) {
		m := res.(map[string]any)
		out.ids = append(out.ids, m["result"].(map[string]any)["event_id"].(string))
		out.ranks = append(out.ranks, m["rank"].(float64))
	}
	out.next, _ = re["next_batch"].(string)
	out.count, _ = re["count"].(float64)
	for _, h := range re["highlights"].([]any) {
		out.highlights = append(out.highlights, h.(string))
	}
	return out
}

func TestSearch(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	_, bt, _ := tn.register("bob", "pw-bob-123")
	_, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat", "name": "Rover naming", "topic": "the rover"})
	other := tn.createRoom(bt, map[string]any{"preset": "private_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	ok(t, tn.do("PUT", cs+"/profile/"+esc("@alice:test.local")+"/displayname", at, map[string]string{"displayname": "Alice A."}))
	var sent []string
	for _, body := range []string{"the rover needs a name", "Rover, rover, rover!", "lunch at noon", "rovers are cool", "our Rover is here"} {
		tn.clock.Advance(time.Second)
		sent = append(sent, tn.send(at, roomID, "s"+body, body))
	}
	secret := tn.send(bt, other, "b1", "the rover secret plan")

	// By rank: the message saying it three times first.
	r := tn.search(at, map[string]any{"search_term": "rover", "keys": []string{"content.body"}}, "")
	if len(r.ids) != 4 || r.ids[0] != sent[1] || slices.Contains(r.ids, sent[2]) || r.count != 4 {
		t.Fatalf("by rank: %v count %v", r.ids, r.count)
	}
	for i := 1; i < len(r.ranks); i++ {
		if r.ranks[i] > r.ranks[i-1] {
			t.Fatalf("ranks not descending: %v", r.ranks)
		}
	}
	if !slices.Equal(r.highlights, []string{"rover", "rovers"}) || r.next != "" {
		t.Fatalf("highlights %v next %q", r.highlights, r.next)
	}
	// Recent, paged two at a time.
	crit := map[string]any{"search_term": "rover", "order_by": "recent", "keys": []string{"content.body"},
		"filter": map[string]any{"limit": 2}}
	var pages []string
	next := ""
	for range 5 {
		p := tn.search(at, crit, next)
		if len(p.ids) > 2 {
			t.Fatalf("page of %d", len(p.ids))
		}
		pages = append(pages, p.ids...)
		if next = p.next; next == "" {
			break
		}
	}
	if want := []string{sent[4], sent[3], sent[1], sent[0]}; !slices.Equal(pages, want) {
		t.Fatalf("recent pages %v, want %v", pages, want)
	}
	// Rank pages cover the same events.
	crit["order_by"] = "rank"
	pages, next = nil, ""
	for range 5 {
		p := tn.search(at, crit, next)
		pages = append(pages, p.ids...)
		if next = p.next; next == "" {
			break
		}
	}
	want := []string{sent[0], sent[1], sent[3], sent[4]}
	slices.Sort(pages)
	slices.Sort(want)
	if !slices.Equal(pages, want) {
		t.Fatalf("rank pages %v, want %v", pages, want)
	}
	// Name and topic are searched by default; the filter narrows.
	r = tn.search(at, map[string]any{"search_term": "rover"}, "")
	if len(r.ids) != 6 {
		t.Fatalf("all keys: %v", r.ids)
	}
	r = tn.search(at, map[string]any{"search_term": "rover", "filter": map[string]any{"types": []string{"m.room.name"}}}, "")
	if len(r.ids) != 1 {
		t.Fatalf("names only: %v", r.ids)
	}
	// Bob sees his private room; alice and carol do not.
	if r = tn.search(bt, map[string]any{"search_term": "secret"}, ""); !slices.Equal(r.ids, []string{secret}) {
		t.Fatalf("bob: %v", r.ids)
	}
	if r = tn.search(at, map[string]any{"search_term": "secret"}, ""); len(r.ids) != 0 || r.count != 0 {
		t.Fatalf("alice finds bob's private message: %v", r.ids)
	}
	if r = tn.search(ct, map[string]any{"search_term": "rover"}, ""); len(r.ids) != 0 {
		t.Fatalf("carol, in no room, finds %v", r.ids)
	}
	r = tn.search(bt, map[string]any{"search_term": "rover", "filter": map[string]any{"rooms": []string{other}}}, "")
	if !slices.Equal(r.ids, []string{secret}) {
		t.Fatalf("filter rooms: %v", r.ids)
	}

	// A redacted message is no longer found.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(sent[1])+"/red1", at, map[string]any{}))
	r = tn.search(at, map[string]any{"search_term": "rover", "keys": []string{"content.body"}}, "")
	if len(r.ids) != 3 || slices.Contains(r.ids, sent[1]) {
		t.Fatalf("after redaction: %v", r.ids)
	}

	// Event context, profiles, state and groups.
	r = tn.search(at, map[string]any{"search_term": "lunch", "include_state": true,
		"event_context": map[string]any{"before_limit": 1, "after_limit": 2, "include_profile": true},
		"groupings":     map[string]any{"group_by": []map[string]string{{"key": "room_id"}, {"key": "sender"}}}}, "")
	if !slices.Equal(r.ids, []string{sent[2]}) {
		t.Fatalf("lunch: %v", r.ids)
	}
	ctx := r.raw["results"].([]any)[0].(map[string]any)["context"].(map[string]any)
	before, after := chunkOf(ctx["events_before"]), chunkOf(ctx["events_after"])
	if !slices.Equal(before, []string{sent[1]}) || !slices.Equal(after, []string{sent[3], sent[4]}) {
		t.Fatalf("context before %v after %v", before, after)
	}
	if ctx["start"] == nil || ctx["end"] == nil {
		t.Fatalf("context tokens %v", ctx)
	}
	if prof, _ := ctx["profile_info"].(map[string]any)["@alice:test.local"].(map[string]any); prof["displayname"] != "Alice A." {
		t.Fatalf("profile_info %v", ctx["profile_info"])
	}
	if st, _ := r.raw["state"].(map[string]any)[roomID].([]any); len(st) == 0 {
		t.Fatalf("state %v", r.raw["state"])
	}
	groups := r.raw["groups"].(map[string]any)
	if g := groups["room_id"].(map[string]any)[roomID].(map[string]any); len(g["results"].([]any)) != 1 {
		t.Fatalf("groups %v", groups)
	}
	if groups["sender"].(map[string]any)["@alice:test.local"] == nil {
		t.Fatalf("groups by sender %v", groups)
	}

	// Errors.
	bad := func(body any, q string) testResp {
		return tn.do("POST", cs+"/search"+q, at, body)
	}
	wantErr(t, bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{}}}, ""), 400, "M_BAD_JSON")
	wantErr(t, bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "order_by": "best"}}}, ""), 400, "M_INVALID_PARAM")
	wantErr(t, bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "keys": []string{"content.secret"}}}}, ""), 400, "M_INVALID_PARAM")
	wantErr(t, bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x"}}}, "?next_batch=p5"), 400, "M_INVALID_PARAM")
	wantErr(t, bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x"}}}, "?next_batch=zz"), 400, "M_INVALID_PARAM")
	wantErr(t, bad("not json", ""), 400, "M_NOT_JSON")
	// Too many words or bytes in search_term: each word is a prefix term
	// over the whole index.
	words := make([]string, maxSearchTerms+1)
	for i := range words {
		words[i] = "w" + strconv.Itoa(i)
	}
	wantErr(t, bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": strings.Join(words, " ")}}}, ""), 400, "M_INVALID_PARAM")
	wantErr(t, bad(map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": strings.Repeat("a", maxSearchTermBytes+1)}}}, ""), 400, "M_INVALID_PARAM")
	// Repeated words count once: the distinct ones are within the limit.
	once := tn.search(at, map[string]any{"search_term": "rover", "keys": []string{"content.body"}}, "")
	r = tn.search(at, map[string]any{"search_term": strings.TrimSpace(strings.Repeat("Rover rover ", maxSearchTerms)), "keys": []string{"content.body"}}, "")
	if len(r.ids) == 0 || !slices.Equal(r.ids, once.ids) || !slices.Equal(r.highlights, once.highlights) {
		t.Fatalf("repeated words: %v highlights %v, want %v %v", r.ids, r.highlights, once.ids, once.highlights)
	}
	if r := ok(t, bad(map[string]any{"search_categories": map[string]any{}}, "")); r.Body["search_categories"] == nil {
		t.Fatalf("no categories: %s", r.Raw)
	}
}

func chunkOf(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(map[string]any)["event_id"].(string))
	}
	return out
}
