package homeserver

import (
	"encoding/json"
	"testing"
)

// BenchmarkFedTransaction measures one transaction carrying one EDU from
// a.test to b.test over the MemoryNetwork: queue row, X-Matrix signing,
// verification, dedupe row, EDU dispatch, answer. Keys are fetched once
// before the timer starts.
func BenchmarkFedTransaction(b *testing.B) {
	fn := newFedNet(b)
	a, _ := fn.node("a.test", b.TempDir(), 1)
	r, _ := fn.node("b.test", b.TempDir(), 2)
	got := 0
	r.Federation().HandleEDU("org.test", func(string, json.RawMessage) error { got++; return nil })
	send := func() {
		if err := a.Federation().SendEDU([]string{"b.test"}, "org.test", map[string]string{"user_id": "@alice:a.test"}); err != nil {
			b.Fatal(err)
		}
		fn.net.Run(1 << 20)
	}
	send()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		send()
	}
	b.StopTimer()
	if got != b.N+1 {
		b.Fatalf("delivered %d of %d", got, b.N+1)
	}
}
