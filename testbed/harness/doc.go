// Package harness runs the otelcol-metricstor binary for end-to-end tests: it finds the binary,
// writes a configuration with free loopback ports and a temporary data directory, starts the
// collector as a child process, waits until its listeners answer, and stops or kills it. The
// process output is kept and printed when the test fails.
package harness // import "github.com/metricstor/metricstor/testbed/harness"
