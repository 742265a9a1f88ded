package coap

import (
	"fmt"
	"time"
)

// Transmission parameters of RFC 7252 §4.8, each named once with its unit.
const (
	// DefaultAckTimeout is ACK_TIMEOUT (RFC 7252 §4.8): 2 seconds. It is the
	// floor for a link-derived ACK timeout, never the value used blindly.
	DefaultAckTimeout = 2 * time.Second
	// AckRandomFactor is ACK_RANDOM_FACTOR (RFC 7252 §4.8), dimensionless.
	AckRandomFactor = 1.5
	// DefaultMaxRetransmit is MAX_RETRANSMIT (RFC 7252 §4.8), a count.
	DefaultMaxRetransmit = 4
	// DefaultNStart is NSTART (RFC 7252 §4.7, §4.8), outstanding interactions
	// per peer.
	DefaultNStart = 1
	// DefaultMaxLatency is MAX_LATENCY (RFC 7252 §4.8.2): 100 seconds.
	DefaultMaxLatency = 100 * time.Second
	// DefaultAckDelay is how long a server waits for its application's
	// answer before acknowledging a CON with an empty ACK (RFC 7252
	// §5.2.2): 500 ms, a quarter of the default ACK_TIMEOUT. It does not
	// grow with a slow link: the wait is for the application, not the
	// link, and an answer that is not ready at once usually waits for work
	// across that same link, which takes minutes there.
	DefaultAckDelay = DefaultAckTimeout / 4
	// ObserveConfirmableInterval is the longest a server lets pass between
	// two confirmable notifications to one observer: 24 hours (RFC 7641 §4.5).
	ObserveConfirmableInterval = 24 * time.Hour
	// ObserveFreshness is the 128-second window of RFC 7641 §3.4 after which a
	// notification is fresh whatever its sequence number.
	ObserveFreshness = 128 * time.Second
	// observeSeqHalf is 2^23, half the 24-bit Observe sequence space (RFC 7641
	// §3.4, §4.4).
	observeSeqHalf = 1 << 23
	// observeSeqMask keeps the 24 bits an Observe value carries (RFC 7641 §2).
	observeSeqMask = 1<<24 - 1
	// DefaultProbingRate is PROBING_RATE (RFC 7252 §4.7, §4.8): 1 byte per
	// second on average to a peer that does not respond.
	DefaultProbingRate = 1.0
	// probingLinkShare caps PROBING_RATE at this fraction of a known link's
	// bit rate, so that probes to a dead peer take at most 1 % of a slow
	// shared channel (below 800 bit/s; RFC 7252 §4.8 allows adjusting it).
	probingLinkShare = 0.01
	// DefaultMaxAge is the Max-Age option's default: 60 seconds (RFC 7252
	// §5.10.5).
	DefaultMaxAge = 60 * time.Second
)

// LinkParams describe the link towards peers. The zero value means an
// unknown, Internet-like link and yields RFC 7252's default parameters.
type LinkParams struct {
	// BitRate is the link's payload rate in bits per second; 0 means fast
	// enough that serialisation time does not matter.
	BitRate int
	// FrameTime is the fixed time one frame occupies the channel regardless
	// of its size (preamble, header, turnaround, duty-cycle gap).
	FrameTime time.Duration
	// Latency is the one-way propagation and queueing delay.
	Latency time.Duration
	// MTU is the largest datagram the link carries, in bytes; 0 means 1152
	// (RFC 7252 §4.6's "1152 bytes" upper bound for a message).
	MTU int
}

// defaultMTU is RFC 7252 §4.6's message size upper bound, in bytes.
const defaultMTU = 1152

// AirTime is how long n bytes occupy the link: FrameTime + 8·n/BitRate.
func (l LinkParams) AirTime(n int) time.Duration {
	d := l.FrameTime
	if l.BitRate > 0 {
		d += time.Duration(int64(n) * 8 * int64(time.Second) / int64(l.BitRate))
	}
	return d
}

func (l LinkParams) mtu() int {
	if l.MTU <= 0 {
		return defaultMTU
	}
	return l.MTU
}

