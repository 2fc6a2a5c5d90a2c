// Package passthrough declares the contract between the remote_write receiver (../../receiver)
// and the metricstor exporter (../../exporter): how a Prometheus series travels through a
// collector pipeline as pmetric data and is written back to the store as exactly the series the
// sender sent. The prometheus (scrape) receiver (../../scrapereceiver) produces the same encoding,
// through the remote_write receiver's conversion (receiver.SeriesBatch), with the same scope. The receiver's README ("Mapping and the exact round trip") describes it for users.
//
// Data of the receiver carries ScopeName as its instrumentation scope. Per metric:
//   - the metric name is the series' __name__, unchanged;
//   - the resource attributes JobAttribute and InstanceAttribute hold the job and instance labels
//     (absent when the series has none);
//   - data point attributes are the other labels, string-valued, names unchanged;
//   - Metric.Metadata() holds the keys below.
//
// The keys live in Metric.Metadata(), not in attributes, so that no other exporter turns them into
// labels. A processor may change anything; the exporter writes what it finds.
//
// Where the configuration shows that no processor or other exporter could see the pipeline data,
// the receiver skips it and hands its series to the exporter (direct.go: Series, SeriesWriter,
// Routes); the series written are the same.
package passthrough // import "github.com/metricstor/metricstor/internal/passthrough"

// ScopeName is the instrumentation scope of the metrics the remote_write receiver produces (and of
// its own telemetry). The exporter writes data of this scope back without Prometheus's OTLP
// translator.
const ScopeName = "github.com/metricstor/metricstor/receiver"

// Resource attributes that carry the job and instance labels, as OTLP names them.
const (
	JobAttribute      = "service.name"
	InstanceAttribute = "service.instance.id"
)

// Keys of pmetric.Metric.Metadata().
const (
	// KeyType is the Prometheus metric type the sender declared (counter, gauge, histogram,
	// gaugehistogram, summary, info, stateset, unknown). Absent without metadata.
	KeyType = "prometheus.type"
	// KeyFamily is the metric family name the metadata belongs to, when it differs from the
	// metric name (foo for foo_bucket).
	KeyFamily = "prometheus.metric_family_name"
	// KeyNativeHistograms holds, per data point of a histogram metric and in the same order, the
	// exact native histogram as a marshaled io.prometheus.write.v2.Histogram (with its timestamp):
	// pmetric cannot hold float bucket counts or a counter reset hint. The exporter refuses a data
	// point whose timestamp does not match its encoding rather than store a guess.
	KeyNativeHistograms = "prometheus.native_histograms"
)
