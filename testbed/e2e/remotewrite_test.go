package e2e

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/metricstor/metricstor/testbed/harness"
)

// defaultConfigOnFreePorts returns the repository's config.yaml with only its listen addresses
// and data directory changed: the pipeline under test is the default one.
func defaultConfigOnFreePorts(t *testing.T) (path string, ports harness.Ports, rwURL string) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ports = harness.NewPorts(t)
	rw := harness.FreePorts(t, 1)[0]
	text := string(data)
	// One pass over the text: replacing one pair after another would read a port written by an
	// earlier pair (a remote write port 43179 holds "127.0.0.1:4317").
	pairs := []string{
		"127.0.0.1:4317", harness.Addr(ports.OTLPGRPC),
		"127.0.0.1:4318", harness.Addr(ports.OTLPHTTP),
		"127.0.0.1:9201", harness.Addr(rw),
		"127.0.0.1:9090", harness.Addr(ports.PromQL),
		"port: 8888", "port: " + strconv.Itoa(ports.Telemetry),
		"directory: ./data", "directory: " + strconv.Quote(filepath.Join(t.TempDir(), "data")),
	}
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("config.yaml no longer contains %q", pairs[i])
		}
	}
	text = strings.NewReplacer(pairs...).Replace(text)
	return harness.WriteFile(t, "config.yaml", text), ports, "http://" + harness.Addr(rw) + "/api/v1/write"
}

func waitListening(t *testing.T, proc *harness.Process, url string) {
	t.Helper()
	host := strings.TrimPrefix(strings.TrimSuffix(url, "/api/v1/write"), "http://")
	proc.WaitFor(30*time.Second, harness.Probe("tcp://"+host))
}

// rwPost sends a marshaled remote write message as Prometheus does (snappy block, the protobuf
// content type of the version) and fails unless the answer is 204.
func rwPost(t *testing.T, url, contentType string, msg []byte) http.Header {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, msg)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST %s (%s): %s: %s", url, contentType, resp.Status, body)
	}
	return resp.Header
}

// rwSeries is one series of the remote write fixture and what PromQL must return for it.
type rwSeries struct {
	labels []string  // name/value pairs, unsorted on purpose
	ts     []int64   // ms
	vals   []float64 // StaleNaN allowed (last only)
	hist   *histogram.Histogram
	fhist  *histogram.FloatHistogram
}

func rwFixture(base int64) []rwSeries {
	stale := math.Float64frombits(value.StaleNaN)
	ts := []int64{base, base + 15_000, base + 30_000}
	return []rwSeries{
		{labels: []string{"job", "node", "__name__", "node_cpu_seconds_total", "instance", "10.1.2.3:9100", "cpu", "0", "mode", "idle"}, ts: ts, vals: []float64{100.5, 115.5, 130.5}},
		{labels: []string{"__name__", "node.temperature.celsius", "job", "node", "instance", "10.1.2.3:9100", "capteur", "été"}, ts: ts, vals: []float64{41, 42.25, stale}},
		{labels: []string{"__name__", "http_request_duration_seconds_bucket", "job", "api", "le", "0.25"}, ts: ts, vals: []float64{3, 5, 8}},
		{labels: []string{"__name__", "http_request_duration_seconds_bucket", "job", "api", "le", "+Inf"}, ts: ts, vals: []float64{4, 7, 11}},
		{labels: []string{"__name__", "http_request_duration_seconds_count", "job", "api"}, ts: ts, vals: []float64{4, 7, 11}},
		{labels: []string{"__name__", "http_request_duration_seconds_sum", "job", "api"}, ts: ts, vals: []float64{0.5, 0.9, 1.7}},
		{labels: []string{"__name__", "up", "job", "api", "instance", "a:1"}, ts: ts[:1], vals: []float64{1}},
	}
}

func nativeHistogram(n uint64) *histogram.Histogram {
	return &histogram.Histogram{Schema: 0, Count: 3 * n, Sum: 4.5 * float64(n), ZeroThreshold: 1e-128, ZeroCount: n,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{int64(n), 0}}
}

