package homeserver

import (
	"net/url"
	"strings"
	"testing"
)

// A user joins another server's room by its alias: the alias is looked up
// on its server (query/directory) and the join goes through the servers it
// names; a knock by alias works the same way.
func TestFedRoomJoinAndKnockByRemoteAlias(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	open := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token,
		map[string]any{"preset": "public_chat", "room_alias_name": "lobby"}).str("room_id")
	knockRoom := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token,
		map[string]any{"room_alias_name": "door", "initial_state": []any{map[string]any{
			"type": "m.room.join_rules", "state_key": "", "content": map[string]string{"join_rule": "knock"}}}}).str("room_id")

	r := fn.call(b, 200, "GET", "/_matrix/client/v3/directory/room/"+url.PathEscape("#lobby:a.test"), bob.token, nil)
	if r.str("room_id") != open || !strings.Contains(string(r.Raw), `"a.test"`) {
		t.Fatalf("remote alias lookup: %s", r.Raw)
	}
	if got := fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape("#lobby:a.test"), bob.token, map[string]any{}).str("room_id"); got != open {
		t.Fatalf("join by alias gave %q, want %s", got, open)
	}
	if m := fn.membership(alice, open, bob.id); m != "join" {
		t.Fatalf("a.test sees bob as %q", m)
	}
	if got := fn.call(b, 200, "POST", "/_matrix/client/v3/knock/"+url.PathEscape("#door:a.test"), bob.token, map[string]any{"reason": "hi"}).str("room_id"); got != knockRoom {
		t.Fatalf("knock by alias gave %q, want %s", got, knockRoom)
	}
	if m := fn.membership(alice, knockRoom, bob.id); m != "knock" {
		t.Fatalf("a.test sees bob's knock as %q", m)
	}
	// An alias its server does not know is M_NOT_FOUND; a malformed one
	// M_INVALID_PARAM; neither changes anything.
	if r := fn.call(b, 404, "POST", "/_matrix/client/v3/join/"+url.PathEscape("#nowhere:a.test"), bob.token, map[string]any{}); r.str("errcode") != ErrCodeNotFound {
		t.Fatalf("unknown alias: %s", r.Raw)
	}
	if r := fn.call(b, 400, "POST", "/_matrix/client/v3/join/"+url.PathEscape("#nocolon"), bob.token, map[string]any{}); r.str("errcode") != ErrCodeInvalidParam {
		t.Fatalf("bad alias: %s", r.Raw)
	}
}

// /publicRooms?server=S lists S's published rooms, asked over federation,
// with GET (limit, since) and POST (filter).
func TestFedRoomRemotePublicRooms(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	for _, name := range []string{"apples", "bananas", "cherries"} {
		fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token,
			map[string]any{"preset": "public_chat", "visibility": "public", "name": name})
	}
	names := func(r testResp) []string {
		var out []string
		chunk, _ := r.Body["chunk"].([]any)
		for _, e := range chunk {
			m, _ := e.(map[string]any)
			s, _ := m["name"].(string)
			out = append(out, s)
		}
		return out
	}
	r := fn.call(b, 200, "GET", "/_matrix/client/v3/publicRooms?server=a.test&limit=2", bob.token, nil)
	first := names(r)
	next, _ := r.Body["next_batch"].(string)
	if len(first) != 2 || next == "" {
		t.Fatalf("first page %q, next %q: %s", first, next, r.Raw)
	}
	r = fn.call(b, 200, "GET", "/_matrix/client/v3/publicRooms?server=a.test&limit=2&since="+url.QueryEscape(next), bob.token, nil)
	if rest := names(r); len(rest) != 1 || strings.Contains(strings.Join(first, ","), rest[0]) {
		t.Fatalf("second page %q after %q", rest, first)
	}
	r = fn.call(b, 200, "POST", "/_matrix/client/v3/publicRooms?server=a.test", bob.token,
		map[string]any{"filter": map[string]string{"generic_search_term": "banana"}})
	if got := names(r); len(got) != 1 || got[0] != "bananas" {
		t.Fatalf("filtered: %q (%s)", got, r.Raw)
	}
	// b.test's own directory is empty; an unreachable server is an error.
	if got := names(fn.call(b, 200, "GET", "/_matrix/client/v3/publicRooms", bob.token, nil)); len(got) != 0 {
		t.Fatalf("b.test lists %q", got)
	}
	if r := fn.call(b, 0, "GET", "/_matrix/client/v3/publicRooms?server=gone.test", bob.token, nil); r.Status != 502 {
		t.Fatalf("unreachable server: %d %s", r.Status, r.Raw)
	}
}

