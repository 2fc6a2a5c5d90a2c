package scrapereceiver

import (
	"context"
	"errors"
	"math"
	"testing"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/metricstor/metricstor/internal/passthrough"
	mdata "github.com/metricstor/metricstor/scrapereceiver/internal/metadata"
)

func newTestAppendable(t *testing.T, next *consumertest.MetricsSink) *appendable {
	t.Helper()
	r, err := newScrapeReceiver(&Config{}, receivertest.NewNopSettings(mdata.Type), next)
	require.NoError(t, err)
	return r.app
}

// findMetric returns the metric named name under the resource of (job, instance).
func findMetric(t *testing.T, md pmetric.Metrics, job, instance, name string) pmetric.Metric {
	t.Helper()
	for _, rm := range md.ResourceMetrics().All() {
		j, _ := rm.Resource().Attributes().Get(passthrough.JobAttribute)
		i, _ := rm.Resource().Attributes().Get(passthrough.InstanceAttribute)
		if j.Str() != job || i.Str() != instance {
			continue
		}
		for _, sm := range rm.ScopeMetrics().All() {
			assert.Equal(t, passthrough.ScopeName, sm.Scope().Name(), "the exporter writes back only data of the passthrough scope")
			for _, m := range sm.Metrics().All() {
				if m.Name() == name {
					return m
				}
			}
		}
	}
	t.Fatalf("no metric %s for job=%s instance=%s in %d resources", name, job, instance, md.ResourceMetrics().Len())
	return pmetric.Metric{}
}

// TestAppenderRoundTrip appends what a scrape appends (a counter with metadata and an exemplar,
// a classic histogram bucket, a native histogram, a synthetic series with its family name as the
// scrape loop passes it, a staleness marker) and checks the passthrough encoding the consumer gets.
func TestAppenderRoundTrip(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	app := newTestAppendable(t, sink).AppenderV2(context.Background())

	target := func(kv ...string) labels.Labels {
		return labels.FromStrings(append([]string{"job", "app", "instance", "h:1", "env", "test"}, kv...)...)
	}
	const ts = 1_700_000_000_000
	counterMeta := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests.", Unit: ""}
	_, err := app.Append(0, target("__name__", "http_requests_total", "code", "200"), 0, ts, 42, nil, nil, storage.AOptions{
		MetricFamilyName: "http_requests",
		Metadata:         counterMeta,
		Exemplars:        []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "abc"), Value: 1, Ts: ts, HasTs: true}},
	})
	require.NoError(t, err)
	_, err = app.Append(0, target("__name__", "lat_seconds_bucket", "le", "1.0"), 0, ts, 3, nil, nil, storage.AOptions{
		MetricFamilyName: "lat_seconds",
		Metadata:         metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"},
	})
	require.NoError(t, err)
	nh := &histogram.Histogram{Schema: 0, Count: 3, Sum: 2.5, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0}}
	_, err = app.Append(0, target("__name__", "native_seconds"), 0, ts, 0, nh, nil, storage.AOptions{
		MetricFamilyName: "native_seconds",
		Metadata:         metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Native."},
	})
	require.NoError(t, err)
	// The scrape loop passes a synthetic series' family name with a trailing 0xff byte.
	_, err = app.Append(0, target("__name__", "up"), 0, ts, 1, nil, nil, storage.AOptions{
		MetricFamilyName: "up\xff",
		Metadata:         metadata.Metadata{Type: model.MetricTypeGauge, Help: "Health of the scrape target."},
	})
	require.NoError(t, err)
	_, err = app.Append(0, target("__name__", "gone"), 0, ts, math.Float64frombits(value.StaleNaN), nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Empty(t, sink.AllMetrics(), "nothing reaches the pipeline before Commit")
	require.NoError(t, app.Commit())

	require.Len(t, sink.AllMetrics(), 1, "one scrape is one ConsumeMetrics call")
	md := sink.AllMetrics()[0]
	assert.Equal(t, 1, md.ResourceMetrics().Len(), "one resource per (job, instance)")
	assert.Equal(t, 5, md.DataPointCount())

	c := findMetric(t, md, "app", "h:1", "http_requests_total")
	require.Equal(t, pmetric.MetricTypeSum, c.Type())
	assert.Equal(t, "Requests.", c.Description())
	typ, _ := c.Metadata().Get(passthrough.KeyType)
	assert.Equal(t, "counter", typ.Str())
	fam, _ := c.Metadata().Get(passthrough.KeyFamily)
	assert.Equal(t, "http_requests", fam.Str())
	dp := c.Sum().DataPoints().At(0)
	assert.Equal(t, 42.0, dp.DoubleValue())
	assert.Equal(t, map[string]any{"env": "test", "code": "200"}, dp.Attributes().AsRaw())
	require.Equal(t, 1, dp.Exemplars().Len())
	assert.Equal(t, 1.0, dp.Exemplars().At(0).DoubleValue())

	b := findMetric(t, md, "app", "h:1", "lat_seconds_bucket")
	le, _ := b.Gauge().DataPoints().At(0).Attributes().Get("le")
	assert.Equal(t, "1.0", le.Str(), "label values are kept as scraped")
	assert.Equal(t, "seconds", b.Unit())
	fam, _ = b.Metadata().Get(passthrough.KeyFamily)
	assert.Equal(t, "lat_seconds", fam.Str())

	n := findMetric(t, md, "app", "h:1", "native_seconds")
	require.Equal(t, pmetric.MetricTypeExponentialHistogram, n.Type())
	exact, ok := n.Metadata().Get(passthrough.KeyNativeHistograms)
	require.True(t, ok, "the exact native histogram travels with the data point")
	assert.Equal(t, 1, exact.Slice().Len())

	up := findMetric(t, md, "app", "h:1", "up")
	assert.Equal(t, 1.0, up.Gauge().DataPoints().At(0).DoubleValue())
	_, hasType := up.Metadata().Get(passthrough.KeyType)
	assert.False(t, hasType, "no metadata for a synthetic series, as in Prometheus's metadata API")
	assert.Empty(t, up.Description())

	g := findMetric(t, md, "app", "h:1", "gone")
	gdp := g.Gauge().DataPoints().At(0)
	assert.True(t, gdp.Flags().NoRecordedValue(), "a staleness marker is a data point without a recorded value")
	assert.True(t, value.IsStaleNaN(gdp.DoubleValue()))
}

