package codec

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// The shipped dictionary is generated, never hand-edited: go generate (see
// dict.go) runs TestDictionaryUpToDate with -update-dict, which rebuilds it
// from traffic this file synthesises with the project's own event builder.
// No captured or user data goes in. Without the flag the test checks that
// the embedded file is exactly what the generator produces today.
//
// The generator deliberately avoids the names the budget samples use
// (example.org, alice), so the budgets measure what the dictionary gives to
// traffic it has never seen.

var updateDict = flag.Bool("update-dict", false, "rewrite dictionaries/mesh-v1.bin from the generator")

const dictV1Size = 8192
const dictV1Window = 4

const dictMinSamples = 12

func TestDictionaryUpToDate(t *testing.T) {
	got := generateDictV1(t)
	path := filepath.Join("dictionaries", "mesh-v1.bin")
	if *updateDict {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(got))
		return
	}
	if !bytes.Equal(got, dictV1) {
		t.Fatalf("embedded dictionary (%d B) differs from generator output (%d B); run go generate ./codec",
			len(dictV1), len(got))
	}
}

func generateDictV1(tb testing.TB) []byte {
	tb.Helper()
	samples := dictTraffic(tb)
	return buildRawDict(samples, dictV1Size, dictV1Window)
}

// buildRawDict makes a raw-content dictionary (RFC 8878 §5) from samples,
// deterministically: byte runs covered by windows of `window` bytes that
// recur in at least three samples are collected as segments; segments are
// ranked by (samples containing them × length) and concatenated, most
// valuable last (zstd reaches the end of the dictionary with the shortest
// offsets), until size bytes.
func buildRawDict(samples [][]byte, size, window int) []byte {
	inSamples := map[string]int{}
	for _, s := range samples {
		seen := map[string]bool{}
		for i := 0; i+window <= len(s); i++ {
			w := string(s[i : i+window])
			if !seen[w] {
				seen[w] = true
				inSamples[w]++
			}
		}
	}
	segCount := map[string]int{}
	for _, s := range samples {
		covered := make([]bool, len(s))
		for i := 0; i+window <= len(s); i++ {
			if inSamples[string(s[i:i+window])] >= dictMinSamples {
				for j := i; j < i+window; j++ {
					covered[j] = true
				}
			}
		}
		seen := map[string]bool{}
		for i := 0; i < len(s); {
			if !covered[i] {
				i++
				continue
			}
			j := i
			for j < len(s) && covered[j] {
				j++
			}
			if seg := string(s[i:j]); !seen[seg] {
				seen[seg] = true
				segCount[seg]++
			}
			i = j
		}
	}
	segs := make([]string, 0, len(segCount))
	for seg := range segCount {
		segs = append(segs, seg)
	}
	sort.Slice(segs, func(i, j int) bool {
		si, sj := segCount[segs[i]]*len(segs[i]), segCount[segs[j]]*len(segs[j])
		if si != sj {
			return si > sj
		}
		return segs[i] < segs[j]
	})
	var chosen []string
	total := 0
	for _, seg := range segs {
		if total+len(seg) > size {
			continue
		}
		dup := false
		for _, c := range chosen {
			if strings.Contains(c, seg) {
				dup = true
				break
			}
		}
		if !dup {
			chosen = append(chosen, seg)
			total += len(seg)
		}
	}
	out := make([]byte, 0, total)
	for i := len(chosen) - 1; i >= 0; i-- {
		out = append(out, chosen[i]...)
	}
	return out
}

