package receiver

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"

	"github.com/metricstor/metricstor/internal/passthrough"
	intmeta "github.com/metricstor/metricstor/receiver/internal/metadata"
)

// flatV1 is what both decoders are compared on: the content of a request, without gogo's
// bookkeeping fields (XXX_unrecognized, sizes) and without the nil/empty slice distinction.
type flatV1 struct {
	Series   []flatSeries
	Metadata []string
}

type flatSeries struct {
	Labels     []label
	Samples    []string
	Histograms []string
	Exemplars  []string
}

func flattenPrompb(req *prompb.WriteRequest) flatV1 {
	var out flatV1
	for _, ts := range req.Timeseries {
		var fs flatSeries
		for _, l := range ts.Labels {
			fs.Labels = append(fs.Labels, label{l.Name, l.Value})
		}
		for _, s := range ts.Samples {
			fs.Samples = append(fs.Samples, fmt.Sprintf("%x@%d", math.Float64bits(s.Value), s.Timestamp))
		}
		for _, h := range ts.Histograms {
			h.XXX_unrecognized = nil
			fs.Histograms = append(fs.Histograms, h.String())
		}
		for _, e := range ts.Exemplars {
			e.XXX_unrecognized = nil
			fs.Exemplars = append(fs.Exemplars, e.String())
		}
		out.Series = append(out.Series, fs)
	}
	for _, m := range req.Metadata {
		m.XXX_unrecognized = nil
		out.Metadata = append(out.Metadata, m.String())
	}
	return out
}

func flattenV1(req *v1Request) flatV1 {
	var out flatV1
	for _, rs := range req.series {
		var fs flatSeries
		fs.Labels = append(fs.Labels, req.labels[rs.labels.lo:rs.labels.hi]...)
		for _, s := range req.samples[rs.samples.lo:rs.samples.hi] {
			fs.Samples = append(fs.Samples, fmt.Sprintf("%x@%d", math.Float64bits(s.v), s.t))
		}
		for _, h := range req.histograms[rs.histograms.lo:rs.histograms.hi] {
			h.XXX_unrecognized = nil
			fs.Histograms = append(fs.Histograms, h.String())
		}
		for _, e := range req.exemplars[rs.exemplars.lo:rs.exemplars.hi] {
			e.XXX_unrecognized = nil
			fs.Exemplars = append(fs.Exemplars, e.String())
		}
		out.Series = append(out.Series, fs)
	}
	for _, m := range req.metadata {
		m.XXX_unrecognized = nil
		out.Metadata = append(out.Metadata, m.String())
	}
	return out
}

// decodeBoth decodes body with prompb's generated code and with decodeV1 (into a request that
// held something else before, as a pooled one does) and fails unless they agree.
func decodeBoth(t *testing.T, body []byte) {
	t.Helper()
	var want prompb.WriteRequest
	wantErr := want.Unmarshal(body)

	var got v1Request
	require.NoError(t, decodeV1(&got, mustMarshal(t, richV1())))
	gotErr := decodeV1(&got, body)
	if wantErr != nil || gotErr != nil {
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("prompb: %v, decodeV1: %v", wantErr, gotErr)
		}
		return
	}
	require.Equal(t, flattenPrompb(&want), flattenV1(&got))
}

func mustMarshal(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return b
}

