package sim

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt with the trace hashes of this build")

func loadScenario(t testing.TB, path string) *Scenario {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseScenario(b)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func runScenario(t testing.TB, sc *Scenario, seed uint64) *Result {
	t.Helper()
	r, err := Run(sc, Options{Seed: seed, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// goldenScenarios are the scenarios whose trace hashes testdata/golden.txt
// pins: the small test scenario and the shipped examples.
func goldenScenarios(t *testing.T) []string {
	ex, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join("testdata", "small.yaml")}, ex...)
}

// TestGoldenTraceHashes: every scenario, run with its own seed, produces
// the transcript recorded in testdata/golden.txt, byte for byte. A change
// in any layer that alters a datagram changes the hash: rerun with
// -update and say why in the commit.
func TestGoldenTraceHashes(t *testing.T) {
	golden := filepath.Join("testdata", "golden.txt")
	want := map[string]string{}
	if f, err := os.Open(golden); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, hash, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
				want[name] = hash
			}
		}
		f.Close()
	} else if !*update {
		t.Fatal(err)
	}
	var out strings.Builder
	out.WriteString("# scenario trace-sha256 (go test ./sim -run TestGoldenTraceHashes -update)\n")
	for _, path := range goldenScenarios(t) {
		name := filepath.Base(path)
		r := runScenario(t, loadScenario(t, path), 0)
		fmt.Fprintf(&out, "%s %s\n", name, r.TraceHash)
		if !*update && want[name] != r.TraceHash {
			t.Errorf("%s: trace %s, golden %s", name, r.TraceHash, want[name])
		}
		if r.Delivered == 0 || r.TotalBytes == 0 {
			t.Errorf("%s: nothing delivered (%d B on the air)", name, r.TotalBytes)
		}
	}
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSameSeedSameRun: two runs with one seed agree on everything; another
// seed gives another transcript.
func TestSameSeedSameRun(t *testing.T) {
	sc := loadScenario(t, filepath.Join("testdata", "small.yaml"))
	r1, r2 := runScenario(t, sc, 3), runScenario(t, sc, 3)
	j1, _ := json.Marshal(r1)
	j2, _ := json.Marshal(r2)
	if string(j1) != string(j2) {
		t.Fatalf("same seed, different results:\n%s\n%s", j1, j2)
	}
	if r3 := runScenario(t, sc, 4); r3.TraceHash == r1.TraceHash {
		t.Fatalf("seeds 3 and 4 gave the same trace %s", r1.TraceHash)
	}
}

// TestSmallScenarioAccounting checks the summary against the link
// counters and the scenario: every message reaches the other member, and
// bytes add up.
func TestSmallScenarioAccounting(t *testing.T) {
	r := runScenario(t, loadScenario(t, filepath.Join("testdata", "small.yaml")), 0)
	if r.Messages != 6 || r.Expected != 6 || r.Delivered != 6 || r.DeliveryRatio != 1 {
		t.Fatalf("messages %d, deliveries %d/%d; failures %q, undelivered %q", r.Messages, r.Delivered, r.Expected, r.Failures, r.Undelivered)
	}
	if len(r.Paths) != 2 || r.Paths[0].Path != "a.test → b.test" || r.Paths[0].Delivered != 3 {
		t.Fatalf("paths %+v", r.Paths)
	}
	sum := 0
	for _, l := range r.Links {
		sum += l.SentBytes
		if l.Delivered > l.Sent+l.Duplicated || l.Sent > l.Offered || l.Lost+l.LostDown > l.Sent {
			t.Errorf("%s → %s: inconsistent %+v", l.From, l.To, l.LinkStats)
		}
		if l.Sent > 0 && l.Utilisation <= 0 {
			t.Errorf("%s → %s: %d datagrams but no airtime", l.From, l.To, l.Sent)
		}
	}
	if sum != r.TotalBytes || r.BytesPerDelivered != float64(sum)/6 {
		t.Fatalf("total %d B, links %d B, per delivery %v", r.TotalBytes, sum, r.BytesPerDelivered)
	}
	if !(r.Latency.P50 > 0 && r.Latency.P50 <= r.Latency.P95 && r.Latency.P95 <= r.Latency.Max) {
		t.Fatalf("latency %+v", r.Latency)
	}
	var text, svg strings.Builder
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "6 of 6 deliveries") {
		t.Fatalf("text summary %v:\n%s", err, text.String())
	}
	if err := r.WriteSVG(&svg); err != nil || !strings.HasPrefix(svg.String(), "<svg") || strings.Count(svg.String(), "<circle") != 6 {
		t.Fatalf("picture %v: %d dots", err, strings.Count(svg.String(), "<circle"))
	}
}

