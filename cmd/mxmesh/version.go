package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at link time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

func init() {
	register(command{name: "version", summary: "print the version", run: runVersion})
}

func runVersion(_ []string, _ io.Reader, stdout, _ io.Writer) int {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	fmt.Fprintf(stdout, "mxmesh %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
