package codec

import (
	"testing"
)

// TestBudgets asserts issue 5's byte budgets on the sample traffic: the size
// of a whole frame (header byte included) with dictionary v1, and for the
// single-message payloads also the bare mesh CBOR a peer without the
// dictionary would get. Every payload must decode back to the exact JSON.
func TestBudgets(t *testing.T) {
	cases := []struct {
		name    string
		json    []byte
		limit   int
		bareToo bool // the bare CBOR must meet the limit as well
	}{
		{"pdu", sampleHelloPDU(t), 360, true},
		{"txn1", sampleTxnHello(t), 390, true},
		{"txn10", sampleTxn(t, 10), 2100, false},
		{"client send", sampleSendBody(), 12, true},
		{"sync", sampleSync(t), 160, false},
	}
	for _, c := range cases {
		bare, _, err := Encode(nil, c.json, TableMesh1)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		frame, info, err := EncodeFrame(nil, c.json, FrameOptions{Table: TableMesh1, Dict: DictLatest})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if info.Canonicalised {
			t.Errorf("%s: sample reported as non-canonical", c.name)
		}
		plain, _, _ := Encode(nil, c.json, TablePlain)
		keys, _, _ := Encode(nil, c.json, TableMSC3079)
		// A markdown row for BENCHMARKS.md: JSON | CBOR | +keys | +binary | frame.
		t.Logf("| %s | %d | %d | %d | %d | %d | %d |", c.name, len(c.json), len(plain), len(keys), len(bare), len(frame), c.limit)
		if len(frame) > c.limit {
			t.Errorf("%s: frame %d B > budget %d B", c.name, len(frame), c.limit)
		}
		if c.bareToo && len(bare) > c.limit {
			t.Errorf("%s: bare CBOR %d B > budget %d B", c.name, len(bare), c.limit)
		}
		back, err := Decode(nil, bare, TableMesh1)
		if err != nil || string(back) != string(c.json) {
			t.Errorf("%s: bare round trip: %v\n got %s\nwant %s", c.name, err, back, c.json)
		}
		back, _, err = DecodeFrame(nil, frame, TableMesh1)
		if err != nil || string(back) != string(c.json) {
			t.Errorf("%s: frame round trip: %v\n got %s\nwant %s", c.name, err, back, c.json)
		}
	}
}
