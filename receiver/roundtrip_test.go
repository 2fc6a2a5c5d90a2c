package receiver

import (
	"context"
	"math"
	"net/http"
	"sort"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/metricstor/metricstor/storage"
)

// point is one stored sample, compared bit for bit (floats) or structurally (histograms).
type point struct {
	st   int64 // the start timestamp, 0 when unknown
	t    int64
	bits uint64
	h    *histogram.Histogram
	fh   *histogram.FloatHistogram
}

// readAll returns every series of the store with its points.
func readAll(t *testing.T, s storage.Store) map[string][]point {
	t.Helper()
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]point{}
	var it chunkenc.Iterator
	for ss.Next() {
		series := ss.At()
		it = series.Iterator(it)
		var pts []point
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				pts = append(pts, point{st: it.AtST(), t: ts, bits: math.Float64bits(v)})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				pts = append(pts, point{st: it.AtST(), t: ts, h: h})
			case chunkenc.ValFloatHistogram:
				ts, fh := it.AtFloatHistogram(nil)
				pts = append(pts, point{st: it.AtST(), t: ts, fh: fh})
			}
		}
		require.NoError(t, it.Err())
		out[series.Labels().String()] = pts
	}
	require.NoError(t, ss.Err())
	return out
}

func floats(ts []int64, vs ...float64) []point {
	out := make([]point, len(ts))
	for i := range ts {
		out[i] = point{t: ts[i], bits: math.Float64bits(vs[i])}
	}
	return out
}

// assertSeries compares the store's series with want: the same label sets, the same
// timestamps, float values bit for bit, histograms equal (Equals ignores the counter reset hint,
// which the store's chunks recompute).
func assertSeries(t *testing.T, want, got map[string][]point) {
	t.Helper()
	var wantKeys, gotKeys []string
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	sort.Strings(wantKeys)
	sort.Strings(gotKeys)
	require.Equal(t, wantKeys, gotKeys, "series")
	for _, k := range wantKeys {
		w, g := want[k], got[k]
		require.Len(t, g, len(w), k)
		for i := range w {
			assert.Equal(t, w[i].t, g[i].t, "%s point %d timestamp", k, i)
			assert.Equal(t, w[i].st, g[i].st, "%s point %d start timestamp", k, i)
			switch {
			case w[i].h != nil:
				require.NotNil(t, g[i].h, "%s point %d: want an integer histogram", k, i)
				assert.True(t, w[i].h.Equals(g[i].h), "%s point %d: want %s, got %s", k, i, w[i].h, g[i].h)
			case w[i].fh != nil:
				require.NotNil(t, g[i].fh, "%s point %d: want a float histogram", k, i)
				assert.True(t, w[i].fh.Equals(g[i].fh), "%s point %d: want %s, got %s", k, i, w[i].fh, g[i].fh)
			default:
				assert.Equal(t, w[i].bits, g[i].bits, "%s point %d: want %v, got %v", k, i, math.Float64frombits(w[i].bits), math.Float64frombits(g[i].bits))
			}
		}
	}
}

var staleNaN = math.Float64frombits(value.StaleNaN)

// withST sets the start timestamp of every point of pts.
func withST(st int64, pts []point) []point {
	for i := range pts {
		pts[i].st = st
	}
	return pts
}

// TestRoundTripV1 pushes remote write 1.0 through receiver -> metricstor exporter (default
// config) -> store and reads back the exact series: names with dots and UTF-8, labels starting
// with __, job and instance unchanged, no suffixes, no target_info, stale markers bit for bit, a
// NaN that is not a stale marker, classic histogram series, native histograms of every kind,
// metadata (sent in a request of its own, as Prometheus does) and exemplars.
func TestRoundTripV1(t *testing.T) { bothWays(t, testRoundTripV1) }

