package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mxmesh/mxmesh/homeserver"
)

// Scenario is a parsed scenario file (see the package doc for the format).
type Scenario struct {
	Name     string       `yaml:"name,omitempty"`
	Seed     uint64       `yaml:"seed,omitempty"`
	Duration Duration     `yaml:"duration"`
	Servers  []ServerSpec `yaml:"servers"`
	Clients  []ClientSpec `yaml:"clients,omitempty"`
	Links    []LinkSpec   `yaml:"links,omitempty"`
	Actions  []ActionSpec `yaml:"actions,omitempty"`
}

// ServerSpec is one homeserver.
type ServerSpec struct {
	Name string `yaml:"name"`
	Line int    `yaml:"-"`
}

// ClientSpec is one user with a low-bandwidth client on its home server.
type ClientSpec struct {
	User   string `yaml:"user"`
	Server string `yaml:"server"`
	// NoAutoJoin stops the client from joining rooms it is invited to.
	NoAutoJoin bool `yaml:"no_auto_join,omitempty"`
	// Sync is how the client follows /sync: SyncObserve (the default) or
	// SyncPoll.
	Sync string `yaml:"sync,omitempty"`
	Line int    `yaml:"-"`
}

// Client sync modes.
const (
	// SyncObserve observes /sync (MSC3079 "HTTP long-polling -> CoAP
	// OBSERVE"): the server pushes each new /sync response.
	SyncObserve = "observe"
	// SyncPoll long-polls GET /sync, one request at a time.
	SyncPoll = "poll"
)

// LinkSpec is one simulated link between two nodes (servers or clients).
type LinkSpec struct {
	Name    string   `yaml:"name,omitempty"`
	Between []string `yaml:"between,flow"`
	// Bitrate in bit/s; 0 means serialisation takes no time.
	Bitrate int `yaml:"bitrate,omitempty"`
	// FrameTime is a fixed per-datagram channel time (preamble, turnaround).
	FrameTime Duration `yaml:"frame_time,omitempty"`
	Latency   Duration `yaml:"latency,omitempty"`
	// Loss, Duplicate and Reorder are probabilities in [0, 1] per datagram.
	Loss      float64 `yaml:"loss,omitempty"`
	Duplicate float64 `yaml:"duplicate,omitempty"`
	Reorder   float64 `yaml:"reorder,omitempty"`
	// Queue bounds the datagrams waiting per direction (drop tail);
	// 0 means DefaultQueue.
	Queue int `yaml:"queue,omitempty"`
	// MTU drops larger datagrams; 0 means no limit.
	MTU int `yaml:"mtu,omitempty"`
	// HalfDuplex makes both directions share one channel.
	HalfDuplex bool `yaml:"half_duplex,omitempty"`
	// DutyCycle lets transmissions start only in the first On of every
	// Period.
	DutyCycle *DutyCycle `yaml:"duty_cycle,omitempty"`
	// MaxAirtime is the fraction of time a sender may transmit (0 < f ≤ 1):
	// after a frame of airtime A it stays silent for A·(1/f − 1).
	MaxAirtime float64  `yaml:"max_airtime,omitempty"`
	Down       []Window `yaml:"down,omitempty"`
	Line       int      `yaml:"-"`
}

// DutyCycle is an on/off radio schedule.
type DutyCycle struct {
	Period Duration `yaml:"period"`
	On     Duration `yaml:"on"`
}

// Window is a span of scenario time [From, To).
type Window struct {
	From Duration `yaml:"from"`
	To   Duration `yaml:"to"`
}

// Action kinds.
const (
	DoCreateRoom = "create_room"
	DoInvite     = "invite"
	DoJoin       = "join"
	DoSend       = "send"
)

// ActionSpec is one scheduled client action.
type ActionSpec struct {
	At   Duration `yaml:"at"`
	User string   `yaml:"user"`
	Do   string   `yaml:"do"`
	// Room is the scenario's label for a room (create_room names it).
	Room string `yaml:"room"`
	// Invite lists users (scenario user names) to invite.
	Invite []string `yaml:"invite,omitempty,flow"`
	// Count, Every and Text describe a send: Count messages, Every apart.
	Count int      `yaml:"count,omitempty"`
	Every Duration `yaml:"every,omitempty"`
	Text  string   `yaml:"text,omitempty"`
	Line  int      `yaml:"-"`
}

// Defaults and limits of the scenario format.
const (
	DefaultQueue = 64
	// MaxDuration bounds a scenario's virtual time.
	MaxDuration = 7 * 24 * time.Hour
	// maxEntities bounds servers, clients, links and actions each.
	maxEntities = 1000
	// minAirtime is the smallest max_airtime: below it the silence after
	// one frame outlasts any scenario.
	minAirtime = 1e-6
	// maxMessages bounds the messages all send actions produce.
	maxMessages = 100000
)

