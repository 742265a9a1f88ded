package noise

// Replay window sizes. The window is a ring of 64-bit blocks, one bit per
// counter, in the manner of RFC 6479 (IPsec anti-replay without bit
// shifting) and wireguard-go's replay filter.
const (
	replayBlocks = 32
	replayBits   = 64
	// ReplayWindow is how far (in packets) a counter may fall behind the
	// highest counter received and still be accepted once.
	ReplayWindow = (replayBlocks - 1) * replayBits
)

// replayWindow remembers which counters were received. The zero value is an
// empty window expecting counter 0. Check does not modify it; Update is
// called only after the packet authenticated, so forged packets cannot move
// the window.
type replayWindow struct {
	last uint64 // highest counter received
	seen bool   // whether any counter was received
	ring [replayBlocks]uint64
}

// next is the counter the window expects next; used to reconstruct
// truncated counters.
func (w *replayWindow) next() uint64 {
	if !w.seen {
		return 0
	}
	return w.last + 1
}

// check reports whether c would be accepted.
func (w *replayWindow) check(c uint64) bool {
	if c >= rejectAfterMessages {
		return false
	}
	if !w.seen || c > w.last {
		return true
	}
	if w.last-c >= ReplayWindow {
		return false
	}
	return w.ring[(c/replayBits)%replayBlocks]&(1<<(c%replayBits)) == 0
}

// update marks c as received. The caller has checked it.
func (w *replayWindow) update(c uint64) {
	if !w.seen || c > w.last {
		cur := w.last / replayBits
		blk := c / replayBits
		if !w.seen {
			cur = blk
			w.ring[blk%replayBlocks] = 0
		}
		diff := blk - cur
		if diff > replayBlocks {
			diff = replayBlocks
		}
		for i := uint64(1); i <= diff; i++ {
			w.ring[(cur+i)%replayBlocks] = 0
		}
		w.last = c
		w.seen = true
	}
	w.ring[(c/replayBits)%replayBlocks] |= 1 << (c % replayBits)
}
