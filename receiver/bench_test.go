package receiver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/collector/receiver"

	mexporter "github.com/metricstor/metricstor/exporter"
	"github.com/metricstor/metricstor/receiver/internal/metadata"
	"github.com/metricstor/metricstor/storage"
)

// The remote write 1.0 ingestion workload of DESIGN.md ("What the store must reach"): requests of
// 2,000 samples, one sample per series per round, rounds 15 s apart, node-exporter-like series
// (100 per host, 100 hosts for the 10,000 series of the steady state).
const (
	ingestBatch      = 2000
	ingestSeries     = 10_000
	ingestBaseMs     = int64(1_700_000_000_000)
	ingestIntervalMs = int64(15_000)
	seriesPerHost    = 100
)

// hostSeries are the 100 series of one host, as label pairs after __name__, job and instance:
// 64 CPU counters, 6 network counters, 6 disk counters, 8 filesystem gauges, 16 temperature
// gauges. counter says which are counters.
var hostSeries, hostCounter = func() ([][]string, []bool) {
	var ls [][]string
	var counter []bool
	add := func(isCounter bool, kv ...string) {
		ls = append(ls, kv)
		counter = append(counter, isCounter)
	}
	for cpu := range 8 {
		for _, mode := range []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"} {
			add(true, "__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(cpu), "mode", mode)
		}
	}
	for _, dev := range []string{"eth0", "eth1", "lo"} {
		add(true, "__name__", "node_network_receive_bytes_total", "device", dev)
		add(true, "__name__", "node_network_transmit_bytes_total", "device", dev)
	}
	for _, dev := range []string{"sda", "nvme0n1"} {
		add(true, "__name__", "node_disk_read_bytes_total", "device", dev)
		add(true, "__name__", "node_disk_written_bytes_total", "device", dev)
		add(true, "__name__", "node_disk_io_time_seconds_total", "device", dev)
	}
	for i, mp := range []string{"/", "/boot", "/var", "/home"} {
		dev := fmt.Sprintf("/dev/sda%d", i+1)
		add(false, "__name__", "node_filesystem_avail_bytes", "device", dev, "mountpoint", mp)
		add(false, "__name__", "node_filesystem_size_bytes", "device", dev, "mountpoint", mp)
	}
	for chip := range 4 {
		for sensor := range 4 {
			add(false, "__name__", "node_hwmon_temp_celsius", "chip", fmt.Sprintf("platform_coretemp_%d", chip), "sensor", fmt.Sprintf("temp%d", sensor+1))
		}
	}
	if len(ls) != seriesPerHost {
		panic(fmt.Sprintf("hostSeries: %d series, want %d", len(ls), seriesPerHost))
	}
	return ls, counter
}()

