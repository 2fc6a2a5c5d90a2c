package conformance

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// System is the system under test: it receives the reference's remote writes and answers the
// Prometheus HTTP API.
type System interface {
	Name() string
	// WriteURL is the remote write endpoint the reference sends to.
	WriteURL() string
	// QueryURL is the base URL of the Prometheus HTTP API.
	QueryURL() string
	// Restart stops the system cleanly and starts it again on the same data.
	Restart(t testing.TB)
}

// Metricstor runs the otelcol-metricstor binary with the remote_write receiver, a short
// partition_duration (so that a run crosses partition boundaries) and a retention longer than
// any run (so that the oldest, closed partitions are still there when queried).
type Metricstor struct {
	Binary string
	Ports  harness.Ports
	Write  int // port of the remote_write receiver
	// PartitionDuration and Retention are the storage settings, as Prometheus durations.
	PartitionDuration, Retention string
	DataDir                      string
	// PipelineData turns the remote_write receiver's direct_write off: the series travel as
	// pipeline data to the exporter, as they do when the pipeline has processors.
	PipelineData bool
	config       string
	proc         *harness.Process
}

// StartMetricstor writes the configuration and starts the binary, waiting until it is ready.
// With pipelineData the remote_write receiver sends pipeline data to the exporter rather than
// its series directly (see Metricstor.PipelineData).
func StartMetricstor(t testing.TB, binary string, pipelineData bool) *Metricstor {
	t.Helper()
	m := &Metricstor{
		Binary: binary, Ports: harness.NewPorts(t), Write: harness.FreePorts(t, 1)[0],
		PartitionDuration: "1m", Retention: "1h",
		DataDir:      filepath.Join(t.TempDir(), "data"),
		PipelineData: pipelineData,
	}
	cfg := harness.Config{
		Ports: m.Ports, DataDir: m.DataDir, RemoteWrite: m.Write,
		PartitionDuration: m.PartitionDuration, Retention: m.Retention, LogLevel: "warn",
	}
	if pipelineData {
		cfg.RemoteWriteYAML = "direct_write: false"
	}
	m.config = cfg.Write(t)
	m.start(t)
	return m
}

func (m *Metricstor) start(t testing.TB) {
	t.Helper()
	m.proc = harness.StartReady(t, "otelcol-metricstor", m.Binary, m.config, m.Ports, harness.TCPProbe(m.Write))
}

func (m *Metricstor) Name() string     { return "metricstor" }
func (m *Metricstor) WriteURL() string { return "http://" + harness.Addr(m.Write) + "/api/v1/write" }
func (m *Metricstor) QueryURL() string { return m.Ports.PromQLURL() }

func (m *Metricstor) Restart(t testing.TB) {
	t.Helper()
	m.proc.Stop(time.Minute)
	m.start(t)
}

// Partitions returns the number of time partitions holding data, from the storage extension's
// metricstor_storage_partitions gauge on the collector's own metrics endpoint.
func (m *Metricstor) Partitions() (float64, error) {
	resp, err := http.Get("http://" + harness.Addr(m.Ports.Telemetry) + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if ok && (name == "metricstor_storage_partitions" || strings.HasPrefix(name, "metricstor_storage_partitions{")) {
			return strconv.ParseFloat(strings.TrimSpace(value), 64)
		}
	}
	return 0, fmt.Errorf("no metricstor_storage_partitions in the collector's metrics")
}

// PrometheusSUT is another Prometheus with its remote write receiver enabled and nothing to
// scrape: the system under test that validates the harness (it must score 100%).
type PrometheusSUT struct{ *Prometheus }

// StartPrometheusSUT starts it.
func StartPrometheusSUT(t testing.TB, binary string) *PrometheusSUT {
	t.Helper()
	p := NewPrometheus(t, "prometheus (system under test)", binary, "global: {}\n", "--web.enable-remote-write-receiver")
	p.Start(t)
	return &PrometheusSUT{p}
}

func (p *PrometheusSUT) Name() string     { return "prometheus" }
func (p *PrometheusSUT) WriteURL() string { return p.URL() + "/api/v1/write" }
func (p *PrometheusSUT) QueryURL() string { return p.URL() }

func (p *PrometheusSUT) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.Start(t)
}
