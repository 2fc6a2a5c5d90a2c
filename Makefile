# Metricstor build, run and test entry points. Everything needed is installed by this file
# (only Go and the module proxy are assumed), into ./bin (git-ignored).

GO          ?= go
OCB_VERSION := v0.165.0
# The builder is installed per version, so bumping OCB_VERSION installs the new one.
OCB_DIR     := $(CURDIR)/bin/tools/ocb-$(OCB_VERSION)
OCB         := $(OCB_DIR)/builder
DIST_DIR    := $(CURDIR)/build
BINARY      := $(CURDIR)/bin/otelcol-metricstor
E2E_TIMEOUT ?= 15m
# The reference Prometheus of the conformance run (module v0.316.0 is Prometheus 3.16).
PROMETHEUS_VERSION  := v0.316.0
PROMETHEUS          := $(CURDIR)/bin/tools/prometheus-$(PROMETHEUS_VERSION)/prometheus
CONFORMANCE_TIMEOUT ?= 30m
# The Alertmanager of the rules end-to-end test (TestRulesMatchPrometheus).
ALERTMANAGER_VERSION := v0.35.0
# The peer of the server benchmark, installed with go install from the module proxy.
VICTORIAMETRICS_VERSION := v1.151.0
VICTORIAMETRICS         := $(CURDIR)/bin/tools/victoriametrics-$(VICTORIAMETRICS_VERSION)/victoria-metrics
CONFORMANCE_OUT     ?= $(CURDIR)/bin/conformance

# Modules whose version in the generated distribution must equal the root go.mod's.
PINNED_MODULES := github.com/prometheus/prometheus \
                  go.opentelemetry.io/collector/component \
                  go.opentelemetry.io/collector/pdata \
                  go.opentelemetry.io/collector/exporter/exporterhelper \
                  go.opentelemetry.io/collector/extension/extensioncapabilities

.PHONY: all build run test unit e2e conformance prometheus alertmanager rwcompliance victoriametrics bench soak vet fmt-check check-versions clean fuzz ui ui-check ui-test node chromium

all: build

$(OCB):
	GOBIN=$(OCB_DIR) $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

# ocb generates ./build (sources, go.mod, binary) from builder-config.yaml and compiles it;
# the binary is then copied to ./bin. Go's build cache makes a rebuild with few changes quick.
# The binary is compiled with profile-guided optimisation: go build takes default.pgo from the
# main package's directory (testbed/scripts/pgo-profile.sh collects it; BENCHMARKS.md).
build: $(OCB)
	mkdir -p $(DIST_DIR) && cp default.pgo $(DIST_DIR)/default.pgo
	$(OCB) --config=builder-config.yaml
	$(MAKE) --no-print-directory check-versions
	mkdir -p $(dir $(BINARY))
	# Copied, then renamed: a binary that is running cannot be overwritten in place.
	cp $(DIST_DIR)/otelcol-metricstor $(BINARY).tmp && mv -f $(BINARY).tmp $(BINARY)
	@echo "built $(BINARY)"

# Fails when the generated go.mod resolved a different version of a pinned module than ours.
check-versions:
	@for m in $(PINNED_MODULES); do \
		root=$$($(GO) list -m -f '{{.Version}}' $$m) || exit 1; \
		dist=$$(cd $(DIST_DIR) && $(GO) list -m -f '{{.Version}}' $$m) || exit 1; \
		if [ "$$root" != "$$dist" ]; then \
			echo "version mismatch for $$m: root go.mod has $$root, build/go.mod has $$dist" >&2; exit 1; \
		fi; \
	done

run: build
	$(BINARY) --config=config.yaml

# The bundle check first (the committed query page must be what its sources build), then unit
# tests of every package except the end-to-end tests, then the end-to-end tests (the browser test
# of the query page among them). The conformance run comes last: its last line is the score,
# `N passed, M failed`.
test: ui-check build unit e2e conformance

unit:
	$(GO) test -race $$($(GO) list ./... | grep -v '/testbed/')

# End-to-end tests against the built binary. The minutes-long conformance run is
# `make conformance`, the server benchmark `make bench-server`. TestRulesMatchPrometheus runs the
# reference Prometheus and an Alertmanager beside the binary; TestForwardRemoteWrite forwards to
# the reference Prometheus and to VictoriaMetrics.
e2e: build prometheus alertmanager rwcompliance victoriametrics chromium
	METRICSTOR_BINARY=$(BINARY) $(GO) test -count=1 -timeout=$(E2E_TIMEOUT) -skip '^(TestConformance|TestServerBench|TestSoak)$$' ./testbed/...

