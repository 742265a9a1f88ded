package homeserver

import (
	"fmt"
	"net/url"
	"testing"
)

// BenchmarkSendToDeviceSync measures one to-device message from send to
// delivery: PUT /sendToDevice, then the recipient's incremental /sync
// (which also acknowledges the previous batch).
func BenchmarkSendToDeviceSync(b *testing.B) {
	tn := newTestNode(b, nil)
	_, aliceTok, _ := tn.register("alice", "pw")
	bobID, bobTok, bobDev := tn.register("bob", "pw")
	since := tn.do("GET", v3+"/sync", bobTok, nil).str("next_batch")
	body := map[string]any{"messages": map[string]any{bobID: map[string]any{bobDev: map[string]string{"k": "v"}}}}
	var syncBytes int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := tn.do("PUT", fmt.Sprintf(v3+"/sendToDevice/m.test/b%d", i), aliceTok, body); r.Status != 200 {
			b.Fatalf("send: %d %s", r.Status, r.Raw)
		}
		r := tn.do("GET", v3+"/sync?since="+url.QueryEscape(since), bobTok, nil)
		if r.Status != 200 || len(toDeviceEvents(r)) != 1 {
			b.Fatalf("sync: %d %s", r.Status, r.Raw)
		}
		since = r.str("next_batch")
		syncBytes = len(r.Raw)
	}
	b.ReportMetric(float64(syncBytes), "sync-bytes")
}
