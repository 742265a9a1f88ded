package auth

import (
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// BenchmarkCheck measures Check on the common cases: a message, a join and
// a power-levels change in a room with a few members.
func BenchmarkCheck(b *testing.B) {
	r := modRoom(b, event.V11)
	cases := []struct {
		name string
		ev   *event.Event
	}{
		{"Message", r.build(dave, "m.room.message", nil, msg("hello"))},
		{"Join", r.build(eve, TypeMember, sp(eve), member(Join))},
		{"PowerLevels", r.build(carol, TypePowerLevels, sp(""), r.levels(map[string]any{"users": users(carol, 50, dave, 10), "invite": 50}))},
	}
	for _, c := range cases {
		if err := Check(c.ev, r.state); err != nil {
			b.Fatalf("%s rejected: %v", c.name, err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := Check(c.ev, r.state); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
