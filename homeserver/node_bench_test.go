package homeserver

import "testing"

// BenchmarkDispatchWhoami measures the platform's per-request cost inside
// the loop: routing, token check (cached), rate limiting, handler, reply.
func BenchmarkDispatchWhoami(b *testing.B) {
	tn := newTestNode(b, func(c *Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.PerUser.PerSecond = 1e12
		c.RateLimit.PerUser.Burst = 1e12
	})
	_, tok, _ := tn.register("bench", "pw")
	req := &Request{Method: "GET", Path: "/_matrix/client/v3/account/whoami", AccessToken: tok, RemoteIP: "192.0.2.1"}
	var status int
	b.ReportAllocs()
	for b.Loop() {
		tn.Dispatch(req, func(r Response) { status = r.Status })
		if status != 200 {
			b.Fatalf("status %d", status)
		}
	}
}
