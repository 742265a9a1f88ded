package stateres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// The test rooms live on one server; every user is on it.
const testServer = "example.org"

var testKey = event.KeyFromSeed(bytes.Repeat([]byte{7}, 32))

const (
	alice  = "@alice:example.org"
	bob    = "@bob:example.org"
	carol  = "@carol:example.org"
	dave   = "@dave:example.org"
	evelyn = "@evelyn:example.org"
)

// room builds signed events for one room and serves them to Resolve.
type room struct {
	tb     testing.TB
	v      *event.RoomVersion
	id     string
	events map[string]*event.Event
	names  map[string]string // event ID → label, for failure messages
	ts     int64
}

// fork is one line of history: the state after its latest event.
type fork struct {
	state map[auth.StateKey]string
	last  []string
	depth int64
}

func (f *fork) clone() *fork {
	return &fork{state: maps.Clone(f.state), last: slices.Clone(f.last), depth: f.depth}
}

// newRoom creates a room: Alice's m.room.create, her join, power levels
// (users as given, Alice at 100 before room version 12, where creators may
// not be listed), and a public join rule. It returns the fork after them.
func newRoom(tb testing.TB, v *event.RoomVersion, users map[string]int64) (*room, *fork) {
	tb.Helper()
	return newRoomAt(tb, v, users, "!room:"+testServer, 0)
}

// newRoomAt is newRoom with a room ID for versions before 12 and a starting
// timestamp (which, in version 12, makes a distinct room).
func newRoomAt(tb testing.TB, v *event.RoomVersion, users map[string]int64, id string, ts int64) (*room, *fork) {
	tb.Helper()
	r := &room{tb: tb, v: v, id: id, ts: ts, events: map[string]*event.Event{}, names: map[string]string{}}
	f := &fork{state: map[auth.StateKey]string{}}
	content := map[string]any{"room_version": v.ID}
	if !v.CreatorFromSender {
		content["creator"] = alice
	}
	create := r.send(f, "CREATE", alice, "m.room.create", "", content)
	if v.RoomIDFromCreate {
		r.id = create.RoomID()
	}
	r.send(f, "JOIN_ALICE", alice, "m.room.member", alice, member("join"))
	r.send(f, "PL0", alice, "m.room.power_levels", "", r.powerLevels(users))
	r.send(f, "JR_PUBLIC", alice, "m.room.join_rules", "", map[string]any{"join_rule": "public"})
	return r, f
}

func member(m string) map[string]any { return map[string]any{"membership": m} }

// powerLevels is m.room.power_levels content: state events need 50, the
// given users get their levels and, before room version 12, Alice gets 100.
func (r *room) powerLevels(users map[string]int64) map[string]any {
	u := map[string]any{}
	if !r.v.CreatorsHaveInfinitePower {
		u[alice] = 100
	}
	for k, n := range users {
		u[k] = n
	}
	return map[string]any{"users": u, "state_default": 50, "events_default": 0,
		"ban": 50, "kick": 50, "invite": 0, "redact": 50}
}

// send builds a state event on f with the next timestamp.
func (r *room) send(f *fork, name, sender, typ, stateKey string, content any) *event.Event {
	r.tb.Helper()
	r.ts += 1000
	return r.sendAt(f, r.ts, name, sender, typ, stateKey, content)
}

// sendAt builds a state event on f with origin_server_ts ts, choosing its
// auth events from f's state, and advances f.
func (r *room) sendAt(f *fork, ts int64, name, sender, typ, stateKey string, content any) *event.Event {
	r.tb.Helper()
	raw, err := json.Marshal(content)
	if err != nil {
		r.tb.Fatal(err)
	}
	var authEvents []string
	for _, k := range auth.AuthStateKeys(r.v, typ, stateKey, sender, raw) {
		if id, ok := f.state[k]; ok {
			authEvents = append(authEvents, id)
		}
	}
	sk := stateKey
	ev, err := event.Build(event.Proto{
		RoomID: r.id, Sender: sender, Type: typ, StateKey: &sk, Content: content,
		PrevEvents: f.last, AuthEvents: authEvents, Depth: f.depth + 1, OriginServerTS: ts,
	}, r.v, testServer, "ed25519:1", testKey)
	if err != nil {
		r.tb.Fatalf("build %s: %v", name, err)
	}
	r.events[ev.ID()] = ev
	r.names[ev.ID()] = name
	f.state[auth.StateKey{Type: typ, StateKey: stateKey}] = ev.ID()
	f.last = []string{ev.ID()}
	f.depth++
	return ev
}

func (r *room) fetch(id string) (*event.Event, error) {
	if ev, ok := r.events[id]; ok {
		return ev, nil
	}
	return nil, fmt.Errorf("no event %s in the test room", id)
}

func (r *room) resolve(forks ...*fork) map[auth.StateKey]string {
	r.tb.Helper()
	sets := make([]map[auth.StateKey]string, len(forks))
	for i, f := range forks {
		sets[i] = f.state
	}
	got, err := Resolve(r.v, sets, r.fetch)
	if err != nil {
		r.tb.Fatalf("Resolve: %v", err)
	}
	return got
}

func (r *room) name(id string) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	if id == "" {
		return "(absent)"
	}
	return id
}

// expect checks that state maps each key to the given event ID ("" for
// absent), naming events by their labels on failure.
func (r *room) expect(t *testing.T, state map[auth.StateKey]string, want map[auth.StateKey]string) {
	t.Helper()
	for k, w := range want {
		if got := state[k]; got != w {
			t.Errorf("(%s, %q) = %s, want %s", k.Type, k.StateKey, r.name(got), r.name(w))
		}
	}
}

func memberKey(user string) auth.StateKey {
	return auth.StateKey{Type: "m.room.member", StateKey: user}
}

var (
	plKey    = auth.StateKey{Type: "m.room.power_levels"}
	jrKey    = auth.StateKey{Type: "m.room.join_rules"}
	topicKey = auth.StateKey{Type: "m.room.topic"}
)

func topic(s string) map[string]any { return map[string]any{"topic": s} }
