package codec

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// Sample traffic built with the project's own event builder from fixed keys
// and timestamps, so every byte count below is reproducible. It is what the
// budget tests measure and what the dictionary generator learns from.

const (
	sampleServer = "example.org"
	sampleKeyID  = "ed25519:a_XyZw"
	sampleRoom   = "!QtykxKocfZaZOUrTwp:example.org"
	sampleAlice  = "@alice:example.org"
	sampleTS     = int64(1764115200000) // 2025-11-26T00:00:00Z in ms
)

func sampleKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	return event.KeyFromSeed(seed)
}

// sampleRoomState is a room-version-10 room as Synapse's createRoom would
// start it: create, creator's join, power levels, join rules, history
// visibility. It returns the events in DAG order.
type sampleRoomState struct {
	v                                *event.RoomVersion
	events                           []*event.Event
	create, power, member, joinRules string
	last                             string
	depth                            int64
	ts                               int64
}

func newSampleRoom(tb testing.TB, v *event.RoomVersion) *sampleRoomState {
	tb.Helper()
	r := &sampleRoomState{v: v, depth: 0, ts: sampleTS}
	empty, alice := "", sampleAlice
	r.create = r.add(tb, "m.room.create", &empty, map[string]any{"creator": sampleAlice, "room_version": v.ID}, nil)
	r.member = r.add(tb, "m.room.member", &alice, map[string]any{"membership": "join", "displayname": "alice"}, []string{r.create})
	r.power = r.add(tb, "m.room.power_levels", &empty, map[string]any{
		"users": map[string]any{sampleAlice: 100}, "users_default": 0, "events_default": 0,
		"state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
		"events": map[string]any{"m.room.name": 50, "m.room.power_levels": 100},
	}, []string{r.create, r.member})
	r.joinRules = r.add(tb, "m.room.join_rules", &empty, map[string]any{"join_rule": "invite"}, []string{r.create, r.power, r.member})
	r.add(tb, "m.room.history_visibility", &empty, map[string]any{"history_visibility": "shared"}, []string{r.create, r.power, r.member})
	return r
}

func (r *sampleRoomState) add(tb testing.TB, typ string, stateKey *string, content map[string]any, auth []string) string {
	tb.Helper()
	prev := []string{}
	if r.last != "" {
		prev = []string{r.last}
	}
	if auth == nil {
		auth = []string{}
	}
	r.depth++
	r.ts += 1234
	e, err := event.Build(event.Proto{
		RoomID: sampleRoom, Sender: sampleAlice, Type: typ, StateKey: stateKey, Content: content,
		PrevEvents: prev, AuthEvents: auth, Depth: r.depth, OriginServerTS: r.ts,
	}, r.v, sampleServer, sampleKeyID, sampleKey())
	if err != nil {
		tb.Fatalf("build %s: %v", typ, err)
	}
	r.events = append(r.events, e)
	r.last = e.ID()
	return e.ID()
}

// message appends an m.room.message with the given body.
func (r *sampleRoomState) message(tb testing.TB, body string) *event.Event {
	tb.Helper()
	r.add(tb, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": body},
		[]string{r.create, r.power, r.member})
	return r.events[len(r.events)-1]
}

// sampleHelloPDU is the budget's reference: a signed v10 m.room.message PDU
// with body "hello".
func sampleHelloPDU(tb testing.TB) []byte {
	tb.Helper()
	return newSampleRoom(tb, event.V10).message(tb, "hello").JSON()
}

// sampleTxn is a federation transaction (server-server-api.md
// "Transactions", PUT /_matrix/federation/v1/send/{txnId} body) carrying n
// consecutive messages.
func sampleTxn(tb testing.TB, n int) []byte {
	tb.Helper()
	r := newSampleRoom(tb, event.V10)
	pdus := make([]any, n)
	for i := range pdus {
		pdus[i] = json.RawMessage(r.message(tb, fmt.Sprintf("message %d", i+1)).JSON())
	}
	if n == 1 {
		pdus[0] = json.RawMessage(r.events[len(r.events)-1].JSON())
	}
	return mustCanonical(tb, map[string]any{
		"origin": sampleServer, "origin_server_ts": r.ts + 50, "pdus": pdus,
	})
}

// sampleTxnHello is the one-PDU transaction carrying sampleHelloPDU.
func sampleTxnHello(tb testing.TB) []byte {
	tb.Helper()
	return mustCanonical(tb, map[string]any{
		"origin": sampleServer, "origin_server_ts": sampleTS + 9000,
		"pdus": []any{json.RawMessage(sampleHelloPDU(tb))},
	})
}

// sampleSendBody is the client-server API PUT .../send/m.room.message body.
func sampleSendBody() []byte { return []byte(`{"body":"hello","msgtype":"m.text"}`) }

// sampleSync is an incremental /sync response (client-server-api "Syncing")
// carrying the "hello" message in one joined room, shaped like Synapse's.
func sampleSync(tb testing.TB) []byte {
	tb.Helper()
	r := newSampleRoom(tb, event.V10)
	e := r.message(tb, "hello")
	return mustCanonical(tb, map[string]any{
		"next_batch": "s72595_4483_1934",
		"rooms": map[string]any{"join": map[string]any{sampleRoom: map[string]any{
			"timeline": map[string]any{
				"events": []any{map[string]any{
					"content":  map[string]any{"body": "hello", "msgtype": "m.text"},
					"event_id": e.ID(), "origin_server_ts": e.OriginServerTS(),
					"sender": e.Sender(), "type": e.Type(),
					"unsigned": map[string]any{"age": 63},
				}},
				"limited": false, "prev_batch": "s72594_4483_1934",
			},
			"unread_notifications": map[string]any{"highlight_count": 0, "notification_count": 1},
		}}},
	})
}

func mustCanonical(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := event.MarshalCanonical(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
