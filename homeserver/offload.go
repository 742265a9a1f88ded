package homeserver

// Offload runs work away from the loop and then continues with then inside
// the loop. It is for CPU-heavy steps that touch no node state (bcrypt),
// so a login does not stall every other request. Without a Loop (tests,
// simulation) both run at once, in order, keeping runs deterministic.
//
// work must not touch node state; then may.
func (n *Node) Offload(work func(), then func()) {
	if n.loop == nil {
		work()
		then()
		return
	}
	loop := n.loop
	go func() {
		work()
		if err := loop.Post(then); err != nil {
			n.log.Warn("offloaded work finished after the loop closed", "err", err)
		}
	}()
}
