package e2e

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the otlp_grpc exporter compresses with gzip by default

	"github.com/metricstor/metricstor/testbed/harness"
)

// The examples of README.md's "Processors before storage" section, each a configuration file in
// examples/processors merged over the test's configuration (the default pipeline on free ports)
// exactly as the README tells users to merge it over config.yaml.

// startExample starts the binary on cfg followed by examples/processors/<example> and waits until
// its listeners answer.
func startExample(t *testing.T, cfg harness.Config, example string) *harness.Process {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := harness.Start(t, "metricstor", harness.Binary(t),
		"--config", cfg.Write(t), "--config", filepath.Join(root, "examples", "processors", example))
	p.WaitFor(time.Minute, cfg.Probes()...)
	return p
}

// otlpResource appends a resource with the given job (service.name) and instance
// (service.instance.id) to md and returns its metric slice.
func otlpResource(md pmetric.Metrics, job, instance string) pmetric.MetricSlice {
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", job)
	rm.Resource().Attributes().PutStr("service.instance.id", instance)
	return rm.ScopeMetrics().AppendEmpty().Metrics()
}

func putAttrs(m pcommon.Map, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		m.PutStr(kv[i], kv[i+1])
	}
}

func addGauge(ms pmetric.MetricSlice, name string, at time.Time, v float64, kv ...string) {
	m := ms.AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetDoubleValue(v)
	putAttrs(dp.Attributes(), kv)
}

// addCounter adds a monotonic sum with one point over [start, at] with the given temporality.
func addCounter(ms pmetric.MetricSlice, name string, temp pmetric.AggregationTemporality, start, at time.Time, v float64, kv ...string) pmetric.Metric {
	m := ms.AppendEmpty()
	m.SetName(name)
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(temp)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetDoubleValue(v)
	putAttrs(dp.Attributes(), kv)
	return m
}

// addPoint adds a point of another series to sum m, at the times of its first point.
func addPoint(m pmetric.Metric, v float64, kv ...string) {
	dps := m.Sum().DataPoints()
	dp := dps.AppendEmpty()
	dp.SetStartTimestamp(dps.At(0).StartTimestamp())
	dp.SetTimestamp(dps.At(0).Timestamp())
	dp.SetDoubleValue(v)
	putAttrs(dp.Attributes(), kv)
}

// seriesSet returns the label sets /api/v1/series finds for match around at, sorted.
func seriesSet(t *testing.T, ports harness.Ports, match string, at time.Time) []string {
	t.Helper()
	sets, warn, _, err := newAPI(t, ports).Series(queryCtx(t), []string{match}, at.Add(-time.Minute), at.Add(time.Minute))
	if err != nil {
		t.Fatalf("series %s: %s", match, apiError(err))
	}
	checkNoWarnings(t, "series "+match, warn)
	out := make([]string, 0, len(sets))
	for _, ls := range sets {
		out = append(out, model.Metric(ls).String())
	}
	sort.Strings(out)
	return out
}

func checkSeries(t *testing.T, what string, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func checkValues(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: got %v, want %v", what, got, want)
			return
		}
	}
}

