package homeserver

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// A flood of rejected federation requests is logged one by one at Debug
// only; at Info it makes one line per source, then one summary with the
// count per minute.
func TestFedRejectionLogBounded(t *testing.T) {
	fn := newFedNet(t)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	var logbuf bytes.Buffer
	b.log = slog.New(slog.NewTextHandler(&logbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, forger, _ := ed25519.GenerateKey(clock.SeededRNG(9))
	uri := "/_matrix/federation/v1/query/profile?user_id=%40bob%3Ab.test"
	h, _ := xmatrix.Sign(xmatrix.Request{Method: "GET", URI: uri, Origin: "ghost.test", Destination: "b.test"}, "ed25519:x", forger)
	forged, _ := h.Format()
	flood := func(n int, ip func(i int) string) {
		t.Helper()
		for i := range n {
			auth := forged
			if i%2 == 0 {
				auth = "Bearer abc"
			}
			var status int
			b.Dispatch(&Request{Method: "GET", Path: "/_matrix/federation/v1/query/profile", URI: uri,
				Authorization: auth, RemoteIP: ip(i)}, func(r Response) { status = r.Status })
			fn.settle()
			if status != 401 {
				t.Fatalf("request %d: status %d, want 401", i, status)
			}
		}
	}
	lines := func(level string) []string {
		var out []string
		for l := range strings.Lines(logbuf.String()) {
			if strings.Contains(l, "level="+level) && strings.Contains(l, `msg="federation request`) && strings.Contains(l, "rejected") {
				out = append(out, l)
			}
		}
		return out
	}

	flood(1000, func(int) string { return "192.0.2.9" })
	if n := len(lines("DEBUG")); n != 1000 {
		t.Fatalf("%d debug lines for 1000 rejections, want one each", n)
	}
	if info := lines("INFO"); len(info) != 1 || !strings.Contains(info[0], "source=192.0.2.9") {
		t.Fatalf("info lines for a flood from one IP: %q", info)
	}
	fn.clock.Advance(rejectLogInterval)
	fn.settle()
	info := lines("INFO")
	if len(info) != 2 || !strings.Contains(info[1], "count=999") || !strings.Contains(info[1], "last_origin=ghost.test") {
		t.Fatalf("after a minute, info lines %q; want one summary counting the other 999", info)
	}
	// A quiet minute: no summary, and the source is forgotten.
	fn.clock.Advance(rejectLogInterval)
	fn.settle()
	if n := len(lines("INFO")); n != 2 {
		t.Fatalf("a quiet minute logged %d more info lines", n-2)
	}

	// From many addresses: one line each up to maxRejectSources, then one
	// for all the others, and a minute later their summary.
	logbuf.Reset()
	flood(2*maxRejectSources, func(i int) string { return fmt.Sprintf("198.51.%d.%d", i/256, i%256) })
	if n := len(lines("INFO")); n != maxRejectSources+1 {
		t.Fatalf("%d info lines from %d addresses, want %d", n, 2*maxRejectSources, maxRejectSources+1)
	}
	fn.clock.Advance(rejectLogInterval)
	fn.settle()
	info = lines("INFO")
	last := info[len(info)-1]
	if len(info) != maxRejectSources+2 || !strings.Contains(last, fmt.Sprintf("count=%d", maxRejectSources-1)) ||
		!strings.Contains(last, otherRejectSource) {
		t.Fatalf("%d info lines after a minute (last %q), want one more summarising the other %d", len(info), last, maxRejectSources-1)
	}
}