func testRoundTripV1(t *testing.T, direct bool) {
	url, store := startPipeline(t, direct)

	meta := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served.", Unit: ""},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "rpc_duration_seconds", Help: "RPC latency.", Unit: "seconds"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temperature", Help: "Room temperature.", Unit: "celsius"},
		{Type: prompb.MetricMetadata_INFO, MetricFamilyName: "build_info", Help: "Build."},
		{Type: prompb.MetricMetadata_STATESET, MetricFamilyName: "feature", Help: "Feature flags."},
	}}
	r := pushV1(t, url, meta)
	require.Equal(t, http.StatusNoContent, r.code, r.body)

	odd := math.Float64frombits(0x7ff8000000000abc) // a NaN that is not the stale marker
	ts := []int64{1_700_000_000_000, 1_700_000_015_000, 1_700_000_030_000}
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "http_requests_total", "job", "api", "instance", "10.0.0.1:9100", "code", "200"),
			Samples:   []prompb.Sample{{Timestamp: ts[0], Value: 10}, {Timestamp: ts[1], Value: 12}, {Timestamp: ts[2], Value: staleNaN}},
			Exemplars: []prompb.Exemplar{{Labels: v1Labels("trace_id", "0123456789abcdef0123456789abcdef", "span_id", "0123456789abcdef"), Value: 1, Timestamp: ts[1]}}},
		// Unsorted labels, a label starting with __, a name with dots and UTF-8.
		{Labels: v1Labels("région", "île-de-france", "__name__", "temperature.room", "__meta_source", "x", "job", "ns/sensors"),
			Samples: []prompb.Sample{{Timestamp: ts[0], Value: 21.5}, {Timestamp: ts[1], Value: odd}}},
		{Labels: v1Labels("__name__", "temperature", "instance", "only-instance"),
			Samples: []prompb.Sample{{Timestamp: ts[0], Value: 0}, {Timestamp: ts[1], Value: math.Inf(-1)}}},
		// A classic histogram arrives as plain series.
		{Labels: v1Labels("__name__", "rpc_duration_seconds_bucket", "job", "api", "le", "0.1"), Samples: []prompb.Sample{{Timestamp: ts[0], Value: 3}}},
		{Labels: v1Labels("__name__", "rpc_duration_seconds_bucket", "job", "api", "le", "+Inf"), Samples: []prompb.Sample{{Timestamp: ts[0], Value: 5}}},
		{Labels: v1Labels("__name__", "rpc_duration_seconds_sum", "job", "api"), Samples: []prompb.Sample{{Timestamp: ts[0], Value: 0.42}}},
		{Labels: v1Labels("__name__", "rpc_duration_seconds_count", "job", "api"), Samples: []prompb.Sample{{Timestamp: ts[0], Value: 5}}},
		{Labels: v1Labels("__name__", "build_info", "job", "api", "version", "1.2.3"), Samples: []prompb.Sample{{Timestamp: ts[0], Value: 1}}},
		{Labels: v1Labels("__name__", "feature", "job", "api", "feature", "a"), Samples: []prompb.Sample{{Timestamp: ts[0], Value: 0}}},
		// Native histograms: integer, float, custom buckets (integer and float), then a stale marker.
		{Labels: v1Labels("__name__", "latency_native", "job", "api"), Histograms: []prompb.Histogram{
			prompb.FromIntHistogram(ts[0], intHistogram(ts[0])), prompb.FromIntHistogram(ts[1], intHistogram(ts[1]))},
			Samples: []prompb.Sample{{Timestamp: ts[2], Value: staleNaN}}},
		{Labels: v1Labels("__name__", "latency_rate", "job", "rules"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(ts[0], floatHistogram())}},
		{Labels: v1Labels("__name__", "latency_nhcb", "job", "api"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts[0], customHistogram())}},
		{Labels: v1Labels("__name__", "latency_nhcb_rate", "job", "rules"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(ts[0], customFloatHistogram())}},
	}}
	r = pushV1(t, url, req)
	require.Equal(t, http.StatusNoContent, r.code, r.body)

	want := map[string][]point{
		`{__name__="http_requests_total", code="200", instance="10.0.0.1:9100", job="api"}`:            floats(ts, 10, 12, staleNaN),
		`{__meta_source="x", __name__="temperature.room", job="ns/sensors", "région"="île-de-france"}`: floats(ts[:2], 21.5, odd),
		`{__name__="temperature", instance="only-instance"}`:                                           floats(ts[:2], 0, math.Inf(-1)),
		`{__name__="rpc_duration_seconds_bucket", job="api", le="0.1"}`:                                floats(ts[:1], 3),
		`{__name__="rpc_duration_seconds_bucket", job="api", le="+Inf"}`:                               floats(ts[:1], 5),
		`{__name__="rpc_duration_seconds_sum", job="api"}`:                                             floats(ts[:1], 0.42),
		`{__name__="rpc_duration_seconds_count", job="api"}`:                                           floats(ts[:1], 5),
		`{__name__="build_info", job="api", version="1.2.3"}`:                                          floats(ts[:1], 1),
		`{__name__="feature", feature="a", job="api"}`:                                                 floats(ts[:1], 0),
		`{__name__="latency_native", job="api"}`: {
			{t: ts[0], h: intHistogram(ts[0])}, {t: ts[1], h: intHistogram(ts[1])}, {t: ts[2], bits: value.StaleNaN}},
		`{__name__="latency_rate", job="rules"}`:      {{t: ts[0], fh: floatHistogram()}},
		`{__name__="latency_nhcb", job="api"}`:        {{t: ts[0], h: customHistogram()}},
		`{__name__="latency_nhcb_rate", job="rules"}`: {{t: ts[0], fh: customFloatHistogram()}},
	}
	assertSeries(t, want, readAll(t, store))

	md, err := store.MetricMetadata(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, map[string][]metadata.Metadata{
		"http_requests_total":  {{Type: "counter", Help: "Requests served."}},
		"rpc_duration_seconds": {{Type: "histogram", Unit: "seconds", Help: "RPC latency."}},
		"temperature":          {{Type: "gauge", Unit: "celsius", Help: "Room temperature."}},
		"build_info":           {{Type: "info", Help: "Build."}},
		"feature":              {{Type: "stateset", Help: "Feature flags."}},
	}, md)

	eq, err := store.ExemplarQuerier(context.Background())
	require.NoError(t, err)
	res, err := eq.Select(1_600_000_000_000, 1_800_000_000_000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "http_requests_total")})
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.Equal(t, []exemplar.Exemplar{{
		Labels: labels.FromStrings("span_id", "0123456789abcdef", "trace_id", "0123456789abcdef0123456789abcdef"),
		Value:  1, Ts: ts[1], HasTs: true,
	}}, res[0].Exemplars)
}

