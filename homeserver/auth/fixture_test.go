package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// The test servers all sign with one fixed key; only the server names
// differ, which is all the rules look at.
var (
	testKey  = event.KeyFromSeed(bytes.Repeat([]byte{0x42}, 32))
	idKey    = event.KeyFromSeed(bytes.Repeat([]byte{0x11}, 32)) // identity server
	otherKey = event.KeyFromSeed(bytes.Repeat([]byte{0x22}, 32))
)

const (
	testKeyID = "ed25519:test"
	alice     = "@alice:a.test" // creates every test room
	bob       = "@bob:b.test"
	carol     = "@carol:c.test" // moderator (level 50) in rooms made by modRoom
	dave      = "@dave:a.test"
	eve       = "@eve:e.test"
)

var versions = []*event.RoomVersion{event.V10, event.V11, event.V12}

func sp(s string) *string { return &s }

// room builds a room event by event, tracking its state like a server that
// accepts each event it sends.
type room struct {
	t      testing.TB
	v      *event.RoomVersion
	id     string
	create *event.Event
	state  State
	last   []string
	depth  int64
	ts     int64
	byID   map[string]*event.Event // every event built, for auth_events lookups
}

// createContent is the content of a plain create event for v.
func createContent(v *event.RoomVersion) map[string]any {
	c := map[string]any{"room_version": v.ID}
	if !v.CreatorFromSender {
		c["creator"] = alice
	}
	return c
}

// newRoom makes a room holding only alice's create event, whose content is
// createContent(v) with extra merged in (a nil value deletes a key).
func newRoom(t testing.TB, v *event.RoomVersion, extra map[string]any) *room {
	t.Helper()
	c := createContent(v)
	for k, val := range extra {
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
	}
	r := &room{t: t, v: v, state: State{}, ts: 1_700_000_000_000, byID: map[string]*event.Event{}}
	roomID := ""
	if !v.RoomIDFromCreate {
		roomID = "!room:a.test"
	}
	create, err := event.Build(event.Proto{
		RoomID: roomID, Sender: alice, Type: TypeCreate, StateKey: sp(""),
		Content: c, PrevEvents: []string{}, AuthEvents: []string{}, Depth: 1, OriginServerTS: r.ts,
	}, v, "a.test", testKeyID, testKey)
	if err != nil {
		t.Fatalf("build create: %v", err)
	}
	if err := Check(create, State{}); err != nil {
		t.Fatalf("create event rejected: %v", err)
	}
	r.create, r.id = create, create.RoomID()
	r.byID[create.ID()] = create
	r.apply(create)
	return r
}

// basicRoom: alice creates a public room, sets power levels (alice 100 in
// v10/11, a creator in v12) and bob joins.
func basicRoom(t testing.TB, v *event.RoomVersion) *room {
	t.Helper()
	r := newRoom(t, v, nil)
	r.send(alice, TypeMember, sp(alice), map[string]any{"membership": Join})
	r.setLevels(nil)
	r.send(alice, TypeJoinRules, sp(""), map[string]any{"join_rule": JoinRulePublic})
	r.send(bob, TypeMember, sp(bob), map[string]any{"membership": Join})
	return r
}

// modRoom is basicRoom plus carol joined with level 50 and dave joined with
// level 0. Kick, ban, invite and redact levels are all 50.
func modRoom(t testing.TB, v *event.RoomVersion) *room {
	t.Helper()
	r := basicRoom(t, v)
	r.send(carol, TypeMember, sp(carol), map[string]any{"membership": Join})
	r.send(dave, TypeMember, sp(dave), map[string]any{"membership": Join})
	r.setLevels(map[string]any{"users": map[string]any{carol: 50}, "invite": 50})
	return r
}

// setLevels has alice send power levels; alice keeps 100 in v10/11 (in v12
// she is a creator and may not be listed).
func (r *room) setLevels(content map[string]any) {
	r.t.Helper()
	r.send(alice, TypePowerLevels, sp(""), r.levels(content))
}

// levels returns content with alice's entry added for v10/11.
func (r *room) levels(content map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range content {
		out[k] = v
	}
	users := map[string]any{}
	if u, ok := out["users"].(map[string]any); ok {
		for k, v := range u {
			users[k] = v
		}
	}
	if !r.v.CreatorsHaveInfinitePower {
		if _, ok := users[alice]; !ok {
			users[alice] = 100
		}
	}
	out["users"] = users
	return out
}

