package homeserver

import (
	"errors"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
)

// A panic in offloaded work is recovered, in real mode (a goroutine beside
// the loop) and without a loop, and then learns of it as an error.
func TestOffloadRecoversPanic(t *testing.T) {
	tn := newTestNode(t, nil)
	l := NewLoop()
	real, err := New(Options{Config: tn.cfg, Store: tn.store, SigningKey: tn.key, Clock: clock.Real(),
		RNG: clock.SeededRNG(2), Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	defer func() { <-l.Close() }()

	for name, n := range map[string]*Node{"loop": real, "no loop": tn.Node} {
		got := make(chan error, 1)
		n.Offload(func() error {
			var m map[string]int
			m["x"] = 1 // panics: assignment to a nil map
			return nil
		}, func(err error) { got <- err })
		if err := <-got; !errors.Is(err, errOffloadPanic) {
			t.Fatalf("%s: then got %v, want errOffloadPanic", name, err)
		}
		// The node keeps working after it.
		n.Offload(func() error { return nil }, func(err error) { got <- err })
		if err := <-got; err != nil {
			t.Fatalf("%s: after a panic: %v", name, err)
		}
	}
}
