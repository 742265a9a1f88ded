package gateway

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/mxmesh/mxmesh/codec"
)

// Packed federation transactions (doc.go "Federation over the mesh",
// "PDU packing").
const (
	// ContentFormatPackedTxn is a federation transaction whose PDUs are
	// packed against shared room state (codec.Pack). NOTSPEC: a number from
	// the experimental range (RFC 7252 §12.3); only mxmesh servers send or
	// accept it, and only between pinned peers.
	ContentFormatPackedTxn message.MediaType = 65061
	// ErrCodeStateMismatch is the errcode of the 4.09 answer to a packed
	// transaction that does not rebuild against the receiver's state
	// (codec.ErrStateMismatch); the sender then resends it unpacked.
	ErrCodeStateMismatch = "ORG.MXMESH.STATE_MISMATCH"
)

// RoomContexts gives the shared state of a room (homeserver.Node.
// MeshRoomContext); it is called inside the node loop.
type RoomContexts func(roomID string) (codec.RoomContext, error)

// maxPackedItems bounds the PDUs of one packed transaction (the spec's
// limit for a transaction is 50; server-server-api "Transactions").
const maxPackedItems = 50

// packTransaction packs the PDUs of a transaction (JSON) that belong to
// the room of its first PDU. The layout is a CBOR array of three:
//
//	[0] bytes  a codec frame of the transaction without its "pdus" key
//	[1] text   the room ID the packed PDUs belong to
//	[2] array  the PDUs in order: a packed PDU (the CBOR array codec.Pack
//	           writes) or a byte string holding a codec frame of a PDU that
//	           does not pack (another room, or not packable)
//
// Frames are written in fr. Packed PDUs are in TableMesh1 (codec.Pack), so
// nothing packs for a peer that reads an older table.
//
// It returns ok false when no PDU packs: the caller sends the plain frame.
func packTransaction(txn []byte, contexts RoomContexts, fr codec.FrameOptions) (out []byte, ok bool, err error) {
	if fr.Table < codec.TableMesh1 {
		return nil, false, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(txn, &obj); err != nil {
		return nil, false, fmt.Errorf("pack transaction: %w", err)
	}
	var pdus []json.RawMessage
	if err := json.Unmarshal(obj["pdus"], &pdus); err != nil || len(pdus) == 0 || len(pdus) > maxPackedItems {
		return nil, false, nil
	}
	var first struct {
		RoomID string `json:"room_id"`
	}
	if json.Unmarshal(pdus[0], &first) != nil || first.RoomID == "" {
		return nil, false, nil
	}
	ctx, err := contexts(first.RoomID)
	if err != nil {
		return nil, false, nil // a room we hold no state of: nothing to share
	}
	delete(obj, "pdus")
	rest, err := json.Marshal(obj)
	if err != nil {
		return nil, false, fmt.Errorf("pack transaction: %w", err)
	}
	frame, _, err := codec.EncodeFrame(nil, rest, fr)
	if err != nil {
		return nil, false, fmt.Errorf("pack transaction: %w", err)
	}
	items := make([]cbor.RawMessage, len(pdus))
	packed := 0
	for i, p := range pdus {
		if b, err := codec.Pack(nil, p, ctx); err == nil {
			items[i] = b
			packed++
			continue
		}
		f, _, err := codec.EncodeFrame(nil, p, fr)
		if err != nil {
			return nil, false, fmt.Errorf("pack transaction: PDU %d: %w", i, err)
		}
		if items[i], err = cbor.Marshal(f); err != nil {
			return nil, false, fmt.Errorf("pack transaction: %w", err)
		}
	}
	if packed == 0 {
		return nil, false, nil
	}
	out, err = cbor.Marshal([]any{frame, first.RoomID, items})
	if err != nil {
		return nil, false, fmt.Errorf("pack transaction: %w", err)
	}
	return out, true, nil
}

// errPackedFormat is a packed transaction that is not the layout above.
var errPackedFormat = errors.New("malformed packed transaction")

// unpackTransaction rebuilds the JSON transaction for a receiver that reads
// up to limit. A PDU that does not rebuild fails with an error wrapping
// codec.ErrStateMismatch; a frame newer than limit, or any packed
// transaction when limit is older than TableMesh1, with one wrapping
// codec.ErrNotNegotiated.
func unpackTransaction(payload []byte, contexts RoomContexts, limit codec.FrameOptions) ([]byte, error) {
	if limit.Table < codec.TableMesh1 {
		return nil, fmt.Errorf("packed transaction: %w: packed PDUs need table %d", codec.ErrNotNegotiated, codec.TableMesh1)
	}
	var top []cbor.RawMessage
	if err := packedDecMode.Unmarshal(payload, &top); err != nil || len(top) != 3 {
		return nil, fmt.Errorf("%w: %v", errPackedFormat, err)
	}
	var frame []byte
	var roomID string
	var items []cbor.RawMessage
	if packedDecMode.Unmarshal(top[0], &frame) != nil || packedDecMode.Unmarshal(top[1], &roomID) != nil ||
		packedDecMode.Unmarshal(top[2], &items) != nil || len(items) == 0 || len(items) > maxPackedItems {
		return nil, errPackedFormat
	}
	rest, _, err := codec.DecodeFrameLimit(nil, frame, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPackedFormat, err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(rest, &obj); err != nil {
		return nil, fmt.Errorf("%w: %w", errPackedFormat, err)
	}
	ctx, err := contexts(roomID)
	if err != nil {
		return nil, fmt.Errorf("room %s: %w (%w)", roomID, codec.ErrStateMismatch, err)
	}
	pdus := make([]json.RawMessage, len(items))
	for i, it := range items {
		if len(it) > 0 && it[0]>>5 == 2 { // major type 2: a framed PDU
			var f []byte
			if err := packedDecMode.Unmarshal(it, &f); err != nil {
				return nil, fmt.Errorf("%w: PDU %d: %w", errPackedFormat, i, err)
			}
			if pdus[i], _, err = codec.DecodeFrameLimit(nil, f, limit); err != nil {
				return nil, fmt.Errorf("%w: PDU %d: %w", errPackedFormat, i, err)
			}
			continue
		}
		if pdus[i], err = codec.Unpack(nil, it, ctx); err != nil {
			return nil, fmt.Errorf("PDU %d: %w", i, err)
		}
	}
	if obj["pdus"], err = json.Marshal(pdus); err != nil {
		return nil, fmt.Errorf("unpack transaction: %w", err)
	}
	return json.Marshal(obj)
}

// packedDecMode decodes the envelope: definite lengths and nesting no
// deeper than a PDU may have (the inner parts are checked by codec).
var packedDecMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{MaxNestedLevels: codec.MaxDepth + 8, IndefLength: cbor.IndefLengthForbidden,
		DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
	if err != nil {
		panic(err) // the options above are constant and valid
	}
	return m
}()
