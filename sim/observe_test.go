package sim

import (
	"path/filepath"
	"testing"
)

// TestObserveDeliversLikePoll: after a partition heals, a burst of
// federated messages reaches the clients' /sync by CoAP Observe exactly
// as it does by long-polling: every message, to every recipient. The
// front door must not let a newer notification replace one the client
// has not yet acknowledged and fetched (the burst scenario's answers go
// block-wise on bob's small-MTU link).
func TestObserveDeliversLikePoll(t *testing.T) {
	for _, path := range []string{
		filepath.Join("testdata", "burst.yaml"),
		filepath.Join("..", "examples", "line-partition.yaml"),
	} {
		for _, mode := range []string{SyncObserve, SyncPoll} {
			sc := loadScenario(t, path)
			for i := range sc.Clients {
				sc.Clients[i].Sync = mode
			}
			r := runScenario(t, sc, 0)
			if r.Expected == 0 || r.Delivered != r.Expected {
				t.Errorf("%s, %s: %d of %d deliveries; undelivered %q; failures %q",
					filepath.Base(path), mode, r.Delivered, r.Expected, r.Undelivered, r.Failures)
			}
		}
	}
}
