package codec

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// PDU packing (context-dependent; see "PDU packing" in the package doc for
// the shared-state contract). A packed PDU is a CBOR array:
//
//	[0] rest      map: every PDU key not listed below (type, content,
//	              state_key, unsigned, redacts, unknown keys), mesh table
//	[1] sender    uint: index into the session's interned names; text: literal
//	[2] ts        int: origin_server_ts minus the largest origin_server_ts of
//	              the prev events (0 when override 5 carries it)
//	[3] prev      array: per prev event, a byte string (the shortest prefix of
//	              its reference hash that is unique among the receiver's
//	              known events; 32 bytes when unknown) or the ID as text
//	[4] sig       [key, bytes]: the one ed25519 signature, made by the
//	              sender's server with key ID key (interned index or text);
//	              null when override 6 carries the signatures
//	[5] check     bytes: the first packCheckLen bytes of the SHA-256 of the
//	              whole PDU (canonical JSON, signatures included), so a wrong
//	              rebuild of any field, interned key IDs too, is detected
//	[6] overrides map (optional): values the receiver cannot recompute —
//	              1 depth, 2 auth_events, 3 room_id, 4 hashes,
//	              5 origin_server_ts, 6 signatures, 7 origin (true: the
//	              sender's server name)
const packCheckLen = 4

// Override keys of a packed PDU.
const (
	ovDepth      = 1
	ovAuthEvents = 2
	ovRoomID     = 3
	ovHashes     = 4
	ovTS         = 5
	ovSignatures = 6
	ovOrigin     = 7
)

var (
	// ErrNotPackable: Pack cannot express this PDU against the context (it
	// is not canonical JSON, is a room version 12 create event, or does not
	// rebuild exactly). Send it unpacked.
	ErrNotPackable = errors.New("PDU not packable")
	// ErrStateMismatch: the receiver's shared state does not match the
	// sender's (an unknown or ambiguous prefix, an unknown name or prev
	// event, or a rebuilt event whose ID fails the check). The receiver
	// asks for, and the sender resends, the PDU unpacked.
	ErrStateMismatch = errors.New("packed PDU does not rebuild against shared state")
)

// RoomContext is what both ends of a federation session know about one room
// and about the session. The receiver's homeserver implements it over its
// own state; the sender packs against its own view of the same room, which
// agrees with the receiver's when they share room state. Implementations
// must be deterministic: the same state gives the same answers.
type RoomContext interface {
	// RoomID is the room the transaction's PDUs belong to.
	RoomID() string
	// RoomVersion is that room's version.
	RoomVersion() *event.RoomVersion
	// EventsWithPrefix returns known events of the room whose reference
	// hash (the decoded event ID) starts with prefix: at most limit IDs.
	EventsWithPrefix(prefix []byte, limit int) []string
	// EventInfo returns the depth and origin_server_ts of a known event.
	EventInfo(eventID string) (depth, ts int64, ok bool)
	// AuthEvents is the receiver's own auth-event selection
	// (server-server-api.md "Auth events selection") for an event of this
	// shape at the current state, in the order its event builder lists them.
	AuthEvents(typ string, stateKey *string, sender string, content json.RawMessage) ([]string, error)
	// Name and NameIndex map the session's interned names (user IDs, server
	// names, key IDs) to small integers and back.
	Name(i uint64) (string, bool)
	NameIndex(s string) (uint64, bool)
}

