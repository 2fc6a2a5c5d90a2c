#!/bin/sh
# Installs Chromium from Debian's packages for the query page's browser test (testbed/ui), and
# prints the path of its binary. Does nothing but print it when `chromium` is already on PATH.
# Needs root (apt-get), as CI and the development container run.
#
#   testbed/scripts/install-chromium.sh
set -eu

if ! command -v chromium >/dev/null 2>&1; then
	echo "installing chromium with apt-get (a few minutes on a fresh machine)" >&2
	export DEBIAN_FRONTEND=noninteractive
	# The package lists of a fresh container are empty; update them only when chromium is not
	# known yet.
	if ! apt-cache show chromium >/dev/null 2>&1; then
		apt-get update -q >&2
	fi
	apt-get install -y -q --no-install-recommends chromium >&2
fi
command -v chromium
