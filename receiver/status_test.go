package receiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/metricstor/metricstor/internal/passthrough"
	"github.com/metricstor/metricstor/storage"
)

// TestContentTypeBeforeBody is prometheus/compliance's TestBadContentTypes: a content type that is
// not application/x-protobuf gets 415 even though the body is corrupt (the body is not decoded
// before the content type is checked). With the right content type the same body is 400.
func TestContentTypeBeforeBody(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	b, err := validV1().Marshal()
	require.NoError(t, err)
	corrupt := snappy.Encode(nil, b)
	corrupt[0] = '0'
	for _, encoding := range []string{"snappy", ""} {
		for _, ct := range []string{"application/json", "image/png"} {
			r := post(t, url, ct, encoding, corrupt)
			assert.Equal(t, http.StatusUnsupportedMediaType, r.code, "%s, encoding %q: %s", ct, encoding, r.body)
			assert.Contains(t, r.body, "application/x-protobuf")
		}
		r := post(t, url, ctV2, encoding, corrupt)
		assert.Equal(t, http.StatusBadRequest, r.code, "encoding %q: %s", encoding, r.body)
		assert.Contains(t, r.body, "snappy")
	}
	// A missing Content-Type is 1.0, as in Prometheus.
	r := post(t, url, "", "snappy", snappy.Encode(nil, b))
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	assert.Equal(t, 2, sink.DataPointCount())
}

// seriesV1 and seriesV2 build a request of n one-sample series.
func seriesV1(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := range n {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: v1Labels("__name__", "m", "i", strconv.Itoa(i)), Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}},
		})
	}
	return req
}

func seriesV2(n int) *writev2.Request {
	b := newV2Builder()
	for i := range n {
		b.series(labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), writev2.Metadata{}, []writev2.Sample{{Timestamp: 1000, Value: 1}}, nil)
	}
	return b.build()
}

// TestMaxSeriesPerRequest: a request at max_series_per_request is written; one series more is
// refused whole with 400 naming the limit; 0 means no limit.
func TestMaxSeriesPerRequest(t *testing.T) {
	const limit = 5
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, func(c *Config) { c.MaxSeriesPerRequest = limit })

	r := pushV1(t, url, seriesV1(limit))
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	r = pushV2(t, url, seriesV2(limit))
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
	assertHeaders(t, r, "5", "0", "0")
	assert.Equal(t, 2*limit, sink.DataPointCount())

	r = pushV1(t, url, seriesV1(limit+1))
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "request has 6 series, more than max_series_per_request (5); nothing was written")
	r = pushV2(t, url, seriesV2(limit+1))
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "request has 6 series, more than max_series_per_request (5)")
	assertHeaders(t, r, "0", "0", "0")
	assert.Equal(t, 2*limit, sink.DataPointCount(), "nothing of a refused request reaches the pipeline")

	unlimited := startReceiver(t, sink, nil, func(c *Config) { c.MaxSeriesPerRequest = 0 })
	r = pushV1(t, unlimited, seriesV1(limit+1))
	assert.Equal(t, http.StatusNoContent, r.code, r.body)
}

// refusingStore refuses, with err, the appends of series whose `job` label is job.
type refusingStore struct {
	storage.Store
	job string
	err error
}

func (s refusingStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return refusingAppender{AppenderV2: s.Store.AppenderV2(ctx), s: s}
}

type refusingAppender struct {
	promstorage.AppenderV2
	s refusingStore
}

