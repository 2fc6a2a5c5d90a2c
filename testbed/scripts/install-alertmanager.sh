#!/bin/sh
# Installs the Alertmanager of the rules end-to-end test (testbed/e2e TestRules*) into
# <repo>/bin/tools/alertmanager-<version>/alertmanager, and prints that path. Does nothing but print
# it when that binary is already there. Needs only Go and the module proxy.
#
#   testbed/scripts/install-alertmanager.sh [version]     (default v0.35.0)
#
# `go install github.com/prometheus/alertmanager/cmd/alertmanager@v0.35.0` does not build: the
# module zip lacks the web UI's built assets that ui/web.go embeds (`pattern app/dist: no matching
# files found`; they are made by npm in Alertmanager's release process). So this script downloads
# the module with `go mod download`, copies it, puts a placeholder page where the UI would be
# (the API, which is all the tests use, is unaffected) and builds cmd/alertmanager from the copy
# with the module's own go.mod and go.sum.
set -eu

version=${1:-v0.35.0}
module=github.com/prometheus/alertmanager
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/testbed/scripts/modcopy.sh"
dir="$root/bin/tools/alertmanager-$version"
bin="$dir/alertmanager"

if [ -x "$bin" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$module@$version" ]; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
echo "building $module/cmd/alertmanager@$version into $dir (a few minutes when nothing is cached)" >&2
module_copy "$module" "$version"
for ui in elm mantine; do
	mkdir -p "$work/ui/app/dist/$ui"
	echo "<html><body>Alertmanager $version built without its web UI (testbed/scripts/install-alertmanager.sh).</body></html>" > "$work/ui/app/dist/$ui/index.html"
done
mkdir -p "$dir"
(cd "$work" && GOFLAGS=-mod=mod GOWORK=off go build -o "$bin" ./cmd/alertmanager)
echo "$module@$version" > "$dir/VERSION"
echo "installed $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