// TestProcessorsCardinality runs examples/processors/cardinality.yaml: metrics dropped by name,
// series dropped by a label value and by job are absent from /api/v1/series and from queries,
// for OTLP and remote write data alike, every other series of the same requests is stored, and
// the series that differed only in the dropped `user_id` label are stored as their sum.
func TestProcessorsCardinality(t *testing.T) {
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	startExample(t, cfg, "cardinality.yaml")
	at := time.Now().Truncate(time.Second).Add(-time.Minute)

	md := pmetric.NewMetrics()
	shop := otlpResource(md, "shop", "a")
	addGauge(shop, "go_memstats_alloc_bytes", at, 1)
	requests := addCounter(shop, "http_requests", pmetric.AggregationTemporalityCumulative, at.Add(-time.Hour), at, 10, "path", "/api/orders", "user_id", "u1")
	addPoint(requests, 5, "path", "/api/orders", "user_id", "u2")
	addPoint(requests, 1, "path", "/api/cart", "user_id", "u1")
	addPoint(requests, 2, "path", "/debug/pprof")
	addGauge(shop, "temperature", at, 21.5)
	addGauge(otlpResource(md, "load-test", "b"), "temperature", at, 99)
	pushGRPC(t, cfg.Ports, md)

	ms := at.UnixMilli()
	code, body := rwSendV1(t, cfg.RemoteWriteURL(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		rwTimeseries(ms, 4096, "__name__", "go_memstats_heap_bytes", "job", "node", "instance", "n1"),
		rwTimeseries(ms, 0.5, "__name__", "node_load1", "job", "node", "instance", "n1"),
		rwTimeseries(ms, 7, "__name__", "http_requests_total", "job", "node", "instance", "n1", "path", "/debug/vars"),
		rwTimeseries(ms, 6, "__name__", "http_requests_total", "job", "node", "instance", "n1", "path", "/", "user_id", "u1"),
		rwTimeseries(ms, 2, "__name__", "http_requests_total", "job", "node", "instance", "n1", "path", "/", "user_id", "u2"),
		rwTimeseries(ms, 9, "__name__", "node_load1", "job", "load-test", "instance", "n2"),
	}})
	if code != 204 {
		t.Fatalf("remote write: %d %s", code, body)
	}

	got := seriesSet(t, cfg.Ports, `{job=~"shop|load-test|node"}`, at)
	checkSeries(t, "series after the filter", got, []string{
		`http_requests_total{instance="a", job="shop", path="/api/orders"}`,
		`http_requests_total{instance="a", job="shop", path="/api/cart"}`,
		`temperature{instance="a", job="shop"}`,
		`node_load1{instance="n1", job="node"}`,
		`http_requests_total{instance="n1", job="node", path="/"}`,
	})
	checkValues(t, "kept values", instantVector(t, cfg.Ports, `{job=~"shop|load-test|node"}`, at), map[string]float64{
		`http_requests_total{instance="a", job="shop", path="/api/orders"}`: 15, // u1 + u2
		`http_requests_total{instance="a", job="shop", path="/api/cart"}`:   1,
		`temperature{instance="a", job="shop"}`:                             21.5,
		`node_load1{instance="n1", job="node"}`:                             0.5,
		`http_requests_total{instance="n1", job="node", path="/"}`:          8, // u1 + u2
	})
	for _, q := range []string{`{__name__=~"go_memstats_.*"}`, `{path=~"/debug/.*"}`, `{job="load-test"}`, `{user_id!=""}`} {
		if got := instantVector(t, cfg.Ports, q, at); len(got) != 0 {
			t.Errorf("%s: dropped series were stored: %v", q, got)
		}
	}
	// Dropping is not silent: the processor counts what it dropped in the collector's metrics.
	if got := telemetrySum(t, cfg.Ports, "otelcol_processor_filter_datapoints_filtered"); got != 6 {
		t.Errorf("otelcol_processor_filter_datapoints_filtered = %v, want 6 (2 by name, 2 by path, 2 by job)", got)
	}
}

// telemetrySum adds up the samples of the collector's own metric name (all label sets, with or
// without the _total suffix) from its Prometheus endpoint.
func telemetrySum(t *testing.T, ports harness.Ports, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + harness.Addr(ports.Telemetry) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	found := false
	for line := range strings.SplitSeq(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || !(strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "_total")) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("telemetry line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("telemetry has no %s:\n%s", name, body)
	}
	return sum
}

