package homeserver

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Offload runs work away from the loop and then continues with then inside
// the loop, with work's error. It is for CPU-heavy or file steps that
// touch no node state (bcrypt, media files), so one request does not stall
// every other. Without a Loop (tests, simulation) both run at once, in
// order, keeping runs deterministic.
//
// work must not touch node state; then may. A panic in work does not
// bring the node down (the goroutine is outside the loop, where nothing
// else would recover it): it is logged with its stack and then gets an
// error wrapping errOffloadPanic, so the request it serves is answered.
func (n *Node) Offload(work func() error, then func(error)) {
	if n.loop == nil {
		then(n.runOffloaded(work))
		return
	}
	loop := n.loop
	go func() {
		err := n.runOffloaded(work)
		if perr := loop.Post(func() { then(err) }); perr != nil {
			n.log.Warn("offloaded work finished after the loop closed", "err", perr)
		}
	}()
}

// errOffloadPanic marks the error of offloaded work that panicked.
var errOffloadPanic = errors.New("offloaded work panicked")

// runOffloaded calls work, turning a panic into an error.
func (n *Node) runOffloaded(work func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("offloaded work panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", errOffloadPanic, r)
		}
	}()
	return work()
}
