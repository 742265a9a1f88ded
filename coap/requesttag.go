package coap

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
)

// Request-Tag (RFC 9175 §3) keeps block-wise request bodies apart.
//
// The option (number 292) is elective, safe to forward, part of the cache
// key and repeatable (RFC 9175 §3.2.1; 292 has neither the Critical bit 1
// nor the UnSafe bit 2 set, RFC 7252 §5.4.6), 0–8 opaque bytes. The
// absent option is a tag value of its own, distinct from the empty
// (zero-length) option (§3.4).
//
// Client: every Block1 transfer takes the shortest tag value not held by
// another transfer to the same peer, in the order absent, empty, 1 byte,
// 2 bytes, ... A transfer holds its tag while it runs and for
// EXCHANGE_LIFETIME after it ends, so a retried or concurrent upload,
// to the same resource or another, gets a different tag, and a delayed
// block of the old transfer (a retransmission still on the link, up to
// MAX_LATENCY) cannot join the new one. The tag is repeated in every block
// and in the Block2 requests that fetch the answer (§3.4). After
// EXCHANGE_LIFETIME the server has dropped the old assembly and every copy
// of the old blocks has arrived or been lost: the value is recycled, which
// §3.5.1 allows once the old operation is concluded.
//
// Server: block-wise state is keyed by method, Uri-Host, Uri-Path,
// Uri-Query and the list of Request-Tag values (requestKey), so a block
// with another tag, or none, never joins a transfer. The tag is dropped
// from the request the application sees: it names the transfer on the
// wire, not the request's meaning (§3.3).
//
// Over Noise every datagram is authenticated and replay-protected, so an
// attacker can neither inject blocks nor replay old ones (the integrity
// protection §3.5.1 requires); what is left is our own delayed blocks,
// which the holding time covers. Tags therefore need not be random or
// long: a counter, as for tokens. In plain (unprotected) mode a tag is
// only a label: anyone on the path can forge a block with it, and RFC 9175
// §3.5.1 gives no body integrity there.

// maxRequestTags bounds the tags held per peer (running transfers and
// recently ended ones).
const maxRequestTags = maxOutstanding

// requestTag is tag value number i: absent (i = 0), empty (1), then the
// values of 1, 2, ... bytes in big-endian order.
func requestTag(i uint64) (present bool, v []byte) {
	if i == 0 {
		return false, nil
	}
	j := i - 1
	for n := 0; n < 8; n++ {
		if span := uint64(1) << (8 * n); j >= span {
			j -= span
			continue
		}
		v = make([]byte, n)
		for k := n - 1; k >= 0; k-- {
			v[k] = byte(j)
			j >>= 8
		}
		return true, v
	}
	return true, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff} // not reached: 2^56 tags held
}

// takeRequestTag allocates the shortest tag value free at peer p; ok is
// false when maxRequestTags are held.
func (p *peer) takeRequestTag() (i uint64, ok bool) {
	if len(p.rtags) >= maxRequestTags {
		return 0, false
	}
	for p.rtags[i] {
		i++
	}
	p.rtags[i] = true
	return i, true
}

// setRequestTag puts x's Request-Tag on its request, which goes into every
// block of the transfer.
func setRequestTag(x *exchange) {
	if present, v := requestTag(x.rtag); present {
		x.req.Options = x.req.Options.Add(message.Option{ID: message.RequestTag, Value: v})
	}
}

// releaseRequestTag frees x's tag EXCHANGE_LIFETIME after its transfer
// ended (see the comment at the top of this file).
func (e *Endpoint) releaseRequestTag(now time.Time, x *exchange) {
	if !x.hasRtag {
		return
	}
	x.hasRtag = false
	p, i := x.p, x.rtag
	e.after(now.Add(p.par.ExchangeLifetime), func(time.Time) { delete(p.rtags, i) })
}
