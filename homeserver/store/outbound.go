package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Kinds of outbound federation items.
const (
	OutboundPDU = "pdu"
	OutboundEDU = "edu"
)

// OutboundItem is one PDU or EDU waiting for a destination.
type OutboundItem struct {
	Seq         int64
	Destination string
	Kind        string // OutboundPDU or OutboundEDU
	JSON        []byte
}

// DestinationState is the backoff state of a destination that failed.
type DestinationState struct {
	Destination string
	Failures    int
	RetryAtTS   int64 // ms since the Unix epoch
}

// EnqueueOutbound queues data (of kind) for every destination, in one
// transaction, and returns the seqs given to the new rows.
func (s *Store) EnqueueOutbound(dests []string, kind string, data []byte) ([]int64, error) {
	if kind != OutboundPDU && kind != OutboundEDU {
		return nil, fmt.Errorf("store: enqueue outbound: bad kind %q", kind)
	}
	seqs := make([]int64, 0, len(dests))
	err := s.Tx(func(tx *sql.Tx) error {
		var next int64
		err := tx.QueryRow(`SELECT value FROM federation_counters WHERE name = 'outbound_seq'`).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := tx.Exec(`INSERT INTO federation_counters (name, value) VALUES ('outbound_seq', 0)`); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		for _, d := range dests {
			next++
			if _, err := tx.Exec(`INSERT INTO federation_outbound (seq, destination, kind, json) VALUES (?, ?, ?, ?)`,
				next, d, kind, string(data)); err != nil {
				return err
			}
			seqs = append(seqs, next)
		}
		_, err = tx.Exec(`UPDATE federation_counters SET value = ? WHERE name = 'outbound_seq'`, next)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: enqueue outbound: %w", describe(err))
	}
	return seqs, nil
}

// OutboundBatch returns the oldest items for dest: up to maxPDUs PDUs and
// up to maxEDUs EDUs, each kind in seq order.
func (s *Store) OutboundBatch(dest string, maxPDUs, maxEDUs int) (pdus, edus []OutboundItem, err error) {
	get := func(kind string, limit int) ([]OutboundItem, error) {
		rows, err := s.DB.Query(`SELECT seq, json FROM federation_outbound WHERE destination = ? AND kind = ? ORDER BY seq LIMIT ?`,
			dest, kind, limit)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []OutboundItem
		for rows.Next() {
			it := OutboundItem{Destination: dest, Kind: kind}
			var js string
			if err := rows.Scan(&it.Seq, &js); err != nil {
				return nil, err
			}
			it.JSON = []byte(js)
			out = append(out, it)
		}
		return out, rows.Err()
	}
	if pdus, err = get(OutboundPDU, maxPDUs); err != nil {
		return nil, nil, fmt.Errorf("store: outbound batch %s: %w", dest, describe(err))
	}
	if edus, err = get(OutboundEDU, maxEDUs); err != nil {
		return nil, nil, fmt.Errorf("store: outbound batch %s: %w", dest, describe(err))
	}
	return pdus, edus, nil
}

// DeleteOutbound removes delivered items.
func (s *Store) DeleteOutbound(seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, len(seqs))
	for i, q := range seqs {
		args[i] = q
	}
	q := `DELETE FROM federation_outbound WHERE seq IN (?` + strings.Repeat(", ?", len(seqs)-1) + `)`
	if _, err := s.DB.Exec(q, args...); err != nil {
		return fmt.Errorf("store: delete outbound: %w", describe(err))
	}
	return nil
}

// OutboundCount returns how many items wait for dest.
func (s *Store) OutboundCount(dest string) (int, error) {
	var n int
	if err := s.DB.QueryRow(`SELECT COUNT(*) FROM federation_outbound WHERE destination = ?`, dest).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: outbound count %s: %w", dest, describe(err))
	}
	return n, nil
}

// OutboundDestinations returns, in name order, every destination with
// queued items.
func (s *Store) OutboundDestinations() ([]string, error) {
	return s.queryStrings("outbound destinations", `SELECT DISTINCT destination FROM federation_outbound ORDER BY destination`)
}

// Destination returns dest's backoff state; a destination with none has
// zero failures.
func (s *Store) Destination(dest string) (DestinationState, error) {
	d := DestinationState{Destination: dest}
	err := s.DB.QueryRow(`SELECT failures, retry_at_ts FROM federation_destinations WHERE destination = ?`, dest).
		Scan(&d.Failures, &d.RetryAtTS)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("store: destination %s: %w", dest, describe(err))
	}
	return d, nil
}

// PutDestination stores d; zero failures deletes the row.
func (s *Store) PutDestination(d DestinationState) error {
	_, err := s.DB.Exec(`DELETE FROM federation_destinations WHERE destination = ?`, d.Destination)
	if err == nil && d.Failures > 0 {
		_, err = s.DB.Exec(`INSERT INTO federation_destinations (destination, failures, retry_at_ts) VALUES (?, ?, ?)`,
			d.Destination, d.Failures, d.RetryAtTS)
	}
	if err != nil {
		return fmt.Errorf("store: put destination %s: %w", d.Destination, describe(err))
	}
	return nil
}

// InboundTxn returns the answer given to the transaction (origin, txnID),
// if it was processed.
func (s *Store) InboundTxn(origin, txnID string) ([]byte, bool, error) {
	var resp string
	err := s.DB.QueryRow(`SELECT response FROM federation_inbound_txns WHERE origin = ? AND txn_id = ?`, origin, txnID).Scan(&resp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: inbound txn %s %s: %w", origin, txnID, describe(err))
	}
	return []byte(resp), true, nil
}

// PutInboundTxn records the answer to a processed transaction and forgets
// those received before forgetBeforeTS.
func (s *Store) PutInboundTxn(origin, txnID string, response []byte, receivedTS, forgetBeforeTS int64) error {
	err := s.Tx(func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM federation_inbound_txns WHERE received_ts < ?`, forgetBeforeTS); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO federation_inbound_txns (origin, txn_id, response, received_ts) VALUES (?, ?, ?, ?)`,
			origin, txnID, string(response), receivedTS)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put inbound txn %s %s: %w", origin, txnID, describe(err))
	}
	return nil
}