// TestTemporaryDatabasesRemoved: without Options.Dir the databases live in
// a temporary directory that is gone after the run.
func TestTemporaryDatabasesRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	sc := loadScenario(t, filepath.Join("testdata", "small.yaml"))
	if _, err := Run(sc, Options{}); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestParseScenarioErrors(t *testing.T) {
	base := "duration: 1m\nservers:\n  - name: a.test\nclients:\n  - {user: ann, server: a.test}\nlinks:\n  - {between: [ann, a.test]}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"", "empty file"},
		{"duration: 1m\n", "at least one server"},
		{"servers: []\nduration: 1m\nextra: 1\n", "line 3"},
		{"duration: soon\nservers:\n  - name: a.test\n", `line 1: bad duration "soon"`},
		{"duration: 1m\nservers:\n  - name: a.test\n    color: red\n", `line 4: unknown field "color"`},
		{"duration: 1m\nservers:\n  - name: a.test\n  - name: a.test\n", `line 4: "a.test" named twice`},
		{"duration: 1m\nservers:\n  - name: 'bad name'\n", "line 3: server"},
		{base + "  - {between: [ann, b.test], loss: 2}\n", "line 8: link to unknown node"},
		{"duration: 1m\nservers:\n  - name: a.test\nlinks:\n  - {between: [a.test, a.test]}\n", "line 5: link from"},
		{base + "  - {between: [a.test, ann], loss: 0.5}\n", "line 8: a second link"},
		{"duration: 1m\nservers:\n  - name: a.test\n  - name: b.test\nlinks:\n  - {between: [a.test, b.test], loss: 1.5}\n", "line 6: loss 1.5"},
		{"duration: 1m\nservers:\n  - name: a.test\n  - name: b.test\nlinks:\n  - {between: [a.test, b.test], duty_cycle: {period: 1s, on: 2s}}\n", "line 6: duty_cycle"},
		{base + "actions:\n  - {at: 2m, user: ann, do: send, room: r, count: 1}\n", "line 9: action at 2m0s is after the end"},
		{base + "actions:\n  - {at: 1s, user: ann, do: dance, room: r}\n", `line 9: unknown action "dance"`},
		{base + "actions:\n  - {at: 1s, user: ann, do: send, room: r, count: 2}\n", "line 9: send of 2 messages needs every"},
		{base + "actions:\n  - {at: 1s, user: ann, do: send, room: r, count: 1}\n", `line 9: room "r" is never created`},
		{base + "actions:\n  - {at: 1s, user: zed, do: join, room: r}\n", `line 9: action by unknown user "zed"`},
		{"duration: 1m\nservers:\n  - name: a.test\nclients:\n  - {user: ann, server: a.test, sync: push}\n", `line 5: user ann: sync "push"`},
		{"duration: 1m\nservers:\n  - name: a.test\n---\nduration: 2m\n", "more than one YAML document"},
	} {
		_, err := ParseScenario([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := ParseScenario([]byte(base)); err != nil {
		t.Fatalf("valid scenario refused: %v", err)
	}
}

func TestRunRefusesUnlinkedClient(t *testing.T) {
	sc, err := ParseScenario([]byte("duration: 1m\nservers:\n  - name: a.test\nclients:\n  - {user: ann, server: a.test}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(sc, Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "line 5: user ann has no link") {
		t.Fatalf("error %v", err)
	}
}

// clearLines zeroes the recorded line numbers, which a re-encoding moves,
// and makes empty lists nil, which omitempty does.
func clearLines(s *Scenario) {
	if len(s.Servers) == 0 {
		s.Servers = nil
	}
	if len(s.Clients) == 0 {
		s.Clients = nil
	}
	if len(s.Links) == 0 {
		s.Links = nil
	}
	if len(s.Actions) == 0 {
		s.Actions = nil
	}
	for i := range s.Links {
		if len(s.Links[i].Down) == 0 {
			s.Links[i].Down = nil
		}
	}
	for i := range s.Actions {
		if len(s.Actions[i].Invite) == 0 {
			s.Actions[i].Invite = nil
		}
	}
	for i := range s.Servers {
		s.Servers[i].Line = 0
	}
	for i := range s.Clients {
		s.Clients[i].Line = 0
	}
	for i := range s.Links {
		s.Links[i].Line = 0
	}
	for i := range s.Actions {
		s.Actions[i].Line = 0
	}
}

// FuzzParseScenario: parsing never panics, and a scenario that parses
// survives encoding and parsing again unchanged.
func FuzzParseScenario(f *testing.F) {
	for _, p := range []string{filepath.Join("testdata", "small.yaml"), filepath.Join("..", "examples", "line-partition.yaml")} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("duration: 1m\nservers: [{name: a.b}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data)
		if err != nil {
			return
		}
		out, err := yamlMarshal(sc)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := ParseScenario(out)
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", out, err)
		}
		clearLines(sc)
		clearLines(again)
		if !reflect.DeepEqual(sc, again) {
			t.Fatalf("round trip changed the scenario:\n%+v\n%+v", sc, again)
		}
	})
}

// BenchmarkRunSmall measures the wall time of one run of the small
// scenario (6 minutes of virtual time, two servers, two clients).
func BenchmarkRunSmall(b *testing.B) {
	sc := loadScenario(b, filepath.Join("testdata", "small.yaml"))
	for b.Loop() {
		if _, err := Run(sc, Options{Dir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
}
