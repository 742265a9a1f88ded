package homeserver

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Offload runs work away from the loop and then continues with then inside
// the loop. It is for CPU-heavy steps that touch no node state (bcrypt),
// so a login does not stall every other request. Without a Loop (tests,
// simulation) both run at once, in order, keeping runs deterministic.
//
// work must not touch node state; then may. A panic in work is recovered
// and logged (see OffloadErr); then is not called, since work's results
// are unset. Callers that must always answer use OffloadErr.
func (n *Node) Offload(work func(), then func()) {
	n.OffloadErr(func() error { work(); return nil }, func(err error) {
		if err == nil {
			then()
		}
	})
}

// OffloadErr is Offload for work that can fail: then gets work's error.
// A panic in work does not bring the node down (the goroutine is outside
// the loop, where nothing else would recover it): it is logged with its
// stack and then gets an error wrapping errOffloadPanic.
func (n *Node) OffloadErr(work func() error, then func(error)) {
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
