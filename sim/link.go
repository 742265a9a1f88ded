package sim

import (
	"encoding/binary"
	"time"
)

// packet is one datagram in flight: between src and dst endpoints, perhaps
// over several links.
type packet struct {
	src, dst int
	data     []byte
}

// LinkStats count one direction of a link.
type LinkStats struct {
	// Offered datagrams and bytes were handed to the link.
	Offered      int `json:"offered"`
	OfferedBytes int `json:"offered_bytes"`
	// Sent datagrams went on the air (used airtime).
	Sent      int `json:"sent"`
	SentBytes int `json:"sent_bytes"`
	// Delivered datagrams arrived (duplicates included).
	Delivered      int `json:"delivered"`
	DeliveredBytes int `json:"delivered_bytes"`
	Lost           int `json:"lost"`        // random loss
	LostDown       int `json:"lost_down"`   // sent while the link was partitioned
	QueueDrops     int `json:"queue_drops"` // tail-dropped, queue full
	Oversize       int `json:"oversize"`    // larger than the MTU
	Duplicated     int `json:"duplicated"`
	// Airtime is how long this direction occupied the channel.
	Airtime time.Duration `json:"airtime_ns"`
	// MaxQueue is the longest the queue grew.
	MaxQueue int `json:"max_queue"`
}

// link is a simulated link; dirs[0] carries ends[0]→ends[1].
type link struct {
	s    *Sim
	idx  int
	spec LinkSpec
	ends [2]int
	dirs [2]*linkDir
	// busyUntil is the shared channel's end of transmission (half duplex).
	busyUntil time.Time
}

// linkDir is one direction: a drop-tail queue in front of a transmitter.
type linkDir struct {
	l        *link
	d        int // 0 or 1
	queue    []packet
	busy     bool
	quietTil time.Time // max_airtime: silent until then
	kickAt   time.Time // a pending wake-up, zero if none
	stats    LinkStats
}

func (l *link) from(d int) int { return l.ends[d] }
func (l *link) to(d int) int   { return l.ends[1-d] }

// airtime is FrameTime + 8·n/Bitrate.
func (l *link) airtime(n int) time.Duration {
	a := l.spec.FrameTime.D()
	if l.spec.Bitrate > 0 {
		a += time.Duration(int64(n) * 8 * int64(time.Second) / int64(l.spec.Bitrate))
	}
	return a
}

// down reports whether a partition window covers scenario time t.
func (l *link) down(t time.Duration) bool {
	for _, w := range l.spec.Down {
		if t >= w.From.D() && t < w.To.D() {
			return true
		}
	}
	return false
}

// enqueue offers a datagram to direction ld.
func (ld *linkDir) enqueue(p packet) {
	l, s := ld.l, ld.l.s
	ld.stats.Offered++
	ld.stats.OfferedBytes += len(p.data)
	s.record(evOffer, l.idx, ld.d, p.data)
	if l.spec.MTU > 0 && len(p.data) > l.spec.MTU {
		ld.stats.Oversize++
		s.record(evOversize, l.idx, ld.d, nil)
		return
	}
	limit := l.spec.Queue
	if limit == 0 {
		limit = DefaultQueue
	}
	if len(ld.queue) >= limit {
		ld.stats.QueueDrops++
		s.record(evQueueDrop, l.idx, ld.d, nil)
		return
	}
	ld.queue = append(ld.queue, p)
	ld.stats.MaxQueue = max(ld.stats.MaxQueue, len(ld.queue))
	ld.kick()
}

