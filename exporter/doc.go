// Package exporter implements the metricstor exporter: it translates pipeline metrics (pmetric) into
// Prometheus series with Prometheus's own OTLP translator and writes them, synchronously and
// atomically per batch, into the store offered by the metricstor storage extension.
package exporter // import "github.com/metricstor/metricstor/exporter"
