package event

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func ptr(s string) *string { return &s }

func TestBuildV12CreateAndRoomID(t *testing.T) {
	key := specKey(t)
	pub := key.Public().(ed25519.PublicKey)
	create, err := Build(Proto{
		RoomID:         "!ignored:d",
		Sender:         "@alice:domain",
		Type:           "m.room.create",
		StateKey:       ptr(""),
		Content:        map[string]any{"room_version": "12"},
		Depth:          1,
		OriginServerTS: 1700000000000,
	}, V12, specServer, specKeyID, key)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(create.JSON()), `"room_id"`) {
		t.Fatalf("v12 create event has a room_id: %s", create.JSON())
	}
	roomID := "!" + strings.TrimPrefix(create.ID(), "$")
	if create.RoomID() != roomID || len(roomID) != 44 {
		t.Fatalf("RoomID() = %q, want %q (44 bytes)", create.RoomID(), roomID)
	}
	if err := CheckContentHash(create.JSON()); err != nil {
		t.Fatal(err)
	}
	if err := VerifyEventSignature(create.JSON(), V12, specServer, specKeyID, pub); err != nil {
		t.Fatal(err)
	}
	// The next event carries the derived room ID and does not list the
	// create event in auth_events (rooms/v12.md, note before rule 1).
	member, err := Build(Proto{
		RoomID: create.RoomID(), Sender: "@alice:domain", Type: "m.room.member",
		StateKey: ptr("@alice:domain"), Content: json.RawMessage(`{"membership":"join"}`),
		PrevEvents: []string{create.ID()}, Depth: 2, OriginServerTS: 1700000000001,
	}, V12, specServer, specKeyID, key)
	if err != nil {
		t.Fatal(err)
	}
	if member.RoomID() != roomID || member.Membership() != "join" || member.IsCreate() {
		t.Fatalf("member: room %q membership %q", member.RoomID(), member.Membership())
	}
	// Parsing the create event under v12 with a room_id is refused.
	obj, _ := parseObject(create.JSON())
	obj["room_id"] = roomID
	withRoom, _ := MarshalCanonical(obj)
	if _, err := Parse(withRoom, V12); err == nil || !strings.Contains(err.Error(), "must not have room_id") {
		t.Fatalf("v12 create with room_id: %v", err)
	}
	// Under v11 the same create event needs a room_id.
	if _, err := Parse(create.JSON(), V11); err == nil || !strings.Contains(err.Error(), "missing room_id") {
		t.Fatalf("v11 create without room_id: %v", err)
	}
}