// kick starts the next transmission if the channel allows it now, or
// arranges to be called again when it will.
func (ld *linkDir) kick() {
	l, s := ld.l, ld.l.s
	if ld.busy || len(ld.queue) == 0 {
		return
	}
	now := s.clk.Now()
	start := now
	if ld.quietTil.After(start) {
		start = ld.quietTil
	}
	if l.spec.HalfDuplex && l.busyUntil.After(start) {
		start = l.busyUntil
	}
	if dc := l.spec.DutyCycle; dc != nil {
		off := start.Sub(s.start) % dc.Period.D()
		if off >= dc.On.D() {
			start = start.Add(dc.Period.D() - off)
		}
	}
	if start.After(now) {
		if ld.kickAt.IsZero() || start.Before(ld.kickAt) {
			ld.kickAt = start
			s.clk.AfterFunc(start.Sub(now), func() {
				if ld.kickAt.Equal(start) {
					ld.kickAt = time.Time{}
				}
				ld.kick()
			})
		}
		return
	}
	p := ld.queue[0]
	ld.queue[0] = packet{}
	ld.queue = ld.queue[1:]
	air := l.airtime(len(p.data))
	ld.busy = true
	end := now.Add(air)
	if l.spec.HalfDuplex {
		l.busyUntil = end
	}
	ld.stats.Sent++
	ld.stats.SentBytes += len(p.data)
	ld.stats.Airtime += air
	down := l.down(now.Sub(s.start))
	s.record(evTxStart, l.idx, ld.d, nil)
	sp := -1
	if len(s.spans) < maxSpans {
		s.spans = append(s.spans, span{link: l.idx, dir: ld.d, start: now.Sub(s.start), end: end.Sub(s.start), bytes: len(p.data)})
		sp = len(s.spans) - 1
	}
	markLost := func() {
		if sp >= 0 {
			s.spans[sp].lost = true
		}
	}
	s.clk.AfterFunc(air, func() {
		ld.busy = false
		if f := l.spec.MaxAirtime; f > 0 && f < 1 {
			ld.quietTil = s.clk.Now().Add(time.Duration(float64(air) * (1/f - 1)))
		}
		switch {
		case down || l.down(s.clk.Now().Sub(s.start)):
			ld.stats.LostDown++
			markLost()
			s.record(evLostDown, l.idx, ld.d, nil)
		case s.rng.Float64() < l.spec.Loss:
			ld.stats.Lost++
			markLost()
			s.record(evLost, l.idx, ld.d, nil)
		default:
			copies := 1
			if s.rng.Float64() < l.spec.Duplicate {
				copies = 2
				ld.stats.Duplicated++
			}
			for range copies {
				delay := l.spec.Latency.D()
				if s.rng.Float64() < l.spec.Reorder {
					delay += time.Duration(s.rng.Float64() * float64(2*delay+air))
				}
				s.clk.AfterFunc(delay, func() {
					ld.stats.Delivered++
					ld.stats.DeliveredBytes += len(p.data)
					s.record(evDeliver, l.idx, ld.d, nil)
					s.arrive(l.to(ld.d), p)
				})
			}
		}
		// Half duplex: the other direction may take the channel first.
		if l.spec.HalfDuplex {
			l.dirs[1-ld.d].kick()
		}
		ld.kick()
	})
}

// Trace event kinds (one byte each in the transcript).
const (
	evOffer     = 'o'
	evOversize  = 'm'
	evQueueDrop = 'q'
	evTxStart   = 't'
	evLost      = 'l'
	evLostDown  = 'p'
	evDeliver   = 'd'
)

// record appends one event to the transcript hash: kind, virtual time
// since the start (ns, big endian), link index, direction, and for offers
// the datagram's length and bytes.
func (s *Sim) record(kind byte, link, dir int, data []byte) {
	var b [1 + 8 + 2 + 1 + 4]byte
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:], uint64(s.clk.Now().Sub(s.start)))
	binary.BigEndian.PutUint16(b[9:], uint16(link))
	b[11] = byte(dir)
	binary.BigEndian.PutUint32(b[12:], uint32(len(data)))
	s.trace.Write(b[:])
	s.trace.Write(data)
	s.events++
}

// maxSpans bounds the transmissions kept for the picture.
const maxSpans = 50000

// span is one transmission, for the picture.
type span struct {
	link, dir  int
	start, end time.Duration
	bytes      int
	lost       bool
}
