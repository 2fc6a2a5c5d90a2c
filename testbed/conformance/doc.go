// Package conformance compares the PromQL answers of Metricstor with those of a reference
// Prometheus fed the same data, on the PromQL compliance query set of prometheus/compliance
// (testdata/promql-test-queries.yml, expanded with variant-args.yml: the project's own copy, see
// testdata/README.md for its source, changes and license).
//
// TestConformance (run by `make conformance`) starts three demo targets (package demotarget), a
// reference Prometheus that scrapes them and remote-writes everything to two systems under test,
// one with remote write 1.0 and one with 2.0: two processes of the otelcol-metricstor binary, or,
// to validate the harness itself, two more Prometheus servers with their remote write receivers
// (CONFORMANCE_SUT=prometheus). It then runs every query as a range query against the reference
// and both systems and compares the answers, before and after the systems are restarted, and
// checks on the wire (WireRecorder) that each system received the protocol meant for it. The library part of the package (loading and expanding the
// query set, comparing answers, running Prometheus) is usable on its own.
package conformance // import "github.com/metricstor/metricstor/testbed/conformance"
