package sim

import (
	"strings"
	"testing"
)

// TestFailedSendsCounted: a message whose sender is not in the room is
// counted as produced and failed, expects no deliveries, and the summary
// says so.
func TestFailedSendsCounted(t *testing.T) {
	sc, err := ParseScenario([]byte(`
duration: 3m
servers: [{name: a.test}]
clients:
  - {user: ann, server: a.test}
  - {user: ben, server: a.test, no_auto_join: true}
links:
  - {between: [ann, a.test], bitrate: 9600, latency: 5ms}
  - {between: [ben, a.test], bitrate: 9600, latency: 5ms}
actions:
  - {at: 1s, user: ann, do: create_room, room: r, invite: [ben]}
  - {at: 1m, user: ben, do: send, room: r, count: 2, every: 10s}
  - {at: 1m, user: ann, do: send, room: r, count: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := runScenario(t, sc, 1)
	if r.Messages != 3 || r.Failed != 2 || r.Expected != 0 || len(r.Failures) != 2 {
		t.Fatalf("messages %d, failed %d, expected %d, failures %q", r.Messages, r.Failed, r.Expected, r.Failures)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "3 sent (2 failed at the sender)") {
		t.Fatalf("summary %v:\n%s", err, text.String())
	}
}
