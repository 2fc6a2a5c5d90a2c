package e2e

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/harness"
)

// TestFederationPrometheus runs a real Prometheus that federates the binary as it would federate
// another Prometheus (honor_labels, /federate with match[]), in two scrape jobs: one in
// protobuf (native histograms on, so Prometheus asks for protobuf first) selecting {job="api"},
// one in the text format selecting {job="web"}. The series it then holds are exactly Metricstor's
// selected series: the same labels (no instance or job of the scrape added: Metricstor's empty
// instance on a series without one keeps Prometheus from adding its own), values, timestamps and
// the native histogram; a series ended by a stale marker and the unselected series are absent.
func TestFederationPrometheus(t *testing.T) {
	binary := harness.Binary(t)
	promBinary := conformance.PrometheusBinary(t)

	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	col := harness.NewCollector(t, "metricstor (federation)", binary, cfg)
	col.Start()
	waitListening(t, col.Proc, cfg.RemoteWriteURL())
	ms := cfg.Ports.PromQLURL()

	now := time.Now().UnixMilli()
	ts := func(kv ...string) prompb.TimeSeries {
		var ls []prompb.Label
		for i := 0; i < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return prompb.TimeSeries{Labels: ls}
	}
	a := ts("__name__", "fed_requests_total", "job", "api", "instance", "a", "code", "200")
	b := ts("__name__", "fed_requests_total", "job", "api", "instance", "b", "code", "500")
	temp := ts("__name__", "fed_temperature_celsius", "job", "web", "site", "paris") // no instance
	ratio := ts("__name__", "fed_ratio", "job", "web", "instance", "w-1")
	gone := ts("__name__", "fed_gone", "job", "api", "instance", "a")
	other := ts("__name__", "fed_requests_total", "job", "db", "instance", "d") // not selected
	lat := ts("__name__", "fed_latency_seconds", "job", "api", "instance", "a")
	for i := range 5 {
		t0 := now - int64(4-i)*15_000
		a.Samples = append(a.Samples, prompb.Sample{Timestamp: t0, Value: float64(100 + 10*i)})
		b.Samples = append(b.Samples, prompb.Sample{Timestamp: t0, Value: float64(3 + i)})
		temp.Samples = append(temp.Samples, prompb.Sample{Timestamp: t0, Value: 20.5 + float64(i)/4})
		ratio.Samples = append(ratio.Samples, prompb.Sample{Timestamp: t0 + 1_234, Value: 1.0 / 3})
		other.Samples = append(other.Samples, prompb.Sample{Timestamp: t0, Value: float64(i)})
		gv := float64(i)
		if i == 4 {
			gv = math.Float64frombits(value.StaleNaN)
		}
		gone.Samples = append(gone.Samples, prompb.Sample{Timestamp: t0, Value: gv})
		n := uint64(i + 1)
		lat.Histograms = append(lat.Histograms, prompb.FromIntHistogram(t0, &histogram.Histogram{
			Schema: 2, Count: 3 * n, Sum: 1.25 * float64(n), ZeroThreshold: 1e-128, ZeroCount: n,
			PositiveSpans: []histogram.Span{{Offset: 1, Length: 1}, {Offset: 3, Length: 1}}, PositiveBuckets: []int64{int64(n), 0},
		}))
	}
	if code, body := rwSendV1(t, cfg.RemoteWriteURL(), &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{a, b, temp, ratio, gone, other, lat},
	}); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, body)
	}

	target := strings.TrimPrefix(ms, "http://")
	prom := conformance.NewPrometheus(t, "prometheus (federation)", promBinary, fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: federate_proto
    honor_labels: true
    metrics_path: /federate
    scrape_native_histograms: true
    params:
      'match[]': ['{job="api"}']
    static_configs: [{targets: [%q]}]
  - job_name: federate_text
    honor_labels: true
    metrics_path: /federate
    scrape_protocols: [PrometheusText0.0.4]
    params:
      'match[]': ['fed_temperature_celsius', '{job="web"}']
    static_configs: [{targets: [%q]}]
`, target, target))
	prom.Start(t)
	defer prom.Stop()

	// Both jobs scraped, successfully, and in the protocols asked for.
	waitFor(t, "Prometheus scraped both federation jobs", func() bool {
		return len(queryResult(t, prom.URL(), `up == 1`)) == 2 && len(seriesOf(t, prom.URL(), `{__name__=~"fed_.+"}`)) >= 5
	})

	at := strconv.FormatFloat(float64(time.Now().UnixMilli())/1000, 'f', 3, 64)
	// What Prometheus holds of Metricstor's, compared with Metricstor's own answer for the
	// selection; each answer sorted.
	for _, q := range []struct{ ms, prom string }{
		{`{job=~"api|web"}`, `{__name__=~"fed_.+"}`},
		{`timestamp({job=~"api|web"})`, `timestamp({__name__=~"fed_.+"})`},
	} {
		want := promAnswer(t, ms, "/api/v1/query", url.Values{"query": {q.ms}, "time": {at}})
		got := promAnswer(t, prom.URL(), "/api/v1/query", url.Values{"query": {q.prom}, "time": {at}})
		if got != want {
			t.Errorf("Prometheus federating Metricstor holds\n %s\nMetricstor's selection is\n %s", got, want)
		}
	}
	// The comparison above is not of nothing: the selection has the five live series, the
	// histogram with its buckets, and the series without an instance has none in Prometheus.
	want := map[string]bool{
		`{"__name__":"fed_latency_seconds","instance":"a","job":"api"}`:             true,
		`{"__name__":"fed_ratio","instance":"w-1","job":"web"}`:                     true,
		`{"__name__":"fed_requests_total","code":"200","instance":"a","job":"api"}`: true,
		`{"__name__":"fed_requests_total","code":"500","instance":"b","job":"api"}`: true,
		`{"__name__":"fed_temperature_celsius","job":"web","site":"paris"}`:         true,
	}
	got := seriesOf(t, prom.URL(), `{__name__=~"fed_.+"}`)
	if len(got) != len(want) {
		t.Errorf("Prometheus holds %d fed_ series, want %d: %v", len(got), len(want), got)
	}
	for _, m := range got {
		if !want[m] {
			t.Errorf("unexpected series in Prometheus: %s", m)
		}
	}
	if v := queryResult(t, prom.URL(), `fed_requests_total{instance="a"}`); len(v) != 1 || !strings.HasSuffix(v[0], " 140") {
		t.Errorf("fed_requests_total{instance=a} in Prometheus: %v, want 140", v)
	}
	if v := queryResult(t, prom.URL(), `histogram_count(fed_latency_seconds)`); len(v) != 1 || !strings.HasSuffix(v[0], " 15") {
		t.Errorf("histogram_count(fed_latency_seconds) in Prometheus: %v, want 15 (the native histogram federated)", v)
	}
	// Metricstor has the unselected series and the stale-ended one's earlier samples; Prometheus
	// has neither.
	if v := queryResult(t, ms, `fed_requests_total{job="db"}`); len(v) != 1 {
		t.Errorf("Metricstor's unselected series: %v", v)
	}
	if v := queryResult(t, ms, `last_over_time(fed_gone[5m])`); len(v) != 1 {
		t.Errorf("Metricstor's stale-ended series: %v", v)
	}
	for _, q := range []string{`fed_requests_total{job="db"}`, `last_over_time(fed_gone[5m])`} {
		if v := queryResult(t, prom.URL(), q); len(v) != 0 {
			t.Errorf("Prometheus federated %s: %v", q, v)
		}
	}
	col.Stop(time.Minute)
}

// seriesOf is the label sets of an instant query's result (floats or histograms), as JSON.
func seriesOf(t *testing.T, base, q string) []string {
	t.Helper()
	d := apiGet(t, base, "/api/v1/query?query="+url.QueryEscape(q)).(map[string]any)
	var out []string
	for _, s := range d["result"].([]any) {
		out = append(out, jsonString(s.(map[string]any)["metric"]))
	}
	return out
}
