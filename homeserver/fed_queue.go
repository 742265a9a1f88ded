package homeserver

// Outbound transactions: per-destination queues persisted in SQLite
// (federation_outbound), sent as PUT /_matrix/federation/v1/send/{txnId}
// with at most 50 PDUs and 100 EDUs, one transaction in flight per
// destination, retried with exponential backoff and jitter, and no sooner
// than a 429 answer's retry_after_ms asks (retryAfter).
// Spec: server-server-api "Transactions", "PUT /send/{txnId}".

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
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

// Bounds on the EDUs queued for one destination. PDUs are never dropped
// (a destination that comes back catches up on them); EDUs are not part
// of any room's history, and a destination that stays down must not make
// its queue grow without end.
//
// NOTSPEC: the spec leaves queueing to the server.
const (
	// maxQueuedLossyEDUs is how many typing and presence EDUs wait for one
	// destination; beyond it the oldest are dropped: newer ones supersede
	// them, and typing notifications are stale in seconds anyway.
	maxQueuedLossyEDUs = 100
	// maxQueuedEDUBytes bounds the other EDUs waiting for one destination
	// (device list updates, to-device messages, receipts, signing key
	// updates), which must arrive and are never dropped once queued: past
	// the bound new ones are not queued, and a warning says so.
	maxQueuedEDUBytes = 1 << 20
)

// lossyEDU reports whether EDUs of eduType may be dropped when their
// destination's queue is full.
func lossyEDU(eduType string) bool { return eduType == "m.typing" || eduType == "m.presence" }

// destQueue is the in-memory state of one destination's queue; the items
// themselves are in the database.
type destQueue struct {
	dest     string
	inFlight bool
	timer    clock.Timer // retry or start timer; nil when none
	failures int
	retryAt  time.Time
	// limitedUntil is when a 429 answer's retry_after_ms ends; before it
	// an inbound transaction from dest does not wake the queue. Not
	// stored: after a restart only retryAt holds the queue back.
	limitedUntil time.Time

	// The EDUs waiting in the database: seqs of the lossy ones, oldest
	// first, and the size of each of the others.
	lossy     []int64
	kept      map[int64]int
	keptBytes int
	// refused counts EDUs not queued since the queue last shrank.
	refused int
}

// SendPDU queues a PDU for each destination (our own name is skipped) and
// starts sending.
func (f *Federation) SendPDU(dests []string, pdu json.RawMessage) error {
	return f.enqueue(dests, store.OutboundPDU, pdu)
}

// SendEDU queues an EDU of eduType with content for each destination and
// starts sending. A destination whose queue is full (maxQueuedLossyEDUs,
// maxQueuedEDUBytes) drops its oldest typing or presence EDUs, or does
// not get this EDU of another type (logged).
func (f *Federation) SendEDU(dests []string, eduType string, content any) error {
	raw, err := json.Marshal(map[string]any{"edu_type": eduType, "content": content})
	if err != nil {
		return fmt.Errorf("federation: queue EDU %s: %w", eduType, err)
	}
	return f.enqueueEDU(dests, eduType, raw)
}

func (f *Federation) enqueue(dests []string, kind string, data []byte) error {
	to, err := f.destinations(dests, kind)
	if err != nil || len(to) == 0 {
		return err
	}
	if _, err := f.n.store.EnqueueOutbound(to, kind, data); err != nil {
		return fmt.Errorf("federation: queue %s: %w", kind, err)
	}
	for _, d := range to {
		f.kick(f.queue(d))
	}
	return nil
}

// destinations checks dests and leaves out duplicates and our own name.
func (f *Federation) destinations(dests []string, kind string) ([]string, error) {
	var to []string
	seen := map[string]bool{}
	for _, d := range dests {
		if d == f.n.ServerName() || seen[d] {
			continue
		}
		if err := ValidateServerName(d); err != nil {
			return nil, fmt.Errorf("federation: queue %s: %w", kind, err)
		}
		seen[d] = true
		to = append(to, d)
	}
	return to, nil
}