// dictTraffic synthesises representative mesh traffic, encoded under
// TableMesh1: PDUs of the common types in rooms of versions 10–12,
// transactions with EDUs, /sync responses and client request bodies.
func dictTraffic(tb testing.TB) [][]byte {
	tb.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{'m', 'x', 'm', 'e', 's', 'h', '-', 'd', 'i', 'c', 't', '1'}))
	servers := []string{"matrix.org", "mesh.radio", "node7.lora.net", "relief.camp", "sat-uplink.org", "hs.freifunk.net"}
	users := []string{"bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory"}
	words := []string{"ok", "on my way", "need water at camp 3", "battery low", "thanks!", "where are you?",
		"road blocked north of the bridge", "copy that", "meeting at 18:00", "all good here"}
	var out [][]byte
	enc := func(v any) {
		b, err := event.MarshalCanonical(v)
		if err != nil {
			tb.Fatal(err)
		}
		c, _, err := Encode(nil, b, TableMesh1)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, c)
	}
	b64 := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return event.EncodeBase64(b)
	}
	for round := 0; round < 60; round++ {
		srv := servers[rng.IntN(len(servers))]
		v := []*event.RoomVersion{event.V10, event.V10, event.V11, event.V12}[rng.IntN(4)]
		seed := make([]byte, ed25519.SeedSize)
		for i := range seed {
			seed[i] = byte(rng.Uint32())
		}
		key := event.KeyFromSeed(seed)
		keyID := "ed25519:" + b64(4)[:4]
		user := "@" + users[rng.IntN(len(users))] + ":" + srv
		roomID := "!" + b64(13)[:18] + ":" + srv
		ts := int64(1700000000000) + rng.Int64N(1e11)
		var auth []string
		prev := []string{"$" + event.EncodeBase64URL([]byte(b64(24))[:32])}
		depth := int64(rng.IntN(500) + 5)
		var pdus []any
		build := func(typ string, sk *string, content map[string]any) *event.Event {
			depth++
			ts += int64(rng.IntN(60000))
			e, err := event.Build(event.Proto{RoomID: roomID, Sender: user, Type: typ, StateKey: sk,
				Content: content, PrevEvents: prev, AuthEvents: auth, Depth: depth, OriginServerTS: ts},
				v, srv, keyID, key)
			if err != nil {
				tb.Fatalf("build: %v", err)
			}
			prev = []string{e.ID()}
			if len(auth) < 3 {
				auth = append(auth, e.ID())
			}
			pdus = append(pdus, json.RawMessage(e.JSON()))
			enc(json.RawMessage(e.JSON()))
			return e
		}
		sk := user
		build("m.room.member", &sk, map[string]any{"membership": []string{"join", "invite", "leave"}[rng.IntN(3)],
			"displayname": users[rng.IntN(len(users))]})
		var last *event.Event
		for range 1 + rng.IntN(4) {
			last = build("m.room.message", nil, map[string]any{"msgtype": "m.text", "body": words[rng.IntN(len(words))]})
		}
		switch round % 6 {
		case 0:
			build("m.reaction", nil, map[string]any{"m.relates_to": map[string]any{
				"rel_type": "m.annotation", "event_id": last.ID(), "key": "👍"}})
		case 1:
			build("m.room.encrypted", nil, map[string]any{"algorithm": "m.megolm.v1.aes-sha2",
				"ciphertext": b64(96 + rng.IntN(64)), "device_id": "ABCDEFGHIJ"[:5+rng.IntN(5)],
				"sender_key": b64(32), "session_id": b64(32)})
		case 2:
			empty := ""
			build("m.room.name", &empty, map[string]any{"name": words[rng.IntN(len(words))]})
		case 3:
			build("m.room.message", nil, map[string]any{"msgtype": "m.notice", "body": "> reply\n\n" + words[0],
				"m.relates_to": map[string]any{"m.in_reply_to": map[string]any{"event_id": last.ID()}}})
		case 4:
			build("m.room.redaction", nil, map[string]any{"reason": "spam", "redacts": last.ID()})
		case 5:
			empty := ""
			build("m.room.power_levels", &empty, map[string]any{"users": map[string]any{user: 100},
				"users_default": 0, "events_default": 0, "state_default": 50, "ban": 50, "kick": 50,
				"redact": 50, "invite": 0})
		}
		edus := []any{
			map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": roomID, "user_id": user, "typing": rng.IntN(2) == 0}},
			map[string]any{"edu_type": "m.receipt", "content": map[string]any{roomID: map[string]any{"m.read": map[string]any{
				user: map[string]any{"data": map[string]any{"ts": ts}, "event_ids": []any{last.ID()}}}}}},
			map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{map[string]any{
				"user_id": user, "presence": "online", "last_active_ago": rng.IntN(100000), "currently_active": true}}}},
		}
		enc(map[string]any{"origin": srv, "origin_server_ts": ts + 10, "pdus": pdus, "edus": edus[:rng.IntN(4)]})
		enc(map[string]any{"next_batch": fmt.Sprintf("s%d_%d_%d", rng.IntN(1e6), rng.IntN(1e4), rng.IntN(1e4)),
			"rooms": map[string]any{"join": map[string]any{roomID: map[string]any{
				"timeline": map[string]any{"events": []any{map[string]any{
					"content":  map[string]any{"body": words[rng.IntN(len(words))], "msgtype": "m.text"},
					"event_id": last.ID(), "origin_server_ts": ts, "sender": user, "type": "m.room.message",
					"unsigned": map[string]any{"age": rng.IntN(5000)}}},
					"limited": false, "prev_batch": fmt.Sprintf("s%d_%d_%d", rng.IntN(1e6), rng.IntN(1e4), rng.IntN(1e4))},
				"unread_notifications": map[string]any{"highlight_count": 0, "notification_count": rng.IntN(9)},
			}}}})
		enc(map[string]any{"body": words[rng.IntN(len(words))], "msgtype": "m.text"})
	}
	return out
}
