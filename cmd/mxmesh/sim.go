package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mxmesh/mxmesh/sim"
)

func init() {
	register(command{name: "sim", summary: "run a deterministic mesh simulation (sim run FILE)", run: runSim})
}

const simUsage = `usage:
  mxmesh sim run FILE [--seed N] [--json] [--svg OUT.svg] [--sync observe|poll]
        run the scenario in FILE (YAML) in virtual time and print a summary;
        --seed overrides the scenario's seed, --json prints the summary as
        one JSON object, --svg writes a timeline picture of the links,
        --sync sets how every client follows /sync
`

func runSim(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, simUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] != "run" {
		fmt.Fprintf(stderr, "mxmesh sim: unknown subcommand %q\n%s", args[0], simUsage)
		return 2
	}
	err := simRun(args[1:], stdout)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mxmesh sim: %v\n%s", err, simUsage)
		return 2
	default:
		fmt.Fprintf(stderr, "mxmesh sim: %v\n", err)
		return 1
	}
}

func simRun(args []string, stdout io.Writer) error {
	fset := flag.NewFlagSet("sim run", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	seed := fset.Uint64("seed", 0, "random seed (overrides the scenario's)")
	asJSON := fset.Bool("json", false, "print the summary as JSON")
	svg := fset.String("svg", "", "write a timeline picture to this file")
	syncMode := fset.String("sync", "", "how every client follows /sync: observe or poll")
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		return usageError(err.Error())
	}
	if len(pos) != 1 {
		return usageError("want exactly one scenario file")
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("read scenario: %w", err)
	}
	sc, err := sim.ParseScenario(data)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	res, err := sim.Run(sc, sim.Options{Seed: *seed, Sync: *syncMode})
	if err != nil {
		return err
	}
	if *svg != "" {
		f, err := os.Create(*svg)
		if err != nil {
			return fmt.Errorf("write picture: %w", err)
		}
		werr := res.WriteSVG(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("write picture: %w", werr)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteText(stdout)
}
