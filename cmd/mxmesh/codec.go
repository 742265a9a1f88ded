package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/mxmesh/mxmesh/codec"
	"github.com/mxmesh/mxmesh/homeserver/event"
)

func init() {
	register(command{name: "codec", summary: "JSON ⇄ compact CBOR on stdin/stdout; sizes (encode|decode|stats)", run: runCodec})
}

const codecUsage = `usage:
  mxmesh codec encode [--kind auto|pdu|txn|sync|client] [--table plain|msc3079|mesh1] [--dict N] [--bare]
        JSON on stdin → CBOR on stdout: a frame (header byte + body, compressed
        with dictionary N when smaller) or, with --bare, the CBOR alone
  mxmesh codec decode [--table plain|msc3079|mesh1] [--bare]
        CBOR on stdin → canonical JSON on stdout
  mxmesh codec stats FILE.json...
        sizes of each file as JSON, CBOR, +keys, +binary, +dictionary
`

func runCodec(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, codecUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "encode":
		err = codecEncode(args[1:], stdin, stdout, stderr)
	case "decode":
		err = codecDecode(args[1:], stdin, stdout)
	case "stats":
		err = codecStats(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, codecUsage)
		return 0
	default:
		err = usageError(fmt.Sprintf("unknown subcommand %q", args[0]))
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mxmesh codec: %v\n%s", err, codecUsage)
		return 2
	default:
		fmt.Fprintf(stderr, "mxmesh codec: %v\n", err)
		return 1
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func parseTable(s string) (codec.Table, error) {
	for _, t := range []codec.Table{codec.TablePlain, codec.TableMSC3079, codec.TableMesh1} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, usageError(fmt.Sprintf("unknown table %q (plain, msc3079, mesh1)", s))
}

func newCodecFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mxmesh codec "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func codecEncode(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newCodecFlags("encode")
	kind := fs.String("kind", "auto", "")
	tableName := fs.String("table", codec.TableLatest.String(), "")
	dict := fs.Int("dict", codec.DictLatest, "")
	bare := fs.Bool("bare", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return usageError(fmt.Sprint("encode: bad arguments: ", err, fs.Args()))
	}
	table, err := parseTable(*tableName)
	if err != nil {
		return err
	}
	in, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("encode: read stdin: %w", err)
	}
	k, err := checkKind(in, *kind)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var out []byte
	var info codec.Info
	if *bare {
		out, info, err = codec.Encode(nil, in, table)
	} else {
		out, info, err = codec.EncodeFrame(nil, in, codec.FrameOptions{Table: table, Dict: *dict})
	}
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if info.Canonicalised {
		fmt.Fprintln(stderr, "mxmesh codec: note: input was not canonical JSON; encoded its canonical form")
	}
	fmt.Fprintf(stderr, "mxmesh codec: %s: %d B JSON → %d B\n", k, len(in), len(out))
	_, err = stdout.Write(out)
	return err
}

func codecDecode(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newCodecFlags("decode")
	tableName := fs.String("table", codec.TableLatest.String(), "")
	bare := fs.Bool("bare", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return usageError(fmt.Sprint("decode: bad arguments: ", err, fs.Args()))
	}
	table, err := parseTable(*tableName)
	if err != nil {
		return err
	}
	in, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("decode: read stdin: %w", err)
	}
	var out []byte
	if *bare {
		out, err = codec.Decode(nil, in, table)
	} else {
		out, _, err = codec.DecodeFrame(nil, in, table)
	}
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	_, err = stdout.Write(append(out, '\n'))
	return err
}

// checkKind classifies a JSON document (auto) or checks that it has the
// shape of the kind asked for.
func checkKind(in []byte, want string) (string, error) {
	v, err := event.ParseJSON(in)
	if err != nil {
		return "", err
	}
	obj, _ := v.(map[string]any)
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				return false
			}
		}
		return obj != nil
	}
	detected := "client"
	switch {
	case has("pdus"):
		detected = "txn"
	case has("next_batch"):
		detected = "sync"
	case has("type", "sender", "prev_events", "auth_events", "hashes", "signatures"):
		detected = "pdu"
	}
	switch want {
	case "auto":
		return detected, nil
	case "pdu", "txn", "sync":
		if detected != want {
			return "", fmt.Errorf("input is not a %s (looks like %s)", want, detected)
		}
		return want, nil
	case "client":
		if obj == nil {
			return "", fmt.Errorf("a client body must be a JSON object")
		}
		return want, nil
	}
	return "", usageError(fmt.Sprintf("unknown kind %q (auto, pdu, txn, sync, client)", want))
}

func codecStats(files []string, stdout io.Writer) error {
	if len(files) == 0 {
		return usageError("stats: no files")
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "file\tkind\tJSON\tCBOR\t+keys\t+binary\t+dictionary\t")
	for _, name := range files {
		in, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		k, err := checkKind(in, "auto")
		if err != nil {
			return fmt.Errorf("stats: %s: %w", name, err)
		}
		canon, err := event.CanonicalJSON(in)
		if err != nil {
			return fmt.Errorf("stats: %s: %w", name, err)
		}
		row := []int{len(canon)}
		for _, t := range []codec.Table{codec.TablePlain, codec.TableMSC3079, codec.TableMesh1} {
			c, _, err := codec.Encode(nil, in, t)
			if err != nil {
				return fmt.Errorf("stats: %s: %w", name, err)
			}
			row = append(row, len(c))
		}
		fr, _, err := codec.EncodeFrame(nil, in, codec.FrameOptions{Table: codec.TableMesh1, Dict: codec.DictLatest})
		if err != nil {
			return fmt.Errorf("stats: %s: %w", name, err)
		}
		row = append(row, len(fr))
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s\t%s", name, k)
		for _, n := range row {
			fmt.Fprintf(&b, "\t%d", n)
		}
		fmt.Fprintln(tw, b.String()+"\t")
	}
	return tw.Flush()
}
