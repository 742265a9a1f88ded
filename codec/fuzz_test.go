package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// Seed corpora live in testdata/fuzz/<target>/ and are written from the
// sample traffic by `go test -run TestWriteFuzzCorpus -args -update-corpus`.
var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz")

var allTables = []Table{TablePlain, TableMSC3079, TableMesh1}

// FuzzJSONRoundTrip: for any input, Encode succeeds exactly when the input
// has a canonical JSON form, and Decode(Encode(x)) is that form, byte for
// byte, under every table and through frames.
func FuzzJSONRoundTrip(f *testing.F) {
	f.Add([]byte(msc3079JSON))
	f.Fuzz(func(t *testing.T, in []byte) {
		canon, cerr := event.CanonicalJSON(in)
		for _, tab := range allTables {
			c, info, err := Encode(nil, in, tab)
			if cerr != nil {
				if !errors.Is(err, ErrBadJSON) {
					t.Fatalf("%s: Encode of non-JSON: %v", tab, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: Encode: %v", tab, err)
			}
			if info.Canonicalised != !bytes.Equal(canon, in) {
				t.Fatalf("%s: Canonicalised = %v", tab, info.Canonicalised)
			}
			back, err := Decode(nil, c, tab)
			if err != nil || !bytes.Equal(back, canon) {
				t.Fatalf("%s: round trip: %v\n got %s\nwant %s\ncbor %x", tab, err, back, canon, c)
			}
		}
		if cerr != nil {
			return
		}
		fr, _, err := EncodeFrame(nil, in, FrameOptions{Table: TableMesh1, Dict: DictLatest})
		if err != nil {
			t.Fatalf("EncodeFrame: %v", err)
		}
		back, _, err := DecodeFrame(nil, fr, TableMesh1)
		if err != nil || !bytes.Equal(back, canon) {
			t.Fatalf("frame round trip: %v", err)
		}
	})
}

// FuzzCBORRoundTrip: Decode never panics; whatever it accepts re-encodes to
// CBOR that decodes to the same JSON, and that CBOR is a fixed point
// (CBOR→JSON→CBOR identical). Frames and packed PDUs never panic either.
func FuzzCBORRoundTrip(f *testing.F) {
	c, _ := hex.DecodeString(msc3079CBOR)
	f.Add(c)
	r := newSampleRoom(f, event.V10)
	ctx := newMemRoom(r)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, tab := range allTables {
			j, err := Decode(nil, in, tab)
			if err != nil {
				continue
			}
			c2, _, err := Encode(nil, j, tab)
			if err != nil {
				t.Fatalf("%s: decoded JSON does not encode: %v\n%s", tab, err, j)
			}
			j2, err := Decode(nil, c2, tab)
			if err != nil || !bytes.Equal(j, j2) {
				t.Fatalf("%s: JSON changed: %v\n%s\n%s", tab, err, j, j2)
			}
			c3, _, _ := Encode(nil, j2, tab)
			if !bytes.Equal(c2, c3) {
				t.Fatalf("%s: CBOR not a fixed point: %x vs %x", tab, c2, c3)
			}
		}
		_, _, _ = DecodeFrame(nil, in, TableMesh1)
		if pdu, err := Unpack(nil, in, ctx); err == nil {
			// Whatever unpacks is canonical JSON that passed the ID check.
			if canon, err := event.CanonicalJSON(pdu); err != nil || !bytes.Equal(canon, pdu) {
				t.Fatalf("unpacked PDU is not canonical JSON: %v", err)
			}
		}
	})
}

// TestWriteFuzzCorpus writes the seed corpora from the sample traffic.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -args -update-corpus to rewrite testdata/fuzz")
	}
	jsons := map[string][]byte{
		"pdu": sampleHelloPDU(t), "txn1": sampleTxnHello(t), "sync": sampleSync(t), "send": sampleSendBody(),
		"msc3079": []byte(msc3079JSON), "noncanonical": []byte(`{ "b": 1e2, "a": ["\u00e9", -0, null, true] }`),
		"enum-literal": []byte(`{"type":5,"membership":"join","content":{"msgtype":-3}}`),
	}
	write := func(target, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, j := range jsons {
		write("FuzzJSONRoundTrip", name, j)
		for _, tab := range allTables {
			c, _, err := Encode(nil, j, tab)
			if err != nil {
				t.Fatal(err)
			}
			write("FuzzCBORRoundTrip", name+"-"+tab.String(), c)
		}
		fr, _, err := EncodeFrame(nil, j, FrameOptions{Table: TableMesh1, Dict: DictLatest})
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzCBORRoundTrip", name+"-frame", fr)
	}
	r := newSampleRoom(t, event.V10)
	ctx := newMemRoom(r)
	hello := helloSelected(t, r, ctx)
	packed, err := Pack(nil, hello.JSON(), ctx)
	if err != nil {
		t.Fatal(err)
	}
	write("FuzzCBORRoundTrip", "packed-hello", packed)
}
