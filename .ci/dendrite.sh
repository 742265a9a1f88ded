#!/usr/bin/env bash
# Installs the Dendrite federation peer used by the interop tests in
# gateway/fed_dendrite_test.go (DESIGN.md "Testing"; PEERS.md) into a cache
# directory, and prints that directory on stdout. .ci/run exports it:
#
#   MXMESH_DENDRITE_BIN=$(bash .ci/dendrite.sh)
#
# Idempotent: if the cached binaries already report the pinned version,
# nothing is built. Progress goes to stderr.
set -euo pipefail

version=v0.13.8
bin="${XDG_CACHE_HOME:-$HOME/.cache}/mxmesh-ci/bin"
mkdir -p "$bin"

if [ -x "$bin/dendrite" ] && [ -x "$bin/generate-keys" ] &&
	[ "$("$bin/dendrite" -version 2>/dev/null)" = "${version#v}" ]; then
	echo "dendrite $version already in $bin" >&2
else
	echo "installing dendrite $version into $bin (a few minutes on a cold build cache)" >&2
	# Dendrite's SQLite driver needs cgo; build it outside our module so our
	# go.mod is neither read nor changed.
	(cd "$bin" && CGO_ENABLED=1 GOBIN="$bin" GOFLAGS=-mod=mod \
		go install \
		"github.com/matrix-org/dendrite/cmd/dendrite@$version" \
		"github.com/matrix-org/dendrite/cmd/generate-keys@$version") >&2
	got=$("$bin/dendrite" -version)
	if [ "$got" != "${version#v}" ]; then
		echo "dendrite reports version $got, want ${version#v}" >&2
		exit 1
	fi
fi
echo "$bin"
