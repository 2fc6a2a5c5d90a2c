package receiver

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/metricstor/metricstor/storage"
)

// TestDirectMatchesPipeline sends the same requests, 1.0 and 2.0, to a receiver writing through
// pipeline data and to one writing directly, and compares everything: each answer (status,
// Written headers, body), then every stored series point by point (start timestamps, values bit
// for bit, histograms), the metadata and the exemplars. The requests mix what the write rules
// treat apart: labels with empty values, job and instance or not, series of one metric across
// targets, a series twice in a request, stale markers and NaN, start timestamps, integer, float
// and custom-bucket histograms, exemplars with and without timestamps, invalid series, and
// samples the store refuses (duplicates with another value, too old), with earlier requests'
// series known to the exporter's cache.
//
// Two differences are left out on purpose, where the pipeline data is the less exact: in one
// 2.0 request, series of one name with different metadata get the first one's through the
// pipeline (a metric holds one), and a series whose float samples, exponential and custom-bucket
// histograms alternate in a request is appended one kind after the other (a metric per kind). And when several series are refused in one request the
// pipeline names the first refusal of its own order (metric by metric): the bodies are compared
// without the series they name.
func TestDirectMatchesPipeline(t *testing.T) {
	pipeURL, pipeStore := startPipeline(t, false)
	directURL, directStore := startPipeline(t, true)
	rng := rand.New(rand.NewPCG(7, 36))
	gen := newRequestGen(rng)
	for round := range 40 {
		var rp, rd response
		if round%2 == 0 {
			req := gen.v1()
			rp, rd = pushV1(t, pipeURL, req), pushV1(t, directURL, req)
		} else {
			req := gen.v2()
			rp, rd = pushV2(t, pipeURL, req), pushV2(t, directURL, req)
		}
		require.Equal(t, rp.code, rd.code, "round %d: status; pipeline body %q, direct body %q", round, rp.body, rd.body)
		for _, h := range []string{"X-Prometheus-Remote-Write-Samples-Written", "X-Prometheus-Remote-Write-Histograms-Written", "X-Prometheus-Remote-Write-Exemplars-Written"} {
			assert.Equal(t, rp.header.Get(h), rd.header.Get(h), "round %d: %s", round, h)
		}
		assert.Equal(t, namedSeries.ReplaceAllString(rp.body, "series …"), namedSeries.ReplaceAllString(rd.body, "series …"), "round %d: body", round)
	}
	assert.Greater(t, gen.refusals, 0, "some requests had samples the store refuses")

	want := readAll(t, pipeStore)
	require.Greater(t, len(want), 20, "series stored")
	assertSeries(t, want, readAll(t, directStore))
	mp, err := pipeStore.MetricMetadata(context.Background(), "")
	require.NoError(t, err)
	md, err := directStore.MetricMetadata(context.Background(), "")
	require.NoError(t, err)
	require.NotEmpty(t, mp)
	assert.Equal(t, mp, md, "metadata")
	ep := allExemplars(t, pipeStore)
	require.NotEmpty(t, ep)
	assert.Equal(t, ep, allExemplars(t, directStore), "exemplars")
}

// namedSeries is how an error body names a refused series.
var namedSeries = regexp.MustCompile(`series \{[^}]*\}( at -?\d+)?`)

func allExemplars(t *testing.T, s storage.Store) map[string][]exemplar.Exemplar {
	t.Helper()
	eq, err := s.ExemplarQuerier(context.Background())
	require.NoError(t, err)
	res, err := eq.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")})
	require.NoError(t, err)
	out := map[string][]exemplar.Exemplar{}
	for _, r := range res {
		out[r.SeriesLabels.String()] = r.Exemplars
	}
	return out
}

// requestGen makes requests over a fixed set of metrics, each of one kind and one metadata.
type requestGen struct {
	rng      *rand.Rand
	now      int64
	last     map[string]int64 // the newest timestamp sent per series
	refusals int              // requests made to carry a sample the store refuses
}

type genMetric struct {
	name, help, unit string
	typ              writev2.Metadata_MetricType
	hist             bool
}

var genMetrics = []genMetric{
	{name: "node_cpu_seconds_total", help: "CPU time.", unit: "seconds", typ: writev2.Metadata_METRIC_TYPE_COUNTER},
	{name: "node_memory_bytes", help: "Memory.", unit: "bytes", typ: writev2.Metadata_METRIC_TYPE_GAUGE},
	{name: "http_request_duration_seconds_bucket", help: "Latency.", typ: writev2.Metadata_METRIC_TYPE_HISTOGRAM},
	{name: "rpc_seconds", help: "Native latency.", unit: "seconds", typ: writev2.Metadata_METRIC_TYPE_HISTOGRAM, hist: true},
	{name: "up"},
}

func newRequestGen(rng *rand.Rand) *requestGen {
	return &requestGen{rng: rng, now: 1_700_000_000_000, last: map[string]int64{}}
}

// genSeries is one series of a request, whatever the protocol.
type genSeries struct {
	ls         labels.Labels
	m          genMetric
	samples    []writev2.Sample
	histograms []writev2.Histogram
	exemplars  []exemplar.Exemplar
}