// TestRemoteWriteRoundTrip pushes remote write 1.0 and 2.0 to the binary running the default
// config.yaml and reads the series back through client_golang's API client: the same label
// sets (no suffixes, no target_info, job and instance as sent), the same timestamps and values,
// the stale marker ending a series, native histograms, metadata; also after kill -9.
func TestRemoteWriteRoundTrip(t *testing.T) {
	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	proc := harness.StartReady(t, "metricstor (remote write)", binary, configPath, ports)
	waitListening(t, proc, url)

	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	fixture := rwFixture(base)

	// 1.0: metadata in a request of its own, then the samples, then a native histogram series.
	meta := prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "node_cpu_seconds_total", Help: "Seconds the CPUs spent in each mode.", Unit: "seconds"},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "http_request_duration_seconds", Help: "Request latency."},
	}}
	b, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rwPost(t, url, "application/x-protobuf", b)
	var v1 prompb.WriteRequest
	for _, s := range fixture {
		ts := prompb.TimeSeries{}
		for i := 0; i+1 < len(s.labels); i += 2 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: s.labels[i], Value: s.labels[i+1]})
		}
		for i := range s.ts {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: s.ts[i], Value: s.vals[i]})
		}
		v1.Timeseries = append(v1.Timeseries, ts)
	}
	v1.Timeseries = append(v1.Timeseries, prompb.TimeSeries{
		Labels:     []prompb.Label{{Name: "__name__", Value: "rpc_latency_seconds"}, {Name: "job", Value: "api"}},
		Histograms: []prompb.Histogram{prompb.FromIntHistogram(base, nativeHistogram(1)), prompb.FromIntHistogram(base+15_000, nativeHistogram(2))},
	})
	if b, err = v1.Marshal(); err != nil {
		t.Fatal(err)
	}
	rwPost(t, url, "application/x-protobuf;proto=prometheus.WriteRequest", b)

	// 2.0: per-series metadata and a start timestamp.
	st := writev2.NewSymbolTable()
	v2 := writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "jobs_processed_total", "job", "worker", "instance", "w-1", "queue", "emails"), nil),
		Samples:    []writev2.Sample{{Timestamp: base, Value: 7, StartTimestamp: base - 60_000}, {Timestamp: base + 15_000, Value: 9, StartTimestamp: base - 60_000}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Jobs processed."), UnitRef: st.Symbolize("")},
	}}}
	v2.Symbols = st.Symbols()
	if b, err = v2.Marshal(); err != nil {
		t.Fatal(err)
	}
	h := rwPost(t, url, "application/x-protobuf;proto=io.prometheus.write.v2.Request", b)
	if got := h.Get("X-Prometheus-Remote-Write-Samples-Written"); got != "2" {
		t.Errorf("2.0 samples written header = %q, want 2", got)
	}

	check := func(t *testing.T) {
		api := newAPI(t, ports)
		ctx := queryCtx(t)
		// Every series, with its exact label set.
		want := map[string]bool{
			`{__name__="jobs_processed_total", instance="w-1", job="worker", queue="emails"}`: true,
			`{__name__="rpc_latency_seconds", job="api"}`:                                     true,
		}
		for _, s := range fixture {
			want[labels.FromStrings(s.labels...).String()] = true
		}
		sets, _, _, err := api.Series(ctx, []string{`{__name__=~".+"}`}, time.UnixMilli(base-60_000), time.UnixMilli(base+60_000))
		if err != nil {
			t.Fatal(apiError(err))
		}
		var got []string
		for _, ls := range sets {
			got = append(got, labelsOf(ls).String())
		}
		sort.Strings(got)
		if len(got) != len(want) {
			t.Errorf("series: got %d %v, want %d", len(got), got, len(want))
		}
		for _, g := range got {
			if !want[g] {
				t.Errorf("unexpected series %s", g)
			}
		}

		// Samples: a range query per series, step 15s aligned on the samples.
		for _, s := range fixture {
			ls := labels.FromStrings(s.labels...)
			var sel []string
			ls.Range(func(l labels.Label) {
				sel = append(sel, strconv.Quote(l.Name)+"="+strconv.Quote(l.Value))
			})
			q := "{" + strings.Join(sel, ",") + "}"
			res, _, _, err := api.QueryRange(ctx, q, promv1.Range{Start: time.UnixMilli(base), End: time.UnixMilli(base + 30_000), Step: 15 * time.Second})
			if err != nil {
				t.Fatalf("%s: %s", q, apiError(err))
			}
			m := res.(model.Matrix)
			if len(m) != 1 {
				t.Fatalf("%s: %d series, want 1", q, len(m))
			}
			if labelsOf(model.LabelSet(m[0].Metric)).String() != ls.String() {
				t.Errorf("%s: labels %s", q, m[0].Metric)
			}
			var wantPts []model.SamplePair
			for i := range s.ts {
				if value.IsStaleNaN(s.vals[i]) {
					break // the stale marker ends the series: no point from it on
				}
				wantPts = append(wantPts, model.SamplePair{Timestamp: model.Time(s.ts[i]), Value: model.SampleValue(s.vals[i])})
			}
			if s.ts[len(s.ts)-1] == s.ts[0] { // a single sample stays visible for the lookback delta
				wantPts = []model.SamplePair{{Timestamp: model.Time(base), Value: 1}, {Timestamp: model.Time(base + 15_000), Value: 1}, {Timestamp: model.Time(base + 30_000), Value: 1}}
			}
			if !equalPairs(m[0].Values, wantPts) {
				t.Errorf("%s: got %v, want %v", q, m[0].Values, wantPts)
			}
		}

		// The native histogram.
		res, _, _, err := api.Query(ctx, `rpc_latency_seconds`, time.UnixMilli(base+15_000))
		if err != nil {
			t.Fatal(apiError(err))
		}
		if v := res.(model.Vector); len(v) != 1 || v[0].Histogram == nil || v[0].Histogram.Count != 6 || v[0].Histogram.Sum != 9 {
			t.Errorf("rpc_latency_seconds at +15s: %v", res)
		}
		// The 2.0 counter.
		res, _, _, err = api.Query(ctx, `jobs_processed_total`, time.UnixMilli(base+15_000))
		if err != nil {
			t.Fatal(apiError(err))
		}
		if v := res.(model.Vector); len(v) != 1 || v[0].Value != 9 || v[0].Timestamp != model.Time(base+15_000) {
			t.Errorf("jobs_processed_total: %v", res)
		}

		// Metadata, as sent.
		md, err := api.Metadata(ctx, "", "")
		if err != nil {
			t.Fatal(apiError(err))
		}
		for name, want := range map[string]promv1.Metadata{
			"node_cpu_seconds_total":        {Type: "counter", Help: "Seconds the CPUs spent in each mode.", Unit: "seconds"},
			"http_request_duration_seconds": {Type: "histogram", Help: "Request latency."},
			"jobs_processed_total":          {Type: "counter", Help: "Jobs processed."},
		} {
			if got := md[name]; len(got) != 1 || got[0] != want {
				t.Errorf("metadata %s: got %v, want %v", name, got, want)
			}
		}
		if _, ok := md["target_info"]; ok {
			t.Error("target_info metadata recorded for remote write data")
		}
	}
	t.Run("before_kill", check)
	proc.Kill()
	harness.StartReady(t, "metricstor (remote write, after kill -9)", binary, configPath, ports)
	t.Run("after_kill", check)
}

func labelsOf(ls model.LabelSet) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for k, v := range ls {
		b.Add(string(k), string(v))
	}
	b.Sort()
	return b.Labels()
}

func equalPairs(a, b []model.SamplePair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Timestamp != b[i].Timestamp || math.Float64bits(float64(a[i].Value)) != math.Float64bits(float64(b[i].Value)) {
			return false
		}
	}
	return true
}
