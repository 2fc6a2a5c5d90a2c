package receiver

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// The 2.0 request is decoded into the converter's reused request: the pipeline data of a request
// kept past it (as a queue or a batch processor keeps it) must not change while later requests,
// larger and with other symbols and histograms, are decoded into the same request.
func TestDataOutlivesRequestV2(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	push := func(round int, series int) {
		b := newV2Builder()
		for i := range series {
			name := fmt.Sprintf("metric_%d_%d", round, i)
			b.series(labels.FromStrings("__name__", name, "job", fmt.Sprintf("job_%d", round), "a", fmt.Sprintf("value_%d_%d", round, i)),
				b.meta(writev2.Metadata_METRIC_TYPE_GAUGE, "help "+name, "unit_"+name),
				[]writev2.Sample{{Value: float64(round*1000 + i), Timestamp: int64(1000 + round)}}, nil)
		}
		b.series(labels.FromStrings("__name__", fmt.Sprintf("hist_%d", round), "job", fmt.Sprintf("job_%d", round)),
			b.meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "", ""), nil,
			[]writev2.Histogram{writev2.FromIntHistogram(0, int64(1000+round), intHistogram(int64(round)))})
		require.Equal(t, http.StatusNoContent, pushV2(t, url, b.build()).code)
	}
	push(0, 3)
	require.Len(t, sink.AllMetrics(), 1)
	want, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(sink.AllMetrics()[0])
	require.NoError(t, err)
	for round := 1; round <= 5; round++ {
		push(round, 50*round)
	}
	got, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(sink.AllMetrics()[0])
	require.NoError(t, err)
	require.Equal(t, want, got, "the first request's pipeline data changed while later requests were decoded")
	m := sink.AllMetrics()[0].ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	require.Equal(t, "metric_0_0", m.Name())
}

// A converter goes back to the pool with the arrays of its request, for the next one to decode
// into, unless the request was larger than the pool's bounds: then they go with it.
func TestPooledConverterBounds(t *testing.T) {
	v2Body := func(series int) []byte {
		b := newV2Builder()
		for i := range series {
			b.series(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), writev2.Metadata{},
				[]writev2.Sample{{Value: 1, Timestamp: 1000}}, nil)
		}
		body, err := b.build().Marshal()
		require.NoError(t, err)
		return body
	}
	v1Body := func(series int) []byte {
		req := &prompb.WriteRequest{}
		for i := range series {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels: v1Labels("__name__", "m", "i", fmt.Sprint(i)), Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}}})
		}
		body, err := req.Marshal()
		require.NoError(t, err)
		return body
	}
	c := newConverter(newMetadataCache(10))
	defer c.release()
	for _, tc := range []struct {
		series int
		kept   bool
	}{{series: 2000, kept: true}, {series: maxPooledSeries + 1, kept: false}} {
		require.NoError(t, c.v2.Unmarshal(v2Body(tc.series)))
		require.Len(t, c.v2.Timeseries, tc.series)
		c.resetV2()
		require.Empty(t, c.v2.Timeseries)
		require.Equal(t, tc.kept, cap(c.v2.Timeseries) >= tc.series, "2.0 series array of %d series kept", tc.series)

		require.NoError(t, decodeV1(&c.v1, v1Body(tc.series)))
		require.Len(t, c.v1.series, tc.series)
		c.v1.reset()
		require.Empty(t, c.v1.series)
		require.Equal(t, tc.kept, cap(c.v1.series) >= tc.series, "1.0 series array of %d series kept", tc.series)
	}
}

// BenchmarkConvertV2 is BenchmarkConvertV1 for remote write 2.0: the same 2,000 series, their
// labels interned in the request's symbols, decoded by decodeV2 into the converter's request as
// the receiver does.
func BenchmarkConvertV2(b *testing.B) {
	body := ingestBodyV2(b)
	benchmarkConvert(b, func(c *converter) error {
		if err := decodeV2(&c.v2, body, &c.v2buf); err != nil {
			return err
		}
		c.fromV2(&c.v2)
		return nil
	})
}

