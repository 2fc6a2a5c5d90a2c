// Package queryext implements the `promql` extension: the Prometheus 3 HTTP API (/api/v1/query,
// /api/v1/query_range, /api/v1/series, /api/v1/labels, /api/v1/metadata, ...) served by
// Prometheus's own web/api/v1 code and promql.Engine over the store of the metricstor storage
// extension.
//
// The extension finds the store by the component ID in its `storage` setting and starts after it
// (extensioncapabilities.Dependent). It only reads: remote write and OTLP receiving are the job
// of the distribution's receivers and are disabled here.
package queryext // import "github.com/metricstor/metricstor/queryext"
