package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// PrometheusEnv names the environment variable that overrides the path of the reference
// Prometheus binary.
const PrometheusEnv = "PROMETHEUS_BINARY"

// PrometheusVersion is the module version of the reference Prometheus (Prometheus 3.16).
const PrometheusVersion = "v0.316.0"

// PrometheusBinary returns the reference Prometheus: $PROMETHEUS_BINARY if set, else the one
// testbed/scripts/install-prometheus.sh installs. It fails the test when the file is missing.
func PrometheusBinary(t testing.TB) string {
	t.Helper()
	path := os.Getenv(PrometheusEnv)
	if path == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			t.Fatalf("locate prometheus: %v", err)
		}
		path = filepath.Join(root, "bin", "tools", "prometheus-"+PrometheusVersion, "prometheus")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("prometheus binary not found (%v): run testbed/scripts/install-prometheus.sh, or set %s", err, PrometheusEnv)
	}
	return path
}

// Prometheus is a Prometheus server run as a child process on loopback, with its own data
// directory.
type Prometheus struct {
	Name    string
	Binary  string
	Port    int
	DataDir string
	Config  string // path of prometheus.yml
	// Args are extra flags, e.g. --web.enable-remote-write-receiver.
	Args []string

	proc *harness.Process
}

// NewPrometheus writes config into a fresh temporary directory and returns a server (not yet
// started) on a free loopback port.
func NewPrometheus(t testing.TB, name, binary, config string, args ...string) *Prometheus {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return &Prometheus{
		Name: name, Binary: binary, Port: harness.FreePorts(t, 1)[0],
		DataDir: filepath.Join(dir, "data"), Config: path, Args: args,
	}
}

// URL is the base URL of its HTTP API.
func (p *Prometheus) URL() string { return "http://" + harness.Addr(p.Port) }

// Start starts the server and waits until /-/ready answers 200.
func (p *Prometheus) Start(t testing.TB) {
	t.Helper()
	args := append([]string{
		"--config.file=" + p.Config,
		"--storage.tsdb.path=" + p.DataDir,
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address=" + harness.Addr(p.Port),
		"--log.level=warn",
	}, p.Args...)
	p.proc = harness.Start(t, p.Name, p.Binary, args...)
	p.proc.WaitFor(time.Minute, harness.HTTPProbe(p.URL()+"/-/ready"))
}

// Stop stops the server with SIGTERM and waits for it to exit cleanly (it first flushes its
// remote write queues).
func (p *Prometheus) Stop() { p.proc.Stop(time.Minute) }

// Reconfigure stops the server, replaces its configuration and starts it again on the same data.
func (p *Prometheus) Reconfigure(t testing.TB, config string) {
	t.Helper()
	p.Stop()
	if err := os.WriteFile(p.Config, []byte(config), 0o600); err != nil {
		t.Fatalf("write %s: %v", p.Config, err)
	}
	p.Start(t)
}

// QueryOnlyConfig is a configuration with nothing to scrape and nowhere to write.
const QueryOnlyConfig = "global: {}\n"

// RemoteWrite is one remote_write destination of the reference.
type RemoteWrite struct {
	Name string // the queue's name in the reference's own metrics
	URL  string
	// Message is the protobuf_message: MessageV1 (or empty) for remote write 1.0, MessageV2
	// for 2.0.
	Message string
}

// ReferenceFeatures are the feature flags of the reference Prometheus. metadata-wal-records
// makes a 2.0 queue send each series' metadata (type, unit, help) with it, as a 1.0 queue does
// in separate requests; without it 2.0 series go without metadata.
const ReferenceFeatures = "--enable-feature=metadata-wal-records"

// ScrapeConfig returns the reference Prometheus configuration: the job "demo" scraping targets
// every interval, each with the instance label the query set expects
// (demo.promlabs.com:10000, :10001, ...), and remote-writing everything to each of writes.
// send_exemplars and send_native_histograms keep their defaults (off): the demo targets expose
// neither (text format, classic histograms and summaries).
func ScrapeConfig(interval time.Duration, targets []string, writes ...RemoteWrite) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n\n", interval, interval)
	sb.WriteString("scrape_configs:\n  - job_name: demo\n    static_configs:\n")
	for i, target := range targets {
		fmt.Fprintf(&sb, "      - targets: [%q]\n        labels:\n          instance: \"demo.promlabs.com:%d\"\n", target, 10000+i)
	}
	// Small batches sent at least every second keep the systems under test close behind; the
	// short back-off resends quickly after a system under test restarts. A 1.0 queue sends
	// metadata in requests of its own (every 10s here); a 2.0 queue sends it with the series.
	sb.WriteString("\nremote_write:\n")
	for _, w := range writes {
		fmt.Fprintf(&sb, "  - url: %q\n", w.URL)
		if w.Name != "" {
			fmt.Fprintf(&sb, "    name: %q\n", w.Name)
		}
		if w.Message == MessageV2 {
			fmt.Fprintf(&sb, "    protobuf_message: %s\n", MessageV2)
		}
		sb.WriteString("    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 50ms\n      max_backoff: 1s\n")
		if w.Message != MessageV2 {
			sb.WriteString("    metadata_config:\n      send_interval: 10s\n")
		}
	}
	return sb.String()
}
