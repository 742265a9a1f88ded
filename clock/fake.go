package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Fake is a Clock that moves only when told. Timers fire synchronously, in
// deadline order (ties in creation order), from Advance, AdvanceTo and
// RunNext. A callback may schedule further timers; those due within the same
// Advance fire in the same call.
//
// Fake is safe for concurrent use, but determinism needs a single driver.
// Callbacks run without the Fake's lock held.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers timerHeap
}

// Epoch is the time a zero-configured Fake starts at: 2026-01-01T00:00:00Z.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewFake returns a Fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now is the fake current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.now.IsZero() {
		f.now = Epoch
	}
	return f.now
}

// AfterFunc schedules fn at Now()+d. A d ≤ 0 fires at the next Advance(0).
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.now.IsZero() {
		f.now = Epoch
	}
	f.seq++
	t := &fakeTimer{clock: f, at: f.now.Add(d), seq: f.seq, fn: fn, index: -1}
	heap.Push(&f.timers, t)
	return t
}

// Advance moves the clock forward by d, firing every timer due by then.
func (f *Fake) Advance(d time.Duration) { f.AdvanceTo(f.Now().Add(d)) }

// AdvanceTo moves the clock to t (never backwards), firing every timer due by
// then, each with Now() equal to its own deadline.
func (f *Fake) AdvanceTo(t time.Time) {
	for {
		f.mu.Lock()
		if len(f.timers) == 0 || f.timers[0].at.After(t) {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		next := heap.Pop(&f.timers).(*fakeTimer)
		if next.at.After(f.now) {
			f.now = next.at
		}
		f.mu.Unlock()
		next.fn()
	}
}

// Next returns the deadline of the earliest pending timer.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return time.Time{}, false
	}
	return f.timers[0].at, true
}

// RunNext jumps to the earliest pending timer and fires everything due then.
// It reports false when no timer is pending.
func (f *Fake) RunNext() bool {
	at, ok := f.Next()
	if !ok {
		return false
	}
	f.AdvanceTo(at)
	return true
}

// Pending is the number of timers not yet fired or stopped.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

type fakeTimer struct {
	clock *Fake
	at    time.Time
	seq   uint64
	fn    func()
	index int
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.clock.timers, t.index)
	return true
}

type timerHeap []*fakeTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*fakeTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