// Pack appends the packed form of pdu, a canonical-JSON PDU of ctx's room.
// It verifies that Unpack against the same context rebuilds pdu byte for
// byte; when it would not, it returns ErrNotPackable.
func Pack(dst, pdu []byte, ctx RoomContext) ([]byte, error) {
	canon, err := event.CanonicalJSON(pdu)
	if err != nil || !bytes.Equal(canon, pdu) {
		return dst, fmt.Errorf("%w: not canonical JSON", ErrNotPackable)
	}
	v := ctx.RoomVersion()
	pv, err := event.ParseJSON(pdu)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
	}
	obj, ok := pv.(map[string]any)
	if !ok {
		return dst, fmt.Errorf("%w: not an object", ErrNotPackable)
	}
	id, err := event.EventID(pdu, v)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
	}
	ref, err := event.DecodeBase64(id[1:])
	if err != nil || len(ref) < packCheckLen {
		return dst, fmt.Errorf("%w: event ID %q", ErrNotPackable, id)
	}
	sender, _ := obj["sender"].(string)
	if sender == "" {
		return dst, fmt.Errorf("%w: no sender", ErrNotPackable)
	}
	if _, has := obj["room_id"]; !has {
		return dst, fmt.Errorf("%w: no room_id (room version 12 create event)", ErrNotPackable)
	}
	e := encoder{t: TableMesh1, keys: meshTable}
	ov := map[any]any{}
	rest := map[string]any{}
	for k, val := range obj {
		switch k {
		case "room_id", "sender", "prev_events", "depth", "origin_server_ts",
			"hashes", "auth_events", "signatures", "origin":
		default:
			rest[k] = val
		}
	}
	restTree, err := e.value(rest, "", 0)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
	}

	// room_id
	if obj["room_id"] != ctx.RoomID() {
		if ov[ovRoomID], err = e.value(obj["room_id"], "room_id", 1); err != nil {
			return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
		}
	}
	// prev_events, depth and origin_server_ts
	prevs, ok := obj["prev_events"].([]any)
	if !ok {
		return dst, fmt.Errorf("%w: prev_events is not an array", ErrNotPackable)
	}
	prevTree := make([]any, len(prevs))
	allKnown := true
	var maxDepth, maxTS int64
	for i, p := range prevs {
		s, ok := p.(string)
		if !ok {
			return dst, fmt.Errorf("%w: prev_events[%d] is not a string", ErrNotPackable, i)
		}
		prevTree[i] = packEventRef(s, ctx)
		d, ts, known := ctx.EventInfo(s)
		if !known {
			allKnown = false
			continue
		}
		maxDepth, maxTS = max(maxDepth, d), max(maxTS, ts)
	}
	allKnown = allKnown && len(prevs) > 0
	if d, ok := obj["depth"].(json.Number); !ok || !allKnown || string(d) != fmt.Sprint(maxDepth+1) {
		if ov[ovDepth], err = e.value(obj["depth"], "depth", 1); err != nil {
			return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
		}
	}
	var tsField any = int64(0)
	tsNum, tsOK := obj["origin_server_ts"].(json.Number)
	tsVal, tsErr := tsNum.Int64()
	if tsOK && tsErr == nil && allKnown {
		tsField = tsVal - maxTS
	} else if ov[ovTS], err = e.value(obj["origin_server_ts"], "origin_server_ts", 1); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
	}
	// hashes: omitted when it is exactly the content hash.
	if h, err := event.ContentHash(pdu); err != nil || !jsonEqual(obj["hashes"], map[string]any{"sha256": event.EncodeBase64(h)}) {
		if ov[ovHashes], err = e.value(obj["hashes"], "hashes", 1); err != nil {
			return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
		}
	}
	// auth_events: omitted when the receiver selects the same list.
	sk, _ := obj["state_key"].(string)
	var skp *string
	if _, isState := obj["state_key"]; isState {
		skp = &sk
	}
	typ, _ := obj["type"].(string)
	content, _ := event.MarshalCanonical(obj["content"])
	sel, selErr := ctx.AuthEvents(typ, skp, sender, content)
	if selErr != nil || !jsonEqual(obj["auth_events"], stringsToAny(sel)) {
		if ov[ovAuthEvents], err = e.value(obj["auth_events"], "auth_events", 1); err != nil {
			return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
		}
	}
	// signatures: the common case is one signature by the sender's server.
	var sigField any
	if kid, sig, ok := singleSignature(obj["signatures"], serverOf(sender)); ok {
		sigField = []any{nameRef(kid, ctx), sig}
	} else if ov[ovSignatures], err = e.value(obj["signatures"], "signatures", 1); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
	}
	// origin (deprecated top-level key, still sent by some servers)
	if o, has := obj["origin"]; has {
		if o == serverOf(sender) {
			ov[ovOrigin] = true
		} else if ov[ovOrigin], err = e.value(o, "origin", 1); err != nil {
			return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
		}
	}
	tree := []any{restTree, nameRef(sender, ctx), tsField, prevTree, sigField, packCheck(pdu)}
	if len(ov) > 0 {
		tree = append(tree, ov)
	}
	packed, err := encMode.Marshal(tree)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrNotPackable, err)
	}
	back, err := Unpack(nil, packed, ctx)
	if err != nil || !bytes.Equal(back, pdu) {
		return dst, fmt.Errorf("%w: does not rebuild against this context (%v)", ErrNotPackable, err)
	}
	return append(dst, packed...), nil
}

// packEventRef shortens an event ID to the shortest prefix of its reference
// hash that the context resolves to exactly that event.
func packEventRef(id string, ctx RoomContext) any {
	ref := toBinary('$', id)
	if ref == nil {
		return id
	}
	for n := 1; n < len(ref); n++ {
		if got := ctx.EventsWithPrefix(ref[:n], 2); len(got) == 1 && got[0] == id {
			return ref[:n]
		}
	}
	return ref
}

