package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

func codecSamplePDU(t *testing.T) []byte {
	t.Helper()
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	e, err := event.Build(event.Proto{
		RoomID: "!room:cli.test", Sender: "@zoe:cli.test", Type: "m.room.message",
		Content:    map[string]any{"body": "hello", "msgtype": "m.text"},
		PrevEvents: []string{"$AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"},
		AuthEvents: []string{"$ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"},
		Depth:      7, OriginServerTS: 1764115200000,
	}, event.V10, "cli.test", "ed25519:k1", event.KeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return e.JSON()
}

func runCodecT(t *testing.T, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"codec"}, args...), bytes.NewReader(stdin), &out, &errb)
	return code, out.Bytes(), errb.String()
}

func TestCodecCLIRoundTrip(t *testing.T) {
	pdu := codecSamplePDU(t)
	for _, args := range [][]string{
		{},
		{"--kind", "pdu"},
		{"--bare"},
		{"--table", "msc3079", "--dict", "0"},
		{"--table", "plain", "--bare"},
	} {
		code, cb, stderr := runCodecT(t, pdu, append([]string{"encode"}, args...)...)
		if code != 0 {
			t.Fatalf("encode %v: exit %d: %s", args, code, stderr)
		}
		if len(cb) >= len(pdu) {
			t.Errorf("encode %v: %d B output for %d B JSON", args, len(cb), len(pdu))
		}
		dargs := []string{"decode"}
		for i, a := range args {
			if a == "--bare" || a == "--table" {
				dargs = append(dargs, a)
				if a == "--table" {
					dargs = append(dargs, args[i+1])
				}
			}
		}
		code, back, stderr := runCodecT(t, cb, dargs...)
		if code != 0 {
			t.Fatalf("decode %v: exit %d: %s", dargs, code, stderr)
		}
		if got := strings.TrimSuffix(string(back), "\n"); got != string(pdu) {
			t.Errorf("encode %v | decode %v = %s, want %s", args, dargs, got, pdu)
		}
	}
}

func TestCodecCLIErrors(t *testing.T) {
	pdu := codecSamplePDU(t)
	cases := []struct {
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"", nil, 2, "usage"},
		{"", []string{"frobnicate"}, 2, "unknown subcommand"},
		{`{"a":1.5}`, []string{"encode"}, 1, "unusable JSON"},
		{string(pdu), []string{"encode", "--kind", "txn"}, 1, "not a txn"},
		{"{}", []string{"encode", "--kind", "nope"}, 2, "unknown kind"},
		{"{}", []string{"encode", "--table", "v9"}, 2, "unknown table"},
		{"\x02\xa1\x19\x03\xe7\xf6", []string{"decode"}, 1, "unknown integer key"},
		{"\x22\x00", []string{"decode"}, 1, "dictionary"},
		{"", []string{"stats"}, 2, "no files"},
	}
	for _, c := range cases {
		code, _, stderr := runCodecT(t, []byte(c.stdin), c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("codec %v: exit %d, stderr %q; want exit %d containing %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

func TestCodecCLIStats(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pdu.json")
	if err := os.WriteFile(p, codecSamplePDU(t), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCodecT(t, nil, "stats", p)
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "+dictionary") || !strings.Contains(lines[1], "pdu") {
		t.Fatalf("stats output:\n%s", out)
	}
	fields := strings.Fields(lines[1])
	if len(fields) != 7 {
		t.Fatalf("stats row %q", lines[1])
	}
	// Each column must be no larger than the one before it.
	prev := 1 << 30
	for _, f := range fields[2:] {
		var n int
		for _, c := range f {
			n = n*10 + int(c-'0')
		}
		if n > prev {
			t.Errorf("stats row %q: sizes grow", lines[1])
		}
		prev = n
	}
}
