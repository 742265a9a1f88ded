// Package clock is a node's seam to time and randomness.
//
// A node never reads the process clock or global randomness (DESIGN.md, "The
// runtime model"). It is handed a Clock and an RNG instead:
//
//   - In real mode the Clock is Real(): wall time, and timers whose callbacks
//     run on their own goroutine (the callback must post work into the node
//     loop, never touch node state directly). The RNG is SystemRNG(), a ChaCha8
//     stream keyed from the operating system's CSPRNG.
//   - In tests and in the simulator the Clock is a *Fake, which moves only when
//     told (Advance, AdvanceTo, RunNext) and fires due timers synchronously in
//     (deadline, creation order) order, and the RNG is SeededRNG(seed), so the
//     same seed gives the same run byte for byte.
//
// Both RNGs are *rand.ChaCha8 from math/rand/v2: it implements io.Reader (for
// keys and access tokens) and Uint64 (for jitter), and is not safe for
// concurrent use: it belongs to the loop that owns it.
package clock

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"time"
)

// Clock tells the time and schedules callbacks.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// AfterFunc calls f once d has elapsed. With Real, f runs on its own
	// goroutine; with Fake, f runs inside Advance/RunNext.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc callback.
type Timer interface {
	// Stop cancels the callback; it reports whether it was still pending.
	Stop() bool
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// SeededRNG returns a deterministic random stream for tests and simulation.
func SeededRNG(seed uint64) *rand.ChaCha8 {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return rand.NewChaCha8(key)
}

// SystemRNG returns a random stream keyed from the operating system's
// CSPRNG, suitable for keys and access tokens.
func SystemRNG() *rand.ChaCha8 {
	var key [32]byte
	if _, err := crand.Read(key[:]); err != nil {
		panic("clock: operating system randomness unavailable: " + err.Error())
	}
	return rand.NewChaCha8(key)
}