func nameRef(s string, ctx RoomContext) any {
	if i, ok := ctx.NameIndex(s); ok {
		return i
	}
	return s
}

func singleSignature(v any, server string) (string, []byte, bool) {
	sigs, ok := v.(map[string]any)
	if !ok || len(sigs) != 1 {
		return "", nil, false
	}
	byKey, ok := sigs[server].(map[string]any)
	if !ok || len(byKey) != 1 {
		return "", nil, false
	}
	for kid, s := range byKey {
		str, ok := s.(string)
		if !ok || !strings.HasPrefix(kid, "ed25519:") {
			return "", nil, false
		}
		if b := toBinary(1, str); len(b) == 64 {
			return kid, b, true
		}
	}
	return "", nil, false
}

// serverOf is the server name of a user ID ("@local:server").
func serverOf(userID string) string {
	_, server, _ := strings.Cut(userID, ":")
	return server
}

func jsonEqual(a, b any) bool {
	x, err1 := event.MarshalCanonical(a)
	y, err2 := event.MarshalCanonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Unpack appends the exact canonical-JSON PDU that packed stands for,
// rebuilt against ctx. Any disagreement with the sender's state is
// ErrStateMismatch.
func Unpack(dst, packed []byte, ctx RoomContext) ([]byte, error) {
	var raw any
	if err := decMode.Unmarshal(packed, &raw); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w: %w", ErrMalformed, err)
	}
	arr, ok := raw.([]any)
	if !ok || (len(arr) != 6 && len(arr) != 7) {
		return dst, fmt.Errorf("codec: unpack: %w: not a 6- or 7-element array", ErrMalformed)
	}
	d := decoder{t: TableMesh1, keys: meshTable}
	restV, err := d.value(arr[0], "", 0)
	if err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	}
	obj, ok := restV.(map[string]any)
	if !ok {
		return dst, fmt.Errorf("codec: unpack: %w: rest is not a map", ErrMalformed)
	}
	for _, k := range []string{"room_id", "sender", "prev_events", "depth", "origin_server_ts", "hashes", "auth_events", "signatures", "origin"} {
		if _, has := obj[k]; has {
			return dst, fmt.Errorf("codec: unpack: %w: rest carries %q", ErrMalformed, k)
		}
	}
	ov := map[any]any{}
	if len(arr) == 7 {
		if ov, ok = arr[6].(map[any]any); !ok {
			return dst, fmt.Errorf("codec: unpack: %w: overrides are not a map", ErrMalformed)
		}
	}
	override := func(k uint64, name string) (any, bool, error) {
		x, has := ov[k]
		if !has {
			return nil, false, nil
		}
		v, err := d.value(x, name, 1)
		return v, true, err
	}
	for k := range ov {
		if n, ok := k.(uint64); !ok || n < ovDepth || n > ovOrigin {
			return dst, fmt.Errorf("codec: unpack: %w: unknown override %v", ErrMalformed, k)
		}
	}
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("codec: unpack: %w: %s", ErrStateMismatch, fmt.Sprintf(format, args...))
	}

	sender, err := unpackName(arr[1], ctx)
	if err != nil {
		return dst, mismatch("sender: %v", err)
	}
	obj["sender"] = sender
	if v, has, err := override(ovRoomID, "room_id"); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	} else if has {
		obj["room_id"] = v
	} else {
		obj["room_id"] = ctx.RoomID()
	}
	prevRaw, ok := arr[3].([]any)
	if !ok {
		return dst, fmt.Errorf("codec: unpack: %w: prev is not an array", ErrMalformed)
	}
	prevs := make([]any, len(prevRaw))
	allKnown := len(prevRaw) > 0
	var maxDepth, maxTS int64
	for i, p := range prevRaw {
		var id string
		switch x := p.(type) {
		case string:
			id = x
		case []byte:
			if len(x) == 0 || len(x) > 32 {
				return dst, fmt.Errorf("codec: unpack: %w: prev[%d] has %d bytes", ErrMalformed, i, len(x))
			}
			if len(x) == 32 {
				id = fromBinary('$', x)
				break
			}
			got := ctx.EventsWithPrefix(x, 2)
			if len(got) != 1 {
				return dst, mismatch("prev[%d] prefix matches %d known events", i, len(got))
			}
			id = got[0]
		default:
			return dst, fmt.Errorf("codec: unpack: %w: prev[%d] is %T", ErrMalformed, i, p)
		}
		prevs[i] = id
		if dp, ts, known := ctx.EventInfo(id); known {
			maxDepth, maxTS = max(maxDepth, dp), max(maxTS, ts)
		} else {
			allKnown = false
		}
	}
	obj["prev_events"] = prevs
	if v, has, err := override(ovDepth, "depth"); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	} else if has {
		obj["depth"] = v
	} else if !allKnown {
		return dst, mismatch("depth of unknown prev events")
	} else {
		obj["depth"] = maxDepth + 1
	}
	if v, has, err := override(ovTS, "origin_server_ts"); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	} else if has {
		obj["origin_server_ts"] = v
	} else if !allKnown {
		return dst, mismatch("timestamp relative to unknown prev events")
	} else {
		delta, err := d.value(arr[2], "", 1)
		n, ok := delta.(int64)
		if err != nil || !ok {
			return dst, fmt.Errorf("codec: unpack: %w: ts is not an integer", ErrMalformed)
		}
		obj["origin_server_ts"] = maxTS + n
	}
	if v, has, err := override(ovOrigin, "origin"); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	} else if v == true {
		obj["origin"] = serverOf(sender)
	} else if has {
		obj["origin"] = v
	}
	if v, has, err := override(ovAuthEvents, "auth_events"); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	} else if has {
		obj["auth_events"] = v
	} else {
		typ, _ := obj["type"].(string)
		sk, isState := obj["state_key"].(string)
		var skp *string
		if isState {
			skp = &sk
		}
		content, err := event.MarshalCanonical(obj["content"])
		if err != nil {
			return dst, fmt.Errorf("codec: unpack: %w: content: %w", ErrMalformed, err)
		}
		sel, err := ctx.AuthEvents(typ, skp, sender, content)
		if err != nil {
			return dst, mismatch("auth events: %v", err)
		}
		obj["auth_events"] = stringsToAny(sel)
	}
	if v, has, err := override(ovSignatures, "signatures"); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	} else if has {
		obj["signatures"] = v
	} else {
		pair, ok := arr[4].([]any)
		if !ok || len(pair) != 2 {
			return dst, fmt.Errorf("codec: unpack: %w: sig is not a [key, signature] pair", ErrMalformed)
		}
		kid, err := unpackName(pair[0], ctx)
		if err != nil {
			return dst, mismatch("signing key: %v", err)
		}
		sig, ok := pair[1].([]byte)
		if !ok || len(sig) != 64 {
			return dst, fmt.Errorf("codec: unpack: %w: signature is not 64 bytes", ErrMalformed)
		}
		obj["signatures"] = map[string]any{serverOf(sender): map[string]any{kid: fromBinary(1, sig)}}
	}
	if v, has, err := override(ovHashes, "hashes"); err != nil {
		return dst, fmt.Errorf("codec: unpack: %w", err)
	} else if has {
		obj["hashes"] = v
	} else {
		noHash, err := event.MarshalCanonical(obj)
		if err != nil {
			return dst, fmt.Errorf("codec: unpack: %w: %w", ErrMalformed, err)
		}
		h, err := event.ContentHash(noHash)
		if err != nil {
			return dst, fmt.Errorf("codec: unpack: %w: %w", ErrMalformed, err)
		}
		obj["hashes"] = map[string]any{"sha256": event.EncodeBase64(h)}
	}
	out, err := event.MarshalCanonical(obj)
	if err != nil {
		return dst, fmt.Errorf("codec: unpack: %w: %w", ErrMalformed, err)
	}
	check, ok := arr[5].([]byte)
	if !ok || len(check) != packCheckLen {
		return dst, fmt.Errorf("codec: unpack: %w: check is not %d bytes", ErrMalformed, packCheckLen)
	}
	if !bytes.Equal(packCheck(out), check) {
		return dst, mismatch("rebuilt event fails the check")
	}
	return append(dst, out...), nil
}

// packCheck is the check field of a packed PDU: the first packCheckLen
// bytes of SHA-256 over the PDU. The reference hash (event ID) would not
// do: it leaves out the signatures, whose key ID may be interned.
func packCheck(pdu []byte) []byte {
	h := sha256.Sum256(pdu)
	return h[:packCheckLen]
}

func unpackName(v any, ctx RoomContext) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case uint64:
		if s, ok := ctx.Name(x); ok {
			return s, nil
		}
		return "", fmt.Errorf("no interned name %d", x)
	}
	return "", fmt.Errorf("name is %T", v)
}
