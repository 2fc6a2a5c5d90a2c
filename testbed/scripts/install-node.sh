#!/bin/sh
# Installs Node.js and npm from Debian's packages for `make ui` (the query page's bundle), and
# prints the path of node. Does nothing but print it when node and npm are already on PATH.
#
#   testbed/scripts/install-node.sh
set -eu

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "installing nodejs and npm with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-cache show nodejs >/dev/null 2>&1; then
		apt-get update -q >&2
	fi
	apt-get install -y -q --no-install-recommends nodejs npm >&2
fi
command -v node
