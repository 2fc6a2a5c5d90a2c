package receiver

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	hdrSamples    = "X-Prometheus-Remote-Write-Samples-Written"
	hdrHistograms = "X-Prometheus-Remote-Write-Histograms-Written"
	hdrExemplars  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

func validV1() *prompb.WriteRequest {
	return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  v1Labels("__name__", "up", "job", "j", "instance", "i"),
		Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 0}},
	}}}
}

func validV2() *writev2.Request {
	b := newV2Builder()
	b.series(labels.FromStrings("__name__", "up", "job", "j"), b.meta(writev2.Metadata_METRIC_TYPE_GAUGE, "", ""),
		[]writev2.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 1}, {Timestamp: 3000, Value: 0}},
		[]writev2.Histogram{writev2.FromIntHistogram(0, 4000, intHistogram(4000))},
		b.exemplar(labels.FromStrings("trace_id", "abc"), 1, 3000))
	return b.build()
}

func assertHeaders(t *testing.T, r response, samples, histograms, exemplars string) {
	t.Helper()
	assert.Equal(t, samples, r.header.Get(hdrSamples), "samples header")
	assert.Equal(t, histograms, r.header.Get(hdrHistograms), "histograms header")
	assert.Equal(t, exemplars, r.header.Get(hdrExemplars), "exemplars header")
}

func TestSuccessV1(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	for _, ct := range []string{ctV1, "application/x-protobuf", ""} {
		b, err := validV1().Marshal()
		require.NoError(t, err)
		r := post(t, url, ct, "snappy", snappy.Encode(nil, b))
		assert.Equal(t, http.StatusNoContent, r.code, "content type %q: %s", ct, r.body)
		assert.Empty(t, r.body)
		// 1.0 responses carry no written headers (as Prometheus's).
		assertHeaders(t, r, "", "", "")
	}
	assert.Equal(t, 6, sink.DataPointCount())
}

func TestSuccessV2Headers(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	r := pushV2(t, url, validV2())
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	assertHeaders(t, r, "3", "1", "1")
	assert.Equal(t, 4, sink.DataPointCount())
}

func TestNoContentEncodingIsSnappy(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	b, err := validV1().Marshal()
	require.NoError(t, err)
	r := post(t, url, ctV1, "", snappy.Encode(nil, b))
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	// Unencoded protobuf is not snappy: 400, nothing consumed.
	r = post(t, url, ctV1, "", b)
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Equal(t, 2, sink.DataPointCount())
}

// TestSnappyFramed: with Content-Encoding: snappy the framed format is accepted as well (as
// confighttp's own decoder accepts it), and a framed body over the limit is refused.
func TestSnappyFramed(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, func(cfg *Config) { cfg.MaxRequestBodySize = 4096 })
	b, err := validV1().Marshal()
	require.NoError(t, err)
	frame := func(b []byte) []byte {
		var out bytes.Buffer
		w := snappy.NewBufferedWriter(&out)
		_, err := w.Write(b)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return out.Bytes()
	}
	r := post(t, url, ctV1, "snappy", frame(b))
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	assert.Equal(t, 2, sink.DataPointCount())

	big := validV1()
	big.Timeseries[0].Labels = append(big.Timeseries[0].Labels, prompb.Label{Name: "pad", Value: strings.Repeat("x", 8192)})
	b, err = big.Marshal()
	require.NoError(t, err)
	r = post(t, url, ctV1, "snappy", frame(b))
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
	assert.Equal(t, 2, sink.DataPointCount())
}

func TestUnsupportedContentType(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	b, err := validV1().Marshal()
	require.NoError(t, err)
	for _, ct := range []string{"text/plain", "application/json", "application/x-protobuf;proto=io.prometheus.write.v3.Request", "application/x-protobuf;proto"} {
		r := post(t, url, ct, "snappy", snappy.Encode(nil, b))
		assert.Equal(t, http.StatusUnsupportedMediaType, r.code, "content type %q: %s", ct, r.body)
		assert.NotEmpty(t, r.body)
	}
	assert.Zero(t, sink.DataPointCount())
}

func TestUnsupportedEncoding(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	b, err := validV1().Marshal()
	require.NoError(t, err)
	for _, enc := range []string{"gzip", "zstd", "identity", "br"} {
		r := post(t, url, ctV1, enc, b)
		assert.Equal(t, http.StatusUnsupportedMediaType, r.code, "encoding %q: %s", enc, r.body)
		assert.Contains(t, r.body, "unsupported Content-Encoding")
	}
	assert.Zero(t, sink.DataPointCount())
}