// TestProcessorsLabels runs examples/processors/labels.yaml: the `status` label is renamed
// `code`, `http_hits` is stored as `http_requests_total`, `region` is added where missing and kept
// where set, and the resource attribute set by the resource processor becomes a label of OTLP
// series through the exporter's promote_resource_attributes. Remote write series get the data
// point attribute changes; their labels never come from resource attributes other than
// job/instance (the receiver's passthrough ignores the translation keys), which the test pins.
func TestProcessorsLabels(t *testing.T) {
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	startExample(t, cfg, "labels.yaml")
	at := time.Now().Truncate(time.Second).Add(-time.Minute)

	md := pmetric.NewMetrics()
	shop := otlpResource(md, "shop", "a")
	addCounter(shop, "http_hits", pmetric.AggregationTemporalityCumulative, at.Add(-time.Hour), at, 42, "status", "200")
	addGauge(shop, "queue_depth", at, 3, "region", "us-east-1")
	pushHTTP(t, cfg.Ports, md)

	code, body := rwSendV1(t, cfg.RemoteWriteURL(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		rwTimeseries(at.UnixMilli(), 1, "__name__", "probe_success", "job", "blackbox", "instance", "n1", "status", "ok"),
	}})
	if code != 204 {
		t.Fatalf("remote write: %d %s", code, body)
	}

	want := map[string]float64{
		`http_requests_total{code="200", deployment_environment_name="production", instance="a", job="shop", region="eu-west-1"}`: 42,
		`queue_depth{deployment_environment_name="production", instance="a", job="shop", region="us-east-1"}`:                     3,
		`probe_success{code="ok", instance="n1", job="blackbox", region="eu-west-1"}`:                                             1,
		// The resource now has a non-identifying attribute, so the exporter writes target_info,
		// as Prometheus's OTLP endpoint does.
		`target_info{deployment_environment_name="production", instance="a", job="shop"}`: 1,
	}
	checkValues(t, "relabelled series", instantVector(t, cfg.Ports, `{job=~"shop|blackbox"}`, at), want)
	var wantSeries []string
	for k := range want {
		wantSeries = append(wantSeries, k)
	}
	checkSeries(t, "series", seriesSet(t, cfg.Ports, `{job=~"shop|blackbox"}`, at), wantSeries)
	for _, q := range []string{`{status!=""}`, `{__name__=~"http_hits.*"}`} {
		if got := instantVector(t, cfg.Ports, q, at); len(got) != 0 {
			t.Errorf("%s: the old name is still stored: %v", q, got)
		}
	}
}

// TestProcessorsDeltaToCumulative runs examples/processors/delta.yaml: delta sums and delta
// histograms pushed one interval per request come back as the running totals a Prometheus
// counter and classic histogram would have. Without the processor the exporter refuses deltas
// (allow_delta_temporality: false), so every value read back went through it. After a kill -9
// and restart the store still has the totals, and the processor's totals start again from the
// next delta: one counter reset, which rate() and increase() account for.
func TestProcessorsDeltaToCumulative(t *testing.T) {
	cfg := harness.NewConfig(t)
	p := startExample(t, cfg, "delta.yaml")
	t0 := time.Now().Truncate(time.Second).Add(-2 * time.Minute)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }

	type interval struct {
		orders  float64
		buckets []uint64 // le 0.1, le 1, +Inf
		sum     float64
	}
	push := func(i int, iv interval) {
		t.Helper()
		md := pmetric.NewMetrics()
		ms := otlpResource(md, "shop", "a")
		addCounter(ms, "orders", pmetric.AggregationTemporalityDelta, at(i-1), at(i), iv.orders)
		m := ms.AppendEmpty()
		m.SetName("latency")
		m.SetUnit("s")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := h.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(at(i - 1)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at(i)))
		dp.ExplicitBounds().FromRaw([]float64{0.1, 1})
		dp.BucketCounts().FromRaw(iv.buckets)
		var n uint64
		for _, c := range iv.buckets {
			n += c
		}
		dp.SetCount(n)
		dp.SetSum(iv.sum)
		pushGRPC(t, cfg.Ports, md)
	}
	push(1, interval{orders: 5, buckets: []uint64{1, 2, 0}, sum: 1.5})
	push(2, interval{orders: 3, buckets: []uint64{0, 1, 1}, sum: 2})
	push(3, interval{orders: 2, buckets: []uint64{2, 0, 0}, sum: 0.1})

	const sel = `{job="shop", instance="a"}`
	ls := func(name, extra string) string {
		return name + `{instance="a", job="shop"` + extra + `}`
	}
	for i, want := range []map[string]float64{
		{ls("orders_total", ""): 5, ls("latency_seconds_bucket", `, le="0.1"`): 1, ls("latency_seconds_bucket", `, le="1"`): 3,
			ls("latency_seconds_bucket", `, le="+Inf"`): 3, ls("latency_seconds_count", ""): 3, ls("latency_seconds_sum", ""): 1.5},
		{ls("orders_total", ""): 8, ls("latency_seconds_bucket", `, le="0.1"`): 1, ls("latency_seconds_bucket", `, le="1"`): 4,
			ls("latency_seconds_bucket", `, le="+Inf"`): 5, ls("latency_seconds_count", ""): 5, ls("latency_seconds_sum", ""): 3.5},
		{ls("orders_total", ""): 10, ls("latency_seconds_bucket", `, le="0.1"`): 3, ls("latency_seconds_bucket", `, le="1"`): 6,
			ls("latency_seconds_bucket", `, le="+Inf"`): 7, ls("latency_seconds_count", ""): 7, ls("latency_seconds_sum", ""): 3.6},
	} {
		checkValues(t, fmt.Sprintf("cumulative values at step %d", i+1), instantVector(t, cfg.Ports, sel, at(i+1)), want)
	}
	if t.Failed() {
		return
	}

	p.Kill() // kill -9: what was acknowledged is stored, the processor's totals are gone
	startExample(t, cfg, "delta.yaml")
	push(4, interval{orders: 4, buckets: []uint64{0, 0, 1}, sum: 5})
	checkValues(t, "orders_total after the restart", instantVector(t, cfg.Ports, `orders_total`+sel, at(4)),
		map[string]float64{ls("orders_total", ""): 4})
	checkValues(t, "orders_total before the restart", instantVector(t, cfg.Ports, `orders_total`+sel, at(3)),
		map[string]float64{ls("orders_total", ""): 10})
	// 5, 8, 10 before the restart, 4 after: one counter reset, which rate() and increase()
	// account for.
	checkValues(t, "resets across the restart", instantVector(t, cfg.Ports, `resets(orders_total`+sel+`[35s])`, at(4)),
		map[string]float64{`{instance="a", job="shop"}`: 1})
}

