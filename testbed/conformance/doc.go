// Package conformance compares the PromQL answers of Metricstor with those of a reference
// Prometheus fed the same data, on the PromQL compliance query set
// (../shared/conformance/promql-test-queries.yml, expanded with variant-args.yml).
//
// TestConformance (run by `make conformance`) starts three demo targets (package demotarget), a
// reference Prometheus that scrapes them and remote-writes everything to the system under test,
// and the system under test: the otelcol-metricstor binary, or, to validate the harness itself,
// a second Prometheus with its remote write receiver (CONFORMANCE_SUT=prometheus). It then runs
// every query as a range query against both and compares the answers, before and after the
// system under test is restarted. The library part of the package (loading and expanding the
// query set, comparing answers, running Prometheus) is usable on its own.
package conformance // import "github.com/metricstor/metricstor/testbed/conformance"
