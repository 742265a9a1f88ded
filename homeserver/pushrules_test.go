package homeserver

import (
	"encoding/json"
	"testing"
)

func TestEvalPushRules(t *testing.T) {
	rules := defaultPushRules("@bob:hs")
	var globs globCache
	pc := &pushContext{userID: "@bob:hs", displayName: "Bobby", memberCount: 3, senderPower: 0,
		notifyLevels: map[string]int64{"room": 50}}
	ev := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name              string
		event             string
		members           int
		notify, highlight bool
	}{
		{"plain message", `{"type":"m.room.message","room_id":"!r:hs","sender":"@a:hs","content":{"msgtype":"m.text","body":"hi"}}`, 3, true, false},
		{"notice", `{"type":"m.room.message","sender":"@a:hs","content":{"msgtype":"m.notice","body":"bob"}}`, 3, false, false},
		{"user name as a word", `{"type":"m.room.message","sender":"@a:hs","content":{"body":"hey Bob!"}}`, 3, true, true},
		{"user name inside a word", `{"type":"m.room.message","sender":"@a:hs","content":{"body":"bobsleigh"}}`, 3, true, false},
		{"display name", `{"type":"m.room.message","sender":"@a:hs","content":{"body":"ask bobby about it"}}`, 3, true, true},
		{"m.mentions user", `{"type":"m.room.message","sender":"@a:hs","content":{"body":"x","m.mentions":{"user_ids":["@bob:hs"]}}}`, 3, true, true},
		{"m.mentions disables legacy name rules", `{"type":"m.room.message","sender":"@a:hs","content":{"body":"bob","m.mentions":{}}}`, 3, true, false},
		{"@room without power", `{"type":"m.room.message","sender":"@a:hs","content":{"body":"@room look"}}`, 3, true, false},
		{"member event", `{"type":"m.room.member","state_key":"@c:hs","sender":"@c:hs","content":{"membership":"join"}}`, 3, false, false},
		{"invite for me", `{"type":"m.room.member","state_key":"@bob:hs","sender":"@a:hs","content":{"membership":"invite"}}`, 3, true, false},
		{"edit", `{"type":"m.room.message","sender":"@a:hs","content":{"body":"* bob","m.relates_to":{"rel_type":"m.replace"}}}`, 3, false, false},
		{"reaction", `{"type":"m.reaction","sender":"@a:hs","content":{}}`, 3, false, false},
		{"encrypted one to one", `{"type":"m.room.encrypted","sender":"@a:hs","content":{}}`, 2, true, false},
		{"unknown type", `{"type":"org.example","sender":"@a:hs","content":{}}`, 3, false, false},
	}
	for _, c := range cases {
		pc.memberCount = c.members
		o := evalPushRules(rules, ev(c.event), pc, &globs)
		if o.notify != c.notify || o.highlight != c.highlight {
			t.Errorf("%s: notify=%v highlight=%v, want %v %v", c.name, o.notify, o.highlight, c.notify, c.highlight)
		}
	}
	// With enough power, @room highlights.
	pc.senderPower = 50
	if o := evalPushRules(rules, ev(`{"type":"m.room.message","sender":"@a:hs","content":{"body":"@room look"}}`), pc, &globs); !o.highlight {
		t.Error("@room from a moderator does not highlight")
	}
	// The master rule silences everything once enabled.
	rules.Global.Override[0].Enabled = true
	if o := evalPushRules(rules, ev(`{"type":"m.room.message","sender":"@a:hs","content":{"body":"bob"}}`), pc, &globs); o.notify {
		t.Error("master rule did not silence")
	}
}

func TestGlobAndPaths(t *testing.T) {
	var g globCache
	for _, c := range []struct {
		pattern, s   string
		whole, words bool
	}{
		{"m.room.*", "m.room.message", true, true},
		{"m.room.*", "xm.room.message", false, false},
		{"cat", "Concatenate", false, false},
		{"cat", "a CAT sat", false, true},
		{"c?t", "cut", true, true},
		{"[*]", "*", true, true},
		{"[*]", "x", false, false},
	} {
		if got := g.matchWhole(c.pattern, c.s); got != c.whole {
			t.Errorf("whole %q ~ %q = %v", c.pattern, c.s, got)
		}
		if got := g.matchWords(c.pattern, c.s); got != c.words {
			t.Errorf("words %q ~ %q = %v", c.pattern, c.s, got)
		}
	}
	ev := map[string]any{"content": map[string]any{"m.relates_to": map[string]any{"rel_type": "x"}, `a\b`: 1.0}}
	if v, ok := propertyValue(ev, `content.m\.relates_to.rel_type`); !ok || v != "x" {
		t.Errorf("escaped dot: %v %v", v, ok)
	}
	if v, ok := propertyValue(ev, `content.a\\b`); !ok || v != 1.0 {
		t.Errorf("escaped backslash: %v %v", v, ok)
	}
	if _, ok := propertyValue(ev, "content.missing"); ok {
		t.Error("missing key found")
	}
	for is, want := range map[string]bool{"2": true, "==2": true, ">1": true, "<2": false, ">=2": true, "<=1": false, "x": false} {
		if memberCountMatches(is, 2) != want {
			t.Errorf("room_member_count %q with 2 members", is)
		}
	}
}
