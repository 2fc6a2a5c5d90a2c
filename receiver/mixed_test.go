package receiver

import (
	"context"
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// addOTLP is a processor that adds an application's OTLP gauge to every batch, as a batch
// processor mixing both receivers would.
func addOTLP(next consumer.Metrics) consumer.Metrics {
	c, _ := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "app")
		rm.Resource().Attributes().PutStr("service.instance.id", "app-1")
		rm.Resource().Attributes().PutStr("host.name", "h")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("queue.latency")
		m.SetUnit("s")
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(1_700_000_000_000 * 1e6))
		dp.SetDoubleValue(0.5)
		return next.ConsumeMetrics(ctx, md)
	}, consumer.WithCapabilities(consumer.Capabilities{MutatesData: true}))
	return c
}

// TestMixedBatch: a batch with remote write data and OTLP data of an application. The remote
// write series are stored as sent; the OTLP metric is translated with the default strategy
// (unit suffix, job/instance from the resource, target_info).
func TestMixedBatch(t *testing.T) { bothWays(t, testMixedBatch) }

func testMixedBatch(t *testing.T, direct bool) {
	url, store := startPipelineWith(t, direct, nil, nil, addOTLP)
	r := pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "queue.latency", "job", "rw"), Samples: []prompb.Sample{{Timestamp: 1_700_000_000_000, Value: 2}}},
	}})
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	got := readAll(t, store)
	assertSeries(t, map[string][]point{
		`{__name__="queue.latency", job="rw"}`:                                 floats([]int64{1_700_000_000_000}, 2),
		`{__name__="queue_latency_seconds", instance="app-1", job="app"}`:      floats([]int64{1_700_000_000_000}, 0.5),
		`{__name__="target_info", host_name="h", instance="app-1", job="app"}`: floats([]int64{1_700_000_000_000}, 1),
	}, got)
}

// dropHistogramEncoding is a processor that removes the exact histogram encoding, as a
// processor rebuilding metrics might.
func dropHistogramEncoding(next consumer.Metrics) consumer.Metrics {
	c, _ := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		rms := md.ResourceMetrics()
		for i := range rms.Len() {
			sms := rms.At(i).ScopeMetrics()
			for j := range sms.Len() {
				ms := sms.At(j).Metrics()
				for k := range ms.Len() {
					ms.At(k).Metadata().Remove(passthrough.KeyNativeHistograms)
				}
			}
		}
		return next.ConsumeMetrics(ctx, md)
	}, consumer.WithCapabilities(consumer.Capabilities{MutatesData: true}))
	return c
}

// TestHistogramWithoutEncoding: the exporter does not guess a native histogram whose exact
// encoding is gone; it rejects it permanently (400) and stores the rest.
func TestHistogramWithoutEncoding(t *testing.T) { bothWays(t, testHistogramWithoutEncoding) }

func testHistogramWithoutEncoding(t *testing.T, direct bool) {
	url, store := startPipelineWith(t, direct, nil, nil, dropHistogramEncoding)
	r := pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "h", "job", "a"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(1000, intHistogram(1000))}},
		{Labels: v1Labels("__name__", "f", "job", "a"), Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}}},
	}})
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, `native histogram without its exact encoding`)
	assertSeries(t, map[string][]point{`{__name__="f", job="a"}`: floats([]int64{1000}, 1)}, readAll(t, store))
}

// TestExemplarsWithoutSamples: 1.0 allows a series with exemplars only; they cannot travel
// through the pipeline and are reported rejected.
func TestExemplarsWithoutSamples(t *testing.T) { bothWays(t, testExemplarsWithoutSamples) }

func testExemplarsWithoutSamples(t *testing.T, direct bool) {
	url, store := startPipeline(t, direct)
	r := pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "e"), Exemplars: []prompb.Exemplar{{Labels: v1Labels("trace_id", "x"), Value: 1, Timestamp: 5}}},
		{Labels: v1Labels("__name__", "f"), Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}}},
	}})
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "exemplars without a sample")
	assertSeries(t, map[string][]point{`{__name__="f"}`: floats([]int64{1000}, 1)}, readAll(t, store))
}