func (a refusingAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	// Only series appended by their labels are refused: the exporter appends a series it has
	// seen before by its ref alone, and none of the refused series is seen twice.
	if a.s.job != "" && ls.Get("job") == a.s.job {
		return 0, a.s.err
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

// noRetry turns the exporter's retry off, so that a retryable refusal is answered at once.
func noRetry(t *testing.T) func(component.Config) {
	return func(cfg component.Config) {
		require.NoError(t, unmarshalInto(cfg, map[string]any{"retry_on_failure": map[string]any{"enabled": false}}))
	}
}

// TestStoreRefusalsV2 sends remote write 2.0 through the real exporter and store, which refuse
// in each way: the status, the body, the Written headers (what was stored), and what is stored.
func TestStoreRefusalsV2(t *testing.T) { bothWays(t, testStoreRefusalsV2) }

func testStoreRefusalsV2(t *testing.T, direct bool) {
	// Series a (2 samples, one a duplicate of the other at the same timestamp when dup is set), b
	// (1 sample and a native histogram, 1 exemplar).
	request := func(dup bool) *writev2.Request {
		b := newV2Builder()
		as := []writev2.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 2}}
		if dup {
			as[1].Timestamp = 1000
		}
		b.series(labels.FromStrings("__name__", "m", "job", "a"), writev2.Metadata{}, as, nil)
		b.series(labels.FromStrings("__name__", "m", "job", "b"), writev2.Metadata{}, []writev2.Sample{{Timestamp: 1000, Value: 3}}, nil,
			b.exemplar(labels.FromStrings("trace_id", "t"), 3, 1000))
		b.series(labels.FromStrings("__name__", "h", "job", "b"), writev2.Metadata{}, nil,
			[]writev2.Histogram{writev2.FromIntHistogram(0, 1000, intHistogram(1000))})
		return b.build()
	}
	hist := []point{{t: 1000, h: intHistogram(1000)}}
	for _, tc := range []struct {
		name    string
		refuse  string // job whose appends the store refuses with err
		err     error
		dup     bool
		code    int
		body    []string
		headers [3]string
		stored  map[string][]point
	}{
		{
			name: "duplicate in the request", dup: true,
			code: http.StatusBadRequest, body: []string{"duplicate=1", `series {__name__="m", job="a"} at 1000`, "the rest was written"},
			headers: [3]string{"2", "1", "1"},
			stored: map[string][]point{
				`{__name__="m", job="a"}`: floats([]int64{1000}, 1),
				`{__name__="m", job="b"}`: floats([]int64{1000}, 3),
				`{__name__="h", job="b"}`: hist,
			},
		},
		{
			name: "limit exceeded", refuse: "b", err: fmt.Errorf("%w: more than max_label_value_length (8)", storage.ErrLimitExceeded),
			code: http.StatusBadRequest, body: []string{"limit_exceeded=2", "max_label_value_length (8)"},
			headers: [3]string{"2", "0", "0"},
			stored:  map[string][]point{`{__name__="m", job="a"}`: floats([]int64{1000, 2000}, 1, 2)},
		},
		{
			name: "store unavailable", refuse: "b", err: fmt.Errorf("%w: no space left on device", storage.ErrUnavailable),
			code: http.StatusServiceUnavailable, body: []string{"no space left on device"},
			headers: [3]string{"0", "0", "0"},
			stored:  map[string][]point{},
		},
		{
			name: "store not running", refuse: "a", err: storage.ErrNotRunning,
			code: http.StatusServiceUnavailable, body: []string{storage.ErrNotRunning.Error()},
			headers: [3]string{"0", "0", "0"},
			stored:  map[string][]point{},
		},
		{
			name: "all stored", code: http.StatusNoContent, headers: [3]string{"3", "1", "1"},
			stored: map[string][]point{
				`{__name__="m", job="a"}`: floats([]int64{1000, 2000}, 1, 2),
				`{__name__="m", job="b"}`: floats([]int64{1000}, 3),
				`{__name__="h", job="b"}`: hist,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, store := startPipelineWith(t, direct, func(s storage.Store) storage.Store {
				return refusingStore{Store: s, job: tc.refuse, err: tc.err}
			}, noRetry(t))
			r := pushV2(t, url, request(tc.dup))
			assert.Equal(t, tc.code, r.code, r.body)
			for _, want := range tc.body {
				assert.Contains(t, r.body, want)
			}
			assertHeaders(t, r, tc.headers[0], tc.headers[1], tc.headers[2])
			assertSeries(t, tc.stored, readAll(t, store))
		})
	}
}