// richV1 has a bit of everything 1.0 can carry.
func richV1() *prompb.WriteRequest {
	return &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:  v1Labels("__name__", "up", "job", "j", "instance", "i", "empty", ""),
				Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: math.Float64frombits(0x7ff0000000000002)}, {Timestamp: -5, Value: -0.5}},
				Exemplars: []prompb.Exemplar{{
					Labels: v1Labels("trace_id", "0123456789abcdef0123456789abcdef"), Value: 2, Timestamp: 1500,
				}},
			},
			{
				Labels:     v1Labels("__name__", "h", "le", "ünïcödé"),
				Histograms: []prompb.Histogram{prompb.FromIntHistogram(3000, intHistogram(3000)), prompb.FromFloatHistogram(4000, &histogram.FloatHistogram{Count: 2, Sum: 1, ZeroCount: 2})},
			},
			{}, // no labels, no samples
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "up", Help: "h", Unit: "u"}},
	}
}

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// TestDecodeV1MatchesPrompb checks the hand-written decoder against prompb's generated one on
// valid requests, unknown fields of every wire type, and the ways a message can be broken.
func TestDecodeV1MatchesPrompb(t *testing.T) {
	rich := mustMarshal(t, richV1())

	// A label and a sample with unknown fields of every wire type, a group among them, and a
	// field given twice (the last one wins).
	var unknown []byte
	unknown = appendTag(unknown, 9, wireVarint)
	unknown = binary.AppendUvarint(unknown, 300)
	unknown = appendTag(unknown, 10, wireFixed64)
	unknown = append(unknown, 1, 2, 3, 4, 5, 6, 7, 8)
	unknown = appendTag(unknown, 11, wireFixed32)
	unknown = append(unknown, 1, 2, 3, 4)
	unknown = appendBytesField(unknown, 12, []byte("xyz"))
	unknown = appendTag(unknown, 13, wireStartGroup)
	unknown = appendTag(unknown, 1, wireVarint)
	unknown = append(unknown, 1)
	unknown = appendTag(unknown, 13, wireEndGroup)
	lbl := appendBytesField(nil, fieldLabelName, []byte("__name__"))
	lbl = appendBytesField(lbl, fieldLabelValue, []byte("first"))
	lbl = append(lbl, unknown...)
	lbl = appendBytesField(lbl, fieldLabelValue, []byte("second"))
	smp := append([]byte{}, unknown...)
	smp = appendTag(smp, fieldSampleTimestamp, wireVarint)
	smp = binary.AppendUvarint(smp, 42)
	var ts []byte
	ts = appendBytesField(ts, fieldSeriesLabels, lbl)
	ts = append(ts, unknown...)
	ts = appendBytesField(ts, fieldSeriesSamples, smp)
	withUnknown := append(appendBytesField(nil, fieldWriteTimeseries, ts), unknown...)
	withUnknown = appendBytesField(withUnknown, 2, []byte("reserved field 2"))

	cases := map[string][]byte{
		"empty":           nil,
		"rich":            rich,
		"unknown fields":  withUnknown,
		"truncated":       rich[:len(rich)-3],
		"one byte":        {0x0a},
		"zero tag":        {0x00, 0x01},
		"end group":       {0x0c},
		"stray end group": append(appendTag(nil, 7, wireEndGroup), 0),
		"open group":      appendTag(nil, 7, wireStartGroup),
		"wrong wire ts":   append(appendTag(nil, fieldWriteTimeseries, wireVarint), 1),
		"wrong wire meta": append(appendTag(nil, fieldWriteMetadata, wireFixed32), 1, 2, 3, 4),
		"wrong wire label": appendBytesField(nil, fieldWriteTimeseries,
			append(appendTag(nil, fieldSeriesLabels, wireVarint), 1)),
		"wrong wire value": appendBytesField(nil, fieldWriteTimeseries,
			appendBytesField(nil, fieldSeriesSamples, append(appendTag(nil, fieldSampleValue, wireVarint), 1))),
		"short value": appendBytesField(nil, fieldWriteTimeseries,
			appendBytesField(nil, fieldSeriesSamples, append(appendTag(nil, fieldSampleValue, wireFixed64), 1, 2, 3))),
		"length past end": append(appendTag(nil, fieldWriteTimeseries, wireBytes), 0x7f, 1),
		"negative length": append(appendTag(nil, fieldWriteTimeseries, wireBytes), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"varint overflow": {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"illegal wire":    {0x0f},
		"bad histogram": appendBytesField(nil, fieldWriteTimeseries,
			appendBytesField(nil, fieldSeriesHistograms, []byte{0xff})),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) { decodeBoth(t, body) })
	}
}

// FuzzDecodeV1 compares decodeV1 with prompb's generated Unmarshal on arbitrary bodies: the same
// bodies are refused, and accepted ones decode to the same content.
func FuzzDecodeV1(f *testing.F) {
	f.Add(mustMarshal(f, richV1()))
	f.Add(mustMarshal(f, validV1()))
	f.Fuzz(func(t *testing.T, body []byte) { decodeBoth(t, body) })
}

// BenchmarkDecodeV1 measures decoding one request of the ingestion benchmark (2,000 series of
// node-exporter-like labels, one sample each) by prompb's generated code and by decodeV1 (its
// label buffer included). cpu-ns/sample is the process's CPU time per sample, garbage collection
// included.
func BenchmarkDecodeV1(b *testing.B) {
	body := ingestBody(b)
	b.Run("prompb", func(b *testing.B) {
		b.ReportAllocs()
		cpu := benchCPU(b)
		for b.Loop() {
			var req prompb.WriteRequest
			if err := req.Unmarshal(body); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((benchCPU(b)-cpu).Nanoseconds())/float64(b.N*ingestBatch), "cpu-ns/sample")
	})
	b.Run("decodeV1", func(b *testing.B) {
		b.ReportAllocs()
		var req v1Request
		cpu := benchCPU(b)
		for b.Loop() {
			if err := decodeV1(&req, body); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((benchCPU(b)-cpu).Nanoseconds())/float64(b.N*ingestBatch), "cpu-ns/sample")
	})
}