func TestBuildRedactsPlacement(t *testing.T) {
	key := specKey(t)
	p := Proto{RoomID: "!r:domain", Sender: "@a:domain", Type: "m.room.redaction",
		Content: map[string]any{"reason": "spam"}, Redacts: "$target", Depth: 3,
		PrevEvents: []string{"$p"}, AuthEvents: []string{"$a1", "$a2"}, OriginServerTS: 7}
	e10, err := Build(p, V10, specServer, specKeyID, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"redacts":"$target"`; !strings.Contains(string(e10.JSON()), want) || strings.Contains(string(e10.Content()), "redacts") {
		t.Fatalf("v10 redaction: %s", e10.JSON())
	}
	if e10.Redacts() != "$target" {
		t.Fatalf("v10 Redacts() = %q", e10.Redacts())
	}
	p.Content = map[string]any{"reason": "spam"} // Build may not modify the caller's map
	e11, err := Build(p, V11, specServer, specKeyID, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e11.Content()); got != `{"reason":"spam","redacts":"$target"}` {
		t.Fatalf("v11 content %s", got)
	}
	if e11.Redacts() != "$target" {
		t.Fatalf("v11 Redacts() = %q", e11.Redacts())
	}
	if strings.Contains(strings.Replace(string(e11.JSON()), `"redacts":"$target"`, "", 1), "redacts") {
		t.Fatalf("v11 event has a top-level redacts: %s", e11.JSON())
	}
	p.Content = map[string]any{"redacts": "$other"}
	if _, err := Build(p, V11, specServer, specKeyID, key); err == nil {
		t.Fatal("conflicting redacts accepted")
	}
}

func TestBuildParseRoundTrip(t *testing.T) {
	key := specKey(t)
	pub := key.Public().(ed25519.PublicKey)
	for _, v := range SupportedVersions() {
		e, err := Build(Proto{
			RoomID: "!r:domain", Sender: "@a:domain", Type: "m.room.message",
			Content:    map[string]any{"body": "héllo\n", "msgtype": "m.text", "n": 3},
			PrevEvents: []string{"$p1", "$p2"}, AuthEvents: []string{"$a"},
			Depth: 10, OriginServerTS: 1234, Unsigned: map[string]any{"age": 5},
		}, v, specServer, specKeyID, key)
		if err != nil {
			t.Fatalf("v%s: %v", v.ID, err)
		}
		again, err := Parse(e.JSON(), v)
		if err != nil {
			t.Fatalf("v%s: reparse: %v", v.ID, err)
		}
		if again.ID() != e.ID() || string(again.JSON()) != string(e.JSON()) {
			t.Fatalf("v%s: reparse changed the event", v.ID)
		}
		canon, err := CanonicalJSON(e.JSON())
		if err != nil || string(canon) != string(e.JSON()) {
			t.Fatalf("v%s: Build output is not canonical: %v", v.ID, err)
		}
		if err := VerifyEventSignature(e.JSON(), v, specServer, specKeyID, pub); err != nil {
			t.Fatalf("v%s: %v", v.ID, err)
		}
		if e.Type() != "m.room.message" || e.Sender() != "@a:domain" || e.RoomID() != "!r:domain" ||
			e.Depth() != 10 || e.OriginServerTS() != 1234 || e.IsState() ||
			len(e.PrevEvents()) != 2 || e.AuthEvents()[0] != "$a" || e.Version() != v ||
			string(e.Unsigned()) != `{"age":5}` || e.Hashes()["sha256"] == "" ||
			e.Signatures()[specServer][specKeyID] == "" || e.ContentMap()["body"] != "héllo\n" {
			t.Fatalf("v%s: accessors wrong for %s", v.ID, e.JSON())
		}
		r, err := e.Redact()
		if err != nil {
			t.Fatalf("v%s: Redact: %v", v.ID, err)
		}
		if r.ID() != e.ID() || string(r.Content()) != "{}" || r.Unsigned() != nil {
			t.Fatalf("v%s: redacted event %s", v.ID, r.JSON())
		}
		if err := VerifyEventSignature(r.JSON(), v, specServer, specKeyID, pub); err != nil {
			t.Fatalf("v%s: redacted event: %v", v.ID, err)
		}
		if err := CheckContentHash(r.JSON()); !errors.Is(err, ErrContentHash) {
			t.Fatalf("v%s: redacted content still matches its hash: %v", v.ID, err)
		}
		// unsigned is outside hash and signature: changing it keeps the ID.
		obj, _ := parseObject(e.JSON())
		obj["unsigned"] = map[string]any{"age": 99}
		changed, _ := MarshalCanonical(obj)
		e2, err := Parse(changed, v)
		if err != nil || e2.ID() != e.ID() {
			t.Fatalf("v%s: unsigned changed the ID: %v", v.ID, err)
		}
		// Content is covered by the content hash but not the signature.
		obj["content"] = map[string]any{"body": "evil"}
		changed, _ = MarshalCanonical(obj)
		if err := CheckContentHash(changed); !errors.Is(err, ErrContentHash) {
			t.Fatalf("v%s: altered content: %v", v.ID, err)
		}
		if err := VerifyEventSignature(changed, v, specServer, specKeyID, pub); err != nil {
			t.Fatalf("v%s: signature must survive a content change (it covers the redacted form): %v", v.ID, err)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	key := specKey(t)
	good := Proto{RoomID: "!r:d", Sender: "@a:d", Type: "m.room.message", Depth: 1}
	for _, tc := range []struct {
		name string
		mod  func(p *Proto)
		key  ed25519.PrivateKey
		kid  string
	}{
		{"content not an object", func(p *Proto) { p.Content = []any{} }, key, specKeyID},
		{"float in content", func(p *Proto) { p.Content = map[string]any{"x": 1.5} }, key, specKeyID},
		{"no type", func(p *Proto) { p.Type = "" }, key, specKeyID},
		{"no room", func(p *Proto) { p.RoomID = "" }, key, specKeyID},
		{"bad key", func(p *Proto) {}, key[:10], specKeyID},
		{"bad key ID", func(p *Proto) {}, key, "1"},
		{"other algorithm", func(p *Proto) {}, key, "curve25519:1"},
	} {
		p := good
		tc.mod(&p)
		if _, err := Build(p, V11, specServer, tc.kid, tc.key); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := Build(good, nil, specServer, specKeyID, key); err == nil {
		t.Error("nil version accepted")
	}
	if k := KeyFromSeed(make([]byte, 31)); k != nil {
		t.Errorf("KeyFromSeed of a 31-byte seed = %x, want nil", k)
	} else if _, err := Build(good, V11, specServer, specKeyID, k); err == nil {
		t.Error("nil key accepted")
	}
}

func TestParseRejects(t *testing.T) {
	base := map[string]any{
		"type": "m.room.member", "sender": "@a:d", "room_id": "!r:d", "state_key": "@a:d",
		"content": map[string]any{"membership": "join"}, "prev_events": []any{"$p"}, "auth_events": []any{},
		"depth": json.Number("2"), "origin_server_ts": json.Number("5"),
	}
	raw, _ := MarshalCanonical(base)
	if _, err := Parse(raw, V10); err != nil {
		t.Fatalf("base event refused: %v", err)
	}
	long := strings.Repeat("x", MaxIDSize+1)
	for _, tc := range []struct {
		name    string
		key     string
		val     any // nil deletes the key
		wantErr string
	}{
		{"no type", "type", nil, "missing type"},
		{"empty type", "type", "", "empty type"},
		{"type not string", "type", json.Number("1"), "type must be a string"},
		{"no sender", "sender", nil, "missing sender"},
		{"no room_id", "room_id", nil, "missing room_id"},
		{"room_id not string", "room_id", []any{}, "room_id must be a string"},
		{"state_key null", "state_key", "NULL", "state_key must be a string"},
		{"state_key number", "state_key", json.Number("0"), "state_key must be a string"},
		{"state_key too long", "state_key", long, "state_key is 256 bytes"},
		{"no content", "content", nil, "content must be an object"},
		{"content array", "content", []any{}, "content must be an object"},
		{"no prev_events", "prev_events", nil, "missing prev_events"},
		{"prev_events object", "prev_events", map[string]any{}, "prev_events must be an array"},
		{"prev_events v1 pairs", "prev_events", []any{[]any{"$p", map[string]any{}}}, "prev_events[0] must be a string"},
		{"auth_events number", "auth_events", []any{json.Number("1")}, "auth_events[0] must be a string"},
		{"no depth", "depth", nil, "missing depth"},
		{"depth string", "depth", "2", "depth must be an integer"},
		{"negative depth", "depth", json.Number("-1"), "depth -1 is negative"},
		{"float depth", "depth", json.Number("2.0"), "not an integer"},
		{"huge depth", "depth", json.Number("9007199254740992"), "out of range"},
		{"no origin_server_ts", "origin_server_ts", nil, "missing origin_server_ts"},
		{"hashes string", "hashes", "x", "hashes must be an object"},
		{"hash not string", "hashes", map[string]any{"sha256": json.Number("1")}, "hashes.sha256 must be a string"},
		{"signatures array", "signatures", []any{}, "signatures must be an object"},
		{"signature entry string", "signatures", map[string]any{"d": "x"}, "signatures.d must be an object"},
		{"signature not string", "signatures", map[string]any{"d": map[string]any{"ed25519:1": true}}, "signatures.d.ed25519:1 must be a string"},
		{"unsigned array", "unsigned", []any{}, "unsigned must be an object"},
		{"redacts number", "redacts", json.Number("1"), "redacts must be a string"},
		{"float in content", "content", map[string]any{"membership": "join", "w": json.Number("0.5")}, "floats are not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := without(base)
			if tc.val == nil {
				delete(m, tc.key)
			} else if tc.val == "NULL" {
				m[tc.key] = nil
			} else {
				m[tc.key] = tc.val
			}
			// encoding/json writes json.Number tokens verbatim, so
			// non-canonical numbers reach Parse as they are.
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(raw, V10)
			if err == nil {
				t.Fatalf("Parse accepted %s", raw)
			}
			if !errors.Is(err, ErrBadEvent) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse error %q, want ErrBadEvent containing %q", err, tc.wantErr)
			}
		})
	}
	for _, tc := range []struct{ name, raw, wantErr string }{
		{"not an object", `[]`, "not a JSON object"},
		{"duplicate key", `{"type":"a","type":"b"}`, "duplicate key"},
		// encoding/json would match "Type" to the type field.
		{"case-folded key", `{"Type":"m.room.create","sender":"@a:d"}`, "missing type"},
		{"trailing data", string(raw) + "x", "trailing data"},
	} {
		if _, err := Parse([]byte(tc.raw), V11); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Parse error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	if _, err := Parse(raw, nil); err == nil {
		t.Error("nil version accepted")
	}
}

func TestParseSizeLimit(t *testing.T) {
	mk := func(n int) []byte {
		m := map[string]any{"type": "m.room.message", "sender": "@a:d", "room_id": "!r:d",
			"content": map[string]any{"body": ""}, "prev_events": []any{}, "auth_events": []any{},
			"depth": json.Number("1"), "origin_server_ts": json.Number("1")}
		b, _ := MarshalCanonical(m)
		m["content"] = map[string]any{"body": strings.Repeat("a", n-len(b))}
		b, _ = MarshalCanonical(m)
		return b
	}
	if b := mk(MaxPDUSize); len(b) != MaxPDUSize {
		t.Fatalf("helper made %d bytes", len(b))
	} else if _, err := Parse(b, V11); err != nil {
		t.Fatalf("%d-byte PDU refused: %v", len(b), err)
	}
	if _, err := Parse(mk(MaxPDUSize+1), V11); err == nil || !strings.Contains(err.Error(), "65537 bytes") {
		t.Fatalf("oversized PDU: %v", err)
	}
	// Whitespace does not count: the limit is on canonical JSON...
	padded := append(mk(MaxPDUSize), strings.Repeat(" ", 100)...)
	if _, err := Parse(padded, V11); err != nil {
		t.Fatalf("padded PDU refused: %v", err)
	}
	// ...up to a bound on the input, checked before parsing.
	padded = append(mk(1000), strings.Repeat(" ", maxRawPDUSize)...)
	if _, err := Parse(padded, V11); err == nil || !strings.Contains(err.Error(), "bytes of input") {
		t.Fatalf("huge padded PDU: %v", err)
	}
}

func TestEventKeepsExactBytes(t *testing.T) {
	raw := []byte(synapseCreateEvent)
	e, err := Parse(raw, V10)
	if err != nil {
		t.Fatal(err)
	}
	raw[0] = 'X' // Parse copied its input
	if string(e.JSON()) != synapseCreateEvent {
		t.Fatal("JSON() does not return the bytes given to Parse")
	}
	if sk, ok := e.StateKey(); !ok || sk != "" {
		t.Fatalf("StateKey() = %q, %v", sk, ok)
	}
	if e.Redacts() != "" || e.Membership() != "" {
		t.Fatal("Redacts/Membership set on a create event")
	}
	if got := e.String(); !strings.Contains(got, "m.room.create") || !strings.Contains(got, e.ID()) {
		t.Fatalf("String() = %q", got)
	}
}

func TestRedactsAndMembershipMatchKeysExactly(t *testing.T) {
	key := specKey(t)
	e, err := Build(Proto{RoomID: "!r:d", Sender: "@a:d", Type: "m.room.redaction",
		Content: map[string]any{"Redacts": "$x"}, Depth: 1}, V11, specServer, specKeyID, key)
	if err != nil {
		t.Fatal(err)
	}
	if e.Redacts() != "" {
		t.Fatalf("content.Redacts read as redacts: %q", e.Redacts())
	}
	m, err := Build(Proto{RoomID: "!r:d", Sender: "@a:d", Type: "m.room.member", StateKey: ptr("@a:d"),
		Content: map[string]any{"Membership": "ban"}, Depth: 1}, V11, specServer, specKeyID, key)
	if err != nil {
		t.Fatal(err)
	}
	if m.Membership() != "" {
		t.Fatalf("content.Membership read as membership: %q", m.Membership())
	}
}

func TestSignJSONKeepsOtherSignatures(t *testing.T) {
	key := specKey(t)
	pub := key.Public().(ed25519.PublicKey)
	in := `{"a":1,"signatures":{"other":{"ed25519:x":"abc"},"domain":{"ed25519:0":"old"}},"unsigned":{"u":1}}`
	out, err := SignJSON([]byte(in), specServer, specKeyID, key)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := parseObject(out)
	sigs := obj["signatures"].(map[string]any)
	if sigs["other"].(map[string]any)["ed25519:x"] != "abc" || sigs["domain"].(map[string]any)["ed25519:0"] != "old" {
		t.Fatalf("existing signatures lost: %s", out)
	}
	if obj["unsigned"] == nil {
		t.Fatalf("unsigned dropped: %s", out)
	}
	if err := VerifyJSON(out, specServer, specKeyID, pub); err != nil {
		t.Fatal(err)
	}
	// Same signature as the object without signatures/unsigned.
	plain, _ := SignJSON([]byte(`{"a":1}`), specServer, specKeyID, key)
	pobj, _ := parseObject(plain)
	if pobj["signatures"].(map[string]any)["domain"].(map[string]any)["ed25519:1"] !=
		sigs["domain"].(map[string]any)["ed25519:1"] {
		t.Fatal("signatures or unsigned were covered by the signature")
	}
	for _, tc := range []struct {
		name, obj, server, kid string
		pub                    ed25519.PublicKey
	}{
		{"wrong server", string(out), "elsewhere", specKeyID, pub},
		{"wrong key ID", string(out), specServer, "ed25519:2", pub},
		{"wrong key", string(out), specServer, specKeyID, make(ed25519.PublicKey, 32)},
		{"short key", string(out), specServer, specKeyID, pub[:31]},
		{"bad base64", `{"signatures":{"domain":{"ed25519:1":"!!"}}}`, specServer, specKeyID, pub},
		{"short signature", `{"signatures":{"domain":{"ed25519:1":"AAAA"}}}`, specServer, specKeyID, pub},
		{"signatures not object", `{"signatures":[]}`, specServer, specKeyID, pub},
		{"changed data", strings.Replace(string(out), `"a":1`, `"a":2`, 1), specServer, specKeyID, pub},
	} {
		if err := VerifyJSON([]byte(tc.obj), tc.server, tc.kid, tc.pub); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: VerifyJSON = %v, want ErrSignature", tc.name, err)
		}
	}
	for _, bad := range []string{`{"signatures":[]}`, `{"signatures":{"domain":"x"}}`, `[]`, `{"a":1.5}`} {
		if _, err := SignJSON([]byte(bad), specServer, specKeyID, key); err == nil {
			t.Errorf("SignJSON(%s) accepted", bad)
		}
	}
	if _, err := SignJSON([]byte(`{}`), "", specKeyID, key); err == nil {
		t.Error("empty server name accepted")
	}
}