// Duration is a time.Duration written as "1m30s" in YAML.
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string ("250ms", "1h").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 1m30s", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q: %w", n.Line, n.Value, err)
	}
	if v < 0 {
		return fmt.Errorf("line %d: negative duration %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// decodeStrict decodes a mapping node into out (a pointer to a struct
// without UnmarshalYAML), refusing keys the struct does not name and keys
// given twice, with the line of the offending key.
func decodeStrict(n *yaml.Node, out any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping", n.Line)
	}
	known := map[string]bool{}
	t := reflect.TypeOf(out).Elem()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			known[name] = true
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			return fmt.Errorf("line %d: unknown field %q", k.Line, k.Value)
		}
		if seen[k.Value] {
			return fmt.Errorf("line %d: field %q given twice", k.Line, k.Value)
		}
		seen[k.Value] = true
	}
	return n.Decode(out)
}

// UnmarshalYAML decodes strictly and records the line.
func (s *ServerSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ServerSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = ServerSpec(p)
	s.Line = n.Line
	return nil
}

// UnmarshalYAML decodes strictly and records the line.
func (s *ClientSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ClientSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = ClientSpec(p)
	s.Line = n.Line
	return nil
}

// UnmarshalYAML decodes strictly and records the line.
func (s *LinkSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain LinkSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = LinkSpec(p)
	s.Line = n.Line
	return nil
}

// UnmarshalYAML decodes strictly.
func (s *DutyCycle) UnmarshalYAML(n *yaml.Node) error {
	type plain DutyCycle
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = DutyCycle(p)
	return nil
}

// UnmarshalYAML decodes strictly.
func (s *Window) UnmarshalYAML(n *yaml.Node) error {
	type plain Window
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = Window(p)
	return nil
}

// UnmarshalYAML decodes strictly and records the line.
func (s *ActionSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ActionSpec
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = ActionSpec(p)
	s.Line = n.Line
	return nil
}

// ParseScenario reads and validates a scenario. Errors name the line.
func ParseScenario(data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("sim: parse scenario: empty file")
		}
		return nil, fmt.Errorf("sim: parse scenario: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("sim: parse scenario: more than one YAML document")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("sim: parse scenario: %w", err)
	}
	return &s, nil
}