// TestAppenderFamilyOutlivesScrapeBuffer: the scrape loop passes family names that point into a
// buffer it writes again after Append returns; the appender keeps its own copy of each family's
// name (one per run of samples of the family), so the pipeline data never sees the rewrite.
func TestAppenderFamilyOutlivesScrapeBuffer(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	app := newTestAppendable(t, sink).AppenderV2(context.Background())
	const ts = 1_700_000_000_000
	buf := []byte("fam_aa")
	family := unsafe.String(&buf[0], len(buf)) // as the scrape loop's: its bytes change later
	meta := metadata.Metadata{Type: model.MetricTypeCounter, Help: "A counter."}
	for i, fam := range []string{"fam_aa", "fam_aa", "fam_bb"} {
		copy(buf, fam)
		ls := labels.FromStrings("__name__", fam+"_total", "job", "j", "i", string(rune('0'+i)))
		_, err := app.Append(0, ls, 0, ts, 1, nil, nil, storage.AOptions{MetricFamilyName: family, Metadata: meta})
		require.NoError(t, err)
		copy(buf, "xxxxxx") // the loop reuses its buffer
	}
	require.NoError(t, app.Commit())
	md := sink.AllMetrics()[0]
	for _, fam := range []string{"fam_aa", "fam_bb"} {
		m := findMetric(t, md, "j", "", fam+"_total")
		got, ok := m.Metadata().Get(passthrough.KeyFamily)
		require.True(t, ok, "the family differs from the series' name")
		assert.Equal(t, fam, got.Str())
	}
	assert.Equal(t, 3, md.DataPointCount())
}

// TestAppenderRefusesInvalid: an invalid native histogram is refused by Append, as Prometheus's
// TSDB refuses it (the scrape then fails), and the rest of the scrape is not sent by a rollback.
func TestAppenderRefusesInvalid(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	app := newTestAppendable(t, sink).AppenderV2(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "ok", "job", "j"), 0, 1000, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	bad := &histogram.Histogram{Schema: 0, Count: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1}}
	_, err = app.Append(0, labels.FromStrings("__name__", "bad", "job", "j"), 0, 1000, 0, bad, nil, storage.AOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid native histogram")
	assert.Contains(t, err.Error(), `__name__="bad"`)
	require.NoError(t, app.Rollback())
	assert.Empty(t, sink.AllMetrics())
}