# The query page of the promql extension: queryext/ui/src bundled by esbuild into queryext/ui/dist,
# which is committed and embedded in the binary (so a build needs only Go). npm ci installs the
# exact versions of package-lock.json; the build is deterministic (no timestamps, no hashes).
UI_DIR := queryext/ui
ui: node
	cd $(UI_DIR) && npm ci --no-audit --no-fund --loglevel=error && node build.mjs
	@cd $(UI_DIR) && echo "bundle: $$(wc -c < dist/assets/app.js) bytes app.js ($$(gzip -9c dist/assets/app.js | wc -c) gzipped), $$(wc -c < dist/assets/app.css) bytes app.css"

# Rebuilds the bundle and fails when it differs from the committed one (or adds files).
ui-check: ui
	@git diff --exit-code --stat -- $(UI_DIR)/dist || { echo "queryext/ui/dist differs from its sources: run make ui and commit it" >&2; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- $(UI_DIR)/dist); \
	if [ -n "$$untracked" ]; then echo "queryext/ui/dist has files not committed: $$untracked" >&2; exit 1; fi

# The browser test of the query page alone (it also runs in `make e2e`).
UI_TEST_TIMEOUT ?= 10m
ui-test: build chromium
	METRICSTOR_BINARY=$(BINARY) $(GO) test -count=1 -v -timeout=$(UI_TEST_TIMEOUT) -run '^TestQueryPage$$' ./testbed/ui/

# Node.js and npm for `make ui` (Debian's packages, when missing).
node:
	@testbed/scripts/install-node.sh >/dev/null

# Chromium for the browser test (Debian's package, when missing).
chromium:
	@testbed/scripts/install-chromium.sh >/dev/null

# Coverage-guided fuzzing, FUZZTIME per target (default 20s), one target at a time (go test -fuzz
# takes one target per run) with one worker to spare the machine (about 4 minutes in all). Not part of `make test`; the seed
# corpora (f.Add and testdata/fuzz/<Target>) already run as ordinary tests in `make unit`. A failing
# input is written to testdata/fuzz/<Target>/ of its package: fix the bug and commit the input.
FUZZTIME    ?= 20s
# Minimizing each new interesting input may otherwise take the whole FUZZTIME (default 60s) on the
# targets whose inputs are large and slow (the exporter's, which commit to a store).
FUZZMINIMIZETIME ?= 2s
FUZZ_TARGETS := ./receiver:FuzzDecodeRequest ./receiver:FuzzDecodeSnappy ./receiver:FuzzDecodeV1 ./receiver:FuzzDecodeV2 \
                ./exporter:FuzzPushProto ./exporter:FuzzPushHostile ./queryext:FuzzHTTPAPI ./queryext:FuzzFederate
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) -parallel 1 $$pkg; \
	done

# Benchmarks measure, never assert: each runs Metricstor and Prometheus's own TSDB on the same
# workload in the same run, so compare the ratio. Results and the command go in BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench 'BenchmarkAppend' -benchtime 1000000x -count 3 ./storage/internal/tsdb/
	$(GO) test -run '^$$' -bench 'BenchmarkDiskAndQuery' -benchtime 10x -count 3 ./storage/internal/tsdb/
	# Without cgo, as ocb builds the binary: Pebble then allocates its memtables and block cache in
	# the Go heap, which the benchmark measures (with cgo they are C memory it would not see).
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench 'BenchmarkHeadMemory' -benchtime 1x -count 2 ./storage/internal/tsdb/
	$(GO) test -run '^$$' -bench 'BenchmarkChunkEncode|BenchmarkStreamChunk|BenchmarkSampleLog|BenchmarkCheckpoint|BenchmarkSelect' -benchtime 50x ./storage/internal/tsdb/
	$(GO) test -run '^$$' -bench 'BenchmarkDayDecode' -count 3 ./storage/internal/tsdb/
	$(GO) test -run '^$$' -bench . -benchmem ./exporter/
	$(GO) test -run '^$$' -bench 'BenchmarkDecodeV1|BenchmarkDecodeV2|BenchmarkConvertV1|BenchmarkConvertV2' -benchmem ./receiver/
	$(GO) test -run '^$$' -bench 'BenchmarkRemoteWriteIngest' -benchtime 400000x -count 3 ./receiver/
	$(GO) test -run '^$$' -bench 'BenchmarkRegression|BenchmarkEncodeMatrix' -count 3 ./queryext/
	$(GO) test -run '^$$' -bench 'BenchmarkRangeQueries' -benchtime 2x -timeout 30m ./queryext/