// Validate checks names, references, ranges and the action plan.
func (s *Scenario) Validate() error {
	if s.Duration <= 0 || s.Duration.D() > MaxDuration {
		return fmt.Errorf("duration must be in (0, %v]", MaxDuration)
	}
	if len(s.Servers) == 0 {
		return errors.New("at least one server is needed")
	}
	if len(s.Servers) > maxEntities || len(s.Clients) > maxEntities || len(s.Links) > maxEntities || len(s.Actions) > maxEntities {
		return fmt.Errorf("at most %d servers, clients, links and actions each", maxEntities)
	}
	nodes := map[string]string{} // name → "server" or "client"
	for _, sv := range s.Servers {
		if err := homeserver.ValidateServerName(sv.Name); err != nil {
			return fmt.Errorf("line %d: server %q: %w", sv.Line, sv.Name, err)
		}
		if nodes[sv.Name] != "" {
			return fmt.Errorf("line %d: %q named twice", sv.Line, sv.Name)
		}
		nodes[sv.Name] = "server"
	}
	users := map[string]*ClientSpec{}
	for i := range s.Clients {
		c := &s.Clients[i]
		if !validLocalpart(c.User) {
			return fmt.Errorf("line %d: user %q: want 1-64 characters of a-z, 0-9, . _ = -", c.Line, c.User)
		}
		if nodes[c.User] != "" {
			return fmt.Errorf("line %d: %q named twice", c.Line, c.User)
		}
		if nodes[c.Server] != "server" {
			return fmt.Errorf("line %d: user %s: unknown server %q", c.Line, c.User, c.Server)
		}
		if c.Sync != "" && c.Sync != SyncObserve && c.Sync != SyncPoll {
			return fmt.Errorf("line %d: user %s: sync %q: want %s or %s", c.Line, c.User, c.Sync, SyncObserve, SyncPoll)
		}
		nodes[c.User] = "client"
		users[c.User] = c
	}
	pairs := map[[2]string]bool{}
	for _, l := range s.Links {
		if len(l.Between) != 2 {
			return fmt.Errorf("line %d: a link is between exactly two nodes", l.Line)
		}
		a, b := l.Between[0], l.Between[1]
		for _, x := range l.Between {
			if nodes[x] == "" {
				return fmt.Errorf("line %d: link to unknown node %q", l.Line, x)
			}
		}
		if a == b {
			return fmt.Errorf("line %d: link from %q to itself", l.Line, a)
		}
		if nodes[a] == "client" && nodes[b] == "client" {
			return fmt.Errorf("line %d: clients link only to their home server", l.Line)
		}
		for _, x := range l.Between {
			if c := users[x]; c != nil && c.Server != a && c.Server != b {
				return fmt.Errorf("line %d: user %s links only to its server %s", l.Line, x, c.Server)
			}
		}
		key := [2]string{min(a, b), max(a, b)}
		if pairs[key] {
			return fmt.Errorf("line %d: a second link between %s and %s", l.Line, a, b)
		}
		pairs[key] = true
		if l.Bitrate < 0 || l.Queue < 0 || l.MTU < 0 {
			return fmt.Errorf("line %d: bitrate, queue and mtu must not be negative", l.Line)
		}
		for i, p := range []float64{l.Loss, l.Duplicate, l.Reorder} {
			if !(p >= 0 && p <= 1) {
				return fmt.Errorf("line %d: %s %v is not a probability", l.Line, []string{"loss", "duplicate", "reorder"}[i], p)
			}
		}
		if l.MaxAirtime != 0 && !(l.MaxAirtime >= minAirtime && l.MaxAirtime <= 1) {
			return fmt.Errorf("line %d: max_airtime %v must be in [%v, 1]", l.Line, l.MaxAirtime, minAirtime)
		}
		if d := l.DutyCycle; d != nil && (d.Period <= 0 || d.On <= 0 || d.On > d.Period) {
			return fmt.Errorf("line %d: duty_cycle needs 0 < on ≤ period", l.Line)
		}
		for _, w := range l.Down {
			if w.To <= w.From {
				return fmt.Errorf("line %d: down window %v–%v is empty", l.Line, w.From.D(), w.To.D())
			}
		}
	}
	rooms := map[string]bool{}
	messages := 0
	for _, a := range s.Actions {
		if users[a.User] == nil {
			return fmt.Errorf("line %d: action by unknown user %q", a.Line, a.User)
		}
		if a.At.D() > s.Duration.D() {
			return fmt.Errorf("line %d: action at %v is after the end (%v)", a.Line, a.At.D(), s.Duration.D())
		}
		if a.Room == "" {
			return fmt.Errorf("line %d: %s needs a room", a.Line, a.Do)
		}
		for _, u := range a.Invite {
			if users[u] == nil {
				return fmt.Errorf("line %d: invite of unknown user %q", a.Line, u)
			}
		}
		switch a.Do {
		case DoCreateRoom:
			if rooms[a.Room] {
				return fmt.Errorf("line %d: room %q created twice", a.Line, a.Room)
			}
			rooms[a.Room] = true
		case DoInvite:
			if len(a.Invite) == 0 {
				return fmt.Errorf("line %d: invite needs users", a.Line)
			}
		case DoJoin:
		case DoSend:
			if a.Count <= 0 {
				return fmt.Errorf("line %d: send needs a positive count", a.Line)
			}
			messages += a.Count
			if messages > maxMessages {
				return fmt.Errorf("line %d: more than %d messages", a.Line, maxMessages)
			}
			if a.Count > 1 && a.Every <= 0 {
				return fmt.Errorf("line %d: send of %d messages needs every", a.Line, a.Count)
			}
		default:
			return fmt.Errorf("line %d: unknown action %q (want %s, %s, %s or %s)", a.Line, a.Do, DoCreateRoom, DoInvite, DoJoin, DoSend)
		}
		if a.Do != DoCreateRoom && a.Do != DoInvite && len(a.Invite) > 0 {
			return fmt.Errorf("line %d: invite is for %s and %s", a.Line, DoCreateRoom, DoInvite)
		}
		if a.Do != DoSend && (a.Count != 0 || a.Every != 0 || a.Text != "") {
			return fmt.Errorf("line %d: count, every and text are for %s", a.Line, DoSend)
		}
	}
	for _, a := range s.Actions {
		if !rooms[a.Room] {
			return fmt.Errorf("line %d: room %q is never created", a.Line, a.Room)
		}
	}
	return nil
}

func validLocalpart(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._=-", r)) {
			return false
		}
	}
	return true
}

// yamlMarshal writes a scenario back as YAML.
func yamlMarshal(s *Scenario) ([]byte, error) { return yaml.Marshal(s) }
