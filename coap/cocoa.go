package coap

import "time"

// CoCoA constants (draft-ietf-core-cocoa-03 §4.2, which builds on RFC 6298
// §2): smoothing gains α = 1/8 and β = 1/4, variance multipliers K = 4 for
// the strong and K = 1 for the weak estimator, and the weights with which
// each estimator moves the overall RTO (1/2 strong, 1/4 weak).
const (
	cocoaAlphaInv   = 8
	cocoaBetaInv    = 4
	cocoaKStrong    = 4
	cocoaKWeak      = 1
	cocoaWeakMaxTry = 2 // weak samples only from exchanges with ≤ 2 retransmissions
)

// rtt is one RFC 6298 estimator.
type rtt struct {
	srtt, rttvar time.Duration
	valid        bool
}

func (r *rtt) sample(m time.Duration, k int) time.Duration {
	if !r.valid {
		r.srtt, r.rttvar, r.valid = m, m/2, true
	} else {
		diff := r.srtt - m
		if diff < 0 {
			diff = -diff
		}
		r.rttvar += (diff - r.rttvar) / cocoaBetaInv
		r.srtt += (m - r.srtt) / cocoaAlphaInv
	}
	return r.srtt + time.Duration(k)*r.rttvar
}

// cocoa is a per-peer CoCoA RTO estimator: a strong estimator fed by
// exchanges answered without retransmission, a weak one fed by exchanges
// answered after one or two retransmissions (RTT measured from the first
// transmission), a blended overall RTO, a variable backoff factor and aging.
//
// NOTSPEC: CoCoA's 1 s and 3 s thresholds (for backoff and aging) assume the
// Internet's 2 s ACK_TIMEOUT; they are scaled here by base/2 s, so a slow
// link whose derived ACK_TIMEOUT is 20 s uses 10 s and 30 s. With the
// default base they are exactly CoCoA's.
type cocoa struct {
	base    time.Duration // initial RTO: the link-derived ACK_TIMEOUT
	max     time.Duration // upper bound for any timeout
	rto     time.Duration
	strong  rtt
	weak    rtt
	updated time.Time
}

func newCocoa(base, maxRTO time.Duration) cocoa {
	return cocoa{base: base, max: maxRTO, rto: base}
}

func (c *cocoa) low() time.Duration  { return c.base / 2 }
func (c *cocoa) high() time.Duration { return c.base * 3 / 2 }

// current returns the overall RTO after aging (CoCoA §4.2.3): a small
// estimate unused for 16 RTOs doubles, a large one unused for 4 RTOs moves
// halfway back to base.
func (c *cocoa) current(now time.Time) time.Duration {
	if !c.updated.IsZero() {
		idle := now.Sub(c.updated)
		switch {
		case c.rto < c.low() && idle > 16*c.rto:
			c.rto = min(2*c.rto, c.base)
			c.updated = now
		case c.rto > c.high() && idle > 4*c.rto:
			c.rto = c.base + (c.rto-c.base)/2
			c.updated = now
		}
	}
	return c.rto
}

// observe feeds one RTT measurement taken after retries retransmissions.
func (c *cocoa) observe(now time.Time, m time.Duration, retries int) {
	switch {
	case retries == 0:
		est := c.strong.sample(m, cocoaKStrong)
		c.rto = (est + c.rto) / 2
	case retries <= cocoaWeakMaxTry:
		est := c.weak.sample(m, cocoaKWeak)
		c.rto = (est + 3*c.rto) / 4
	default:
		return
	}
	// RFC 6298 §2.4 floor of 1 s is for TCP; CoCoA keeps RTOs of at least
	// a tenth of a second. Never exceed the cap.
	c.rto = min(max(c.rto, 100*time.Millisecond), c.max)
	c.updated = now
}

// backoff is the variable backoff factor (CoCoA §4.2.2) applied to a
// timeout whose initial value was rto0.
func (c *cocoa) backoff(rto0, t time.Duration) time.Duration {
	switch {
	case rto0 < c.low():
		t *= 3
	case rto0 > c.high():
		t = t * 3 / 2
	default:
		t *= 2
	}
	return min(t, c.max)
}
