package auth

import (
	"fmt"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// CheckRedaction decides whether an accepted m.room.redaction event may be
// applied to original, the event it redacts. state is the room state at the
// redaction. The redaction applies when its sender's power level reaches the
// redact level, or when its sender is on the same server as original's
// sender. A redaction that does not apply yet is kept and re-checked when
// the state changes; it is not rejected.
//
// The authorization rules themselves (Check) treat m.room.redaction like any
// other message event: only the events / events_default level is checked,
// never the redact level or the "same sender" condition — those belong here,
// at the time the redaction is applied.
// Spec: rooms/fragments/v3-handling-redactions.md (room versions 3–12).
func CheckRedaction(redaction, original *event.Event, state State) error {
	if redaction == nil || original == nil {
		return fmt.Errorf("auth: check redaction: %w", rejectAs("redaction", "missing redaction or original event"))
	}
	if redaction.Type() != TypeRedaction {
		return fmt.Errorf("auth: check redaction %s: %w", redaction.ID(),
			rejectAs("redaction", "event type is %s, not %s", redaction.Type(), TypeRedaction))
	}
	if redaction.Redacts() != original.ID() {
		return fmt.Errorf("auth: check redaction %s: %w", redaction.ID(),
			rejectAs("redaction", "redacts %q, not %s", redaction.Redacts(), original.ID()))
	}
	if redaction.RoomID() != original.RoomID() {
		return fmt.Errorf("auth: check redaction %s: %w", redaction.ID(),
			rejectAs("redaction", "redaction is in room %q, original in %q", redaction.RoomID(), original.RoomID()))
	}
	// Condition 2: same server.
	if d := domainOf(redaction.Sender()); d != "" && d == domainOf(original.Sender()) {
		return nil
	}
	// Condition 1: redact level.
	level := PowerLevel(state, redaction.Sender())
	redact := state.currentLevels().get("redact", defaultRedact)
	if level >= redact {
		return nil
	}
	return fmt.Errorf("auth: check redaction %s: %w", redaction.ID(),
		rejectAs("redaction", "sender %s has level %d, below the redact level %d, and is not on %s's server",
			redaction.Sender(), level, redact, original.Sender()))
}
