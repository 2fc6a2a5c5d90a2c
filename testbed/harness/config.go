package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

// Config describes the collector configuration the tests run: the default pipeline of
// config.yaml (otlp, and remote_write when RemoteWrite is set, -> metricstor exporter, no batch,
// no queue) on free loopback ports.
type Config struct {
	Ports   Ports
	DataDir string // the storage extension's directory

	// RemoteWrite is the port of the remote_write receiver; 0 leaves the receiver out.
	RemoteWrite int
	// RemoteWriteYAML is more settings of the remote_write receiver, as YAML at the receiver's
	// level ("direct_write: false"); empty adds nothing.
	RemoteWriteYAML string
	// PartitionDuration and Retention are the storage extension's settings, as Prometheus
	// durations; empty keeps its defaults.
	PartitionDuration, Retention string
	// LogLevel is the level of the collector's own logs; empty means info.
	LogLevel string

	// MaxSamples sets the promql extension's max_samples when positive.
	MaxSamples int

	// StorageYAML and PromQLYAML are more settings of the storage and promql extensions, as
	// YAML at the extension's level ("limits:\n  active_series: 10"); empty adds nothing.
	StorageYAML, PromQLYAML string

	// ExporterStorage and PromQLStorage are the `storage:` IDs of the exporter and the promql
	// extension; empty means "metricstor", the ID of the storage extension.
	ExporterStorage string
	PromQLStorage   string

	// RulesYAML, when not empty, adds the rules extension with these settings (YAML at the
	// extension's level, "rule_files: [...]") to the service.
	RulesYAML string

	// ScrapeYAML, when not empty, adds the prometheus (scraping) receiver to the pipeline with
	// this Prometheus configuration ("scrape_configs: [...]") as its `config`.
	ScrapeYAML string
}

// NewConfig returns the default test configuration with fresh ports and a t.TempDir() data
// directory.
func NewConfig(t testing.TB) Config {
	t.Helper()
	return Config{Ports: NewPorts(t), DataDir: filepath.Join(t.TempDir(), "data")}
}

var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{"indent": indent}).Parse(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{.Ports.OTLPGRPC}}
      http:
        endpoint: 127.0.0.1:{{.Ports.OTLPHTTP}}
{{- if .RemoteWrite}}
  remote_write:
    endpoint: 127.0.0.1:{{.RemoteWrite}}
{{- if .RemoteWriteYAML}}
{{indent .RemoteWriteYAML}}
{{- end}}
{{- end}}
{{- if .ScrapeYAML}}
  prometheus:
    config:
{{indent .ScrapeYAML | indent}}
{{- end}}

exporters:
  metricstor:
    storage: {{or .ExporterStorage "metricstor"}}
    sending_queue:
      enabled: false

extensions:
  metricstor:
    directory: {{printf "%q" .DataDir}}
{{- if .PartitionDuration}}
    partition_duration: {{.PartitionDuration}}
{{- end}}
{{- if .Retention}}
    retention: {{.Retention}}
{{- end}}
{{- if .StorageYAML}}
{{indent .StorageYAML}}
{{- end}}
  promql:
    endpoint: 127.0.0.1:{{.Ports.PromQL}}
    storage: {{or .PromQLStorage "metricstor"}}
{{- if gt .MaxSamples 0}}
    max_samples: {{.MaxSamples}}
{{- end}}
{{- if .PromQLYAML}}
{{indent .PromQLYAML}}
{{- end}}
{{- if .RulesYAML}}
  rules:
{{indent .RulesYAML}}
{{- end}}

service:
  extensions: [metricstor, promql{{if .RulesYAML}}, rules{{end}}]
  pipelines:
    metrics:
      receivers: [otlp{{if .RemoteWrite}}, remote_write{{end}}{{if .ScrapeYAML}}, prometheus{{end}}]
      exporters: [metricstor]
  telemetry:
    logs:
      level: {{or .LogLevel "info"}}
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.Ports.Telemetry}}
`))

// indent puts settings at the level of an extension's keys.
func indent(yaml string) string {
	lines := strings.Split(strings.TrimRight(yaml, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// YAML renders the configuration.
func (c Config) YAML() (string, error) {
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, c); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// Write renders the configuration into a file in a temporary directory and returns its path.
func (c Config) Write(t testing.TB) string {
	t.Helper()
	text, err := c.YAML()
	if err != nil {
		t.Fatalf("render config: %v", err)
	}
	return WriteFile(t, "config.yaml", text)
}

// WriteFile writes text to a file named name in a new temporary directory and returns its path.
func WriteFile(t testing.TB, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// RemoteWriteURL is the remote write endpoint of the remote_write receiver (RemoteWrite must be
// set).
func (c Config) RemoteWriteURL() string { return "http://" + Addr(c.RemoteWrite) + "/api/v1/write" }

// Probes are the readiness checks of a collector on this configuration: Ports.Probes(), and the
// remote_write receiver's port when it is configured.
func (c Config) Probes() []Probe {
	probes := c.Ports.Probes()
	if c.RemoteWrite != 0 {
		probes = append(probes, TCPProbe(c.RemoteWrite))
	}
	return probes
}
