package e2e

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// The fixture: one resource (a service instance) reporting five metrics, one of each OTLP kind,
// at steps 0..steps-1 spaced by step. Values grow linearly with the step so that rate() and
// histogram_quantile() have exact answers. Metric names and units follow the OTLP to
// Prometheus translation with the default UnderscoreEscapingWithSuffixes strategy.
const (
	steps = 5
	step  = 15 * time.Second

	job = "shop/checkout" // service.namespace/service.name

	gaugeName   = "e2e_cpu_utilization_ratio" // e2e.cpu.utilization, unit "1", gauge: _ratio
	counterName = "e2e_requests_total"        // e2e.requests, unit "{request}": annotation dropped, _total
	histName    = "e2e_request_duration_seconds"
	expHistName = "e2e_response_size_bytes" // exponential histogram: one native histogram series
	summaryName = "e2e_latency_milliseconds"
)

// Bounds of the explicit-bucket histogram and its bucket counts at step 0 (the last is the
// overflow bucket); at step i every count is multiplied by i+1.
var (
	histBounds = []float64{0.1, 0.5, 1}
	histCounts = []uint64{1, 2, 1, 0}
	histSum    = 1.45 // 0.05*1 + 0.3*2 + 0.8*1
)

type fixture struct {
	instance string    // service.instance.id, the instance label
	start    time.Time // timestamp of step 0, whole seconds
}

func newFixture(instance string, start time.Time) fixture {
	return fixture{instance: instance, start: start}
}

// startTime is a base for the fixtures: whole seconds, so that the last step lies a minute
// in the past.
func startTime() time.Time {
	return time.Now().Truncate(time.Second).Add(-time.Duration(steps-1)*step - time.Minute)
}

func (f fixture) at(i int) time.Time { return f.start.Add(time.Duration(i) * step) }
func (f fixture) last() time.Time    { return f.at(steps - 1) }

func gaugeValue(i int) float64   { return []float64{0.25, 0.5, 0.75, 0.5, 0.25}[i%5] }
func counterValue(i int) float64 { return 30 * float64(i+1) } // 2 per second
func summaryCount(i int) uint64  { return 10 * uint64(i+1) }
func summarySum(i int) float64   { return 150 * float64(i+1) }
func expBucket(i int) uint64     { return 2 * uint64(i+1) } // count of each of the two buckets
func expSum(i int) float64       { return 10 * float64(i+1) }

var summaryQuantiles = []struct{ q, v float64 }{{0.5, 10}, {0.99, 50}}

// metrics returns the OTLP payload of step i.
func (f fixture) metrics(i int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "checkout")
	res.PutStr("service.namespace", "shop")
	res.PutStr("service.instance.id", f.instance)
	res.PutStr("deployment.environment.name", "e2e")
	res.PutStr("host.name", "testhost")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/metricstor/metricstor/testbed/e2e")
	sm.Scope().SetVersion("1.0.0")

	ts := pcommon.NewTimestampFromTime(f.at(i))
	startTS := pcommon.NewTimestampFromTime(f.start.Add(-step))

	m := sm.Metrics().AppendEmpty()
	m.SetName("e2e.cpu.utilization")
	m.SetUnit("1")
	m.SetDescription("CPU utilization")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(gaugeValue(i))
	dp.Attributes().PutStr("cpu", "0")

	m = sm.Metrics().AppendEmpty()
	m.SetName("e2e.requests")
	m.SetUnit("{request}")
	m.SetDescription("Requests served")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp = sum.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(startTS)
	dp.SetTimestamp(ts)
	dp.SetIntValue(int64(counterValue(i)))
	dp.Attributes().PutStr("http.request.method", "GET")
	dp.Attributes().PutInt("http.response.status_code", 200)

	m = sm.Metrics().AppendEmpty()
	m.SetName("e2e.request.duration")
	m.SetUnit("s")
	m.SetDescription("Request duration")
	hist := m.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hdp := hist.DataPoints().AppendEmpty()
	hdp.SetStartTimestamp(startTS)
	hdp.SetTimestamp(ts)
	hdp.ExplicitBounds().FromRaw(histBounds)
	var total uint64
	for _, c := range histCounts {
		hdp.BucketCounts().Append(c * uint64(i+1))
		total += c * uint64(i+1)
	}
	hdp.SetCount(total)
	hdp.SetSum(histSum * float64(i+1))
	hdp.Attributes().PutStr("http.request.method", "GET")

	m = sm.Metrics().AppendEmpty()
	m.SetName("e2e.response.size")
	m.SetUnit("By")
	m.SetDescription("Response size")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	edp := eh.DataPoints().AppendEmpty()
	edp.SetStartTimestamp(startTS)
	edp.SetTimestamp(ts)
	edp.SetScale(0) // bucket k (with offset 0) is (2^k, 2^(k+1)]
	edp.Positive().SetOffset(0)
	edp.Positive().BucketCounts().FromRaw([]uint64{expBucket(i), expBucket(i)}) // (1,2] and (2,4]
	edp.SetCount(2 * expBucket(i))
	edp.SetSum(expSum(i))
	edp.Attributes().PutStr("http.request.method", "GET")

	m = sm.Metrics().AppendEmpty()
	m.SetName("e2e.latency")
	m.SetUnit("ms")
	m.SetDescription("Latency")
	sdp := m.SetEmptySummary().DataPoints().AppendEmpty()
	sdp.SetStartTimestamp(startTS)
	sdp.SetTimestamp(ts)
	sdp.SetCount(summaryCount(i))
	sdp.SetSum(summarySum(i))
	for _, q := range summaryQuantiles {
		qv := sdp.QuantileValues().AppendEmpty()
		qv.SetQuantile(q.q)
		qv.SetValue(q.v)
	}
	sdp.Attributes().PutStr("http.request.method", "GET")
	return md
}

