package scrape

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestScrapeThroughProcessors: scraped series pass the collector's processors like any pipeline
// data and are stored as the processors left them: filter drops a metric by name and series by
// label, attributes adds a label; everything else comes back as scraped, metadata included.
func TestScrapeThroughProcessors(t *testing.T) {
	binary := harness.Binary(t)
	app := newTarget(t, textFormat, appMetrics)
	ports := harness.NewPorts(t)
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
  prometheus:
    config:
      global:
        scrape_interval: 1s
        scrape_timeout: 1s
      scrape_configs:
        - job_name: app
          static_configs:
            - targets: [%q]
processors:
  filter/drop:
    error_mode: ignore
    metric_conditions:
      - metric.name == "app_temperature_celsius"
      - datapoint.attributes["code"] == "500"
  attributes/region:
    actions:
      - key: region
        value: eu-west-1
        action: insert
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
      processors: [filter/drop, attributes/region]
      exporters: [metricstor]
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
`, ports.OTLPGRPC, ports.OTLPHTTP, app.addr(), filepath.Join(t.TempDir(), "data"), ports.PromQL)
	path := harness.WriteFile(t, "config.yaml", cfg)
	ms := harness.StartReady(t, "otelcol-metricstor", binary, path, ports)
	base := ports.PromQLURL()
	waitScrapes(t, map[string]string{"metricstor": base}, 2, "app")

	want := map[string]float64{
		`app_requests_total{job="app", code="200", method="get", region="eu-west-1"}`: 1027,
		`up{job="app", region="eu-west-1"}`:                                           1,
		`app_latency_seconds_bucket{le="1.0", region="eu-west-1"}`:                    30,
	}
	for q, v := range want {
		got, err := instant(base, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(got) != 1 || float64(got[0].Value) != v {
			t.Errorf("%s: got %v, want one series of value %v", q, got, v)
		}
	}
	for _, q := range []string{`app_temperature_celsius`, `app_requests_total{code="500"}`, `{job="app", region=""}`} {
		got, err := instant(base, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(got) != 0 {
			t.Errorf("%s: got %v, want nothing (dropped by filter, or labelled by attributes)", q, got)
		}
	}
	var md map[string][]metadataEntry
	if err := get(base, "/api/v1/metadata", nil, &md); err != nil {
		t.Fatal(err)
	}
	if m := md["app_requests_total"]; len(m) != 1 || m[0].Type != "counter" || m[0].Help != "Requests handled." {
		t.Errorf("metadata of app_requests_total: got %v, want one counter entry with its help", m)
	}
	ms.Stop(time.Minute)
}
