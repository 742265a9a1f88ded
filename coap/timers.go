package coap

import (
	"container/heap"
	"time"
)

// timer is one pending deadline of an Endpoint. Timers fire in (deadline,
// creation) order, so a run is deterministic.
type timer struct {
	at  time.Time
	seq uint64
	idx int // position in the heap, −1 once fired or stopped
	fn  func(now time.Time)
}

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.idx = -1
	*h = old[:len(old)-1]
	return t
}

// after schedules fn at the given time.
func (e *Endpoint) after(at time.Time, fn func(now time.Time)) *timer {
	e.timerSeq++
	t := &timer{at: at, seq: e.timerSeq, fn: fn, idx: -1}
	heap.Push(&e.timers, t)
	return t
}

// stop cancels t; a nil or already fired timer is ignored.
func (e *Endpoint) stop(t *timer) {
	if t != nil && t.idx >= 0 {
		heap.Remove(&e.timers, t.idx)
	}
}

// NextDeadline is the time of the earliest pending timer: the caller must
// call Tick at (or after) it. ok is false when nothing is pending.
func (e *Endpoint) NextDeadline() (at time.Time, ok bool) {
	if len(e.timers) == 0 {
		return time.Time{}, false
	}
	return e.timers[0].at, true
}

// Tick fires every timer due at now: retransmissions, delayed empty ACKs,
// expiry of deduplication and block-wise state, observe re-registration.
func (e *Endpoint) Tick(now time.Time) {
	for len(e.timers) > 0 && !e.timers[0].at.After(now) {
		t := heap.Pop(&e.timers).(*timer)
		t.fn(now)
	}
}
