package codec

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

// memRoom is a RoomContext over an in-memory room: the events the receiver
// has, its current state, and the session's interned names.
type memRoom struct {
	roomID string
	v      *event.RoomVersion
	events map[string]*event.Event
	state  auth.State
	names  []string
}

func newMemRoom(r *sampleRoomState) *memRoom {
	m := &memRoom{roomID: sampleRoom, v: r.v, events: map[string]*event.Event{}, state: auth.State{},
		names: []string{sampleAlice, sampleKeyID, sampleServer}}
	for _, e := range r.events {
		m.learn(e)
	}
	return m
}

func (m *memRoom) learn(e *event.Event) {
	m.events[e.ID()] = e
	if sk, ok := e.StateKey(); ok {
		m.state[auth.StateKey{Type: e.Type(), StateKey: sk}] = e
	}
}

func (m *memRoom) RoomID() string                  { return m.roomID }
func (m *memRoom) RoomVersion() *event.RoomVersion { return m.v }

func (m *memRoom) EventsWithPrefix(prefix []byte, limit int) []string {
	var out []string
	for id := range m.events {
		ref, err := event.DecodeBase64(id[1:])
		if err == nil && bytes.HasPrefix(ref, prefix) {
			out = append(out, id)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

func (m *memRoom) EventInfo(id string) (int64, int64, bool) {
	e, ok := m.events[id]
	if !ok {
		return 0, 0, false
	}
	return e.Depth(), e.OriginServerTS(), true
}

func (m *memRoom) AuthEvents(typ string, sk *string, sender string, content json.RawMessage) ([]string, error) {
	key := ""
	if sk != nil {
		key = *sk
	}
	evs, err := auth.SelectAuthEvents(m.v, typ, key, sender, content, m.state)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID()
	}
	return ids, nil
}

func (m *memRoom) Name(i uint64) (string, bool) {
	if i >= uint64(len(m.names)) {
		return "", false
	}
	return m.names[i], true
}

func (m *memRoom) NameIndex(s string) (uint64, bool) {
	for i, n := range m.names {
		if n == s {
			return uint64(i), true
		}
	}
	return 0, false
}

// helloSelected builds the "hello" message with auth events chosen the way
// the receiver chooses them, so that packing can leave them out.
func helloSelected(t testing.TB, r *sampleRoomState, ctx *memRoom) *event.Event {
	t.Helper()
	content := json.RawMessage(`{"body":"hello","msgtype":"m.text"}`)
	auth, err := ctx.AuthEvents("m.room.message", nil, sampleAlice, content)
	if err != nil {
		t.Fatal(err)
	}
	last := r.events[len(r.events)-1]
	e, err := event.Build(event.Proto{RoomID: sampleRoom, Sender: sampleAlice, Type: "m.room.message",
		Content: content, PrevEvents: []string{last.ID()}, AuthEvents: auth, Depth: last.Depth() + 1,
		OriginServerTS: last.OriginServerTS() + 1234}, r.v, sampleServer, sampleKeyID, sampleKey())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestPackBudget(t *testing.T) {
	for _, v := range []*event.RoomVersion{event.V10, event.V11, event.V12} {
		r := newSampleRoom(t, v)
		ctx := newMemRoom(r)
		e := helloSelected(t, r, ctx)
		packed, err := Pack(nil, e.JSON(), ctx)
		if err != nil {
			t.Fatalf("v%s: %v", v.ID, err)
		}
		t.Logf("room v%s: PDU JSON %d B, packed %d B", v.ID, len(e.JSON()), len(packed))
		if len(packed) > 100 {
			t.Errorf("v%s: packed %d B > budget 100 B", v.ID, len(packed))
		}
		back, err := Unpack(nil, packed, ctx)
		if err != nil {
			t.Fatalf("v%s: unpack: %v", v.ID, err)
		}
		if !bytes.Equal(back, e.JSON()) {
			t.Fatalf("v%s: rebuilt PDU differs:\n%s\n%s", v.ID, back, e.JSON())
		}
		if id, _ := event.EventID(back, v); id != e.ID() {
			t.Errorf("v%s: event ID %s, want %s", v.ID, id, e.ID())
		}
		pub := sampleKey().Public().(ed25519.PublicKey)
		if err := event.VerifyEventSignature(back, v, sampleServer, sampleKeyID, pub); err != nil {
			t.Errorf("v%s: rebuilt PDU: %v", v.ID, err)
		}
	}
}

func TestPackFallbacks(t *testing.T) {
	r := newSampleRoom(t, event.V10)
	ctx := newMemRoom(r)
	// The sample builder lists auth events in its own order, a timestamp
	// and depth that follow the prev event: overrides carry what differs,
	// and the PDU still rebuilds exactly.
	e := r.message(t, "unusual auth order")
	ctx.learn(e)
	packed, err := Pack(nil, e.JSON(), ctx)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unpack(nil, packed, ctx)
	if err != nil || !bytes.Equal(back, e.JSON()) {
		t.Fatalf("round trip: %v", err)
	}

	// A receiver that lacks the prev event cannot rebuild: a specific error.
	hello := helloSelected(t, r, ctx)
	packed, err = Pack(nil, hello.JSON(), ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(packed) > 100 {
		t.Errorf("hello after a known prev: packed %d B", len(packed))
	}
	behind := newMemRoom(r)
	delete(behind.events, e.ID())
	if _, err := Unpack(nil, packed, behind); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("unpack without prev event: %v, want ErrStateMismatch", err)
	}

	// A receiver whose state differs (another power-levels event) selects
	// other auth events: the ID check catches it.
	diverged := newMemRoom(r)
	empty := ""
	other := newSampleRoom(t, event.V10)
	pl := other.add(t, "m.room.power_levels", &empty, map[string]any{"users": map[string]any{sampleAlice: 99}}, nil)
	for _, x := range other.events {
		if x.ID() == pl {
			diverged.state[auth.StateKey{Type: "m.room.power_levels"}] = x
		}
	}
	if _, err := Unpack(nil, packed, diverged); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("unpack with diverged state: %v, want ErrStateMismatch", err)
	}

	// Interned names the receiver does not have.
	stranger := newMemRoom(r)
	stranger.names = nil
	if _, err := Unpack(nil, packed, stranger); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("unpack without names: %v, want ErrStateMismatch", err)
	}

	// A receiver whose table maps the key ID's index to another key: the
	// event ID would not notice (signatures are outside the reference
	// hash), the check over the whole PDU does.
	rekeyed := newMemRoom(r)
	rekeyed.names = []string{sampleAlice, "ed25519:other", sampleServer}
	if _, err := Unpack(nil, packed, rekeyed); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("unpack with another key ID interned: %v, want ErrStateMismatch", err)
	}

	// Non-canonical input is not packable.
	if _, err := Pack(nil, append([]byte(" "), hello.JSON()...), ctx); !errors.Is(err, ErrNotPackable) {
		t.Errorf("pack non-canonical: %v, want ErrNotPackable", err)
	}
}