// ingestBody is one uncompressed request of BenchmarkRemoteWriteIngest's steady state.
func ingestBody(tb testing.TB) []byte {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, ingestBatch)}
	for i := range ingestBatch {
		req.Timeseries[i] = prompb.TimeSeries{
			Labels:  ingestLabels(i),
			Samples: []prompb.Sample{{Value: ingestValue(i, 1), Timestamp: ingestBaseMs + ingestIntervalMs}},
		}
	}
	b, err := req.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// The scope that marks the receiver's data is the receiver's own instrumentation scope.
func TestPassthroughScopeIsReceiverScope(t *testing.T) {
	require.Equal(t, intmeta.ScopeName, passthrough.ScopeName)
}

// TestDataOutlivesRequest keeps the pipeline data of a request (as a queue or a batch processor
// would) while later requests reuse the receiver's buffers: its names and labels must not change.
func TestDataOutlivesRequest(t *testing.T) {
	sink := new(consumertest.MetricsSink)
	url := startReceiver(t, sink, nil, nil)
	push := func(name, job, value string) {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  v1Labels("__name__", name, "job", job, "a", value),
			Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}},
		}}}
		require.Equal(t, http.StatusNoContent, pushV1(t, url, req).code)
	}
	push("first_metric", "first_job", "first_value")
	for range 5 {
		push("other_metric", "other_job", "other_value")
	}
	md := sink.AllMetrics()[0]
	rm := md.ResourceMetrics().At(0)
	job, _ := rm.Resource().Attributes().Get(passthrough.JobAttribute)
	require.Equal(t, "first_job", job.Str())
	m := rm.ScopeMetrics().At(0).Metrics().At(0)
	require.Equal(t, "first_metric", m.Name())
	a, _ := m.Gauge().DataPoints().At(0).Attributes().Get("a")
	require.Equal(t, "first_value", a.Str())
}

// BenchmarkConvertV1 measures what the receiver does with one request of the ingestion benchmark
// besides HTTP and the pipeline: decode the body, validate and build the
// pmetric data. cpu-ns/sample is the process's CPU time per sample (2,000 per request), garbage
// collection included; the machines are shared, so wall-clock ns/op means little.
func BenchmarkConvertV1(b *testing.B) {
	body := ingestBody(b)
	benchmarkConvert(b, func(c *converter) error {
		if err := decodeV1(&c.v1, body); err != nil {
			return err
		}
		c.fromV1(&c.v1)
		return nil
	})
}

// benchmarkConvert runs convert (decode one request of the ingestion benchmark into c and build
// its pipeline data) on a converter from the pool per request, as the receiver does, and reports
// the CPU time per sample.
func benchmarkConvert(b *testing.B, convert func(c *converter) error) {
	meta := newMetadataCache(100)
	meta.put("node_cpu_seconds_total", metadata.Metadata{Type: "counter"})
	b.ReportAllocs()
	n := 0
	cpu := benchCPU(b)
	for b.Loop() {
		c := newConverter(meta)
		if err := convert(c); err != nil {
			b.Fatal(err)
		}
		if c.samples != ingestBatch || len(c.errs) > 0 {
			b.Fatal(c.samples, c.errs)
		}
		c.release()
		n += ingestBatch
	}
	b.ReportMetric(float64((benchCPU(b)-cpu).Nanoseconds())/float64(n), "cpu-ns/sample")
}