func (g *requestGen) series() []genSeries {
	g.now += 15_000
	var out []genSeries
	refuse := g.rng.IntN(4) == 0
	if refuse {
		g.refusals++
	}
	for range 12 + g.rng.IntN(12) {
		m := genMetrics[g.rng.IntN(len(genMetrics))]
		kv := []string{"__name__", m.name}
		if g.rng.IntN(5) > 0 {
			kv = append(kv, "job", fmt.Sprintf("job%d", g.rng.IntN(2)))
		}
		if g.rng.IntN(3) > 0 {
			kv = append(kv, "instance", fmt.Sprintf("10.0.0.%d:9100", g.rng.IntN(3)))
		}
		// Series that differ in a label's name only are different series.
		kv = append(kv, []string{"cpu", "core"}[g.rng.IntN(2)], fmt.Sprint(g.rng.IntN(3)))
		if g.rng.IntN(4) == 0 {
			kv = append(kv, "empty", "")
		}
		if g.rng.IntN(20) == 0 {
			kv[1] = "" // no metric name: invalid
		}
		ls := labels.FromStrings(kv...)
		key := labels.NewBuilder(ls).Del("empty").Labels().String() // the series stored
		t := max(g.now, g.last[key]+1000)
		n := 1 + g.rng.IntN(3)
		if refuse && g.last[key] > 0 && g.rng.IntN(2) == 0 {
			t = g.last[key] - 20*60_000 // too old
		}
		if g.last[key] < t+int64(n-1)*1000 {
			g.last[key] = t + int64(n-1)*1000
		}
		s := genSeries{ls: ls, m: m}
		var st int64
		if g.rng.IntN(3) == 0 {
			st = g.now - 3_600_000
		}
		// Exponential (integer or float) or custom buckets: one or the other for the whole series
		// (the pipeline holds them in two metrics, see above).
		custom := g.rng.IntN(3) == 0
		for i := range n {
			ts := t + int64(i)*1000
			if m.hist {
				h := &histogram.Histogram{Schema: 0, Count: uint64(4 * (i + 1)), Sum: float64(i) + 0.5, ZeroThreshold: 1e-128, ZeroCount: uint64(i + 1),
					PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{int64(i + 1), 0}, NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []int64{int64(i + 1)}}
				switch {
				case custom:
					s.histograms = append(s.histograms, writev2.FromIntHistogram(st, ts, customHistogram()))
				case g.rng.IntN(2) == 0:
					s.histograms = append(s.histograms, writev2.FromIntHistogram(st, ts, h))
				default:
					s.histograms = append(s.histograms, writev2.FromFloatHistogram(st, ts, h.ToFloat(nil)))
				}
				continue
			}
			v := float64(g.rng.IntN(1000)) / 4
			switch g.rng.IntN(12) {
			case 0:
				v = staleNaN
			case 1:
				v = math.NaN()
			}
			s.samples = append(s.samples, writev2.Sample{Value: v, Timestamp: ts, StartTimestamp: st})
		}
		if refuse && len(s.samples) > 0 && g.rng.IntN(3) == 0 {
			// The same timestamp again with another value: a duplicate the store refuses.
			last := s.samples[len(s.samples)-1]
			s.samples = append(s.samples, writev2.Sample{Value: last.Value + 1, Timestamp: last.Timestamp, StartTimestamp: st})
		}
		for i := range g.rng.IntN(3) {
			ts := t
			if i == 1 {
				ts = 0 // an exemplar without a timestamp
			}
			s.exemplars = append(s.exemplars, exemplar.Exemplar{Labels: labels.FromStrings("trace_id", fmt.Sprintf("%032x", g.rng.Uint64())), Value: float64(i), Ts: ts, HasTs: ts != 0})
		}
		out = append(out, s)
		if g.rng.IntN(8) == 0 {
			// The same series again later in the request, with newer samples.
			again := genSeries{ls: ls, m: m}
			if len(s.samples) > 0 {
				again.samples = []writev2.Sample{{Value: 1, Timestamp: g.last[key] + 1000}}
				g.last[key] += 1000
				out = append(out, again)
			}
		}
	}
	return out
}

func (g *requestGen) v1() *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	if g.rng.IntN(3) == 0 {
		for _, m := range genMetrics {
			if m.typ != writev2.Metadata_METRIC_TYPE_UNSPECIFIED {
				req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_MetricType(m.typ), MetricFamilyName: familyOf(m.name, "histogram"), Help: m.help, Unit: m.unit})
			}
		}
	}
	for _, s := range g.series() {
		ts := prompb.TimeSeries{}
		s.ls.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		for _, smp := range s.samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: smp.Value, Timestamp: smp.Timestamp})
		}
		for _, h := range s.histograms {
			if h.IsFloatHistogram() {
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(h.Timestamp, h.ToFloatHistogram()))
			} else {
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(h.Timestamp, h.ToIntHistogram()))
			}
		}
		for _, e := range s.exemplars {
			pe := prompb.Exemplar{Value: e.Value, Timestamp: e.Ts}
			e.Labels.Range(func(l labels.Label) { pe.Labels = append(pe.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
			ts.Exemplars = append(ts.Exemplars, pe)
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

func (g *requestGen) v2() *writev2.Request {
	b := newV2Builder()
	for _, s := range g.series() {
		var meta writev2.Metadata
		if s.m.typ != writev2.Metadata_METRIC_TYPE_UNSPECIFIED {
			meta = b.meta(s.m.typ, s.m.help, s.m.unit)
		}
		var exs []writev2.Exemplar
		for _, e := range s.exemplars {
			exs = append(exs, b.exemplar(e.Labels, e.Value, e.Ts))
		}
		b.series(s.ls, meta, s.samples, s.histograms, exs...)
	}
	return b.build()
}
