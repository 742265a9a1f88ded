package homeserver

import (
	"math"
	"time"
)

// limiter is a set of token buckets keyed by IP or user ID. Buckets start
// full; a request takes one token; tokens refill at rate per second up to
// burst. Owned by the node loop.
type limiter struct {
	rate, burst float64
	buckets     map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the limiter's memory; past it, full buckets (which
// carry no information) are dropped.
const maxBuckets = 10000

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

// take removes one token from key's bucket, or returns 429
// M_LIMIT_EXCEEDED with retry_after_ms when it is empty.
// Spec: client-server-api "Rate limiting".
func (l *limiter) take(key string, now time.Time) *Error {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	ms := (wait + time.Millisecond - 1) / time.Millisecond
	return Errorf(429, ErrCodeLimitExceeded, "too many requests").With("retry_after_ms", int64(ms))
}

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		// Everyone is busy: forget them all rather than grow without bound.
		clear(l.buckets)
	}
}

// newBucketLimiter is newLimiter for a configured bucket; nil (no limit)
// when rate limiting is off or the bucket is all zeros.
func newBucketLimiter(enabled bool, b BucketConfig) *limiter {
	if !enabled || b == (BucketConfig{}) {
		return nil
	}
	return newLimiter(b.PerSecond, b.Burst)
}

// Federation rate limits: rate_limit.federation_per_ip is taken in
// Dispatch before the X-Matrix signature is checked (an unauthenticated
// flood costs a map lookup, not a signature check or a key fetch), and
// rate_limit.federation_per_origin once the origin is authenticated (a
// server behind many addresses). Every AuthFederation route counts.
//
// NOTSPEC: server-server-api defines no rate limiting. Like the client
// API ("Rate limiting") we answer 429 M_LIMIT_EXCEEDED with
// retry_after_ms; senders treat it as a failed request and retry later
// (our queues back off, fed_queue.go).
func (f *Federation) limitIP(ip string) *Error {
	if f == nil || f.limitFedIP == nil || ip == "" {
		return nil
	}
	return f.limitFedIP.take(ip, f.n.Now())
}

// limitOrigin takes a token from an authenticated origin's bucket.
func (f *Federation) limitOrigin(origin string) *Error {
	if f == nil || f.limitFedOrigin == nil {
		return nil
	}
	return f.limitFedOrigin.take(origin, f.n.Now())
}
