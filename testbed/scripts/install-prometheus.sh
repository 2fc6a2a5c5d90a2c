#!/bin/sh
# Installs the reference Prometheus of the conformance tests with `go install`, into
# <repo>/bin/tools/prometheus-<version>/prometheus, and prints that path. Does nothing but print
# it when a binary of that module version is already there. Needs only Go and the module proxy.
#
#   testbed/scripts/install-prometheus.sh [version]     (default v0.316.0, i.e. Prometheus 3.16)
set -eu

version=${1:-v0.316.0}
module=github.com/prometheus/prometheus
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/bin/tools/prometheus-$version"
bin="$dir/prometheus"

# remove_all_sd leaves out Prometheus's cloud service discoveries (Kubernetes, AWS, Azure, GCE, ...;
# static, file and HTTP discovery stay): the tests use none of them, and compiling their SDKs was
# most of a cold install (565 s of a CI run on 2 cores).
tags=remove_all_sd

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*$module[[:space:]]*$version[[:space:]]" &&
	go version -m "$bin" | grep -q "^[[:space:]]*build[[:space:]]*-tags=$tags\$"; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
echo "installing $module/cmd/prometheus@$version into $dir (a few minutes when nothing is cached)" >&2
GOBIN="$dir" go install -tags "$tags" "$module/cmd/prometheus@$version"
echo "installed $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
