package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/keys"
)

func openFedTemp(t *testing.T) (*Store, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "fed.db")
	s, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, file
}

func TestOutboundQueue(t *testing.T) {
	s, file := openFedTemp(t)
	if _, err := s.EnqueueOutbound([]string{"a", "b"}, "bogus", []byte(`{}`)); err == nil {
		t.Fatal("bad kind accepted")
	}
	for i := range 3 {
		if _, err := s.EnqueueOutbound([]string{"a", "b"}, OutboundPDU, []byte(`{"p":`+string(rune('0'+i))+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	seqs, err := s.EnqueueOutbound([]string{"a"}, OutboundEDU, []byte(`{"e":1}`))
	if err != nil || len(seqs) != 1 || seqs[0] != 7 {
		t.Fatalf("seqs %v, %v", seqs, err)
	}
	pdus, edus, err := s.OutboundBatch("a", 2, 10)
	if err != nil || len(pdus) != 2 || len(edus) != 1 || string(pdus[0].JSON) != `{"p":0}` || pdus[1].Seq != 3 {
		t.Fatalf("batch %+v %+v %v", pdus, edus, err)
	}
	if err := s.DeleteOutbound([]int64{pdus[0].Seq, pdus[1].Seq, edus[0].Seq}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.OutboundCount("a"); n != 1 {
		t.Fatalf("a has %d left", n)
	}
	if d, _ := s.OutboundDestinations(); len(d) != 2 || d[0] != "a" || d[1] != "b" {
		t.Fatalf("destinations %v", d)
	}
	// Seqs are never reused, even after the queue drains, and survive a
	// reopen.
	pa, _, _ := s.OutboundBatch("a", 10, 10)
	pb, _, _ := s.OutboundBatch("b", 10, 10)
	var all []int64
	for _, it := range append(pa, pb...) {
		all = append(all, it.Seq)
	}
	if err := s.DeleteOutbound(all); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if seqs, _ := s2.EnqueueOutbound([]string{"a"}, OutboundEDU, []byte(`{}`)); len(seqs) != 1 || seqs[0] != 8 {
		t.Fatalf("seq after reopen %v, want 8", seqs)
	}

	if err := s2.PutDestination(DestinationState{Destination: "a", Failures: 3, RetryAtTS: 99}); err != nil {
		t.Fatal(err)
	}
	if d, _ := s2.Destination("a"); d.Failures != 3 || d.RetryAtTS != 99 {
		t.Fatalf("destination %+v", d)
	}
	_ = s2.PutDestination(DestinationState{Destination: "a"})
	if d, _ := s2.Destination("a"); d.Failures != 0 {
		t.Fatalf("destination not reset: %+v", d)
	}
}

func TestInboundTxns(t *testing.T) {
	s, _ := openFedTemp(t)
	if _, ok, err := s.InboundTxn("o", "1"); ok || err != nil {
		t.Fatalf("unknown txn: %v %v", ok, err)
	}
	if err := s.PutInboundTxn("o", "1", []byte(`{"pdus":{}}`), 100, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutInboundTxn("o", "1", []byte(`{}`), 100, 0); err == nil {
		t.Fatal("a transaction was recorded twice")
	}
	if r, ok, _ := s.InboundTxn("o", "1"); !ok || string(r) != `{"pdus":{}}` {
		t.Fatalf("txn: %s %v", r, ok)
	}
	// Recording a later one forgets those before the cut-off.
	if err := s.PutInboundTxn("o", "2", []byte(`{}`), 200, 150); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.InboundTxn("o", "1"); ok {
		t.Fatal("old transaction not forgotten")
	}
}

func TestServerKeysStore(t *testing.T) {
	s, _ := openFedTemp(t)
	ks := s.ServerKeys()
	if _, ok, err := ks.Key("x", "ed25519:a"); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	until := time.UnixMilli(1_700_000_000_123).UTC()
	r := keys.Record{Server: "x", KeyID: "ed25519:a", Key: make([]byte, 32), ValidUntil: until}
	r.Key[0] = 7
	if err := ks.PutKey(r); err != nil {
		t.Fatal(err)
	}
	r.Old = true
	if err := ks.PutKey(r); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ks.Key("x", "ed25519:a")
	if err != nil || !ok || !got.Old || got.Key[0] != 7 || !got.ValidUntil.Equal(until) {
		t.Fatalf("key %+v %v %v", got, ok, err)
	}
	if err := ks.PutResponse("x", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	_ = ks.PutResponse("x", []byte(`{"a":2}`))
	if raw, ok, _ := ks.Response("x"); !ok || string(raw) != `{"a":2}` {
		t.Fatalf("response %s %v", raw, ok)
	}
}