// build makes an event as sender's server would: prev_events are the
// latest event, auth_events are chosen by SelectAuthEvents.
func (r *room) build(sender, typ string, stateKey *string, content any) *event.Event {
	r.t.Helper()
	return r.buildProto(event.Proto{Sender: sender, Type: typ, StateKey: stateKey, Content: content}, domainOf(sender))
}

// buildProto fills the room, DAG and auth fields left empty in p and signs
// as server.
func (r *room) buildProto(p event.Proto, server string) *event.Event {
	r.t.Helper()
	if p.RoomID == "" {
		p.RoomID = r.id
	}
	if p.PrevEvents == nil {
		p.PrevEvents = r.last
	}
	if p.AuthEvents == nil {
		raw, err := json.Marshal(p.Content)
		if err != nil {
			r.t.Fatalf("marshal content: %v", err)
		}
		sk := ""
		if p.StateKey != nil {
			sk = *p.StateKey
		}
		sel, err := SelectAuthEvents(r.v, p.Type, sk, p.Sender, raw, r.state)
		if err != nil {
			r.t.Fatalf("select auth events: %v", err)
		}
		p.AuthEvents = []string{}
		for _, e := range sel {
			p.AuthEvents = append(p.AuthEvents, e.ID())
		}
	}
	r.depth++
	r.ts++
	p.Depth, p.OriginServerTS = r.depth+1, r.ts
	e, err := event.Build(p, r.v, server, testKeyID, testKey)
	if err != nil {
		r.t.Fatalf("build %s: %v", p.Type, err)
	}
	r.byID[e.ID()] = e
	return e
}

// send builds an event, requires Check to allow it and applies it.
func (r *room) send(sender, typ string, stateKey *string, content any) *event.Event {
	r.t.Helper()
	e := r.build(sender, typ, stateKey, content)
	if err := Check(e, r.state); err != nil {
		r.t.Fatalf("setup event %s rejected: %v", typ, err)
	}
	r.apply(e)
	return e
}

func (r *room) apply(e *event.Event) {
	if sk, ok := e.StateKey(); ok {
		r.state[StateKey{e.Type(), sk}] = e
	}
	r.last = []string{e.ID()}
}

// check runs Check on an event built from the arguments.
func (r *room) check(sender, typ string, stateKey *string, content any) error {
	r.t.Helper()
	return Check(r.build(sender, typ, stateKey, content), r.state)
}

// member is the content of a plain membership event.
func member(m string) map[string]any { return map[string]any{"membership": m} }

// ruleOf extracts the rule of a rejection, or "" for nil.
func ruleOf(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var re *RuleError
	if !errors.As(err, &re) {
		t.Fatalf("error is not a *RuleError: %v", err)
	}
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("error does not wrap ErrForbidden: %v", err)
	}
	return re.Rule
}

// authEventsOf looks up the events e lists in auth_events.
func (r *room) authEventsOf(e *event.Event) []*event.Event {
	var out []*event.Event
	for _, id := range e.AuthEvents() {
		if a := r.byID[id]; a != nil {
			out = append(out, a)
		}
	}
	return out
}

// cosign adds server's signature to e, as the authorising server of a
// restricted join does.
func (r *room) cosign(e *event.Event, server string) *event.Event {
	r.t.Helper()
	raw, err := event.SignEvent(e.JSON(), r.v, server, testKeyID, testKey)
	if err != nil {
		r.t.Fatalf("cosign: %v", err)
	}
	out, err := event.Parse(raw, r.v)
	if err != nil {
		r.t.Fatalf("cosign: parse: %v", err)
	}
	r.byID[out.ID()] = out
	return out
}

// signedTPI returns a third_party_invite.signed object for mxid and token,
// signed by the identity server id.test with key.
func signedTPI(t testing.TB, mxid, token string, key []byte) json.RawMessage {
	t.Helper()
	obj, err := json.Marshal(map[string]string{"mxid": mxid, "token": token})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := event.SignJSON(obj, "id.test", "ed25519:0", key)
	if err != nil {
		t.Fatalf("sign third-party invite: %v", err)
	}
	return signed
}
