#!/bin/sh
# Installs the VictoriaMetrics single-node server of the server benchmark with `go install`, into
# <repo>/bin/tools/victoriametrics-<version>/victoria-metrics, and prints that path. Does nothing but
# print it when a binary of that module version is already there. Needs only Go and the module
# proxy (no release download).
#
#   testbed/scripts/install-victoriametrics.sh [version]     (default v1.151.0)
set -eu

version=${1:-v1.151.0}
module=github.com/VictoriaMetrics/VictoriaMetrics
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/bin/tools/victoriametrics-$version"
bin="$dir/victoria-metrics"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*$module[[:space:]]*$version[[:space:]]"; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
echo "installing $module/app/victoria-metrics@$version into $dir (a few minutes when nothing is cached)" >&2
# The module's own go.mod decides its dependencies (go install ignores ours), and
# CGO is off so that the binary needs no C toolchain, as the project's release builds do.
CGO_ENABLED=0 GOBIN="$dir" go install "$module/app/victoria-metrics@$version"
echo "installed $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