// BenchmarkDecodeV2 measures decoding BenchmarkConvertV2's request by the generated Unmarshal
// (into a fresh request, as the receiver did before decodeV2) and by decodeV2 (into a reused
// one). cpu-ns/sample as in BenchmarkDecodeV1.
func BenchmarkDecodeV2(b *testing.B) {
	body := ingestBodyV2(b)
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		cpu := benchCPU(b)
		for b.Loop() {
			var req writev2.Request
			if err := req.Unmarshal(body); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((benchCPU(b)-cpu).Nanoseconds())/float64(b.N*ingestBatch), "cpu-ns/sample")
	})
	b.Run("decodeV2", func(b *testing.B) {
		b.ReportAllocs()
		c := newConverter(newMetadataCache(10))
		defer c.release()
		cpu := benchCPU(b)
		for b.Loop() {
			c.resetV2()
			if err := decodeV2(&c.v2, body, &c.v2buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((benchCPU(b)-cpu).Nanoseconds())/float64(b.N*ingestBatch), "cpu-ns/sample")
	})
}

// ingestBodyV2 is ingestBody as a 2.0 request, the counters' metadata in each series.
func ingestBodyV2(b *testing.B) []byte {
	st := writev2.NewSymbolTable()
	req := writev2.Request{Timeseries: make([]writev2.TimeSeries, ingestBatch)}
	for i := range ingestBatch {
		var lb labels.ScratchBuilder
		for _, l := range ingestLabels(i) {
			lb.Add(l.Name, l.Value)
		}
		req.Timeseries[i] = writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(lb.Labels(), nil),
			Samples:    []writev2.Sample{{Value: ingestValue(i, 1), Timestamp: ingestBaseMs + ingestIntervalMs}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER},
		}
	}
	req.Symbols = st.Symbols()
	body, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// samplesAhead counts the samples of the run of series with the name, job and instance of the
// metric being created, from the series being converted on, for 1.0 and 2.0 requests alike: the
// capacity newMetric gives a metric's points. A run of one name across targets is one metric
// each, each counting its own series only (summed, the capacities are the request's samples).
func TestSamplesAhead(t *testing.T) {
	type ts struct {
		name, instance string
		samples        int
	}
	in := []ts{{"a", "x", 1}, {"a", "x", 2}, {"b", "x", 1}, {"a", "x", 1}, {"", "x", 3}, {"c", "x", 0}, {"c", "x", 4},
		{"up", "t0", 1}, {"up", "t1", 1}, {"up", "t2", 2}, {"up", "", 1}}
	v1 := &prompb.WriteRequest{}
	v2 := newV2Builder()
	for i, s := range in {
		ls := []string{"i", fmt.Sprint(i), "job", "j"}
		if s.name != "" {
			ls = append(ls, "__name__", s.name)
		}
		if s.instance != "" {
			ls = append(ls, "instance", s.instance)
		}
		var smp1 []prompb.Sample
		var smp2 []writev2.Sample
		for j := range s.samples {
			smp1 = append(smp1, prompb.Sample{Value: 1, Timestamp: int64(1000 + j)})
			smp2 = append(smp2, writev2.Sample{Value: 1, Timestamp: int64(1000 + j)})
		}
		v1.Timeseries = append(v1.Timeseries, prompb.TimeSeries{Labels: v1Labels(ls...), Samples: smp1})
		v2.series(labels.FromStrings(ls...), writev2.Metadata{}, smp2, nil)
	}
	body, err := v1.Marshal()
	require.NoError(t, err)
	c := newConverter(newMetadataCache(10))
	defer c.release()
	require.NoError(t, decodeV1(&c.v1, body))
	v2Req := v2.build()

	key := func(name, instance string) metricKey {
		return metricKey{res: resourceKey{job: "j", instance: instance}, name: name}
	}
	for _, tc := range []struct {
		at   int
		key  metricKey
		want int
	}{
		{0, key("a", "x"), 3}, // the first two series; the third is b
		{1, key("a", "x"), 2},
		{2, key("b", "x"), 1},
		{3, key("a", "x"), 1}, // up to the unnamed series
		{0, key("b", "x"), 0}, // not the series at hand
		{0, key("a", "y"), 0}, // another instance
		{5, key("c", "x"), 4}, // a series without samples counts none
		{6, key("c", "x"), 4},
		{7, key("up", "t0"), 1}, // each target its own
		{8, key("up", "t1"), 1},
		{9, key("up", "t2"), 2},
		{10, key("up", ""), 1}, // no instance label
	} {
		c.req1, c.req2, c.at = &c.v1, nil, tc.at
		require.Equal(t, tc.want, c.samplesAhead(tc.key), "1.0: %v from series %d", tc.key, tc.at)
		c.req1, c.req2 = nil, v2Req
		require.Equal(t, tc.want, c.samplesAhead(tc.key), "2.0: %v from series %d", tc.key, tc.at)
	}
	c.req1, c.req2 = nil, nil
	require.Zero(t, c.samplesAhead(key("a", "x")), "no request")
}