// otlpSink is an OTLP gRPC metrics server that keeps what it receives.
type otlpSink struct {
	pmetricotlp.UnimplementedGRPCServer
	mu  sync.Mutex
	got []pmetric.Metrics
}

func (s *otlpSink) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := pmetric.NewMetrics()
	req.Metrics().CopyTo(md)
	s.got = append(s.got, md)
	return pmetricotlp.NewExportResponse(), nil
}

// gauge returns the value of the first gauge point named name the sink received.
func (s *otlpSink) gauge(name string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, md := range s.got {
		rms := md.ResourceMetrics()
		for i := range rms.Len() {
			sms := rms.At(i).ScopeMetrics()
			for j := range sms.Len() {
				ms := sms.At(j).Metrics()
				for k := range ms.Len() {
					if m := ms.At(k); m.Name() == name && m.Type() == pmetric.MetricTypeGauge && m.Gauge().DataPoints().Len() > 0 {
						return m.Gauge().DataPoints().At(0).DoubleValue(), true
					}
				}
			}
		}
	}
	return 0, false
}

// TestProcessorsForward runs examples/processors/forward.yaml with METRICSTOR_FORWARD_ENDPOINT
// pointing at an OTLP gRPC server of the test: a push is stored (queryable) and forwarded.
func TestProcessorsForward(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	sink := &otlpSink{}
	pmetricotlp.RegisterGRPCServer(srv, sink)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	t.Setenv("METRICSTOR_FORWARD_ENDPOINT", lis.Addr().String())

	cfg := harness.NewConfig(t)
	startExample(t, cfg, "forward.yaml")
	at := time.Now().Truncate(time.Second).Add(-time.Minute)
	md := pmetric.NewMetrics()
	addGauge(otlpResource(md, "shop", "a"), "forwarded_gauge", at, 7)
	pushGRPC(t, cfg.Ports, md)

	checkValues(t, "stored", instantVector(t, cfg.Ports, `forwarded_gauge`, at),
		map[string]float64{`forwarded_gauge{instance="a", job="shop"}`: 7})
	// The forward exporter sends from its queue, after the push was acknowledged: wait for it.
	deadline := time.Now().Add(time.Minute)
	for {
		if v, ok := sink.gauge("forwarded_gauge"); ok {
			if v != 7 {
				t.Errorf("forwarded forwarded_gauge = %v, want 7", v)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("forwarded_gauge did not reach the forward endpoint within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProcessorExamplesInREADME keeps README.md's "Processors before storage" section true: each
// YAML block whose first line names a file in examples/processors is that file byte for byte (the
// files the tests above run), and every file there is shown.
func TestProcessorExamplesInREADME(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "examples", "processors", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/processors/*.yaml: %v", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	checkREADMEExamples(t, "Processors before storage", "processors", names)
}

// httpSink is an OTLP/HTTP metrics endpoint (protobuf, gzip or not) that keeps what it receives.
type httpSink struct {
	mu  sync.Mutex
	got []pmetric.Metrics
}

func (s *httpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.got = append(s.got, req.Metrics())
	s.mu.Unlock()
	resp, _ := pmetricotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// sums returns the points of the sums named name received so far, as "temporality value".
func (s *httpSink) sums(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, md := range s.got {
		rms := md.ResourceMetrics()
		for i := range rms.Len() {
			sms := rms.At(i).ScopeMetrics()
			for j := range sms.Len() {
				ms := sms.At(j).Metrics()
				for k := range ms.Len() {
					m := ms.At(k)
					if m.Name() != name || m.Type() != pmetric.MetricTypeSum {
						continue
					}
					for l := range m.Sum().DataPoints().Len() {
						out = append(out, fmt.Sprintf("%s %v", m.Sum().AggregationTemporality(), m.Sum().DataPoints().At(l).DoubleValue()))
					}
				}
			}
		}
	}
	return out
}

// TestProcessorsOtherComponents runs the components no README example uses, in one
// configuration: groupbyattrs in the storing pipeline, and a second pipeline from the same otlp
// receiver through cumulative_to_delta to an otlp_http exporter and an OTLP/HTTP endpoint of the
// test. The store gets the cumulative counter (its `host` label moved to the resource, so on
// target_info), the forward endpoint the delta between the two pushes.
func TestProcessorsOtherComponents(t *testing.T) {
	sink := &httpSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)

	cfg := harness.NewConfig(t)
	overlay := harness.WriteFile(t, "overlay.yaml", `processors:
  groupbyattrs/host:
    keys: [host]
  cumulative_to_delta: {}
exporters:
  otlp_http/forward:
    endpoint: `+srv.URL+`
service:
  pipelines:
    metrics:
      processors: [groupbyattrs/host]
    metrics/forward:
      receivers: [otlp]
      processors: [cumulative_to_delta]
      exporters: [otlp_http/forward]
`)
	p := harness.Start(t, "metricstor", harness.Binary(t), "--config", cfg.Write(t), "--config", overlay)
	p.WaitFor(time.Minute, cfg.Probes()...)

	t1 := time.Now().Truncate(time.Second).Add(-time.Minute)
	t2 := t1.Add(10 * time.Second)
	for _, pt := range []struct {
		at time.Time
		v  float64
	}{{t1, 10}, {t2, 25}} {
		md := pmetric.NewMetrics()
		addCounter(otlpResource(md, "shop", "a"), "jobs_done", pmetric.AggregationTemporalityCumulative, t1.Add(-time.Hour), pt.at, pt.v, "host", "h1")
		pushGRPC(t, cfg.Ports, md)
	}

	checkValues(t, "stored at t2", instantVector(t, cfg.Ports, `{job="shop"}`, t2), map[string]float64{
		`jobs_done_total{instance="a", job="shop"}`:        25,
		`target_info{host="h1", instance="a", job="shop"}`: 1,
	})
	checkValues(t, "stored at t1", instantVector(t, cfg.Ports, `jobs_done_total`, t1), map[string]float64{
		`jobs_done_total{instance="a", job="shop"}`: 10,
	})
	// cumulative_to_delta drops the first point of a series that started before the collector
	// (initial_value: auto) and forwards the difference of the next one.
	deadline := time.Now().Add(time.Minute)
	for {
		got := sink.sums("jobs_done")
		if len(got) > 0 {
			if !slices.Equal(got, []string{"Delta 15"}) {
				t.Errorf("forwarded jobs_done points = %q, want [\"Delta 15\"]", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("jobs_done did not reach the OTLP/HTTP endpoint within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
