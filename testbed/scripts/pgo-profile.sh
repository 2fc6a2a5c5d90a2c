#!/usr/bin/env bash
# Collects default.pgo, the CPU profile `make build` compiles the binary with (Go's
# profile-guided optimisation: https://go.dev/doc/pgo), from the built binary under the
# workloads `make bench-server` measures:
#   - remote write 1.0 ingestion: 100,000 series, the known-series phase (20 s profile);
#   - a day of 2,000 series at 15 s loaded at once: cuts, merges, checkpoints (10 s);
#   - the benchmark's range queries over that day, step 60 s, repeated (10 s).
# The three profiles are merged into one. Run it after a change that moves the hot paths, then
# `make build` and compare with `make bench-server`; commit default.pgo with the figures.
#
# Usage: testbed/scripts/pgo-profile.sh [output] (default: default.pgo at the repository root).
# Uses ports 29000-29005 on 127.0.0.1 and a temporary directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/default.pgo}
binary=${METRICSTOR_BINARY:-$root/bin/otelcol-metricstor}
[ -x "$binary" ] || { echo "no binary at $binary: run make build first" >&2; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/loadgen" ./testbed/loadgen/cmd/loadgen)

cat > "$work/config.yaml" <<EOF
receivers:
  remote_write:
    endpoint: 127.0.0.1:29000
exporters:
  metricstor:
    storage: metricstor
    sending_queue:
      enabled: false
extensions:
  pprof:
    endpoint: 127.0.0.1:29001
  metricstor:
    directory: $work/data
  promql:
    endpoint: 127.0.0.1:29002
    storage: metricstor
service:
  extensions: [pprof, metricstor, promql]
  pipelines:
    metrics:
      receivers: [remote_write]
      exporters: [metricstor]
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
EOF

start() {
	rm -rf "$work/data"
	"$binary" --config "$work/config.yaml" > "$work/server.log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do
		curl -sf http://127.0.0.1:29002/-/ready > /dev/null && return
		sleep 0.1
	done
	echo "the binary did not become ready:" >&2
	cat "$work/server.log" >&2
	exit 1
}
stop() {
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
}
profile() { # seconds file
	curl -sf -o "$2" "http://127.0.0.1:29001/debug/pprof/profile?seconds=$1"
}
load() { # series samples
	"$work/loadgen" -url http://127.0.0.1:29000/api/v1/write -series "$1" -samples "$2" -senders 4 -batch 2000 > /dev/null
}

echo "1/3 ingestion, 100,000 series"
start
load 100000 400 &
lg=$!
sleep 10
profile 20 "$work/steady.pprof"
wait $lg
stop

echo "2/3 a day of 2,000 series"
start
load 2000 5760 &
lg=$!
sleep 2
profile 10 "$work/day.pprof"
wait $lg

echo "3/3 range queries over the day"
end=$(date +%s)
queries=(
	'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))'
	'avg by (mode) (irate(node_cpu_seconds_total[5m]))'
	'sum by (device) (rate(node_network_receive_bytes_total[5m]))'
	'topk(5, rate(node_disk_written_bytes_total[5m]))'
	'avg_over_time(node_hwmon_temp_celsius[10m])'
	'max_over_time(node_filesystem_avail_bytes{mountpoint="/"}[1h])'
	'1 - node_filesystem_avail_bytes / node_filesystem_size_bytes'
	'quantile(0.9, rate(node_disk_reads_completed_total[5m]))'
	'increase(node_network_transmit_packets_total[1h])'
	'count({job="loadgen"})'
	'deriv(node_thermal_zone_temp[15m])'
)
profile 10 "$work/queries.pprof" &
prof=$!
while kill -0 $prof 2>/dev/null; do
	for q in "${queries[@]}"; do
		curl -sf -o /dev/null --data-urlencode "query=$q" -d start=$((end - 86400)) -d end="$end" -d step=60 \
			http://127.0.0.1:29002/api/v1/query_range
	done
done
wait $prof
stop

go tool pprof -proto "$work/steady.pprof" "$work/day.pprof" "$work/queries.pprof" > "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"
