package scrape

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/harness"
)

// interval is the scrape interval of both servers.
const interval = time.Second

// scrapeConfig is the Prometheus configuration both servers run: Prometheus as its
// configuration file, Metricstor under the prometheus receiver's `config:`. It exercises target
// labels, relabel_configs and metric_relabel_configs.
func scrapeConfig(app, node, om, otelApp, native, sdFile string) string {
	return fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [%[2]q]
        labels:
          env: test
    relabel_configs:
      - target_label: team
        replacement: storage
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: app_dropped_.*
        action: drop
  - job_name: node
    static_configs:
      - targets: [%[3]q]
  - job_name: openmetrics
    static_configs:
      - targets: [%[4]q]
  - job_name: otelapp
    static_configs:
      - targets: [%[5]q]
  - job_name: native
    scrape_protocols: [PrometheusProto, OpenMetricsText1.0.0, PrometheusText0.0.4]
    scrape_native_histograms: true
    static_configs:
      - targets: [%[6]q]
  - job_name: sd
    file_sd_configs:
      - files: [%[7]q]
`, promDuration(interval), app, node, om, otelApp, native, sdFile)
}

func promDuration(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// metricstorConfig runs the prometheus receiver (scrapereceiver) on scrape into the metricstor
// exporter, both on their defaults: the receiver's passthrough encoding is stored exactly
// whatever the exporter's translation settings. The otlp receiver is there only for the
// harness's readiness probes. With pipelineData the receiver's direct_write is off: the
// scrapes travel to the exporter as pipeline data.
func metricstorConfig(ports harness.Ports, dataDir, scrape string, pipelineData bool) string {
	indented := "        " + strings.ReplaceAll(strings.TrimRight(scrape, "\n"), "\n", "\n        ")
	direct := ""
	if pipelineData {
		direct = "\n    direct_write: false"
	}
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
  prometheus:%s
    config:
%s

exporters:
  metricstor:
    storage: metricstor
    sending_queue:
      enabled: false

extensions:
  metricstor:
    directory: %q
  promql:
    endpoint: 127.0.0.1:%d
    storage: metricstor

service:
  extensions: [metricstor, promql]
  pipelines:
    metrics:
      receivers: [otlp, prometheus]
      exporters: [metricstor]
  telemetry:
    logs:
      level: warn
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
`, ports.OTLPGRPC, ports.OTLPHTTP, direct, indented, dataDir, ports.PromQL, ports.Telemetry)
}

// knownDifference is a difference between Metricstor and Prometheus that is understood and
// explained in the README's "Scraping" section. A difference matches when its kind and metric
// are equal and its detail contains detail.
type knownDifference struct {
	kind, metric, detail string
	why                  string
}

// whyDropped: Prometheus's /api/v1/metadata answers from its targets' scrape caches, which
// record the metadata of the exposition before metric_relabel_configs, so a metric dropped by
// relabeling keeps its metadata there. Metricstor's answers from the store, which holds the
// metadata of stored series only (as Prometheus's own TSDB does with metadata WAL records).
const whyDropped = "Prometheus's metadata comes from the scrape cache, before metric_relabel_configs: a dropped metric keeps its metadata"

var knownDifferences = []knownDifference{
	{kindMetadata, "app_dropped_total", "metricstor []", whyDropped},
}