// The space hierarchy walks local and remote spaces depth first, in the
// spec's child order, lists only the rooms the user may see, and pages
// with a token that fixes max_depth and suggested_only.
func TestFedRoomSpaceHierarchy(t *testing.T) {
	fn := newFedNet(t)
	var uris []string
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.nodeVia("b.test", t.TempDir(), 2, nil, func(r Remote) Remote { return watchRemote{inner: r, uris: &uris} })
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	create := func(u fedUser, name string, body map[string]any) string {
		body["name"] = name
		return fn.call(u.tn, 200, "POST", "/_matrix/client/v3/createRoom", u.token, body).str("room_id")
	}
	space := func(u fedUser, name string) string {
		return create(u, name, map[string]any{"preset": "public_chat", "creation_content": map[string]string{"type": "m.space"}})
	}
	child := func(u fedUser, parent, childID string, content map[string]any) {
		fn.call(u.tn, 200, "PUT", roomPath(parent, "/state/m.space.child/"+url.PathEscape(childID)), u.token, content)
	}
	s := space(alice, "S")
	r1 := create(alice, "R1", map[string]any{"preset": "public_chat"})
	r2 := create(alice, "R2", map[string]any{"preset": "private_chat"})
	r3 := create(alice, "R3", map[string]any{"preset": "public_chat"})
	child(alice, s, r1, map[string]any{"via": []string{"a.test"}})
	child(alice, s, r2, map[string]any{"via": []string{"a.test"}})
	child(alice, s, r3, map[string]any{"via": []string{"a.test"}, "order": "a", "suggested": true})
	child(alice, s, "!novia:a.test", map[string]any{})
	top := space(bob, "T")
	local := create(bob, "L", map[string]any{"preset": "public_chat"})
	child(bob, top, s, map[string]any{"via": []string{"a.test"}, "order": "1"})
	child(bob, top, local, map[string]any{"via": []string{"b.test"}, "order": "2"})

	walk := func(query string) (ids []string, next string) {
		r := fn.call(b, 200, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(top)+"/hierarchy"+query, bob.token, nil)
		rooms, _ := r.Body["rooms"].([]any)
		for _, e := range rooms {
			m, _ := e.(map[string]any)
			id, _ := m["room_id"].(string)
			ids = append(ids, id)
			if _, ok := m["children_state"].([]any); !ok {
				t.Fatalf("%s has no children_state: %s", id, r.Raw)
			}
		}
		next, _ = r.Body["next_batch"].(string)
		return ids, next
	}
	uris = nil
	got, next := walk("")
	if want := []string{top, s, r3, r1, local}; !sameList(got, want) || next != "" {
		t.Fatalf("hierarchy %q (next %q), want %q", got, next, want)
	}
	// One request for the remote space; its plain rooms came with it; the
	// private room was asked for and refused.
	if n := countURIs(uris, "/federation/v1/hierarchy/"); n != 2 {
		t.Fatalf("%d hierarchy requests: %q", n, uris)
	}
	if got, _ := walk("?max_depth=1"); !sameList(got, []string{top, s, local}) {
		t.Fatalf("max_depth 1: %q", got)
	}
	if got, _ := walk("?suggested_only=true"); !sameList(got, []string{top}) {
		t.Fatalf("suggested only: %q", got)
	}
	// Within S, only R3 is suggested; a token keeps suggested_only.
	r := fn.call(a, 200, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(s)+"/hierarchy?suggested_only=true&limit=1", alice.token, nil)
	tok, _ := r.Body["next_batch"].(string)
	r = fn.call(a, 200, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(s)+"/hierarchy?suggested_only=true&limit=1&from="+url.QueryEscape(tok), alice.token, nil)
	if rooms, _ := r.Body["rooms"].([]any); len(rooms) != 1 || rooms[0].(map[string]any)["room_id"] != r3 {
		t.Fatalf("suggested page 2 (from %q): %s", tok, r.Raw)
	}
	page1, next := walk("?limit=2")
	if !sameList(page1, []string{top, s}) || next == "" {
		t.Fatalf("page 1 %q next %q", page1, next)
	}
	page2, next2 := walk("?limit=2&from=" + url.QueryEscape(next))
	if !sameList(page2, []string{r3, r1}) || next2 == "" {
		t.Fatalf("page 2 %q next %q", page2, next2)
	}
	if page3, next3 := walk("?limit=2&from=" + url.QueryEscape(next2)); !sameList(page3, []string{local}) || next3 != "" {
		t.Fatalf("page 3 %q next %q", page3, next3)
	}
	for _, q := range []string{"?limit=2&max_depth=3&from=" + url.QueryEscape(next), "?from=garbage", "?limit=0", "?suggested_only=maybe"} {
		r := fn.call(b, 400, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(top)+"/hierarchy"+q, bob.token, nil)
		if r.str("errcode") != ErrCodeInvalidParam {
			t.Fatalf("%s: %s", q, r.Raw)
		}
	}
	// A private room the user is not in cannot be walked.
	priv := create(alice, "P", map[string]any{"preset": "private_chat"})
	carol := fn.user(a, "carol")
	fn.call(a, 403, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(priv)+"/hierarchy", carol.token, nil)
}
