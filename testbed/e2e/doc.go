// Package e2e holds the end-to-end tests of the otelcol-metricstor binary: OTLP in through real
// clients, the Prometheus HTTP API out through client_golang, restarts and kill -9 in between.
// Run them with `make e2e` from the repository root.
package e2e // import "github.com/metricstor/metricstor/testbed/e2e"