// expectedSample is one series of the fixture with its value at a step.
type expectedSample struct {
	metric    model.Metric
	value     float64                // for float series
	histogram *model.SampleHistogram // for the native histogram series
}

func (f fixture) labels(name string, extra ...string) model.Metric {
	m := model.Metric{
		model.MetricNameLabel: model.LabelValue(name),
		"job":                 job,
		"instance":            model.LabelValue(f.instance),
	}
	for k := 0; k+1 < len(extra); k += 2 {
		m[model.LabelName(extra[k])] = model.LabelValue(extra[k+1])
	}
	return m
}

// expected returns every series the fixture produces with its value at step i, target_info
// included (a resource with attributes besides service.* gets one, with value 1).
func (f fixture) expected(i int) []expectedSample {
	n := float64(i + 1)
	out := []expectedSample{
		{metric: f.labels(gaugeName, "cpu", "0"), value: gaugeValue(i)},
		{metric: f.labels(counterName, "http_request_method", "GET", "http_response_status_code", "200"), value: counterValue(i)},
	}
	var cum uint64
	for b, c := range histCounts {
		cum += c
		le := "+Inf"
		if b < len(histBounds) {
			le = strconv.FormatFloat(histBounds[b], 'f', -1, 64)
		}
		out = append(out, expectedSample{metric: f.labels(histName+"_bucket", "http_request_method", "GET", "le", le), value: float64(cum) * n})
	}
	out = append(out,
		expectedSample{metric: f.labels(histName+"_count", "http_request_method", "GET"), value: float64(cum) * n},
		expectedSample{metric: f.labels(histName+"_sum", "http_request_method", "GET"), value: histSum * n},
		expectedSample{metric: f.labels(expHistName, "http_request_method", "GET"), histogram: &model.SampleHistogram{
			Count: model.FloatString(2 * expBucket(i)),
			Sum:   model.FloatString(expSum(i)),
			Buckets: model.HistogramBuckets{
				{Boundaries: 0, Lower: 1, Upper: 2, Count: model.FloatString(expBucket(i))},
				{Boundaries: 0, Lower: 2, Upper: 4, Count: model.FloatString(expBucket(i))},
			},
		}},
		expectedSample{metric: f.labels(summaryName+"_count", "http_request_method", "GET"), value: float64(summaryCount(i))},
		expectedSample{metric: f.labels(summaryName+"_sum", "http_request_method", "GET"), value: summarySum(i)},
	)
	for _, q := range summaryQuantiles {
		out = append(out, expectedSample{
			metric: f.labels(summaryName, "http_request_method", "GET", "quantile", strconv.FormatFloat(q.q, 'f', -1, 64)),
			value:  q.v,
		})
	}
	out = append(out, expectedSample{
		metric: f.labels("target_info", "deployment_environment_name", "e2e", "host_name", "testhost"),
		value:  1,
	})
	return out
}

// expectedNames are the metric names (values of __name__) of the fixture, sorted.
func expectedNames() []string {
	f := newFixture("x", time.Time{})
	var names []string
	for _, s := range f.expected(0) {
		names = append(names, string(s.metric[model.MetricNameLabel]))
	}
	sort.Strings(names)
	return names
}

// The histogram_quantile answers at the last step over rate(...[1m]): the rates of all buckets
// scale together, so they equal the quantiles of the bucket counts.
var (
	// Classic buckets: cumulative counts 1,3,4,4 (times i+1); rank 0.5*4 = 2 falls in (0.1,0.5]
	// between 1 and 3, linear interpolation: 0.1 + 0.4*(2-1)/(3-1).
	classicMedian = 0.3
	// Native (exponential) buckets (1,2] and (2,4] of equal count; rank 0.75 is halfway into
	// (2,4], interpolated on a log scale for exponential buckets: 2^1.5.
	nativeP75 = math.Exp2(1.5)
	// The counter grows by 30 every 15 s.
	counterRate = 2.0
)

func sampleKey(m model.Metric) string { return m.String() }

// expectedNamed returns the expected samples of step i whose metric name is name.
func (f fixture) expectedNamed(i int, name string) []expectedSample {
	var out []expectedSample
	for _, s := range f.expected(i) {
		if string(s.metric[model.MetricNameLabel]) == name {
			out = append(out, s)
		}
	}
	return out
}