// enqueueEDU is enqueue for an EDU, within the queue bounds.
func (f *Federation) enqueueEDU(dests []string, eduType string, data []byte) error {
	to, err := f.destinations(dests, store.OutboundEDU)
	if err != nil {
		return err
	}
	lossy := lossyEDU(eduType)
	if !lossy {
		to = slices.DeleteFunc(to, func(d string) bool {
			q := f.queue(d)
			if q.keptBytes+len(data) <= f.maxEDUBytes {
				return false
			}
			if q.refused++; q.refused == 1 {
				f.n.log.Warn("federation: EDU queue full; EDUs for this destination are not queued until it drains",
					"dest", d, "edu_type", eduType, "queued_bytes", q.keptBytes, "limit_bytes", f.maxEDUBytes)
			} else {
				f.n.log.Debug("federation: EDU queue full; EDU not queued", "dest", d, "edu_type", eduType,
					"refused", q.refused)
			}
			return true
		})
	}
	if len(to) == 0 {
		return nil
	}
	seqs, err := f.n.store.EnqueueOutbound(to, store.OutboundEDU, data)
	if err != nil {
		return fmt.Errorf("federation: queue %s: %w", eduType, err)
	}
	for i, d := range to {
		q := f.queue(d)
		if lossy {
			q.lossy = append(q.lossy, seqs[i])
			if drop := len(q.lossy) - f.maxLossyEDUs; drop > 0 {
				if err := f.n.store.DeleteOutbound(q.lossy[:drop]); err != nil {
					f.n.log.Error("federation: drop old EDUs", "dest", d, "err", err)
				} else {
					f.n.log.Debug("federation: EDU queue full; oldest typing/presence EDUs dropped", "dest", d, "dropped", drop)
					q.lossy = slices.Delete(q.lossy, 0, drop)
				}
			}
		} else {
			q.kept[seqs[i]] = len(data)
			q.keptBytes += len(data)
		}
		f.kick(q)
	}
	return nil
}

// loadEDUs reads which EDUs wait for q's destination (after a restart).
func (f *Federation) loadEDUs(q *destQueue) error {
	// The bounds keep a queue far below this; a queue from before they
	// existed is counted in part.
	const maxLoad = 100000
	_, edus, err := f.n.store.OutboundBatch(q.dest, 0, maxLoad)
	if err != nil {
		return err
	}
	for _, it := range edus {
		var e struct {
			Type string `json:"edu_type"`
		}
		if json.Unmarshal(it.JSON, &e) == nil && lossyEDU(e.Type) {
			q.lossy = append(q.lossy, it.Seq)
		} else {
			q.kept[it.Seq] = len(it.JSON)
			q.keptBytes += len(it.JSON)
		}
	}
	return nil
}

// delivered forgets delivered (or refused) items of q.
func (q *destQueue) delivered(seqs []int64) {
	gone := make(map[int64]bool, len(seqs))
	for _, s := range seqs {
		gone[s] = true
		if n, ok := q.kept[s]; ok {
			q.keptBytes -= n
			delete(q.kept, s)
		}
	}
	q.lossy = slices.DeleteFunc(q.lossy, func(s int64) bool { return gone[s] })
	q.refused = 0
}

// QueueLen is how many items wait for dest (for tests and status).
func (f *Federation) QueueLen(dest string) (int, error) { return f.n.store.OutboundCount(dest) }

// queue returns dest's state, loading its backoff from the database.
func (f *Federation) queue(dest string) *destQueue {
	q := f.queues[dest]
	if q != nil {
		return q
	}
	q = &destQueue{dest: dest, kept: map[int64]int{}}
	if st, err := f.n.store.Destination(dest); err != nil {
		f.n.log.Warn("federation: load destination state", "dest", dest, "err", err)
	} else if st.Failures > 0 {
		q.failures = st.Failures
		q.retryAt = time.UnixMilli(st.RetryAtTS)
	}
	if err := f.loadEDUs(q); err != nil {
		f.n.log.Warn("federation: load queued EDUs", "dest", dest, "err", err)
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
		q.limitedUntil = time.Time{}
		if ra := retryAfter(err, resp); ra > wait {
			// The destination said how long to leave it alone: wait that
			// long, and let nothing (wake) cut the wait short.
			wait = ra
			q.limitedUntil = f.n.Now().Add(ra)
		}
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
	q.delivered(seqs)
	recovered := q.failures > 0
	q.failures, q.retryAt, q.limitedUntil = 0, time.Time{}, time.Time{}
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

// retryAfter is how long a 429 M_LIMIT_EXCEEDED answer asks the sender to
// wait before trying again: its retry_after_ms (client-server-api "Rate
// limiting" defines the field; the server-server API answers 429 with the
// same standard error body), at most retryMax so that a bad value cannot
// stop a destination's queue for good. 0 for any other error, or a 429
// without the field.
func retryAfter(err error, resp OutboundResponse) time.Duration {
	var rerr *RemoteError
	if !errors.As(err, &rerr) || rerr.Status != 429 {
		return 0
	}
	var body struct {
		RetryAfterMS int64 `json:"retry_after_ms"`
	}
	if json.Unmarshal(resp.Body, &body) != nil || body.RetryAfterMS <= 0 {
		return 0
	}
	return time.Duration(min(body.RetryAfterMS, retryMax.Milliseconds())) * time.Millisecond
}
