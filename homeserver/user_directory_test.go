package homeserver

import (
	"fmt"
	"slices"
	"testing"
)

// dirSearch runs a user directory search and returns the user IDs found
// and the whole response.
func (tn *testNode) dirSearch(token string, body any) ([]string, testResp) {
	tn.t.Helper()
	r := ok(tn.t, tn.do("POST", cs+"/user_directory/search", token, body))
	var ids []string
	for _, u := range r.Body["results"].([]any) {
		ids = append(ids, u.(map[string]any)["user_id"].(string))
	}
	return ids, r
}

func TestUserDirectorySearch(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	_, _, _ = tn.register("carol", "pw-carol-1") // shares no room with anyone
	dave, dt, _ := tn.register("dave", "pw-dave-12")
	_, et, _ := tn.register("erin", "pw-erin-12")
	shared := tn.createRoom(at, map[string]any{"invite": []string{bob}})
	ok(t, tn.do("POST", cs+"/join/"+esc(shared), bt, nil))
	ok(t, tn.do("PUT", cs+"/profile/"+esc(bob)+"/displayname", bt, map[string]any{"displayname": "Bobby Tables"}))
	ok(t, tn.do("PUT", cs+"/profile/"+esc(bob)+"/avatar_url", bt, map[string]any{"avatar_url": "mxc://test.local/bob"}))
	// dave is in a published room; erin in an unpublished one with him.
	tn.createRoom(dt, map[string]any{"preset": "public_chat", "visibility": "public"})
	private := tn.createRoom(et, map[string]any{"invite": []string{dave}})
	ok(t, tn.do("POST", cs+"/join/"+esc(private), dt, nil))

	ids, r := tn.dirSearch(at, map[string]any{"search_term": "BOB"})
	if !slices.Equal(ids, []string{bob}) || r.Body["limited"] != false {
		t.Fatalf("alice searching BOB: %s", r.Raw)
	}
	u := r.Body["results"].([]any)[0].(map[string]any)
	if u["display_name"] != "Bobby Tables" || u["avatar_url"] != "mxc://test.local/bob" {
		t.Fatalf("bob's entry %v", u)
	}
	// By display name, several words, any case.
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "tab bobby"}); !slices.Equal(ids, []string{bob}) {
		t.Fatalf("alice searching 'tab bobby': %v", ids)
	}
	// carol shares no room with alice; dave is in a published room.
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "carol"}); len(ids) != 0 {
		t.Fatalf("alice finds %v", ids)
	}
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "dave"}); !slices.Equal(ids, []string{dave}) {
		t.Fatalf("alice searching dave: %v", ids)
	}
	// erin only shares an unpublished room with dave: alice cannot find her.
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "erin"}); len(ids) != 0 {
		t.Fatalf("alice finds %v", ids)
	}
	// Prefix matches rank first, then users with profile info: "a" starts
	// alice and appears inside dave's ID and in "Bobby Tables".
	ids, r = tn.dirSearch(at, map[string]any{"search_term": "a", "limit": 2})
	if !slices.Equal(ids, []string{alice, bob}) || r.Body["limited"] != true {
		t.Fatalf("alice searching 'a' limit 2: %v %s", ids, r.Raw)
	}
	// An empty term finds nobody.
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "  "}); len(ids) != 0 {
		t.Fatalf("empty term finds %v", ids)
	}

	// Bad input.
	wantErr(t, tn.do("POST", cs+"/user_directory/search", at, map[string]any{}), 400, ErrCodeMissingParam)
	wantErr(t, tn.do("POST", cs+"/user_directory/search", at, map[string]any{"search_term": 5}), 400, ErrCodeBadJSON)
	wantErr(t, tn.do("POST", cs+"/user_directory/search", at, map[string]any{"search_term": "a", "limit": 0}), 400, ErrCodeInvalidParam)
	wantErr(t, tn.do("POST", cs+"/user_directory/search", at, "{"), 400, ErrCodeNotJSON)
	wantErr(t, tn.do("POST", cs+"/user_directory/search", "", map[string]any{"search_term": "a"}), 401, ErrCodeMissingToken)
}

func TestUserDirectorySearchAllUsers(t *testing.T) {
	tn := newTestNode(t, func(c *Config) { c.UserDirectory.SearchAllUsers = true })
	_, at, _ := tn.register("alice", "pw-alice-1")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	ok(t, tn.do("PUT", cs+"/profile/"+esc(carol)+"/displayname", ct, map[string]any{"displayname": "Carol_100%"}))
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "carol"}); !slices.Equal(ids, []string{carol}) {
		t.Fatalf("alice searching carol: %v", ids)
	}
	// LIKE wildcards in the term are literal.
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "_100%"}); !slices.Equal(ids, []string{carol}) {
		t.Fatalf("alice searching _100%%: %v", ids)
	}
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "r_l"}); len(ids) != 0 {
		t.Fatalf("'_' matched as a wildcard: %v", ids)
	}
	if us, err := tn.store.SearchLocalUsers("r_l", 10); err != nil || len(us) != 0 {
		t.Fatalf("store: '_' matched as a wildcard: %v %v", us, err)
	}
	// The limit is capped at 50.
	for i := range 52 {
		tn.register(fmt.Sprintf("user%02d", i), "pw-user-123")
	}
	ids, r := tn.dirSearch(at, map[string]any{"search_term": "user", "limit": 500})
	if len(ids) != maxUserDirLimit || r.Body["limited"] != true {
		t.Fatalf("%d results, limited %v", len(ids), r.Body["limited"])
	}
}

// A user on another server who shares a room is found, with the display
// name of their member event; a local user who shares no room with them
// is not.
func TestFedUserDirectory(t *testing.T) {
	fn, alice, bob, _ := twoServers(t)
	fn.call(bob.tn, 200, "PUT", "/_matrix/client/v3/profile/"+esc(bob.id)+"/displayname", bob.token,
		map[string]any{"displayname": "Bob on B"})
	r := fn.call(alice.tn, 200, "POST", cs+"/user_directory/search", alice.token, map[string]any{"search_term": "on b"})
	res, _ := r.Body["results"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["user_id"] != bob.id || res[0].(map[string]any)["display_name"] != "Bob on B" {
		t.Fatalf("alice's search: %s", r.Raw)
	}
	carol := fn.user(alice.tn, "carol")
	r = fn.call(alice.tn, 200, "POST", cs+"/user_directory/search", carol.token, map[string]any{"search_term": "bob"})
	if res, _ := r.Body["results"].([]any); len(res) != 0 {
		t.Fatalf("carol's search: %s", r.Raw)
	}
}

// A user the searcher ignores is not offered.
func TestUserDirectoryLeavesOutIgnored(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	shared := tn.createRoom(at, map[string]any{"invite": []string{bob}})
	ok(t, tn.do("POST", cs+"/join/"+esc(shared), bt, nil))
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "bob"}); !slices.Equal(ids, []string{bob}) {
		t.Fatalf("before ignoring: %v", ids)
	}
	tn.ignore(at, alice, bob)
	if ids, _ := tn.dirSearch(at, map[string]any{"search_term": "bob"}); len(ids) != 0 {
		t.Fatalf("alice still finds %v after ignoring bob", ids)
	}
}
