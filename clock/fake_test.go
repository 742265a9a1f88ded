package clock

import (
	"slices"
	"testing"
	"time"
)

func TestFakeFiresInDeadlineThenCreationOrder(t *testing.T) {
	f := NewFake(Epoch)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, name+"@"+f.Now().Sub(Epoch).String()) }
	}
	f.AfterFunc(3*time.Second, at("c"))
	f.AfterFunc(1*time.Second, at("a1"))
	f.AfterFunc(1*time.Second, at("a2"))
	stopped := f.AfterFunc(2*time.Second, at("never"))
	f.AfterFunc(5*time.Second, at("late"))
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	if stopped.Stop() {
		t.Fatal("second Stop reported true")
	}
	f.Advance(4 * time.Second)
	want := []string{"a1@1s", "a2@1s", "c@3s"}
	if !slices.Equal(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	if d := f.Now().Sub(Epoch); d != 4*time.Second {
		t.Fatalf("Now is %v after Advance(4s), want 4s", d)
	}
	if f.Pending() != 1 {
		t.Fatalf("Pending = %d, want 1", f.Pending())
	}
}

func TestFakeCallbackSchedulesWithinSameAdvance(t *testing.T) {
	f := NewFake(Epoch)
	n := 0
	var tick func()
	tick = func() {
		n++
		f.AfterFunc(time.Second, tick)
	}
	f.AfterFunc(time.Second, tick)
	f.Advance(10 * time.Second)
	if n != 10 {
		t.Fatalf("periodic callback ran %d times in 10s, want 10", n)
	}
}

func TestFakeRunNextJumpsToDeadline(t *testing.T) {
	f := NewFake(Epoch)
	if f.RunNext() {
		t.Fatal("RunNext with no timers reported true")
	}
	fired := false
	f.AfterFunc(time.Hour, func() { fired = true })
	if next, ok := f.Next(); !ok || !next.Equal(Epoch.Add(time.Hour)) {
		t.Fatalf("Next = %v %v", next, ok)
	}
	if !f.RunNext() || !fired || !f.Now().Equal(Epoch.Add(time.Hour)) {
		t.Fatalf("RunNext: fired=%v now=%v", fired, f.Now())
	}
}

func TestFakeNeverGoesBackwards(t *testing.T) {
	f := NewFake(Epoch.Add(time.Minute))
	f.AdvanceTo(Epoch)
	if !f.Now().Equal(Epoch.Add(time.Minute)) {
		t.Fatalf("clock moved backwards to %v", f.Now())
	}
}

func TestSeededRNGIsDeterministic(t *testing.T) {
	a, b, c := SeededRNG(7), SeededRNG(7), SeededRNG(8)
	var ba, bb, bc [32]byte
	_, _ = a.Read(ba[:])
	_, _ = b.Read(bb[:])
	_, _ = c.Read(bc[:])
	if ba != bb {
		t.Fatal("same seed gave different streams")
	}
	if ba == bc {
		t.Fatal("different seeds gave the same stream")
	}
}

func TestRealClockTimer(t *testing.T) {
	done := make(chan struct{})
	Real().AfterFunc(time.Millisecond, func() { close(done) })
	<-done
	if Real().Now().IsZero() {
		t.Fatal("real clock reads zero")
	}
}
