// Package soak is the bounded soak of the built binary (`make soak`, not part of `make test`):
// remote write, OTLP (gRPC and HTTP) and PromQL queries at once for SOAK_DURATION, with a
// periodic event: a graceful restart (SIGTERM), a kill -9, or a full disk (the data directory is
// on a tmpfs that a ballast file fills until writes are refused; it is held full, then the
// ballast is deleted). The senders keep ledgers (testbed/workload); at the end every
// acknowledged sample is read back, and the binary's RSS, goroutines and open files, sampled
// through the run, are compared between the middle and the last third. The summary is printed
// as a table and written to SOAK_OUT. The test skips unless METRICSTOR_SOAK=1.
package soak // import "github.com/metricstor/metricstor/testbed/soak"
