package homeserver

// Inbound transactions: PUT /_matrix/federation/v1/send/{txnId}.
// Spec: server-server-api "Transactions" and "PUT
// /_matrix/federation/v1/send/{txnId}".
//
//	{"origin": "a.example", "origin_server_ts": 1234,
//	 "pdus": [ …at most 50 events… ],
//	 "edus": [ {"edu_type": "m.typing", "content": {…}}, …at most 100… ]}
//
// Answer: {"pdus": {"$eventId": {} | {"error": "why it was rejected"}}}.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// maxPDUBytes is the size limit of one PDU: "The complete event MUST NOT
// be larger than 65536 bytes, when formatted with the federation event
// format, including any signatures, and encoded as Canonical JSON"
// (server-server-api "Size limits", client-server-api "Size limits").
const maxPDUBytes = 65536

// inboundTxnMemory is how long an answered transaction is remembered so
// that a retry of it is answered, not re-applied.
//
// NOTSPEC: the spec does not say how long a transaction ID must be
// remembered; senders retry within minutes.
const inboundTxnMemory = 24 * time.Hour

// ErrRoomFederationNotImplemented is the per-PDU error while no
// PDUHandler is installed.
var ErrRoomFederationNotImplemented = errors.New("this server does not accept PDUs over federation yet")

func (f *Federation) sendRoutes() []Route {
	return []Route{
		{Method: "PUT", Pattern: "/_matrix/federation/v1/send/{txnId}", Auth: AuthFederation, Handle: f.handleSend},
	}
}

type pduResult struct {
	Error string `json:"error,omitempty"`
}

func (f *Federation) handleSend(c *Call) {
	origin, txnID := c.Origin, c.Req.Vars["txnId"]
	// The sender is evidently reachable: retry what we owe it now.
	f.wake(origin)
	if raw, ok, err := f.n.store.InboundTxn(origin, txnID); err != nil {
		c.Fail(err)
		return
	} else if ok {
		c.Reply(200, json.RawMessage(raw))
		return
	}
	key := origin + "\x00" + txnID
	if waiting, ok := f.inflight[key]; ok {
		// The same transaction is being processed: answer this copy with
		// the first one's answer.
		f.inflight[key] = append(waiting, c)
		return
	}
	var txn struct {
		Origin         string            `json:"origin"`
		OriginServerTS int64             `json:"origin_server_ts"`
		PDUs           []json.RawMessage `json:"pdus"`
		EDUs           []json.RawMessage `json:"edus"`
	}
	if err := c.DecodeJSON(&txn); err != nil {
		c.Fail(err)
		return
	}
	switch {
	case txn.Origin != origin:
		c.Fail(Errorf(403, ErrCodeForbidden, "transaction origin %q is not the signing server %q", txn.Origin, origin))
		return
	case txn.PDUs == nil:
		c.Fail(Errorf(400, ErrCodeBadJSON, "pdus is required"))
		return
	case len(txn.PDUs) > MaxTxnPDUs || len(txn.EDUs) > MaxTxnEDUs:
		c.Fail(Errorf(400, ErrCodeTooLarge, "a transaction carries at most %d PDUs and %d EDUs; got %d and %d",
			MaxTxnPDUs, MaxTxnEDUs, len(txn.PDUs), len(txn.EDUs)))
		return
	}
	f.inflight[key] = nil
	results := map[string]pduResult{}
	var step func(i int)
	finish := func() {
		f.handleEDUs(origin, txn.EDUs)
		raw, err := json.Marshal(map[string]any{"pdus": results})
		waiting := f.inflight[key]
		delete(f.inflight, key)
		if err == nil {
			now := f.n.Now()
			err = f.n.store.PutInboundTxn(origin, txnID, raw, now.UnixMilli(), now.Add(-inboundTxnMemory).UnixMilli())
		}
		for _, w := range append([]*Call{c}, waiting...) {
			if err != nil {
				w.Fail(err)
			} else {
				w.Reply(200, json.RawMessage(raw))
			}
		}
	}
	step = func(i int) {
		if i == len(txn.PDUs) {
			finish()
			return
		}
		f.handlePDU(origin, txn.PDUs[i], func(eventID string, err error) {
			if eventID != "" {
				r := pduResult{}
				if err != nil {
					r.Error = err.Error()
				}
				results[eventID] = r
			} else if err != nil {
				f.n.log.Info("federation: unnamed PDU rejected", "origin", origin, "err", err)
			}
			step(i + 1)
		})
	}
	step(0)
}

// handlePDU checks what can be checked without the room (JSON object, size)
// and passes the PDU to the PDUHandler.
func (f *Federation) handlePDU(origin string, pdu json.RawMessage, done func(string, error)) {
	eventID := f.guessEventID(pdu)
	if len(pdu) > maxPDUBytes {
		done(eventID, fmt.Errorf("PDU is %d bytes; the limit is %d", len(pdu), maxPDUBytes))
		return
	}
	if f.pdu == nil {
		done(eventID, ErrRoomFederationNotImplemented)
		return
	}
	f.pdu(origin, pdu, done)
}

// guessEventID computes a PDU's event ID when its room is known here (the
// room's version decides the redaction algorithm, hence the reference
// hash); "" otherwise, and the PDU is then left out of the answer.
//
// NOTSPEC: for a room we do not know the ID cannot be computed, so no
// result is reported for that PDU.
func (f *Federation) guessEventID(pdu json.RawMessage) string {
	var head struct {
		RoomID string `json:"room_id"`
	}
	if json.Unmarshal(pdu, &head) != nil || head.RoomID == "" {
		return ""
	}
	room, err := f.n.store.Room(head.RoomID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			f.n.log.Warn("federation: look up room of PDU", "room", head.RoomID, "err", err)
		}
		return ""
	}
	v, err := event.LookupVersion(room.Version)
	if err != nil {
		return ""
	}
	id, err := event.EventID(pdu, v)
	if err != nil {
		return ""
	}
	return id
}

// handleEDUs dispatches each EDU to its handler. EDUs carry no per-item
// result; malformed or unhandled ones are logged and dropped.
func (f *Federation) handleEDUs(origin string, edus []json.RawMessage) {
	for _, raw := range edus {
		var e struct {
			Type    string          `json:"edu_type"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Type == "" {
			f.n.log.Debug("federation: malformed EDU dropped", "origin", origin)
			continue
		}
		h := f.edus[e.Type]
		if h == nil {
			f.n.log.Debug("federation: EDU type not handled; dropped", "origin", origin, "edu_type", e.Type)
			continue
		}
		if err := h(origin, e.Content); err != nil {
			f.n.log.Info("federation: EDU rejected", "origin", origin, "edu_type", e.Type, "err", err)
		}
	}
}

// wake retries dest now if it is backing off: it just talked to us. A
// destination that answered 429 with retry_after_ms is not woken before
// that time: it is up, and asked us to wait.
func (f *Federation) wake(dest string) {
	q := f.queues[dest]
	if q == nil || q.failures == 0 || q.inFlight || f.n.Now().Before(q.limitedUntil) {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	q.retryAt = time.Time{}
	f.kick(q)
}
