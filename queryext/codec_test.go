package queryext

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

// TestSizedJSONCodecMatchesPrometheus checks that the API's codec writes the bytes Prometheus's
// JSONCodec writes, for every kind of answer, big and small, including the floats whose text
// is special (NaN, infinities, -0, stale markers, extremes) and labels that need escaping, and
// that its estimate covers a day's float matrix (else it saves nothing). Large matrices, encoded
// in parts at the same time, give the same bytes for any number of parts.
func TestSizedJSONCodecMatchesPrometheus(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-300, 1.7976931348623157e308, 123456789.123456789,
		math.NaN(), math.Float64frombits(value.StaleNaN), math.Inf(1), math.Inf(-1), 5e-324, -0.0012345678901234567}
	odd := labels.FromStrings("__name__", "m", "quote", `a"b\c`, "unicode", "ünï\u2028", "ctl", "\x01\t")
	var day promql.Matrix
	for s := range 300 {
		series := promql.Series{Metric: labels.FromStrings("__name__", "node_hwmon_temp_celsius",
			"chip", "platform_coretemp_"+strconv.Itoa(s%2), "instance", "host-"+strconv.Itoa(s/8)+":9100", "job", "loadgen", "sensor", "temp"+strconv.Itoa(s%8))}
		for p := range 1440 {
			series.Floats = append(series.Floats, promql.FPoint{T: 1_699_999_980_000 + int64(p)*60_000, F: floats[(s+p)%len(floats)] * float64(p)})
		}
		day = append(day, series)
	}
	h := &histogram.FloatHistogram{Count: 10, Sum: 12.5, ZeroThreshold: 0.001, ZeroCount: 1, Schema: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{3, 6}}
	withHistograms := promql.Matrix{{Metric: odd, Floats: []promql.FPoint{{T: 1, F: 2}},
		Histograms: []promql.HPoint{{T: 1000, H: h}, {T: 2000, H: h}}}}
	// Times before 1970, and with milliseconds of one, two and three digits.
	oddTimes := slices.Clone(day[:50])
	for i := range oddTimes {
		floats := slices.Clone(oddTimes[i].Floats)
		for j := range floats {
			floats[j].T = int64(j-700)*60_001 + int64(i*7)
		}
		oddTimes[i].Floats = floats
	}
	// The bounds between fixed and exponent notation.
	for j, f := range []float64{1e21, -1e21, 1e-6, -1e-6, 9.999999999999999e20, 9.999999999999999e-7} {
		oddTimes[0].Floats[j].F = f
	}
	var small promql.Matrix
	for i, f := range floats {
		small = append(small, promql.Series{Metric: labels.FromStrings("__name__", "x", "i", strconv.Itoa(i)),
			Floats: []promql.FPoint{{T: int64(i) * 1001, F: f}}})
	}
	matrix := func(m promql.Matrix) *v1.QueryData {
		return &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: m}
	}
	responses := map[string]*v1.Response{
		"day":             {Status: "success", Data: matrix(day)},
		"small matrix":    {Status: "success", Data: matrix(small)},
		"histograms":      {Status: "success", Data: matrix(withHistograms)},
		"empty matrix":    {Status: "success", Data: matrix(promql.Matrix{})},
		"series, no data": {Status: "success", Data: matrix(promql.Matrix{{Metric: odd}})},
		"vector": {Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeVector, Result: promql.Vector{
			{Metric: odd, T: 1500, F: 0.25}, {Metric: labels.EmptyLabels(), T: 2, H: h}}}},
		"scalar": {Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeScalar, Result: promql.Scalar{T: 3, V: math.NaN()}}},
		"string": {Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeString, Result: promql.String{T: 4, V: `"quoted"`}}},
		"warnings": {Status: "success", Data: matrix(small),
			Warnings: []string{"PromQL warning: something"}, Infos: []string{"PromQL info: something else"}},
		"day, warnings and odd labels": {Status: "success", Data: matrix(append(promql.Matrix{{Metric: odd, Floats: day[0].Floats}}, day[1:]...)),
			Warnings: []string{`PromQL warning: "quoted" result`}, Infos: []string{"PromQL info: something else"}},
		"day with histograms": {Status: "success", Data: matrix(append(slices.Clone(day[:200]), withHistograms[0]))},
		"day, odd times":      {Status: "success", Data: matrix(oddTimes)},
		"labels":              {Status: "success", Data: []string{"__name__", "instance", "job"}},
		"nothing":             {Status: "success"},
	}
	for name, resp := range responses {
		t.Run(name, func(t *testing.T) {
			want, err := v1.JSONCodec{}.Encode(resp)
			require.NoError(t, err)
			got, err := sizedJSONCodec{}.Encode(resp)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			// Large matrices are encoded in parts at the same time: the same bytes for any
			// number of parts, down to a series each.
			for _, parts := range []int{2, 3, 7, 1000} {
				got, ok, err := encodeMatrixInParts(resp, parts)
				require.NoError(t, err)
				if ok {
					require.Equal(t, string(want), string(got), "%d parts", parts)
				}
				if strings.HasPrefix(name, "day") && !ok {
					t.Errorf("%d parts: a day's matrix was not encoded in parts", parts)
				}
			}
		})
	}
	resp := responses["day"]
	got, err := sizedJSONCodec{}.Encode(resp)
	require.NoError(t, err)
	require.GreaterOrEqual(t, estimateJSONSize(resp), len(got), "the estimate falls short of a day's float matrix")
	require.Equal(t, v1.JSONCodec{}.ContentType(), sizedJSONCodec{}.ContentType())
}

// BenchmarkEncodeMatrix encodes a day's answer of 100 series (1,440 float points each) as the
// API does: through jsoniter with Prometheus's encoders (prometheus) and with the points
// written directly (metricstor), one goroutine, allocating as a query does between answers.
func BenchmarkEncodeMatrix(b *testing.B) {
	var m promql.Matrix
	for s := range 100 {
		series := promql.Series{Metric: labels.FromStrings("__name__", "node_network_transmit_packets_total",
			"device", "eth"+strconv.Itoa(s%4), "instance", "host-"+strconv.Itoa(s/4)+":9100", "job", "loadgen")}
		for p := range 1440 {
			series.Floats = append(series.Floats, promql.FPoint{T: 1_699_999_980_000 + int64(p)*60_000, F: float64(p*s) * 1.37})
		}
		m = append(m, series)
	}
	for _, c := range []struct {
		name   string
		encode func(promql.Matrix) ([]byte, error)
	}{
		{"prometheus", func(m promql.Matrix) ([]byte, error) { return encodeJSON(m, estimateMatrixSize(m)) }},
		{"metricstor", encodeMatrix},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.encode(m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(m)*1440), "ns/point")
		})
	}
}
