package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runSimT(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"sim"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestSimRunJSONAndPicture runs the package's small scenario: --json gives
// a summary object whose trace hash repeats with the seed, --svg writes a
// picture, and the text summary names the same hash.
func TestSimRunJSONAndPicture(t *testing.T) {
	scenario := filepath.Join("..", "..", "sim", "testdata", "small.yaml")
	svg := filepath.Join(t.TempDir(), "run.svg")
	code, out, stderr := runSimT(t, "run", scenario, "--seed", "5", "--json", "--svg", svg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Seed          uint64  `json:"seed"`
		TraceHash     string  `json:"trace_sha256"`
		Messages      int     `json:"messages"`
		DeliveryRatio float64 `json:"delivery_ratio"`
		Links         []struct {
			SentBytes int `json:"sent_bytes"`
		} `json:"links"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if res.Seed != 5 || len(res.TraceHash) != 64 || res.Messages != 6 || len(res.Links) != 6 || res.Links[0].SentBytes == 0 {
		t.Fatalf("summary %+v", res)
	}
	pic, err := os.ReadFile(svg)
	if err != nil || !bytes.HasPrefix(pic, []byte("<svg")) {
		t.Fatalf("picture: %v %.40q", err, pic)
	}
	code, text, stderr := runSimT(t, "run", "--seed", "5", scenario)
	if code != 0 || !strings.Contains(text, "sha256 "+res.TraceHash) {
		t.Fatalf("exit %d, text summary without trace %s:\n%s%s", code, res.TraceHash, text, stderr)
	}
}

func TestSimRunErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("duration: 1m\nservers:\n  - name: a.test\n    colour: red\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, ""},
		{[]string{"walk"}, 2, `unknown subcommand "walk"`},
		{[]string{"run"}, 2, "exactly one scenario file"},
		{[]string{"run", bad, "--seed", "x"}, 2, "invalid value"},
		{[]string{"run", bad}, 1, `line 4: unknown field "colour"`},
		{[]string{"run", filepath.Join(t.TempDir(), "missing.yaml")}, 1, "read scenario"},
	} {
		code, _, stderr := runSimT(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("sim %v: exit %d, %q; want %d, %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}