// TestRoundTripV2 pushes remote write 2.0 with per-series metadata, start timestamps, native
// histograms and exemplars, and reads back the same series, metadata and exemplars.
func TestRoundTripV2(t *testing.T) { bothWays(t, testRoundTripV2) }

func testRoundTripV2(t *testing.T, direct bool) {
	url, store := startPipeline(t, direct)
	ts := []int64{1_700_000_000_000, 1_700_000_010_000}
	st := int64(1_699_999_000_000)
	b := newV2Builder()
	b.series(labels.FromStrings("__name__", "jobs_done_total", "job", "worker", "instance", "w1", "queue", "q"),
		b.meta(writev2.Metadata_METRIC_TYPE_COUNTER, "Jobs done.", ""),
		[]writev2.Sample{{Timestamp: ts[0], Value: 4, StartTimestamp: st}, {Timestamp: ts[1], Value: 6, StartTimestamp: st}}, nil,
		b.exemplar(labels.FromStrings("trace_id", "not-hex"), 2, ts[1]))
	b.series(labels.FromStrings("__name__", "queue_bytes", "job", "worker"),
		b.meta(writev2.Metadata_METRIC_TYPE_GAUGE, "Queue size.", "bytes"),
		[]writev2.Sample{{Timestamp: ts[0], Value: 1024}, {Timestamp: ts[1], Value: staleNaN}}, nil)
	b.series(labels.FromStrings("__name__", "req_seconds_bucket", "job", "worker", "le", "1"),
		b.meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Request time.", "seconds"),
		[]writev2.Sample{{Timestamp: ts[0], Value: 7}}, nil)
	b.series(labels.FromStrings("__name__", "req_native_seconds", "job", "worker"),
		b.meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Native request time.", "seconds"), nil,
		[]writev2.Histogram{writev2.FromIntHistogram(st, ts[0], intHistogram(ts[0])), writev2.FromFloatHistogram(st, ts[1], floatHistogram())},
		b.exemplar(labels.FromStrings("trace_id", "t1"), 0.3, ts[1]))
	b.series(labels.FromStrings("__name__", "req_nhcb_seconds", "job", "worker"),
		b.meta(writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM, "NHCB gauge histogram.", "seconds"), nil,
		[]writev2.Histogram{writev2.FromIntHistogram(0, ts[0], customHistogram())})
	// A label with an empty value is no label.
	b.series(labels.FromStrings("__name__", "no_metadata", "empty", ""), writev2.Metadata{}, []writev2.Sample{{Timestamp: ts[0], Value: 1}}, nil)

	r := pushV2(t, url, b.build())
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	assertHeaders(t, r, "6", "3", "2")

	gh := customHistogram()
	gh.CounterResetHint = histogram.GaugeType
	want := map[string][]point{
		`{__name__="jobs_done_total", instance="w1", job="worker", queue="q"}`: withST(st, floats(ts, 4, 6)),
		`{__name__="queue_bytes", job="worker"}`:                               floats(ts, 1024, staleNaN),
		`{__name__="req_seconds_bucket", job="worker", le="1"}`:                floats(ts[:1], 7),
		`{__name__="req_native_seconds", job="worker"}`:                        {{st: st, t: ts[0], h: intHistogram(ts[0])}, {st: st, t: ts[1], fh: floatHistogram()}},
		`{__name__="req_nhcb_seconds", job="worker"}`:                          {{t: ts[0], h: gh}},
		`{__name__="no_metadata"}`:                                             floats(ts[:1], 1),
	}
	assertSeries(t, want, readAll(t, store))

	md, err := store.MetricMetadata(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, map[string][]metadata.Metadata{
		"jobs_done_total":    {{Type: "counter", Help: "Jobs done."}},
		"queue_bytes":        {{Type: "gauge", Unit: "bytes", Help: "Queue size."}},
		"req_seconds":        {{Type: "histogram", Unit: "seconds", Help: "Request time."}},
		"req_native_seconds": {{Type: "histogram", Unit: "seconds", Help: "Native request time."}},
		"req_nhcb_seconds":   {{Type: "gaugehistogram", Unit: "seconds", Help: "NHCB gauge histogram."}},
	}, md)

	eq, err := store.ExemplarQuerier(context.Background())
	require.NoError(t, err)
	got := map[string][]exemplar.Exemplar{}
	for _, name := range []string{"jobs_done_total", "req_native_seconds"} {
		res, err := eq.Select(1_600_000_000_000, 1_800_000_000_000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", name)})
		require.NoError(t, err)
		for _, r := range res {
			got[r.SeriesLabels.String()] = r.Exemplars
		}
	}
	assert.Equal(t, map[string][]exemplar.Exemplar{
		`{__name__="jobs_done_total", instance="w1", job="worker", queue="q"}`: {{Labels: labels.FromStrings("trace_id", "not-hex"), Value: 2, Ts: ts[1], HasTs: true}},
		`{__name__="req_native_seconds", job="worker"}`:                        {{Labels: labels.FromStrings("trace_id", "t1"), Value: 0.3, Ts: ts[1], HasTs: true}},
	}, got)
}

// TestRoundTripPartialStoreRejection: a sample the store refuses (out of order) gives 400 with
// the store's reason; the rest of the request is stored.
func TestRoundTripPartialStoreRejection(t *testing.T) {
	bothWays(t, testRoundTripPartialStoreRejection)
}

func testRoundTripPartialStoreRejection(t *testing.T, direct bool) {
	url, store := startPipeline(t, direct)
	r := pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "m", "job", "a"), Samples: []prompb.Sample{{Timestamp: 10_000_000, Value: 1}}},
	}})
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	r = pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "m", "job", "a"), Samples: []prompb.Sample{{Timestamp: 10_000_000, Value: 2}}},
		{Labels: v1Labels("__name__", "m", "job", "b"), Samples: []prompb.Sample{{Timestamp: 10_000_000, Value: 3}}},
	}})
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "duplicate")
	assertSeries(t, map[string][]point{
		`{__name__="m", job="a"}`: floats([]int64{10_000_000}, 1),
		`{__name__="m", job="b"}`: floats([]int64{10_000_000}, 3),
	}, readAll(t, store))
}