// Params are the transmission parameters an Endpoint uses, derived from a
// LinkParams by Derive (see the package doc for the formulas).
type Params struct {
	AckTimeout       time.Duration // ACK_TIMEOUT, RFC 7252 §4.8
	MaxRetransmit    int           // MAX_RETRANSMIT, RFC 7252 §4.8
	NStart           int           // NSTART, RFC 7252 §4.7
	MaxLatency       time.Duration // MAX_LATENCY, RFC 7252 §4.8.2
	ProcessingDelay  time.Duration // PROCESSING_DELAY, RFC 7252 §4.8.2
	MaxTransmitSpan  time.Duration // MAX_TRANSMIT_SPAN, RFC 7252 §4.8.2
	MaxTransmitWait  time.Duration // MAX_TRANSMIT_WAIT, RFC 7252 §4.8.2
	ExchangeLifetime time.Duration // EXCHANGE_LIFETIME, RFC 7252 §4.8.2
	NonLifetime      time.Duration // NON_LIFETIME, RFC 7252 §4.8.2
	// MaxRTO caps any single retransmission timeout after backoff.
	MaxRTO time.Duration
	// ProbingRate is PROBING_RATE in bytes per second (RFC 7252 §4.7):
	// DefaultProbingRate, at most 1 % of the link's bit rate.
	ProbingRate float64
	// ProbingBurst is how many bytes an unresponsive peer may get at
	// once, in bytes: one MTU.
	ProbingBurst int
}

// Derive computes transmission parameters for a link, NSTART and
// MAX_RETRANSMIT (0 for the defaults). The link round trip with nstart
// requests queued ahead of one reply is
//
//	RTT_link    = 2·Latency + (nstart+1)·AirTime(MTU)
//	ACK_TIMEOUT = max(2 s, 2·RTT_link)
//	MAX_LATENCY = max(100 s, 2·RTT_link)
//	PROBING_RATE = min(1 byte/s, 1 % of BitRate/8), PROBING_BURST = MTU
//
// and the rest follow RFC 7252 §4.8.2 with PROCESSING_DELAY = ACK_TIMEOUT.
func Derive(l LinkParams, nstart, maxRetransmit int) (Params, error) {
	if l.BitRate < 0 || l.FrameTime < 0 || l.Latency < 0 || l.MTU < 0 {
		return Params{}, fmt.Errorf("coap: derive params: negative link parameter in %+v", l)
	}
	if l.MTU != 0 && l.MTU < 64 {
		return Params{}, fmt.Errorf("coap: derive params: MTU %d below 64 bytes", l.MTU)
	}
	if nstart <= 0 {
		nstart = DefaultNStart
	}
	if maxRetransmit <= 0 {
		maxRetransmit = DefaultMaxRetransmit
	}
	if maxRetransmit > 30 {
		return Params{}, fmt.Errorf("coap: derive params: MAX_RETRANSMIT %d above 30", maxRetransmit)
	}
	rtt := 2*l.Latency + time.Duration(nstart+1)*l.AirTime(l.mtu())
	p := Params{AckTimeout: max(DefaultAckTimeout, 2*rtt), MaxRetransmit: maxRetransmit, NStart: nstart}
	p.MaxLatency = max(DefaultMaxLatency, 2*rtt)
	p.ProcessingDelay = p.AckTimeout
	p.MaxRTO = max(60*time.Second, 4*p.AckTimeout)
	p.ProbingRate, p.ProbingBurst = DefaultProbingRate, l.mtu()
	if l.BitRate > 0 {
		p.ProbingRate = min(p.ProbingRate, float64(l.BitRate)/8*probingLinkShare)
	}
	// MAX_TRANSMIT_SPAN = ACK_TIMEOUT·(2^MAX_RETRANSMIT − 1)·ACK_RANDOM_FACTOR and
	// MAX_TRANSMIT_WAIT = ACK_TIMEOUT·(2^(MAX_RETRANSMIT+1) − 1)·ACK_RANDOM_FACTOR,
	// summed term by term.
	// NOTSPEC: each term is capped at MaxRTO, as the retransmission timer is,
	// so a large MAX_RETRANSMIT for very lossy links does not make
	// EXCHANGE_LIFETIME (and the deduplication state) grow without bound. With
	// the defaults no term reaches the cap and the RFC values result.
	for i := 0; i <= maxRetransmit; i++ {
		term := min(time.Duration(float64(p.AckTimeout)*AckRandomFactor)<<i, p.MaxRTO)
		if i < maxRetransmit {
			p.MaxTransmitSpan += term
		}
		p.MaxTransmitWait += term
	}
	// EXCHANGE_LIFETIME = MAX_TRANSMIT_SPAN + 2·MAX_LATENCY + PROCESSING_DELAY
	p.ExchangeLifetime = p.MaxTransmitSpan + 2*p.MaxLatency + p.ProcessingDelay
	// NON_LIFETIME = MAX_TRANSMIT_SPAN + MAX_LATENCY
	p.NonLifetime = p.MaxTransmitSpan + p.MaxLatency
	return p, nil
}
