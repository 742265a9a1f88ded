package homeserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// A destination whose rate limit answers 429 with retry_after_ms is left
// alone that long: no retry on the backoff timer, none when it sends us a
// transaction, and delivery once the time is up.
func TestFedQueueHonoursRetryAfter(t *testing.T) {
	fn := newFedNet(t)
	var uris []string
	a, _ := fn.nodeVia("a.test", t.TempDir(), 1, nil, func(r Remote) Remote { return watchRemote{inner: r, uris: &uris} })
	// b.test lets a.test send one request, then one per 1000 s.
	b, _ := fn.nodeWith("b.test", t.TempDir(), 2, func(c *Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.FederationPerIP = BucketConfig{}
		c.RateLimit.FederationPerOrigin = BucketConfig{PerSecond: 0.001, Burst: 1}
	})
	var got []string
	b.Federation().HandleEDU("org.test", func(_ string, content json.RawMessage) error {
		got = append(got, string(content))
		return nil
	})
	a.Federation().HandleEDU("org.test", func(string, json.RawMessage) error { return nil })
	for _, v := range []string{"one", "two"} {
		if err := a.Federation().SendEDU([]string{"b.test"}, "org.test", v); err != nil {
			t.Fatal(err)
		}
		fn.settle()
	}
	if len(got) != 1 {
		t.Fatalf("delivered %q, want the first EDU only", got)
	}
	st, _ := a.store.Destination("b.test")
	wait := time.UnixMilli(st.RetryAtTS).Sub(fn.clock.Now())
	if st.Failures != 1 || wait < 999*time.Second || wait > 1000*time.Second {
		t.Fatalf("after a 429: failures %d, retry in %v; want 1 and the retry_after_ms (1000 s)", st.Failures, wait)
	}
	sends := countURIs(uris, "/send/")

	// b.test talks to a.test: that wakes a backing-off queue, but not one
	// told to wait.
	if err := b.Federation().SendEDU([]string{"a.test"}, "org.test", "hi"); err != nil {
		t.Fatal(err)
	}
	fn.settle()
	fn.clock.Advance(wait - time.Millisecond)
	fn.settle()
	if n := countURIs(uris, "/send/"); n != sends || len(got) != 1 {
		t.Fatalf("a.test sent %d more transactions before retry_after_ms ended (delivered %q)", n-sends, got)
	}
	fn.clock.Advance(time.Millisecond)
	fn.settle()
	if len(got) != 2 || got[1] != `"two"` {
		t.Fatalf("delivered %q after retry_after_ms", got)
	}
	if st, _ := a.store.Destination("b.test"); st.Failures != 0 {
		t.Fatalf("failures %d after success", st.Failures)
	}
}

func TestRetryAfter(t *testing.T) {
	limited := func(body string) (error, OutboundResponse) {
		resp := OutboundResponse{Status: 429, Body: []byte(body)}
		return fmt.Errorf("send: %w", NewRemoteError(429, resp.Body)), resp
	}
	for _, tc := range []struct {
		body string
		want time.Duration
	}{
		{`{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1500}`, 1500 * time.Millisecond},
		{`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":36000000}`, retryMax},            // 10 h: capped
		{`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":9223372036854775807}`, retryMax}, // no overflow
		{`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":-5}`, 0},
		{`{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":"60000"}`, 0},
		{`{"errcode":"M_LIMIT_EXCEEDED"}`, 0},
		{`not json`, 0},
	} {
		err, resp := limited(tc.body)
		if got := retryAfter(err, resp); got != tc.want {
			t.Errorf("retryAfter(%s) = %v, want %v", tc.body, got, tc.want)
		}
	}
	// Only a 429 asks the sender to wait.
	body := []byte(`{"errcode":"M_UNKNOWN","retry_after_ms":1500}`)
	if got := retryAfter(NewRemoteError(503, body), OutboundResponse{Status: 503, Body: body}); got != 0 {
		t.Errorf("503: retryAfter = %v, want 0", got)
	}
	if got := retryAfter(errors.New("connection refused"), OutboundResponse{}); got != 0 {
		t.Errorf("transport error: retryAfter = %v, want 0", got)
	}
}
