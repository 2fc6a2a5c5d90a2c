# Sourced by the install scripts that build a tool from its module's source rather than with
# `go install` (its go.mod names another path, or its module zip lacks generated files).
#
#   module_copy <module> <version>
#
# downloads the module through the module proxy and leaves a writable copy of it in $work, a
# temporary directory removed when the script exits. Build it with its own go.mod and go.sum:
# (cd "$work" && GOFLAGS=-mod=mod GOWORK=off go build ...).
module_copy() {
	_src=$(cd "$root" && GOFLAGS=-mod=mod go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$_src" ] || { echo "go mod download gave no directory for $1@$2" >&2; exit 1; }
	work=$(mktemp -d)
	trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
	cp -R "$_src/." "$work/"
	chmod -R u+w "$work"
}