func TestMethodNotAllowed(t *testing.T) {
	url := startReceiver(t, new(consumertest.MetricsSink), nil, nil)
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestCorruptSnappy(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	b, err := validV1().Marshal()
	require.NoError(t, err)
	enc := snappy.Encode(nil, b)
	corrupt := append([]byte(nil), enc...)
	corrupt = corrupt[:len(corrupt)/2] // truncated block
	for _, encoding := range []string{"snappy", ""} {
		r := post(t, url, ctV1, encoding, corrupt)
		assert.Equal(t, http.StatusBadRequest, r.code, "encoding %q: %s", encoding, r.body)
		assert.Contains(t, r.body, "snappy")
		r = post(t, url, ctV2, encoding, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
		assert.Equal(t, http.StatusBadRequest, r.code, "encoding %q: %s", encoding, r.body)
	}
	assert.Zero(t, sink.DataPointCount())
}

func TestCorruptProtobuf(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	garbage := snappy.Encode(nil, []byte{0x0a, 0xff, 0x01, 0x02}) // field 1, length 255, 2 bytes
	r := post(t, url, ctV1, "snappy", garbage)
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "decode remote write 1.0 request")
	r = post(t, url, ctV2, "snappy", garbage)
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "decode remote write 2.0 request")
	assertHeaders(t, r, "0", "0", "0")
	assert.Zero(t, sink.DataPointCount())
}

func TestBodyOverLimit(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	const limit = 4096
	url := startReceiver(t, sink, nil, func(c *Config) { c.MaxRequestBodySize = limit })

	// Decoded size over the limit, compressed size well under it: refused before decoding.
	big := &prompb.WriteRequest{}
	for range 200 {
		big.Timeseries = append(big.Timeseries, prompb.TimeSeries{
			Labels:  v1Labels("__name__", "a_rather_long_metric_name_repeated", "label", strings.Repeat("x", 40)),
			Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
		})
	}
	raw, err := big.Marshal()
	require.NoError(t, err)
	require.Greater(t, len(raw), limit)
	compressed := snappy.Encode(nil, raw)
	require.Less(t, len(compressed), limit)
	for _, enc := range []string{"snappy", ""} {
		r := post(t, url, ctV1, enc, compressed)
		assert.Equal(t, http.StatusRequestEntityTooLarge, r.code, "encoding %q: %s", enc, r.body)
		assert.Contains(t, r.body, "max request body size")
	}

	// Compressed size itself over the limit.
	incompressible := make([]byte, 2*limit)
	for i := range incompressible {
		incompressible[i] = byte(i*7919 + i/3)
	}
	r := post(t, url, ctV1, "snappy", snappy.Encode(nil, incompressible))
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)

	// Under the limit still works.
	r = pushV1(t, url, validV1())
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	assert.Equal(t, 2, sink.DataPointCount())
}

// TestInvalidSeries sends one invalid series next to a valid one: the valid one is written
// (partial write), the response is 400 and names the invalid one.
func TestInvalidSeries(t *testing.T) {
	tests := []struct {
		name   string
		labels []prompb.Label
		ts     int64
		want   string
	}{
		{name: "missing metric name", labels: v1Labels("job", "x"), ts: 1, want: "missing metric name"},
		{name: "empty metric name", labels: v1Labels("__name__", "", "job", "x"), ts: 1, want: "missing metric name"},
		{name: "empty label name", labels: v1Labels("__name__", "m", "", "v"), ts: 1, want: "invalid label name or value"},
		{name: "duplicate label", labels: v1Labels("__name__", "m", "a", "1", "a", "2"), ts: 1, want: `duplicate label name "a"`},
		{name: "duplicate unsorted label", labels: v1Labels("a", "1", "__name__", "m", "a", "2"), ts: 1, want: `duplicate label name "a"`},
		{name: "invalid utf8 value", labels: v1Labels("__name__", "m", "a", "\xff"), ts: 1, want: "not UTF-8"},
		{name: "negative timestamp", labels: v1Labels("__name__", "m"), ts: -1, want: "timestamp -1 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := new(consumertest.MetricsSink)
			url := startReceiver(t, sink, nil, nil)
			req := validV1()
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: tt.labels, Samples: []prompb.Sample{{Timestamp: tt.ts, Value: 1}}})
			r := pushV1(t, url, req)
			assert.Equal(t, http.StatusBadRequest, r.code)
			assert.Contains(t, r.body, "1 series rejected")
			assert.Contains(t, r.body, tt.want)
			assert.Equal(t, 2, sink.DataPointCount(), "the valid series is written")
		})
	}
}