// The decoder marks series whose label bytes are all ASCII, and validate checks UTF-8 only for
// the others: valid non-ASCII names and values are kept, invalid ones rejected, and a length
// whose varint has its high bit set (a string of 128 bytes or more) only costs the closer look.
func TestDecodeV1ASCIILabels(t *testing.T) {
	long := strings.Repeat("x", 200)
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "ascii", "a", "b"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "utf8", "a", "é"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "long", "a", long), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "bad", "a", "\xff"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "badname", "\xc3", "v"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
	}}
	body, err := req.Marshal()
	require.NoError(t, err)
	c := newConverter(newMetadataCache(10))
	defer c.release()
	require.NoError(t, decodeV1(&c.v1, body))
	var ascii []bool
	for _, rs := range c.v1.series {
		ascii = append(ascii, rs.ascii)
	}
	require.Equal(t, []bool{true, false, false, false, false}, ascii)

	c.fromV1(&c.v1)
	require.Equal(t, 3, c.samples)
	require.Len(t, c.errs, 2)
	require.Contains(t, c.errs[0], "not UTF-8")
	require.Contains(t, c.errs[1], "not UTF-8")
	got := map[string]string{}
	rms := c.md.ResourceMetrics()
	for i := range rms.Len() {
		ms := rms.At(i).ScopeMetrics().At(0).Metrics()
		for j := range ms.Len() {
			v, ok := ms.At(j).Gauge().DataPoints().At(0).Attributes().Get("a")
			require.True(t, ok)
			got[ms.At(j).Name()] = v.Str()
		}
	}
	require.Equal(t, map[string]string{"ascii": "b", "utf8": "é", "long": long}, got)
}

// The decoded strings are copies: the body is a pooled buffer that the next request overwrites.
// Scribbling over it after decoding changes nothing decoded, and a later request decoded into
// the same v1Request leaves the strings of the earlier one as they were.
func TestDecodeV1StringsOutliveBody(t *testing.T) {
	first := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "up", "instance", "a:9100", "job", "node"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "up", "instance", "b:9100", "job", "node"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
	}}
	body := mustMarshal(t, first)
	var want prompb.WriteRequest
	require.NoError(t, want.Unmarshal(mustMarshal(t, first)))

	var r v1Request
	require.NoError(t, decodeV1(&r, body))
	kept := flattenV1(&r)
	for i := range body {
		body[i] = 'x'
	}
	require.Equal(t, flattenPrompb(&want), kept)
	require.Equal(t, flattenPrompb(&want), flattenV1(&r))

	second := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "down", "instance", "c:9100", "job", "other"), Samples: []prompb.Sample{{Value: 2, Timestamp: 2}}},
	}})
	require.NoError(t, decodeV1(&r, second))
	require.Equal(t, flattenPrompb(&want), kept)
}

// A label whose bytes equal those of the previous series' label at the same place is that
// label's string, not a copy: the label buffer holds only what changes from series to series.
// Labels that shift place (a label more or less) are decoded right, only copied.
func TestDecodeV1ReusesPreviousSeriesStrings(t *testing.T) {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: v1Labels("__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "h:9100", "job", "node", "mode", "idle"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "h:9100", "job", "node", "mode", "user"), Samples: []prompb.Sample{{Value: 2, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "node_load1", "instance", "h:9100", "job", "node"), Samples: []prompb.Sample{{Value: 3, Timestamp: 1}}},
		{Labels: v1Labels("__name__", "node_load1", "device", "sda", "instance", "h:9100", "job", "node"), Samples: []prompb.Sample{{Value: 4, Timestamp: 1}}},
	}}
	body := mustMarshal(t, req)
	var want prompb.WriteRequest
	require.NoError(t, want.Unmarshal(body))
	var r v1Request
	require.NoError(t, decodeV1(&r, body))
	require.Equal(t, flattenPrompb(&want), flattenV1(&r))

	labelsOf := func(i int) []label { s := r.series[i].labels; return r.labels[s.lo:s.hi] }
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	first, second := labelsOf(0), labelsOf(1)
	for k := range 4 { // __name__, cpu, instance, job: the same bytes at the same place
		require.True(t, same(first[k].name, second[k].name), "name %d", k)
		require.True(t, same(first[k].value, second[k].value), "value %d", k)
	}
	require.Equal(t, "user", second[4].value)
	require.False(t, same(first[4].value, second[4].value))
	// The third series' instance and job sit where the second's cpu and instance were.
	third := labelsOf(2)
	require.True(t, same(second[0].name, third[0].name))
	require.Equal(t, label{"instance", "h:9100"}, third[1])
	require.Equal(t, label{"job", "node"}, third[2])
	// Only the bytes that changed were copied: the first series whole, then "user",
	// "node_load1", "instance", "h:9100", "job", "node", "device", "sda", "instance", "h:9100",
	// "job" and "node" (the fourth's labels past __name__ sit one place later than the third's).
	firstBytes := 0
	for _, l := range first {
		firstBytes += len(l.name) + len(l.value)
	}
	require.Equal(t, firstBytes+len("user")+len("node_load1")+2*len("instanceh:9100jobnode")+len("devicesda"), r.strs.sb.Len())
}
