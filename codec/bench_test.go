package codec

import (
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

func benchPayloads(b *testing.B) []struct {
	name string
	json []byte
} {
	return []struct {
		name string
		json []byte
	}{
		{"pdu", sampleHelloPDU(b)}, {"sync", sampleSync(b)}, {"txn10", sampleTxn(b, 10)},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, p := range benchPayloads(b) {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.json)))
			var buf []byte
			for b.Loop() {
				var err error
				if buf, _, err = Encode(buf[:0], p.json, TableMesh1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, p := range benchPayloads(b) {
		c, _, err := Encode(nil, p.json, TableMesh1)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.json)))
			var buf []byte
			for b.Loop() {
				if buf, err = Decode(buf[:0], c, TableMesh1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeFrame(b *testing.B) {
	for _, p := range benchPayloads(b) {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.json)))
			var buf []byte
			for b.Loop() {
				var err error
				if buf, _, err = EncodeFrame(buf[:0], p.json, FrameOptions{Table: TableMesh1, Dict: DictLatest}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	for _, p := range benchPayloads(b) {
		f, _, err := EncodeFrame(nil, p.json, FrameOptions{Table: TableMesh1, Dict: DictLatest})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.json)))
			var buf []byte
			for b.Loop() {
				if buf, _, err = DecodeFrame(buf[:0], f, TableMesh1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPack(b *testing.B) {
	r := newSampleRoom(b, event.V10)
	ctx := newMemRoom(r)
	hello := helloSelected(b, r, ctx).JSON()
	packed, err := Pack(nil, hello, ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Pack(nil, hello, ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Unpack(nil, packed, ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeAllocs guards the hot path's allocation count (not timing).
func TestDecodeAllocs(t *testing.T) {
	c, _, err := Encode(nil, sampleHelloPDU(t), TableMesh1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	n := testing.AllocsPerRun(50, func() {
		if _, err := Decode(buf[:0], c, TableMesh1); err != nil {
			t.Fatal(err)
		}
	})
	if n > 130 {
		t.Errorf("Decode of the hello PDU: %.0f allocations, want ≤ 130", n)
	}
}