// ingestLabels is series id's label set: __name__ first, then job, instance and the series' own
// labels, in the order a sender puts them (sorted, as Prometheus sends them).
func ingestLabels(id int) []prompb.Label {
	kv := hostSeries[id%seriesPerHost]
	out := make([]prompb.Label, 0, len(kv)/2+2)
	out = append(out, prompb.Label{Name: kv[0], Value: kv[1]})
	for i := 2; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	out = append(out,
		prompb.Label{Name: "instance", Value: fmt.Sprintf("host-%05d:9100", id/seriesPerHost)},
		prompb.Label{Name: "job", Value: "node"})
	// Sort by name (few labels: insertion sort).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Name < out[j-1].Name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// ingestValue is series id's value at round r: counters grow by small integers, gauges are
// decimals with two digits that wander.
func ingestValue(id int, r int64) float64 {
	if hostCounter[id%seriesPerHost] {
		return float64(1000 + r*int64(id%13+1))
	}
	return float64(int64(40_00+(r*int64(id%7+3)+int64(id%500))%3000)) / 100
}

// encodeIngestRequest is the snappy-compressed remote write 1.0 request of series ids
// [first, first+n) at round r.
func encodeIngestRequest(tb testing.TB, first, n int, r int64) []byte {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
	for i := range n {
		id := first + i
		req.Timeseries[i] = prompb.TimeSeries{
			Labels:  ingestLabels(id),
			Samples: []prompb.Sample{{Value: ingestValue(id, r), Timestamp: ingestBaseMs + r*ingestIntervalMs}},
		}
	}
	b, err := req.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// ingestMetadataRequest declares the types of the metric families, in a request of its own as
// Prometheus sends metadata with remote write 1.0.
func ingestMetadataRequest(tb testing.TB) []byte {
	var req prompb.WriteRequest
	seen := map[string]bool{}
	for i, kv := range hostSeries {
		if seen[kv[1]] {
			continue
		}
		seen[kv[1]] = true
		typ := prompb.MetricMetadata_GAUGE
		if hostCounter[i] {
			typ = prompb.MetricMetadata_COUNTER
		}
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: typ, MetricFamilyName: kv[1], Help: kv[1] + " of the host."})
	}
	b, err := req.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// ingestRequests encodes the requests of one run: samples samples in requests of ingestBatch (the
// last may be shorter). Steady state: rounds 1, 2, ... over ingestSeries series (round 0 creates
// them, see ingestSetup). New series: every request brings ingestBatch series never seen before.
func ingestRequests(tb testing.TB, samples int, newSeries bool) [][]byte {
	var reqs [][]byte
	for done := 0; done < samples; done += ingestBatch {
		n := min(ingestBatch, samples-done)
		if newSeries {
			reqs = append(reqs, encodeIngestRequest(tb, ingestSeries+done, n, 1))
			continue
		}
		round := 1 + int64(done/ingestSeries)
		reqs = append(reqs, encodeIngestRequest(tb, done%ingestSeries, n, round))
	}
	return reqs
}

// ingestSetup is what the server must hold before the timer starts: the metric metadata, and
// round 0 of the ingestSeries series (so in the steady state every series exists; the new-series
// case gets the same, and its requests bring other series).
func ingestSetup(tb testing.TB) [][]byte {
	reqs := [][]byte{ingestMetadataRequest(tb)}
	for first := 0; first < ingestSeries; first += ingestBatch {
		reqs = append(reqs, encodeIngestRequest(tb, first, ingestBatch, 0))
	}
	return reqs
}

// ingestClient posts remote write 1.0 requests over one kept-alive connection.
type ingestClient struct {
	url string
	c   *http.Client
}

func newIngestClient(url string) *ingestClient {
	return &ingestClient{url: url, c: &http.Client{Timeout: time.Minute}}
}

func (c *ingestClient) post(tb testing.TB, body []byte) {
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", ctV1)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := c.c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		tb.Fatalf("remote write: status %d: %s", resp.StatusCode, msg)
	}
}

// startBenchPipeline is startPipeline without test loggers (a benchmark prints whatever is logged
// to it): receiver on a loopback port -> metricstor exporter (default config, so synchronous: the
// 204 means stored) -> metricstor storage extension on a temporary directory. It returns the URL.
// The receiver builds pipeline data (direct_write off).
func startBenchPipeline(b *testing.B) string { return startBenchWay(b, false) }

// startBenchDirect is startBenchPipeline with the receiver writing its series straight to the
// exporter (direct_write, as the default config.yaml has it).
func startBenchDirect(b *testing.B) string { return startBenchWay(b, true) }

func startBenchWay(b *testing.B, direct bool) string {
	ctx := context.Background()
	tel := componenttest.NewNopTelemetrySettings()
	sf := storage.NewFactory()
	scfg := sf.CreateDefaultConfig()
	if err := unmarshalInto(scfg, map[string]any{"directory": b.TempDir()}); err != nil {
		b.Fatal(err)
	}
	sid := component.MustNewID("metricstor")
	ext, err := sf.Create(ctx, extension.Settings{ID: sid, TelemetrySettings: tel}, scfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := ext.Start(ctx, testHost{sid: ext}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := ext.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	})

	// What the collector tells the extension of the default config.yaml's pipeline.
	snapshot := extensioncapabilities.NewConfigSnapshot(confmap.NewFromStringMap(map[string]any{
		"service": map[string]any{"pipelines": map[string]any{"metrics": map[string]any{
			"receivers": []any{"remote_write"}, "exporters": []any{"metricstor"},
		}}},
	}), nil)
	if err := ext.(extensioncapabilities.ConfigSnapshotWatcher).NotifyConfigSnapshot(ctx, snapshot); err != nil {
		b.Fatal(err)
	}
	ef := mexporter.NewFactory()
	exp, err := ef.CreateMetrics(ctx, exporter.Settings{ID: sid, TelemetrySettings: tel, BuildInfo: component.NewDefaultBuildInfo()}, ef.CreateDefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	if err := exp.Start(ctx, testHost{sid: ext}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := exp.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	})

	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.DirectWrite = direct
	set := receiver.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: tel, BuildInfo: component.NewDefaultBuildInfo()}
	rcv, err := NewFactory().CreateMetrics(ctx, set, cfg, exp)
	if err != nil {
		b.Fatal(err)
	}
	if err := rcv.Start(ctx, testHost{sid: ext}); err != nil {
		b.Fatal(err)
	}
	if got := rcv.(*remoteWriteReceiver).writer != nil; got != direct {
		b.Fatalf("the receiver writes directly: %v, want %v", got, direct)
	}
	b.Cleanup(func() {
		if err := rcv.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	})
	return "http://" + rcv.(*remoteWriteReceiver).listener.Addr().String() + WritePath
}