// TestAppenderCommitError: the pipeline's error is Commit's, for the scrape loop to report.
func TestAppenderCommitError(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	a := newTestAppendable(t, sink)
	a.next = consumertest.NewErr(errors.New("store refuses"))
	app := a.AppenderV2(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "x"), 0, 1000, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	assert.EqualError(t, app.Commit(), "store refuses")

	a.close()
	app = a.AppenderV2(context.Background())
	_, err = app.Append(0, labels.FromStrings("__name__", "x"), 0, 2000, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	assert.ErrorIs(t, app.Commit(), errStopped)
}

// recordingWriter keeps copies of the series written to it and returns err.
type recordingWriter struct {
	series []passthrough.Series
	err    error
}

func (w *recordingWriter) WriteSeries(_ context.Context, series []passthrough.Series) error {
	for _, s := range series {
		s.Labels = append([]passthrough.Label(nil), s.Labels...)
		s.Samples = append([]passthrough.Sample(nil), s.Samples...)
		s.Histograms = append([]passthrough.Histogram(nil), s.Histograms...)
		w.series = append(w.series, s)
	}
	return w.err
}

// TestAppenderDirect: with a SeriesWriter (direct_write, and a pipeline that allows it) a scrape
// goes to the writer at Commit, as checked series, and nothing to the pipeline; an invalid series
// is refused at Append as without; the writer's error is Commit's.
func TestAppenderDirect(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	a := newTestAppendable(t, sink)
	w := &recordingWriter{}
	a.writer = w
	app := a.AppenderV2(context.Background())
	ts := int64(1_700_000_000_000)
	target := func(kv ...string) labels.Labels {
		return labels.FromStrings(append([]string{"job", "node", "instance", "h:9100"}, kv...)...)
	}
	_, err := app.Append(0, target("__name__", "http_requests_total", "code", "200"), 0, ts, 42, nil, nil, storage.AOptions{
		MetricFamilyName: "http_requests_total",
		Metadata:         metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests."},
		Exemplars:        []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "abc"), Value: 1, Ts: ts, HasTs: true}},
	})
	require.NoError(t, err)
	_, err = app.Append(0, target("__name__", "up"), 0, ts, 1, nil, nil, storage.AOptions{MetricFamilyName: "up\xff"})
	require.NoError(t, err)
	_, err = app.Append(0, target("__name__", "bad"), 0, ts, 0, &histogram.Histogram{Count: 1, PositiveBuckets: []int64{1}}, nil, storage.AOptions{})
	require.Error(t, err, "an invalid histogram is refused at Append")
	require.NoError(t, app.Commit())

	assert.Empty(t, sink.AllMetrics(), "no pipeline data")
	require.Len(t, w.series, 2)
	req := w.series[0]
	assert.Equal(t, []passthrough.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "code", Value: "200"}, {Name: "instance", Value: "h:9100"}, {Name: "job", Value: "node"}}, req.Labels)
	assert.Equal(t, "http_requests_total", req.Name)
	assert.Equal(t, "node", req.Job)
	assert.Equal(t, "h:9100", req.Instance)
	assert.True(t, req.HasMetadata)
	assert.Equal(t, metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests."}, req.Metadata)
	assert.Equal(t, "http_requests_total", req.Family)
	assert.Equal(t, []passthrough.Sample{{T: ts, V: 42}}, req.Samples)
	require.Len(t, req.Exemplars, 1)
	up := w.series[1]
	assert.Equal(t, "up", up.Name)
	assert.False(t, up.HasMetadata, "synthetic series carry no metadata")
	assert.Equal(t, []passthrough.Sample{{T: ts, V: 1}}, up.Samples)

	w.err = errors.New("store refuses")
	app = a.AppenderV2(context.Background())
	_, err = app.Append(0, target("__name__", "x"), 0, ts+1000, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	assert.EqualError(t, app.Commit(), "store refuses")
}