func TestInvalidSeriesV2(t *testing.T) {
	b := newV2Builder()
	b.series(labels.FromStrings("__name__", "ok"), writev2.Metadata{}, []writev2.Sample{{Timestamp: 5, Value: 1}}, nil)
	b.series(labels.FromStrings("job", "nameless"), writev2.Metadata{}, []writev2.Sample{{Timestamp: 5, Value: 1}, {Timestamp: 6, Value: 1}}, nil)
	b.series(labels.FromStrings("__name__", "empty"), writev2.Metadata{}, nil, nil)
	bad := &histogram.Histogram{Schema: 0, Count: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1}}
	b.series(labels.FromStrings("__name__", "badhist"), writev2.Metadata{}, nil, []writev2.Histogram{writev2.FromIntHistogram(0, 5, bad)})
	wide := &histogram.Histogram{Schema: 0, Count: 2, PositiveSpans: []histogram.Span{{Offset: -100000, Length: 1}, {Offset: 200000, Length: 1}}, PositiveBuckets: []int64{1, 0}}
	b.series(labels.FromStrings("__name__", "widehist"), writev2.Metadata{}, nil, []writev2.Histogram{writev2.FromIntHistogram(0, 5, wide)})
	req := b.build()
	// A series whose label refs point outside the symbol table.
	req.Timeseries = append(req.Timeseries, writev2.TimeSeries{LabelsRefs: []uint32{0, 999}, Samples: []writev2.Sample{{Timestamp: 5, Value: 1}}})
	// A series with an odd number of label refs.
	req.Timeseries = append(req.Timeseries, writev2.TimeSeries{LabelsRefs: []uint32{1}, Samples: []writev2.Sample{{Timestamp: 5, Value: 1}}})

	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	r := pushV2(t, url, req)
	assert.Equal(t, http.StatusBadRequest, r.code)
	assertHeaders(t, r, "1", "0", "0")
	for _, want := range []string{
		"6 series rejected", "missing metric name", "must contain at least one sample or histogram",
		"invalid native histogram", "spans 200002 buckets", "outside of symbols table", "invalid labelRefs length",
	} {
		assert.Contains(t, r.body, want)
	}
	assert.Equal(t, 1, sink.DataPointCount())
}

func TestUnsortedLabelsAccepted(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  v1Labels("z", "1", "job", "j", "a", "2", "__name__", "m"),
		Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
	}}}
	r := pushV1(t, url, req)
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	dp := sink.AllMetrics()[0].ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0)
	assert.Equal(t, map[string]any{"a": "2", "z": "1"}, dp.Attributes().AsRaw())
}

func TestPipelineErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
	}{
		{name: "permanent", err: consumererror.NewPermanent(errors.New("out of order sample")), code: http.StatusBadRequest},
		{name: "plain error is retryable", err: errors.New("store not running"), code: http.StatusServiceUnavailable},
		{name: "retryable", err: consumererror.NewRetryableError(errors.New("busy")), code: http.StatusServiceUnavailable},
		{name: "throttled http", err: consumererror.NewOTLPHTTPError(errors.New("slow down"), http.StatusTooManyRequests), code: http.StatusTooManyRequests},
		{name: "throttled grpc", err: status.Error(codes.ResourceExhausted, "memory limit"), code: http.StatusTooManyRequests},
		{name: "non-retryable http 400", err: consumererror.NewOTLPHTTPError(errors.New("bad"), http.StatusBadRequest), code: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startReceiver(t, consumertest.NewErr(tt.err), nil, nil)
			r := pushV1(t, url, validV1())
			assert.Equal(t, tt.code, r.code, r.body)
			assert.Contains(t, r.body, "pipeline refused the data")
			r = pushV2(t, url, validV2())
			assert.Equal(t, tt.code, r.code, r.body)
			assertHeaders(t, r, "0", "0", "0")
		})
	}
}

func TestEmptyRequest(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	r := pushV1(t, url, &prompb.WriteRequest{})
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	r = pushV2(t, url, &writev2.Request{})
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	assertHeaders(t, r, "0", "0", "0")
	assert.Empty(t, sink.AllMetrics())
}

func TestTelemetry(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	fail := false
	next, err := consumer.NewMetrics(func(context.Context, pmetric.Metrics) error {
		if fail {
			return errors.New("refused")
		}
		return nil
	})
	require.NoError(t, err)
	url := startReceiver(t, next, tel, nil)
	require.Equal(t, http.StatusNoContent, pushV1(t, url, validV1()).code)
	fail = true
	require.Equal(t, http.StatusServiceUnavailable, pushV2(t, url, validV2()).code)

	accepted, err := tel.GetMetric("otelcol_receiver_accepted_metric_points")
	require.NoError(t, err)
	refused, err := tel.GetMetric("otelcol_receiver_refused_metric_points")
	require.NoError(t, err)
	assert.Equal(t, int64(2), sumInt(t, accepted))
	assert.Equal(t, int64(4), sumInt(t, refused))
}

func sumInt(t *testing.T, m metricdata.Metrics) int64 {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is %T", m.Name, m.Data)
	var total int64
	for _, dp := range sum.DataPoints {
		total += dp.Value
	}
	return total
}