// TestOutOfOrderV1 is Prometheus's answer to an out-of-order sample older than the store's
// out_of_order_window (10m by default; the store calls it too old): 400 with the store's reason.
// Unlike Prometheus's 1.0 handler (which rolls the whole request back) the rest is stored, as
// Prometheus's 2.0 handler does.
func TestOutOfOrderV1(t *testing.T) { bothWays(t, testOutOfOrderV1) }

func testOutOfOrderV1(t *testing.T, direct bool) {
	url, store := startPipeline(t, direct)
	r := pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "m", "job", "a"), Samples: []prompb.Sample{{Timestamp: 10_000_000, Value: 1}}},
	}})
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	r = pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "m", "job", "a"), Samples: []prompb.Sample{{Timestamp: 5_000_000, Value: 2}, {Timestamp: 11_000_000, Value: 4}}},
		{Labels: v1Labels("__name__", "m", "job", "b"), Samples: []prompb.Sample{{Timestamp: 5_000_000, Value: 3}}},
	}})
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "too_old=1")
	assert.Contains(t, r.body, `series {__name__="m", job="a"} at 5000000: too old sample`)
	assertSeries(t, map[string][]point{
		`{__name__="m", job="a"}`: floats([]int64{10_000_000, 11_000_000}, 1, 4),
		`{__name__="m", job="b"}`: floats([]int64{5_000_000}, 3),
	}, readAll(t, store))
}

// TestInvalidSeriesAndStoreRefusal: one request with an invalid series and a sample the store
// refuses gets one 400 naming both; the rest is stored.
func TestInvalidSeriesAndStoreRefusal(t *testing.T) { bothWays(t, testInvalidSeriesAndStoreRefusal) }

func testInvalidSeriesAndStoreRefusal(t *testing.T, direct bool) {
	url, store := startPipeline(t, direct)
	r := pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "m", "job", "a"), Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 1000, Value: 2}}},
		{Labels: v1Labels("job", "nameless"), Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}}},
	}})
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "missing metric name")
	assert.Contains(t, r.body, "duplicate=1")
	assert.Equal(t, 1, strings.Count(r.body, "1 series rejected"))
	assertSeries(t, map[string][]point{`{__name__="m", job="a"}`: floats([]int64{1000}, 1)}, readAll(t, store))
}

// TestPartialWriteTelemetry: on a partial write the receiver's telemetry counts what the
// exporter stored as accepted and only the rest as refused; the Written headers say the same.
func TestPartialWriteTelemetry(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	refuse := consumererror.NewPermanent(fmt.Errorf("wrapped by exporterhelper: %w",
		&passthrough.PartialWriteError{Err: errors.New("store rejected 1 of 4 samples (duplicate=1)"), Samples: 2, Histograms: 1, Exemplars: 1}))
	url := startReceiver(t, consumertest.NewErr(refuse), tel, nil)
	r := pushV2(t, url, validV2()) // 3 samples, 1 histogram, 1 exemplar
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "pipeline refused part of the data, the rest was written: store rejected 1 of 4 samples (duplicate=1)")
	assert.NotContains(t, r.body, "Permanent error")
	assertHeaders(t, r, "2", "1", "1")

	accepted, err := tel.GetMetric("otelcol_receiver_accepted_metric_points")
	require.NoError(t, err)
	refused, err := tel.GetMetric("otelcol_receiver_refused_metric_points")
	require.NoError(t, err)
	assert.Equal(t, int64(3), sumInt(t, accepted))
	assert.Equal(t, int64(1), sumInt(t, refused))
}

// TestMiddlewareErrorStatus: confighttp's decompressor reports 400 for an encoding without a
// decoder, which remote write answers 415; the authenticator's 401 passes unchanged.
func TestMiddlewareErrorStatus(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{http.StatusBadRequest, http.StatusUnsupportedMediaType},
		{http.StatusUnauthorized, http.StatusUnauthorized},
		{http.StatusForbidden, http.StatusForbidden},
	} {
		w := httptest.NewRecorder()
		unsupportedEncodingHandler(w, httptest.NewRequest(http.MethodPost, "/api/v1/write", nil), "msg", tc.in)
		assert.Equal(t, tc.want, w.Code, "confighttp status %d", tc.in)
	}
}
