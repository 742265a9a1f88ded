package codec

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/klauspost/compress/zstd"
)

// zstdRawSize is the size of body compressed with zstd using the shipped
// dictionary as a raw-content dictionary, minus the 4-byte frame magic (a
// mesh frame would not carry it) and without checksum.
func zstdRawSize(tb testing.TB, body, d []byte) int {
	tb.Helper()
	w, err := zstd.NewWriter(nil, zstd.WithEncoderDictRaw(1, d), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(1), zstd.WithSingleSegment(true), zstd.WithEncoderLevel(zstdLevel))
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Close()
	out := w.EncodeAll(body, nil)
	r, err := zstd.NewReader(nil, zstd.WithDecoderDictRaw(1, d), zstd.WithDecoderConcurrency(1))
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	back, err := r.DecodeAll(out, nil)
	if err != nil || string(back) != string(body) {
		tb.Fatalf("zstd round trip failed: %v", err)
	}
	return len(out) - 4
}

// deflateSize is the size of body as a raw DEFLATE stream (RFC 1951, no
// zlib header or checksum) with d as preset dictionary.
func deflateSize(tb testing.TB, body, d []byte) int {
	tb.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriterDict(&buf, flate.BestCompression, d)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Len()
}

// TestDictionaryCodecChoice measures, on the sub-kilobyte sample payloads,
// zstd with a raw-content dictionary (what frames use) against DEFLATE with
// the same bytes as preset dictionary, and fails if DEFLATE ever becomes the
// smaller choice. It also checks that frames carry exactly the zstd size.
func TestDictionaryCodecChoice(t *testing.T) {
	payloads := map[string][]byte{
		"pdu": sampleHelloPDU(t), "txn1": sampleTxnHello(t), "sync": sampleSync(t), "send": sampleSendBody(),
	}
	var sumDeflate, sumZstd int
	for name, j := range payloads {
		body, _, err := Encode(nil, j, TableMesh1)
		if err != nil {
			t.Fatal(err)
		}
		framed, err := compressBody(append([]byte{0}, body...), 0, DictLatest)
		if err != nil {
			t.Fatal(err)
		}
		df := deflateSize(t, body, dictV1)
		// zstdRawSize keeps the 1-byte Dictionary_ID the frame drops.
		zs := zstdRawSize(t, body, dictV1) - 1
		if fz := len(framed) - 1; fz != min(zs, len(body)) {
			t.Errorf("%s: frame body %d B, want min(zstd %d, CBOR %d)", name, fz, zs, len(body))
		}
		t.Logf("%-5s CBOR %4d B  deflate+dict %4d B  zstd+dict %4d B", name, len(body), df, zs)
		sumDeflate += df
		sumZstd += zs
	}
	if sumDeflate < sumZstd {
		t.Errorf("DEFLATE (%d B total) now beats zstd (%d B total): switch the frame codec", sumDeflate, sumZstd)
	}
}
