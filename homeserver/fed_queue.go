package homeserver

// Outbound transactions: per-destination queues persisted in SQLite
// (federation_outbound), sent as PUT /_matrix/federation/v1/send/{txnId}
// with at most 50 PDUs and 100 EDUs, one transaction in flight per
// destination, retried with exponential backoff and jitter.
// Spec: server-server-api "Transactions", "PUT /send/{txnId}".

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Transaction limits (server-server-api "Transactions": "A transaction
// can contain at most 50 PDUs and 100 EDUs").
const (
	MaxTxnPDUs = 50
	MaxTxnEDUs = 100
)

// Retry backoff of a failing destination: the n-th consecutive failure
// waits a random time in [d/2, d) with d = min(retryBase·2ⁿ⁻¹, retryMax).
//
// NOTSPEC: the spec leaves retry timing to the server.
const (
	retryBase = 5 * time.Second
	retryMax  = time.Hour
)

// destQueue is the in-memory state of one destination's queue; the items
// themselves are in the database.
type destQueue struct {
	dest     string
	inFlight bool
	timer    clock.Timer // retry or start timer; nil when none
	failures int
	retryAt  time.Time
}

// SendPDU queues a PDU for each destination (our own name is skipped) and
// starts sending.
func (f *Federation) SendPDU(dests []string, pdu json.RawMessage) error {
	return f.enqueue(dests, store.OutboundPDU, pdu)
}

// SendEDU queues an EDU of eduType with content for each destination and
// starts sending.
func (f *Federation) SendEDU(dests []string, eduType string, content any) error {
	raw, err := json.Marshal(map[string]any{"edu_type": eduType, "content": content})
	if err != nil {
		return fmt.Errorf("federation: queue EDU %s: %w", eduType, err)
	}
	return f.enqueue(dests, store.OutboundEDU, raw)
}

func (f *Federation) enqueue(dests []string, kind string, data []byte) error {
	var to []string
	seen := map[string]bool{}
	for _, d := range dests {
		if d == f.n.ServerName() || seen[d] {
			continue
		}
		if err := ValidateServerName(d); err != nil {
			return fmt.Errorf("federation: queue %s: %w", kind, err)
		}
		seen[d] = true
		to = append(to, d)
	}
	if len(to) == 0 {
		return nil
	}
	if _, err := f.n.store.EnqueueOutbound(to, kind, data); err != nil {
		return fmt.Errorf("federation: queue %s: %w", kind, err)
	}
	for _, d := range to {
		f.kick(f.queue(d))
	}
	return nil
}

// QueueLen is how many items wait for dest (for tests and status).
func (f *Federation) QueueLen(dest string) (int, error) { return f.n.store.OutboundCount(dest) }

// queue returns dest's state, loading its backoff from the database.
func (f *Federation) queue(dest string) *destQueue {
	q := f.queues[dest]
	if q != nil {
		return q
	}
	q = &destQueue{dest: dest}
	if st, err := f.n.store.Destination(dest); err != nil {
		f.n.log.Warn("federation: load destination state", "dest", dest, "err", err)
	} else if st.Failures > 0 {
		q.failures = st.Failures
		q.retryAt = time.UnixMilli(st.RetryAtTS)
	}
	f.queues[dest] = q
	return q
}

// restoreQueues schedules every destination with queued items, at its
// stored retry time (or at once): the queues survive restarts.
func (f *Federation) restoreQueues() error {
	dests, err := f.n.store.OutboundDestinations()
	if err != nil {
		return err
	}
	for _, d := range dests {
		f.kick(f.queue(d))
	}
	return nil
}

// kick sends dest's next transaction unless one is in flight or the
// destination is backing off (then its timer will kick it).
func (f *Federation) kick(q *destQueue) {
	if f.stopped || q.inFlight || q.timer != nil {
		return
	}
	if wait := q.retryAt.Sub(f.n.Now()); wait > 0 {
		q.timer = f.n.AfterFunc(wait, func() {
			q.timer = nil
			f.kick(q)
		})
		return
	}
	pdus, edus, err := f.n.store.OutboundBatch(q.dest, MaxTxnPDUs, MaxTxnEDUs)
	if err != nil {
		f.n.log.Error("federation: load outbound batch", "dest", q.dest, "err", err)
		return
	}
	if len(pdus)+len(edus) == 0 {
		return
	}
	txn := struct {
		Origin         string            `json:"origin"`
		OriginServerTS int64             `json:"origin_server_ts"`
		PDUs           []json.RawMessage `json:"pdus"`
		EDUs           []json.RawMessage `json:"edus,omitempty"`
	}{Origin: f.n.ServerName(), OriginServerTS: f.n.Now().UnixMilli(), PDUs: []json.RawMessage{}}
	seqs := make([]int64, 0, len(pdus)+len(edus))
	lo, hi := int64(-1), int64(-1)
	for _, items := range [][]store.OutboundItem{pdus, edus} {
		for _, it := range items {
			if it.Kind == store.OutboundPDU {
				txn.PDUs = append(txn.PDUs, it.JSON)
			} else {
				txn.EDUs = append(txn.EDUs, it.JSON)
			}
			seqs = append(seqs, it.Seq)
			if lo < 0 || it.Seq < lo {
				lo = it.Seq
			}
			hi = max(hi, it.Seq)
		}
	}
	body, err := json.Marshal(txn)
	if err != nil {
		f.n.log.Error("federation: marshal transaction", "dest", q.dest, "err", err)
		return
	}
	// Seqs are never reused, so the first and last seq with the count name
	// the transaction uniquely; a retry of the same batch reuses the ID and
	// the receiver answers it without applying it twice.
	txnID := strconv.FormatInt(lo, 10) + "-" + strconv.FormatInt(hi, 10) + "-" + strconv.Itoa(len(seqs))
	q.inFlight = true
	f.Do(q.dest, OutboundRequest{Method: "PUT", URI: "/_matrix/federation/v1/send/" + url.PathEscape(txnID), Body: body},
		func(resp OutboundResponse, err error) { f.sent(q, txnID, seqs, resp, err) })
}

// sent handles the answer to a transaction.
func (f *Federation) sent(q *destQueue, txnID string, seqs []int64, resp OutboundResponse, err error) {
	q.inFlight = false
	if f.stopped {
		return // the items stay queued for the next start
	}
	var rerr *RemoteError
	if errors.As(err, &rerr) && (rerr.Status == 400 || rerr.Status == 413) {
		// The destination read the transaction and refused its content:
		// the same bytes can never succeed, and retrying them would block
		// the queue for good. Drop the batch.
		f.n.log.Warn("federation: destination refused a transaction; dropping it", "dest", q.dest, "txn", txnID,
			"items", len(seqs), "err", err)
		err = nil
	}
	if err != nil {
		q.failures++
		d := retryBase << min(q.failures-1, 20)
		if d > retryMax || d <= 0 {
			d = retryMax
		}
		half := d / 2
		wait := half + time.Duration(f.n.rng.Uint64()%uint64(half))
		q.retryAt = time.UnixMilli(f.n.Now().Add(wait).UnixMilli()) // as stored
		f.n.log.Info("federation: transaction failed; will retry", "dest", q.dest, "txn", txnID,
			"failures", q.failures, "retry_in", wait, "err", err)
		if perr := f.n.store.PutDestination(store.DestinationState{Destination: q.dest, Failures: q.failures,
			RetryAtTS: q.retryAt.UnixMilli()}); perr != nil {
			f.n.log.Error("federation: store destination state", "dest", q.dest, "err", perr)
		}
		f.kick(q)
		return
	}
	var answer struct {
		PDUs map[string]struct {
			Error string `json:"error"`
		} `json:"pdus"`
	}
	if json.Unmarshal(resp.Body, &answer) == nil {
		for id, r := range answer.PDUs {
			if r.Error != "" {
				f.n.log.Info("federation: destination rejected a PDU", "dest", q.dest, "event_id", id, "error", r.Error)
			}
		}
	}
	if err := f.n.store.DeleteOutbound(seqs); err != nil {
		f.n.log.Error("federation: delete sent items", "dest", q.dest, "err", err)
		return
	}
	recovered := q.failures > 0
	q.failures, q.retryAt = 0, time.Time{}
	if recovered {
		if err := f.n.store.PutDestination(store.DestinationState{Destination: q.dest}); err != nil {
			f.n.log.Error("federation: store destination state", "dest", q.dest, "err", err)
		}
		if f.catchUp != nil {
			f.catchUp(q.dest)
		}
	}
	f.kick(q)
}
