package homeserver

// The client format of stored events. Spec: client-server-api "Room
// Events" (ClientEvent): the PDU's federation-only keys (auth_events,
// prev_events, depth, hashes, signatures) are dropped, event_id is added,
// and unsigned carries age, prev_content, redacted_because and, for the
// sending device only, transaction_id.

import (
	"encoding/json"
	"fmt"

	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// clientEvent is one event as clients see it.
type clientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	// Redacts is set for m.room.redaction in every room version: from
	// version 11 it also stays in content. Spec: client-server-api
	// m.room.redaction ("servers should copy it for compatibility").
	Redacts  string          `json:"redacts,omitempty"`
	Unsigned *clientUnsigned `json:"unsigned,omitempty"`
}

type clientUnsigned struct {
	Age             int64           `json:"age"`
	TransactionID   string          `json:"transaction_id,omitempty"`
	PrevContent     json.RawMessage `json:"prev_content,omitempty"`
	ReplacesState   string          `json:"replaces_state,omitempty"`
	RedactedBecause *clientEvent    `json:"redacted_because,omitempty"`
	Relations       map[string]any  `json:"m.relations,omitempty"` // bundled aggregations (relations.go)
}

// eventView says who an event is formatted for.
type eventView struct {
	userID, deviceID string
	withRoomID       bool
	now              int64 // ms since the epoch, for unsigned.age
	// noBundles leaves out the bundled aggregations (incremental,
	// non-limited /sync timelines: sync.go).
	noBundles bool
}

// pduBody is the part of a stored PDU the client format needs that the
// index columns do not hold.
type pduBody struct {
	Content json.RawMessage `json:"content"`
	Redacts string          `json:"redacts"`
}

// clientEvent formats a stored event for a client, with its bundled
// aggregations.
func (rs *roomsModule) clientEvent(row store.EventRow, view eventView) (*clientEvent, error) {
	evs, err := rs.clientEvents([]store.EventRow{row}, view)
	if err != nil {
		return nil, err
	}
	return evs[0], nil
}

// formatEvent formats a stored event for a client, without aggregations.
func (rs *roomsModule) formatEvent(row store.EventRow, view eventView) (*clientEvent, error) {
	raw := row.JSON
	if row.RedactedBy != "" {
		room, err := rs.st.Room(row.RoomID)
		if err != nil {
			return nil, err
		}
		v, err := event.LookupVersion(room.Version)
		if err != nil {
			return nil, err
		}
		if raw, err = event.Redact(raw, v); err != nil {
			return nil, fmt.Errorf("format event %s: %w", row.EventID, err)
		}
	}
	var body pduBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("format event %s: %w", row.EventID, err)
	}
	ce := &clientEvent{
		Content: body.Content, EventID: row.EventID, OriginServerTS: row.OriginServerTS,
		Sender: row.Sender, StateKey: row.StateKey, Type: row.Type,
		Unsigned: &clientUnsigned{Age: max(0, view.now-row.OriginServerTS)},
	}
	if len(ce.Content) == 0 {
		ce.Content = json.RawMessage("{}")
	}
	if view.withRoomID {
		ce.RoomID = row.RoomID
	}
	if row.Type == "m.room.redaction" {
		ce.Redacts = body.Redacts
		if ce.Redacts == "" {
			var c struct {
				Redacts string `json:"redacts"`
			}
			if json.Unmarshal(ce.Content, &c) == nil {
				ce.Redacts = c.Redacts
			}
		}
	}
	if row.TxnID != "" && row.Sender == view.userID && row.TxnDevice == view.deviceID {
		ce.Unsigned.TransactionID = row.TxnID
	}
	if row.ReplacesState != "" {
		ce.Unsigned.ReplacesState = row.ReplacesState
		if prev, err := rs.st.Event(row.ReplacesState); err == nil && prev.RedactedBy == "" {
			var pb pduBody
			if json.Unmarshal(prev.JSON, &pb) == nil {
				ce.Unsigned.PrevContent = pb.Content
			}
		}
	}
	if row.RedactedBy != "" {
		if red, err := rs.st.Event(row.RedactedBy); err == nil {
			red.RedactedBy = "" // a redaction of the redaction is not shown here
			if rc, err := rs.formatEvent(red, view); err == nil {
				ce.Unsigned.RedactedBecause = rc
			}
		}
	}
	return ce, nil
}

// clientEvents formats a list of stored events, with their bundled
// aggregations unless view.noBundles.
func (rs *roomsModule) clientEvents(rows []store.EventRow, view eventView) ([]*clientEvent, error) {
	out := make([]*clientEvent, 0, len(rows))
	for _, r := range rows {
		ce, err := rs.formatEvent(r, view)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	if view.noBundles {
		return out, nil
	}
	if err := rs.bundleRelations(rows, out, view); err != nil {
		return nil, err
	}
	return out, nil
}

// viewFor is the view of the calling user and device.
func (rs *roomsModule) viewFor(c *Call, withRoomID bool) eventView {
	return eventView{userID: c.UserID, deviceID: c.DeviceID, withRoomID: withRoomID, now: rs.n.Now().UnixMilli()}
}
