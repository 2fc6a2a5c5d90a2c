#!/bin/sh
# Builds prometheus/compliance's remote write receiver suite (Apache-2.0; the Go test files of
# github.com/prometheus/compliance/remotewrite/receiver) into a test binary,
# <repo>/bin/tools/rwcompliance-<version>/receiver.test, and prints that path. Does nothing but
# print it when that binary is already there. Needs only Go and the module proxy; nothing of the
# suite is kept in this repository.
#
#   testbed/scripts/install-rwcompliance.sh [version]
#
# The module's go.mod names another path (github.com/prometheus/complicance/remotewrite2), so it
# cannot be a dependency of ours: it is downloaded, copied and compiled with its own go.mod and
# go.sum, as its README runs it (`go test` in its directory).
set -eu

version=${1:-v0.0.0-20260806071727-67b8327a2e93}
module=github.com/prometheus/compliance/remotewrite/receiver
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/testbed/scripts/modcopy.sh"
dir="$root/bin/tools/rwcompliance-$version"
bin="$dir/receiver.test"

if [ -x "$bin" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$module@$version" ]; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
echo "building the remote write receiver suite $module@$version into $dir" >&2
module_copy "$module" "$version"
mkdir -p "$dir"
(cd "$work" && GOFLAGS=-mod=mod GOWORK=off go test -c -o "$bin" .)
echo "$module@$version" > "$dir/VERSION"
echo "installed $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