// TestScrapeMatchesPrometheus: a reference Prometheus and two Metricstors (one writing each
// scrape's series directly, the receiver's default, one with them as pipeline data) scrape the same six
// targets with the same configuration: an app in the text format, a node_exporter-style target,
// an OpenMetrics target, a target exposing an OpenTelemetry SDK's target_info, a native
// histogram in the protobuf format, and a target found by file_sd_configs. The servers' series,
// current values and metadata must agree (1) in the steady state, (2) after series disappear from
// a target (staleness markers), (3) after a target goes down (up 0, all its series stale), (4)
// after the file_sd target leaves service discovery (end-of-run staleness markers), (5) after
// Metricstor is killed with SIGKILL and restarted on its data directory.
func TestScrapeMatchesPrometheus(t *testing.T) {
	binary := harness.Binary(t)
	promBinary := conformance.PrometheusBinary(t)
	start := time.Now().Add(-time.Minute)

	app := newTarget(t, textFormat, appMetrics)
	node := newTarget(t, textFormat, nodeMetrics)
	// An exemplar on the OpenMetrics counter, with its own timestamp so that both servers store
	// the same one (without, each would stamp it with its own scrape time).
	exemplarTs := float64(time.Now().UnixMilli()) / 1000
	om := newTarget(t, openMetricsFormat, strings.Replace(openMetrics, "om_sent_bytes_total 4096\n",
		fmt.Sprintf("om_sent_bytes_total 4096 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 1024 %.3f\n", exemplarTs), 1))
	otelApp := newTarget(t, utf8TextFormat, otelAppMetrics)
	protoType, protoBody := protoMetrics(t)
	native := newTarget(t, protoType, protoBody)
	// The sd job's target comes from a file both servers watch (file_sd_configs); removing it
	// from the file ends the target's scrape loop in both (end-of-run staleness markers).
	sdTarget := newTarget(t, textFormat, nodeMetrics)
	sdFile := filepath.Join(t.TempDir(), "targets.json")
	writeSDFile(t, sdFile, fmt.Sprintf(`[{"targets": [%q], "labels": {"source": "file"}}]`, sdTarget.addr()))
	scrape := scrapeConfig(app.addr(), node.addr(), om.addr(), otelApp.addr(), native.addr(), sdFile)

	prom := conformance.NewPrometheus(t, "prometheus (reference)", promBinary, scrape, "--enable-feature=exemplar-storage")
	prom.Start(t)
	t.Cleanup(prom.Stop)

	// Two Metricstors: the receiver's default, each scrape's series straight to the exporter
	// (direct_write), and the way a pipeline with processors takes, pipeline data.
	type instance struct {
		name    string
		ports   harness.Ports
		cfgPath string
		proc    *harness.Process
	}
	servers := map[string]string{"prometheus": prom.URL()}
	var instances []*instance
	for _, pipelineData := range []bool{false, true} {
		in := &instance{name: "metricstor", ports: harness.NewPorts(t)}
		if pipelineData {
			in.name = "metricstor (pipeline data)"
		}
		in.cfgPath = harness.WriteFile(t, "config.yaml", metricstorConfig(in.ports, filepath.Join(t.TempDir(), "data"), scrape, pipelineData))
		// Stopped (SIGTERM, clean exit) at the end of the test; on an earlier failure the
		// harness kills it.
		in.proc = harness.StartReady(t, "otelcol-"+in.name, binary, in.cfgPath, in.ports)
		servers[in.name] = in.ports.PromQLURL()
		instances = append(instances, in)
	}

	seen := map[knownDifference]bool{}
	check := func(phase string) {
		t.Helper()
		// Three more scrapes of every target by both servers, then both answer.
		waitScrapes(t, servers, 3, "app", "node", "openmetrics", "otelapp", "native")
		ref, err := takeSnapshot(prom.URL(), start)
		if err != nil {
			t.Fatalf("%s: prometheus: %v", phase, err)
		}
		if len(ref.values) == 0 {
			t.Fatalf("%s: the reference scraped nothing", phase)
		}
		for _, in := range instances {
			got, err := takeSnapshot(in.ports.PromQLURL(), start)
			if err != nil {
				t.Fatalf("%s: %s: %v", phase, in.name, err)
			}
			var unexpected []string
			for _, d := range compare(ref, got) {
				if k, ok := known(d); ok {
					seen[k] = true
					t.Logf("%s: %s: known difference: %s (%s)", phase, in.name, d, k.why)
					continue
				}
				unexpected = append(unexpected, d.String())
			}
			if len(unexpected) > 0 {
				t.Errorf("%s: %d unexpected differences between %s and Prometheus:\n%s", phase, len(unexpected), in.name, strings.Join(unexpected, "\n"))
			}
		}
		if len(ref.exemplars) == 0 {
			t.Errorf("%s: the reference stored no exemplar", phase)
		}
		t.Logf("%s: compared %d series, %d current values, %d metadata families, exemplars of %d series", phase, len(ref.series), len(ref.values), len(ref.metadata), len(ref.exemplars))
	}

	check("steady state")

	app.set(appMetricsLater)
	check("after series disappeared")

	node.down.Store(true)
	check("after a target went down")

	// The sd target leaves service discovery: its scrape loop stops and, about two intervals
	// later, writes staleness markers for all its series (up included) in both servers.
	writeSDFile(t, sdFile, `[]`)
	waitGone(t, servers, `{job="sd"}`)
	check("after a target left service discovery")

	// kill -9 and restart on the same data directory: what was stored (staleness markers
	// included) is still there, and scraping resumes.
	for _, in := range instances {
		in.proc.Kill()
		in.proc = harness.StartReady(t, "otelcol-"+in.name+" (restarted)", binary, in.cfgPath, in.ports)
	}
	check("after kill -9 and restart")
	for _, in := range instances {
		in.proc.Stop(time.Minute)
	}

	for _, k := range knownDifferences {
		if !seen[k] {
			t.Errorf("known difference no longer occurs, remove it from knownDifferences and the README: %s: %s", k.kind, k.metric)
		}
	}
}

func known(d difference) (knownDifference, bool) {
	for _, k := range knownDifferences {
		if k.kind == d.kind && (k.metric == d.metric || k.metric == "*") && strings.Contains(d.detail, k.detail) {
			return k, true
		}
	}
	return knownDifference{}, false
}

// waitScrapes waits until every server has stored n more scrapes of each of jobs than now
// (counted by their `up` samples).
func waitScrapes(t *testing.T, servers map[string]string, n int, jobs ...string) {
	t.Helper()
	const query = `count_over_time(up[10m])`
	counts := func(base string) (map[string]float64, error) {
		v, err := instant(base, query)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for _, s := range v {
			out[string(s.Metric["job"])] = float64(s.Value)
		}
		return out, nil
	}
	for name, base := range servers {
		before, err := counts(base)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			now, err := counts(base)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			done := true
			for _, job := range jobs {
				done = done && now[job] >= before[job]+float64(n)
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not scrape every target %d more times: up samples before %v, now %v", name, n, before, now)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// writeSDFile replaces a file_sd file atomically (write, then rename), as file_sd expects.
func writeSDFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitGone waits until no server has a current value for selector (every series stale).
func waitGone(t *testing.T, servers map[string]string, selector string) {
	t.Helper()
	for name, base := range servers {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			v, err := instant(base, selector)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(v) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s still has %d current series", name, selector, len(v))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