// startBenchPrometheus serves Prometheus's own remote write handler (storage/remote, remote write
// 1.0 only, as `--web.enable-remote-write-receiver` with its defaults) in front of Prometheus's
// TSDB (default options) on a temporary directory, on a loopback port (httptest.Server).
func startBenchPrometheus(b *testing.B) string {
	db, err := promtsdb.Open(b.TempDir(), nil, nil, promtsdb.DefaultOptions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	h := remote.NewWriteHandler(slog.New(slog.DiscardHandler), nil, db,
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType}, false, false)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/write", h)
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv.URL + "/api/v1/write"
}

// startBenchTransport is the floor under both: a loopback server whose handler reads the body and
// answers 204. It measures the client, HTTP and loopback share that both servers' figures include
// (the client runs in the same process, so its CPU is in cpu-ns/sample).
func startBenchTransport(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/api/v1/write"
}

// benchCPU is the user and system CPU time of the process so far (see BenchmarkAppend in
// storage/internal/tsdb): every goroutine of the server, background flushes and compactions
// included.
func benchCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRemoteWriteIngest posts remote write 1.0 requests of 2,000 samples, snappy-compressed
// and encoded before the timer starts, over HTTP on 127.0.0.1 to the whole Metricstor write path
// (the remote_write receiver's real server from Start, confighttp included -> metricstor exporter
// -> storage extension on b.TempDir()), both ways the receiver writes (metricstor: its series
// straight to the exporter, as in the default config.yaml; metricstor-pipeline-data: as pipeline
// data, as with a processor in the pipeline), and, in the same run, to Prometheus's own remote write
// handler in front of Prometheus's TSDB. b.N is the number of samples (ns/op is per sample); they
// are sent in ceil(b.N/2000) requests, one after the other. cpu-ns/sample is the process's user +
// system CPU per sample, the client's share included (see the transport case for that floor).
//
// steady: the 10,000 series exist before the timer starts (round 0 is sent during setup), each
// request brings round r of 2,000 of them. new-series: every request brings 2,000 new series.
// Compare the ratio to Prometheus, not absolute numbers: the machines are shared and noisy.
func BenchmarkRemoteWriteIngest(b *testing.B) {
	servers := []struct {
		name  string
		start func(*testing.B) string
	}{
		{"metricstor", startBenchDirect},
		{"metricstor-pipeline-data", startBenchPipeline},
		{"prometheus", startBenchPrometheus},
		{"transport", startBenchTransport},
	}
	for _, mode := range []struct {
		name      string
		newSeries bool
	}{{"steady", false}, {"new-series", true}} {
		for _, srv := range servers {
			b.Run(mode.name+"/"+srv.name, func(b *testing.B) {
				c := newIngestClient(srv.start(b))
				for _, req := range ingestSetup(b) {
					c.post(b, req)
				}
				reqs := ingestRequests(b, b.N, mode.newSeries)
				b.ReportAllocs()
				cpuBefore := benchCPU(b)
				b.ResetTimer()
				for _, req := range reqs {
					c.post(b, req)
				}
				b.StopTimer()
				b.ReportMetric(float64((benchCPU(b)-cpuBefore).Nanoseconds())/float64(b.N), "cpu-ns/sample")
			})
		}
	}
}