# Server-level benchmark of DESIGN.md's goal table (not part of `make test`): Prometheus,
# VictoriaMetrics and Metricstor, one after the other, each as a process on loopback. Ingestion:
# testbed/loadgen's remote write 1.0 load (100k series x 100 samples; CPU per sample from /proc, request
# latency p50/p99, VmHWM, disk after a clean stop). The day: 2,000 series x 24 h loaded oldest
# first, each store's own compaction, disk per sample, restart time, 11 range queries (median
# latency, answers compared with Prometheus's). Every count is checked exact. One table, with the
# ratios Metricstor / peer, printed and written to SERVERBENCH_OUT. SERVERBENCH_SYSTEMS,
# SERVERBENCH_SERIES / _SAMPLES / _SENDERS, SERVERBENCH_INGEST_RUNS (3: the ingestion figures are
# medians), SERVERBENCH_DAY_SERIES / _DAY_HOURS and SERVERBENCH_QUERY_RUNS override (see
# testbed/README.md).
SERVERBENCH_OUT ?= $(CURDIR)/bin/serverbench.txt
SERVERBENCH_TIMEOUT ?= 40m
.PHONY: bench-server
bench-server: build prometheus victoriametrics
	METRICSTOR_SERVERBENCH=1 METRICSTOR_BINARY=$(BINARY) PROMETHEUS_BINARY=$(PROMETHEUS) \
		VICTORIAMETRICS_BINARY=$(VICTORIAMETRICS) SERVERBENCH_OUT=$(SERVERBENCH_OUT) \
		$(GO) test -count=1 -v -timeout=$(SERVERBENCH_TIMEOUT) -run '^TestServerBench$$' ./testbed/serverbench/

# Bounded soak of the binary (not part of `make test`): remote write, OTLP and PromQL queries at
# once for SOAK_DURATION, with an event every SOAK_EVENT_EVERY in turn: a graceful restart, a
# kill -9, a full disk (the data directory on a tmpfs filled by a ballast file; needs root to
# mount it, else left out with the reason printed; SOAK_DISKFULL=0 leaves it out). Ends with every
# acknowledged sample counted back and the binary's RSS, goroutines and open files compared between
# the middle and the last third; the summary table is printed and written to SOAK_OUT. Settings
# in testbed/README.md.
SOAK_DURATION ?= 5m
SOAK_OUT      ?= $(CURDIR)/bin/soak.txt
# The go test timeout: SOAK_DURATION plus the final count back, with room.
SOAK_TIMEOUT  ?= 60m
soak: build
	METRICSTOR_SOAK=1 METRICSTOR_BINARY=$(BINARY) SOAK_DURATION=$(SOAK_DURATION) SOAK_OUT=$(SOAK_OUT) \
		$(GO) test -count=1 -v -timeout=$(SOAK_TIMEOUT) -run '^TestSoak$$' ./testbed/soak/

# Installs the reference Prometheus (skipped when that version is already there).
prometheus:
	@testbed/scripts/install-prometheus.sh $(PROMETHEUS_VERSION) >/dev/null

# Builds the Alertmanager of the rules end-to-end test (skipped when that version is already there).
alertmanager:
	@testbed/scripts/install-alertmanager.sh $(ALERTMANAGER_VERSION) >/dev/null

# Builds prometheus/compliance's remote write receiver suite that TestRemoteWriteCompliance runs
# (skipped when that version is already there).
rwcompliance:
	@testbed/scripts/install-rwcompliance.sh >/dev/null

# Installs the VictoriaMetrics single-node server of the server benchmark (skipped when there).
victoriametrics:
	@testbed/scripts/install-victoriametrics.sh $(VICTORIAMETRICS_VERSION) >/dev/null

# PromQL conformance against the reference Prometheus on the compliance query set (see
# testbed/conformance; the set is kept in testbed/conformance/testdata), over remote write 1.0
# and 2.0 in one run. Takes about 4 minutes; report in $(CONFORMANCE_OUT)/report.txt. The last
# line printed is the score, `N passed, M failed`.
conformance: build prometheus
	@mkdir -p $(CONFORMANCE_OUT) && rm -f $(CONFORMANCE_OUT)/score
	@METRICSTOR_CONFORMANCE=1 METRICSTOR_BINARY=$(BINARY) PROMETHEUS_BINARY=$(PROMETHEUS) \
		CONFORMANCE_OUT=$(CONFORMANCE_OUT) $(GO) test -count=1 -v -timeout=$(CONFORMANCE_TIMEOUT) \
		-run '^TestConformance$$' ./testbed/conformance/; \
	rc=$$?; \
	if [ -s $(CONFORMANCE_OUT)/score ]; then cat $(CONFORMANCE_OUT)/score; \
	else echo "conformance: no score, the run did not finish (go test exit code $$rc)"; fi; \
	exit $$rc

# stdmethods is off: Prometheus's chunkenc.Iterator has a Seek(int64) that our iterators
# must implement, which vet mistakes for io.Seeker.
vet: fmt-check
	$(GO) vet -stdmethods=false ./...

fmt-check:
	@out=$$(find . -name '*.go' -not -path './build/*' -not -path './bin/*' | xargs gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed:" >&2; echo "$$out" >&2; exit 1; fi

clean:
	rm -rf $(DIST_DIR) $(BINARY)
