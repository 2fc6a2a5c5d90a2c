// Package receiver implements the remote_write receiver: Prometheus remote write 1.0 and 2.0
// (protobuf + snappy) on /api/v1/write, turned into pipeline metrics (pmetric) with a mapping the
// metricstor exporter turns back into exactly the series that were sent.
package receiver // import "github.com/metricstor/metricstor/receiver"
